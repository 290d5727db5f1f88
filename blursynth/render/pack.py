"""Pack a scene's layers for the kernels: each layer cropped to the box where its alpha is non-zero,
premultiplied RGBA, all in one flat float32 buffer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scene import Scene


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
    parts, offsets, dims, origin = [], [], [], []
    offset = 0
    for layer in scene.layers:
        x0, y0, x1, y1 = layer.support_box()
        rgba = np.empty((y1 - y0 + 1, x1 - x0 + 1, 4), dtype=np.float32)
        a = layer.alpha[y0:y1 + 1, x0:x1 + 1]
        np.multiply(layer.rgb[y0:y1 + 1, x0:x1 + 1], a[..., None], out=rgba[..., :3])
        rgba[..., 3] = a
        parts.append(rgba.reshape(-1))
        offsets.append(offset)
        dims.append((x1 - x0 + 1, y1 - y0 + 1))
        origin.append((x0, y0))
        offset += rgba.size
    return PackedLayers(
        buf=np.concatenate(parts) if parts else np.zeros(0, np.float32),
        offsets=np.asarray(offsets, dtype=np.int64),
        dims=np.asarray(dims, dtype=np.int64).reshape(-1, 2),
        origin=np.asarray(origin, dtype=np.float64).reshape(-1, 2),
        extend=np.asarray([layer.extend for layer in scene.layers], dtype=np.bool_),
    )


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
