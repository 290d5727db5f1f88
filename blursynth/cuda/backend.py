"""The CUDA backend (`blursynth.backend.Backend`): the csrc/ kernels, each exposure kept on the GPU until the
camera's uint8 images, the events and three blur statistics come back."""
from __future__ import annotations

from .camera_ops import apply_camera
from .event_ops import scene_events, simulate_frames
from .render_ops import blur_stats, render_batch


class CudaBackend:
    name = "cuda"

    def __init__(self, device: str):
        self.device = device

    def render_batch(self, scenes: list, render) -> list:
        return render_batch(scenes, method=render.method, reference_time=render.reference_time,
                            max_samples=render.max_samples, device=self.device)

    def apply_camera(self, blur, sharp, camera, rng):
        return apply_camera(blur, sharp, camera, rng)

    def scene_events(self, scene, events, rng):
        return scene_events(scene, events, rng, device=self.device)

    def simulate(self, frames, t_s, **kw):
        return simulate_frames(frames, t_s, device=self.device, **kw)

    def blur_stats(self, blur_map) -> dict:
        return blur_stats(blur_map)

    def to_host(self, blur_map, keep: bool):
        return blur_map.half().cpu().numpy() if keep else None
