"""Sharp photos with instance masks.

A source maps a sample index and the sample's source stream to a `SourceItem` of the run's output size.
`open_source("builtin")` works offline with no data; `open_source("folder:DIR")` reads any images and
segments them with the classic graph segmenter; `open_source("coco:ROOT")` and `open_source("ade20k:ROOT")`
read annotated datasets, with SBDD's choice of moving objects. A bad input raises SourceError; the run records
the reason and skips the sample.
"""
from __future__ import annotations

from .ade20k import Ade20kSource
from .base import Source, SourceItem
from .builtin import BuiltinSource
from .coco import CocoSource
from .folder import FolderSource
from .io import SourceError, read_image

SOURCE_KINDS = ("builtin", "folder", "coco", "ade20k")


def open_source(spec: str, size: tuple[int, int], sam: dict | None = None, segmenter=None) -> Source:
    """Open a source from its command-line spec: "builtin", "folder:DIR", "coco:ROOT" or "ade20k:ROOT".

    ROOT of coco may also be the path of an instances JSON.

    Args:
        spec: the --source value.
        size: (width, height) of every item it yields.
        sam: folder sources only: segment with segment-anything instead of the graph segmenter, built from
            SamSegmenter's arguments ({"checkpoint": PATH, "model_type": "vit_b"}).
        segmenter: folder sources only: any callable image -> label map (label 0 = no mask), instead of `sam`.
    """
    if (sam is not None or segmenter is not None) and not spec.startswith("folder:"):
        raise ValueError("SAM segmentation applies to folder:DIR sources only")
    kind, _, arg = spec.partition(":")
    if kind == "builtin" and not arg:
        return BuiltinSource(size)
    if kind == "folder" and arg:
        if segmenter is None and sam is not None:
            from ..segment.sam import SamSegmenter

            segmenter = SamSegmenter(**sam)
        return FolderSource(arg, size, segmenter)
    if kind == "coco" and arg:
        return CocoSource(arg, size)
    if kind == "ade20k" and arg:
        return Ade20kSource(arg, size)
    raise ValueError(f"unknown source {spec!r}: use builtin, folder:DIR, coco:ROOT or ade20k:ROOT")


__all__ = ["Source", "SourceItem", "SourceError", "BuiltinSource", "FolderSource", "CocoSource", "Ade20kSource",
           "SOURCE_KINDS", "open_source", "read_image"]
