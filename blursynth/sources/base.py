"""What every source yields, and the random view (scale, crop, flip) and mask extraction they share."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..segment import graph_segments
from .io import SourceError

# segmenting runs on a copy at most this large (longest side), labels are scaled back with the view
SEGMENT_MAX_SIDE = 640
# a segment becomes an instance mask if it covers this fraction of the view
MASK_AREA = (0.001, 0.4)
MAX_MASKS = 32
# and if it fills at least this fraction of its bounding box: a thin sprawling region is not an object
MIN_FILL = 0.3


@dataclass
class SourceItem:
    """A sharp photo and its instance masks, at the run's output size.

    Attributes:
        image: uint8 (H, W, 3) encoded RGB.
        masks: bool (K, H, W) instance masks (K may be 0).
        labels: K class names.
        source_id: where the photo came from (file name, dataset id, built-in photo name).
        view: the random view applied (scale, crop offset, flip), for the meta.
        lights: optional bool (H, W) mask of light sources (lamps, street lights...) whose radiance is boosted
            so they saturate after blur; None where the source knows none.
    """

    image: np.ndarray
    masks: np.ndarray
    labels: list[str]
    source_id: str
    view: dict
    lights: np.ndarray | None = None


class Source:
    """Base class: `get(index, rng)` -> SourceItem; raise SourceError for an unusable input."""

    size: tuple[int, int]

    def get(self, index: int, rng: np.random.Generator) -> SourceItem:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def segment_labels(image: np.ndarray, segmenter=None) -> np.ndarray:
    """Label map (int32, same size as `image`) from `segmenter` (a callable image -> label map; default the
    graph segmenter), computed on a copy of bounded size."""
    segment = graph_segments if segmenter is None else segmenter
    h, w = image.shape[:2]
    scale = min(1.0, SEGMENT_MAX_SIDE / max(h, w))
    if scale < 1.0:
        small = cv2.resize(image, (max(int(w * scale), 1), max(int(h * scale), 1)), interpolation=cv2.INTER_AREA)
        labels = segment(small)
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return segment(image)


def random_view(image: np.ndarray, labels: np.ndarray | None, size: tuple[int, int],
                rng: np.random.Generator, max_zoom: float = 1.5) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Scale (covering the output, then up to `max_zoom` more), crop and flip a photo and its label map.

    Returns:
        (image uint8 (H, W, 3), labels int32 (H, W) or None, view dict for the meta).
    """
    out_w, out_h = size
    h, w = image.shape[:2]
    u = rng.random(4)
    scale = max(out_w / w, out_h / h) * (1.0 + (max_zoom - 1.0) * u[0])
    off_x = u[1] * max(w * scale - out_w, 0.0)
    off_y = u[2] * max(h * scale - out_h, 0.0)
    flip = bool(u[3] < 0.5)
    # output pixel (x, y) <- photo pixel ((x + off) / scale) with optional horizontal flip
    sx = -scale if flip else scale
    tx = (w * scale - 1.0 - off_x) if flip else -off_x
    A = np.array([[sx, 0.0, tx], [0.0, scale, -off_y]])
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, A, (out_w, out_h), flags=interp, borderMode=cv2.BORDER_REFLECT_101)
    out_labels = None
    if labels is not None:
        out_labels = cv2.warpAffine(labels.astype(np.int32, copy=False), A, (out_w, out_h), flags=cv2.INTER_NEAREST,
                                    borderMode=cv2.BORDER_REFLECT_101)
    view = {"scale": float(scale), "offset": [float(off_x), float(off_y)], "flip": flip}
    return out, out_labels, view


def masks_from_labels(labels: np.ndarray, area=MASK_AREA, max_masks: int = MAX_MASKS, min_fill: float = MIN_FILL,
                      background: int | None = None) -> np.ndarray:
    """Instance masks for the compact segments whose area fraction lies in `area`, largest first.

    Args:
        labels: int32 (H, W) label map.
        min_fill: least area / bounding-box area of a kept segment.
        background: a label that is not an object (SAM's 0: no mask there).
    Returns:
        bool (K, H, W), K <= max_masks.
    """
    h, w = labels.shape
    counts = np.bincount(labels.ravel())
    frac = counts / float(h * w)
    keep = np.flatnonzero((frac >= area[0]) & (frac <= area[1]))
    if background is not None:
        keep = keep[keep != background]
    keep = keep[np.argsort(-counts[keep], kind="stable")]
    # scipy.ndimage loads here, not with the module: importing it costs ~0.5 s (numpy.f2py included), which every
    # command paid at start-up because the command group reads the sources table
    from scipy import ndimage

    boxes = ndimage.find_objects(labels + 1)  # slices of label l at index l
    chosen = []
    for label in keep:
        ys, xs = boxes[label]
        if counts[label] >= min_fill * (ys.stop - ys.start) * (xs.stop - xs.start):
            chosen.append(label)
            if len(chosen) == max_masks:
                break
    masks = np.zeros((len(chosen), h, w), dtype=bool)
    for mask, label in zip(masks, chosen):
        ys, xs = boxes[label]
        mask[ys, xs] = labels[ys, xs] == label
    return masks


def random_view_with_index(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                           max_zoom: float = 1.5) -> tuple[np.ndarray, np.ndarray, dict]:
    """`base.random_view` of a photo, plus where each output pixel was sampled from.

    The index map is the view applied (nearest neighbour, as `random_view` does for label maps) to the flat
    pixel index of the photo, so ``mask.reshape(-1)[index]`` puts any number of overlapping masks, class or
    instance maps into the view exactly as `random_view` would, without restating its geometry.

    Args:
        photo: uint8 (h, w, 3) RGB.
        size: (width, height) of the view.
    Returns:
        (image uint8 (H, W, 3), index int32 (H, W) into ``photo[..., 0].reshape(-1)``, view dict for the meta).
    """
    h, w = photo.shape[:2]
    if h * w > np.iinfo(np.int32).max:
        raise SourceError(f"image too large for a view ({w}x{h})")
    flat = np.arange(h * w, dtype=np.int32).reshape(h, w)
    image, index, view = random_view(photo, flat, size, rng, max_zoom)
    return image, index, view


def masks_in_view(masks: list[np.ndarray], labels: list[str], index: np.ndarray,
                  max_masks: int = MAX_MASKS) -> tuple[np.ndarray, list[str]]:
    """Photo-sized masks -> view-sized masks, dropping those not in the view, largest `max_masks` first.

    Args:
        masks: bool/uint8 (h, w) masks of the photo.
        labels: their class names.
        index: int32 (H, W) from `random_view_with_index`.
    Returns:
        (bool (K, H, W), K labels).
    """
    out_h, out_w = index.shape
    flat = index.reshape(-1)
    viewed = [m.reshape(-1)[flat].reshape(out_h, out_w).astype(bool) for m in masks]
    areas = np.array([np.count_nonzero(m) for m in viewed], dtype=np.int64)
    order = [int(i) for i in np.argsort(-areas, kind="stable") if areas[i] > 0][:max_masks]
    if not order:
        return np.zeros((0, out_h, out_w), dtype=bool), []
    return np.stack([viewed[i] for i in order]), [labels[i] for i in order]
