"""The exact integrator's default kernel for the pixels objects reach: `_integrate_runs`, `_integrate`'s row
loops (render/gather.py) with each layer swept over runs of pixels that share an integer source neighbourhood
(`_sweep_runs`, on crops padded with a transparent pixel) and a translated back layer as shifted rows
(`_sweep_shifted`). Apart from gather.py because it is the fast path checked against that reference
(tests/test_render.py), not a second reference; see `integrate_exact` for when each runs.
"""
from __future__ import annotations

import numba
import numpy as np

from .gather import OPAQUE_EPS, _alpha_columns, _alpha_spans, _next_run, _shifted_edges, _sweep


@numba.njit(parallel=True, cache=True)
def _integrate_runs(buf, offsets, dims, extend, pbuf, poffsets, pdims, Hinv, boxes, start, level, covered, prefilled,
                    out):
    # _integrate's loops with a cheaper sweep per (sample, layer): `_sweep_runs` on the padded crops (pbuf,
    # poffsets, pdims from pad_transparent; an extending layer on its own crop in buf), float32 coordinates and
    # weights. A translated back layer keeps `_sweep`'s shifted rows (`_sweep_shifted`), and a layer whose crop is
    # thinner than 2 pixels `_sweep` itself. The transmittance starts at 0 on the pixels of the span [lo, hi]
    # outside the level, so the one test trans >= OPAQUE_EPS skips both them and what lies behind opaque coverage
    # (no separate scan for runs).
    height, width = out.shape[0], out.shape[1]
    L = Hinv.shape[1]
    G = start.shape[0] - 1
    spans, row_off = _alpha_spans(buf, offsets, dims, extend)
    for y in numba.prange(height):
        acc = np.empty((3, width))
        trans = np.empty(width)
        start_trans = np.empty(width)
        sel = np.empty(width, dtype=np.bool_)
        vis = np.empty(width, dtype=np.bool_)
        U = np.empty(width)
        V = np.empty(width)
        FX = np.empty(width, dtype=np.float32)
        FY = np.empty(width, dtype=np.float32)
        DX = np.empty(width, dtype=np.int32)
        Y0 = np.empty(width, dtype=np.int32)
        S = np.empty(4 * width, dtype=np.float32)
        for g in range(G):
            lo, hi = width, -1
            for x in range(width):
                s = level[y, x] == g and (covered[y, x] or not prefilled)
                sel[x] = s
                start_trans[x] = 1.0 if s else 0.0
                if s:
                    hi = x
                    if lo == width:
                        lo = x
            if hi < 0:
                continue
            acc[:, lo:hi + 1] = 0.0
            for k in range(start[g], start[g + 1]):
                trans[lo:hi + 1] = start_trans[lo:hi + 1]
                for l in range(L - 1, -1, -1):
                    if extend[l]:
                        xa, xb = lo, hi
                    elif boxes[k, l, 1] <= y <= boxes[k, l, 3]:
                        xa, xb = _alpha_columns(Hinv[k, l], y, max(boxes[k, l, 0], lo), min(boxes[k, l, 2], hi),
                                                spans, row_off[l], dims[l, 0], dims[l, 1])
                    else:
                        continue
                    if xa > xb:
                        continue
                    Hm = Hinv[k, l]
                    translated = (Hm[0, 0] == 1.0 and Hm[1, 0] == 0.0 and Hm[2, 0] == 0.0 and Hm[0, 1] == 0.0
                                  and Hm[2, 1] == 0.0 and Hm[2, 2] == 1.0)
                    thin = min(dims[l, 0], dims[l, 1]) < 2
                    if thin or (l == 0 and extend[l] and translated):
                        for x in range(xa, xb + 1):
                            vis[x] = trans[x] >= OPAQUE_EPS
                        if thin:
                            _sweep(buf, offsets[l], dims[l, 0], dims[l, 1], extend[l], l == 0, Hm, y, xa, xb, vis,
                                   trans, acc, U, V)
                        else:
                            _sweep_shifted(buf, offsets[l], dims[l, 0], dims[l, 1], Hm, y, xa, xb, vis, trans, acc,
                                           U, V, S)
                    else:
                        if extend[l]:
                            _sweep_runs(buf, offsets[l], dims[l, 0], dims[l, 1], 0.0, l == 0, Hm, y, xa, xb, trans,
                                        acc, FX, FY, DX, Y0)
                        else:
                            _sweep_runs(pbuf, poffsets[l], pdims[l, 0], pdims[l, 1], 1.0, l == 0, Hm, y, xa, xb,
                                        trans, acc, FX, FY, DX, Y0)
            inv_n = 1.0 / (start[g + 1] - start[g])
            for x in range(lo, hi + 1):
                if sel[x]:
                    out[y, x, 0] = acc[0, x] * inv_n
                    out[y, x, 1] = acc[1, x] * inv_n
                    out[y, x, 2] = acc[2, x] * inv_n


@numba.njit(cache=True, inline="always")
def _sweep_shifted(buf, off, w, h, Hm, y, xa, xb, vis, trans, acc, U, V, S):
    """`_sweep` for a translated, extending back layer (crop w, h >= 2), the same arithmetic: over each run of
    visible pixels, the bilinear RGBA of the shifted source row first (one float32 loop over the run's
    contiguous values, which vectorizes; S: float32 (4 W,) scratch), then scaled by the transmittance into acc.
    Columns whose 2x2 source neighbourhood leaves the crop take the clamped gather (`_last_gather`)."""
    cu = Hm[0, 1] * y + Hm[0, 2]
    cv = Hm[1, 1] * y + Hm[1, 2]
    v = min(max(cv, 0.0), h - 1.0)
    y0 = min(int(v), h - 2)
    dx = int(np.floor(cu))
    ia, ib = max(xa, -dx), min(xb, w - 2 - dx)
    if ia > ib:
        ia, ib = xb + 1, xb
    else:
        fx = np.float32(cu - dx)
        fy = np.float32(v - y0)
        one = np.float32(1.0)
        w00, w01, w10, w11 = (one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy, fx * fy
        i0 = off + (y0 * w + dx) * 4
        j0 = i0 + w * 4
        x = ia
        while x <= ib:
            run, x = _next_run(vis, x, ib)
            if x == run:
                continue
            m = 4 * (x - run)
            p, q = i0 + 4 * run, j0 + 4 * run
            a, b, c, d = buf[p:p + m], buf[p + 4:p + 4 + m], buf[q:q + m], buf[q + 4:q + 4 + m]
            sm = S[:m]
            for e in range(m):
                sm[e] = w00 * a[e] + w01 * b[e] + w10 * c[e] + w11 * d[e]
            r, g, bl, tr = acc[0, run:x], acc[1, run:x], acc[2, run:x], trans[run:x]
            for k in range(x - run):
                t = np.float32(tr[k])
                r[k] += t * sm[4 * k]
                g[k] += t * sm[4 * k + 1]
                bl[k] += t * sm[4 * k + 2]
    _shifted_edges(buf, off, w, h, cu, cv, xa, xb, ia, ib, vis, trans, acc, U, V)


@numba.njit(cache=True, inline="always")
def _sweep_runs(buf, off, w, h, pad, last, Hm, y, xa, xb, trans, acc, FX, FY, DX, Y0):
    """Composite one layer under the row's transmittance for every x in [xa, xb] where it is at least OPAQUE_EPS
    (the layers in front still let light through), sampling the crop at buf[off:]
    (w, h >= 2) clamped: an extending layer's own crop, or a non-extending layer's crop padded with one
    transparent pixel (`pad_transparent`; crop coordinates then shift by `pad` = 1), where clamping gives the
    transparent-outside sample exactly.

    Two passes: the source coordinates (float32 for an affine map, coordinate error < 1e-3 px; float64 through
    the homography's divide otherwise), kept as each pixel's bilinear fractions (FX, FY, float32 (W,)) and
    top-left neighbour (x + DX[x], Y0[x]; int32 (W,), which AVX2 converts to in vectors, int64 it does not);
    then the gathers, over runs of visible pixels with the same DX and Y0, whose neighbours are contiguous
    slices of buf.
    """
    hu, hv = np.float32(w - 1), np.float32(h - 1)
    zero, one = np.float32(0.0), np.float32(1.0)
    h00, h10, h20 = Hm[0, 0], Hm[1, 0], Hm[2, 0]
    cu = Hm[0, 1] * y + Hm[0, 2]
    cv = Hm[1, 1] * y + Hm[1, 2]
    cw = Hm[2, 1] * y + Hm[2, 2]
    w2, h2 = np.int32(w - 2), np.int32(h - 2)
    # int32 indices and slices: the loops vectorize (AVX2 converts float to int32, not int64, in vectors)
    n = xb + 1 - xa
    fxs, fys, dxs, y0s = FX[xa:xb + 1], FY[xa:xb + 1], DX[xa:xb + 1], Y0[xa:xb + 1]
    if h20 == 0.0 and cw == 1.0:
        fh00, fh10 = np.float32(h00), np.float32(h10)
        fcu, fcv = np.float32(cu + pad), np.float32(cv + pad)
        for i in range(n):
            x = np.int32(xa + i)
            xf = np.float32(x)
            u = fh00 * xf + fcu
            v = fh10 * xf + fcv
            u = u if u > zero else zero
            u = u if u < hu else hu
            v = v if v > zero else zero
            v = v if v < hv else hv
            x0 = np.int32(u)
            x0 = x0 if x0 < w2 else w2
            y0 = np.int32(v)
            y0 = y0 if y0 < h2 else h2
            fxs[i] = u - np.float32(x0)
            fys[i] = v - np.float32(y0)
            dxs[i] = x0 - x
            y0s[i] = y0
    else:
        for i in range(n):
            x = xa + i
            iz = 1.0 / (h20 * x + cw)
            u = min(max((h00 * x + cu) * iz + pad, 0.0), w - 1.0)
            v = min(max((h10 * x + cv) * iz + pad, 0.0), h - 1.0)
            x0 = np.int32(u)
            x0 = x0 if x0 < w2 else w2
            y0 = np.int32(v)
            y0 = y0 if y0 < h2 else h2
            fxs[i] = np.float32(u - x0)
            fys[i] = np.float32(v - y0)
            dxs[i] = x0 - np.int32(x)
            y0s[i] = y0
    x = xa
    while x <= xb:
        while x <= xb and trans[x] < OPAQUE_EPS:
            x += 1
        if x > xb:
            break
        s = x
        dx, y0 = DX[s], Y0[s]
        x += 1
        while x <= xb and DX[x] == dx and Y0[x] == y0 and trans[x] >= OPAQUE_EPS:
            x += 1
        n = x - s
        i0 = off + (y0 * w + s + dx) * 4
        j0 = i0 + w * 4
        # slices, not indices into buf: LLVM then knows the loads do not alias the row buffers
        a, b = buf[i0:i0 + 4 * n], buf[i0 + 4:i0 + 4 + 4 * n]
        c, d = buf[j0:j0 + 4 * n], buf[j0 + 4:j0 + 4 + 4 * n]
        fxs, fys, tr = FX[s:x], FY[s:x], trans[s:x]
        r, g, bl = acc[0, s:x], acc[1, s:x], acc[2, s:x]
        for k in range(n):
            fx, fy = fxs[k], fys[k]
            w00 = (one - fx) * (one - fy)
            w01 = fx * (one - fy)
            w10 = (one - fx) * fy
            w11 = fx * fy
            t = tr[k]
            q = 4 * k
            r[k] += t * (w00 * a[q] + w01 * b[q] + w10 * c[q] + w11 * d[q])
            g[k] += t * (w00 * a[q + 1] + w01 * b[q + 1] + w10 * c[q + 1] + w11 * d[q + 1])
            bl[k] += t * (w00 * a[q + 2] + w01 * b[q + 2] + w10 * c[q + 2] + w11 * d[q + 2])
            if not last:
                tr[k] = t * (1.0 - (w00 * a[q + 3] + w01 * b[q + 3] + w10 * c[q + 3] + w11 * d[q + 3]))
