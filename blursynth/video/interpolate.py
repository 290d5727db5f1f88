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
exposure integral that follows is physically right. `latent_frame` is the readable numpy reference; `kernels.py`
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
# the histogram bin of float32 +inf's bits (0x7F800000 >> 15) in `_order_stats`: it and above are inf or nan
_INF_BIN = 0xFF00


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
    v0, v1, _ = consistency(f01, f10)
    return v0, v1


def consistency(f01: np.ndarray, f10: np.ndarray, units: tuple[float, float] = (1.0, 1.0),
                percentile: float | None = None) -> tuple[np.ndarray, np.ndarray, float | None]:
    """`visibility` of the flows scaled by `units`, and optionally their `max_displacement`, in one pass per
    direction (the flow stage of the video path runs this for every frame pair).

    Args:
        f01, f10: float32 (h, w, 2) forward and backward flow.
        units: (sx, sy), rounded to float32: the check runs on the vectors (dx sx, dy sy), exactly as on
            `f * np.float32(units)` but without making that array; `blur.interval` passes the reduced grid's
            factors for flows that are in full-resolution pixels.
        percentile: with a value, also the larger over both directions of `max_displacement(f, percentile, v)`,
            in the flows' own units (not scaled); None skips it.
    Returns:
        (v0, v1, disp): v0, v1 float32 (h, w) in {0, 1} as `visibility` gives them for the scaled flows; disp a
        float in the flows' units, or None.
    """
    sx, sy = np.float32(units[0]), np.float32(units[1])
    f01 = np.ascontiguousarray(f01, np.float32)
    f10 = np.ascontiguousarray(f10, np.float32)
    vis, disp = [], None
    for fa, fb in ((f01, f10), (f10, f01)):
        v = np.empty(fa.shape[:2], np.float32)
        mags = np.empty(0 if percentile is None else v.size, np.float32)
        n = _consistent_rows(fa, fb, sx, sy, CONSISTENCY_A1, CONSISTENCY_A2, v, mags)
        if percentile is not None:
            d = _percentile(mags[:n], percentile)
            disp = d if disp is None else max(disp, d)
        vis.append(v)
    return vis[0], vis[1], disp


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
    return latent_steps(max((max_displacement(f, percentile, v) for f, v in _with_masks(flows)), default=0.0),
                        max_step_px, cap)


def latent_steps(disp_px: float, max_step_px: float = 1.0, cap: int = 64) -> int:
    """`latent_count` from the largest displacement disp_px (pixels) already measured: ceil(disp_px /
    max_step_px) clipped to [1, cap]."""
    return int(min(max(math.ceil(disp_px / max_step_px - 1e-6), 1), cap))


def max_displacement(flow: np.ndarray, percentile: float = 99.9, visible: np.ndarray | None = None) -> float:
    """The given percentile of the flow magnitude, in pixels.

    flow: float32 (H, W, 2) (any strides); visible: optional float32 or bool (H, W) mask (e.g. from `visibility`)
    of the pixels to count (those > 0): flow at occluded or out-of-frame pixels is a guess and should not set the
    step count. The value is np.percentile(np.hypot(dx, dy)[visible > 0], percentile) to the bit (the float32
    magnitudes, numpy's linear interpolation), found by selection rather than a partition of every magnitude;
    0.0 when no pixel counts.
    """
    h, w = flow.shape[:2]
    if visible is None:
        vis = np.empty((0, 0), np.float32)
    else:
        vis = np.asarray(visible).reshape(h, w)
        if vis.dtype != np.float32:
            vis = (vis > 0).astype(np.float32)
    mags = np.empty(h * w, np.float32)
    n = _magnitudes(flow[..., 0], flow[..., 1], vis, mags)
    return _percentile(mags[:n], percentile)


def _percentile(mags: np.ndarray, percentile: float) -> float:
    """float(np.percentile(mags, percentile)) (method "linear") of float32 (n,) magnitudes >= 0, by selecting
    the two order statistics it interpolates (`_order_stats`) instead of numpy's partition of all n; 0.0 for
    n = 0. Non-finite magnitudes go to numpy itself."""
    n = mags.shape[0]
    if n == 0:
        return 0.0
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    # numpy's virtual index (n - 1) q / 100 in float64, its neighbours and the weight between them
    index = (n - 1) * np.true_divide(percentile, 100)
    lo = int(math.floor(index))
    if index >= n - 1:
        lo = hi = n - 1
    else:
        hi = lo + 1
    a, b, ok = _order_stats(mags.view(np.uint32), lo, hi)
    if not ok:  # inf or nan among them
        return float(np.percentile(mags, percentile))
    a, b = np.uint32(a).view(np.float32), np.uint32(b).view(np.float32)
    # numpy's _lerp with a weak (Python float) weight: float32 arithmetic, from the nearer end
    gamma = float(index - math.floor(index)) if lo != hi else 0.0
    diff = b - a
    if gamma >= 0.5:
        return float(b - diff * np.float32(1 - gamma))
    return float(a + diff * np.float32(gamma))


def _with_masks(flows):
    for f in flows:
        yield (f[0], f[1]) if isinstance(f, tuple) else (f, None)


def bilinear(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out[y, x] = img at (x + flow[y, x, 0], y + flow[y, x, 1]), bilinear, border replicated.

    img: float32 (H, W) or (H, W, C); flow: float32 (H, W, 2) in pixels. Returns float32 of img's shape. The
    float arithmetic here is what the numba kernel in kernels.py repeats (cv2.remap quantizes the weights to
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
def _consistent_rows(fa, fb, sx, sy, a1, a2, v, mags):
    # v = forward-backward check of the flows (fa, fb) * (sx, sy) (tests/test_video.py holds the numpy reference),
    # row by row, rows in parallel: one pass finds each target's bilinear cell (contiguous: vectorized), one
    # gathers fb there. The float64 arithmetic of the check is the earlier per-pixel kernel's, so v is the same to
    # the bit, whatever the thread count. With mags.size > 0, the float32 |fa| of the visible pixels (np.hypot's
    # value) are written to mags in raster order (each row from its offset, the visible count of the rows above);
    # returns how many.
    h, w = v.shape
    wm = np.float64(w - 1)
    hm = np.float64(h - 1)
    wm2 = np.float64(max(w - 2, 0))
    hm2 = np.float64(max(h - 2, 0))
    a = fa.reshape(-1)
    b = fb.reshape(-1)
    vv = v.reshape(-1)
    right = 2 if w > 1 else 0  # offsets of the cell's other corners (border replicated on 1-pixel frames)
    down = 2 * w if h > 1 else 0
    visible = np.empty(h, np.intp)
    for y in numba.prange(h):
        ofs = np.empty(w, np.intp)
        axs = np.empty(w, np.float64)
        ays = np.empty(w, np.float64)
        dxs = np.empty(w, np.float64)
        dys = np.empty(w, np.float64)
        inside = np.empty(w, np.bool_)
        row = y * w
        for x in range(w):
            i = 2 * (row + x)
            dx = np.float64(a[i] * sx)
            dy = np.float64(a[i + 1] * sy)
            tx = x + dx
            ty = y + dy
            # a pixel whose flow leaves the image is not seen in the other frame, however consistent the
            # clamped border sample happens to look
            inside[x] = (tx >= 0) & (tx <= wm) & (ty >= 0) & (ty <= hm)
            px = min(max(tx, 0.0), wm)
            py = min(max(ty, 0.0), hm)
            x0 = min(np.floor(px), wm2)
            y0 = min(np.floor(py), hm2)
            axs[x] = px - x0
            ays[x] = py - y0
            ofs[x] = 2 * (np.intp(y0) * w + np.intp(x0))
            dxs[x] = dx
            dys[x] = dy
        seen = 0
        for x in range(w):
            o = ofs[x]
            ax = axs[x]
            ay = ays[x]
            top = np.float64(b[o] * sx) * (1 - ax) + np.float64(b[o + right] * sx) * ax
            bottom = np.float64(b[o + down] * sx) * (1 - ax) + np.float64(b[o + down + right] * sx) * ax
            bx = top * (1 - ay) + bottom * ay
            top = np.float64(b[o + 1] * sy) * (1 - ax) + np.float64(b[o + right + 1] * sy) * ax
            bottom = np.float64(b[o + down + 1] * sy) * (1 - ax) + np.float64(b[o + down + right + 1] * sy) * ax
            by = top * (1 - ay) + bottom * ay
            dx = dxs[x]
            dy = dys[x]
            err = (dx + bx) * (dx + bx) + (dy + by) * (dy + by)
            bound = a1 * (dx * dx + dy * dy + bx * bx + by * by) + a2
            ok = inside[x] & (err <= bound)
            vv[row + x] = np.float32(ok)
            seen += ok
        visible[y] = seen
    if mags.shape[0] == 0:
        return 0
    start = np.empty(h, np.intp)
    n = 0
    for y in range(h):
        start[y] = n
        n += visible[y]
    for y in numba.prange(h):
        row = y * w
        k = start[y]
        for x in range(w):
            if vv[row + x] != 0:
                i = 2 * (row + x)
                mags[k] = _hypot32(a[i], a[i + 1])
                k += 1
    return n


@numba.njit(cache=True, nogil=True)
def _magnitudes(fx, fy, vis, mags):
    # mags[:n] = the float32 |(fx, fy)| of the pixels with vis > 0 (all of them when vis is empty), raster order
    h, w = fx.shape
    every = vis.size == 0
    n = 0
    for y in range(h):
        for x in range(w):
            if every or vis[y, x] > 0:
                mags[n] = _hypot32(fx[y, x], fy[y, x])
                n += 1
    return n


@numba.njit(cache=True, inline="always")
def _hypot32(dx, dy):
    # np.hypot of two float32 (glibc's hypotf): the float64 root rounded once to float32 (tests check the bits)
    u = np.float64(dx)
    t = np.float64(dy)
    return np.float32(math.sqrt(u * u + t * t))


@numba.njit(cache=True, nogil=True)
def _order_stats(bits, lo, hi):
    # the lo-th and hi-th smallest (0-based, lo <= hi) of float32 values >= 0 given by their bits (uint32 (n,)),
    # whose order is the values' order. A histogram of the top 17 bits (exponent and 8 mantissa bits: bins 0.4%
    # wide) finds the bin holding the lo-th; only the values from that bin up are partitioned. ok = False when
    # a value is inf or nan (the caller asks numpy).
    n = bits.shape[0]
    hist = np.zeros(1 << 16, np.int64)
    top = 0
    for i in range(n):
        k = np.int64(bits[i] >> 15)
        hist[k] += 1
        top = max(top, k)
    if top >= _INF_BIN:
        return np.uint32(0), np.uint32(0), False
    need = n - lo  # values at or above the lo-th
    above = 0
    k = top
    while True:
        above += hist[k]
        if above >= need or k == 0:
            break
        k -= 1
    threshold = np.uint32(k) << 15
    cand = np.empty(above, np.uint32)
    c = 0
    for i in range(n):
        if bits[i] >= threshold:
            cand[c] = bits[i]
            c += 1
    below = n - c
    part = np.partition(cand, lo - below)
    a = part[lo - below]
    b = a
    if hi > lo:
        b = part[hi - below]
        for i in range(hi - below, c):
            b = min(b, part[i])
    return a, b, True
