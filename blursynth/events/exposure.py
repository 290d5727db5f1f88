"""Events of a generated sample: the simulator run over the very latent images whose mean is the blur.

Timeline (microseconds): the exposure runs from 0 to exposure_s and is followed by a gap of gap_s before the
next exposure would start. Over the exposure the latent frames are `render.latent_frames(scene, u)` at
u = 0, 1/(n-1), ..., 1 (the same images the blur averages, sampled at the ends of the window too). A single
image has no next exposure, so over the gap the scene continues at the velocity it had at the end of the
exposure: each layer's homography moves on linearly, H(1 + g) = H(1) + g (H(1) - H(1 - 1/(T-1))) (T-1).
Frames are converted to linear luminance, area-downsampled by the event scale, and simulated in chunks with
the state carried, so memory does not grow with the number of latent frames.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..motion import Motion
from ..render import LatentFrames, samples_for
from ..layers import Scene
from .frames import downscale, to_gray
from .noise import NoiseModel
from .simulate import concatenate_events, simulate

CHUNK_FRAMES = 16
"""Latent frames rendered and simulated at a time."""


def scene_events(scene: Scene, cfg, rng: np.random.Generator, backend: "EventBackend | None" = None
                 ) -> tuple[np.ndarray, dict]:
    """Simulate the events of one generated exposure (and the gap after it).

    Args:
        scene: the sample's scene (as `render` takes it).
        cfg: recipe.EventsRecipe (thresholds, refractory, noise, scale, exposure_s, gap_s, samples, ...).
        rng: the sample's "events" stream (noise and random reference); unused for an ideal sensor.
        backend: where the latent frames are rendered and simulated (default the CPU: numba kernels;
            `cuda.scene_events` passes its GPU backend). The timeline and the meta are the same on every backend.
    Returns:
        (events EVENT_DTYPE (N,) sorted by t, t in us from the exposure start; meta dict: sensor size, scale,
        exposure and gap bounds in us, latent frame counts).
    """
    b = backend or EventBackend()
    n = cfg.samples if cfg.samples > 0 else max(samples_for(scene, cfg.max_samples), 2)
    u_exposure = np.linspace(0.0, 1.0, n)
    m = math.ceil((n - 1) * cfg.gap_s / cfg.exposure_s - 1e-9) if cfg.gap_s > 0 else 0
    t_s = np.concatenate([u_exposure * cfg.exposure_s, cfg.exposure_s + np.arange(1, m + 1) / max(m, 1) * cfg.gap_s])
    exposure = b.latent(scene)
    gap = b.latent(gap_scene(scene, cfg.gap_s / cfg.exposure_s)) if m else None
    noise = NoiseModel(**cfg.noise.to_dict())
    state = None
    parts = []
    for a in range(0, n + m, CHUNK_FRAMES):
        idx = np.arange(a, min(a + CHUNK_FRAMES, n + m))
        rgb = [exposure(u_exposure[idx[idx < n]])] if np.any(idx < n) else []
        if np.any(idx >= n):
            rgb.append(gap((idx[idx >= n] - n + 1) / m))
        gray = b.downscale(b.to_gray(b.concatenate(rgb)), cfg.scale)
        ev, state = b.simulate(gray, t_s[idx], threshold_pos=cfg.threshold_pos, threshold_neg=cfg.threshold_neg,
                               log_eps=cfg.log_eps, refractory_s=cfg.refractory_s, noise=noise, rng=rng,
                               random_reference=cfg.random_reference, state=state)
        parts.append(ev)
    events = concatenate_events(parts)
    height, width = state.ref_log.shape
    meta = {"count": int(len(events)), "width": int(width), "height": int(height), "scale": int(cfg.scale),
            "exposure_us": [0, int(round(cfg.exposure_s * 1e6))],
            "end_us": int(round((cfg.exposure_s + cfg.gap_s) * 1e6)), "latent_exposure": int(n), "latent_gap": int(m),
            "on": int(np.count_nonzero(events["p"] > 0))}
    return events, meta


class EventBackend:
    """The operations `scene_events` runs, on the CPU: `latent(scene)` returns a function of normalized times ->
    float32 (N, H, W, 3) latent images (valid until its next call: render.LatentFrames reuses one buffer); then
    luminance, area downscaling, concatenation and the simulator (the state it returns is carried to the next
    chunk; events come back as numpy EVENT_DTYPE)."""

    latent = staticmethod(LatentFrames)
    to_gray = staticmethod(to_gray)
    downscale = staticmethod(downscale)
    simulate = staticmethod(simulate)

    @staticmethod
    def concatenate(parts: list) -> np.ndarray:
        """The frames of a chunk in one array: a chunk within the exposure or the gap is its one part, uncopied."""
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def gap_scene(scene: Scene, gap: float) -> Scene:
    """The scene over the gap after the exposure, on its own normalized time u in [0, 1] (u = 0: the exposure's
    end, u = 1: `gap` exposures later), each layer continuing at its end velocity (see the module docstring)."""
    layers = []
    for layer in scene.layers:
        H = layer.motion.H
        if len(H) == 1:
            layers.append(layer)
            continue
        velocity = (H[-1] - H[-2]) * (len(H) - 1)
        layers.append(replace(layer, motion=Motion(np.stack([H[-1], H[-1] + gap * velocity]))))
    return Scene(layers)
