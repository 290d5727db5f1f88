"""Sensor non-idealities of a DVS pixel, after v2e's model (Delbruck, Hu and He, "v2e", CVPR-W 2021; see
REFERENCES.md "Events"). Each parameter says its unit and the v2e flag it mirrors.

Per pixel, in this order within each frame interval:
1. threshold mismatch: the ON and OFF thresholds of every pixel are drawn once, N(C, sigma) each, clipped
   below at 0.01 (v2e --sigma_thres, log units);
2. photoreceptor low-pass: the log intensity L drives a first-order IIR filter whose bandwidth grows with
   intensity, eps = min(1, 2 pi cutoff_hz * dt * (255 I + 20) / 275), lp <- (1 - eps) lp + eps L, updated at
   every frame (v2e --cutoff_hz; its intensity scaling, with I in [0, 1] standing for 0-255 DN);
3. leak: the reference drifts down by leak_rate * C_on per second, so a static pixel fires ON events at
   leak_rate Hz; the per-pixel rate is leak_rate_hz * 10^N(0, leak_spread_decades) (v2e --leak_rate_hz,
   --noise_rate_cov_decades). The drift is folded into L (L + rate C_on (t - t_origin)), so leak events get
   exactly interpolated times like the others;
4. shot noise: Poisson events at a total (ON + OFF, half each) rate of
   shot_rate_hz * (1 + (shot_intensity_factor - 1) * (255 I + 20) / 275) per pixel, at uniform times within
   the interval (v2e --shot_noise_rate_hz with its SHOT_NOISE_INTEN_FACTOR 0.25: dark pixels are noisier).
   Unlike v2e, shot events do not move the reference and ignore the refractory period;
5. hot pixels: a fraction of the pixels, drawn once, fire ON events as a Poisson process at hot_pixel_rate_hz
   (not in v2e's emulator; seen on real sensors).

Every random draw comes from the `rng` passed to `simulate`: per-pixel parameters when the stream starts, then
the shot / hot-pixel events interval by interval, so chunked streaming consumes the stream exactly as one call.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_THRESHOLD = 0.01


@dataclass(frozen=True)
class NoiseModel:
    """DVS noise parameters; all zero (the default) is an ideal sensor. See the module docstring.

    Attributes:
        threshold_sigma: std of the per-pixel ON / OFF thresholds, log units (v2e --sigma_thres, 0.03).
        cutoff_hz: photoreceptor 3 dB bandwidth at full intensity, Hz; 0: no low-pass (v2e --cutoff_hz).
        leak_rate_hz: mean leak (ON) event rate per pixel, Hz (v2e --leak_rate_hz, 0.01).
        leak_spread_decades: std of the log10 of the per-pixel leak rate (v2e --noise_rate_cov_decades, 0.1).
        shot_rate_hz: shot noise event rate per pixel (ON + OFF) at black, Hz (v2e --shot_noise_rate_hz, 0.001).
        shot_intensity_factor: shot rate at white / rate at black (v2e's SHOT_NOISE_INTEN_FACTOR, 0.25).
        hot_pixel_fraction: fraction of pixels that are hot, in [0, 1].
        hot_pixel_rate_hz: ON event rate of a hot pixel, Hz.
    """

    threshold_sigma: float = 0.0
    cutoff_hz: float = 0.0
    leak_rate_hz: float = 0.0
    leak_spread_decades: float = 0.0
    shot_rate_hz: float = 0.0
    shot_intensity_factor: float = 0.25
    hot_pixel_fraction: float = 0.0
    hot_pixel_rate_hz: float = 0.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"noise.{name} must be a finite number >= 0, got {value!r}")
        if self.hot_pixel_fraction > 1:
            raise ValueError(f"noise.hot_pixel_fraction must be in [0, 1], got {self.hot_pixel_fraction}")

    @property
    def is_ideal(self) -> bool:
        return not any((self.threshold_sigma, self.cutoff_hz, self.leak_rate_hz, self.shot_rate_hz,
                        self.hot_pixel_fraction * self.hot_pixel_rate_hz))

    @classmethod
    def preset(cls, name: str) -> "NoiseModel":
        """v2e's command-line presets: "clean" (sigma 0.02 only) and "noisy" (sigma 0.05, cutoff 30 Hz, leak
        0.1 Hz, shot 5 Hz); "v2e" is its defaults (sigma 0.03, cutoff 300 Hz, leak 0.01 Hz spread 0.1 decades,
        shot 0.001 Hz); "ideal" is no noise."""
        presets = {
            "ideal": cls(),
            "clean": cls(threshold_sigma=0.02),
            "v2e": cls(threshold_sigma=0.03, cutoff_hz=300.0, leak_rate_hz=0.01, leak_spread_decades=0.1,
                       shot_rate_hz=0.001),
            "noisy": cls(threshold_sigma=0.05, cutoff_hz=30.0, leak_rate_hz=0.1, leak_spread_decades=0.1,
                         shot_rate_hz=5.0),
        }
        if name not in presets:
            raise ValueError(f"unknown noise preset {name!r} (known: {', '.join(presets)})")
        return presets[name]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NoiseState:
    """Per-pixel noise parameters (drawn once) and the low-pass state, carried between chunks.

    Attributes:
        threshold_pos, threshold_neg: float64 (H, W) thresholds, log units.
        leak_hz: float64 (H, W) leak rate per pixel, Hz.
        hot: bool (H, W) hot pixels.
        lp_log: float64 (H, W) low-passed log intensity at the last frame.
        t_origin_s: time the leak drift counts from, s.
    """

    threshold_pos: np.ndarray
    threshold_neg: np.ndarray
    leak_hz: np.ndarray
    hot: np.ndarray
    lp_log: np.ndarray
    t_origin_s: float

    def copy(self) -> "NoiseState":
        return NoiseState(self.threshold_pos.copy(), self.threshold_neg.copy(), self.leak_hz.copy(),
                          self.hot.copy(), self.lp_log.copy(), self.t_origin_s)


def draw_noise_state(model: NoiseModel, log0: np.ndarray, t0_s: float, threshold_pos: float, threshold_neg: float,
                     rng: np.random.Generator) -> NoiseState:
    """Draw the per-pixel parameters of a sensor of log0's shape (H, W); the low-pass starts at log0."""
    shape = log0.shape
    cp = np.full(shape, float(threshold_pos))
    cn = np.full(shape, float(threshold_neg))
    if model.threshold_sigma > 0:
        cp = np.maximum(rng.normal(threshold_pos, model.threshold_sigma, shape), MIN_THRESHOLD)
        cn = np.maximum(rng.normal(threshold_neg, model.threshold_sigma, shape), MIN_THRESHOLD)
    leak = np.zeros(shape)
    if model.leak_rate_hz > 0:
        leak = np.full(shape, model.leak_rate_hz)
        if model.leak_spread_decades > 0:
            leak = leak * 10.0 ** rng.normal(0.0, model.leak_spread_decades, shape)
    hot = np.zeros(shape, bool)
    if model.hot_pixel_fraction > 0 and model.hot_pixel_rate_hz > 0:
        hot = rng.random(shape) < model.hot_pixel_fraction
    return NoiseState(cp, cn, leak, hot, np.array(log0, np.float64, copy=True), float(t0_s))


def shot_rate_hz(model: NoiseModel, frame: np.ndarray) -> np.ndarray:
    """Total shot-noise rate per pixel (ON + OFF), Hz, for a linear frame (H, W) in [0, 1]."""
    inten01 = (255.0 * np.clip(frame, 0.0, 1.0) + 20.0) / 275.0
    return model.shot_rate_hz * (1.0 + (model.shot_intensity_factor - 1.0) * inten01)


def filtered_logs(model: NoiseModel, ns: NoiseState, frames: np.ndarray, t_s: np.ndarray, t_prev: float,
                  log_eps: float) -> np.ndarray:
    """The log intensities the comparator sees, float64 (n, H, W): low-passed, plus the leak drift
    leak_hz * C_on * (t - t_origin). Advances ns.lp_log."""
    out = np.empty(frames.shape, np.float64)
    for k in range(len(frames)):
        log_k = np.log(frames[k].astype(np.float64) + log_eps)
        if model.cutoff_hz > 0:
            inten01 = (255.0 * np.clip(frames[k], 0.0, 1.0) + 20.0) / 275.0
            eps = np.minimum(2 * np.pi * model.cutoff_hz * (t_s[k] - t_prev) * inten01, 1.0)
            ns.lp_log += eps * (log_k - ns.lp_log)
        else:
            ns.lp_log[...] = log_k
        out[k] = ns.lp_log
        if model.leak_rate_hz > 0:
            out[k] += ns.leak_hz * ns.threshold_pos * (t_s[k] - ns.t_origin_s)
        t_prev = t_s[k]
    return out


def poisson_events(model: NoiseModel, ns: NoiseState, frames: np.ndarray, t_s: np.ndarray, t_prev: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shot-noise and hot-pixel events over the intervals ending at t_s (frames: the frame at each interval's
    end, whose intensity sets the shot rate). Returns (t_s float64, x, y, p) unsorted."""
    parts = []
    hot_y, hot_x = np.nonzero(ns.hot)
    for k in range(len(frames)):
        dt = t_s[k] - t_prev
        if model.shot_rate_hz > 0:
            counts = rng.poisson(shot_rate_hz(model, frames[k]) * dt)
            ys, xs = np.nonzero(counts)
            reps = counts[ys, xs]
            m = int(reps.sum())
            parts.append((t_prev + dt * rng.random(m), np.repeat(xs, reps), np.repeat(ys, reps),
                          np.where(rng.random(m) < 0.5, 1, -1)))
        if len(hot_y) and model.hot_pixel_rate_hz > 0:
            reps = rng.poisson(model.hot_pixel_rate_hz * dt, len(hot_y))
            m = int(reps.sum())
            parts.append((t_prev + dt * rng.random(m), np.repeat(hot_x, reps), np.repeat(hot_y, reps),
                          np.ones(m, np.int64)))
        t_prev = t_s[k]
    if not parts:
        return np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))
