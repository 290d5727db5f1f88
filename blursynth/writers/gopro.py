"""GoPro's layout, for export and video alike: ROOT/{seq}/blur/{index:06d}.png and ROOT/{seq}/sharp/{index:06d}.png,
blur and sharp paired by file name, as the GoPro dataset and the MIMO-UNet / NAFNet folder loaders expect.

- export: ROOT is OUT/{split}, one sequence per shard of the run (``shard-00000``), PNGs as BasicSR's
  ``lmdb_util`` encodes them (``base.export_png``); the export renames its whole directory.
- video: ROOT is OUT, one sequence per clip (its name), PNGs at zlib level 1 (``store.codec.encode_png``),
  written in OUT/NAME.tmp/ and renamed when complete.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ..store.codec import encode_png
from .base import ClipTarget, ExportTarget, Pair, export_png


def for_export(out: Path, target: ExportTarget) -> GoproWriter:
    split = target.split
    if not split or "/" in split or split in (".", ".."):
        raise ValueError(f"bad split name {split!r}")
    return GoproWriter(out / split, export_png)


def for_clip(out: Path, target: ClipTarget) -> GoproWriter:
    writer = GoproWriter(out, encode_png, staged=True)
    writer.open(target.name)  # a clip whose every frame is filtered still gets its (empty) folders
    return writer


class GoproWriter:
    """Sequences ROOT/{seq}/{blur,sharp}/{index:06d}.png, each opened at its first pair (or by `open`).

    Args:
        root: the folder that holds the sequences.
        encode: uint8 RGB image -> PNG bytes.
        staged: write each sequence as ROOT/{seq}.tmp and rename it to ROOT/{seq} in `close` (replacing an older
            one), so that a killed run leaves only temporary names.
    """

    def __init__(self, root: str | os.PathLike, encode: Callable[[np.ndarray], bytes], staged: bool = False):
        self.root = Path(root)
        self.encode = encode
        self.staged = staged
        self.seqs: list[str] = []
        self.count = 0

    def open(self, seq: str) -> None:
        folder = self._folder(seq)
        if self.staged:
            shutil.rmtree(folder, ignore_errors=True)
        for sub in ("blur", "sharp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self.seqs.append(seq)

    def put(self, pair: Pair) -> None:
        if pair.seq not in self.seqs:
            self.open(pair.seq)
        name = f"{pair.index:06d}.png"
        folder = self._folder(pair.seq)
        for sub, img in (("blur", pair.blur), ("sharp", pair.sharp)):
            (folder / sub / name).write_bytes(self.encode(img))
        self.count += 1

    def skip(self, index: int) -> None:
        pass

    def close(self) -> dict:
        for seq in self.seqs if self.staged else ():
            final = self.root / seq
            if final.exists():
                shutil.rmtree(final)
            os.replace(self._folder(seq), final)
        return {"files": sorted(self.seqs), "frames": self.count}

    def abort(self) -> None:
        for seq in self.seqs if self.staged else ():
            shutil.rmtree(self._folder(seq), ignore_errors=True)

    def _folder(self, seq: str) -> Path:
        return self.root / (f"{seq}.tmp" if self.staged else seq)
