"""Optical flow between two frames, both directions, with OpenCV.

Convention: `forward[y, x] = (dx, dy)` in pixels such that frame0(x, y) ~ frame1(x + dx, y + dy); `backward`
is the same from frame1 to frame0. DIS (Kroeger et al. 2016) is the default: on this kind of machine a
640x360 pair takes about 2 / 4 / 20 ms with presets ultrafast / fast / medium (REFERENCES.md, Video);
Farneback (42 ms) is there for comparison with Wieschollek et al.'s synthblur, with its parameters.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

METHODS = ("dis", "farneback")
# flow scale "auto" computes the flow on about this many pixels (640x360): full resolution up to that size, half
# at 1280x720, a third at 1920x1080 (benchmarks/results/video.json: the blur error this costs at 720p)
AUTO_PIXELS = 640 * 360
PRESETS = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}


def flow_pair(frame0: np.ndarray, frame1: np.ndarray, preset: str = "medium", method: str = "dis",
              scale: float = 1.0, full_size: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flow between two frames.

    Args:
        frame0, frame1: uint8 (H, W, 3) RGB or (H, W) gray, same size.
        preset: DIS preset, "ultrafast", "fast" or "medium" (method "dis" only).
        method: "dis" or "farneback".
        scale: in (0, 1]: compute the flow on frames resized by this factor (INTER_AREA), about 1 / scale^2
            cheaper; vectors are rescaled to full-resolution pixels.
        full_size: with scale < 1, upsample the fields back to (H, W) (bilinear); False returns them at the
            reduced size (in full-resolution pixels all the same).
    Returns:
        (forward, backward): float32 (H, W, 2), (dx, dy) in pixels; forward maps frame0 to frame1.
    """
    if frame0.shape != frame1.shape:
        raise ValueError(f"frames differ in shape: {frame0.shape} vs {frame1.shape}")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"flow scale must be in (0, 1], got {scale}")
    g0, g1 = _gray(frame0), _gray(frame1)
    if scale < 1.0:
        h, w = g0.shape
        small = (max(8, round(w * scale)), max(8, round(h * scale)))
        f01, f10 = flow_pair(cv2.resize(g0, small, interpolation=cv2.INTER_AREA),
                             cv2.resize(g1, small, interpolation=cv2.INTER_AREA), preset, method)
        return upsample_flow(f01, (w, h), full_size), upsample_flow(f10, (w, h), full_size)
    if method == "dis":
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r} (use one of {sorted(PRESETS)})")
        # a fresh instance per call: DIS keeps per-call state and is not safe to share across threads
        dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        return dis.calc(g0, g1, None), dis.calc(g1, g0, None)
    if method == "farneback":
        return _farneback(g0, g1), _farneback(g1, g0)
    raise ValueError(f"unknown flow method {method!r} (use one of {METHODS})")


def auto_scale(size: tuple[int, int], pixels: int = AUTO_PIXELS) -> float:
    """Flow scale for frames of `size` (width, height) under flow scale "auto": min(1, sqrt(pixels / (w h)))."""
    w, h = size
    return min(1.0, math.sqrt(pixels / float(w * h)))


def resolve_scale(scale: float | str, size: tuple[int, int]) -> float:
    """A flow scale in (0, 1] from a number or "auto" (`auto_scale` of size (width, height))."""
    if scale == "auto":
        return auto_scale(size)
    if isinstance(scale, str) or not 0.0 < scale <= 1.0:
        raise ValueError(f"flow scale must be in (0, 1] or 'auto', got {scale!r}")
    return float(scale)


def upsample_flow(flow: np.ndarray, size: tuple[int, int], resize: bool = True) -> np.ndarray:
    """A flow computed on a resized frame, in the pixels of a frame of `size` (width, height).

    Vectors are scaled per axis by the size ratio; with resize the field is also resampled to (height, width)
    bilinearly (pixel centres aligned, as cv2.resize does). Returns float32 (H, W, 2) or the input's grid.
    """
    h, w = flow.shape[:2]
    sx, sy = size[0] / w, size[1] / h
    out = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR) if resize else flow.copy()
    out[..., 0] *= np.float32(sx)
    out[..., 1] *= np.float32(sy)
    return out


def flow_to_color(flow: np.ndarray, max_px: float | None = None) -> np.ndarray:
    """Draw a flow field with the HSV colour wheel (hue = direction, brightness = magnitude), as OpenCV's
    optical-flow samples do; zero motion is black.

    Args:
        flow: float32 (H, W, 2), (dx, dy) in pixels.
        max_px: magnitude drawn at full brightness; None: the largest magnitude in this field, which makes
            frames of one video incomparable, so pass a fixed value when writing a flow video.
    Returns:
        uint8 (H, W, 3) RGB.
    """
    mag, ang = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32), angleInDegrees=True)
    top = float(mag.max()) if max_px is None else float(max_px)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (ang / 2).astype(np.uint8)  # OpenCV's 8-bit hue is degrees / 2
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag * (255.0 / top), 0, 255).astype(np.uint8) if top > 0 else 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _farneback(g0: np.ndarray, g1: np.ndarray) -> np.ndarray:
    # synthblur's parameters (levels 3, pyramid scale 0.5, window 15, 3 iterations, polyN 5, sigma 1.2)
    return cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
