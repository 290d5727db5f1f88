"""Integrate the exposure of a scene: blur (mean of latent images over time), sharp (latent image at the
reference time) and the blur map, all in linear light.

The integrators are the entries of `RENDER_METHODS` (recipe render.method); two are tested against each other:
- "exact": per output pixel and time sample, inverse-warp every layer front to back with bilinear sampling,
  stop when opaque (numba, parallel over rows). Handles any homography: rotation, zoom, parallax, occlusion.
- "layered": each layer's premultiplied colour and alpha convolved with its PSF over the layer's bounding box
  plus the PSF radius, composited back to front. Translation-only motion; exact for a single layer or for
  layers in front of a static one, an approximation where overlapping layers move differently.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..motion import exposure_times
from ..layers import Scene
from .exact import integrate_exact, sharp_and_blur_map
from .layered import integrate_layered
from .pack import pack_layers
from .samples import samples_for
from .sbdd import check_sbdd, integrate_sbdd


@dataclass(frozen=True)
class RenderMethod:
    """A way to integrate an exposure's blur, an entry of ``RENDER_METHODS`` (recipe ``render.method``).

    Attributes:
        integrate: ``integrate(packed, scene, samples, max_samples, kernel_size) -> (blur, samples)``: float32
            (H, W, 3) linear blur of a scene with motion, and the largest number of time samples a pixel used
            (`render`'s arguments; `packed` is the scene's `pack_layers`).
        translation_only: whether it needs every layer's motion to be a translation (the recipe's check then
            refuses the rotational camera and rotating or scaling objects before any work).
        check: optional ``check(recipe)``: the method's own rules on a recipe (RecipeError naming the field).
        help: one line for the recipe's documentation.
    """

    integrate: Callable
    translation_only: bool = False
    check: Callable | None = None
    help: str = ""


def _sample_count(scene: Scene, samples: int | None, max_samples: int) -> int:
    return samples_for(scene, max_samples) if samples is None else int(samples)


def _times_for(scene: Scene, samples: int | None, max_samples: int) -> tuple[np.ndarray, int]:
    n = _sample_count(scene, samples, max_samples)
    return exposure_times(n), n


def _exact(packed, scene, samples, max_samples, kernel_size):
    return integrate_exact(packed, scene, samples, max_samples)


def _layered(packed, scene, samples, max_samples, kernel_size):
    times, n = _times_for(scene, samples, max_samples)
    return integrate_layered(scene, times), n


def _sbdd(packed, scene, samples, max_samples, kernel_size):
    times, n = _times_for(scene, samples, max_samples)
    return integrate_sbdd(scene, times, kernel_size), n


RENDER_METHODS: dict[str, RenderMethod] = {
    "exact": RenderMethod(_exact, help="per pixel and time sample, every layer inverse-warped front to back "
                                       "(any homography, occlusion); adaptive samples per pixel"),
    "layered": RenderMethod(_layered, translation_only=True,
                            help="each layer convolved with its PSF and composited back to front (translation only)"),
    "sbdd": RenderMethod(_sbdd, translation_only=True, check=check_sbdd,
                         help="SBDD's blended uniform kernels, one per segment (translation only)"),
}


@dataclass
class Exposure:
    """What one exposure produces, in linear light.

    Attributes:
        blur: float32 (H, W, 3), mean of the latent images over the exposure (values may exceed 1).
        sharp: float32 (H, W, 3), latent image at the reference time.
        blur_map: float32 (H, W, 3): unit direction (u_x, u_y) and magnitude in pixels of the displacement,
            from the start to the end of the exposure, of the surface seen at each pixel at the reference time
            (ID-Blau's convention; alpha-weighted over layers at soft edges).
        samples: the largest number of time samples any pixel integrated.
        method: "exact" or "layered".
    """

    blur: np.ndarray
    sharp: np.ndarray
    blur_map: np.ndarray
    samples: int
    method: str


def blur_map_stats(blur_map: np.ndarray) -> dict:
    """A sample's blur_px from its blur map's magnitude channel: mean, 95th percentile (numpy.percentile's
    linear interpolation) and max, in pixels."""
    magnitude = blur_map[..., 2]
    return {"mean": float(magnitude.mean()), "p95": float(np.percentile(magnitude, 95)),
            "max": float(magnitude.max())}


def render(scene: Scene, method: str = "exact", reference_time: float = 0.5, samples: int | None = None,
           max_samples: int = 256, kernel_size: int = 33) -> Exposure:
    """Render a scene's exposure.

    Args:
        scene: layers back to front, linear straight RGB + alpha, each with its Motion.
        method: "exact", "layered" (translation-only motion, ValueError otherwise) or "sbdd" (SBDD's blended
            uniform kernels, see render/sbdd.py; translation only).
        reference_time: where on the normalized exposure [0, 1] the sharp image is taken.
        samples: time samples for every pixel; default adaptive, about one per pixel of path of the fastest
            layer that reaches the pixel ("exact") or of the whole scene ("layered", "sbdd"), capped at
            `max_samples`.
        kernel_size: "sbdd" only: side of the square kernel each path is rasterized into.
    Returns:
        Exposure.
    """
    if method not in RENDER_METHODS:
        raise ValueError(f"unknown render method {method!r} (use one of {', '.join(RENDER_METHODS)})")
    if not 0.0 <= reference_time <= 1.0:
        raise ValueError(f"reference_time must lie in [0, 1], got {reference_time}")
    packed = pack_layers(scene)
    sharp, blur_map = sharp_and_blur_map(packed, scene, reference_time)
    if all(layer.motion.is_static for layer in scene.layers):
        # one latent image for the whole exposure: its mean is itself
        blur, n = sharp.copy(), _sample_count(scene, samples, max_samples)
    else:
        blur, n = RENDER_METHODS[method].integrate(packed, scene, samples, max_samples, kernel_size)
    return Exposure(blur=blur, sharp=sharp, blur_map=blur_map, samples=n, method=method)


def latent_frames(scene: Scene, times) -> np.ndarray:
    """The latent images of a scene at normalized exposure times (what the blur averages and events see).

    Args:
        scene: as for `render`.
        times: float sequence in [0, 1].
    Returns:
        float32 (N, H, W, 3), linear; frame k equals `render(scene, reference_time=times[k]).sharp`.
    """
    return LatentFrames(scene)(times)


def latent_times(times) -> np.ndarray:
    """Normalized exposure times as float64 (N,), checked (ValueError unless a non-empty sequence in [0, 1]): what
    every latent-frame renderer takes."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.size == 0 or times.min() < 0.0 or times.max() > 1.0:
        raise ValueError("times must be a non-empty sequence in [0, 1]")
    return times


class LatentFrames:
    """`latent_frames` of one scene, called chunk after chunk: the layers are packed once, and each call renders
    into one buffer the object keeps (grown when a call asks for more frames), so a stream of chunks touches no
    fresh memory after the first (a fresh page costs a fault in the kernel, which is dear on a VM).

    Calling it returns a view of that buffer, valid until the next call.
    """

    def __init__(self, scene: Scene):
        self.scene = scene
        self.packed = pack_layers(scene)
        self._frames = None
        self._blur_map = None  # the kernel's other output, not needed here: one scratch image

    def __call__(self, times) -> np.ndarray:
        times = latent_times(times)
        width, height = self.scene.size
        if self._frames is None or len(self._frames) < times.size:
            self._frames = np.empty((times.size, height, width, 3), dtype=np.float32)
            self._blur_map = np.empty((height, width, 3), dtype=np.float32)
        out = self._frames[:times.size]
        for k, t in enumerate(times):
            sharp_and_blur_map(self.packed, self.scene, float(t), sharp=out[k], blur_map=self._blur_map)
        return out


__all__ = ["render", "Exposure", "RenderMethod", "blur_map_stats", "latent_frames", "LatentFrames", "latent_times",
           "samples_for", "RENDER_METHODS"]
