"""The video path's numba kernels: flow-interpolated latent frames warped, blended and accumulated straight into
an exposure's sum, row by row, never materialized (`blur` plans the windows and calls them;
`interpolate.latent_frame` is the readable reference, compared in tests/test_video.py). `video/latent.py` reuses
the cell and blend-weight helpers for its own rows.

numba caches a kernel keyed on its own file: after editing an inlined helper here, clear video/__pycache__ so that
latent.py's kernels recompile too (ARCHITECTURE.md, Kernels).
"""
from __future__ import annotations

import numba
import numpy as np

_MIN_WEIGHT = 1e-6  # same fallback as interpolate.latent_frame


def kernel_inputs(f01: np.ndarray, f10: np.ndarray, v0: np.ndarray, v1: np.ndarray) -> tuple:
    """The arrays `_accumulate_rows` reads for one interval: (p01, p10, v0, v1, m0, m1).

    p01, p10: float32 (2, H, W) the flows as planes (x then y; a view's base when the flow already is one, as
    `interval` makes them), so the kernel's position arithmetic runs on contiguous rows (8 pixels per AVX2 op).
    v0, v1: float32 (H, W) C-contiguous visibilities. m0, m1: uint8 (H, W), 1 where the 2x2 bilinear cell whose
    top-left corner is (y, x) is fully visible (all four v = 1): there the blend weights are the plain temporal
    ones (1 - tau, tau) and the kernel skips the visibility gather and the normalization. Last row and column 0.
    """
    planes = []
    for f in (f01, f10):
        planes.append(np.ascontiguousarray(np.moveaxis(f, -1, 0), dtype=np.float32))
    masks = []
    for v in (v0, v1):
        v = np.ascontiguousarray(v, dtype=np.float32).reshape(v.shape[:2])
        m = np.zeros(v.shape, np.uint8)
        one = v == 1.0
        m[:-1, :-1] = one[:-1, :-1] & one[1:, :-1] & one[:-1, 1:] & one[1:, 1:]
        masks.append((v, m))
    return planes[0], planes[1], masks[0][0], masks[1][0], masks[0][1], masks[1][1]


def _accumulate_interval(lin0: np.ndarray, lin1: np.ndarray, iv, taus: np.ndarray, out: np.ndarray,
                         last: np.ndarray | None = None) -> None:
    """out += the latent frames of interval iv (a `blur.Interval`) at the given taus (see `blur._accumulate`),
    with iv's cached inputs; with `last` (float32 (H, W, 3)), the latent frame at the last tau is also stored there."""
    lin0 = np.ascontiguousarray(lin0, dtype=np.float32)
    lin1 = np.ascontiguousarray(lin1, dtype=np.float32)
    taus = np.ascontiguousarray(taus, dtype=np.float64)
    h, w = out.shape[:2]
    if h < 2 or w < 2:
        v0, v1 = iv.v0.reshape(h, w, 1), iv.v1.reshape(h, w, 1)
        if last is not None:
            last[...] = 0
            _accumulate_scalar(lin0, lin1, iv.f01, iv.f10, v0, v1, taus[-1:], last)
            taus = taus[:-1]
            out += last
        _accumulate_scalar(lin0, lin1, iv.f01, iv.f10, v0, v1, taus, out)
        return
    p01, p10, v0, v1, m0, m1 = iv.kernel_inputs()
    keep = last is not None
    _accumulate_rows(lin0, lin1, p01, p10, v0, v1, m0, m1, taus, out, keep,
                     last if keep else np.zeros((1, 1, 3), np.float32))


@numba.njit(inline="always")
def _bilinear(c, a, b, step, k00, k01, k10, k11):
    """Bilinear sum over a 2x2 cell of the flat array c: top row c[a], c[a + step], bottom row c[b], c[b + step]."""
    return (c[a] * k00 + c[a + step] * k01) + (c[b] * k10 + c[b + step] * k11)


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _accumulate_rows(lin0, lin1, p01, p10, v0, v1, m0, m1, taus, out, keep_last, last):
    # out += sum over taus of interpolate.latent_frame(lin0, lin1, f01, f10, tau), row by row (H, W >= 2), each
    # row of each latent frame made by `_latent_row`. Rows are independent: the bytes do not depend on the thread
    # count. keep_last: the last tau's latent frame is also written to `last` (H, W, 3).
    h, w = out.shape[0], out.shape[1]
    n = taus.shape[0]
    c0 = lin0.reshape(-1)
    c1 = lin1.reshape(-1)
    q0 = v0.reshape(-1)
    q1 = v1.reshape(-1)
    z0 = m0.reshape(-1)
    z1 = m1.reshape(-1)
    for y in numba.prange(h):
        o0 = np.empty(w, np.int32)
        ax0 = np.empty(w, np.float32)
        ay0 = np.empty(w, np.float32)
        o1 = np.empty(w, np.int32)
        ax1 = np.empty(w, np.float32)
        ay1 = np.empty(w, np.float32)
        r = np.zeros(w, np.float32)
        g = np.zeros(w, np.float32)
        b = np.zeros(w, np.float32)
        rl = np.zeros(w if keep_last else 0, np.float32)
        gl = np.zeros(w if keep_last else 0, np.float32)
        bl = np.zeros(w if keep_last else 0, np.float32)
        fx01, fy01, fx10, fy10 = p01[0, y], p01[1, y], p10[0, y], p10[1, y]
        for i in range(n):
            tr, tg, tb = (rl, gl, bl) if keep_last and i == n - 1 else (r, g, b)
            _latent_row(c0, c1, q0, q1, z0, z1, fx01, fy01, fx10, fy10, h, w, y, np.float32(taus[i]),
                        o0, ax0, ay0, o1, ax1, ay1, tr, tg, tb)
        if keep_last:
            for x in range(w):
                last[y, x, 0] = rl[x]
                last[y, x, 1] = gl[x]
                last[y, x, 2] = bl[x]
                r[x] += rl[x]
                g[x] += gl[x]
                b[x] += bl[x]
        for x in range(w):
            out[y, x, 0] += r[x]
            out[y, x, 1] += g[x]
            out[y, x, 2] += b[x]


@numba.njit(inline="always")
def _latent_row(c0, c1, q0, q1, z0, z1, fx01, fy01, fx10, fy10, h, w, y, t, o0, ax0, ay0, o1, ax1, ay1,
                tr, tg, tb):
    # tr, tg, tb (float32 (W,)) += R, G, B of row y of interpolate.latent_frame at time t (float32), H, W >= 2.
    # c0, c1: the linear frames flat (pixel-interleaved RGB); q0, q1 the visibilities and z0, z1 the fully-visible
    # cell masks flat (`kernel_inputs`); fx01 ... fy10 row y of the flow planes; o0 ... ay1 scratch rows (W,).
    # One pass over the row finds both source points' bilinear cells (`_row_cells`), a second blends them
    # (`_blend_weights`) and gathers the colours.
    uw = np.uintp(w)
    u1 = np.uintp(1)
    u2 = np.uintp(2)
    u3 = np.uintp(3)
    _row_cells(fx01, fy01, fx10, fy10, h, w, y, t, o0, ax0, ay0, o1, ax1, ay1)
    for x in range(w):
        e0, e1, k00, k01, k10, k11, l00, l01, l10, l11, w0, w1 = _blend_weights(q0, q1, z0, z1, w, t, o0, ax0,
                                                                                ay0, o1, ax1, ay1, x)
        # pixel-interleaved RGB: channel c of the cell's top and bottom row at a + c, b + c
        a0, b0 = e0 * u3, (e0 + uw) * u3
        a1, b1 = e1 * u3, (e1 + uw) * u3
        tr[x] += (w0 * _bilinear(c0, a0, b0, u3, k00, k01, k10, k11)
                  + w1 * _bilinear(c1, a1, b1, u3, l00, l01, l10, l11))
        tg[x] += (w0 * _bilinear(c0, a0 + u1, b0 + u1, u3, k00, k01, k10, k11)
                  + w1 * _bilinear(c1, a1 + u1, b1 + u1, u3, l00, l01, l10, l11))
        tb[x] += (w0 * _bilinear(c0, a0 + u2, b0 + u2, u3, k00, k01, k10, k11)
                  + w1 * _bilinear(c1, a1 + u2, b1 + u2, u3, l00, l01, l10, l11))


@numba.njit(inline="always")
def _row_cells(fx01, fy01, fx10, fy10, h, w, y, t, o0, ax0, ay0, o1, ax1, ay1):
    # for each x of row y at time t: frame0's source point x + F_t0 and frame1's x + F_t1 (interpolate.py),
    # clamped (`_footprint`'s arithmetic), as their bilinear cells' flat top-left offsets o0, o1 and fractions
    # (ax0, ay0), (ax1, ay1). Contiguous flow rows: vectorized. Shared by every row kernel of the latent frames
    # (`_latent_row`; `latent._gray_rows`), so they all see the same latent images.
    one = np.float32(1)
    zero = np.float32(0)
    wm, hm = np.float32(w - 1), np.float32(h - 1)
    wm2, hm2 = np.float32(w - 2), np.float32(h - 2)
    fy = np.float32(y)
    s = one - t
    ca = -t * s
    cb = t * t
    cc = s * s
    for x in range(w):
        fx = np.float32(x)
        px = min(max(fx + (ca * fx01[x] + cb * fx10[x]), zero), wm)
        py = min(max(fy + (ca * fy01[x] + cb * fy10[x]), zero), hm)
        x0 = min(np.floor(px), wm2)
        y0 = min(np.floor(py), hm2)
        ax0[x] = px - x0
        ay0[x] = py - y0
        o0[x] = np.int32(y0) * np.int32(w) + np.int32(x0)
        px = min(max(fx + (cc * fx01[x] + ca * fx10[x]), zero), wm)
        py = min(max(fy + (cc * fy01[x] + ca * fy10[x]), zero), hm)
        x0 = min(np.floor(px), wm2)
        y0 = min(np.floor(py), hm2)
        ax1[x] = px - x0
        ay1[x] = py - y0
        o1[x] = np.int32(y0) * np.int32(w) + np.int32(x0)


@numba.njit(inline="always")
def _blend_weights(q0, q1, z0, z1, w, t, o0, ax0, ay0, o1, ax1, ay1, x):
    # pixel x's two cells from `_row_cells` as unsigned flat offsets e0, e1 (no negative-index handling in the
    # gathers), their bilinear weights k.. and l.., and the blend weights (w0, w1) of frame0 and frame1:
    # time times visibility, normalized (_latent_rgb's arithmetic)
    one = np.float32(1)
    uw = np.uintp(w)
    u1 = np.uintp(1)
    s = one - t
    e0 = np.uintp(o0[x])
    e1 = np.uintp(o1[x])
    p, q = ax0[x], ay0[x]
    k00, k01, k10, k11 = (one - p) * (one - q), p * (one - q), (one - p) * q, p * q
    p, q = ax1[x], ay1[x]
    l00, l01, l10, l11 = (one - p) * (one - q), p * (one - q), (one - p) * q, p * q
    if z0[e0] & z1[e1]:
        w0 = s  # both cells fully visible: the weights need no gather and no normalization
        w1 = t
    else:
        w0 = s * _bilinear(q0, e0, e0 + uw, u1, k00, k01, k10, k11)
        w1 = t * _bilinear(q1, e1, e1 + uw, u1, l00, l01, l10, l11)
        if w0 + w1 < _MIN_WEIGHT:
            w0 = s
            w1 = t
        norm = one / (w0 + w1)
        w0 *= norm
        w1 *= norm
    return e0, e1, k00, k01, k10, k11, l00, l01, l10, l11, w0, w1


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _accumulate_scalar(lin0, lin1, f01, f10, v0, v1, taus, out):
    # _accumulate pixel by pixel with `_latent_rgb`, for frames narrower or shorter than 2 pixels
    h, w = out.shape[0], out.shape[1]
    for y in numba.prange(h):
        for x in range(w):
            r = np.float32(0)
            g = np.float32(0)
            bl = np.float32(0)
            ax01 = f01[y, x, 0]
            ay01 = f01[y, x, 1]
            ax10 = f10[y, x, 0]
            ay10 = f10[y, x, 1]
            for i in range(taus.shape[0]):
                dr, dg, db = _latent_rgb(lin0, lin1, v0, v1, np.float32(x), np.float32(y), ax01, ay01, ax10, ay10,
                                         np.float32(taus[i]))
                r += dr
                g += dg
                bl += db
            out[y, x, 0] += r
            out[y, x, 1] += g
            out[y, x, 2] += bl


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _accumulate_warped(lin0, lin1, f01, f10, v0, v1, taus, hinv, out):
    # as _accumulate, but sample i is the latent frame read at hinv[i] @ (x, y, 1): the frame warped by the
    # shake homography H = hinv[i]^-1. The flows at that non-integer point are bilinear samples of the fields.
    h, w = out.shape[0], out.shape[1]
    for y in numba.prange(h):
        for x in range(w):
            r = np.float32(0)
            g = np.float32(0)
            bl = np.float32(0)
            for i in range(taus.shape[0]):
                den = hinv[i, 2, 0] * x + hinv[i, 2, 1] * y + hinv[i, 2, 2]
                qx = np.float32((hinv[i, 0, 0] * x + hinv[i, 0, 1] * y + hinv[i, 0, 2]) / den)
                qy = np.float32((hinv[i, 1, 0] * x + hinv[i, 1, 1] * y + hinv[i, 1, 2]) / den)
                q00, q01, q10, q11, l00, l01, l10, l11 = _footprint(h, w, qx, qy)
                ax01 = _gather(f01, q00, q01, q10, q11, l00, l01, l10, l11, 0)
                ay01 = _gather(f01, q00, q01, q10, q11, l00, l01, l10, l11, 1)
                ax10 = _gather(f10, q00, q01, q10, q11, l00, l01, l10, l11, 0)
                ay10 = _gather(f10, q00, q01, q10, q11, l00, l01, l10, l11, 1)
                dr, dg, db = _latent_rgb(lin0, lin1, v0, v1, qx, qy, ax01, ay01, ax10, ay10, np.float32(taus[i]))
                r += dr
                g += dg
                bl += db
            out[y, x, 0] += r
            out[y, x, 1] += g
            out[y, x, 2] += bl


@numba.njit(cache=True, inline="always")
def _latent_rgb(lin0, lin1, v0, v1, qx, qy, ax01, ay01, ax10, ay10, t):
    """Colour of the latent frame at time t at the point (qx, qy), given the flows (ax01, ay01), (ax10, ay10)
    there: each source is read at the point moved by the intermediate-flow approximation, blended by time and
    visibility (interpolate.latent_frame's arithmetic). The bilinear footprint of each source point is found
    once and reused for its visibility and colours."""
    h, w = lin0.shape[0], lin0.shape[1]
    a = -t * (np.float32(1) - t)
    b = t * t
    c2 = (np.float32(1) - t) * (np.float32(1) - t)
    i00, i01, i10, i11, k00, k01, k10, k11 = _footprint(h, w, qx + (a * ax01 + b * ax10), qy + (a * ay01 + b * ay10))
    j00, j01, j10, j11, m00, m01, m10, m11 = _footprint(h, w, qx + (c2 * ax01 + a * ax10), qy + (c2 * ay01 + a * ay10))
    w0 = (np.float32(1) - t) * _gather(v0, i00, i01, i10, i11, k00, k01, k10, k11, 0)
    w1 = t * _gather(v1, j00, j01, j10, j11, m00, m01, m10, m11, 0)
    if w0 + w1 < _MIN_WEIGHT:
        w0 = np.float32(1) - t
        w1 = t
    norm = np.float32(1) / (w0 + w1)
    w0 *= norm
    w1 *= norm
    return (w0 * _gather(lin0, i00, i01, i10, i11, k00, k01, k10, k11, 0)
            + w1 * _gather(lin1, j00, j01, j10, j11, m00, m01, m10, m11, 0),
            w0 * _gather(lin0, i00, i01, i10, i11, k00, k01, k10, k11, 1)
            + w1 * _gather(lin1, j00, j01, j10, j11, m00, m01, m10, m11, 1),
            w0 * _gather(lin0, i00, i01, i10, i11, k00, k01, k10, k11, 2)
            + w1 * _gather(lin1, j00, j01, j10, j11, m00, m01, m10, m11, 2))


@numba.njit(cache=True, inline="always")
def _footprint(h, w, px, py):
    # the four bilinear neighbours and their weights, by the arithmetic of interpolate.bilinear (border replicated)
    px = min(max(px, np.float32(0)), np.float32(w - 1))
    py = min(max(py, np.float32(0)), np.float32(h - 1))
    # int() truncates, which is floor here since px, py >= 0
    x0 = min(int(px), max(w - 2, 0))
    y0 = min(int(py), max(h - 2, 0))
    ax = px - np.float32(x0)
    ay = py - np.float32(y0)
    x1 = min(x0 + 1, w - 1)
    y1 = min(y0 + 1, h - 1)
    one = np.float32(1)
    return (y0, x0, y1, x1, (one - ax) * (one - ay), ax * (one - ay), (one - ax) * ay, ax * ay)


@numba.njit(cache=True, inline="always")
def _gather(img, y0, x0, y1, x1, k00, k01, k10, k11, c):
    return (img[y0, x0, c] * k00 + img[y0, x1, c] * k01) + (img[y1, x0, c] * k10 + img[y1, x1, c] * k11)
