"""The CUDA kernels of csrc/ behind plain functions: exact exposure rendering, latent frames, ESIM events and the
camera's noise and 8-bit encode, with the numba kernels as their reference (csrc/README.md states the
tolerances).

The extension is the one built at install (`BLURSYNTH_CUDA=1 pip install --no-build-isolation -e .`, module
`blursynth._cuda`) or, failing that, compiled just in time on first use with torch.utils.cpp_extension into a
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
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import rng as rng_mod
from .camera import CameraParams, jpeg_roundtrip
from .events.simulate import EVENT_DTYPE, TIME_SCALE, EventState
from .render import Exposure
from .render.exact import ExactPlan, plan_exact
from .render.pack import PackedLayers, pack_layers
from .scene import Scene

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("bindings.cpp", "render.cu", "events.cu")

_EXT = None
_EXT_ERROR: str | None = None


def available() -> bool:
    """A CUDA device is visible to torch and the extension loads (built at install or just in time)."""
    return unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why the CUDA path cannot run here, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        extension()
    except RuntimeError as exc:
        return str(exc)
    return None


def check_device(device: str) -> str:
    """Validate a device name: "cpu", "cuda" or "cuda:N" (ValueError otherwise, RuntimeError when CUDA is asked
    for and cannot run here, or N is not a visible device). Returns it."""
    check_device_name(device)
    if device != "cpu":
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"device {device!r} asked for but the CUDA kernels cannot run here: {reason}")
        if device.startswith("cuda:"):
            import torch

            if int(device[5:]) >= torch.cuda.device_count():
                raise RuntimeError(f"device {device!r} asked for but torch sees {torch.cuda.device_count()} CUDA "
                                   "device(s)")
    return device


CUDA_METHODS = ("exact",)
"""Render methods with a CUDA kernel (render.method)."""


def check_device_name(device: str) -> None:
    """ValueError unless `device` is "cpu", "cuda" or "cuda:N" (whether it can run here is check_device's)."""
    if device != "cpu" and device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N")


def check_method(device: str, method: str) -> None:
    """ValueError when `device` is a CUDA device and the render `method` has no CUDA kernel."""
    if device != "cpu" and method not in CUDA_METHODS:
        raise ValueError(f"render.method={method!r} has no CUDA kernel (only {', '.join(CUDA_METHODS)}): use "
                         f"--device cpu, or --set render.method=exact")


def resolve_device(device: str, method: str = "exact") -> str:
    """The device a command runs its kernels on, checked before any work starts.

    Args:
        device: "cpu", "cuda", "cuda:N" or "auto" (cuda when the CUDA kernels can run here and have `method`,
            else cpu).
        method: the recipe's render.method; on a CUDA device only CUDA_METHODS exist.
    Returns:
        "cpu", "cuda" or "cuda:N".
    Raises:
        ValueError: an unknown device name, or a render method without a CUDA kernel on a CUDA device.
        RuntimeError: CUDA asked for and unusable here; the message says why (`unavailable_reason`).
    """
    if device == "auto":
        chosen = "cuda" if method in CUDA_METHODS and available() else "cpu"
        log.info("--device auto: %s (%s)", chosen, unavailable_reason() or f"render.method={method}")
        return chosen
    check_method(device, method)
    return check_device(device)


def device_kind(device: str) -> str:
    """"cpu" or "cuda": the part of a device name that can change the bytes written (which GPU does not)."""
    return "cpu" if device == "cpu" else "cuda"


def cache_dir() -> Path:
    """Where just-in-time builds of the extension live."""
    import torch

    env = os.environ.get("BLURSYNTH_CUDA_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "blursynth" / f"cuda-{torch.__version__}-{torch.version.cuda}"


def extension():
    """The compiled extension module (RuntimeError with the reason when it cannot be had)."""
    global _EXT, _EXT_ERROR
    if _EXT is not None:
        return _EXT
    if _EXT_ERROR is not None:
        raise RuntimeError(_EXT_ERROR)
    import torch  # noqa: F401  (loads the libraries the extension links against)
    del torch

    try:
        from . import _cuda as ext  # built by BLURSYNTH_CUDA=1 pip install
    except ImportError:
        try:
            ext = _build_jit()
        except Exception as exc:  # compiler errors, missing toolkit: remembered, reported once per process
            _EXT_ERROR = f"CUDA extension unavailable: {exc}"
            raise RuntimeError(_EXT_ERROR) from exc
    _EXT = ext
    return ext


def _build_jit():
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, load

    if torch.version.cuda is None:
        raise RuntimeError("this torch is a CPU-only build")
    if CUDA_HOME is None:
        raise RuntimeError("no CUDA toolkit (nvcc) found; set CUDA_HOME")
    missing = [s for s in SOURCES if not (CSRC / s).exists()]
    if missing:
        raise RuntimeError(f"sources {missing} not found under {CSRC} (they ship as package data): reinstall "
                           "blursynth")
    build = cache_dir()
    build.mkdir(parents=True, exist_ok=True)
    log.info("compiling the blursynth CUDA extension into %s (once)", build)
    return load(name="blursynth_cuda", sources=[str(CSRC / s) for s in SOURCES], extra_include_paths=[str(CSRC)],
                extra_cflags=["-O3"], extra_cuda_cflags=["-O3", "-std=c++17"], build_directory=str(build))


# --------------------------------------------------------------------------------------------------------------
# rendering


@dataclass
class CudaExposure:
    """An Exposure whose images stay on the GPU.

    Attributes:
        blur, sharp, blur_map: float32 torch tensors (H, W, 3) on the device, as in render.Exposure.
        samples: the largest number of time samples any pixel integrated.
        method: "exact".
    """

    blur: "torch.Tensor"
    sharp: "torch.Tensor"
    blur_map: "torch.Tensor"
    samples: int
    method: str = "exact"

    def numpy(self) -> Exposure:
        """The same exposure as numpy arrays on the host."""
        return Exposure(blur=self.blur.cpu().numpy(), sharp=self.sharp.cpu().numpy(),
                        blur_map=self.blur_map.cpu().numpy(), samples=self.samples, method=self.method)


def render(scene: Scene, method: str = "exact", reference_time: float = 0.5, samples: int | None = None,
           max_samples: int = 256, kernel_size: int = 33, device: str = "cuda"):
    """render.render on the chosen device.

    Returns render.Exposure (numpy) for device "cpu", CudaExposure (device tensors) otherwise. On the GPU only the
    "exact" method exists (ValueError for the others).
    """
    if device == "cpu":
        from .render import render as render_cpu

        return render_cpu(scene, method=method, reference_time=reference_time, samples=samples,
                          max_samples=max_samples, kernel_size=kernel_size)
    return render_batch([scene], method=method, reference_time=reference_time, samples=samples,
                        max_samples=max_samples, device=device)[0]


def render_batch(scenes: list[Scene], method: str = "exact", reference_time: float = 0.5,
                 samples: int | None = None, max_samples: int = 256, device: str = "cuda") -> list[CudaExposure]:
    """Render several scenes of one size on the GPU: one launch for all their blurs, one for all their sharp
    images and blur maps.

    Args:
        scenes: scenes of one (width, height).
        method: "exact" (the only CUDA integrator).
        reference_time, samples, max_samples: as render.render.
    Returns:
        one CudaExposure per scene.
    """
    if method != "exact":
        raise ValueError(f"render.method={method!r} has no CUDA kernel: use 'exact' on a CUDA device, or device cpu")
    if not 0.0 <= reference_time <= 1.0:
        raise ValueError(f"reference_time must lie in [0, 1], got {reference_time}")
    if not scenes:
        return []
    sizes = {s.size for s in scenes}
    if len(sizes) != 1:
        raise ValueError(f"render_batch needs scenes of one size, got {sorted(sizes)}")
    check_device(device)
    import torch

    width, height = scenes[0].size
    packed = [pack_layers(s) for s in scenes]
    layers = _upload_layers(packed, device)
    sharp, blur_map = _sharp_maps(layers, packed, scenes, [reference_time] * len(scenes), device, with_map=True)
    moving = [i for i, s in enumerate(scenes) if not all(l.motion.is_static for l in s.layers)]
    blur = sharp.clone()  # a static scene's one latent image is its own mean
    n_used = [1 if samples is None else int(samples)] * len(scenes)
    if moving:
        plans = [plan_exact(packed[i], scenes[i], samples, max_samples) for i in moving]
        out = torch.empty((len(moving), height, width, 3), dtype=torch.float32, device=device)
        _launch_exact(layers, plans, moving, out)
        blur[moving] = out
        for i, p in zip(moving, plans):
            n_used[i] = p.samples
    return [CudaExposure(blur=blur[i], sharp=sharp[i], blur_map=blur_map[i], samples=n_used[i])
            for i in range(len(scenes))]


def render_exact_cuda(packed: PackedLayers, scene: Scene, samples: int | None = None, max_samples: int = 256,
                      device: str = "cuda") -> tuple["torch.Tensor", int]:
    """integrate_exact on the GPU: (float32 (H, W, 3) device tensor of the linear blur, the largest sample count
    any pixel used). Every pixel is gathered at its level, also where the CPU path convolves a translating
    background (the two agree; see csrc/README.md)."""
    check_device(device)
    import torch

    width, height = scene.size
    layers = _upload_layers([packed], device)
    plan = plan_exact(packed, scene, samples, max_samples)
    out = torch.empty((1, height, width, 3), dtype=torch.float32, device=device)
    _launch_exact(layers, [plan], [0], out)
    return out[0], plan.samples


def latent_frames(scene: Scene, times, device: str = "cuda"):
    """render.latent_frames on the chosen device: float32 (N, H, W, 3) linear latent images at normalized
    exposure times; numpy for "cpu", a device tensor otherwise (one launch for all times)."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if device == "cpu":
        from .render import latent_frames as latent_cpu

        return latent_cpu(scene, times)
    if times.size == 0 or times.min() < 0.0 or times.max() > 1.0:
        raise ValueError("times must be a non-empty sequence in [0, 1]")
    check_device(device)
    packed = pack_layers(scene)
    layers = _upload_layers([packed], device)
    return _sharp_maps(layers, [packed] * len(times), [scene] * len(times), list(times), device, with_map=False,
                       shared_layers=True)[0]


@dataclass
class _DeviceLayers:
    buf: "torch.Tensor"
    offset: "torch.Tensor"
    dims: "torch.Tensor"
    extend: "torch.Tensor"
    first: list[int]  # first global layer of each packed scene


def _upload_layers(packed: list[PackedLayers], device: str) -> _DeviceLayers:
    import torch

    bases = np.cumsum([0] + [p.buf.size for p in packed[:-1]])
    first = np.cumsum([0] + [len(p.offsets) for p in packed[:-1]]).tolist()
    buf = np.concatenate([p.buf for p in packed])
    offset = np.concatenate([p.offsets + b for p, b in zip(packed, bases)]).astype(np.int64)
    dims = np.concatenate([p.dims for p in packed]).astype(np.int32)
    extend = np.concatenate([p.extend for p in packed]).astype(np.uint8)

    def up(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return _DeviceLayers(up(buf), up(offset), up(dims.reshape(-1, 2)), up(extend), first)


def _launch_exact(layers: _DeviceLayers, plans: list[ExactPlan], which: list[int], out) -> None:
    import torch

    desc, rows, starts, s_base, r_base = [], [], [], 0, 0
    for plan, i in zip(plans, which):
        K, L = plan.Hinv.shape[:2]
        desc.append((layers.first[i], L, r_base, s_base))
        rows.append((plan.Hinv.reshape(K * L, 9), plan.boxes.reshape(K * L, 4)))
        starts.append(plan.start)
        r_base += K * L
        s_base += len(plan.start)

    def up(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(out.device)

    extension().render_exact(layers.buf, layers.offset, layers.dims, layers.extend,
                             up(np.array(desc, np.int64).reshape(-1, 4), np.int64),
                             up(np.concatenate([r[0] for r in rows]), np.float64),
                             up(np.concatenate([r[1] for r in rows]), np.int32),
                             up(np.concatenate(starts), np.int64),
                             up(np.stack([p.level for p in plans]), np.int32), out)


def _sharp_maps(layers: _DeviceLayers, packed: list[PackedLayers], scenes: list[Scene], times: list[float],
                device: str, with_map: bool, shared_layers: bool = False):
    """Latent images (B, H, W, 3) at times[b] of scenes[b] (and blur maps, or None). shared_layers: every entry
    uses the layers uploaded for packed[0]."""
    import torch

    from .render.exact import per_sample_transforms

    width, height = scenes[0].size
    desc, H_rows, box_rows, S_rows, E_rows = [], [], [], [], []
    r_base = 0
    for b, (p, scene, t) in enumerate(zip(packed, scenes, times)):
        L = len(scene.layers)
        Hinv, boxes = per_sample_transforms(p, scene, np.array([t]))
        H_rows.append(Hinv[0].reshape(L, 9))
        box_rows.append(boxes[0])
        if with_map:
            ref = [l.motion.at(t)[0] for l in scene.layers]
            S_rows.append(np.stack([l.motion.at(0.0)[0] @ np.linalg.inv(r) for l, r in zip(scene.layers, ref)]))
            E_rows.append(np.stack([l.motion.at(1.0)[0] @ np.linalg.inv(r) for l, r in zip(scene.layers, ref)]))
        desc.append((layers.first[0 if shared_layers else b], L, r_base, r_base if with_map else 0))
        r_base += L

    def up(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device)

    to_start = up(np.concatenate(S_rows).reshape(-1, 9), np.float64) if with_map else up(np.zeros((1, 9)), np.float64)
    to_end = up(np.concatenate(E_rows).reshape(-1, 9), np.float64) if with_map else to_start
    B = len(scenes)
    sharp = torch.empty((B, height, width, 3), dtype=torch.float32, device=device)
    blur_map = torch.empty_like(sharp) if with_map else None
    extension().sharp_map(layers.buf, layers.offset, layers.dims, layers.extend,
                          up(np.array(desc, np.int64).reshape(-1, 4), np.int64),
                          up(np.concatenate(H_rows), np.float64), up(np.concatenate(box_rows), np.int32),
                          to_start, to_end, sharp, blur_map)
    return sharp, blur_map


# --------------------------------------------------------------------------------------------------------------
# camera


def apply_camera(blur, sharp, params: CameraParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """camera.apply_camera with the images on the GPU: gain, noise (the counter-based stream keyed by one draw
    from `rng`, as the CPU path draws it), clipping, response and 8-bit quantization on the device;
    only the uint8 images come back (JPEG, when asked, on the host).

    Args:
        blur, sharp: float32 (H, W, 3) device tensors, linear radiance.
    Returns:
        (blur, sharp) uint8 (H, W, 3) numpy arrays, equal to camera.apply_camera's.
    """
    import torch

    thresholds = torch.from_numpy(params.response.code_thresholds().astype(np.float32)).to(blur.device)
    ext = extension()
    if params.shot > 0 or params.read > 0:
        gained = (blur.contiguous() * torch.tensor(params.gain, dtype=torch.float32, device=blur.device)).contiguous()
        key = int(rng_mod.key_from(rng))
        noisy = torch.empty_like(gained)
        ext.noise(gained, float(params.shot), float(params.read), key, *_noise_tables(str(blur.device)), noisy)
        blur_u8 = encode_u8(noisy, 1.0, thresholds)
    else:
        blur_u8 = encode_u8(blur, params.gain, thresholds)
    sharp_u8 = encode_u8(sharp, params.gain, thresholds)
    blur_np, sharp_np = blur_u8.cpu().numpy(), sharp_u8.cpu().numpy()
    if params.jpeg_quality is not None:
        blur_np = jpeg_roundtrip(blur_np, params.jpeg_quality)
    return blur_np, sharp_np


@lru_cache(maxsize=None)
def _noise_tables(device: str) -> tuple:
    """rng.NOISE_TABLES on `device`, uploaded once per device (not per sample)."""
    import torch

    return tuple(torch.from_numpy(np.array(t)).to(device) for t in rng_mod.NOISE_TABLES)


def encode_u8(linear, gain: float, thresholds):
    """camera.encode_u8 on the device: uint8 tensor of linear's shape. thresholds: float32 (255,) device tensor
    (Response.code_thresholds())."""
    import torch

    x = linear.contiguous()
    out = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    extension().encode_u8(x, float(np.float32(gain)), thresholds.contiguous(), out)
    return out


# --------------------------------------------------------------------------------------------------------------
# events


@dataclass
class CudaEventState:
    """events.EventState with its per-pixel arrays on the GPU (float64 / float32 device tensors (H, W))."""

    ref_log: "torch.Tensor"
    last_event_s: "torch.Tensor"
    last_frame: "torch.Tensor"
    last_log: "torch.Tensor"
    last_t_s: float

    @classmethod
    def from_cpu(cls, state: EventState, device: str = "cuda") -> "CudaEventState":
        import torch

        def up(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        return cls(up(state.ref_log.astype(np.float64)), up(state.last_event_s.astype(np.float64)),
                   up(state.last_frame.astype(np.float32)), up(state.last_log.astype(np.float64)),
                   float(state.last_t_s))

    def cpu(self) -> EventState:
        return EventState(self.ref_log.cpu().numpy(), self.last_event_s.cpu().numpy(), self.last_frame.cpu().numpy(),
                          self.last_log.cpu().numpy(), self.last_t_s)

    def copy(self) -> "CudaEventState":
        return CudaEventState(self.ref_log.clone(), self.last_event_s.clone(), self.last_frame.clone(),
                              self.last_log.clone(), self.last_t_s)


def simulate(frames, t_s, *, threshold_pos: float = 0.2, threshold_neg: float = 0.2, log_eps: float = 1e-3,
             refractory_s: float = 0.0, state=None, time_unit: str = "us", device: str = "cuda",
             as_numpy: bool = True):
    """events.simulate on the chosen device; "cpu" is events.simulate itself."""
    if device == "cpu":
        from .events import simulate as simulate_cpu

        return simulate_cpu(np.asarray(frames), np.asarray(t_s), threshold_pos=threshold_pos,
                            threshold_neg=threshold_neg, log_eps=log_eps, refractory_s=refractory_s, state=state,
                            time_unit=time_unit)
    return simulate_cuda(frames, t_s, threshold_pos=threshold_pos, threshold_neg=threshold_neg, log_eps=log_eps,
                         refractory_s=refractory_s, state=state, time_unit=time_unit, device=device,
                         as_numpy=as_numpy)


_COUNT_BUFFER_BYTES = 256 * 2**20


def simulate_cuda(frames, t_s, *, threshold_pos: float = 0.2, threshold_neg: float = 0.2, log_eps: float = 1e-3,
                  refractory_s: float = 0.0, state: CudaEventState | EventState | None = None,
                  time_unit: str = "us", device: str = "cuda", as_numpy: bool = True):
    """events.simulate with the frames and the per-pixel state on the GPU; the same events in the same order.

    Args:
        frames: float32 (N, H, W) linear intensity in [0, 1], numpy or a device tensor (kept on the device).
        t_s: float64 (N,) frame times in seconds, strictly increasing.
        state: a CudaEventState (or a CPU EventState, uploaded) from a previous call, or None.
        as_numpy: return the events as an EVENT_DTYPE numpy array; else a dict of device tensors t (int64),
            x, y (int32), p (int8).
        Other arguments as events.simulate.
    Returns:
        (events, CudaEventState).
    """
    import torch

    if time_unit not in TIME_SCALE:
        raise ValueError(f"time_unit must be one of {sorted(TIME_SCALE)}, got {time_unit!r}")
    if threshold_pos <= 0 or threshold_neg <= 0:
        raise ValueError("thresholds must be positive")
    check_device(device)
    frames = torch.as_tensor(frames).to(device=device, dtype=torch.float32).contiguous()
    t_s = np.ascontiguousarray(t_s, dtype=np.float64)
    if frames.dim() != 3 or t_s.shape != tuple(frames.shape[:1]):
        raise ValueError(f"frames must be (N, H, W) and t_s (N,), got {tuple(frames.shape)} and {t_s.shape}")
    if frames.shape[1] > 65536 or frames.shape[2] > 65536:
        raise ValueError("frames wider or taller than 65536 do not fit uint16 coordinates")
    if state is None:
        if len(frames) == 0:
            raise ValueError("the first call needs at least one frame to start the reference")
        # the reference from the host's log (glibc, as numba), so the stream starts from the CPU path's state
        state = CudaEventState.from_cpu(EventState.from_frame(frames[0].cpu().numpy(), t_s[0], log_eps), device)
        frames, t_s = frames[1:], t_s[1:]
    else:
        if isinstance(state, EventState):
            state = CudaEventState.from_cpu(state, device)
        else:
            state = state.copy()
        if tuple(state.ref_log.shape) != tuple(frames.shape[1:]):
            raise ValueError(f"state is {tuple(state.ref_log.shape)}, frames are {tuple(frames.shape[1:])}")
    t_all = np.concatenate([[state.last_t_s], t_s])
    if np.any(np.diff(t_all) <= 0):
        raise ValueError("frame times must be strictly increasing (and after the carried state's last time)")
    n, h, w = frames.shape
    parts = []
    block = max(1, min(max(n, 1), _COUNT_BUFFER_BYTES // (8 * h * w)))
    for a in range(0, n, block):
        parts.append(_simulate_block(frames[a:a + block], t_s[a:a + block], state, threshold_pos, threshold_neg,
                                     log_eps, refractory_s, TIME_SCALE[time_unit]))
    if parts:
        ev = {k: torch.cat([p[k] for p in parts]) for k in ("t", "x", "y", "p")}
    else:
        ev = {"t": torch.empty(0, dtype=torch.int64, device=device),
              "x": torch.empty(0, dtype=torch.int32, device=device),
              "y": torch.empty(0, dtype=torch.int32, device=device),
              "p": torch.empty(0, dtype=torch.int8, device=device)}
    if not as_numpy:
        return ev, state
    out = np.empty(len(ev["t"]), EVENT_DTYPE)
    out["t"] = ev["t"].cpu().numpy()
    out["x"] = ev["x"].cpu().numpy()
    out["y"] = ev["y"].cpu().numpy()
    out["p"] = ev["p"].cpu().numpy()
    return out, state


def _simulate_block(frames, t_s, state: CudaEventState, cpos, cneg, log_eps, refr, scale) -> dict:
    """Count, scan, fill, then order each frame interval's events by time (stable), advancing `state`."""
    import torch

    ext = extension()
    n, h, w = frames.shape
    dev = frames.device
    t_dev = torch.from_numpy(t_s).to(dev)
    counts = torch.empty((n, h, w), dtype=torch.int64, device=dev)
    args = (frames, t_dev, state.last_t_s, state.last_frame, state.last_log, state.ref_log, state.last_event_s,
            float(cpos), float(cneg), float(log_eps), float(refr))
    ext.esim_count(*args, counts)
    flat = counts.view(-1)
    ends = torch.cumsum(flat, 0)
    total = int(ends[-1])
    offsets = ends - flat
    ev_t = torch.empty(total, dtype=torch.int64, device=dev)
    ev_x = torch.empty(total, dtype=torch.int32, device=dev)
    ev_y = torch.empty(total, dtype=torch.int32, device=dev)
    ev_p = torch.empty(total, dtype=torch.int8, device=dev)
    ext.esim_fill(*args, float(scale), offsets, ev_t, ev_x, ev_y, ev_p)
    state.last_t_s = float(t_s[-1])
    if total == 0:
        return {"t": ev_t, "x": ev_x, "y": ev_y, "p": ev_p}
    # events lie in production order (interval, row, column, crossing); a stable sort by time, then a stable
    # sort by interval, orders each interval by time and keeps production order among ties (numba's order)
    per_interval = counts.view(n, -1).sum(dim=1)
    interval = torch.repeat_interleave(torch.arange(n, device=dev), per_interval, output_size=total)
    by_t = torch.sort(ev_t, stable=True).indices
    order = by_t[torch.sort(interval[by_t], stable=True).indices]
    return {"t": ev_t[order], "x": ev_x[order], "y": ev_y[order], "p": ev_p[order]}


# --------------------------------------------------------------------------------------------------------------
# the stages of a generated sample's events on the device (events/exposure.py, events/frames.py)


def to_gray(frames: "torch.Tensor") -> "torch.Tensor":
    """events.frames.to_gray on a tensor: float32 (..., H, W) luminance of float32 (..., H, W, 3) linear RGB.

    The same float32 operations in the same order as the numpy version (one product and one sum at a time, the
    weights rounded to float32 first), so the result is bit-identical to it.
    """
    import torch

    from .events.frames import REC709_LUMA

    if frames.dim() < 3 or frames.shape[-1] != 3:
        return frames.to(torch.float32)
    r, g, b = REC709_LUMA
    x = frames.to(torch.float32)
    y = x[..., 0] * r
    y += x[..., 1] * g
    y += x[..., 2] * b
    return y


def downscale(frames: "torch.Tensor", scale: int) -> "torch.Tensor":
    """events.frames.downscale on a tensor: float32 (N, H // s, W // s) means of s x s blocks, summed in float64
    (exact for the block sums of these images, so equal to the numpy version)."""
    import torch

    from .events.frames import blocks

    grid = blocks(frames, scale)
    if scale == 1:
        return frames
    return grid.to(torch.float64).mean(dim=(-3, -1)).to(torch.float32)


def simulate_frames(frames, t_s, *, threshold_pos: float = 0.2, threshold_neg: float = 0.2, log_eps: float = 1e-3,
                    refractory_s: float = 0.0, noise=None, rng: np.random.Generator | None = None,
                    random_reference: bool = False, state=None, time_unit: str = "us", device: str = "cuda"):
    """events.simulate with all its arguments, on `device`: the same events, in the same order.

    An ideal sensor runs on the GPU (frames and the per-pixel state stay there, state a CudaEventState). The
    start of a stream (its reference, and a random reference drawn from `rng` as the CPU does) is set on the host
    from the first frame. A noise model (events.NoiseModel, not ideal) has no CUDA kernel: its frames are moved
    to the host and events.simulate runs there (the state is then an EventState).

    Args:
        frames: float32 (N, H, W) linear intensity, numpy or a tensor on the device.
        t_s: float64 (N,) seconds. Others as events.simulate.
    Returns:
        (events EVENT_DTYPE (M,) numpy, state).
    """
    from .events import simulate as simulate_cpu

    noisy = noise is not None and not noise.is_ideal
    kw = dict(threshold_pos=threshold_pos, threshold_neg=threshold_neg, log_eps=log_eps, refractory_s=refractory_s,
              time_unit=time_unit)
    if device == "cpu" or noisy or isinstance(state, EventState) and state.noise is not None:
        host = frames.cpu().numpy() if hasattr(frames, "cpu") else np.asarray(frames)
        if isinstance(state, CudaEventState):
            state = state.cpu()
        return simulate_cpu(host, t_s, noise=noise, rng=rng, random_reference=random_reference, state=state, **kw)
    t_s = np.ascontiguousarray(t_s, dtype=np.float64)
    if state is None:
        if len(frames) == 0:
            raise ValueError("the first call needs at least one frame to start the reference")
        if random_reference and rng is None:
            raise ValueError("random_reference needs rng (a numpy Generator)")
        first = frames[0].cpu().numpy() if hasattr(frames, "cpu") else np.asarray(frames[0])
        state = EventState.from_frame(first, t_s[0], log_eps)
        if random_reference:
            # as events.simulate draws it: one uniform per pixel from the stream's rng
            state.ref_log -= rng.uniform(0.0, 1.0, state.ref_log.shape) * (threshold_pos + threshold_neg) \
                - threshold_neg
        frames, t_s = frames[1:], t_s[1:]
    return simulate_cuda(frames, t_s, state=state, device=device, **kw)


def scene_events(scene: Scene, cfg, rng: np.random.Generator, device: str = "cuda") -> tuple[np.ndarray, dict]:
    """events.exposure.scene_events on `device`: the latent frames of the exposure and the gap rendered on the
    GPU (one launch per chunk of frames), turned to luminance and downscaled there, and simulated there; only the
    events come back. Same events and meta as the CPU function (the latent frames are bit-identical to numba's;
    csrc/README.md)."""
    from .events.exposure import scene_events as events_of

    return events_of(scene, cfg, rng, None if device == "cpu" else _EventBackend(device))


class _EventBackend:
    """events.exposure.EventBackend on a CUDA device: frames stay on it, the events come back."""

    def __init__(self, device: str):
        import torch

        self.device = device
        self.concatenate = torch.cat

    def latent(self, scene: Scene) -> "_LatentFrames":
        return _LatentFrames(scene, self.device)

    to_gray = staticmethod(to_gray)
    downscale = staticmethod(downscale)

    def simulate(self, frames, t_s, **kw):
        return simulate_frames(frames, t_s, device=self.device, **kw)


class _LatentFrames:
    """A scene's layers uploaded once; calling it renders float32 (N, H, W, 3) latent images at normalized times
    on the device (latent_frames without the upload per call)."""

    def __init__(self, scene: Scene, device: str):
        check_device(device)
        self.scene = scene
        self.device = device
        self.packed = pack_layers(scene)
        self.layers = _upload_layers([self.packed], device)

    def __call__(self, times) -> "torch.Tensor":
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if times.size == 0 or times.min() < 0.0 or times.max() > 1.0:
            raise ValueError("times must be a non-empty sequence in [0, 1]")
        return _sharp_maps(self.layers, [self.packed] * len(times), [self.scene] * len(times), list(times),
                           self.device, with_map=False, shared_layers=True)[0]


def blur_stats(blur_map) -> dict:
    """The sample meta's blur_px from a blur map's magnitude channel: mean, 95th percentile (linear
    interpolation, as numpy.percentile) and max, in pixels. blur_map: float32 (H, W, 3), numpy or a tensor (the
    statistics are reduced where it lies; three numbers come back)."""
    if isinstance(blur_map, np.ndarray):
        magnitude = blur_map[..., 2]
        return {"mean": float(magnitude.mean()), "p95": float(np.percentile(magnitude, 95)),
                "max": float(magnitude.max())}
    import torch

    magnitude = blur_map[..., 2].reshape(-1).to(torch.float64)
    # torch.quantile refuses more than 2^24 values; the sorted tensor gives the same interpolation
    ordered = torch.sort(magnitude).values
    pos = 0.95 * (len(ordered) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(ordered) - 1)
    p95 = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    values = torch.stack([magnitude.mean(), p95, ordered[-1]]).cpu().numpy()
    return {"mean": float(values[0]), "p95": float(values[1]), "max": float(values[2])}


__all__ = ["available", "unavailable_reason", "check_device", "extension", "render", "render_batch",
           "render_exact_cuda", "latent_frames", "plan_exact", "apply_camera", "encode_u8", "simulate",
           "simulate_cuda", "simulate_frames", "scene_events", "to_gray", "downscale", "blur_stats",
           "resolve_device", "device_kind", "CUDA_METHODS", "CudaExposure", "CudaEventState", "ExactPlan"]
