"""`python -m blursynth ...`: the same command line as the `blursynth` console script."""
from .commands import main

main(prog_name="blursynth")
