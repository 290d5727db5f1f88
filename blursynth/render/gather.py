"""The reference kernels of the exact integrator: `_integrate`, which gathers every pixel of a frame (what
`integrate_exact` computes with a fixed sample count or `shortcuts=False`, and what the CUDA kernel is checked
against), its row sweep `_sweep`, and the per-pixel primitives every exact kernel shares (the bilinear
`_sample`, the homography `_warp`, the clamped `_clamped_corner`, the alpha column bounds, OPAQUE_EPS).

They live apart from render/exact.py, which plans the samples and dispatches, so the kernels read as one
file per path (this one, runs.py, sharp.py, tiles.py) and import nothing back from the planner. Pixel centres
sit at integer coordinates; a layer is sampled bilinearly from its premultiplied crop, transparent outside it
unless it extends (an opaque background), where coordinates are clamped.

numba's cache keys a kernel on its own file only: after editing an inlined helper here, the kernels of the
other files that inline it recompile only once their cache (``__pycache__/*.nbi``, ``*.nbc``) is cleared.
"""
from __future__ import annotations

import numba
import numpy as np

# compositing stops once the remaining transmittance is below this
OPAQUE_EPS = 1e-6


@numba.njit(parallel=True, cache=True)
def _integrate(buf, offsets, dims, extend, Hinv, boxes, start, level, covered, prefilled, out):
    # Hinv, boxes: per time sample and layer, for every sample-count level g at rows start[g]:start[g + 1];
    # level[y, x] picks a pixel's level. With `prefilled`, pixels no moving layer covers already hold the
    # background's integral.
    # Loop order row -> level -> time sample -> layer (front to back) -> x: each (sample, layer) sweeps a
    # contiguous run of the row, with per-pixel transmittance carried in a row buffer; only the span
    # [lo, hi] between the level's first and last selected pixel is swept, and a non-extending layer only
    # where its alpha can be non-zero (`_alpha_columns`).
    height, width = out.shape[0], out.shape[1]
    L = Hinv.shape[1]
    G = start.shape[0] - 1
    spans, row_off = _alpha_spans(buf, offsets, dims, extend)
    for y in numba.prange(height):
        acc = np.empty((3, width))
        trans = np.empty(width)
        sel = np.empty(width, dtype=np.bool_)
        U = np.empty(width)
        V = np.empty(width)
        for g in range(G):
            lo, hi = width, -1
            for x in range(width):
                s = level[y, x] == g and (covered[y, x] or not prefilled)
                sel[x] = s
                if s:
                    hi = x
                    if lo == width:
                        lo = x
            if hi < 0:
                continue
            acc[:, lo:hi + 1] = 0.0
            for k in range(start[g], start[g + 1]):
                trans[lo:hi + 1] = 1.0
                for l in range(L - 1, -1, -1):
                    if extend[l]:
                        xa, xb = lo, hi
                    elif boxes[k, l, 1] <= y <= boxes[k, l, 3]:
                        xa, xb = _alpha_columns(Hinv[k, l], y, max(boxes[k, l, 0], lo), min(boxes[k, l, 2], hi),
                                                spans, row_off[l], dims[l, 0], dims[l, 1])
                    else:
                        continue
                    if xa <= xb:
                        _sweep(buf, offsets[l], dims[l, 0], dims[l, 1], extend[l], l == 0, Hinv[k, l], y, xa, xb,
                               sel, trans, acc, U, V)
            inv_n = 1.0 / (start[g + 1] - start[g])
            for x in range(lo, hi + 1):
                if sel[x]:
                    out[y, x, 0] = acc[0, x] * inv_n
                    out[y, x, 1] = acc[1, x] * inv_n
                    out[y, x, 2] = acc[2, x] * inv_n


@numba.njit(cache=True)
def _alpha_spans(buf, offsets, dims, extend):
    """Per crop row of every layer, the first and last column with alpha > 0 (first > last: an empty row;
    every column for an extending layer). Returns (int64 (rows, 2), int64 (L + 1,) first row of each layer)."""
    L = offsets.shape[0]
    row_off = np.zeros(L + 1, dtype=np.int64)
    for l in range(L):
        row_off[l + 1] = row_off[l] + dims[l, 1]
    spans = np.empty((row_off[L], 2), dtype=np.int64)
    for l in range(L):
        w, off = dims[l, 0], offsets[l]
        for r in range(dims[l, 1]):
            first, last = w, -1
            if extend[l]:
                first, last = 0, w - 1
            else:
                base = off + r * w * 4 + 3
                for c in range(w):
                    if buf[base + 4 * c] > 0.0:
                        if first == w:
                            first = c
                        last = c
            spans[row_off[l] + r, 0] = first
            spans[row_off[l] + r, 1] = last
    return spans, row_off


@numba.njit(cache=True, inline="always")
def _alpha_columns(Hm, y, xa, xb, spans, ro, w, h):
    """The part of [xa, xb] of image row y where a (non-extending) layer seen through Hm (image -> crop) can
    have non-zero bilinear alpha; an empty range (xa > xb) if none. Conservative by one pixel each side.

    Along the row, u(x) and v(x) are monotone away from the pole of the homography (where its denominator
    changes sign), so the crop rows read lie between those at xa and xb, and the columns with alpha there give
    an interval of u, mapped back to x; with the pole anywhere near, the range is kept whole. Skipped pixels
    would have sampled zero alpha (and, premultiplied, zero colour): the result is the same.
    """
    h00, h02 = Hm[0, 0], Hm[0, 1] * y + Hm[0, 2]
    h20, h22 = Hm[2, 0], Hm[2, 1] * y + Hm[2, 2]
    h10, h12 = Hm[1, 0], Hm[1, 1] * y + Hm[1, 2]
    pole = -h22 / h20 if h20 != 0.0 else np.inf
    if xa - 2.0 <= pole <= xb + 2.0:
        return xa, xb
    va = (h10 * xa + h12) / (h20 * xa + h22)
    vb = (h10 * xb + h12) / (h20 * xb + h22)
    # a bilinear sample at v reads rows floor(v) and floor(v) + 1
    r0 = max(int(np.floor(min(va, vb))), 0)
    r1 = min(int(np.floor(max(va, vb))) + 1, h - 1)
    cmin, cmax = w, -1
    for r in range(r0, r1 + 1):
        cmin = min(cmin, spans[ro + r, 0])
        cmax = max(cmax, spans[ro + r, 1])
    if cmin > cmax:
        return xa, xa - 1
    # ... and columns floor(u), floor(u) + 1: alpha can be non-zero only for cmin - 1 <= u < cmax + 1
    umin, umax = cmin - 1.0, cmax + 1.0
    da, db = h00 - umin * h20, h00 - umax * h20
    if abs(da) < 1e-6 or abs(db) < 1e-6:  # u barely changes along the row: keep the whole range
        return xa, xb
    x1 = (umin * h22 - h02) / da
    x2 = (umax * h22 - h02) / db
    lo = np.floor(min(x1, x2)) - 1.0
    hi = np.ceil(max(x1, x2)) + 1.0
    if lo - 1.0 <= pole <= hi + 1.0:  # a solution on the pole's other branch: no interval on this one
        return xa, xb
    if lo > xa:
        xa = int(lo) if lo < xb + 1 else xb + 1
    if hi < xb:
        xb = int(hi) if hi > xa - 1 else xa - 1
    return xa, xb


@numba.njit(cache=True, inline="always")
def _sweep(buf, off, w, h, ext, last, Hm, y, xa, xb, sel, trans, acc, U, V):
    """Composite one layer under the row's current transmittance, for x in [xa, xb] where sel[x].

    Two passes: the source coordinates of the span (branch-free), then the bilinear gathers. `last`: the
    back-most layer, after which the transmittance is not read again. U, V: float64 (W,) scratch.
    """
    h00, h01, h02 = Hm[0, 0], Hm[0, 1], Hm[0, 2]
    h10, h11, h12 = Hm[1, 0], Hm[1, 1], Hm[1, 2]
    h20, h21, h22 = Hm[2, 0], Hm[2, 1], Hm[2, 2]
    cu = h01 * y + h02
    cv = h11 * y + h12
    cw = h21 * y + h22
    if ext and w >= 2 and h >= 2 and last:
        if h00 == 1.0 and h10 == 0.0 and h20 == 0.0 and h01 == 0.0 and h21 == 0.0 and cw == 1.0:
            # a translation: one set of bilinear weights for the whole row and contiguous source pixels; the
            # columns whose 2x2 source neighbourhood would leave the crop take the clamped gather
            v = min(max(cv, 0.0), h - 1.0)
            y0 = min(int(v), h - 2)
            dx = int(np.floor(cu))
            ia, ib = max(xa, -dx), min(xb, w - 2 - dx)
            if ia <= ib:
                fx = np.float32(cu - dx)
                fy = np.float32(v - y0)
                one = np.float32(1.0)
                i0 = off + (y0 * w + dx) * 4
                _shifted_row(buf, i0, i0 + w * 4, (one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy,
                             fx * fy, ia, ib, sel, trans, acc)
                _shifted_edges(buf, off, w, h, cu, cv, xa, xb, ia, ib, sel, trans, acc, U, V)
                return
        for x in range(xa, xb + 1):
            iz = 1.0 / (h20 * x + cw)
            U[x] = (h00 * x + cu) * iz
            V[x] = (h10 * x + cv) * iz
        _last_gather(buf, off, w, h, xa, xb, sel, trans, acc, U, V)
        return
    for x in range(xa, xb + 1):
        iz = 1.0 / (h20 * x + cw)
        U[x] = (h00 * x + cu) * iz
        V[x] = (h10 * x + cv) * iz
    if ext and w >= 2 and h >= 2:
        # clamped sampling never leaves the crop: no bounds checks
        for x in range(xa, xb + 1):
            t = trans[x]
            if not sel[x] or t < OPAQUE_EPS:
                continue
            u = min(max(U[x], 0.0), w - 1.0)
            v = min(max(V[x], 0.0), h - 1.0)
            x0 = min(int(u), w - 2)
            y0 = min(int(v), h - 2)
            fx = u - x0
            fy = v - y0
            i = off + (y0 * w + x0) * 4
            j = i + w * 4
            w00 = (1.0 - fx) * (1.0 - fy)
            w01 = fx * (1.0 - fy)
            w10 = (1.0 - fx) * fy
            w11 = fx * fy
            a = w00 * buf[i + 3] + w01 * buf[i + 7] + w10 * buf[j + 3] + w11 * buf[j + 7]
            acc[0, x] += t * (w00 * buf[i] + w01 * buf[i + 4] + w10 * buf[j] + w11 * buf[j + 4])
            acc[1, x] += t * (w00 * buf[i + 1] + w01 * buf[i + 5] + w10 * buf[j + 1] + w11 * buf[j + 5])
            acc[2, x] += t * (w00 * buf[i + 2] + w01 * buf[i + 6] + w10 * buf[j + 2] + w11 * buf[j + 6])
            trans[x] = t * (1.0 - a)
        return
    for x in range(xa, xb + 1):
        t = trans[x]
        if not sel[x] or t < OPAQUE_EPS:
            continue
        r, g, b, a = _sample(buf, off, w, h, ext, U[x], V[x])
        if a == 0.0:
            continue
        acc[0, x] += t * r
        acc[1, x] += t * g
        acc[2, x] += t * b
        trans[x] = t * (1.0 - a)


@numba.njit(cache=True, inline="always")
def _sample(buf, off, w, h, extend, u, v):
    """Bilinear premultiplied RGBA at crop coordinates (u, v)."""
    if extend:
        u = min(max(u, 0.0), w - 1.0)
        v = min(max(v, 0.0), h - 1.0)
    elif u <= -1.0 or v <= -1.0 or u >= w or v >= h:
        return 0.0, 0.0, 0.0, 0.0
    x0 = int(np.floor(u))
    y0 = int(np.floor(v))
    fx = u - x0
    fy = v - y0
    if x0 >= 0 and y0 >= 0 and x0 + 1 < w and y0 + 1 < h:
        # interior: all four neighbours exist
        i = off + (y0 * w + x0) * 4
        j = i + w * 4
        w00 = (1.0 - fx) * (1.0 - fy)
        w01 = fx * (1.0 - fy)
        w10 = (1.0 - fx) * fy
        w11 = fx * fy
        a = w00 * buf[i + 3] + w01 * buf[i + 7] + w10 * buf[j + 3] + w11 * buf[j + 7]
        if a == 0.0:  # premultiplied: no coverage, no colour
            return 0.0, 0.0, 0.0, 0.0
        return (w00 * buf[i] + w01 * buf[i + 4] + w10 * buf[j] + w11 * buf[j + 4],
                w00 * buf[i + 1] + w01 * buf[i + 5] + w10 * buf[j + 1] + w11 * buf[j + 5],
                w00 * buf[i + 2] + w01 * buf[i + 6] + w10 * buf[j + 2] + w11 * buf[j + 6],
                a)
    # border (or a clamped coordinate on the last row/column): missing neighbours are transparent
    r = g = b = a = 0.0
    for dy in range(2):
        yy = y0 + dy
        if yy < 0 or yy >= h:
            continue
        wy = fy if dy else 1.0 - fy
        for dx in range(2):
            xx = x0 + dx
            if xx < 0 or xx >= w:
                continue
            wgt = wy * (fx if dx else 1.0 - fx)
            i = off + (yy * w + xx) * 4
            r += wgt * buf[i]
            g += wgt * buf[i + 1]
            b += wgt * buf[i + 2]
            a += wgt * buf[i + 3]
    return r, g, b, a


@numba.njit(cache=True, inline="always")
def _warp(Hm, x, y):
    wz = Hm[2, 0] * x + Hm[2, 1] * y + Hm[2, 2]
    return (Hm[0, 0] * x + Hm[0, 1] * y + Hm[0, 2]) / wz, (Hm[1, 0] * x + Hm[1, 1] * y + Hm[1, 2]) / wz


@numba.njit(cache=True, inline="always")
def _clamped_corner(su, sv, w, h):
    """A bilinear sample of an extending layer (crop w x h >= 2) at crop coordinates (su, sv), clamped to the
    crop, in float32 (coordinates err < 1e-3 px): (index of its top-left neighbour in the crop's RGBA floats,
    fx, fy)."""
    u = min(max(np.float32(su), np.float32(0.0)), np.float32(w - 1))
    v = min(max(np.float32(sv), np.float32(0.0)), np.float32(h - 1))
    x0 = min(np.int64(u), w - 2)
    y0 = min(np.int64(v), h - 2)
    return (y0 * w + x0) * 4, u - np.float32(x0), v - np.float32(y0)


@numba.njit(cache=True, inline="always")
def _next_run(sel, x, xb):
    """(start, end): the next run sel[start:end] of selected pixels at or after x, end <= xb + 1."""
    while x <= xb and not sel[x]:
        x += 1
    start = x
    while x <= xb and sel[x]:
        x += 1
    return start, x


@numba.njit(cache=True, inline="always")
def _last_gather(buf, off, w, h, xa, xb, sel, trans, acc, U, V):
    """The back-most, extending layer (w, h >= 2) at crop coordinates (U[x], V[x]) for x in [xa, xb] where
    sel[x]. Nothing lies behind it, so neither its alpha nor the transmittance is needed afterwards; over each
    run of selected pixels the loop is branch-free, in float32 (coordinates err < 1e-3 px)."""
    one = np.float32(1.0)
    x = xa
    while x <= xb:
        run, x = _next_run(sel, x, xb)
        for xx in range(run, x):
            t = np.float32(trans[xx])
            i, fx, fy = _clamped_corner(U[xx], V[xx], w, h)
            i += off
            j = i + w * 4
            w00 = t * (one - fx) * (one - fy)
            w01 = t * fx * (one - fy)
            w10 = t * (one - fx) * fy
            w11 = t * fx * fy
            acc[0, xx] += w00 * buf[i] + w01 * buf[i + 4] + w10 * buf[j] + w11 * buf[j + 4]
            acc[1, xx] += w00 * buf[i + 1] + w01 * buf[i + 5] + w10 * buf[j + 1] + w11 * buf[j + 5]
            acc[2, xx] += w00 * buf[i + 2] + w01 * buf[i + 6] + w10 * buf[j + 2] + w11 * buf[j + 6]


@numba.njit(cache=True, inline="always")
def _shifted_edges(buf, off, w, h, cu, cv, xa, xb, ia, ib, sel, trans, acc, U, V):
    """A translated back layer (u = x + cu, v = cv) at the columns of [xa, xb] outside [ia, ib], whose 2x2
    source neighbourhood would leave the crop: the clamped gather."""
    for x in range(xa, ia):
        U[x] = x + cu
        V[x] = cv
    for x in range(ib + 1, xb + 1):
        U[x] = x + cu
        V[x] = cv
    _last_gather(buf, off, w, h, xa, ia - 1, sel, trans, acc, U, V)
    _last_gather(buf, off, w, h, ib + 1, xb, sel, trans, acc, U, V)


@numba.njit(cache=True, inline="always")
def _shifted_row(buf, i0, j0, w00, w01, w10, w11, xa, xb, sel, trans, acc):
    """A translated back layer: acc[:, x] += trans[x] * bilinear for x in [xa, xb] where sel[x], pixel x reading
    buf at i0 + 4 x, j0 + 4 x and their right neighbours with the same weights for every x."""
    x = xa
    while x <= xb:
        run, x = _next_run(sel, x, xb)
        if x == run:
            continue
        # slices, not indices into buf: LLVM then knows the loads do not alias acc
        a, b = buf[i0 + 4 * run:i0 + 4 * x], buf[i0 + 4 * run + 4:i0 + 4 * x + 4]
        c, d = buf[j0 + 4 * run:j0 + 4 * x], buf[j0 + 4 * run + 4:j0 + 4 * x + 4]
        r, g, bl = acc[0], acc[1], acc[2]
        for xx in range(run, x):
            t = np.float32(trans[xx])
            k = 4 * (xx - run)
            r[xx] += t * (w00 * a[k] + w01 * b[k] + w10 * c[k] + w11 * d[k])
            g[xx] += t * (w00 * a[k + 1] + w01 * b[k + 1] + w10 * c[k + 1] + w11 * d[k + 1])
            bl[xx] += t * (w00 * a[k + 2] + w01 * b[k + 2] + w10 * c[k + 2] + w11 * d[k + 2])
