"""Frames for the event simulator: linear RGB to luminance, and area downsampling for events at 1/s the frame
resolution (Ev-REDS: 1280x640 frames, 320x160 events)."""
from __future__ import annotations

import numpy as np

REC709_LUMA = (0.2126, 0.7152, 0.0722)
"""Weights of linear R, G, B in the luminance Y an event pixel sees (Rec. 709 / sRGB primaries)."""


def to_gray(frames: np.ndarray) -> np.ndarray:
    """Linear luminance of linear RGB frames.

    Args:
        frames: float (..., H, W, 3) linear RGB, or (..., H, W) already gray (returned as float32).
    Returns:
        float32 (..., H, W), Y = 0.2126 R + 0.7152 G + 0.0722 B, in linear light (not clipped).
    """
    frames = np.asarray(frames)
    if frames.ndim >= 3 and frames.shape[-1] == 3:
        r, g, b = REC709_LUMA
        # two new arrays (y, and one term in the input's precision, reused): fresh pages cost a fault each, and
        # at 720p four of them were 15 MB of new memory per frame
        y = np.multiply(frames[..., 0].astype(np.float32, copy=False), r)
        term = np.multiply(frames[..., 1], g)
        y += term
        y += np.multiply(frames[..., 2], b, out=term)
        return y
    return frames.astype(np.float32, copy=False)


def downscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Area downsampling by an integer factor in linear intensity: each output pixel is the mean of an s x s
    block (accumulated in float64). Rows / columns beyond a multiple of s are dropped.

    Args:
        frames: float32 (N, H, W) linear intensity (or (H, W)).
        scale: s >= 1.
    Returns:
        float32 (N, H // s, W // s) (or (H // s, W // s)); the input itself when s == 1.
    """
    frames = np.asarray(frames, dtype=np.float32)
    grid = blocks(frames, scale)
    if scale == 1:
        return frames
    return grid.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def blocks(frames, scale: int):
    """The s x s blocks of (..., H, W) frames (a numpy array or a torch tensor) as a (..., H // s, s, W // s, s)
    view, rows / columns beyond a multiple of s dropped, after checking s (an integer >= 1 that fits the
    frames)."""
    if not (isinstance(scale, (int, np.integer)) and scale >= 1):
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    h, w = frames.shape[-2:]
    hs, ws = h // scale, w // scale
    if hs == 0 or ws == 0:
        raise ValueError(f"frames of {w}x{h} are smaller than the event scale {scale}")
    return frames[..., :hs * scale, :ws * scale].reshape(tuple(frames.shape[:-2]) + (hs, scale, ws, scale))
