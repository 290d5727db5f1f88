"""`python -m blursynth ...`: the same command line as the `blursynth` console script."""
from .cli import main

main(prog_name="blursynth")
