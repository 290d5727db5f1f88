"""The exact integrator: per pixel and time sample, front-to-back compositing of inverse-warped layers.

Pixel centres sit at integer coordinates. A layer is sampled bilinearly from its premultiplied crop; outside
the crop it is transparent, unless it extends (an opaque background), where coordinates are clamped, the
same as replicating its border.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np

from ..motion import exposure_times
from ..scene import Scene
from .pack import PackedLayers, crop_boxes, image_to_crop

# compositing stops once the remaining transmittance is below this
OPAQUE_EPS = 1e-6


@dataclass
class ExactPlan:
    """What the exact integral needs besides the packed layers: per-pixel sample levels and per-sample maps.

    Attributes:
        Hinv: float64 (K, L, 3, 3) image-to-crop homographies per time-sample row and layer; the rows of level g
            are start[g]:start[g + 1], at `exposure_times(start[g + 1] - start[g])`.
        boxes: int64 (K, L, 4) image-space boxes (x0, y0, x1, y1) of each layer per row.
        start: int64 (G + 1,) first row of each sample-count level.
        level: int64 (H, W) a pixel's level.
        covered: bool (H, W) whether a non-extending layer can reach the pixel during the exposure.
        samples: the largest sample count.
        bg_samples: the largest background sample count (what a prefilled background is integrated at).
    """

    Hinv: np.ndarray
    boxes: np.ndarray
    start: np.ndarray
    level: np.ndarray
    covered: np.ndarray
    samples: int
    bg_samples: int


def plan_exact(packed: PackedLayers, scene: Scene, samples: int | None = None, max_samples: int = 256) -> ExactPlan:
    """Each pixel gets about one time sample per pixel of path of the fastest layer that can reach it: every
    moving segment gets its own sample count, and the pixels inside its swept footprint (where its alpha is
    non-zero at some time, see `_footprints`) use the largest count among the footprints covering them and the
    background's (per BG_GRID cell). `samples` fixes one count for every pixel instead."""
    from . import samples_for

    width, height = scene.size
    L = len(scene.layers)
    background = [l for l in scene.layers if l.extend]
    if samples is not None:
        counts = [int(samples)] * L
        bg_counts = np.full((-(-height // BG_GRID), -(-width // BG_GRID)), int(samples), dtype=np.int64)
    else:
        counts = [_ladder(samples_for(Scene([l]), max_samples), max_samples) for l in scene.layers]
        bg_counts = _background_counts(background, width, height, max_samples)
    levels = sorted(set(counts) | set(np.unique(bg_counts).tolist()))
    level_of = {n: i for i, n in enumerate(levels)}
    start = np.concatenate([[0], np.cumsum(levels)]).astype(np.int64)
    Hinv = np.empty((start[-1], L, 3, 3))
    boxes = np.empty((start[-1], L, 4), dtype=np.int64)
    for g, n in enumerate(levels):
        Hinv[start[g]:start[g + 1]], boxes[start[g]:start[g + 1]] = _per_sample(packed, scene, exposure_times(int(n)))
    index = np.zeros(levels[-1] + 1, dtype=np.int64)
    index[levels] = np.arange(len(levels))
    level, covered = _footprints(scene, [level_of[c] for c in counts], index[bg_counts])
    return ExactPlan(Hinv=Hinv, boxes=boxes, start=start, level=level, covered=covered, samples=int(levels[-1]),
                     bg_samples=int(bg_counts.max()))


def integrate_exact(packed: PackedLayers, scene: Scene, samples: int | None = None,
                    max_samples: int = 256) -> tuple[np.ndarray, int]:
    """Mean over the exposure of the composited latent images.

    Returns (float32 (H, W, 3) linear blur, the largest number of time samples any pixel used).

    The sample counts are `plan_exact`'s. Pixels outside every footprint see only the extending background
    layers; when those only translate, their integral is a convolution with the PSF, which equals the
    bilinear-gather integral (see tests/test_render.py) at a fraction of the cost.

    Args:
        samples: one fixed sample count for every pixel instead (e.g. to compare with a reference).
    """
    width, height = scene.size
    plan = plan_exact(packed, scene, samples, max_samples)
    background = [l for l in scene.layers if l.extend]
    out = np.empty((height, width, 3), dtype=np.float32)
    prefilled = False
    if samples is None and background and all(l.motion.is_translation for l in background):
        from .layered import integrate_layered

        out[:] = integrate_layered(Scene(background), exposure_times(plan.bg_samples))
        prefilled = True
    _integrate(packed.buf, packed.offsets, packed.dims, packed.extend, plan.Hinv, plan.boxes, plan.start, plan.level,
               plan.covered, prefilled, out)
    return out, plan.samples


FOOTPRINT_SCALE = 4


def _ladder(n: int, max_samples: int) -> int:
    """Round a sample count up to the next of a geometric ladder (at most 25% more samples), so a frame holds
    few distinct counts."""
    for step in _LADDER:
        if step >= n:
            return min(step, max_samples)
    return max_samples


_LADDER = (1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
           320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096)
BG_GRID = 32


def _background_counts(background: list, width: int, height: int, max_samples: int) -> np.ndarray:
    """Sample count of the background per cell of a BG_GRID-pixel grid, from the longest path among the
    cell's corners (camera rotation moves the frame's corners more than its centre).

    Returns int64 (ceil(H / BG_GRID), ceil(W / BG_GRID)); all ones without a background.
    """
    gw, gh = -(-width // BG_GRID), -(-height // BG_GRID)
    if not background:
        return np.ones((gh, gw), dtype=np.int64)
    xs = np.minimum(np.arange(gw + 1) * BG_GRID, width - 1).astype(np.float64)
    ys = np.minimum(np.arange(gh + 1) * BG_GRID, height - 1).astype(np.float64)
    pts = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    longest = np.zeros(len(pts))
    for layer in background:
        if len(layer.motion) > 1:
            q = layer.motion.trace(pts)
            longest = np.maximum(longest, np.sum(np.linalg.norm(np.diff(q, axis=0), axis=-1), axis=0))
    corner = longest.reshape(gh + 1, gw + 1)
    cell = np.maximum(np.maximum(corner[:-1, :-1], corner[1:, :-1]), np.maximum(corner[:-1, 1:], corner[1:, 1:]))
    need = np.where(cell > 0, np.ceil(cell).astype(np.int64) + 1, 1)
    ladder = np.array([_ladder(int(n), max_samples) for n in range(int(need.max()) + 1)])
    return ladder[need]


def _footprints(scene: Scene, need: list[int], bg_level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel sample level and whether any non-extending layer can reach the pixel during the exposure.

    A layer's footprint is the union over the exposure of its alpha support, warped at 1/4 resolution at
    times spaced at most one low-resolution pixel apart along its path, grown by one low-resolution pixel
    (4 px: more than the bilinear reach plus the rounding of the coarse grid).

    Args:
        need: per layer, the index of its sample count.
        bg_level: index of the background's sample count per cell of a BG_GRID grid, (gh, gw) int64.
    Returns:
        (level int64 (H, W): index of the sample count to use, covered bool (H, W)).
    """
    width, height = scene.size
    S = FOOTPRINT_SCALE
    lw, lh = -(-width // S), -(-height // S)
    rep = BG_GRID // S
    level = np.repeat(np.repeat(bg_level, rep, axis=0), rep, axis=1)[:lh, :lw].copy()
    covered = np.zeros((lh, lw), dtype=bool)
    # low-res pixel i covers full-res pixels S i .. S i + S - 1 (centre S i + (S - 1) / 2)
    down = np.array([[1.0 / S, 0.0, -(S - 1) / (2.0 * S)], [0.0, 1.0 / S, -(S - 1) / (2.0 * S)], [0.0, 0.0, 1.0]])
    up = np.linalg.inv(down)
    kernel = np.ones((3, 3), np.uint8)
    for layer, lev in zip(scene.layers, need):
        if layer.extend:
            continue
        x0, y0, x1, y1 = layer.support_box()
        bx0, by0 = x0 // S, y0 // S
        bx1, by1 = x1 // S, y1 // S
        pad = np.zeros(((by1 - by0 + 1) * S, (bx1 - bx0 + 1) * S), dtype=bool)
        region = layer.alpha[by0 * S:(by1 + 1) * S, bx0 * S:(bx1 + 1) * S] > 0
        pad[:region.shape[0], :region.shape[1]] = region
        support = np.zeros((lh, lw), dtype=np.uint8)
        support[by0:by1 + 1, bx0:bx1 + 1] = pad.reshape(by1 - by0 + 1, S, bx1 - bx0 + 1, S).any(axis=(1, 3))
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64)
        n = int(np.ceil(layer.motion.path_length_px(corners) / S)) + 2
        swept = np.zeros((lh, lw), dtype=np.uint8)
        for H in layer.motion.at(np.linspace(0.0, 1.0, n)):
            swept |= cv2.warpPerspective(support, down @ H @ up, (lw, lh), flags=cv2.INTER_NEAREST,
                                         borderMode=cv2.BORDER_CONSTANT)
        swept = cv2.dilate(swept, kernel).astype(bool)
        covered |= swept
        level[swept] = np.maximum(level[swept], lev)
    level = np.repeat(np.repeat(level, S, axis=0), S, axis=1)[:height, :width]
    covered = np.repeat(np.repeat(covered, S, axis=0), S, axis=1)[:height, :width]
    return np.ascontiguousarray(level), np.ascontiguousarray(covered)


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


@numba.njit(parallel=True, cache=True)
def _integrate(buf, offsets, dims, extend, Hinv, boxes, start, level, covered, prefilled, out):
    # Hinv, boxes: per time sample and layer, for every sample-count level g at rows start[g]:start[g + 1];
    # level[y, x] picks a pixel's level. With `prefilled`, pixels no moving layer covers already hold the
    # background's integral.
    # Loop order row -> level -> time sample -> layer (front to back) -> x: each (sample, layer) sweeps a
    # contiguous run of the row, with per-pixel transmittance carried in a row buffer.
    height, width = out.shape[0], out.shape[1]
    L = Hinv.shape[1]
    G = start.shape[0] - 1
    for y in numba.prange(height):
        acc = np.zeros((width, 3))
        trans = np.empty(width)
        sel = np.empty(width, dtype=np.bool_)
        for g in range(G):
            any_sel = False
            for x in range(width):
                sel[x] = level[y, x] == g and (covered[y, x] or not prefilled)
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
                    _sweep(buf, offsets[l], dims[l, 0], dims[l, 1], extend[l], l == 0, Hinv[k, l], y, xa, xb, sel, trans,
                           acc)
            inv_n = 1.0 / (start[g + 1] - start[g])
            for x in range(width):
                if sel[x]:
                    out[y, x, 0] = acc[x, 0] * inv_n
                    out[y, x, 1] = acc[x, 1] * inv_n
                    out[y, x, 2] = acc[x, 2] * inv_n


@numba.njit(cache=True, inline="always")
def _sweep(buf, off, w, h, ext, last, Hm, y, xa, xb, sel, trans, acc):
    """Composite one layer under the row's current transmittance, for x in [xa, xb] where sel[x].

    `last`: the back-most layer, after which the transmittance is not read again.
    """
    h00, h01, h02 = Hm[0, 0], Hm[0, 1], Hm[0, 2]
    h10, h11, h12 = Hm[1, 0], Hm[1, 1], Hm[1, 2]
    h20, h21, h22 = Hm[2, 0], Hm[2, 1], Hm[2, 2]
    cu = h01 * y + h02
    cv = h11 * y + h12
    cw = h21 * y + h22
    affine = h20 == 0.0 and h21 == 0.0
    inv_w = 1.0 / cw
    if ext and w >= 2 and h >= 2 and last:
        # the back-most layer: nothing lies behind it, so neither its alpha nor the transmittance is needed;
        # over each run of selected pixels the loop is branch-free, in float32 (coordinates err < 1e-3 px)
        a0, a1, a2 = np.float32(h00), np.float32(h10), np.float32(h20)
        c0, c1, c2 = np.float32(cu), np.float32(cv), np.float32(cw)
        wm1, hm1 = np.float32(w - 1), np.float32(h - 1)
        zero, one = np.float32(0.0), np.float32(1.0)
        x = xa
        while x <= xb:
            while x <= xb and not sel[x]:
                x += 1
            run = x
            while x <= xb and sel[x]:
                x += 1
            for xx in range(run, x):
                t = np.float32(trans[xx])
                fxx = np.float32(xx)
                iz = one / (a2 * fxx + c2)
                u = min(max((a0 * fxx + c0) * iz, zero), wm1)
                v = min(max((a1 * fxx + c1) * iz, zero), hm1)
                x0 = min(np.int64(u), w - 2)
                y0 = min(np.int64(v), h - 2)
                fx = u - np.float32(x0)
                fy = v - np.float32(y0)
                i = off + (y0 * w + x0) * 4
                j = i + w * 4
                w00 = t * (one - fx) * (one - fy)
                w01 = t * fx * (one - fy)
                w10 = t * (one - fx) * fy
                w11 = t * fx * fy
                acc[xx, 0] += w00 * buf[i] + w01 * buf[i + 4] + w10 * buf[j] + w11 * buf[j + 4]
                acc[xx, 1] += w00 * buf[i + 1] + w01 * buf[i + 5] + w10 * buf[j + 1] + w11 * buf[j + 5]
                acc[xx, 2] += w00 * buf[i + 2] + w01 * buf[i + 6] + w10 * buf[j + 2] + w11 * buf[j + 6]
        return
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
            for x in range(xa, xb + 1):
                t = trans[x]
                if t < OPAQUE_EPS:
                    continue
                if direct and 0 <= x + dxo < w and 0 <= y + dyo < h:
                    i = off + ((y + dyo) * w + x + dxo) * 4
                    r, g, b, a = buf[i], buf[i + 1], buf[i + 2], buf[i + 3]
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
