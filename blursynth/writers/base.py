"""The writer protocol: what `blursynth export` and the video path hand a writer, and what they call on it.

A writer is opened once per output (export: the whole run; video: one clip) by its entry in
`writers.WRITERS`, from a directory and a target (`ExportTarget` or `ClipTarget`: what that command knows).
It is then handed `Pair`s in order, told of the pairs left out (`skip`), and either closed or aborted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..store.codec import encode_png

# The exports' PNGs (basicsr, gopro, webdataset) are encoded as BasicSR's lmdb_util encodes them.
EXPORT_PNG_LEVEL = 1

@dataclass
class Pair:
    """One blurred/sharp pair handed to a writer.

    Attributes:
        seq: the sequence it belongs to: export: the run's shard name ("shard-00000"); video: the clip's name.
        index: export: the sample index; video: the output frame index j within the clip.
        blur, sharp: uint8 (H, W, 3) RGB (or (H, W) gray), encoded by the camera.
        meta: the sample's meta (export) or the output frame's (video), JSON-able.
        extra: named arrays some writers store: "blur_map" (export, float16 (H, W, 3) u_x, u_y, px, when the run
            stored it); "flow" (video, float32 (H, W, 2) pixels, for writers whose table entry asks for it).
    """

    seq: str
    index: int
    blur: np.ndarray
    sharp: np.ndarray
    meta: dict
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class Writer(Protocol):
    """What every writer does; the command owns the directory and calls these in this order."""

    def put(self, pair: Pair) -> None:
        """Write one pair."""

    def skip(self, index: int) -> None:
        """Pair `index` was left out (filtered, or corrupt in the run): writers of consecutive frames end a run."""

    def close(self) -> dict:
        """Finish and make the output visible; returns what was written, for the summary or the manifest."""

    def abort(self) -> None:
        """Stop after an error, releasing files and removing what only this writer would leave behind."""


@dataclass(frozen=True)
class ExportTarget:
    """What `blursynth export` tells a writer; the whole run goes into one new directory (renamed when done).

    Attributes:
        split: gopro: the split folder (train / test).
        samples_per_tar, prefix: webdataset: samples per tar, and the tar names' prefix.
        advice: what a full disk's error tells the user to do.
    """

    split: str = "train"
    samples_per_tar: int = 1000
    prefix: str = "shard"
    advice: str = ""


@dataclass(frozen=True)
class ClipTarget:
    """What the video path tells a writer about one clip, whose outputs sit beside the other clips' in `out`.

    Attributes:
        name: the clip's unique name (file and folder names).
        ordinal: the clip's position in the run (lmdb: its shard index and first record index).
        fps: the output frame rate (mp4).
        flow_max_px: mp4: flow magnitude drawn at full brightness, pixels.
        window, stride, codec: lmdb: output frames per record, frames between record starts, image codec.
        base_meta: lmdb: the clip's meta, repeated in every record.
        events: lmdb with events: callable(first j, last j) -> `events.formats.encode_events` bytes of the events
            from the start of the first frame's exposure to the end of the last's; None without events.
    """

    name: str
    ordinal: int
    fps: float
    flow_max_px: float = 20.0
    window: int = 5
    stride: int = 5
    codec: str = "zstd"
    base_meta: dict = field(default_factory=dict)
    events: Callable[[int, int], bytes] | None = None


@dataclass(frozen=True)
class WriterKind:
    """An output format in `writers.WRITERS`: how each command opens its writer.

    Attributes:
        help: the layout it writes, for the CLI's help.
        export: `open(directory, ExportTarget) -> Writer` for `blursynth export`, or None.
        video: `open(directory, ClipTarget) -> Writer` for `blursynth video`, or None.
        flow: the writer reads `Pair.extra["flow"]`, so the video path keeps each frame's flow.
    """

    help: str
    export: Callable[[Path, ExportTarget], Writer] | None = None
    video: Callable[[Path, ClipTarget], Writer] | None = None
    flow: bool = False


def export_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB (H, W, 3) or gray (H, W) image as the exports write it:
    ``cv2.imencode('.png', bgr, [IMWRITE_PNG_COMPRESSION, 1])``, like BasicSR's ``lmdb_util``."""
    return encode_png(img, EXPORT_PNG_LEVEL, adaptive=True)
