"""The target's noise level, in linear light, as the engine's Poisson-Gaussian model: var(x) = shot x + read^2.

Residual: Immerkaer's operator N = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] / 6 (it cancels constants, ramps and
quadratic-free planes; on white noise of standard deviation s its output has standard deviation s, since the
squared weights sum to 36 / 36). It runs per channel on the linearized frame, on flat pixels only (the 30% of
pixels with the smallest gradient of the smoothed encoded gray, away from clipped codes), so edges and texture
barely leak in. Pixels are binned by their local mean level x; in each bin the robust standard deviation
1.4826 MAD of the residual, squared, less the variance the 8-bit quantization itself adds there (step^2 / 12,
the step being the linear width of one code at x), estimates var(x); a non-negative least-squares line through
those points gives (shot, read).

(Quantization of a nearly noise-free image is not white noise: where the noise is far below one code step the
correction can take the estimate to 0, which the engine's own quantization then reproduces.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..camera import Response

IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32) / np.float32(6.0)
FLAT_QUANTILE = 0.3
MAD_TO_SIGMA = 1.4826
_MIN_BIN = 200
_BINS = 12


@dataclass
class NoiseEstimate:
    """Poisson-Gaussian noise of a domain in linear [0, 1] units.

    Attributes:
        shot: variance per unit of signal (var = shot x + read^2).
        read: standard deviation of the signal-independent part.
        levels: float64 (B,) mean linear level of each bin used.
        sigmas: float64 (B,) measured standard deviation there (quantization removed).
        pixels: residual samples used.
    """

    shot: float
    read: float
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sigmas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pixels: int = 0

    def sigma(self, x) -> np.ndarray:
        """Standard deviation of the noise at linear level(s) x."""
        return np.sqrt(self.shot * np.asarray(x, np.float64) + self.read ** 2)

    def to_dict(self) -> dict:
        return {"shot": float(self.shot), "read": float(self.read), "pixels": int(self.pixels),
                "levels": [round(float(v), 6) for v in self.levels],
                "sigmas": [round(float(v), 7) for v in self.sigmas],
                "sigma_at_0.18": round(float(self.sigma(0.18)), 7)}


class NoiseSamples:
    """Flat-pixel residuals collected over frames, for `fit`.

    Args:
        response: how the frames' codes map to linear light.
        per_frame: at most this many samples kept per frame (an even, deterministic subsample).
    """

    def __init__(self, response: Response = Response(), per_frame: int = 60000):
        self.response = response
        self.per_frame = int(per_frame)
        self.lut = response.lut_to_linear()
        self._levels: list[np.ndarray] = []
        self._residuals: list[np.ndarray] = []

    def add(self, frame: np.ndarray) -> None:
        """Collect the flat-pixel residuals of one uint8 (H, W, 3) RGB frame."""
        levels, residuals = flat_residuals(frame, self.lut)
        if levels.size > self.per_frame:
            keep = np.linspace(0, levels.size - 1, self.per_frame).astype(np.int64)
            levels, residuals = levels[keep], residuals[keep]
        self._levels.append(levels)
        self._residuals.append(residuals)

    def extend(self, other: "NoiseSamples") -> None:
        self._levels += other._levels
        self._residuals += other._residuals

    def fit(self) -> NoiseEstimate:
        levels = np.concatenate(self._levels) if self._levels else np.zeros(0)
        residuals = np.concatenate(self._residuals) if self._residuals else np.zeros(0)
        return fit_noise(levels, residuals, self.response)


def estimate_noise(frames, response: Response = Response()) -> NoiseEstimate:
    """Noise of a set of uint8 (H, W, 3) RGB frames (see the module docstring)."""
    samples = NoiseSamples(response)
    for frame in frames:
        samples.add(frame)
    return samples.fit()


def flat_residuals(frame: np.ndarray, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Immerkaer residuals at the flat, unclipped pixels of a frame, per channel.

    Args:
        frame: uint8 (H, W, 3) RGB.
        lut: float32 (256,) linear value of each code.
    Returns:
        (levels, residuals): float32 (K,) each: the 3x3 mean linear level and the residual, in linear units.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    mask = flat_mask(frame)
    linear = lut[frame]
    residual = cv2.filter2D(linear, cv2.CV_32F, IMMERKAER, borderType=cv2.BORDER_REFLECT)
    level = cv2.blur(linear, (3, 3), borderType=cv2.BORDER_REFLECT)
    return level[mask].reshape(-1), residual[mask].reshape(-1)


def flat_mask(frame: np.ndarray, quantile: float = FLAT_QUANTILE) -> np.ndarray:
    """bool (H, W): the `quantile` share of pixels with the least structure (gradient of the Gaussian-smoothed
    encoded gray), without the one-pixel border and away (3x3) from codes 0 and 255."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.5)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1)
    structure = gx * gx + gy * gy
    lo = cv2.erode(frame.min(axis=2), np.ones((3, 3), np.uint8))
    hi = cv2.dilate(frame.max(axis=2), np.ones((3, 3), np.uint8))
    usable = (lo > 0) & (hi < 255)
    usable[[0, -1], :] = False
    usable[:, [0, -1]] = False
    if not usable.any():
        return usable
    threshold = np.quantile(structure[usable], quantile)
    return usable & (structure <= threshold)


def gray_noise_sigma(frame: np.ndarray) -> float:
    """Robust noise standard deviation of a frame's encoded gray in [0, 1] units (MAD of the Immerkaer residual
    on flat pixels); used to take the noise's share out of detail energies (`sharpness.EnergyMap`)."""
    mask = flat_mask(frame)
    if not mask.any():
        return 0.0
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / np.float32(255.0)
    r = cv2.filter2D(gray, cv2.CV_32F, IMMERKAER, borderType=cv2.BORDER_REFLECT)[mask]
    return float(MAD_TO_SIGMA * np.median(np.abs(r - np.median(r))))


def fit_noise(levels: np.ndarray, residuals: np.ndarray, response: Response = Response()) -> NoiseEstimate:
    """Fit var(x) = shot x + read^2 to residuals binned by level (see the module docstring).

    Args:
        levels, residuals: float (K,) linear level and Immerkaer residual of each flat pixel.
        response: the frames' response (for the width of a code step at each level).
    Returns:
        NoiseEstimate (zero noise when fewer than 200 usable pixels).
    """
    levels = np.asarray(levels, np.float64)
    residuals = np.asarray(residuals, np.float64)
    ok = (levels > 1e-3) & (levels < 0.98)
    levels, residuals = levels[ok], residuals[ok]
    if levels.size < _MIN_BIN:
        return NoiseEstimate(0.0, 0.0, pixels=int(levels.size))
    bins = min(_BINS, max(1, levels.size // _MIN_BIN))
    edges = np.unique(np.quantile(levels, np.linspace(0.0, 1.0, bins + 1)))
    which = np.clip(np.searchsorted(edges, levels, side="right") - 1, 0, len(edges) - 2)
    xs, vs, ns = [], [], []
    for b in range(len(edges) - 1):
        sel = which == b
        if np.count_nonzero(sel) < _MIN_BIN:
            continue
        r = residuals[sel]
        x = float(np.mean(levels[sel]))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))
        step = code_step(response, x)
        xs.append(x)
        vs.append(max(sigma * sigma - step * step / 12.0, 0.0))
        ns.append(np.count_nonzero(sel))
    if not xs:
        return NoiseEstimate(0.0, 0.0, pixels=int(levels.size))
    x, v, n = np.array(xs), np.array(vs), np.array(ns, np.float64)
    shot, read2 = _nonnegative_line(x, v, n)
    return NoiseEstimate(shot, float(np.sqrt(read2)), x, np.sqrt(v), int(n.sum()))


def code_step(response: Response, x: float) -> float:
    """Width in linear units of the 8-bit code step at linear level x."""
    e = float(response.to_encoded(np.float32(x)))
    lo, hi = response.to_linear(np.float32([max(e - 0.5 / 255, 0.0), min(e + 0.5 / 255, 1.0)]))
    return float(hi - lo)


def _nonnegative_line(x: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares v = a x + b with a, b >= 0 (the two-parameter NNLS, by its cases)."""
    A = np.stack([x, np.ones_like(x)], axis=1) * np.sqrt(w)[:, None]
    y = v * np.sqrt(w)
    if len(x) >= 2:
        (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
        if a >= 0 and b >= 0:
            return float(a), float(b)
    # one of the two at zero: the better of the two constrained fits
    a_only = max(float(np.sum(w * x * v) / max(np.sum(w * x * x), 1e-300)), 0.0)
    b_only = max(float(np.sum(w * v) / max(np.sum(w), 1e-300)), 0.0)
    err_a = float(np.sum(w * (v - a_only * x) ** 2))
    err_b = float(np.sum(w * (v - b_only) ** 2))
    return (a_only, 0.0) if err_a <= err_b else (0.0, b_only)
