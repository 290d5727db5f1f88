"""Sharp photos with instance masks.

A source maps a sample index and the sample's source stream to a `SourceItem` of the run's output size.
`open_source("builtin")` works offline with no data; `open_source("folder:DIR")` reads any images and
segments them with the classic graph segmenter. A bad input raises SourceError; the run records the reason
and skips the sample.
"""
from __future__ import annotations

from .base import Source, SourceItem
from .builtin import BuiltinSource
from .folder import FolderSource
from .io import SourceError, read_image

SOURCE_KINDS = ("builtin", "folder")


def open_source(spec: str, size: tuple[int, int]) -> Source:
    """Open a source from its command-line spec: "builtin" or "folder:DIR".

    Args:
        spec: the --source value.
        size: (width, height) of every item it yields.
    """
    kind, _, arg = spec.partition(":")
    if kind == "builtin" and not arg:
        return BuiltinSource(size)
    if kind == "folder" and arg:
        return FolderSource(arg, size)
    raise ValueError(f"unknown source {spec!r}: use builtin or folder:DIR")


__all__ = ["Source", "SourceItem", "SourceError", "BuiltinSource", "FolderSource", "open_source", "read_image"]
