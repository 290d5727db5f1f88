"""The layered-convolution integrator: translation-only motion, one PSF per layer, back-to-front compositing
of blurred premultiplied colour over one minus blurred alpha."""
from __future__ import annotations

import cv2
import numba
import numpy as np

from ..motion import rasterize_psf
from ..layers import Scene
from .pack import _premultiply


def integrate_layered(scene: Scene, times: np.ndarray) -> np.ndarray:
    """Blur of a translation-only scene -> float32 (H, W, 3) linear.

    Each layer's premultiplied colour and alpha are convolved, over the box where its alpha is non-zero grown
    by the PSF radius, with the PSF rasterized from its path at `times`, the same samples the exact integrator
    uses. Raises ValueError naming the layer if its motion is not a pure translation.
    """
    width, height = scene.size
    out = np.zeros((height, width, 3), dtype=np.float32)
    for index, layer in enumerate(scene.layers):
        if not layer.motion.is_translation:
            raise ValueError(f"layered rendering needs translation-only motion; layer {index} "
                             f"({layer.label or 'unnamed'}) rotates, scales or has perspective: use method='exact'")
        xy = layer.motion.at(times)[:, :2, 2]
        psf = rasterize_psf(xy)
        r = psf.shape[0] // 2
        # cv2.filter2D correlates; the flipped kernel convolves
        kernel = np.ascontiguousarray(psf[::-1, ::-1], dtype=np.float32)
        if layer.extend:
            x0, y0, x1, y1 = 0, 0, width - 1, height - 1
            border = cv2.BORDER_REPLICATE
        else:
            bx0, by0, bx1, by1 = layer.support_box()
            x0, y0 = max(bx0 - r, 0), max(by0 - r, 0)
            x1, y1 = min(bx1 + r, width - 1), min(by1 + r, height - 1)
            border = cv2.BORDER_CONSTANT
        if index == 0 and layer.extend and layer.is_opaque():
            # an opaque back layer replaces what is below it: its colour alone, no premultiplied copy
            cv2.filter2D(layer.rgb, -1, kernel, dst=out, borderType=border)
            continue
        rgba = np.empty((y1 - y0 + 1, x1 - x0 + 1, 4), dtype=np.float32)
        _premultiply(layer.rgb, layer.alpha, y0, y1, x0, x1, rgba.reshape(-1), 0)
        blurred = cv2.filter2D(rgba, -1, kernel, borderType=border)
        _over(out, blurred, y0, x0)
    return out


@numba.njit(parallel=True, cache=True)
def _over(out, rgba, y0, x0):
    """out[y0:, x0:] = premultiplied rgba over it, in place (rgba float32 (h, w, 4))."""
    for y in numba.prange(rgba.shape[0]):
        for x in range(rgba.shape[1]):
            keep = np.float32(1.0) - rgba[y, x, 3]
            for c in range(3):
                out[y0 + y, x0 + x, c] = out[y0 + y, x0 + x, c] * keep + rgba[y, x, c]
