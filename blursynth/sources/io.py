"""The one image reader every source uses: any file OpenCV decodes -> uint8 RGB, with clear errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MIN_SIDE = 16


class SourceError(Exception):
    """An input that cannot be used; the message is the reason recorded in the manifest."""


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB.

    16-bit images are scaled to 8 bits, gray is replicated, alpha is dropped (composited over black: a
    segment's own alpha comes from its mask), CMYK JPEGs are converted by the decoder. Raises SourceError with
    the reason for a missing, empty, undecodable or too small file.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise SourceError(f"{path.name}: empty file")
    if _truncated_jpeg(data):
        raise SourceError(f"{path.name}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise SourceError(f"{path.name}: not an image OpenCV can decode (corrupt or unsupported)")
    return to_rgb8(img, path.name)


def to_rgb8(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Decoded OpenCV array (BGR/BGRA/gray, uint8/uint16/float) -> uint8 (H, W, 3) RGB."""
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise SourceError(f"{name}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise SourceError(f"{name}: unsupported channel count {img.shape[2]}")
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise SourceError(f"{name}: too small ({w}x{h}, need at least {MIN_SIDE} px on each side)")
    return np.ascontiguousarray(img)


def _truncated_jpeg(data: np.ndarray) -> bool:
    """A JPEG whose end-of-image marker (FF D9) is missing: OpenCV would decode it half grey."""
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False
    tail = data[-4096:].tobytes()
    return b"\xff\xd9" not in tail
