"""The camera: what a sensor writes from linear radiance.

Order (DESIGN.md, section 1): exposure gain -> Poisson-Gaussian noise (blur only) -> clipping to the sensor's
range -> response curve (sRGB or a pure gamma) -> 8-bit quantization -> optional JPEG (blur only). Clipping
comes after the exposure integral, so saturated lights smear into bright streaks instead of being averaged
down. The sharp target takes the same gain, clipping and response, without noise or JPEG.

Parameters are drawn once per sample by `sample_camera` (stored in the sample's meta) and applied by pure
functions, so a sample can be replayed from its meta.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .recipe import CameraRecipe

# above this expected photon count, Poisson(lam) is drawn as N(lam, lam) (error in variance < 1 / lam)
_GAUSSIAN_LAMBDA = 256.0


@dataclass(frozen=True)
class Response:
    """Camera response curve. kind "srgb" (IEC 61966-2-1) or "gamma" (encoded = linear ** (1 / gamma))."""

    kind: str = "srgb"
    gamma: float = 2.2

    def __post_init__(self):
        if self.kind not in ("srgb", "gamma"):
            raise ValueError(f"unknown response {self.kind!r} (use 'srgb' or 'gamma')")
        if self.kind == "gamma" and not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")

    def to_linear(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded values in [0, 1] (float) -> linear float32."""
        x = np.clip(np.asarray(encoded, dtype=np.float32), 0.0, 1.0)
        if self.kind == "gamma":
            return np.power(x, np.float32(self.gamma))
        return np.where(x <= 0.04045, x / np.float32(12.92), np.power((x + np.float32(0.055)) / np.float32(1.055),
                                                                       np.float32(2.4))).astype(np.float32)

    def to_encoded(self, linear: np.ndarray) -> np.ndarray:
        """Linear values (clipped to [0, 1]) -> encoded float32 in [0, 1]."""
        x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
        if self.kind == "gamma":
            return np.power(x, np.float32(1.0 / self.gamma))
        return np.where(x <= 0.0031308, x * np.float32(12.92),
                        np.float32(1.055) * np.power(x, np.float32(1 / 2.4)) - np.float32(0.055)).astype(np.float32)

    def lut_to_linear(self) -> np.ndarray:
        """float32 (256,) linear value of each 8-bit code."""
        return self.to_linear(np.arange(256, dtype=np.float32) / 255.0)


@dataclass(frozen=True)
class CameraParams:
    """One sample's camera.

    Attributes:
        gain: multiplies linear radiance before clipping (exposure / ISO).
        response: response curve used to linearize the source photo and to encode the outputs.
        shot: Poisson gain K in linear [0, 1] units: shot-noise variance = shot * x (0 = no shot noise).
        read: standard deviation of the Gaussian read noise in linear [0, 1] units.
        jpeg_quality: JPEG quality for the blurred image, or None for lossless.
    """

    gain: float = 1.0
    response: Response = Response()
    shot: float = 0.0
    read: float = 0.0
    jpeg_quality: int | None = None

    def to_meta(self) -> dict:
        return asdict(self)


def sample_camera(recipe: CameraRecipe, rng: np.random.Generator) -> CameraParams:
    """Draw a sample's camera parameters from the recipe's ranges (a fixed number of draws, in a fixed order)."""
    u = rng.random(8)
    gain = _lerp(recipe.gain, u[0])
    if u[1] < recipe.srgb_prob:
        response = Response("srgb")
    else:
        response = Response("gamma", round(_lerp(recipe.gamma_range, u[2]), 6))
    noisy = u[3] < recipe.noise_prob
    shot = _lerp(recipe.shot, u[4]) if noisy else 0.0
    read = _lerp(recipe.read, u[5]) if noisy else 0.0
    jpeg = None
    if u[6] < recipe.jpeg_prob:
        lo, hi = recipe.jpeg_quality
        jpeg = int(lo + min(int(u[7] * (hi - lo + 1)), hi - lo))
    return CameraParams(gain=gain, response=response, shot=shot, read=read, jpeg_quality=jpeg)


def apply_camera(blur: np.ndarray, sharp: np.ndarray, params: CameraParams,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Linear exposure -> what the camera writes.

    Args:
        blur, sharp: float32 (H, W, 3) linear radiance (may exceed 1 before clipping).
        params: the sample's camera.
        rng: the sample's noise stream.
    Returns:
        (blur, sharp) uint8 (H, W, 3) encoded RGB.
    """
    blur_lin = np.multiply(blur, np.float32(params.gain), dtype=np.float32)
    if params.shot > 0 or params.read > 0:
        blur_lin = add_noise(blur_lin, params.shot, params.read, rng)
    blur_u8 = quantize(params.response.to_encoded(blur_lin))
    if params.jpeg_quality is not None:
        blur_u8 = jpeg_roundtrip(blur_u8, params.jpeg_quality)
    sharp_u8 = quantize(params.response.to_encoded(np.multiply(sharp, np.float32(params.gain), dtype=np.float32)))
    return blur_u8, sharp_u8


def add_noise(x: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson-Gaussian noise: y = shot * Poisson(x / shot) + N(0, read^2), x clipped to >= 0 first.

    Expected photon counts above 256 are drawn from the Gaussian with the same mean and variance (the Poisson
    sampler costs ~10x more and the distributions agree to < 1/lam in variance there). Returns float32.
    """
    x = np.maximum(x, 0.0, dtype=np.float32)
    y = x.astype(np.float32, copy=True)
    if shot > 0:
        lam = x / np.float32(shot)
        small = lam < _GAUSSIAN_LAMBDA
        n_small = int(np.count_nonzero(small))
        y[small] = np.float32(shot) * rng.poisson(lam[small].astype(np.float64)).astype(np.float32)
        big = ~small
        y[big] += np.sqrt(np.float32(shot) * x[big]) * rng.standard_normal(x.size - n_small, dtype=np.float32)
    if read > 0:
        y += np.float32(read) * rng.standard_normal(x.shape, dtype=np.float32)
    return y


def quantize(encoded: np.ndarray) -> np.ndarray:
    """Encoded float in [0, 1] -> uint8 by rounding (values outside [0, 1] are clipped)."""
    return np.clip(np.rint(np.asarray(encoded, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> the same after JPEG at `quality` (OpenCV's libjpeg, 4:2:0)."""
    ok, data = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _lerp(bounds, u: float) -> float:
    lo, hi = bounds
    return float(lo + (hi - lo) * u)
