"""Relative sharpness: which patches of a blurry video are its sharpest, relative to the video itself.

Two measurements per patch of frame k:

- detail energy G = mean over the patch of (I - G_1 * I)^2, I the encoded gray in [0, 1] and G_1 a 1 px
  Gaussian (a high-pass: the gradient energy of the finest scale, which blur removes first), less the share
  the frame's noise adds (`EnergyMap`). Blur lowers it; the content changes it too, so it is compared only with
  the same content in the frames at most `window` frames away, found by following the patch with the mean flow
  over it (`tracked_reference`): the relative energy g = G / max_{|j - k| <= window} G_j(followed patch) lies in
  [0, 1], 1 for the sharpest view of that content nearby.
- flow blur b = the 90th percentile over the patch of the blur magnitude from the flow (`adapt.domain`): how
  far the content moved during the exposure, px.

score = g / (1 + (b / tolerance)^2): the energy says how sharp the frame came out (it sees exposure changes,
defocus, and motion the flow misses), the flow says how fast the content moved (it sees blur on content whose
energy barely changes). A patch is eligible when its reference energy reaches `min_texture` x the video's
median (flat regions make poor training pairs and an unreliable ratio); the `ratio` best-scoring eligible
patches of each video are its pseudo-sharp patches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


def patch_grid(size: tuple[int, int], patch: int, stride: int) -> np.ndarray:
    """Top-left corners of the patches tiling a frame.

    Args:
        size: (width, height) of the frame, px.
        patch: side of a patch, px.
        stride: step between patches, px. The last row and column are moved in to end at the frame's edge, so
            the grid covers the frame whenever patch <= both sides.
    Returns:
        int64 (P, 2) (x0, y0), row-major; empty when the patch does not fit.
    """
    w, h = size
    if patch > w or patch > h:
        return np.zeros((0, 2), np.int64)
    xs = _starts(w, patch, stride)
    ys = _starts(h, patch, stride)
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.int64)


def _starts(length: int, patch: int, stride: int) -> np.ndarray:
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return np.array(starts, np.int64)


class EnergyMap:
    """Detail energy of one frame, ready for means over any patch (an integral image at half resolution).

    Energy e = (I - G_1 * I)^2, I the encoded gray in [0, 1] and G_1 a Gaussian of 1 px: a high-pass that weighs
    the finest detail, which blur removes first (on engine-rendered clips it told 3-6 px blur from sharp better
    than the squared gradient did). `means` takes noise_sigma^2 x `_noise_gain`, the share white noise of that
    standard deviation adds, off every mean.

    Args:
        frame: uint8 (H, W, 3) RGB.
        noise_sigma: noise standard deviation of the encoded gray, [0, 1] units.
    """

    SCALE = 2  # the energy is area-averaged over SCALE x SCALE blocks before the integral image
    SIGMA_PX = 1.0

    def __init__(self, frame: np.ndarray, noise_sigma: float = 0.0):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / np.float32(255.0)
        energy = np.square(gray - cv2.GaussianBlur(gray, (0, 0), self.SIGMA_PX, borderType=cv2.BORDER_REFLECT))
        h, w = gray.shape
        small = cv2.resize(energy, (max(1, w // self.SCALE), max(1, h // self.SCALE)), interpolation=cv2.INTER_AREA)
        self.table = cv2.integral(small, sdepth=cv2.CV_64F)
        self.size = (w, h)
        self.floor = _noise_gain(self.SIGMA_PX) * float(noise_sigma) ** 2

    def means(self, corners: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean energy of patch x patch boxes at (possibly fractional) top-left corners.

        Returns:
            (energy float64 (P,), inside bool (P,)): boxes are clamped into the frame; inside says whether at
            least 3/4 of a box's side lay within it on both axes before the clamp.
        """
        w, h = self.size
        corners = np.asarray(corners, np.float64)
        inside = np.all((corners >= -patch / 4) & (corners <= np.array([w, h]) - patch * 3 / 4), axis=1)
        th, tw = self.table.shape[0] - 1, self.table.shape[1] - 1
        side = max(1, int(round(patch / self.SCALE)))
        x0 = np.clip(np.rint(corners[:, 0] / self.SCALE).astype(np.int64), 0, max(tw - side, 0))
        y0 = np.clip(np.rint(corners[:, 1] / self.SCALE).astype(np.int64), 0, max(th - side, 0))
        x1, y1 = np.minimum(x0 + side, tw), np.minimum(y0 + side, th)
        t = self.table
        total = t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0]
        return np.maximum(total / ((x1 - x0) * (y1 - y0)) - self.floor, 0.0), inside


@lru_cache(maxsize=4)
def _noise_gain(sigma_px: float) -> float:
    """Variance of (I - G * I) per unit variance of white noise in I: the squared taps of delta - G, summed."""
    delta = np.zeros((41, 41), np.float32)
    delta[20, 20] = 1.0
    response = delta - cv2.GaussianBlur(delta, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    return float(np.sum(np.square(response, dtype=np.float64)))


def detail_energy(frame: np.ndarray, corners: np.ndarray, patch: int, noise_sigma: float = 0.0) -> np.ndarray:
    """Mean detail energy of each patch of a frame, noise share removed (`EnergyMap`).

    Args:
        frame: uint8 (H, W, 3) RGB.
        corners: (P, 2) top-left (x0, y0) of each patch, px.
        patch: side of the patches, px.
        noise_sigma: noise standard deviation of the encoded gray, [0, 1] units.
    Returns:
        float64 (P,), encoded gray units squared.
    """
    return EnergyMap(frame, noise_sigma).means(corners, patch)[0]


class FlowMeans:
    """Mean flow over boxes, from an integral image of a flow field on a reduced grid.

    Args:
        flow: float32 (h, w, 2) in full-resolution px.
        size: (W, H) of the full-resolution frame.
    """

    def __init__(self, flow: np.ndarray, size: tuple[int, int]):
        self.table = cv2.integral(np.ascontiguousarray(flow, np.float32), sdepth=cv2.CV_64F)
        h, w = flow.shape[:2]
        self.scale = (w / size[0], h / size[1])

    def track(self, corners: np.ndarray, patch: int) -> np.ndarray:
        """Where the content of each box goes: corners (P, 2) float plus the box's mean flow."""
        sx, sy = self.scale
        th, tw = self.table.shape[0] - 1, self.table.shape[1] - 1
        x0 = np.clip(np.floor(corners[:, 0] * sx).astype(np.int64), 0, tw - 1)
        y0 = np.clip(np.floor(corners[:, 1] * sy).astype(np.int64), 0, th - 1)
        x1 = np.clip(np.ceil((corners[:, 0] + patch) * sx).astype(np.int64), x0 + 1, tw)
        y1 = np.clip(np.ceil((corners[:, 1] + patch) * sy).astype(np.int64), y0 + 1, th)
        t = self.table
        total = t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0]
        return corners + total / ((x1 - x0) * (y1 - y0))[:, None]


def tracked_reference(center: int, maps: dict, forward: dict, backward: dict, corners: np.ndarray, patch: int,
                      window: int) -> tuple[np.ndarray, np.ndarray]:
    """Energy of frame `center`'s patches and the largest energy of the same content within `window` frames.

    Each patch is followed frame by frame with the mean flow over its box (forward through `forward[k]`, the
    flow k -> k + 1, backward through `backward[k]`, the flow k -> k - 1), so it is compared with the same
    surface, not the same pixels, in the neighbouring frames; a comparison is dropped once the followed box
    leaves the frame.

    Args:
        maps: {frame: EnergyMap} holding at least the window's frames that exist.
        forward, backward: {frame: FlowMeans}.
    Returns:
        (energy float64 (P,), reference float64 (P,)) with reference >= energy.
    """
    energy, _ = maps[center].means(corners, patch)
    reference = energy.copy()
    for step, flows in ((1, forward), (-1, backward)):
        pos = corners.astype(np.float64)
        alive = np.ones(len(corners), bool)
        k = center
        for _ in range(window):
            if k not in flows or k + step not in maps:
                break
            pos = flows[k].track(pos, patch)
            k += step
            e, inside = maps[k].means(pos, patch)
            alive &= inside
            reference = np.where(alive, np.maximum(reference, e), reference)
    return energy, reference


def patch_blur(magnitude: np.ndarray, valid: np.ndarray, corners: np.ndarray, patch: int, scale: tuple[float, float],
               q: float = 90.0) -> np.ndarray:
    """The q-th percentile of a blur-magnitude map over each patch.

    Args:
        magnitude: float (h, w) blur magnitude px, on a grid `scale` = (w / W, h / H) of the frame's.
        valid: bool (h, w) pixels to use.
        corners, patch: the patches, in frame pixels.
    Returns:
        float64 (P,) px; NaN for a patch with no valid pixel.
    """
    sx, sy = scale
    h, w = magnitude.shape
    out = np.full(len(corners), np.nan)
    for i, (x0, y0) in enumerate(corners):
        c0, r0 = int(math.floor(x0 * sx)), int(math.floor(y0 * sy))
        c1 = min(max(int(math.ceil((x0 + patch) * sx)), c0 + 1), w)
        r1 = min(max(int(math.ceil((y0 + patch) * sy)), r0 + 1), h)
        m = magnitude[r0:r1, c0:c1][valid[r0:r1, c0:c1]]
        if m.size:
            out[i] = np.percentile(m, q)
    return out


@dataclass
class SharpnessScores:
    """Per-patch sharpness of one video; arrays are (N frames, P patches).

    Attributes:
        energy: detail energy G.
        reference: max of G over the frames at most `window` away (same location).
        relative: G / reference in [0, 1] (0 where the reference is 0).
        blur_px: flow blur (90th percentile over the patch), px; NaN where no flow held.
        score: relative / (1 + (blur_px / tolerance)^2); NaN where blur_px is.
        eligible: bool, textured enough and measured.
    """

    energy: np.ndarray
    reference: np.ndarray
    relative: np.ndarray
    blur_px: np.ndarray
    score: np.ndarray
    eligible: np.ndarray

    def frame_scores(self) -> np.ndarray:
        """(N,) median score of each frame's eligible patches (NaN for a frame with none)."""
        s = np.where(self.eligible, self.score, np.nan)
        out = np.full(len(s), np.nan)
        rows = np.any(self.eligible, axis=1)
        out[rows] = np.nanmedian(s[rows], axis=1)
        return out


def score_patches(energy: np.ndarray, reference: np.ndarray, blur_px: np.ndarray, tolerance_px: float,
                  min_texture: float) -> SharpnessScores:
    """Relative sharpness of every patch (see the module docstring).

    Args:
        energy: float (N, P) detail energy of patch p in frame k.
        reference: float (N, P) the largest energy of the same content within the window (`tracked_reference`).
        blur_px: float (N, P) flow blur, px (NaN where unknown).
        tolerance_px: flow blur that halves the score.
        min_texture: eligible when reference >= min_texture x median reference of the video.
    """
    energy = np.asarray(energy, np.float64)
    reference = np.maximum(np.asarray(reference, np.float64), energy)
    relative = np.divide(energy, reference, out=np.zeros_like(energy), where=reference > 0)
    blur_px = np.asarray(blur_px, np.float64)
    score = relative / (1.0 + np.square(blur_px / tolerance_px))
    floor = min_texture * float(np.median(reference)) if reference.size else 0.0
    eligible = (reference > 0) & (reference >= floor) & np.isfinite(score)
    return SharpnessScores(energy, reference, relative, blur_px, score, eligible)


def select_sharpest(scores: SharpnessScores, ratio: float, max_blur_px: float = 0.0) -> np.ndarray:
    """The `ratio` share (rounded up) of eligible patches with the highest score, less those whose flow blur
    exceeds `max_blur_px`.

    The ratio is relative to the video, so a video with few still moments hands blurred patches over as targets
    (benchmarks/adapt.py: a pan still for about 2 frames in 20, blurring the frames next to them 6 px: the 20%
    best patches have a true blur of 5.9 px on average, 1.5 px under a cap of 3 px); the cap keeps only patches
    the flow says moved at most `max_blur_px` during the exposure (0: no cap).

    Returns:
        int64 (S, 2) (frame, patch) pairs sorted by frame, then patch (ties in score go to the earlier one).
    """
    frames, patches = np.nonzero(scores.eligible)
    if frames.size == 0:
        return np.zeros((0, 2), np.int64)
    keep = int(math.ceil(ratio * frames.size - 1e-9))
    order = np.lexsort((patches, frames, -scores.score[frames, patches]))[:keep]
    if max_blur_px > 0:
        order = order[scores.blur_px[frames[order], patches[order]] <= max_blur_px]
    chosen = np.stack([frames[order], patches[order]], axis=1)
    return chosen[np.lexsort((chosen[:, 1], chosen[:, 0]))].astype(np.int64)
