"""The application layer: the `blursynth` click group and one module per command.

Each command module defines a plain ``click.command`` and imports only click, the shared option helpers
(``options.py``) and what its options' help needs at import time; the stages load inside the command, so
``blursynth --help`` stays fast. Nothing outside this package imports it (ARCHITECTURE.md; checked by
tests/test_architecture.py). The console script and ``python -m blursynth`` run ``main``.
"""
from __future__ import annotations

import logging

import click

from ..store.errors import StoreError
from .adapt import adapt
from .events import events
from .export import export
from .generate import generate
from .inspect import inspect_run
from .threads import wait_passively
from .train import evaluate, train
from .video import video


class StoreFailure(click.ClickException):
    """A StoreError ended a command: its message, and its exit code (store/errors.py: 3 locked, 4 disk full,
    5 corrupt record)."""

    def __init__(self, error: StoreError):
        super().__init__(str(error))
        self.exit_code = error.exit_code


class _Group(click.Group):
    """The command group: a StoreError from any command ends it with one clear message and its exit code, never
    a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StoreError as exc:
            raise StoreFailure(exc) from exc


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """blursynth: realistic sharp/blurred training pairs for motion deblurring."""
    wait_passively()  # before any stage loads an OpenMP runtime (commands/threads.py)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")


for _command in (generate, inspect_run, video, events, train, evaluate, export, adapt):
    main.add_command(_command)
