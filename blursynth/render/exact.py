"""The exact integrator: per pixel and time sample, front-to-back compositing of inverse-warped layers.

Pixel centres sit at integer coordinates. A layer is sampled bilinearly from its premultiplied crop; outside
the crop it is transparent, unless it extends (an opaque background), where coordinates are clamped, the
same as replicating its border.

This file plans the samples (per-pixel sample levels from each layer's swept footprint, per-sample
homographies) and dispatches; the numba kernels live beside it: render/gather.py (the reference gather over
every pixel, `_integrate`, and the bilinear sampling all kernels share), render/runs.py (the default sweep
over runs of pixels objects reach, `_integrate_runs`), render/tiles.py (the rotating background as shifted
tiles) and render/sharp.py (the sharp image and blur map).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..motion import exposure_times
from ..layers import Scene
from .gather import OPAQUE_EPS, _integrate
from .pack import PackedLayers, crop_boxes, image_to_crop, pad_transparent
from .runs import _integrate_runs
from .samples import samples_for
from .sharp import _sharp_map
from .tiles import _background_tiles

__all__ = ["BG_GRID", "FOOTPRINT_SCALE", "OPAQUE_EPS", "SHIFT_TOL_PX", "TILE", "ExactPlan", "integrate_exact",
           "per_sample_transforms", "plan_exact", "sharp_and_blur_map"]


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


def sharp_and_blur_map(packed: PackedLayers, scene: Scene, reference_time: float, sharp: np.ndarray | None = None,
                       blur_map: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Latent image at `reference_time` and the per-pixel displacement over the exposure (see Exposure), written
    into `sharp` and `blur_map` where given (float32 (H, W, 3), C-contiguous; every value is written), else into
    new arrays."""
    width, height = scene.size
    Hinv, boxes = per_sample_transforms(packed, scene, np.array([reference_time]))
    # image at reference time -> image at t = 0 and t = 1, per layer
    to_start = np.stack([l.motion.at(0.0)[0] @ np.linalg.inv(l.motion.at(reference_time)[0]) for l in scene.layers])
    to_end = np.stack([l.motion.at(1.0)[0] @ np.linalg.inv(l.motion.at(reference_time)[0]) for l in scene.layers])
    sharp = np.empty((height, width, 3), dtype=np.float32) if sharp is None else sharp
    blur_map = np.empty((height, width, 3), dtype=np.float32) if blur_map is None else blur_map
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
