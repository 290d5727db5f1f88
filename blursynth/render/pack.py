"""Pack a scene's layers for the kernels: each layer cropped to the box where its alpha is non-zero,
premultiplied RGBA, all in one flat float32 buffer."""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..layers import Scene


@dataclass
class PackedLayers:
    """Attributes:
        buf: float32 (sum of h_l * w_l * 4,) premultiplied linear RGBA, row-major per layer crop.
        offsets: int64 (L,) start of each layer in buf.
        dims: int64 (L, 2) crop width, height.
        origin: float64 (L, 2) crop origin (x0, y0) in layer coordinates.
        extend: bool (L,) sample outside the crop by clamping (opaque backgrounds) instead of transparent.
    """

    buf: np.ndarray
    offsets: np.ndarray
    dims: np.ndarray
    origin: np.ndarray
    extend: np.ndarray


def pack_layers(scene: Scene) -> PackedLayers:
    boxes = [layer.support_box() for layer in scene.layers]
    sizes = [(y1 - y0 + 1) * (x1 - x0 + 1) * 4 for x0, y0, x1, y1 in boxes]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
    buf = np.empty(int(sum(sizes)), dtype=np.float32)
    for layer, (x0, y0, x1, y1), off in zip(scene.layers, boxes, offsets):
        _premultiply(layer.rgb, layer.alpha, y0, y1, x0, x1, buf, off)
    return PackedLayers(
        buf=buf,
        offsets=offsets,
        dims=np.asarray([(x1 - x0 + 1, y1 - y0 + 1) for x0, y0, x1, y1 in boxes], dtype=np.int64).reshape(-1, 2),
        origin=np.asarray([(x0, y0) for x0, y0, _, _ in boxes], dtype=np.float64).reshape(-1, 2),
        extend=np.asarray([layer.extend for layer in scene.layers], dtype=np.bool_),
    )


@numba.njit(parallel=True, cache=True)
def _premultiply(rgb, alpha, y0, y1, x0, x1, buf, off):
    w = x1 - x0 + 1
    for y in numba.prange(y0, y1 + 1):
        i = off + (y - y0) * w * 4
        for x in range(x0, x1 + 1):
            a = alpha[y, x]
            buf[i] = rgb[y, x, 0] * a
            buf[i + 1] = rgb[y, x, 1] * a
            buf[i + 2] = rgb[y, x, 2] * a
            buf[i + 3] = a
            i += 4


def image_to_crop(H: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Inverse homographies mapping image pixels to crop pixels.

    Args:
        H: (..., 3, 3) layer-to-image homographies.
        origin: (2,) crop origin in layer coordinates.
    """
    shift = np.array([[1.0, 0.0, -origin[0]], [0.0, 1.0, -origin[1]], [0.0, 0.0, 1.0]])
    return shift @ np.linalg.inv(H)


def crop_boxes(H: np.ndarray, origin: np.ndarray, dims: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer image-space boxes (x0, y0, x1, y1), inclusive, that contain a crop's footprint under each H.

    Args:
        H: (N, 3, 3) layer-to-image homographies.
    Returns:
        int64 (N, 4); an empty box (x0 > x1) where the footprint misses the image.
    """
    x0, y0 = origin[0] - 1.0, origin[1] - 1.0
    x1, y1 = origin[0] + dims[0], origin[1] + dims[1]
    corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]])
    q = np.einsum("nij,cj->nci", H, corners)
    w = q[..., 2]
    boxes = np.empty((len(H), 4), dtype=np.int64)
    # a corner behind the camera (w <= 0) makes the projected footprint unbounded: keep the whole image
    bad = np.any(w <= 1e-9, axis=1)
    w = np.where(w <= 1e-9, 1.0, w)
    px, py = q[..., 0] / w, q[..., 1] / w
    boxes[:, 0] = np.clip(np.floor(px.min(axis=1)) - 1, -1, width)
    boxes[:, 1] = np.clip(np.floor(py.min(axis=1)) - 1, -1, height)
    boxes[:, 2] = np.clip(np.ceil(px.max(axis=1)) + 1, -1, width)
    boxes[:, 3] = np.clip(np.ceil(py.max(axis=1)) + 1, -1, height)
    boxes[bad] = (0, 0, width - 1, height - 1)
    return boxes


def pad_transparent(packed: PackedLayers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The packed crops of the non-extending layers with a one-pixel transparent (all-zero) border, so a bilinear
    sample clamped to the padded crop is exactly the transparent-outside sample of the crop itself (neighbours
    outside the crop read zeros; a coordinate beyond the border clamps onto it and reads zeros with weight 1).
    Extending layers clamp to their own border and are not copied (a background is a full frame): their offset
    is -1 and their dims are their crop's; read them from packed.buf.

    Returns:
        (buf float32 (sum of padded h_l * w_l * 4 over non-extending layers,), offsets int64 (L,), dims int64
        (L, 2) padded width, height). Crop coordinates (u, v) of `packed` are (u + 1, v + 1) in a padded crop.
    """
    pad = np.where(packed.extend, 0, 2).astype(np.int64)
    dims = packed.dims + pad[:, None]
    sizes = np.where(packed.extend, 0, dims[:, 0] * dims[:, 1] * 4)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(sizes) else np.zeros(0, np.int64)
    offsets[packed.extend] = -1
    buf = np.zeros(int(sizes.sum()), dtype=np.float32)
    for l in np.flatnonzero(~packed.extend):
        w, h = packed.dims[l]
        src = packed.buf[packed.offsets[l]:packed.offsets[l] + w * h * 4].reshape(h, w * 4)
        dst = buf[offsets[l]:offsets[l] + sizes[l]].reshape(dims[l, 1], dims[l, 0] * 4)
        dst[1:1 + h, 4:4 * (1 + w)] = src
    return buf, offsets, dims
