"""The exact integrator's shortcut for a rotating or zooming back layer (a rotational camera) at the pixels
no object reaches: `_background_tiles` integrates TILE x TILE pixel tiles as shifted bilinear copies where
that shift is within SHIFT_TOL_PX of every pixel's true source (both in render/exact.py, passed in), and
gathers per pixel elsewhere with the clamped sample of render/gather.py.
"""
from __future__ import annotations

import numba
import numpy as np

from .gather import _clamped_corner, _warp


@numba.njit(parallel=True, cache=True)
def _background_tiles(buf, off, w, h, Hs, start, level, covered, tile, tol, out):
    # The back layer (crop w x h >= 2 at buf[off:], extending: clamped) at the pixels no other layer reaches
    # (not covered), per tile x tile pixel tile and time sample k (rows of Hs, image-to-crop homographies, by
    # level as in _integrate). The tile's centre c maps to Hs[k](c); with d = Hs[k](c) - c every pixel p is
    # sampled at p + d, one set of bilinear weights for the tile, when |Hs[k](q) - (q + d)| <= tol at the
    # tile's four corner pixels q (the deviation is affine in p up to terms of order (tile * rotation)^2,
    # so its largest value over the tile is at a corner) and p + d keeps its 2x2 neighbourhood inside the
    # crop; otherwise each pixel is gathered at Hs[k](p), as _last_gather does.
    height, width = out.shape[0], out.shape[1]
    ty_n = (height + tile - 1) // tile
    tx_n = (width + tile - 1) // tile
    G = start.shape[0] - 1
    one = np.float32(1.0)
    for ty in numba.prange(ty_n):
        # premultiplied RGBA of the tile's pixels, interleaved as in buf: a shifted row is one contiguous run
        acc = np.zeros((tile, 4 * tile), dtype=np.float32)
        ya = ty * tile
        yb = min(ya + tile, height) - 1
        for tx in range(tx_n):
            xa = tx * tile
            xb = min(xa + tile, width) - 1
            for g in range(G):
                todo = False
                for y in range(ya, yb + 1):
                    for x in range(xa, xb + 1):
                        if not covered[y, x] and level[y, x] == g:
                            todo = True
                if not todo:
                    continue
                acc[:] = 0.0
                xc, yc = 0.5 * (xa + xb), 0.5 * (ya + yb)
                for k in range(start[g], start[g + 1]):
                    Hm = Hs[k]
                    uc, vc = _warp(Hm, xc, yc)
                    du, dv = uc - xc, vc - yc
                    dev = 0.0
                    for qy in (ya, yb):
                        for qx in (xa, xb):
                            qu, qv = _warp(Hm, qx, qy)
                            dev = max(dev, np.hypot(qu - qx - du, qv - qy - dv))
                    fdu, fdv = np.floor(du), np.floor(dv)
                    shifted = (dev <= tol and xa + fdu >= 0 and xb + fdu + 1 <= w - 1 and ya + fdv >= 0
                               and yb + fdv + 1 <= h - 1)
                    if shifted:
                        fx, fy = np.float32(du - fdu), np.float32(dv - fdv)
                        w00, w01 = (one - fx) * (one - fy), fx * (one - fy)
                        w10, w11 = (one - fx) * fy, fx * fy
                        sx, sy = int(fdu), int(fdv)
                        for y in range(ya, yb + 1):
                            i0 = off + ((y + sy) * w + xa + sx) * 4
                            j0 = i0 + w * 4
                            m = 4 * (xb - xa + 1)
                            # slices: LLVM then vectorizes the row (with indices into buf it does not)
                            a, b = buf[i0:i0 + m], buf[i0 + 4:i0 + 4 + m]
                            c, d = buf[j0:j0 + m], buf[j0 + 4:j0 + 4 + m]
                            row = acc[y - ya]
                            for e in range(m):
                                row[e] += w00 * a[e] + w01 * b[e] + w10 * c[e] + w11 * d[e]
                        continue
                    for y in range(ya, yb + 1):
                        for x in range(xa, xb + 1):
                            su, sv = _warp(Hm, x, y)
                            i, fx, fy = _clamped_corner(su, sv, w, h)
                            i += off
                            j = i + w * 4
                            w00 = (one - fx) * (one - fy)
                            w01 = fx * (one - fy)
                            w10 = (one - fx) * fy
                            w11 = fx * fy
                            for c in range(3):
                                acc[y - ya, 4 * (x - xa) + c] += (w00 * buf[i + c] + w01 * buf[i + 4 + c]
                                                                  + w10 * buf[j + c] + w11 * buf[j + 4 + c])
                inv_n = np.float32(1.0 / (start[g + 1] - start[g]))
                for y in range(ya, yb + 1):
                    for x in range(xa, xb + 1):
                        if not covered[y, x] and level[y, x] == g:
                            for c in range(3):
                                out[y, x, c] = acc[y - ya, 4 * (x - xa) + c] * inv_n
