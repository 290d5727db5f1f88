"""Events on the GPU: the ESIM simulator, and the stages of a generated sample's events (luminance, downscale,
simulate) with frames kept on the device."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..events.simulate import EVENT_DTYPE, TIME_SCALE, EventState
from ..render import latent_times
from ..render.pack import pack_layers
from ..layers import Scene
from .build import extension
from .device import check_device
from .render_ops import _sharp_maps, _upload_layers

if TYPE_CHECKING:
    import torch


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
        from ..events import simulate as simulate_cpu

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

    from ..events.frames import REC709_LUMA

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

    from ..events.frames import blocks

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
    from ..events import simulate as simulate_cpu

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
    from ..events.exposure import scene_events as events_of

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
        times = latent_times(times)
        return _sharp_maps(self.layers, [self.packed] * len(times), [self.scene] * len(times), list(times),
                           self.device, with_map=False, shared_layers=True)[0]
