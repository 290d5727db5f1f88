"""torch Datasets over blursynth output directories.

``ShardDataset(DIR)[i]`` decodes one sample of the shards listed in ``DIR/manifest.json``; use
``collate`` as the DataLoader's ``collate_fn`` so that per-sample ``meta`` dicts, whose lists differ in
length between samples, stay a list of dicts instead of failing torch's default collation.
"""
from __future__ import annotations

import bisect
import operator
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from .seeding import stage_rng
from .store.codec import IMAGE_CODECS, decode_array, decode_image, decode_meta
from .store.manifest import Manifest
from .store.shard import ShardReader, is_complete

IMAGE_FIELDS = frozenset({"blur", "sharp"})
META_FIELD = "meta"
# Fields holding per-pixel 2-D vectors in channels (x, y) of an (H, W, C) array, x right and y down; flips
# and transposes must act on those channels too, or the augmented map would point the wrong way.
VECTOR_FIELDS = {"blur_map": (0, 1), "flow": (0, 1)}


class ShardDataset(Dataset):
    """Paired samples from a blursynth output directory.

    The index space is the concatenation, in shard order, of the samples each shard of the manifest holds;
    skipped samples do not exist, and ``.tmp`` shards or shards not in the manifest are never read.

    Args:
        root: output directory holding ``manifest.json`` and the shards.
        crop: output size of a random crop, ``int`` for square or ``(height, width)``; None for full images.
        augment: random horizontal flip, vertical flip and transpose (which together give all eight
            90-degree rotations and flips); transpose only when the output is square, so batch shapes
            stay fixed.
        fields: fields to decode. ``blur`` / ``sharp`` are images in the manifest's codec; any other field
            is an ``encode_array`` array. ``meta`` is always returned.
        seed: seed of the crop / augmentation randomness, drawn with ``seeding.stage_rng`` from
            ``(seed, i, epoch)``, so item ``i`` gets the same window for the same seed and epoch in any worker.

    A sample ``ds[i]`` is a dict:
        ``blur``, ``sharp``: float32 tensors (3, h, w) in [0, 1], RGB (gray images give (1, h, w)).
        other fields: arrays of shape (H, W) or (H, W, C) (same H, W as the images) are cropped and
            augmented with the images and returned as (C, h, w) tensors (C = 1 for 2-D), float16 widened
            to float32, other dtypes kept; any other array is returned untouched (a tensor where torch has
            the dtype, else a numpy array).
        ``meta``: dict decoded from the sample's ``meta`` field.
        ``index``: the sample index the generator gave this sample (the key in its shard), an int.

    ``set_epoch(e)`` changes the randomness per epoch; with a DataLoader call it before iterating (workers
    are re-created per epoch unless ``persistent_workers=True``, in which case they keep the old epoch).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        crop: int | tuple[int, int] | None = None,
        augment: bool = False,
        fields: tuple[str, ...] = ("blur", "sharp"),
        seed: int = 0,
    ):
        self.root = Path(root)
        self.manifest = Manifest.load(self.root)
        if self.manifest.codec not in IMAGE_CODECS:
            raise ValueError(f"{self.root}: manifest codec {self.manifest.codec!r} is not one of {IMAGE_CODECS}")
        self.crop = _crop_size(crop)
        self.augment = bool(augment)
        self.fields = tuple(f for f in fields if f != META_FIELD)
        if not self.fields:
            raise ValueError("fields must name at least one field besides 'meta'")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.seed = int(seed)
        self.epoch = 0
        for info in self.manifest.shards:
            if not is_complete(self.root / info.name):
                raise FileNotFoundError(
                    f"{self.root}: manifest lists shard {info.name}, which is missing or incomplete"
                )
        # Readers open their LMDB environments on first access, i.e. inside each DataLoader worker.
        self._readers = [ShardReader(self.root / info.name) for info in self.manifest.shards]
        self._indices = [info.indices for info in self.manifest.shards]
        self._starts = np.cumsum([0] + [info.count for info in self.manifest.shards]).tolist()

    def __len__(self) -> int:
        return self._starts[-1]

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def locate(self, i: int) -> tuple[int, int]:
        """(shard position in the manifest, sample index) of dataset item ``i`` (negative counts from the end)."""
        i = self._position(i)
        shard = bisect.bisect_right(self._starts, i) - 1
        return shard, self._indices[shard][i - self._starts[shard]]

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = self._position(i)
        shard, index = self.locate(i)
        reader = self._readers[shard]
        arrays = {}
        for name in self.fields:
            raw = reader.get(index, name)
            arrays[name] = decode_image(raw, self.manifest.codec) if name in IMAGE_FIELDS else decode_array(raw)
        meta = decode_meta(reader.get(index, META_FIELD))

        ref = next((arrays[f] for f in self.fields if f in IMAGE_FIELDS), next(iter(arrays.values())))
        height, width = ref.shape[:2]
        spatial = [f for f, a in arrays.items() if a.ndim in (2, 3) and a.shape[:2] == (height, width)]
        rng = stage_rng(self.seed, i, f"crop/epoch-{self.epoch}")
        y0, x0, h, w = _draw_crop(rng, height, width, self.crop)
        hflip, vflip, transpose = _draw_augment(rng, h, w) if self.augment else (False, False, False)
        for f in spatial:
            arrays[f] = _apply(arrays[f][y0 : y0 + h, x0 : x0 + w], hflip, vflip, transpose, VECTOR_FIELDS.get(f))

        sample: dict[str, Any] = {}
        for f, a in arrays.items():
            if f in IMAGE_FIELDS:
                sample[f] = _image_tensor(a)
            elif f in spatial:
                sample[f] = _array_tensor(a)
            else:
                sample[f] = _maybe_tensor(a)
        sample["meta"] = meta
        sample["index"] = index
        return sample

    def _position(self, i: int) -> int:
        n = len(self)
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} samples")
        return i % n


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for ``ShardDataset``: tensors stacked, ``meta`` kept as a list of dicts,
    ``index`` as a LongTensor (B,), fields of varying shape (e.g. event arrays) as lists."""
    out: dict[str, Any] = {"meta": [s["meta"] for s in batch]}
    for key in batch[0]:
        if key == "meta":
            continue
        values = [s[key] for s in batch]
        if all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) == 1:
            out[key] = torch.stack(values)
        elif key == "index":
            out[key] = default_collate(values)
        else:
            out[key] = values
    return out


def _crop_size(crop) -> tuple[int, int] | None:
    if crop is None:
        return None
    h, w = (crop, crop) if isinstance(crop, (int, np.integer)) else tuple(crop)
    if h <= 0 or w <= 0:
        raise ValueError(f"crop must be positive, got {crop}")
    return int(h), int(w)


def _draw_crop(rng: np.random.Generator, height: int, width: int, crop) -> tuple[int, int, int, int]:
    if crop is None:
        return 0, 0, height, width
    h, w = crop
    if h > height or w > width:
        raise ValueError(f"crop {h}x{w} (h x w) is larger than the {height}x{width} images")
    return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w


def _draw_augment(rng: np.random.Generator, h: int, w: int) -> tuple[bool, bool, bool]:
    hflip, vflip, transpose = (bool(b) for b in rng.random(3) < 0.5)
    return hflip, vflip, transpose and h == w


def _apply(a: np.ndarray, hflip: bool, vflip: bool, transpose: bool, vector: tuple[int, int] | None) -> np.ndarray:
    """Flip / transpose an (H, W) or (H, W, C) array; for vector fields also map the (x, y) components."""
    if hflip:
        a = a[:, ::-1]
    if vflip:
        a = a[::-1]
    if transpose:
        a = a.swapaxes(0, 1)
    if vector is not None and a.ndim == 3 and (hflip or vflip or transpose):
        a = a.copy()
        cx, cy = vector
        if hflip:
            a[..., cx] = -a[..., cx]
        if vflip:
            a[..., cy] = -a[..., cy]
        if transpose:
            a[..., [cx, cy]] = a[..., [cy, cx]]
    return a


def _image_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W[, C]) -> float32 (C, H, W) in [0, 1]; the division is numpy's, exact to float32 rounding."""
    chw = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    out = np.empty(chw.shape, np.float32)
    np.divide(chw, np.float32(255), out=out, dtype=np.float32)
    return torch.from_numpy(out)


def _array_tensor(a: np.ndarray) -> torch.Tensor:
    chw = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    dtype = np.float32 if chw.dtype == np.float16 else chw.dtype
    return torch.from_numpy(np.ascontiguousarray(chw, dtype=dtype))


def _maybe_tensor(a: np.ndarray):
    try:
        return torch.from_numpy(np.ascontiguousarray(a))
    except TypeError:  # structured and other dtypes torch has no tensor type for
        return a
