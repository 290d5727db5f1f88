"""Export a blursynth output directory to the layouts other trainers read: one of ``writers.EXPORT_FORMATS``
(``basicsr``, ``gopro``, ``webdataset``; the layouts are described in ``blursynth/writers/``).

The export is written to ``OUT.tmp`` and renamed to ``OUT`` when complete; an existing ``OUT`` is never
touched (an error names it). A full disk removes ``OUT.tmp`` and raises ``DiskFullError``. Every record read
from the run is checked against its digest (``ShardReader.get``): a corrupt one stops the export with
``CorruptRecordError``, or, with ``on_corrupt="skip"``, leaves that sample out and counts it.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Callable

from ..writers import EXPORT_FORMATS, WRITERS, ExportTarget, Pair
from .batch import disk_full_raised
from .codec import decode_array, decode_image, decode_meta
from .errors import CorruptRecordError
from .lock import locks_new_output
from .manifest import Manifest
from .shard import ShardReader, is_complete

log = logging.getLogger(__name__)

ON_CORRUPT = ("error", "skip")
_ADVICE = "free space, then run the same export again (OUT.tmp was removed)"


@locks_new_output("out")  # one writer of `out` at a time (lock.py)
def export(run_dir: str | os.PathLike, out: str | os.PathLike, fmt: str, split: str = "train",
           samples_per_tar: int = 1000, prefix: str = "shard", progress: Callable[[int], None] | None = None,
           on_corrupt: str = "error") -> dict:
    """Export every sample of ``run_dir`` (in dataset order) to ``out`` in format ``fmt``.

    Args:
        run_dir: blursynth output directory (manifest + shards).
        out: new directory to create.
        fmt: one of ``writers.EXPORT_FORMATS``.
        split: ``gopro`` only: the split folder (train / test).
        samples_per_tar, prefix: ``webdataset`` only.
        progress: optional callable(n) after each sample (exported or skipped).
        on_corrupt: "error": a corrupt record raises ``CorruptRecordError``; "skip": the sample is left out
            (a shard that cannot be read at all: all of its samples) and counted.
    Returns:
        a summary dict: format, out, samples (exported), skipped_corrupt (sample indices left out), and the
        files / shards written.
    Raises:
        CorruptRecordError: a stored record is corrupt (``on_corrupt="error"``).
        DiskFullError: the disk filled up; nothing is left under ``out`` or ``out.tmp``.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use {', '.join(EXPORT_FORMATS)})")
    if on_corrupt not in ON_CORRUPT:
        raise ValueError(f"on_corrupt must be one of {', '.join(ON_CORRUPT)}, got {on_corrupt!r}")
    if samples_per_tar < 1:
        raise ValueError(f"samples_per_tar must be >= 1, got {samples_per_tar}")
    run_dir, out = Path(run_dir), Path(out)
    manifest = Manifest.load(run_dir)
    for info in manifest.shards:
        if not is_complete(run_dir / info.name):
            raise FileNotFoundError(f"{run_dir}: manifest lists shard {info.name}, which is missing or incomplete")
    if out.exists():
        raise FileExistsError(f"--out {out} already exists; export writes a new directory")
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    skipped: list[int] = []
    written = 0
    w = None
    try:
        with disk_full_raised(out.parent, _ADVICE):
            w = WRITERS[fmt].export(tmp, ExportTarget(split, samples_per_tar, prefix, _ADVICE))
            for info in manifest.shards:
                reader = ShardReader(run_dir / info.name)
                for index in info.indices:
                    try:
                        sample = _read_sample(reader, index, manifest.codec)
                    except CorruptRecordError as exc:
                        if on_corrupt == "error":
                            raise
                        log.warning("leaving out sample %d: %s", index, exc)
                        skipped.append(index)
                        w.skip(index)
                    else:
                        w.put(Pair(info.name.removesuffix(".lmdb"), index, *sample))
                        written += 1
                    if progress is not None:
                        progress(1)
                reader.close()
            summary = w.close()
            w = None
            os.replace(tmp, out)
    except BaseException:
        if w is not None:
            try:
                w.abort()
            except Exception:  # the directory goes anyway; the first error is the one to report
                log.debug("aborting the %s writer failed too", fmt, exc_info=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"format": fmt, "out": str(out), "samples": written, "skipped_corrupt": skipped, **summary}


def _read_sample(reader: ShardReader, index: int, codec: str) -> tuple:
    """(blur, sharp, meta, extra) of one sample, every record checked against its digest."""
    blur = decode_image(reader.get(index, "blur"), codec)
    sharp = decode_image(reader.get(index, "sharp"), codec)
    meta = decode_meta(reader.get(index, "meta"))
    extra = {"blur_map": decode_array(reader.get(index, "blur_map"))} if "blur_map" in reader.fields() else {}
    return blur, sharp, meta, extra

