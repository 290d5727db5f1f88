"""BasicSR's paired LMDB: OUT/blur.lmdb (lq) and OUT/sharp.lmdb (gt), each as BasicSR's
``basicsr/utils/lmdb_util.py`` writes one: an LMDB environment with ``data.mdb`` / ``lock.mdb`` plus
``meta_info.txt`` with one line ``{key}.png ({h},{w},{c}) {compress_level}`` per image; the key (ASCII, no dot) is
the image name without extension; the value is ``cv2.imencode('.png', bgr, [IMWRITE_PNG_COMPRESSION, 1])``. Both
environments hold the same keys, as BasicSR's ``paired_paths_from_lmdb`` requires; keys are the sample indices,
``{index:06d}``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..store.batch import INITIAL_MAP_BYTES, BatchWriter
from .base import EXPORT_PNG_LEVEL, Pair, export_png

BASICSR_COMPRESS_LEVEL = EXPORT_PNG_LEVEL  # meta_info.txt's compress_level
# Records (images) per LMDB write transaction, and its bytes: a transaction holds its pages in memory.
_BATCH = 5000
_BATCH_BYTES = 256 << 20
_MAP_BYTES = INITIAL_MAP_BYTES  # where the maps start; they grow as needed


def basicsr_key(index: int) -> str:
    return f"{index:06d}"


class BasicsrWriter:
    """Two LMDB environments (with lock files, as BasicSR's lmdb_util writes them) whose maps grow as needed.

    Args:
        out: the folder that gets blur.lmdb and sharp.lmdb.
        advice: what a full disk's error tells the user to do.
    """

    def __init__(self, out: Path, advice: str):
        self.paths = {"blur": out / "blur.lmdb", "sharp": out / "sharp.lmdb"}
        self.envs, self.meta = {}, {}
        for name, path in self.paths.items():
            self.envs[name] = BatchWriter(path, out.parent, map_size=_MAP_BYTES, advice=advice)
            self.meta[name] = open(path / "meta_info.txt", "w")
        self.count = 0

    def put(self, pair: Pair) -> None:
        key = basicsr_key(pair.index)
        for name, img in (("blur", pair.blur), ("sharp", pair.sharp)):
            self.envs[name].put(key.encode("ascii"), export_png(img))
            h, w, c = _shape(img)
            self.meta[name].write(f"{key}.png ({h},{w},{c}) {BASICSR_COMPRESS_LEVEL}\n")
        self.count += 1
        full = any(env.pending_bytes >= _BATCH_BYTES for env in self.envs.values())
        if full or self.count % _BATCH == 0:
            for env in self.envs.values():
                env.commit()

    def skip(self, index: int) -> None:
        pass

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


def _shape(img: np.ndarray) -> tuple[int, int, int]:
    return (img.shape[0], img.shape[1], 1) if img.ndim == 2 else img.shape
