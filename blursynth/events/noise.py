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

The effects are the entries of `EFFECTS`, applied in its order. An `Effect` names the `NoiseModel` fields it reads,
says when it is on, and has up to three steps: `draw` (per-pixel parameters, once when the stream starts),
`comparator` (what the comparator sees, frame by frame) and `events` (events of its own per frame interval, which
do not move the reference). Adding an effect: its steps and one entry in `EFFECTS`, its fields in `NoiseModel` and
`recipe.EventNoiseRecipe` (a test keeps the three in agreement). The refractory period is not an entry: it acts
inside the simulator's crossing walk (simulate.py, `refractory_s`). Presets are recipe values:
`recipe.EVENT_NOISE_PRESETS` (`NoiseModel.preset`, the recipe's `events.noise: NAME`, `blursynth events --noise`).

Every random draw comes from the `rng` passed to `simulate`: per-pixel parameters when the stream starts, then
the shot / hot-pixel events interval by interval, so chunked streaming consumes the stream exactly as one call.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..recipe import EVENT_NOISE_PRESETS

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
        return not any(effect.on(self) for effect in EFFECTS.values())

    @classmethod
    def preset(cls, name: str) -> "NoiseModel":
        """The model of a preset of `recipe.EVENT_NOISE_PRESETS` ("ideal", "clean", "v2e", "noisy")."""
        if name not in EVENT_NOISE_PRESETS:
            raise ValueError(f"unknown noise preset {name!r} (known: {', '.join(EVENT_NOISE_PRESETS)})")
        return cls(**EVENT_NOISE_PRESETS[name].to_dict())

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NoiseState:
    """Per-pixel noise parameters (drawn once) and the low-pass state, carried between chunks.

    Attributes:
        threshold_pos, threshold_neg: float64 (H, W) thresholds, log units.
        leak_hz: float64 (H, W) leak rate per pixel, Hz.
        hot: bool (H, W) hot pixels.
        lp_log: float64 (H, W) low-passed log intensity at the last frame (the low-pass's state).
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
    """Draw the per-pixel parameters of a sensor of log0's shape (H, W): the nominal thresholds, no leak, no hot
    pixel and the low-pass at log0, then each effect that is on draws its own, in table order."""
    shape = log0.shape
    ns = NoiseState(np.full(shape, float(threshold_pos)), np.full(shape, float(threshold_neg)), np.zeros(shape),
                    np.zeros(shape, bool), np.array(log0, np.float64, copy=True), float(t0_s))
    for effect in _steps(model, "draw"):
        effect.draw(model, ns, (threshold_pos, threshold_neg), rng)
    return ns


def filtered_logs(model: NoiseModel, ns: NoiseState, frames: np.ndarray, t_s: np.ndarray, t_prev: float,
                  log_eps: float) -> np.ndarray:
    """The log intensities the comparator sees, float64 (n, H, W): log(frame + log_eps) through each effect's
    comparator step in table order (the low-pass, then the leak drift). Advances ns."""
    steps = _steps(model, "comparator")
    out = np.empty(frames.shape, np.float64)
    for k in range(len(frames)):
        value = np.log(frames[k].astype(np.float64) + log_eps)
        for effect in steps:
            value = effect.comparator(model, ns, value, frames[k], t_s[k], t_s[k] - t_prev)
        out[k] = value
        t_prev = t_s[k]
    return out


def poisson_events(model: NoiseModel, ns: NoiseState, frames: np.ndarray, t_s: np.ndarray, t_prev: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The effects' own events (shot noise, hot pixels) over the intervals ending at t_s, interval by interval
    and in table order within one (frames: the frame at each interval's end, whose intensity sets the shot
    rate). Returns (t_s float64, x, y, p) unsorted."""
    steps = _steps(model, "events")
    parts = []
    for k in range(len(frames)):
        for effect in steps:
            part = effect.events(model, ns, frames[k], t_prev, t_s[k] - t_prev, rng)
            if part is not None:
                parts.append(part)
        t_prev = t_s[k]
    if not parts:
        return np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def shot_rate_hz(model: NoiseModel, frame: np.ndarray) -> np.ndarray:
    """Total shot-noise rate per pixel (ON + OFF), Hz, for a linear frame (H, W) in [0, 1]."""
    inten01 = (255.0 * np.clip(frame, 0.0, 1.0) + 20.0) / 275.0
    return model.shot_rate_hz * (1.0 + (model.shot_intensity_factor - 1.0) * inten01)


@dataclass(frozen=True)
class Effect:
    """One noise effect, an entry of `EFFECTS`. Its steps (None where it has none):

    - draw(model, ns, (threshold_pos, threshold_neg), rng): per-pixel parameters into ns, when a stream starts;
    - comparator(model, ns, value, frame, t_s, dt_s) -> value: the comparator's float64 (H, W) log intensity at
      the frame of time t_s, dt_s after the previous one, from the previous step's;
    - events(model, ns, frame, t_prev_s, dt_s, rng) -> (t_s, x, y, p) or None: events of the interval.

    Attributes:
        fields: the NoiseModel fields it reads (every field belongs to exactly one effect).
        on: whether the model turns it on; an effect that is off draws no random number.
    """

    fields: tuple[str, ...]
    on: Callable[[NoiseModel], bool]
    draw: Callable | None = None
    comparator: Callable | None = None
    events: Callable | None = None


def _steps(model: NoiseModel, step: str) -> list[Effect]:
    return [e for e in EFFECTS.values() if getattr(e, step) is not None and e.on(model)]


def _draw_thresholds(model, ns, nominal, rng):
    threshold_pos, threshold_neg = nominal
    ns.threshold_pos = np.maximum(rng.normal(threshold_pos, model.threshold_sigma, ns.lp_log.shape), MIN_THRESHOLD)
    ns.threshold_neg = np.maximum(rng.normal(threshold_neg, model.threshold_sigma, ns.lp_log.shape), MIN_THRESHOLD)


def _low_pass(model, ns, value, frame, t_s, dt_s):
    inten01 = (255.0 * np.clip(frame, 0.0, 1.0) + 20.0) / 275.0
    eps = np.minimum(2 * np.pi * model.cutoff_hz * dt_s * inten01, 1.0)
    ns.lp_log += eps * (value - ns.lp_log)
    return ns.lp_log


def _draw_leak(model, ns, nominal, rng):
    ns.leak_hz = np.full(ns.lp_log.shape, model.leak_rate_hz)
    if model.leak_spread_decades > 0:
        ns.leak_hz = ns.leak_hz * 10.0 ** rng.normal(0.0, model.leak_spread_decades, ns.lp_log.shape)


def _leak_drift(model, ns, value, frame, t_s, dt_s):
    return value + ns.leak_hz * ns.threshold_pos * (t_s - ns.t_origin_s)


def _shot_events(model, ns, frame, t_prev_s, dt_s, rng):
    counts = rng.poisson(shot_rate_hz(model, frame) * dt_s)
    ys, xs = np.nonzero(counts)
    reps = counts[ys, xs]
    m = int(reps.sum())
    return (t_prev_s + dt_s * rng.random(m), np.repeat(xs, reps), np.repeat(ys, reps),
            np.where(rng.random(m) < 0.5, 1, -1))


def _draw_hot(model, ns, nominal, rng):
    ns.hot = rng.random(ns.lp_log.shape) < model.hot_pixel_fraction


def _hot_events(model, ns, frame, t_prev_s, dt_s, rng):
    hot_y, hot_x = np.nonzero(ns.hot)
    if not len(hot_y):
        return None
    reps = rng.poisson(model.hot_pixel_rate_hz * dt_s, len(hot_y))
    m = int(reps.sum())
    return (t_prev_s + dt_s * rng.random(m), np.repeat(hot_x, reps), np.repeat(hot_y, reps), np.ones(m, np.int64))


# The effects in the order they act (the module docstring's list): draws, comparator steps and events each run in
# this order, which fixes the order of the random draws.
EFFECTS: dict[str, Effect] = {
    "threshold_mismatch": Effect(("threshold_sigma",), lambda m: m.threshold_sigma > 0, draw=_draw_thresholds),
    "low_pass": Effect(("cutoff_hz",), lambda m: m.cutoff_hz > 0, comparator=_low_pass),
    "leak": Effect(("leak_rate_hz", "leak_spread_decades"), lambda m: m.leak_rate_hz > 0, draw=_draw_leak,
                   comparator=_leak_drift),
    "shot": Effect(("shot_rate_hz", "shot_intensity_factor"), lambda m: m.shot_rate_hz > 0, events=_shot_events),
    "hot_pixels": Effect(("hot_pixel_fraction", "hot_pixel_rate_hz"),
                         lambda m: m.hot_pixel_fraction > 0 and m.hot_pixel_rate_hz > 0, draw=_draw_hot,
                         events=_hot_events),
}
