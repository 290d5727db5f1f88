"""Export a blursynth output directory to the layouts other trainers read.

- ``basicsr``: ``OUT/blur.lmdb`` (lq) and ``OUT/sharp.lmdb`` (gt), each as BasicSR's
  ``basicsr/utils/lmdb_util.py`` writes one: an LMDB environment with ``data.mdb`` / ``lock.mdb`` plus
  ``meta_info.txt`` with one line ``{key}.png ({h},{w},{c}) {compress_level}`` per image; the key (ASCII, no
  dot) is the image name without extension; the value is ``cv2.imencode('.png', bgr, [IMWRITE_PNG_COMPRESSION,
  1])``. Both environments hold the same keys, as BasicSR's ``paired_paths_from_lmdb`` requires; keys are the
  sample indices, ``{index:06d}``.
- ``gopro``: ``OUT/{split}/{seq}/blur/{index:06d}.png`` and ``.../sharp/{index:06d}.png``, one ``seq`` per
  shard (``shard-00000``), as the GoPro dataset and MIMO-UNet / NAFNet folder loaders expect.
- ``webdataset``: ``OUT/{prefix}-{n:06d}.tar`` (plain tar, stdlib ``tarfile``), each sample's members
  contiguous and named ``{key}.blur.png``, ``{key}.sharp.png``, ``{key}.json`` (the meta), plus
  ``{key}.blur_map.npy`` when the run stored blur maps; key ``{index:09d}``. Member headers are fixed (mtime 0,
  uid/gid 0, mode 0644) so the same run exports to the same bytes.

The export is written to ``OUT.tmp`` and renamed to ``OUT`` when complete; an existing ``OUT`` is never
touched (an error names it). A full disk removes ``OUT.tmp`` and raises ``DiskFullError``. Every record read
from the run is checked against its digest (``ShardReader.get``): a corrupt one stops the export with
``CorruptRecordError``, or, with ``on_corrupt="skip"``, leaves that sample out and counts it.
"""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tarfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .batch import INITIAL_MAP_BYTES, BatchWriter, disk_full_raised
from .codec import decode_array, decode_image, decode_meta
from .errors import CorruptRecordError
from .lock import locks_new_output
from .manifest import Manifest
from .shard import ShardReader, is_complete

log = logging.getLogger(__name__)

FORMATS = ("basicsr", "gopro", "webdataset")
ON_CORRUPT = ("error", "skip")
BASICSR_COMPRESS_LEVEL = 1
# Records (images) per LMDB write transaction, and its bytes: a transaction holds its pages in memory.
_BASICSR_BATCH = 5000
_BASICSR_BATCH_BYTES = 256 << 20
_BASICSR_MAP_BYTES = INITIAL_MAP_BYTES  # where the maps start; they grow as needed
_ADVICE = "free space, then run the same export again (OUT.tmp was removed)"


@locks_new_output("out")  # one writer of `out` at a time (lock.py)
def export(run_dir: str | os.PathLike, out: str | os.PathLike, fmt: str, split: str = "train",
           samples_per_tar: int = 1000, prefix: str = "shard", progress: Callable[[int], None] | None = None,
           on_corrupt: str = "error") -> dict:
    """Export every sample of ``run_dir`` (in dataset order) to ``out`` in format ``fmt``.

    Args:
        run_dir: blursynth output directory (manifest + shards).
        out: new directory to create.
        fmt: one of ``FORMATS``.
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
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
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
            writer = {"basicsr": _BasicsrWriter, "gopro": _GoproWriter, "webdataset": _WebdatasetWriter}[fmt]
            w = writer(tmp, split=split, samples_per_tar=samples_per_tar, prefix=prefix)
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
                    else:
                        w.put(info.name.removesuffix(".lmdb"), index, *sample)
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


def basicsr_key(index: int) -> str:
    return f"{index:06d}"


def webdataset_key(index: int) -> str:
    return f"{index:09d}"


def _png_bgr(img: np.ndarray, level: int = BASICSR_COMPRESS_LEVEL) -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ValueError(f"cv2 could not encode a {img.shape} image as PNG")
    return buf.tobytes()


def _shape(img: np.ndarray) -> tuple[int, int, int]:
    return (img.shape[0], img.shape[1], 1) if img.ndim == 2 else img.shape


class _BasicsrWriter:
    """Two LMDB environments (with lock files, as BasicSR's lmdb_util writes them) whose maps grow as needed."""

    def __init__(self, out: Path, **_):
        self.paths = {"blur": out / "blur.lmdb", "sharp": out / "sharp.lmdb"}
        self.envs, self.meta = {}, {}
        for name, path in self.paths.items():
            self.envs[name] = BatchWriter(path, out.parent, map_size=_BASICSR_MAP_BYTES, advice=_ADVICE)
            self.meta[name] = open(path / "meta_info.txt", "w")
        self.count = 0

    def put(self, seq, index, blur, sharp, meta, extra):
        key = basicsr_key(index)
        for name, img in (("blur", blur), ("sharp", sharp)):
            self.envs[name].put(key.encode("ascii"), _png_bgr(img))
            h, w, c = _shape(img)
            self.meta[name].write(f"{key}.png ({h},{w},{c}) {BASICSR_COMPRESS_LEVEL}\n")
        self.count += 1
        full = any(env.pending_bytes >= _BASICSR_BATCH_BYTES for env in self.envs.values())
        if full or self.count % _BASICSR_BATCH == 0:
            for env in self.envs.values():
                env.commit()

    def close(self) -> dict:
        for name in self.paths:
            self.envs[name].commit()
            self.envs[name].sync()
            self.envs[name].close()
            self.meta[name].close()
        return {"lq": "blur.lmdb", "gt": "sharp.lmdb"}

    def abort(self) -> None:
        for name in self.envs:
            self.envs[name].abort()
            self.meta[name].close()


class _GoproWriter:
    def __init__(self, out: Path, split: str, **_):
        if not split or "/" in split or split in (".", ".."):
            raise ValueError(f"bad split name {split!r}")
        self.root = out / split
        self.seqs: set[str] = set()

    def put(self, seq, index, blur, sharp, meta, extra):
        for name, img in (("blur", blur), ("sharp", sharp)):
            d = self.root / seq / name
            if seq not in self.seqs:
                d.mkdir(parents=True, exist_ok=True)
            path = d / f"{index:06d}.png"
            path.write_bytes(_png_bgr(img))
        self.seqs.add(seq)

    def close(self) -> dict:
        return {"sequences": sorted(self.seqs)}

    def abort(self) -> None:
        pass


class _WebdatasetWriter:
    def __init__(self, out: Path, samples_per_tar: int, prefix: str, **_):
        self.out, self.per_tar, self.prefix = out, samples_per_tar, prefix
        self.tar: tarfile.TarFile | None = None
        self.in_tar = 0
        self.tars: list[str] = []

    def put(self, seq, index, blur, sharp, meta, extra):
        if self.tar is None or self.in_tar >= self.per_tar:
            self._next_tar()
        key = webdataset_key(index)
        members = [(f"{key}.blur.png", _png_bgr(blur)), (f"{key}.sharp.png", _png_bgr(sharp)),
                   (f"{key}.json", json.dumps(meta, sort_keys=True).encode())]
        for name, arr in extra.items():
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            members.append((f"{key}.{name}.npy", buf.getvalue()))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self.tar.addfile(info, io.BytesIO(data))
        self.in_tar += 1

    def _next_tar(self):
        if self.tar is not None:
            self.tar.close()
        name = f"{self.prefix}-{len(self.tars):06d}.tar"
        self.tar = tarfile.open(self.out / name, "w", format=tarfile.USTAR_FORMAT)
        self.tars.append(name)
        self.in_tar = 0

    def close(self) -> dict:
        if self.tar is not None:
            self.tar.close()
        return {"shards": self.tars}

    def abort(self) -> None:
        if self.tar is not None:
            self.tar.fileobj.close()  # not tar.close(), which would write the end-of-archive blocks
            self.tar = None
