"""Sharp photos with instance masks.

A source maps a sample index and the sample's source stream to a `SourceItem` of the run's output size.
`open_source("builtin")` works offline with no data; `open_source("folder:DIR")` reads any images and
segments them with the classic graph segmenter; `open_source("coco:ROOT")` and `open_source("ade20k:ROOT")`
read annotated datasets, with SBDD's choice of moving objects. A bad input raises SourceError; the run records
the reason and skips the sample.

`SOURCES` is the table of kinds: a new source is a module here with a `Source` and one entry in the table; the
CLI's help, spec parsing and errors read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .ade20k import Ade20kSource
from .base import Source, SourceItem
from .builtin import BuiltinSource
from .coco import CocoSource
from .folder import FolderSource
from .io import SourceError, read_image

@dataclass(frozen=True)
class SourceKind:
    """A kind of source in ``SOURCES``: how a ``KIND[:ARG]`` spec opens it.

    Attributes:
        open: ``open(arg, size, segmenter) -> Source``; ``segmenter`` is None except for kinds that take one.
        arg: what follows ``KIND:`` in a spec ("DIR", "ROOT"), or None for a kind that takes no argument.
        help: what the kind reads, for the CLI's help.
        segments: whether the kind segments its photos itself (and so takes ``--sam-checkpoint``).
    """

    open: Callable[[str, tuple[int, int], object], Source]
    arg: str | None
    help: str
    segments: bool = False


def _folder(arg: str, size: tuple[int, int], segmenter) -> Source:
    return FolderSource(arg, size, segmenter)


SOURCES: dict[str, SourceKind] = {
    "builtin": SourceKind(lambda arg, size, segmenter: BuiltinSource(size), None,
                          "the photos scikit-image ships, offline"),
    "folder": SourceKind(_folder, "DIR", "any images, graph-segmented", segments=True),
    "coco": SourceKind(lambda arg, size, segmenter: CocoSource(arg, size), "ROOT", "instances JSON + images"),
    "ade20k": SourceKind(lambda arg, size, segmenter: Ade20kSource(arg, size), "ROOT", "the full ADE20K release"),
}
SOURCE_KINDS = tuple(SOURCES)


def spec_forms(described: bool = False) -> str:
    """The spec of every kind, as error messages list them ("builtin, folder:DIR, ... or ade20k:ROOT"), or with
    what each reads (``described``: the CLI's help)."""
    forms = [(k if s.arg is None else f"{k}:{s.arg}") + (f" ({s.help})" if described else "")
             for k, s in SOURCES.items()]
    return ", ".join(forms[:-1]) + " or " + forms[-1]


def parse_spec(spec: str) -> tuple[str, str]:
    """``(kind, arg)`` of a ``--source`` value, or ValueError naming the forms ``SOURCES`` accepts."""
    kind, _, arg = spec.partition(":")
    if kind not in SOURCES or (SOURCES[kind].arg is None) != (not arg):
        raise ValueError(f"unknown source {spec!r}: use {spec_forms()}")
    return kind, arg


def open_source(spec: str, size: tuple[int, int], sam: dict | None = None, segmenter=None) -> Source:
    """Open a source from its command-line spec (``spec_forms()``: "builtin", "folder:DIR", "coco:ROOT" or
    "ade20k:ROOT"; ROOT of coco may also be the path of an instances JSON).

    Args:
        spec: the --source value.
        size: (width, height) of every item it yields.
        sam: folder sources only: segment with segment-anything instead of the graph segmenter, built from
            SamSegmenter's arguments ({"checkpoint": PATH, "model_type": "vit_b"}).
        segmenter: folder sources only: any callable image -> label map (label 0 = no mask), instead of `sam`.
    """
    kind, arg = parse_spec(spec)
    if (sam is not None or segmenter is not None) and not SOURCES[kind].segments:
        raise ValueError("SAM segmentation applies to folder:DIR sources only")
    if segmenter is None and sam is not None:
        from ..segment.sam import SamSegmenter

        segmenter = SamSegmenter(**sam)
    return SOURCES[kind].open(arg, size, segmenter)


__all__ = ["Source", "SourceItem", "SourceError", "BuiltinSource", "FolderSource", "CocoSource", "Ade20kSource",
           "SOURCES", "SOURCE_KINDS", "SourceKind", "open_source", "parse_spec", "spec_forms", "read_image"]
