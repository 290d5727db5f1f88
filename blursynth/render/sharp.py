"""The kernel behind `sharp_and_blur_map` (render/exact.py): the latent image at one time and the per-pixel
displacement over the exposure, composited front to back with the exact integrator's bilinear sampling
(render/gather.py). One time sample, so it has no sample levels and no shortcuts of its own.
"""
from __future__ import annotations

import numba
import numpy as np

from .gather import OPAQUE_EPS, _sample, _warp


@numba.njit(parallel=True, cache=True)
def _sharp_map(buf, offsets, dims, extend, Hinv, boxes, to_start, to_end, sharp, blur_map):
    # one time sample, row-wise like _integrate; the displacement of each layer's surface from the start to
    # the end of the exposure is averaged with the layer's compositing weight
    height, width = sharp.shape[0], sharp.shape[1]
    L = Hinv.shape[0]
    for y in numba.prange(height):
        trans = np.ones(width)
        cr = np.zeros(width)
        cg = np.zeros(width)
        cb = np.zeros(width)
        dx = np.zeros(width)
        dy = np.zeros(width)
        wsum = np.zeros(width)
        for l in range(L - 1, -1, -1):
            if extend[l]:
                xa, xb = 0, width - 1
            elif boxes[l, 1] <= y <= boxes[l, 3]:
                xa, xb = max(boxes[l, 0], 0), min(boxes[l, 2], width - 1)
            else:
                continue
            off, w, h, ext = offsets[l], dims[l, 0], dims[l, 1], extend[l]
            # an integer translation (the identity after recentring, up to rounding far below a 1e-9 px
            # sampling offset) reads pixels directly
            Hm = Hinv[l]
            dxo, dyo = int(np.round(Hm[0, 2])), int(np.round(Hm[1, 2]))
            direct = (abs(Hm[0, 0] - 1.0) < 1e-12 and abs(Hm[0, 1]) < 1e-12 and abs(Hm[1, 0]) < 1e-12
                      and abs(Hm[1, 1] - 1.0) < 1e-12 and abs(Hm[2, 0]) < 1e-15 and abs(Hm[2, 1]) < 1e-15
                      and abs(Hm[2, 2] - 1.0) < 1e-12 and abs(Hm[0, 2] - dxo) < 1e-9 and abs(Hm[1, 2] - dyo) < 1e-9)
            # displacement end - start is affine in (x, y) when both maps are affine
            S, E = to_start[l], to_end[l]
            affine_d = (S[2, 0] == 0.0 and S[2, 1] == 0.0 and S[2, 2] == 1.0
                        and E[2, 0] == 0.0 and E[2, 1] == 0.0 and E[2, 2] == 1.0)
            d00, d01, d02 = E[0, 0] - S[0, 0], E[0, 1] - S[0, 1], E[0, 2] - S[0, 2]
            d10, d11, d12 = E[1, 0] - S[1, 0], E[1, 1] - S[1, 1], E[1, 2] - S[1, 2]
            # the columns read directly, through a slice of buf (so LLVM knows its loads do not alias the rows)
            xs, xe = xa, xa - 1
            if direct and 0 <= y + dyo < h:
                xs, xe = max(xa, -dxo), min(xb, w - 1 - dxo)
            src = buf[off + ((y + dyo) * w + xs + dxo) * 4:off + ((y + dyo) * w + xe + dxo + 1) * 4] if xs <= xe \
                else buf[:0]
            for x in range(xa, xb + 1):
                t = trans[x]
                if t < OPAQUE_EPS:
                    continue
                if xs <= x <= xe:
                    i = 4 * (x - xs)
                    r, g, b, a = src[i], src[i + 1], src[i + 2], src[i + 3]
                else:
                    u, v = _warp(Hm, x, y)
                    r, g, b, a = _sample(buf, off, w, h, ext, u, v)
                if a == 0.0:
                    continue
                cr[x] += t * r
                cg[x] += t * g
                cb[x] += t * b
                wgt = t * a
                if affine_d:
                    dx[x] += wgt * (d00 * x + d01 * y + d02)
                    dy[x] += wgt * (d10 * x + d11 * y + d12)
                else:
                    sx, sy = _warp(to_start[l], x, y)
                    ex, ey = _warp(to_end[l], x, y)
                    dx[x] += wgt * (ex - sx)
                    dy[x] += wgt * (ey - sy)
                wsum[x] += wgt
                trans[x] = t * (1.0 - a)
        for x in range(width):
            sharp[y, x, 0] = cr[x]
            sharp[y, x, 1] = cg[x]
            sharp[y, x, 2] = cb[x]
            mx, my = dx[x], dy[x]
            if wsum[x] > 0.0:
                mx /= wsum[x]
                my /= wsum[x]
            m = np.sqrt(mx * mx + my * my)
            if m > 1e-9:
                blur_map[y, x, 0] = mx / m
                blur_map[y, x, 1] = my / m
            else:
                blur_map[y, x, 0] = 0.0
                blur_map[y, x, 1] = 0.0
            blur_map[y, x, 2] = m
