"""Device backends: what a generated sample needs from the device its kernels run on.

`generate.make_samples` renders a batch of scenes, then for each exposure applies the camera, simulates its
events and reads the blur statistics, through one `Backend` chosen from `--device` (`backend_for`). `blursynth
events` and the video path's events simulate their streams through `simulate`. The CPU backend here runs the
numba stages on numpy arrays; the CUDA backend (`cuda/backend.py`) runs the csrc/ kernels
and keeps each exposure on the GPU until the camera's uint8 images, the events and three statistics come back.
Stage code asks the backend, never `device == "cpu"`.

    render_batch(scenes, render)           exposures of scenes of one size (render: the recipe's RenderRecipe)
    apply_camera(blur, sharp, camera, rng) uint8 blur and sharp images on the host
    scene_events(scene, events, rng)       (events, meta) of the scene's exposure (events: EventsRecipe)
    simulate(frames, t_s, **kw)            (events, state): the event simulator over a stream's next frames
    blur_stats(blur_map)                   {"mean", "p95", "max"} of the blur map's magnitude, in pixels
    to_host(blur_map, keep)                the blur map as the sample stores it (numpy), or None

A new device is one class with these six methods and one branch in `backend_for`.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    name: str

    def render_batch(self, scenes: list, render) -> list: ...

    def apply_camera(self, blur, sharp, camera, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...

    def scene_events(self, scene, events, rng: np.random.Generator) -> tuple[np.ndarray, dict]: ...

    def simulate(self, frames, t_s, **kw) -> tuple[np.ndarray, object]: ...

    def blur_stats(self, blur_map) -> dict: ...

    def to_host(self, blur_map, keep: bool) -> np.ndarray | None: ...


class CpuBackend:
    """The numba stages, on numpy arrays."""

    name = "cpu"

    def render_batch(self, scenes: list, render) -> list:
        from .render import render as render_scene

        return [render_scene(scene, method=render.method, reference_time=render.reference_time,
                             max_samples=render.max_samples, kernel_size=render.kernel_size) for scene in scenes]

    def apply_camera(self, blur, sharp, camera, rng):
        from .camera import apply_camera

        return apply_camera(blur, sharp, camera, rng)

    def scene_events(self, scene, events, rng):
        from .events.exposure import scene_events

        return scene_events(scene, events, rng)

    def simulate(self, frames, t_s, **kw):
        """events.simulate(frames, t_s, **kw): its keyword arguments (thresholds, noise, rng, state, ...)."""
        from .events.simulate import simulate

        return simulate(frames, t_s, **kw)

    def blur_stats(self, blur_map) -> dict:
        from .render import blur_map_stats

        return blur_map_stats(blur_map)

    def to_host(self, blur_map, keep: bool):
        return blur_map  # float32, already on the host (the shard writer drops it unless the recipe keeps it)


CPU = CpuBackend()


def backend_for(device: str) -> Backend:
    """The backend of a resolved device name ("cpu", "cuda" or "cuda:N"; see cuda.resolve_device)."""
    if device == "cpu":
        return CPU
    from .cuda.backend import CudaBackend

    return CudaBackend(device)
