"""Quality filters for video pairs (after Wieschollek et al.'s synthblur, which rejected crops that were too
dark, static, low-texture, or over 40 dB PSNR against the target).

Each measure is a small pure function of uint8 RGB frames; `check_sharp` and `check_blur` turn them into a
skip reason (a category from `CATEGORIES` followed by the measured value in parentheses) or None.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

CATEGORIES = ("scene cut", "too dark", "low texture", "static")


def brightness(img: np.ndarray) -> float:
    """Mean encoded value of a uint8 (H, W, 3) frame, in [0, 1]."""
    return float(img.mean()) / 255.0


def texture(img: np.ndarray) -> float:
    """Mean absolute gradient of a uint8 (H, W, 3) RGB frame's gray levels, in [0, 1] units per pixel: the mean
    of |g(x + 1, y) - g(x, y)| + |g(x, y + 1) - g(x, y)| (0 for a flat frame, about 0.05-0.15 for photos)."""
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.int16)
    dx = np.abs(np.diff(g, axis=1)).mean() if g.shape[1] > 1 else 0.0
    dy = np.abs(np.diff(g, axis=0)).mean() if g.shape[0] > 1 else 0.0
    return float(dx + dy) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of the same shape (inf when equal)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    # cv2.norm sums the squared differences of uint8 exactly (in float64), without float copies of the frames
    mse = cv2.norm(np.ascontiguousarray(a), np.ascontiguousarray(b), cv2.NORM_L2SQR) / a.size
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def check_sharp(sharp_u8: np.ndarray, min_brightness: float, min_texture: float) -> str | None:
    """'too dark (...)' or 'low texture (...)' for a sharp frame below the thresholds (0 disables), else None."""
    if min_brightness > 0:
        b = brightness(sharp_u8)
        if b < min_brightness:
            return f"too dark (mean {b:.3f} < {min_brightness:g})"
    if min_texture > 0:
        t = texture(sharp_u8)
        if t < min_texture:
            return f"low texture (gradient {t:.4f} < {min_texture:g})"
    return None


def check_blur(blur_u8: np.ndarray, sharp_u8: np.ndarray, max_psnr_db: float | None) -> str | None:
    """'static (...)' when the noise-free blurred frame is within max_psnr_db of sharp (None disables)."""
    if max_psnr_db is None:
        return None
    p = psnr(blur_u8, sharp_u8)
    return f"static (PSNR {p:.1f} dB >= {max_psnr_db:g})" if p >= max_psnr_db else None


def category(reason: str) -> str:
    """The filter category a skip reason belongs to ('scene cut', 'too dark', ...), or the reason itself."""
    return next((c for c in CATEGORIES if reason.startswith(c)), reason)
