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
from .pack import PackedLayers, crop_boxes, image_to_crop, pad_transparent
from .samples import samples_for

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
        Hinv[start[g]:start[g + 1]], boxes[start[g]:start[g + 1]] = per_sample_transforms(packed, scene, exposure_times(int(n)))
    index = np.zeros(levels[-1] + 1, dtype=np.int64)
    index[levels] = np.arange(len(levels))
    level, covered = _footprints(scene, [level_of[c] for c in counts], index[bg_counts])
    return ExactPlan(Hinv=Hinv, boxes=boxes, start=start, level=level, covered=covered, samples=int(levels[-1]),
                     bg_samples=int(bg_counts.max()))


def integrate_exact(packed: PackedLayers, scene: Scene, samples: int | None = None,
                    max_samples: int = 256, shortcuts: bool = True) -> tuple[np.ndarray, int]:
    """Mean over the exposure of the composited latent images.

    Returns (float32 (H, W, 3) linear blur, the largest number of time samples any pixel used).

    The sample counts are `plan_exact`'s. Pixels outside every footprint (not `plan.covered`) see only the
    extending background layers; with the adaptive counts, their integral is taken by a cheaper route:
    - when the background only translates, it is a convolution with the PSF, which equals the bilinear-gather
      integral (see tests/test_render.py) at a fraction of the cost;
    - when one extending back layer rotates or zooms (a rotational camera), `_background_tiles` integrates
      TILE x TILE pixel tiles as shifted bilinear copies, one shift per tile and time sample, wherever that
      shift is within SHIFT_TOL_PX of every pixel's true source position, and gathers per pixel elsewhere.
    The pixels objects reach are then integrated by `_integrate_runs`: each layer sampled over runs of pixels
    that share an integer source neighbourhood, on crops padded with a transparent pixel (`pad_transparent`),
    in float32 coordinates for affine maps (< 1e-3 px), and only where the layers in front leave a
    transmittance of at least OPAQUE_EPS (early exit on opaque coverage).

    Args:
        samples: one fixed sample count for every pixel instead, every pixel gathered (e.g. to compare with a
            reference).
        shortcuts: False gathers every pixel at the adaptive counts too (what the shortcuts are checked against,
            and what the CUDA kernel computes).
    """
    width, height = scene.size
    plan = plan_exact(packed, scene, samples, max_samples)
    background = [l for l in scene.layers if l.extend]
    out = np.empty((height, width, 3), dtype=np.float32)
    prefilled = False
    quick = shortcuts and samples is None
    if quick and background and all(l.motion.is_translation for l in background):
        from .layered import integrate_layered

        out[:] = integrate_layered(Scene(background), exposure_times(plan.bg_samples))
        prefilled = True
    elif quick and len(background) == 1 and scene.layers[0].extend and min(packed.dims[0]) >= 2:
        _background_tiles(packed.buf, packed.offsets[0], packed.dims[0, 0], packed.dims[0, 1],
                          np.ascontiguousarray(plan.Hinv[:, 0]), plan.start, plan.level, plan.covered, TILE,
                          SHIFT_TOL_PX, out)
        prefilled = True
    if quick:
        pbuf, poffsets, pdims = pad_transparent(packed)
        _integrate_runs(packed.buf, packed.offsets, packed.dims, packed.extend, pbuf, poffsets, pdims, plan.Hinv,
                        plan.boxes, plan.start, plan.level, plan.covered, prefilled, out)
    else:
        _integrate(packed.buf, packed.offsets, packed.dims, packed.extend, plan.Hinv, plan.boxes, plan.start,
                   plan.level, plan.covered, prefilled, out)
    return out, plan.samples


FOOTPRINT_SCALE = 4
# background tiles integrated as shifted copies: side in pixels, and the largest distance (pixels) allowed
# between a pixel's true source position and the one its tile's shift gives it (well below the ~0.5 px that
# one time sample per pixel of path already leaves between consecutive samples)
TILE = 8
SHIFT_TOL_PX = 0.05


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
            longest = np.maximum(longest, _path_lengths(layer.motion.H, pts))
    corner = longest.reshape(gh + 1, gw + 1)
    cell = np.maximum(np.maximum(corner[:-1, :-1], corner[1:, :-1]), np.maximum(corner[:-1, 1:], corner[1:, 1:]))
    need = np.where(cell > 0, np.ceil(cell).astype(np.int64) + 1, 1)
    ladder = np.array([_ladder(int(n), max_samples) for n in range(int(need.max()) + 1)])
    return ladder[need]


def _path_lengths(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Polyline length in pixels of each point's path through the homographies H (T, 3, 3): float64 (P,) for
    pts (P, 2). What Motion.trace gives, through one batched matmul instead of an einsum (3x faster here)."""
    q = np.matmul(H, np.concatenate([pts, np.ones((len(pts), 1))], axis=1).T)  # (T, 3, P)
    d = np.diff(q[:, :2] / q[:, 2:3], axis=0)
    return np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2).sum(axis=0)


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
    Hinv, boxes = per_sample_transforms(packed, scene, np.array([reference_time]))
    # image at reference time -> image at t = 0 and t = 1, per layer
    to_start = np.stack([l.motion.at(0.0)[0] @ np.linalg.inv(l.motion.at(reference_time)[0]) for l in scene.layers])
    to_end = np.stack([l.motion.at(1.0)[0] @ np.linalg.inv(l.motion.at(reference_time)[0]) for l in scene.layers])
    sharp = np.empty((height, width, 3), dtype=np.float32)
    blur_map = np.empty((height, width, 3), dtype=np.float32)
    _sharp_map(packed.buf, packed.offsets, packed.dims, packed.extend, Hinv[0], boxes[0], to_start, to_end,
               sharp, blur_map)
    return sharp, blur_map


def per_sample_transforms(packed: PackedLayers, scene: Scene, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
