"""The camera on the GPU: noise drawn as the CPU path draws it, clipping, response and the 8-bit encode."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import rng as rng_mod
from ..camera import CameraParams, jpeg_roundtrip
from .build import extension


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
