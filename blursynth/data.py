"""torch Datasets over blursynth output directories.

``ShardDataset(DIR)[i]`` decodes one sample of the shards listed in ``DIR/manifest.json``; use
``collate`` as the DataLoader's ``collate_fn`` so that per-sample ``meta`` dicts, whose lists differ in
length between samples, stay a list of dicts instead of failing torch's default collation, and so that
samples dropped as corrupt (``on_corrupt="skip"``) leave the batch and are counted in it.
"""
from __future__ import annotations

import bisect
import logging
import operator
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from .seeding import stage_rng
from .store.codec import IMAGE_CODECS, decode_array, decode_image, decode_meta
from .store.errors import CorruptRecordError
from .store.manifest import Manifest
from .store.shard import ShardReader, is_complete

log = logging.getLogger(__name__)

ON_CORRUPT = ("error", "skip")
IMAGE_FIELDS = frozenset({"blur", "sharp"})
META_FIELD = "meta"
EVENTS_FIELD = "events"
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
        fields: fields to decode. ``blur`` / ``sharp`` are images in the manifest's codec; ``events`` is an
            event stream (``blursynth.events.decode_events``) returned as a voxel grid; any other field is an
            ``encode_array`` array. ``meta`` is always returned.
        seed: seed of the crop / augmentation randomness, drawn with ``seeding.stage_rng`` from
            ``(seed, i, epoch)``, so item ``i`` gets the same window for the same seed and epoch in any worker.
        event_bins: time bins per polarity of the ``events`` voxel grid.
        on_corrupt: what a record that fails its digest check (or a truncated shard) does, see
            ``ShardReader.get``: "error" raises ``CorruptRecordError`` naming the shard and the sample; "skip"
            drops the sample: ``ds[i]`` is None (``collate`` leaves it out of the batch and counts it), the
            drop is logged and counted in ``skipped`` (this process's count: DataLoader workers count in
            their own copies, and the batches carry theirs as ``batch["skipped"]``).
        min_crop_blur: with a crop, redraw a window whose mean |blur - sharp| (RGB in [0, 1]) is below this,
            up to ``CROP_TRIES`` draws in all (``crop_with_blur``): windows where nothing moved teach a
            deblurring model nothing. 0 (default): the first window, as without the option.

    A sample ``ds[i]`` is a dict (or None: a corrupt sample dropped with ``on_corrupt="skip"``):
        ``blur``, ``sharp``: float32 tensors (3, h, w) in [0, 1], RGB (gray images give (1, h, w)).
        ``events``: float32 (2 * event_bins, h, w) voxel grid (``blursynth.events.voxel_grid``) over the
            exposure, cropped and flipped with the images.
        other fields: arrays of shape (H, W) or (H, W, C) (same H, W as the images) are cropped and
            augmented with the images and returned as (C, h, w) tensors (C = 1 for 2-D), float16 widened
            to float32, other dtypes kept; any other array is returned untouched (a tensor where torch has
            the dtype, else a numpy array).
        ``meta``: dict decoded from the sample's ``meta`` field.
        ``index``: the sample index the generator gave this sample (the key in its shard), an int.
    For a run of video windows (``blursynth video --format lmdb``), ``blur`` and ``sharp`` are float32
    (W, 3, h, w): the window's W consecutive frames, all with the same crop and augmentation.

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
        event_bins: int = 5,
        on_corrupt: str = "error",
        min_crop_blur: float = 0.0,
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
        if event_bins < 1:
            raise ValueError(f"event_bins must be >= 1, got {event_bins}")
        self.event_bins = int(event_bins)
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(f"on_corrupt must be one of {', '.join(ON_CORRUPT)}, got {on_corrupt!r}")
        self.on_corrupt = on_corrupt
        if not min_crop_blur >= 0:
            raise ValueError(f"min_crop_blur must be >= 0, got {min_crop_blur}")
        self.min_crop_blur = float(min_crop_blur)
        self.skipped = 0
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

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        i = self._position(i)
        try:
            return self._sample(i)
        except CorruptRecordError as exc:
            if self.on_corrupt == "error":
                raise
            self.skipped += 1
            log.warning("dropping item %d: %s", i, exc)
            return None

    def _sample(self, i: int) -> dict[str, Any]:
        shard, index = self.locate(i)
        reader = self._readers[shard]
        meta = decode_meta(reader.get(index, META_FIELD))
        arrays = {}
        scales: dict[str, int] = {}
        # a video window (`blursynth video --format lmdb`) stores frame k of `blur` under meta["keys"]["blur"][k]
        windows = {name: keys for name, keys in (meta.get("keys") or {}).items() if name in self.fields}
        if windows and EVENTS_FIELD in self.fields:
            raise ValueError(f"{self.root}: voxel grids of video windows are not supported; read the raw stream "
                             "with blursynth.events.decode_events(ShardReader(...).get(index, 'events'))")
        for name in self.fields:
            if name in windows:
                for k, key in enumerate(windows[name]):
                    arrays[f"{name}/{k}"] = decode_image(reader.get(index, key), self.manifest.codec)
            elif name in IMAGE_FIELDS:
                arrays[name] = decode_image(reader.get(index, name), self.manifest.codec)
            elif name != EVENTS_FIELD:
                arrays[name] = decode_array(reader.get(index, name))
        if EVENTS_FIELD in self.fields:
            height, width = _frame_size(arrays, meta, self.manifest.image_size)
            arrays[EVENTS_FIELD], scales[EVENTS_FIELD] = events_voxels(reader.get(index, EVENTS_FIELD), meta,
                                                                       self.event_bins, height, width)
        rng = stage_rng(self.seed, i, f"crop/epoch-{self.epoch}")
        sample = crop_with_blur(arrays, rng, self.crop, self.augment, scales, self.min_crop_blur)
        for name, keys in windows.items():
            sample[name] = torch.stack([sample.pop(f"{name}/{k}") for k in range(len(keys))])
        sample["meta"] = meta
        sample["index"] = index
        return sample

    def _position(self, i: int) -> int:
        n = len(self)
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} samples")
        return i % n


class OnTheFly(Dataset):
    """Pairs generated inside the DataLoader workers, never stored: "unlimited" training data.

    Item ``i`` of epoch ``e`` is sample ``e * length + i`` of a run with this recipe, source and seed, made by
    ``generate.make_sample`` (so epoch 0 holds exactly the pairs ``blursynth generate --seed SEED`` would
    write for indices 0 .. length-1 at the same size), then cropped and augmented with randomness keyed by
    that sample index. Every item is a pure function of (recipe, source, seed, epoch, i): the same whatever
    the number of workers, their order, or which worker makes it. The source is opened lazily in each process.

    Args:
        recipe: a ``Recipe`` or a recipe name / path for ``recipe.load_recipe``.
        source: a source spec ("builtin", "folder:DIR", ...) or an opened ``Source``.
        length: items per epoch.
        crop, augment: as ``ShardDataset``.
        seed: global seed of the samples.
        size: (width, height) to render at instead of the recipe's size (smaller renders are faster).
        blur_map: also return the blur map (float32 (3, h, w): u_x, u_y, magnitude in px), turned with the
            image like ``ShardDataset``'s.

    A sample is a dict like ``ShardDataset``'s: ``blur``, ``sharp`` float32 (3, h, w) in [0, 1], optional
    ``blur_map``, ``meta`` and ``index`` (the generator's sample index). A source that has to skip an input
    (``Skip``) is retried with the sample index moved by 2^40 (up to 8 times), deterministically.

    Call ``set_epoch(e)`` before iterating a DataLoader over epoch ``e`` (workers are created per epoch unless
    ``persistent_workers=True``).
    """

    MAX_ATTEMPTS = 8
    _RETRY_STRIDE = 2**40
    # numba's OpenMP pool does not survive fork(): a worker forked from a process that has rendered would abort.
    # The training loop passes this to its DataLoader; pass it to yours (multiprocessing_context=...).
    multiprocessing_context = "spawn"

    def __init__(self, recipe, source="builtin", length: int = 1000, crop: int | tuple[int, int] | None = None,
                 augment: bool = False, seed: int = 0, size: tuple[int, int] | None = None, blur_map: bool = False):
        import dataclasses

        from .recipe import Recipe, load_recipe

        recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        if size is not None:
            recipe = dataclasses.replace(recipe, size=(int(size[0]), int(size[1]))).validate()
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.recipe = recipe
        self.source_spec = source if isinstance(source, str) else None
        self._source = None if isinstance(source, str) else source
        if self.source_spec is not None:
            from .sources import parse_spec

            parse_spec(self.source_spec)
        self.length = int(length)
        self.crop = _crop_size(crop)
        if self.crop is not None and (self.crop[0] > recipe.size[1] or self.crop[1] > recipe.size[0]):
            raise ValueError(f"crop {self.crop[0]}x{self.crop[1]} (h x w) is larger than the "
                             f"{recipe.size[1]}x{recipe.size[0]} samples")
        self.augment = bool(augment)
        self.seed = int(seed)
        self.blur_map = bool(blur_map)
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def sample_index(self, i: int) -> int:
        """The generator's sample index of item ``i`` in the current epoch."""
        i = operator.index(i)
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for a dataset of {self.length} samples")
        return self.epoch * self.length + i % self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        from .generate import Skip, make_sample

        index = self.sample_index(i)
        source = self._get_source()
        reasons = []
        for attempt in range(self.MAX_ATTEMPTS):
            result = make_sample(self.recipe, source, self.seed, index + attempt * self._RETRY_STRIDE)
            if not isinstance(result, Skip):
                break
            reasons.append(f"{result.source_id}: {result.reason}")
        else:
            raise RuntimeError(f"sample {index}: the source skipped {self.MAX_ATTEMPTS} inputs in a row "
                               f"({'; '.join(reasons[:3])})")
        arrays = {"blur": result.blur, "sharp": result.sharp}
        if self.blur_map:
            arrays["blur_map"] = result.blur_map.astype(np.float32)
        sample = crop_and_augment(arrays, stage_rng(self.seed, result.index, "crop"), self.crop, self.augment)
        sample["meta"] = result.meta
        sample["index"] = result.index
        return sample

    def _get_source(self):
        if self._source is None:
            from .sources import open_source

            self._source = open_source(self.source_spec, self.recipe.size)
        return self._source

    def __getstate__(self):
        state = self.__dict__.copy()
        if self.source_spec is not None:
            state["_source"] = None  # each worker opens its own (segmentation caches stay per process)
        return state


CROP_TRIES = 8  # draws of crop_with_blur before it keeps the last window


def crop_with_blur(arrays: dict[str, np.ndarray], rng: np.random.Generator, crop: tuple[int, int] | None,
                   augment: bool, scales: dict[str, int] | None = None, min_blur: float = 0.0) -> dict[str, Any]:
    """``crop_and_augment``, redrawn from the same ``rng`` while the window's mean |blur - sharp| is below
    ``min_blur`` (at most ``CROP_TRIES`` draws; the last is kept). ``min_blur`` 0 or no crop: one draw, exactly
    ``crop_and_augment``."""
    sample = crop_and_augment(arrays, rng, crop, augment, scales)
    if min_blur <= 0 or crop is None or "blur" not in sample or "sharp" not in sample:
        return sample
    for _ in range(CROP_TRIES - 1):
        if float((sample["blur"] - sample["sharp"]).abs().mean()) >= min_blur:
            break
        sample = crop_and_augment(arrays, rng, crop, augment, scales)
    return sample


def crop_and_augment(arrays: dict[str, np.ndarray], rng: np.random.Generator, crop: tuple[int, int] | None,
                     augment: bool, scales: dict[str, int] | None = None) -> dict[str, Any]:
    """One random window and one flip/transpose, drawn once from ``rng``, applied to every field alike.

    Args:
        arrays: field -> array. ``blur`` / ``sharp`` are uint8 (H, W[, 3]) images; other arrays of shape
            (H, W) or (H, W, C) with the images' H, W are spatial and transformed too (channels (0, 1) of
            ``VECTOR_FIELDS`` are (x, y) vectors and turn with the image); anything else is passed through.
        rng: draws (y0, x0) then (hflip, vflip, transpose).
        crop: (h, w) or None for the full frame.
        augment: draw the flips / transpose (transpose only for square outputs).
        scales: field -> s for spatial fields stored at 1/s of the frame size ((H // s, W // s[, C]), e.g.
            downscaled events); the window's origin and size are then multiples of the largest s, so every
            field sees exactly the same region.
    Returns:
        field -> tensor: images float32 (C, h, w) in [0, 1]; spatial arrays (C, h / s, w / s), float16 widened
        to float32; others as ``torch.from_numpy`` allows (numpy arrays where torch has no dtype).
    """
    scales = scales or {}
    ref = next((arrays[f] for f in arrays if _is_image(f)), next(iter(arrays.values())))
    height, width = ref.shape[:2]
    spatial = {f: scales.get(f, 1) for f, a in arrays.items()
               if a.ndim in (2, 3) and a.shape[:2] == (height // scales.get(f, 1), width // scales.get(f, 1))}
    step = max(spatial.values(), default=1)
    if step > 1:
        if crop is not None and (crop[0] % step or crop[1] % step):
            raise ValueError(f"crop {crop[0]}x{crop[1]} must be a multiple of {step} (fields stored at 1/{step} size)")
        cy, cx, h, w = _draw_crop(rng, height // step, width // step,
                                  None if crop is None else (crop[0] // step, crop[1] // step))
        y0, x0, h, w = cy * step, cx * step, h * step, w * step
    else:
        y0, x0, h, w = _draw_crop(rng, height, width, crop)
    hflip, vflip, transpose = _draw_augment(rng, h, w) if augment else (False, False, False)
    out: dict[str, Any] = {}
    for f, a in arrays.items():
        if f in spatial:
            s = spatial[f]
            a = _apply(a[y0 // s : (y0 + h) // s, x0 // s : (x0 + w) // s], hflip, vflip, transpose,
                       VECTOR_FIELDS.get(f))
            out[f] = _image_tensor(a) if _is_image(f) else _array_tensor(a)
        else:
            out[f] = _maybe_tensor(a)
    return out


def _is_image(field: str) -> bool:
    """An image field: ``blur``, ``sharp``, or frame k of a video window (``blur/k``, ``sharp/k``)."""
    return field.split("/", 1)[0] in IMAGE_FIELDS


def events_voxels(raw: bytes, meta: dict, bins: int, height: int, width: int) -> tuple[np.ndarray, int]:
    """Stored events -> (float32 (h, w, 2 * bins) voxel grid over the exposure, channels last; scale s).

    The sensor is ``meta["events"]`` width x height (the frame size / s, s = its ``scale``, default 1); the
    window is its ``exposure_us`` (else the span of the events themselves).
    """
    from .events import decode_events, voxel_grid

    events = decode_events(raw)
    info = meta.get("events") if isinstance(meta.get("events"), dict) else {}
    scale = int(info.get("scale", 1))
    ev_h, ev_w = int(info.get("height", height // scale)), int(info.get("width", width // scale))
    if "exposure_us" in info:
        t0, t1 = (int(v) for v in info["exposure_us"])
    elif len(events):
        t0, t1 = int(events["t"].min()), int(events["t"].max()) + 1
    else:
        t0, t1 = 0, 1
    grid = voxel_grid(events, bins, ev_h, ev_w, t0, t1)
    return np.ascontiguousarray(grid.transpose(1, 2, 0)), scale


def _frame_size(arrays: dict[str, np.ndarray], meta: dict, image_size) -> tuple[int, int]:
    for f in IMAGE_FIELDS:
        if f in arrays:
            return arrays[f].shape[:2]
    w, h = meta.get("size", image_size)
    return int(h), int(w)


def collate(batch: list[dict[str, Any] | None]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for ``ShardDataset``: tensors stacked, ``meta`` kept as a list of dicts,
    ``index`` as a LongTensor (B,), fields of varying shape (e.g. event arrays) as lists.

    None items (samples dropped as corrupt, ``on_corrupt="skip"``) are left out: the batch is that much
    smaller and ``batch["skipped"]`` says how many (the key is there only when some were); a batch of
    dropped samples only is ``{"meta": [], "skipped": B}``.
    """
    dropped = sum(s is None for s in batch)
    batch = [s for s in batch if s is not None]
    out: dict[str, Any] = {"meta": [s["meta"] for s in batch]}
    if dropped:
        out["skipped"] = dropped
    for key in batch[0] if batch else ():
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
