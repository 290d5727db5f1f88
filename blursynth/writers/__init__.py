"""Output writers: one table, `WRITERS`, for `blursynth export` and the video path's outputs.

Each entry names a format and says how each command opens its writer (`base.WriterKind`); every writer follows
one protocol (`base.Writer`: put pairs, skip, close or abort). `EXPORT_FORMATS` and `VIDEO_FORMATS` (the CLI's
`--format` choices and the video recipe's check) are the table's keys that each command can write.

A new format is one module here with its writer, and one entry in the table; `tests/test_writers.py` runs every
entry. Event streams are written by `events.formats` (one array per stream, not pairs of images).
"""
from __future__ import annotations

from . import gopro
from .base import ClipTarget, ExportTarget, Pair, Writer, WriterKind, export_png
from .basicsr import BasicsrWriter, basicsr_key
from .gopro import GoproWriter
from .mp4 import Mp4Writer
from .webdataset import WebdatasetWriter, webdataset_key
from .windows import WINDOWS_PER_CLIP, WindowShardWriter

WRITERS: dict[str, WriterKind] = {
    "basicsr": WriterKind("blur.lmdb + sharp.lmdb with meta_info.txt (BasicSR / NAFNet)",
                          export=lambda out, t: BasicsrWriter(out, t.advice)),
    "gopro": WriterKind("SEQ/{blur,sharp}/NNNNNN.png (export: SPLIT/SHARD; video: NAME)",
                        export=gopro.for_export, video=gopro.for_clip),
    "lmdb": WriterKind("shards of windows of --window frames",
                       video=lambda out, t: WindowShardWriter(out, t.ordinal, t.ordinal, t.window, t.stride, t.codec,
                                                              t.base_meta, t.events)),
    "mp4": WriterKind("NAME_blurry/_sharp/_flow.mp4", video=lambda out, t: Mp4Writer(out, t.name, t.fps, t.flow_max_px),
                      flow=True),
    "webdataset": WriterKind("tar shards of KEY.blur.png, KEY.sharp.png, KEY.json",
                             export=lambda out, t: WebdatasetWriter(out, t.samples_per_tar, t.prefix)),
}
EXPORT_FORMATS = tuple(name for name, kind in WRITERS.items() if kind.export is not None)
VIDEO_FORMATS = tuple(name for name, kind in WRITERS.items() if kind.video is not None)


def formats_help(formats) -> str:
    """"name: layout; ..." for a command's --format help."""
    return "; ".join(f"{name}: {WRITERS[name].help}" for name in formats)


__all__ = ["BasicsrWriter", "ClipTarget", "EXPORT_FORMATS", "ExportTarget", "GoproWriter", "Mp4Writer", "Pair", "VIDEO_FORMATS",
           "WINDOWS_PER_CLIP", "WRITERS", "WebdatasetWriter", "WindowShardWriter", "Writer", "WriterKind",
           "basicsr_key", "export_png", "formats_help", "webdataset_key"]
