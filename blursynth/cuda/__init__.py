"""The CUDA backend: the kernels of csrc/ behind plain functions: exact exposure rendering, latent frames, ESIM events and the
camera's noise and 8-bit encode, with the numba kernels as their reference (csrc/README.md states the
tolerances).

The extension is the one built at install (`BLURSYNTH_CUDA=1 pip install --no-build-isolation -e .`, module
`blursynth.cuda._ext`) or, failing that, compiled just in time on first use with torch.utils.cpp_extension into a
cache directory (`$BLURSYNTH_CUDA_CACHE`, default `~/.cache/blursynth/cuda-<torch>-<cuda>`); a CPU-only install
never imports torch's CUDA build tools.

Data stays on the GPU between stages: `render` returns a `CudaExposure` of device tensors, `latent_frames` device
frames for `simulate`, and `apply_camera` moves only the uint8 images back. The planning that decides the
per-pixel sample levels (render/exact.py: footprints, per-sample homographies) runs on the CPU; it is small
next to the integral. Several scenes of one size render in one launch (`render_batch`).

Entry points take `device` ("cpu" or "cuda"/"cuda:N"); "cpu" runs the numba path and returns numpy.

The commands reach this through `--device` (`resolve_device`, checked before any work): `generate` renders a
batch of samples per launch and keeps each exposure on the GPU through the camera and its events
(`generate.make_samples`, `scene_events`); `events` simulates through `simulate_frames`.

Modules: `device` (resolve and check --device; imports neither torch nor the numba stages at load), `build` (the
extension), `render_ops` (exposures, latent frames, blur statistics), `camera_ops` (noise and encode),
`event_ops` (the simulator and a sample's event stages). The names below load lazily (PEP 562), so that
`from blursynth.cuda import resolve_device` costs no stage imports.
"""
from importlib import import_module

_WHERE = {
    "device": ("available", "unavailable_reason", "check_device", "check_device_name", "check_method",
               "resolve_device", "device_kind", "CUDA_METHODS"),
    "build": ("CSRC", "SOURCES", "cache_dir", "extension"),
    "render_ops": ("CudaExposure", "render", "render_batch", "render_exact_cuda", "latent_frames", "blur_stats",
                   "plan_exact", "ExactPlan"),
    "camera_ops": ("apply_camera", "encode_u8"),
    "event_ops": ("CudaEventState", "simulate", "simulate_cuda", "simulate_frames", "scene_events", "to_gray",
                  "downscale"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
