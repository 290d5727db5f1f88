"""Rendering on the GPU: exact exposures of scenes (one launch per batch), latent frames, and blur statistics."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..render import Exposure, blur_map_stats, latent_times
from ..render.exact import ExactPlan, plan_exact
from ..render.pack import PackedLayers, pack_layers
from ..layers import Scene
from .build import extension
from .device import check_device

if TYPE_CHECKING:
    import torch


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
        from ..render import render as render_cpu

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
    times = latent_times(times)
    if device == "cpu":
        from ..render import latent_frames as latent_cpu

        return latent_cpu(scene, times)
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

    from ..render.exact import per_sample_transforms

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


def blur_stats(blur_map) -> dict:
    """The sample meta's blur_px from a blur map's magnitude channel: mean, 95th percentile (linear
    interpolation, as numpy.percentile) and max, in pixels. blur_map: float32 (H, W, 3), numpy or a tensor (the
    statistics are reduced where it lies; three numbers come back)."""
    if isinstance(blur_map, np.ndarray):
        return blur_map_stats(blur_map)
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
