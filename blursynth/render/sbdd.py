"""SBDD's formation model (segmentation-based deblurring datasets): one uniform kernel per segment and one
for the background, blended with normalized blurred-mask weights,

    W_i = (M_i * k_i) / (sum_j M_j * k_j + 1e-6),    B = sum_i W_i (S * k_i),

where S is the whole sharp photo (no disocclusion, no depth order) and M_0, the background's mask, is one
minus the union of the segments. Kept so users can regenerate SBDD-style data; blursynth's default model is
the exact exposure integral.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..motion import rasterize_psf
from ..scene import Scene

EPS = 1e-6


def integrate_sbdd(scene: Scene, times: np.ndarray, kernel_size: int) -> np.ndarray:
    """SBDD blur of a scene whose layers translate: float32 (H, W, 3) linear.

    The background layer (index 0) holds S; every layer's path at `times` is rasterized into a
    kernel_size x kernel_size kernel. Convolutions keep the image size (S replicates its border, masks are zero
    outside), where SBDD's valid convolution shrank the output by kernel_size - 1.
    """
    radius = kernel_size // 2
    S = scene.layers[0].rgb
    objects = scene.layers[1:]
    background = np.clip(1.0 - sum((l.alpha for l in objects), np.zeros_like(S[..., 0])), 0.0, 1.0)
    num = np.zeros(S.shape, dtype=np.float64)
    den = np.zeros(S.shape[:2], dtype=np.float64)
    for index, (layer, mask) in enumerate(zip(scene.layers, [background] + [l.alpha for l in objects])):
        if not layer.motion.is_translation:
            raise ValueError(f"the sbdd model needs translation-only motion; layer {index} ({layer.label}) is not")
        psf = rasterize_psf(layer.motion.at(times)[:, :2, 2], radius)
        kernel = np.ascontiguousarray(psf[::-1, ::-1], dtype=np.float32)  # filter2D correlates
        mk = cv2.filter2D(mask.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
        sk = cv2.filter2D(S, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        num += mk[..., None] * sk
        den += mk
    return (num / (den[..., None] + EPS)).astype(np.float32)
