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

from functools import lru_cache

import cv2
import numba
import numpy as np

from . import rng as rng_mod
from .recipe import CameraRecipe

# above this expected photon count, Poisson(lam) is drawn as N(lam, lam): same mean and variance, skewness
# 1 / sqrt(lam) < 0.18 (the usual heteroscedastic-Gaussian model of raw noise)
_GAUSSIAN_LAMBDA = 32.0


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

    def code_thresholds(self) -> np.ndarray:
        """float64 (255,): the linear value where the 8-bit code steps from c - 1 to c (c = 1..255).

        quantize(to_encoded(x)) == number of thresholds <= x, which `encode_u8` evaluates without a power
        function per pixel.
        """
        return _thresholds(self.kind, self.gamma)


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
    thresholds = params.response.code_thresholds()
    if params.shot > 0 or params.read > 0:
        blur_u8 = encode_u8(add_noise(blur, params.shot, params.read, rng, params.gain), 1.0, thresholds)
    else:
        blur_u8 = encode_u8(blur, params.gain, thresholds)
    if params.jpeg_quality is not None:
        blur_u8 = jpeg_roundtrip(blur_u8, params.jpeg_quality)
    return blur_u8, encode_u8(sharp, params.gain, thresholds)


def encode_u8(linear: np.ndarray, gain: float, thresholds: np.ndarray) -> np.ndarray:
    """uint8 codes of gain * linear through a response given by its code thresholds (clipping included).

    Equal to quantize(response.to_encoded(gain * linear)) up to values within float rounding of a threshold.
    """
    out = np.empty(linear.shape, dtype=np.uint8)
    t32 = np.ascontiguousarray(thresholds, dtype=np.float32)
    _encode_u8(linear.reshape(-1), np.float32(gain), t32, _code_lut(t32.tobytes()), out.reshape(-1))
    return out


_LUT_STEPS = 65536


@lru_cache(maxsize=64)
def _code_lut(thresholds: bytes) -> np.ndarray:
    """lut[i] = number of thresholds <= i / S: a lower bound of the code of any v in [i / S, (i + 1) / S)."""
    t = np.frombuffer(thresholds, dtype=np.float32)
    lut = np.searchsorted(t, np.arange(_LUT_STEPS + 1).astype(np.float32) / np.float32(_LUT_STEPS), side="right")
    lut = lut.astype(np.int64)
    lut.flags.writeable = False
    return lut


def add_noise(x: np.ndarray, shot: float, read: float, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """Poisson-Gaussian noise on the exposure gain * x: y = shot * Poisson(x' / shot) + N(0, read^2) with
    x' = gain * x (float32 product) clipped to >= 0.

    Below 32 expected photons the Poisson count is exact (rng.poisson); above, it is drawn from the
    Gaussian with the same mean and variance, the usual heteroscedastic model of raw noise (skewness
    1 / sqrt(lam) < 0.18 there). The kernel draws value i's normal and uniforms itself from a counter-based
    stream (blursynth.rng) keyed by one 64-bit draw from `rng`, so the result is a pure function of
    (x, gain, shot, read, rng state) on any number of threads, and the CUDA kernel draws the same numbers.
    Returns float32 of x's shape.
    """
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out = np.empty_like(flat)
    _noise(flat, np.float32(gain), np.float64(shot), np.float64(read), rng_mod.key_from(rng), *rng_mod.NOISE_TABLES,
           out)
    return out.reshape(np.shape(x))


# value i's Poisson uniforms come from the streams keyed by key ^ these (its normal from the stream `key`)
UNIFORM_SALT = np.uint64(0x6A09E667F3BCC909)
UNIFORM_SALT2 = np.uint64(0xBB67AE8584CAA73B)


@numba.njit(parallel=True, cache=True, nogil=True)
def _noise(x, gain, shot, read, key, zk, zw, zf, pcdf, pguide, out):
    # two passes: the Gaussian model everywhere (float32), then the exact Poisson count where fewer than
    # _GAUSSIAN_LAMBDA photons are expected (that pass draws the value's normal again: same hash, same number)
    shot32, var_read = np.float32(shot), np.float32(read * read)
    zero = np.float32(0.0)
    for i in numba.prange(x.shape[0]):
        v = max(x[i] * gain, zero)
        out[i] = v + np.sqrt(shot32 * v + var_read) * np.float32(rng_mod.normal(rng_mod.hash64(key, i), zk, zw, zf))
    if not shot > 0.0:
        return
    dark = np.float32(_GAUSSIAN_LAMBDA * shot)
    ukey, ukey2 = key ^ UNIFORM_SALT, key ^ UNIFORM_SALT2
    for i in numba.prange(x.shape[0]):
        g = x[i] * gain
        if not g < dark:
            continue
        lam = max(np.float64(g), 0.0) / shot
        k = rng_mod.poisson(lam, rng_mod.unit(rng_mod.hash64(ukey, i)), rng_mod.unit(rng_mod.hash64(ukey2, i)),
                            pcdf, pguide)
        normal = np.float32(rng_mod.normal(rng_mod.hash64(key, i), zk, zw, zf))
        out[i] = shot * k + read * np.float64(normal)


def quantize(encoded: np.ndarray) -> np.ndarray:
    """Encoded float in [0, 1] -> uint8 by rounding (values outside [0, 1] are clipped)."""
    return np.clip(np.rint(np.asarray(encoded, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> the same after JPEG at `quality` (OpenCV's libjpeg, 4:2:0)."""
    ok, data = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


@lru_cache(maxsize=64)
def _thresholds(kind: str, gamma: float) -> np.ndarray:
    # the encoded midpoints (c - 0.5) / 255 mapped back to linear, in float64
    mid = (np.arange(1, 256, dtype=np.float64) - 0.5) / 255.0
    if kind == "gamma":
        t = mid ** gamma
    else:
        t = np.where(mid <= 0.04045, mid / 12.92, ((mid + 0.055) / 1.055) ** 2.4)
    t.flags.writeable = False
    return t


@numba.njit(parallel=True, cache=True, nogil=True)
def _encode_u8(x, gain, thresholds, lut, out):
    # lut (see _code_lut) gives a lower bound of the code; the upward scan over the sorted thresholds then
    # makes it exact (0-2 steps, most often none)
    S = lut.shape[0] - 1
    n = x.shape[0]
    for i in numba.prange(n):
        v = x[i] * gain
        if not v > 0.0:  # also NaN
            out[i] = 0
            continue
        c = lut[int(min(v, np.float32(1.0)) * S)]  # every threshold is below 1: clamp before int (inf)
        while c < 255 and thresholds[c] <= v:
            c += 1
        out[i] = c


def _lerp(bounds, u: float) -> float:
    lo, hi = bounds
    return float(lo + (hi - lo) * u)
