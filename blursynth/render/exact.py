"""The exact integrator: per pixel and time sample, front-to-back compositing of inverse-warped layers.

Pixel centres sit at integer coordinates. A layer is sampled bilinearly from its premultiplied crop; outside
the crop it is transparent, unless it extends (an opaque background), where coordinates are clamped, the
same as replicating its border.
"""
from __future__ import annotations

import numba
import numpy as np

from ..motion import exposure_times
from ..scene import Scene
from .pack import PackedLayers, crop_boxes, image_to_crop

# compositing stops once the remaining transmittance is below this
OPAQUE_EPS = 1e-6


def integrate_exact(packed: PackedLayers, scene: Scene, samples: int | None = None, max_samples: int = 256) -> np.ndarray:
    """Mean over the exposure of the composited latent images -> float32 (H, W, 3) linear.

    Each pixel is integrated with about one time sample per pixel of path of the fastest layer that can reach
    it: every moving segment gets its own sample count, and the pixels inside its swept footprint (the union
    of its boxes over the exposure) use the largest count among the footprints covering them and the
    background. Pixels outside every footprint see only the extending background layers; when those only
    translate, their integral is a convolution with the PSF, which equals the bilinear-gather integral (see
    tests/test_render.py) at a fraction of the cost.

    Args:
        samples: one fixed sample count for every pixel instead (e.g. to compare with a reference).
    """
    from . import samples_for

    width, height = scene.size
    L = len(scene.layers)
    background = [l for l in scene.layers if l.extend]
    if samples is not None:
        counts = np.full(L, int(samples))
        bg_count = int(samples)
    else:
        counts = np.array([samples_for(Scene([l]), max_samples) for l in scene.layers])
        bg_count = samples_for(Scene(background), max_samples) if background else 1
    levels = np.unique(np.concatenate([counts, [bg_count]]))
    level_of = {int(n): i for i, n in enumerate(levels)}
    start = np.concatenate([[0], np.cumsum(levels)]).astype(np.int64)
    Hinv = np.empty((start[-1], L, 3, 3))
    boxes = np.empty((start[-1], L, 4), dtype=np.int64)
    for g, n in enumerate(levels):
        Hinv[start[g]:start[g + 1]], boxes[start[g]:start[g + 1]] = _per_sample(packed, scene, exposure_times(int(n)))
    footprint = np.zeros((L, 4), dtype=np.int64)
    need = np.zeros(L, dtype=np.int64)
    for l in range(L):
        own = boxes[start[level_of[int(counts[l])]]:start[level_of[int(counts[l])] + 1], l]
        footprint[l] = own[:, 0].min(), own[:, 1].min(), own[:, 2].max(), own[:, 3].max()
        need[l] = level_of[int(counts[l])]
    out = np.empty((height, width, 3), dtype=np.float32)
    prefilled = False
    if samples is None and background and all(l.motion.is_translation for l in background):
        from .layered import integrate_layered

        out[:] = integrate_layered(Scene(background), exposure_times(bg_count))
        prefilled = True
    _integrate(packed.buf, packed.offsets, packed.dims, packed.extend, Hinv, boxes, start, footprint, need,
               level_of[bg_count], prefilled, out)
    return out


def sharp_and_blur_map(packed: PackedLayers, scene: Scene, reference_time: float) -> tuple[np.ndarray, np.ndarray]:
    """Latent image at `reference_time` and the per-pixel displacement over the exposure (see Exposure)."""
    width, height = scene.size
    Hinv, boxes = _per_sample(packed, scene, np.array([reference_time]))
    # image at reference time -> image at t = 0 and t = 1, per layer
    to_start = np.stack([l.motion.at(0.0)[0] @ np.linalg.inv(l.motion.at(reference_time)[0]) for l in scene.layers])
    to_end = np.stack([l.motion.at(1.0)[0] @ np.linalg.inv(l.motion.at(reference_time)[0]) for l in scene.layers])
    sharp = np.empty((height, width, 3), dtype=np.float32)
    blur_map = np.empty((height, width, 3), dtype=np.float32)
    _sharp_map(packed.buf, packed.offsets, packed.dims, packed.extend, Hinv[0], boxes[0], to_start, to_end,
               sharp, blur_map)
    return sharp, blur_map


def _per_sample(packed: PackedLayers, scene: Scene, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, L, 3, 3) image-to-crop homographies and (N, L, 4) image-space boxes per time sample and layer."""
    width, height = scene.size
    n, L = len(times), len(scene.layers)
    Hinv = np.empty((n, L, 3, 3))
    boxes = np.empty((n, L, 4), dtype=np.int64)
    for l, layer in enumerate(scene.layers):
        H = layer.motion.at(times)
        Hinv[:, l] = image_to_crop(H, packed.origin[l])
        boxes[:, l] = crop_boxes(H, packed.origin[l], packed.dims[l], width, height)
    return Hinv, boxes


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
        return (w00 * buf[i] + w01 * buf[i + 4] + w10 * buf[j] + w11 * buf[j + 4],
                w00 * buf[i + 1] + w01 * buf[i + 5] + w10 * buf[j + 1] + w11 * buf[j + 5],
                w00 * buf[i + 2] + w01 * buf[i + 6] + w10 * buf[j + 2] + w11 * buf[j + 6],
                w00 * buf[i + 3] + w01 * buf[i + 7] + w10 * buf[j + 3] + w11 * buf[j + 7])
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


@numba.njit(parallel=True, cache=True)
def _integrate(buf, offsets, dims, extend, Hinv, boxes, start, footprint, need, bg_level, prefilled, out):
    # Hinv, boxes: per time sample and layer, for every sample-count level g at rows start[g]:start[g + 1].
    # A pixel's level is the largest among the background's and the footprints covering it.
    # Loop order row -> level -> time sample -> layer (front to back) -> x: each (sample, layer) sweeps a
    # contiguous run of the row, with per-pixel transmittance carried in a row buffer.
    height, width = out.shape[0], out.shape[1]
    L = Hinv.shape[1]
    G = start.shape[0] - 1
    for y in numba.prange(height):
        level = np.full(width, bg_level, dtype=np.int64)
        covered = np.zeros(width, dtype=np.bool_)
        for l in range(L):
            if not extend[l] and footprint[l, 1] <= y <= footprint[l, 3]:
                for x in range(max(footprint[l, 0], 0), min(footprint[l, 2], width - 1) + 1):
                    covered[x] = True
                    if need[l] > level[x]:
                        level[x] = need[l]
        acc = np.zeros((width, 3))
        trans = np.empty(width)
        sel = np.empty(width, dtype=np.bool_)
        for g in range(G):
            any_sel = False
            for x in range(width):
                sel[x] = level[x] == g and (covered[x] or not prefilled)
                any_sel = any_sel or sel[x]
            if not any_sel:
                continue
            acc[:] = 0.0
            for k in range(start[g], start[g + 1]):
                trans[:] = 1.0
                for l in range(L - 1, -1, -1):
                    if extend[l]:
                        xa, xb = 0, width - 1
                    elif boxes[k, l, 1] <= y <= boxes[k, l, 3]:
                        xa, xb = max(boxes[k, l, 0], 0), min(boxes[k, l, 2], width - 1)
                    else:
                        continue
                    _sweep(buf, offsets[l], dims[l, 0], dims[l, 1], extend[l], Hinv[k, l], y, xa, xb, sel, trans, acc)
            inv_n = 1.0 / (start[g + 1] - start[g])
            for x in range(width):
                if sel[x]:
                    out[y, x, 0] = acc[x, 0] * inv_n
                    out[y, x, 1] = acc[x, 1] * inv_n
                    out[y, x, 2] = acc[x, 2] * inv_n


@numba.njit(cache=True, inline="always")
def _sweep(buf, off, w, h, ext, Hm, y, xa, xb, sel, trans, acc):
    """Composite one layer under the row's current transmittance, for x in [xa, xb] where sel[x]."""
    h00, h01, h02 = Hm[0, 0], Hm[0, 1], Hm[0, 2]
    h10, h11, h12 = Hm[1, 0], Hm[1, 1], Hm[1, 2]
    h20, h21, h22 = Hm[2, 0], Hm[2, 1], Hm[2, 2]
    cu = h01 * y + h02
    cv = h11 * y + h12
    cw = h21 * y + h22
    affine = h20 == 0.0 and h21 == 0.0
    inv_w = 1.0 / cw
    if ext and w >= 2 and h >= 2:
        # clamped sampling never leaves the crop: no bounds checks
        for x in range(xa, xb + 1):
            t = trans[x]
            if not sel[x] or t < OPAQUE_EPS:
                continue
            if affine:
                u = (h00 * x + cu) * inv_w
                v = (h10 * x + cv) * inv_w
            else:
                wz = h20 * x + cw
                u = (h00 * x + cu) / wz
                v = (h10 * x + cv) / wz
            u = min(max(u, 0.0), w - 1.0)
            v = min(max(v, 0.0), h - 1.0)
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
            acc[x, 0] += t * (w00 * buf[i] + w01 * buf[i + 4] + w10 * buf[j] + w11 * buf[j + 4])
            acc[x, 1] += t * (w00 * buf[i + 1] + w01 * buf[i + 5] + w10 * buf[j + 1] + w11 * buf[j + 5])
            acc[x, 2] += t * (w00 * buf[i + 2] + w01 * buf[i + 6] + w10 * buf[j + 2] + w11 * buf[j + 6])
            trans[x] = t * (1.0 - a)
        return
    for x in range(xa, xb + 1):
        t = trans[x]
        if not sel[x] or t < OPAQUE_EPS:
            continue
        if affine:
            u = (h00 * x + cu) * inv_w
            v = (h10 * x + cv) * inv_w
        else:
            wz = h20 * x + cw
            u = (h00 * x + cu) / wz
            v = (h10 * x + cv) / wz
        r, g, b, a = _sample(buf, off, w, h, ext, u, v)
        if a == 0.0:
            continue
        acc[x, 0] += t * r
        acc[x, 1] += t * g
        acc[x, 2] += t * b
        trans[x] = t * (1.0 - a)


@numba.njit(parallel=True, cache=True)
def _sharp_map(buf, offsets, dims, extend, Hinv, boxes, to_start, to_end, sharp, blur_map):
    height, width = sharp.shape[0], sharp.shape[1]
    L = Hinv.shape[0]
    for y in numba.prange(height):
        for x in range(width):
            cr = cg = cb = 0.0
            dx = dy = wsum = 0.0
            trans = 1.0
            for l in range(L - 1, -1, -1):
                if not extend[l]:
                    bx = boxes[l]
                    if x < bx[0] or x > bx[2] or y < bx[1] or y > bx[3]:
                        continue
                u, v = _warp(Hinv[l], x, y)
                r, g, b, a = _sample(buf, offsets[l], dims[l, 0], dims[l, 1], extend[l], u, v)
                cr += trans * r
                cg += trans * g
                cb += trans * b
                wgt = trans * a
                if wgt > 0.0:
                    sx, sy = _warp(to_start[l], x, y)
                    ex, ey = _warp(to_end[l], x, y)
                    dx += wgt * (ex - sx)
                    dy += wgt * (ey - sy)
                    wsum += wgt
                trans *= 1.0 - a
                if trans < OPAQUE_EPS:
                    break
            sharp[y, x, 0] = cr
            sharp[y, x, 1] = cg
            sharp[y, x, 2] = cb
            if wsum > 0.0:
                dx /= wsum
                dy /= wsum
            m = np.sqrt(dx * dx + dy * dy)
            if m > 1e-9:
                blur_map[y, x, 0] = dx / m
                blur_map[y, x, 1] = dy / m
            else:
                blur_map[y, x, 0] = 0.0
                blur_map[y, x, 1] = 0.0
            blur_map[y, x, 2] = m
