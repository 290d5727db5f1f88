"""Latent frames between two real frames by flow interpolation, in linear light.

For a time tau in [0, 1] between frame0 (tau = 0) and frame1 (tau = 1), the flows from the latent frame back
to the two real frames are approximated from the real flows as in Super SloMo (Jiang et al. 2018), assuming
the motion is linear in time and locally smooth:

    F_t0 = -tau (1 - tau) F_01 + tau^2 F_10
    F_t1 = (1 - tau)^2 F_01 - tau (1 - tau) F_10

Both frames are backward-warped (bilinear, border replicated) to the latent time and blended with weights
(1 - tau) V_t0 and tau V_t1, where V is a visibility: 1 where a real pixel passes the forward-backward
consistency check (Sundaram et al. 2010) and 0 where it is occluded in the other frame, sampled at the same
source location as the colour. Where both weights vanish the blend falls back to the plain temporal weights.

Everything is done on linear radiance (`camera.Response.to_linear`), never on encoded values, so that the
exposure integral that follows is physically right. `latent_frame` is the readable numpy reference; `blur.py`
fuses the same arithmetic with the accumulation in a numba kernel. `visibility` runs a numba kernel (its numpy
reference is in tests/test_video.py) because it is computed for every frame pair.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

from ..camera import Response

# forward-backward consistency (Sundaram et al. 2010): |F01 + F10(x + F01)|^2 <= A1 (|F01|^2 + |F10|^2) + A2
CONSISTENCY_A1 = 0.01
CONSISTENCY_A2 = 0.5
# below this summed weight a pixel is seen in neither frame and is blended by time alone
_MIN_WEIGHT = 1e-6


def linearize(frame: np.ndarray, response: Response = Response()) -> np.ndarray:
    """uint8 (H, W, 3) encoded RGB -> float32 (H, W, 3) linear radiance in [0, 1] through `response`."""
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    return linear_lut(response)[frame]


@lru_cache(maxsize=16)
def linear_lut(response: Response) -> np.ndarray:
    """float32 (256,) linear value of each 8-bit code (read-only, shared)."""
    lut = response.lut_to_linear()
    lut.flags.writeable = False
    return lut


def visibility(f01: np.ndarray, f10: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which pixels of each frame are seen in the other, from forward-backward consistency.

    Args:
        f01, f10: float32 (H, W, 2) forward and backward flow in pixels (see `flow.flow_pair`).
    Returns:
        (v0, v1): float32 (H, W) in {0, 1}: v0 = 1 where frame0's pixel is visible in frame1, v1 the same for
        frame1 in frame0.
    """
    out = []
    for fa, fb in ((f01, f10), (f10, f01)):
        v = np.empty(fa.shape[:2], np.float32)
        _consistent(np.ascontiguousarray(fa, np.float32), np.ascontiguousarray(fb, np.float32),
                    CONSISTENCY_A1, CONSISTENCY_A2, v)
        out.append(v)
    return out[0], out[1]


def latent_frame(lin0: np.ndarray, lin1: np.ndarray, f01: np.ndarray, f10: np.ndarray, tau: float,
                 vis: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The latent frame at time tau between two real frames.

    Args:
        lin0, lin1: float32 (H, W, C) linear frames at tau = 0 and tau = 1.
        f01, f10: float32 (H, W, 2) flows frame0 -> frame1 and frame1 -> frame0, in pixels.
        tau: time in [0, 1], in units of the frame interval.
        vis: (v0, v1) from `visibility`, computed here when None.
    Returns:
        float32 (H, W, C) linear frame; lin0 itself at tau = 0 and lin1 at tau = 1 (copies).
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    if tau == 0.0:
        return lin0.astype(np.float32, copy=True)
    if tau == 1.0:
        return lin1.astype(np.float32, copy=True)
    v0, v1 = visibility(f01, f10) if vis is None else vis
    ft0 = np.float32(-tau * (1 - tau)) * f01 + np.float32(tau * tau) * f10
    ft1 = np.float32((1 - tau) ** 2) * f01 + np.float32(-tau * (1 - tau)) * f10
    w0 = np.float32(1 - tau) * bilinear(v0, ft0)
    w1 = np.float32(tau) * bilinear(v1, ft1)
    none = (w0 + w1) < _MIN_WEIGHT
    w0 = np.where(none, np.float32(1 - tau), w0)
    w1 = np.where(none, np.float32(tau), w1)
    out = (w0[..., None] * bilinear(lin0, ft0) + w1[..., None] * bilinear(lin1, ft1)) / (w0 + w1)[..., None]
    return out.astype(np.float32)


def latent_count(flows, max_step_px: float = 1.0, cap: int = 64, percentile: float = 99.9) -> int:
    """Latent steps M per frame interval so that consecutive latent frames move at most about max_step_px.

    M = ceil(d / max_step_px) for d the largest displacement over the given flows, taken as a high percentile
    of the flow magnitude so that a few wild vectors at the borders do not drive M to the cap. Clipped to
    [1, cap].

    Args:
        flows: iterable of float32 (H, W, 2) flows in pixels over one frame interval, or of (flow, visible)
            pairs to count only the visible pixels (see `max_displacement`).
        max_step_px: largest motion between consecutive latent frames, in pixels.
        cap: largest M.
        percentile: which percentile of |flow| counts as the largest displacement.
    Returns:
        M, an int in [1, cap].
    """
    if not max_step_px > 0:
        raise ValueError(f"max_step_px must be > 0, got {max_step_px}")
    d = max((max_displacement(f, percentile, v) for f, v in _with_masks(flows)), default=0.0)
    return int(min(max(math.ceil(d / max_step_px - 1e-6), 1), cap))


def max_displacement(flow: np.ndarray, percentile: float = 99.9, visible: np.ndarray | None = None) -> float:
    """The given percentile of the flow magnitude, in pixels.

    flow: float32 (H, W, 2); visible: optional float32 or bool (H, W) mask (e.g. from `visibility`) of the
    pixels to count: flow at occluded or out-of-frame pixels is a guess and should not set the step count.
    """
    mag = np.hypot(flow[..., 0], flow[..., 1])
    if visible is not None:
        mag = mag[np.asarray(visible) > 0]
    return float(np.percentile(mag, percentile)) if mag.size else 0.0


def _with_masks(flows):
    for f in flows:
        yield (f[0], f[1]) if isinstance(f, tuple) else (f, None)


def bilinear(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out[y, x] = img at (x + flow[y, x, 0], y + flow[y, x, 1]), bilinear, border replicated.

    img: float32 (H, W) or (H, W, C); flow: float32 (H, W, 2) in pixels. Returns float32 of img's shape. The
    float arithmetic here is what the numba kernel in blur.py repeats (cv2.remap quantizes the weights to
    1/32 pixel, so it would not serve as a reference).
    """
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px = np.clip(xs + flow[..., 0], 0, w - 1)
    py = np.clip(ys + flow[..., 1], 0, h - 1)
    x0 = np.minimum(np.floor(px).astype(np.int64), w - 2) if w > 1 else np.zeros(px.shape, np.int64)
    y0 = np.minimum(np.floor(py).astype(np.int64), h - 2) if h > 1 else np.zeros(py.shape, np.int64)
    ax = px - x0
    ay = py - y0
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    if img.ndim == 3:
        ax, ay = ax[..., None], ay[..., None]
    top = img[y0, x0] * (1 - ax) + img[y0, x1] * ax
    bottom = img[y1, x0] * (1 - ax) + img[y1, x1] * ax
    return (top * (1 - ay) + bottom * ay).astype(np.float32)


@numba.njit(parallel=True, cache=True, nogil=True)
def _consistent(fa, fb, a1, a2, out):
    # tests/test_video.py holds the numpy reference
    h, w = out.shape
    for y in numba.prange(h):
        for x in range(w):
            dx = fa[y, x, 0]
            dy = fa[y, x, 1]
            tx = x + dx
            ty = y + dy
            # a pixel whose flow leaves the image is not seen in the other frame, however consistent the
            # clamped border sample happens to look
            if tx < 0 or tx > w - 1 or ty < 0 or ty > h - 1:
                out[y, x] = 0.0
                continue
            bx = bilinear_at(fb, tx, ty, 0)
            by = bilinear_at(fb, tx, ty, 1)
            err = (dx + bx) ** 2 + (dy + by) ** 2
            bound = a1 * (dx * dx + dy * dy + bx * bx + by * by) + a2
            out[y, x] = 1.0 if err <= bound else 0.0


@numba.njit(cache=True, inline="always")
def bilinear_at(img, px, py, c):
    """img[..., c] at (px, py), bilinear, border replicated: the arithmetic of `bilinear`, for kernels."""
    h, w = img.shape[0], img.shape[1]
    px = min(max(px, 0.0), w - 1.0)
    py = min(max(py, 0.0), h - 1.0)
    x0 = min(int(math.floor(px)), w - 2) if w > 1 else 0
    y0 = min(int(math.floor(py)), h - 2) if h > 1 else 0
    ax = px - x0
    ay = py - y0
    x1 = min(x0 + 1, w - 1)
    y1 = min(y0 + 1, h - 1)
    top = img[y0, x0, c] * (1 - ax) + img[y0, x1, c] * ax
    bottom = img[y1, x0, c] * (1 - ax) + img[y1, x1, c] * ax
    return top * (1 - ay) + bottom * ay
