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

from ..config import check_field
from ..layers import Scene
from ..motion import rasterize_psf

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


def check_sbdd(recipe) -> None:
    """The sbdd method's rules on a recipe (its `RENDER_METHODS` check; RecipeError naming the field): an odd
    kernel of at least 3 that holds the longest camera and object paths, no parallax, and the "kernel" object
    model (one independent path per segment, as SBDD drew them)."""
    k = recipe.render.kernel_size
    check_field(k >= 3 and k % 2 == 1, "render.kernel_size", f"must be odd and >= 3, got {k}")
    # a path centred on mid-exposure reaches at most half its length from the kernel centre
    at = "" if recipe.px_factor == 1.0 else f" (x {recipe.px_factor:g} at {recipe.size[0]} px wide: reference_width)"
    check_field(recipe.px_range(recipe.shake.length_px)[1] <= k - 3, "shake.length_px",
                f"must be <= {k - 3}{at} to fit a {k}x{k} kernel")
    check_field(recipe.px_range(recipe.scene.objects.speed_px)[1] <= k - 3, "scene.objects.speed_px",
                f"must be <= {k - 3}{at} to fit a {k}x{k} kernel")
    check_field(recipe.shake.parallax_px == (0.0, 0.0), "shake.parallax_px", "must be [0, 0] with render.method=sbdd")
    check_field(recipe.scene.objects.model == "kernel", "scene.objects.model", "must be 'kernel' with render.method=sbdd")
