"""One streaming pass over a target video: flows, blur-condition maps, blur histogram, patch sharpness, noise.

Only the current frame, the previous one and the previous pair's backward flow are held in memory; what is
kept per frame is a few numbers per patch (and, when asked, the frame's condition map at reduced size, written
to disk as it is made).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..camera import Response
from ..video.flow import flow_pair
from ..video.interpolate import consistency
from .domain import BlurDistribution, condition_map, frame_velocity, resize_condition
from .inputs import InputError, Target
from .noise import NoiseSamples, gray_noise_sigma
from .settings import AdaptSettings
from .sharpness import EnergyMap, FlowMeans, SharpnessScores, patch_blur, patch_grid, score_patches, tracked_reference

log = logging.getLogger(__name__)

CONDITION_MAX_SIDE = 256  # longer side of the stored per-frame condition maps, px


@dataclass
class VideoAnalysis:
    """What the pass learned about one target video.

    Attributes:
        target: the video.
        frames: frames decoded.
        size: (width, height) px.
        corners: int64 (P, 2) top-left corners of the patch grid.
        scores: per (frame, patch) sharpness (`adapt.sharpness`).
        distribution: histogram of the blur conditions of every flow-consistent pixel.
        noise: flat-pixel residuals for the noise fit.
        frame_blur_px: float64 (N,) mean flow blur of each frame's consistent pixels, px.
        motion_p99_px: the largest per-frame 99th percentile of |velocity|, px per frame.
        conditions: path of the stored condition maps (float16 (N, h, w, 3) .npy), or None.
    """

    target: Target
    frames: int
    size: tuple[int, int]
    corners: np.ndarray
    scores: SharpnessScores
    distribution: BlurDistribution
    noise: NoiseSamples
    frame_blur_px: np.ndarray
    motion_p99_px: float
    conditions: Path | None = None


def analyze_video(target: Target, settings: AdaptSettings, conditions_dir: Path | None = None,
                  progress=None) -> VideoAnalysis:
    """Measure one target video.

    Args:
        target: from `inputs.discover`.
        settings: the run's settings (sharpness, domain, reblur.response / noise_frames).
        conditions_dir: where to write `{id}.npy` (float16 (N, h, w, 3) condition maps, longer side at most
            CONDITION_MAX_SIDE px); None writes nothing.
        progress: optional callable(n_frames) after each frame.
    Raises:
        InputError: unreadable, fewer than 2 frames, frames smaller than the patch, or a static video.
    """
    sh, dom = settings.sharpness, settings.domain
    response = Response(settings.reblur.response, settings.reblur.gamma)
    count = target.count_hint()
    noise_step = max(1, count // settings.reblur.noise_frames) if count else 1
    noise = NoiseSamples(response)
    dist = BlurDistribution.empty(dom.magnitude_bin_px, dom.max_blur_px, dom.angle_bins)
    window = sh.window
    # frames still inside some pending window: energy maps, flows (k -> k + 1 and k -> k - 1) and their checks
    maps: dict[int, EnergyMap] = {}
    forward: dict[int, FlowMeans] = {}
    backward: dict[int, FlowMeans] = {}
    energies: dict[int, np.ndarray] = {}
    references: dict[int, np.ndarray] = {}
    blurs: list[np.ndarray] = []
    frame_blur: list[float] = []
    p99: list[float] = []
    prev = None
    back = back_ok = None
    writer = None
    n = 0
    try:
        for k, frame in enumerate(target.open()):
            if k == 0:
                h, w = frame.shape[:2]
                corners = patch_grid((w, h), sh.patch_size, settings.stride)
                if len(corners) == 0:
                    raise InputError(f"{target.path}: frames are {w}x{h}, smaller than the patch size "
                                     f"{sh.patch_size} (lower sharpness.patch_size, at least 32)")
            maps[k] = EnergyMap(frame, gray_noise_sigma(frame))
            if k % noise_step == 0:
                noise.add(frame)
            if k > 0:
                f01, f10, v0, v1 = _flows(prev, frame, dom.flow_preset, dom.flow_scale)
                forward[k - 1], backward[k] = FlowMeans(f01, (w, h)), FlowMeans(f10, (w, h))
                cond, valid = _condition(f01, v0, back, back_ok, dom.exposure_ratio)
                writer = _record(cond, valid, dist, corners, sh.patch_size, (w, h), blurs, frame_blur, p99,
                                 writer, conditions_dir, target.id)
                back, back_ok = f10, v1
            if k >= window:
                _sharpness(k - window, maps, forward, backward, corners, sh.patch_size, window, energies, references)
            prev = frame
            n = k + 1
            if progress is not None:
                progress(1)
        if n < 2:
            raise InputError(f"{target.path}: needs at least 2 frames, {n} decoded")
        cond, valid = _condition(None, None, back, back_ok, dom.exposure_ratio)
        writer = _record(cond, valid, dist, corners, sh.patch_size, (w, h), blurs, frame_blur, p99, writer,
                         conditions_dir, target.id)
        for k in range(max(0, n - window), n):
            _sharpness(k, maps, forward, backward, corners, sh.patch_size, window, energies, references)
        motion = max(p99) / dom.exposure_ratio
        if motion < dom.static_px:
            raise InputError(f"{target.path}: static video (99% of pixels move less than {dom.static_px} px between "
                             f"frames in every frame): no motion to measure the blur from")
        conditions = writer.close() if writer is not None else None
        writer = None
    finally:
        if writer is not None:
            writer.abort()
    scores = score_patches(np.stack([energies[k] for k in range(n)]), np.stack([references[k] for k in range(n)]),
                           np.stack(blurs), sh.blur_tolerance_px, sh.min_texture)
    return VideoAnalysis(target, n, (w, h), corners, scores, dist, noise, np.array(frame_blur), motion, conditions)


def _sharpness(k, maps, forward, backward, corners, patch, window, energies, references) -> None:
    """Score frame k (its window is complete) and drop what no later window needs."""
    energies[k], references[k] = tracked_reference(k, maps, forward, backward, corners, patch, window)
    for store in (maps, forward, backward):
        for old in [j for j in store if j <= k - window]:
            store.pop(old)


def _flows(frame0: np.ndarray, frame1: np.ndarray, preset: str, scale: float):
    """Forward and backward flow at `scale` of the resolution (vectors in full-resolution px) and where each
    passes the forward-backward check (checked in the reduced grid's own pixels, as video.blur.interval)."""
    f01, f10 = flow_pair(frame0, frame1, preset, scale=scale, full_size=False)
    h, w = frame0.shape[:2]
    v0, v1, _ = consistency(f01, f10, (f01.shape[1] / w, f01.shape[0] / h))
    return f01, f10, v0, v1


def _condition(forward, forward_ok, backward, backward_ok, exposure_ratio: float):
    """Condition map of a frame from its flows to the next and the previous frame (None at the ends)."""
    v, valid = frame_velocity(forward, backward, forward_ok, backward_ok)
    return condition_map(v, exposure_ratio), valid


def _record(cond, valid, dist, corners, patch, size, blurs, frame_blur, p99, writer, conditions_dir, name):
    dist.add(cond, valid)
    h, w = cond.shape[:2]
    blurs.append(patch_blur(cond[..., 2], valid, corners, patch, (w / size[0], h / size[1])))
    m = cond[..., 2][valid]
    frame_blur.append(float(m.mean()) if m.size else float("nan"))
    p99.append(float(np.percentile(m, 99)) if m.size else 0.0)
    if conditions_dir is not None:
        if writer is None:
            writer = _NpyStream(Path(conditions_dir) / f"{name}.npy", _condition_size(size))
        writer.add(resize_condition(cond, writer.size))
    return writer


def _condition_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    f = min(1.0, CONDITION_MAX_SIDE / max(w, h))
    return max(1, round(w * f)), max(1, round(h * f))


class _NpyStream:
    """Frames appended to a raw file, turned into one float16 (N, h, w, 3) .npy when closed (renamed into place
    only when whole)."""

    def __init__(self, path: Path, size: tuple[int, int]):
        self.path = path
        self.size = size
        self.n = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._raw_path = path.with_suffix(".raw.tmp")
        self._raw = open(self._raw_path, "wb")

    def add(self, cond: np.ndarray) -> None:
        self._raw.write(np.ascontiguousarray(cond, np.float16).tobytes())
        self.n += 1

    def close(self) -> Path:
        self._raw.close()
        w, h = self.size
        tmp = self.path.with_suffix(".npy.tmp")
        raw = np.memmap(self._raw_path, dtype=np.float16, mode="r", shape=(self.n, h, w, 3))
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(self.n, h, w, 3))
        for k in range(0, self.n, 64):
            out[k:k + 64] = raw[k:k + 64]
        out.flush()
        del raw, out
        os.replace(tmp, self.path)
        self._raw_path.unlink()
        return self.path

    def abort(self) -> None:
        self._raw.close()
        self._raw_path.unlink(missing_ok=True)
