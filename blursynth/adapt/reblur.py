"""Matched reblurring: blur a pseudo-sharp patch with the engine, with a motion drawn from the target's blur
distribution and the target's noise.

Sampling and applying are separate: `draw_condition` draws a `Condition` (magnitude, direction, path shape,
seed: plain data kept in the sample's meta), `reblur_patch` is a pure function of it and the noise stream.
The patch is linearized with the target's response, rendered as one opaque layer (the patch plus a margin of
its frame, so content entering the window is real, not replicated) moving along the path, and the exposure's
blur map is exactly the drawn condition: (cos a, sin a, m) at every pixel, ID-Blau's convention. The sharp
target is the patch itself (the response round trip returns its codes).

Noise: the pseudo-sharp patch already carries the target's noise. By default the blur averages it down by
sum(k^2) (k the rasterized path kernel: 1 for no motion, about 1 / (m + 1) for a line of m px) and the camera
adds the rest, (1 - sum(k^2)) of the target's Poisson-Gaussian variance (shot and read^2 both scaled), so the
blurred patch ends near the target's noise level; for small motions the input's noise is then mostly the
target's own. With `denoise` (the adapt setting `reblur.denoise`) the patch is denoised before it is blurred
(non-local means, strength from the target's noise at the patch's level) and the camera adds the target's whole
noise: the input's noise is a fresh draw, independent of the noise the (untouched, noisy) sharp target keeps,
as with Noise2Noise targets.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..camera import CameraParams, Response, apply_camera
from ..motion import Motion, gp_trajectory, rasterize_psf
from ..motion.shake import PATH_SAMPLES
from ..render import render
from ..layers import Layer, Scene
from ..seeding import child_seed
from .domain import BlurDistribution
from .noise import NoiseEstimate

_GP_TRIES = 8
_MIN_CHORD = 0.3  # a GP curve is used when its end-to-end distance is at least this share of its length


@dataclass(frozen=True)
class Condition:
    """A drawn blur condition.

    Attributes:
        magnitude_px: end-to-end displacement over the exposure, px.
        angle_rad: its direction, atan2(u_y, u_x) (x right, y down).
        path: "line" or "gp".
        seed: seed of the GP curve ("gp"; kept for "line" too, so both draw the same numbers).
    """

    magnitude_px: float
    angle_rad: float
    path: str = "line"
    seed: int = 0

    def direction(self) -> tuple[float, float]:
        return math.cos(self.angle_rad), math.sin(self.angle_rad)

    def to_meta(self) -> dict:
        d = asdict(self)
        d["direction"] = [round(v, 9) for v in self.direction()]
        return d


def draw_condition(distribution: BlurDistribution, rng: np.random.Generator, path: str = "line") -> Condition:
    """One condition following the distribution (three uniforms, then one seed, from `rng`)."""
    m, a = distribution.sample(rng, 1)
    return Condition(float(m[0]), float(a[0]), path, child_seed(rng))


def condition_path(condition: Condition, samples: int = PATH_SAMPLES) -> np.ndarray:
    """The translation path of a condition, px, equally spaced in time, from (0, 0) to m (cos a, sin a).

    "line": straight at constant speed. "gp": a Gaussian-process curve (`motion.gp_trajectory`) rotated and
    scaled so that its end-to-end displacement is the drawn one (curves that nearly close on themselves, chord
    under 30% of their length, are redrawn; after 8 tries the line is used).
    Returns float64 (samples, 2).
    """
    m, (cx, cy) = condition.magnitude_px, condition.direction()
    t = np.linspace(0.0, 1.0, samples)[:, None]
    line = t * np.array([[m * cx, m * cy]])
    if condition.path == "line" or m <= 0:
        return line
    if condition.path != "gp":
        raise ValueError(f"unknown path {condition.path!r} (use 'line' or 'gp')")
    seeds = np.random.default_rng(condition.seed).integers(0, 2**62, _GP_TRIES)
    for seed in seeds:
        xy = gp_trajectory(int(seed), 1.0, samples=samples)
        chord = xy[-1] - xy[0]
        length = float(np.hypot(*chord))
        if length >= _MIN_CHORD:
            rot = math.atan2(cy, cx) - math.atan2(chord[1], chord[0])
            c, s = math.cos(rot) * m / length, math.sin(rot) * m / length
            xy = xy - xy[0]
            return np.stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]], axis=1)
    return line


@dataclass
class Pair:
    """A reblurred pair.

    Attributes:
        blur, sharp: uint8 (P, P, 3) encoded RGB.
        blur_map: float32 (P, P, 3) (u_x, u_y, magnitude px) of the exposure, ID-Blau's convention.
        camera: the camera that encoded it (noise already scaled as in the module docstring).
        samples: time samples the renderer integrated.
    """

    blur: np.ndarray
    sharp: np.ndarray
    blur_map: np.ndarray
    camera: CameraParams
    samples: int


def reblur_patch(frame: np.ndarray, corner: tuple[int, int], patch: int, condition: Condition, response: Response,
                 noise: NoiseEstimate | None, rng: np.random.Generator, method: str = "exact",
                 denoise: bool = False) -> Pair:
    """Blur one patch of a target frame with a condition, in linear light, and encode it like the target.

    Args:
        frame: uint8 (H, W, 3) RGB target frame.
        corner: (x0, y0) top-left of the patch, px.
        patch: side of the patch, px.
        condition: the motion (`draw_condition`).
        response: the target's response curve.
        noise: the target's noise (None: none added).
        rng: the sample's noise stream.
        method: "exact" or "layered" (the path is a translation: both integrate it).
        denoise: blur a denoised copy of the patch and add the whole noise (see the module docstring); only with
            a noise estimate.
    """
    xy = condition_path(condition)
    mid = _at_half(xy)
    reach = float(np.max(np.abs(xy - mid)))
    margin = int(math.ceil(reach)) + 2
    x0, y0 = int(corner[0]) - margin, int(corner[1]) - margin
    region = _crop_replicate(frame, x0, y0, patch + 2 * margin)
    noisy = noise is not None and (noise.shot > 0 or noise.read > 0)
    source = denoise_codes(region, noise, response) if noisy and denoise else region
    linear = response.lut_to_linear()[source]
    layer = Layer(linear, np.ones(linear.shape[:2], np.float32), Motion.from_translation(xy).recentered(0.5),
                  extend=True, _opaque=True)
    exposure = render(Scene([layer]), method=method, reference_time=0.5)
    inner = (slice(margin, margin + patch), slice(margin, margin + patch))
    shot = read = 0.0
    if noisy:
        # share of the source's noise variance the blur leaves (none once denoised)
        kept = 0.0 if denoise else float(np.sum(np.square(rasterize_psf(xy - mid))))
        rest = max(0.0, 1.0 - kept)
        shot, read = noise.shot * rest, noise.read * math.sqrt(rest)
    camera = CameraParams(gain=1.0, response=response, shot=shot, read=read)
    blur, sharp = apply_camera(np.ascontiguousarray(exposure.blur[inner]), np.ascontiguousarray(exposure.sharp[inner]),
                               camera, rng)
    if source is not region:
        sharp = np.ascontiguousarray(region[inner])  # the target keeps the patch as it was, noise and all
    return Pair(blur, sharp, np.ascontiguousarray(exposure.blur_map[inner]), camera, exposure.samples)


def denoise_codes(image: np.ndarray, noise: NoiseEstimate, response: Response) -> np.ndarray:
    """Non-local means (OpenCV, colour) of an encoded image, with the filter strength h set to the noise's
    standard deviation in codes at the image's median linear level.

    Args:
        image: uint8 (H, W, 3) RGB.
        noise: the domain's noise, linear units.
        response: the image's response curve.
    Returns:
        uint8 (H, W, 3), same size.
    """
    x = float(np.median(response.lut_to_linear()[image]))
    s = float(noise.sigma(x))
    lo, hi = response.to_encoded(np.array([max(x - s, 0.0), min(x + s, 1.0)], np.float32))
    h = max(float(255.0 * (hi - lo) / 2.0), 1e-3)
    return cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(image), None, h, h, 5, 13)


def _at_half(xy: np.ndarray) -> np.ndarray:
    """Position at t = 0.5 of a path sampled equally in time (linear between samples)."""
    pos = 0.5 * (len(xy) - 1)
    k = int(math.floor(pos))
    f = pos - k
    return xy[k] if f == 0 else (1 - f) * xy[k] + f * xy[k + 1]


def _crop_replicate(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The side x side window of a frame at (x0, y0), the frame's border replicated where it reaches outside."""
    h, w = frame.shape[:2]
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + side - w), max(0, y0 + side - h)
    inner = frame[max(y0, 0):min(y0 + side, h), max(x0, 0):min(x0 + side, w)]
    if left or top or right or bottom:
        inner = cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(inner)
