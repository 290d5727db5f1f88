"""WebDataset tars: OUT/{prefix}-{n:06d}.tar (plain tar, stdlib ``tarfile``), each sample's members contiguous and
named ``{key}.blur.png``, ``{key}.sharp.png``, ``{key}.json`` (the meta), plus ``{key}.{name}.npy`` for each extra
array (``blur_map`` when the run stored blur maps); key ``{index:09d}``. Member headers are fixed (mtime 0, uid/gid 0,
mode 0644) so the same run exports to the same bytes.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from .base import Pair, export_png


def webdataset_key(index: int) -> str:
    return f"{index:09d}"


class WebdatasetWriter:
    """Tars of `samples_per_tar` samples each, named `{prefix}-{n:06d}.tar`, in `out`."""

    def __init__(self, out: Path, samples_per_tar: int, prefix: str):
        self.out, self.per_tar, self.prefix = out, samples_per_tar, prefix
        self.tar: tarfile.TarFile | None = None
        self.in_tar = 0
        self.tars: list[str] = []

    def put(self, pair: Pair) -> None:
        if self.tar is None or self.in_tar >= self.per_tar:
            self._next_tar()
        key = webdataset_key(pair.index)
        members = [(f"{key}.blur.png", export_png(pair.blur)), (f"{key}.sharp.png", export_png(pair.sharp)),
                   (f"{key}.json", json.dumps(pair.meta, sort_keys=True).encode())]
        for name, arr in pair.extra.items():
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

    def skip(self, index: int) -> None:
        pass

    def close(self) -> dict:
        if self.tar is not None:
            self.tar.close()
        return {"shards": self.tars}

    def abort(self) -> None:
        if self.tar is not None:
            self.tar.fileobj.close()  # not tar.close(), which would write the end-of-archive blocks
            self.tar = None

    def _next_tar(self) -> None:
        if self.tar is not None:
            self.tar.close()
        name = f"{self.prefix}-{len(self.tars):06d}.tar"
        self.tar = tarfile.open(self.out / name, "w", format=tarfile.USTAR_FORMAT)
        self.tars.append(name)
        self.in_tar = 0

