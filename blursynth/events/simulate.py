"""ESIM-style event simulation over a stack of linear-intensity frames.

Model (rpg_vid2e esim_py, see REFERENCES.md "Events"): per pixel, L = log(I + log_eps); between consecutive
frames L is linear in time; the reference log intensity starts at the first frame's L; every crossing
c = ref + k * threshold_pos (up) or ref - k * threshold_neg (down) inside (L_prev, L_cur] fires an event at
t_prev + (c - L_prev) * dt / (L_cur - L_prev), and the reference moves to c. A refractory period keeps an
event only if it comes at least `refractory_s` after the pixel's last kept event; as in esim_py the reference
moves even when the event is suppressed.

Two numba passes over runs of frame intervals, parallel over fixed bands of rows (a band's pixels depend on no
other band, so one parallel region walks a whole run of intervals):
- walk: interval by interval, row by row. Per pixel the state keeps (lo, hi), the values (linear intensity, or
  log for the noise path) between which no level is reached from the current reference; a vectorized test
  picks the columns outside (about one pixel-frame in six on an 8-bit video at C = 0.2), and only those get
  logs (through a small cache keyed by the float32 bits: 8-bit sources repeat a few hundred values), the
  crossings and a state update (reference, bounds, last event time). The kept events go to the band's scratch
  (t, bucket and polarity, x | y << 16) in walk order and are counted in a histogram of time buckets (one per
  time unit, per interval; 2^k units when an interval spans more than _MAX_BUCKETS units, e.g. nanoseconds);
- scatter: a counting sort: each event goes to its bucket's offset, bands in order within a bucket, walk order
  within a band, straight into the output (allocated once per call, trimmed at the end). Coarse buckets (2^k
  units) are then sorted stably by t.
Ties thus come out ordered by interval, row, column and crossing, whatever the number of bands or threads.
A band whose scratch fills up stops before the pixel that does not fit and resumes there once it has grown.
The crossing loop is one loop for ON and OFF (a direction sign), exactly equivalent to two mirrored loops.
The linear bounds are exp(level) - log_eps widened by a relative 1e-4 (_bounds), far more than their rounding,
so a pixel outside the picked columns provably reaches no level: the events are those of the plain walk over
every pixel-frame, bit for bit. The state's last_log is log(last_frame + log_eps) as EventState.from_frame makes
it; a pixel's log at the start of an interval is that of the previous frame.

With a `NoiseModel` (noise.py) the same kernels read the comparator's log intensities (low-passed, with the
leak drift) and per-pixel thresholds, and shot-noise and hot-pixel events are merged in by time.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numba
import numpy as np

from .noise import NoiseModel, NoiseState, draw_noise_state, filtered_logs, poisson_events

log = logging.getLogger(__name__)

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.uint16), ("y", np.uint16), ("p", np.int8)])
"""Structured event record: t in integer time units (us by default), x column, y row, p +1 / -1."""

TIME_SCALE = {"us": 1e6, "ns": 1e9}


@dataclass
class EventState:
    """Per-pixel simulator state carried between chunks of frames.

    Attributes:
        ref_log: float64 (H, W), reference log intensity (the level of the pixel's last crossing).
        last_event_s: float64 (H, W), time in seconds of the pixel's last kept event; -inf if none. Tracked only
            while simulating with a refractory period (the kernels skip it otherwise).
        last_frame: float32 (H, W), linear intensity of the last frame seen.
        last_log: float64 (H, W), log(last_frame + log_eps).
        last_t_s: time in seconds of the last frame seen.
        noise: per-pixel noise parameters and low-pass state (noise.NoiseState) when simulating with a noise
            model, else None. last_log then holds the comparator's (filtered, drifted) log intensity.
    """

    ref_log: np.ndarray
    last_event_s: np.ndarray
    last_frame: np.ndarray
    last_log: np.ndarray
    last_t_s: float
    noise: NoiseState | None = None

    @classmethod
    def from_frame(cls, frame: np.ndarray, t_s: float, log_eps: float = 1e-3) -> "EventState":
        """State whose reference is `frame`'s log intensity (ESIM's start). frame: float32 (H, W) in [0, 1]."""
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        log_i = np.empty(frame.shape, np.float64)
        _log_frame(frame, log_eps, log_i)
        return cls(log_i.copy(), np.full(frame.shape, -np.inf), frame.copy(), log_i, float(t_s))

    def copy(self) -> "EventState":
        return EventState(self.ref_log.copy(), self.last_event_s.copy(), self.last_frame.copy(),
                          self.last_log.copy(), self.last_t_s, None if self.noise is None else self.noise.copy())


def simulate(frames: np.ndarray, t_s: np.ndarray, *, threshold_pos: float = 0.2, threshold_neg: float = 0.2,
             log_eps: float = 1e-3, refractory_s: float = 0.0, noise: NoiseModel | None = None,
             rng: np.random.Generator | None = None, random_reference: bool = False,
             state: EventState | None = None, time_unit: str = "us") -> tuple[np.ndarray, EventState]:
    """Simulate the events of an event camera watching `frames`.

    Args:
        frames: float32 (N, H, W), linear intensity in [0, 1].
        t_s: float64 (N,), frame times in seconds, strictly increasing (and after `state.last_t_s`).
        threshold_pos, threshold_neg: contrast thresholds C in log intensity for ON / OFF events.
        log_eps: offset inside the log, L = log(I + log_eps).
        refractory_s: per-pixel refractory period in seconds (0: none).
        noise: sensor noise model (noise.NoiseModel); None or all-zero: an ideal sensor.
        rng: numpy Generator for the noise and the random reference; required when either is used.
        random_reference: start each pixel's reference at L0 - U(-threshold_neg, threshold_pos) (the stationary
            distribution of L - ref) instead of L0, so the first frame leaves no ghost of itself in the events.
            Only when the stream starts (state None).
        state: carried state from a previous call (the caller's frames then continue that stream; the
            events are exactly those of one call over all frames). None: the reference starts at frames[0],
            which emits no events of its own.
        time_unit: "us" or "ns", unit of the output integer timestamps (rounded to nearest).

    Returns:
        (events, state): events is a structured array of EVENT_DTYPE (t int64, x uint16, y uint16, p int8),
        sorted by t; ties keep production order: frame interval, then row y, then column x, then the pixel's
        crossing order. state is the new EventState (the passed one is not modified).
    """
    if time_unit not in TIME_SCALE:
        raise ValueError(f"time_unit must be one of {sorted(TIME_SCALE)}, got {time_unit!r}")
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    t_s = np.ascontiguousarray(t_s, dtype=np.float64)
    if frames.ndim != 3 or t_s.shape != frames.shape[:1]:
        raise ValueError(f"frames must be (N, H, W) and t_s (N,), got {frames.shape} and {t_s.shape}")
    if frames.shape[1] > 65536 or frames.shape[2] > 65536:
        raise ValueError("frames wider or taller than 65536 do not fit uint16 coordinates")
    if threshold_pos <= 0 or threshold_neg <= 0:
        raise ValueError("thresholds must be positive")
    if not log_eps > 0:
        raise ValueError(f"log_eps must be > 0, got {log_eps}")
    if frames.size:
        lo, hi = float(frames.min()), float(frames.max())
        # log(I + log_eps) must be finite: a NaN, an infinity or I <= -log_eps has no log intensity (and would
        # make the crossing walk run without end)
        if not (lo > -log_eps and hi < np.inf):
            raise ValueError(f"frames must be finite linear intensities with I + log_eps > 0, got values in "
                             f"[{lo:g}, {hi:g}] (log_eps {log_eps:g})")
    noisy = noise is not None and not noise.is_ideal
    if (noisy or random_reference) and rng is None:
        raise ValueError("a noise model or random_reference needs rng (a numpy Generator)")
    if state is None:
        if len(frames) == 0:
            raise ValueError("the first call needs at least one frame to start the reference")
        state = EventState.from_frame(frames[0], t_s[0], log_eps)
        if noisy:
            state.noise = draw_noise_state(noise, state.last_log, t_s[0], threshold_pos, threshold_neg, rng)
        if random_reference:
            cp = threshold_pos if state.noise is None else state.noise.threshold_pos
            cn = threshold_neg if state.noise is None else state.noise.threshold_neg
            state.ref_log -= rng.uniform(0.0, 1.0, state.ref_log.shape) * (cp + cn) - cn
        frames, t_s = frames[1:], t_s[1:]
    else:
        if state.ref_log.shape != frames.shape[1:]:
            raise ValueError(f"state is {state.ref_log.shape}, frames are {frames.shape[1:]}")
        if noisy != (state.noise is not None):
            raise ValueError("a stream started with a noise model must go on with one, and one started without "
                             "must go on without")
        state = state.copy()
    t_all = np.concatenate([[state.last_t_s], t_s])
    if np.any(np.diff(t_all) <= 0):
        raise ValueError("frame times must be strictly increasing (and after the carried state's last time)")
    if len(frames) == 0:
        return np.empty(0, EVENT_DTYPE), state

    n, h, w = frames.shape
    if noisy:
        events = _simulate_noisy(frames, t_s, state, noise, rng, log_eps, refractory_s, TIME_SCALE[time_unit])
        log.debug("simulated %d events (with noise) over %d frames of %dx%d", len(events), n, w, h)
        return events, state
    one = np.ones((1, 1))
    events = _simulate_block(frames, False, t_s, state, one * threshold_pos, one * threshold_neg, float(log_eps),
                             refractory_s, TIME_SCALE[time_unit])
    total = len(events)
    log.debug("simulated %d events over %d frames of %dx%d", total, n, w, h)
    return events, state


_LUT_BITS = 14
_MAX_BUCKETS = 1 << 16
_SCRATCH_MIN = 4096
# Relative margin of the linear-intensity candidate bounds (_bounds): far above the error of _exp_approx (2e-7)
# and the float32 rounding of a stored bound (6e-8), far below any useful threshold.
_BOUND_MARGIN = 1e-4


def _simulate_noisy(frames, t_s, state, noise, rng, log_eps, refractory_s, scale):
    """Events of frames (n, H, W) at t_s (n,) with a noise model; advances `state` in place."""
    ns = state.noise
    n, h, w = frames.shape
    parts = []
    block = max(1, min(n, _NOISE_LOG_BYTES // (8 * h * w)))
    for a in range(0, n, block):
        fr, ts = frames[a:a + block], t_s[a:a + block]
        logs = filtered_logs(noise, ns, fr, ts, state.last_t_s, log_eps)
        t_prev = state.last_t_s
        signal = _simulate_block(logs, True, ts, state, ns.threshold_pos, ns.threshold_neg, log_eps, refractory_s,
                                 scale)
        nt, nx, ny, np_ = poisson_events(noise, ns, fr, ts, t_prev, rng)
        state.last_frame[...] = fr[-1]
        t_all = np.concatenate([signal["t"], np.rint(nt * scale).astype(np.int64)])
        order = np.argsort(t_all, kind="stable")
        out = np.empty(len(t_all), EVENT_DTYPE)
        out["t"] = t_all[order]
        out["x"] = np.concatenate([signal["x"], nx.astype(np.uint16)])[order]
        out["y"] = np.concatenate([signal["y"], ny.astype(np.uint16)])[order]
        out["p"] = np.concatenate([signal["p"], np_.astype(np.int8)])[order]
        parts.append(out)
    return concatenate_events(parts)


_NOISE_LOG_BYTES = 32 * 2**20


def concatenate_events(parts: list[np.ndarray]) -> np.ndarray:
    """np.concatenate of EVENT_DTYPE arrays (an empty one for no parts), through their bytes: numpy copies
    packed records one by one, 30x slower (0.24-0.43 s against 0.013 s for 2.7 M events in 5873 parts)."""
    if not parts:
        return np.empty(0, EVENT_DTYPE)
    if len(parts) == 1:
        return parts[0]
    out = np.empty(sum(len(p) for p in parts), EVENT_DTYPE)
    np.concatenate([p.view(np.uint8) for p in parts], out=out.view(np.uint8))
    return out


def _simulate_block(vals, is_log, t_s, state, cpos, cneg, log_eps, refractory_s, scale):
    """Events of vals (n, H, W) at times t_s (n,) following `state`, which is advanced in place.

    vals: float32 linear frames (is_log False), or float64 comparator log intensities (is_log True).
    cpos, cneg: float64 thresholds, (H, W) per pixel or (1, 1) for all.
    """
    n, h, w = vals.shape
    bands = max(1, min(h, numba.get_num_threads()))
    rows = np.linspace(0, h, bands + 1).round().astype(np.int64)
    keys = np.full((bands, 1 << _LUT_BITS), np.uint32(0xFFFFFFFF))
    lut = np.full((bands, 1 << _LUT_BITS), np.nan)
    bits = vals.view(np.uint32) if not is_log else np.empty((n, 1, 1), np.uint32)
    # Per pixel, the values between lo and hi reach no level from the current reference (_bounds)
    hi = np.empty((h, w), vals.dtype)
    lo = np.empty((h, w), vals.dtype)
    _init_bounds(state.ref_log, cpos, cneg, log_eps, is_log, hi, lo)
    masks = np.empty((bands, w), np.uint8)
    candidates = np.empty((bands, w), np.int64)
    scratch = _Scratch(bands, max(_SCRATCH_MIN, h * w // (2 * bands)))
    # Time buckets of each interval: rint(te * scale) for te in [t_prev, t_cur] (up to rounding) lies in
    # [t_lo, t_lo + span); 2^shift units per bucket keep an interval within _MAX_BUCKETS buckets.
    t_all = np.concatenate([[state.last_t_s], t_s])
    t_lo = np.rint(t_all[:-1] * scale).astype(np.int64) - 1
    span = np.rint(t_all[1:] * scale).astype(np.int64) - t_lo + 2
    shift = np.maximum(0, np.ceil(np.log2(span / _MAX_BUCKETS))).astype(np.int64)
    n_buckets = (span >> shift) + 1
    # runs of intervals whose histograms fit the budget: one parallel walk and one scatter per run
    ends = []
    a = 0
    while a < n:
        fits = np.cumsum(n_buckets[a:]) * 8 <= _HIST_BYTES_PER_BAND
        a += max(1, int(np.count_nonzero(fits)))
        ends.append(a)
    starts = [0] + ends[:-1]
    hist_all = np.zeros((bands, max(int(n_buckets[a:e].sum()) for a, e in zip(starts, ends))), np.int64)
    out = np.empty(0, EVENT_DTYPE)
    used = 0
    for a, e in zip(starts, ends):
        base = np.concatenate([[0], np.cumsum(n_buckets[a:e])])
        hist = hist_all[:, :int(base[-1])]  # zero: counts, then _bucket_offsets makes them cursors
        resume = np.zeros((bands, 3), np.int64)  # per band: next (interval, row, column); interval -1: done
        resume[:, 0] = a
        resume[:, 1] = rows[:-1]
        fill = np.zeros(bands, np.int64)
        while True:
            _walk_block(vals, bits, is_log, t_all, t_lo, shift, base - base[0], a, e, state.last_log, state.ref_log,
                        state.last_event_s, hi, lo, cpos, cneg, log_eps, float(refractory_s), scale, rows, resume,
                        keys, lut, masks, candidates, hist, scratch.t, scratch.bp, scratch.xy, fill)
            if np.all(resume[:, 0] < 0):
                break
            scratch.grow()  # a band ran out of room: it stopped before a pixel and resumes there
        total = int(fill.sum())
        if used + total > len(out):
            # room for the rest of the call at this run's rate (untouched pages cost no memory), trimmed at the end
            out = _grown(out, used, max(used + total, 2 * len(out), int(1.5 * total * (n - a) / (e - a)) + used))
        _bucket_offsets(hist)
        coarse = bool(np.any(shift[a:e] > 0))
        first = hist[0].copy() if coarse else None  # where each bucket starts
        run_out = out[used:used + total]
        _scatter(scratch.t, scratch.bp, scratch.xy, fill, hist, run_out)
        if coarse and total:
            _sort_buckets(run_out, first, total)
        del run_out
        hist[...] = 0
        used += total
    if used < len(out):
        out.resize(used, refcheck=False)  # our own array, no views: realloc gives the unused tail back
    if is_log:
        state.last_log[...] = vals[-1]
    else:
        _advance_last_frame(vals[-1], state.last_frame, state.last_log, log_eps)
    state.last_t_s = float(t_all[-1])
    return out


# Histogram bytes per band and run of intervals (int64 counts, then cursors): small enough to stay in cache,
# large enough that a run holds several intervals (each run is two parallel regions; on a busy machine every
# region waits for its slowest thread).
_HIST_BYTES_PER_BAND = 2**20


def _grown(out: np.ndarray, used: int, size: int) -> np.ndarray:
    """A new EVENT_DTYPE array of `size` records holding out[:used] (copied as bytes)."""
    new = np.empty(size, EVENT_DTYPE)
    nbytes = used * EVENT_DTYPE.itemsize
    new.view(np.uint8)[:nbytes] = out.view(np.uint8)[:nbytes]
    return new


class _Scratch:
    """Per band of rows, its events of a run of intervals in walk order (interval, row, column, crossing): time
    t (int64), bp = 2 * (time bucket in the run's histogram) + (1 if ON), xy = x | y << 16 (uint32)."""

    def __init__(self, bands: int, cap: int):
        self.t = np.empty((bands, cap), np.int64)
        self.bp = np.empty((bands, cap), np.int32)
        self.xy = np.empty((bands, cap), np.uint32)

    def grow(self) -> None:
        for name in ("t", "bp", "xy"):
            old = getattr(self, name)
            new = np.empty((old.shape[0], 2 * old.shape[1]), old.dtype)
            new[:, :old.shape[1]] = old
            setattr(self, name, new)


@numba.njit(parallel=True, cache=True)
def _log_frame(frame, log_eps, out):
    h, w = frame.shape
    for y in numba.prange(h):
        for x in range(w):
            out[y, x] = math.log(np.float64(frame[y, x]) + log_eps)


@numba.njit(parallel=True, cache=True)
def _advance_last_frame(frame, last_frame, last_log, log_eps):
    """last_frame <- frame and last_log <- log(frame + log_eps) where the value changed (elsewhere last_log is
    already that log)."""
    h, w = frame.shape
    for y in numba.prange(h):
        for x in range(w):
            v = frame[y, x]
            if v != last_frame[y, x]:
                last_frame[y, x] = v
                last_log[y, x] = math.log(np.float64(v) + log_eps)


@numba.njit(cache=True)
def _bounds(r, cp, cn, log_eps, is_log):
    """(hi, lo): a pixel whose reference is r reaches a level (r + cp up, r - cn down) only at a value >= hi or
    <= lo. Log values (is_log): the levels themselves, exactly as _walk computes them. Linear intensities:
    exp(level) - log_eps widened by _BOUND_MARGIN relative to exp(level) (1e-4 in log units, against the
    2e-7 of _exp_approx, the float32 rounding of the stored bound and the log's last bit); NaN (overflow) gives a
    bound that lets everything through."""
    if is_log:
        return r + cp, r - cn
    up = _exp_approx(r + cp)
    down = _exp_approx(r - cn)
    above = up - log_eps - _BOUND_MARGIN * (up + log_eps)
    below = down - log_eps + _BOUND_MARGIN * (down + log_eps)
    if above != above:
        above = -np.inf
    if below != below:
        below = np.inf
    return above, below


_POW2 = np.ldexp(1.0, np.arange(-1022, 1024))


@numba.njit(cache=True, inline="always")
def _exp_approx(a):
    """exp(a) to 2e-7 relative (2^n from a table times a degree-6 Taylor polynomial of 2^f, |f| <= 1/2), about
    twice as fast as a libm call; math.exp outside |a| < 693."""
    x = a * 1.4426950408889634
    if not (abs(x) < 1000.0):
        return math.exp(a)
    n = math.floor(x + 0.5)
    f = (x - n) * 0.6931471805599453
    p = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6 + f * (1.0 / 24 + f * (1.0 / 120 + f * (1.0 / 720))))))
    return p * _POW2[int(n) + 1022]


@numba.njit(cache=True)
def _init_bounds(ref_log, cpos, cneg, log_eps, is_log, hi, lo):
    h, w = ref_log.shape
    last_y, last_x = cpos.shape[0] - 1, cpos.shape[1] - 1  # 0 for thresholds shared by all pixels
    for y in range(h):
        for x in range(w):
            py = min(y, last_y)
            px = min(x, last_x)
            above, below = _bounds(ref_log[y, x], cpos[py, px], cneg[py, px], log_eps, is_log)
            hi[y, x] = above
            lo[y, x] = below


@numba.njit(cache=True, inline="always")
def _candidates(row, hi, lo, x0, mask, out):
    """Columns x >= x0 of a row whose value is outside (lo[x], hi[x]), into out[:m]; returns m. A vectorized
    comparison into mask, then a branch-free compaction: most pixel-frames reach no level."""
    w = row.shape[0]
    for x in range(w):  # from 0, not x0: a loop with a constant start vectorizes
        mask[x] = (row[x] >= hi[x]) | (row[x] <= lo[x])
    m = 0
    for x in range(x0, w):
        out[m] = x
        m += mask[x]
    return m


@numba.njit(cache=True, inline="always")
def _cached_log(v, bits, log_eps, keys, vals):
    """log(v + log_eps) (float64, exact: the same bits as math.log) through a small direct-mapped cache keyed
    by the float32 bits of v. 8-bit sources have a few hundred distinct values, so nearly every lookup hits;
    continuous inputs pay one hash and a compare per miss. Unused slots hold NaN bits with a NaN value, which
    is also what a NaN input gives."""
    slot = ((np.uint64(bits) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)) >> np.uint64(32 - _LUT_BITS)
    if keys[slot] == bits:
        return vals[slot]
    lv = math.log(np.float64(v) + log_eps)
    keys[slot] = bits
    vals[slot] = lv
    return lv


@numba.njit(cache=True, inline="always")
def _walk(lp, lc, t_prev, dt, r, le, cpos, cneg, refr, scale, t_lo, shift, hb, hist, xy, sc_t, sc_bp, sc_xy, f):
    """The crossings of one pixel (xy = x | y << 16) over one interval where L goes linearly from lp to lc
    (lp != lc), from reference r and last kept event time le: kept events go to the scratch from index f and are
    counted in hist[hb + bucket]. Returns (events kept, new reference, new last event time), or (-1, r, le) with
    nothing counted when the scratch is full.

    One loop for both directions: s = +1 walks the levels r + C_on, r + 2 C_on ... up, s = -1 walks
    r - C_off ... down; s * (c - l) > 0 is exactly c > l (s = 1) or c < l (s = -1) in IEEE arithmetic, so the
    events and their order are those of two mirrored loops."""
    if lc > lp:
        s = 1.0
        step = cpos
        on = 1
    else:
        s = -1.0
        step = -cneg
        on = 0
    c = r + step
    if s * (c - lc) > 0:  # no level reached
        return 0, r, le
    slope = dt / (lc - lp)
    cap = sc_t.shape[0]
    k = 0
    r_out = r
    while True:
        if s * (c - lp) > 0:
            te = t_prev + (c - lp) * slope
            if te - le >= refr:
                if f + k >= cap:
                    for i in range(f, f + k):
                        hist[sc_bp[i] >> 1] -= 1
                    return -1, r, le
                le = te
                ti = np.int64(np.rint(te * scale))
                b = hb + ((ti - t_lo) >> shift)
                sc_t[f + k] = ti
                sc_bp[f + k] = (b << 1) | on
                sc_xy[f + k] = xy
                hist[b] += 1
                k += 1
        r_out = c
        c += step
        if s * (c - lc) > 0:
            break
    return k, r_out, le


@numba.njit(parallel=True, cache=True)
def _walk_block(vals, bits, is_log, t_all, t_lo, shift, base, k0, k1, last_log, ref_log, last_event_s, hi, lo,
                cpos, cneg, log_eps, refr, scale, rows, resume, keys, lut, masks, candidates, hist, sc_t, sc_bp, sc_xy,
                fill):
    """Walk intervals k0..k1-1, band by band of rows (parallel; a band's pixels depend on no other band), row by
    row: first the columns whose value leaves (lo, hi) (_candidates), then for those only the logs at both ends
    of the interval (the start from vals[k - 1], or last_log for k = 0) and the crossings (_walk). Events go to
    the band's scratch in walk order, their time buckets (interval k's start at base[k - k0]) counted in
    hist[band]; the reference, hi / lo and the last event time advance. A band whose scratch fills up stops
    before the pixel that did not fit, state untouched there, and records (interval, row, column) in
    resume[band]; resume[band, 0] is -1 when the band is done."""
    n, h, w = vals.shape
    per_pixel = cpos.shape[0] > 1
    for band in numba.prange(rows.shape[0] - 1):
        if resume[band, 0] < 0:
            continue
        f = fill[band]
        band_hist = hist[band]
        bt, bbp, bxy = sc_t[band], sc_bp[band], sc_xy[band]
        bkeys, blut = keys[band], lut[band]
        cand = candidates[band]
        bmask = masks[band]
        stopped = False
        for k in range(resume[band, 0], k1):
            t_prev = t_all[k]
            dt = t_all[k + 1] - t_prev
            tl = t_lo[k]
            sh = shift[k]
            hb = base[k - k0]
            y0 = resume[band, 1] if k == resume[band, 0] else rows[band]
            for y in range(y0, rows[band + 1]):
                x0 = resume[band, 2] if (k == resume[band, 0] and y == y0) else 0
                m = _candidates(vals[k, y], hi[y], lo[y], x0, bmask, cand)
                for i in range(m):
                    x = cand[i]
                    if is_log:
                        lc = np.float64(vals[k, y, x])
                        lp = np.float64(vals[k - 1, y, x]) if k > 0 else last_log[y, x]
                    else:
                        lc = _cached_log(vals[k, y, x], bits[k, y, x], log_eps, bkeys, blut)
                        if k > 0:
                            lp = _cached_log(vals[k - 1, y, x], bits[k - 1, y, x], log_eps, bkeys, blut)
                        else:
                            lp = last_log[y, x]
                    if lc == lp:
                        continue
                    py = y if per_pixel else 0
                    px = x if per_pixel else 0
                    cp = cpos[py, px]
                    cn = cneg[py, px]
                    r0 = ref_log[y, x]
                    # without a refractory period the last event time is never needed: skip its traffic
                    le0 = last_event_s[y, x] if refr > 0 else -np.inf
                    n_ev, r, le = _walk(lp, lc, t_prev, dt, r0, le0, cp, cn, refr, scale, tl, sh, hb, band_hist,
                                        np.uint32(x | (y << 16)), bt, bbp, bxy, f)
                    if n_ev < 0:
                        resume[band, 0] = k
                        resume[band, 1] = y
                        resume[band, 2] = x
                        stopped = True
                        break
                    f += n_ev
                    if r != r0:
                        ref_log[y, x] = r
                        above, below = _bounds(r, cp, cn, log_eps, is_log)
                        hi[y, x] = above
                        lo[y, x] = below
                    if n_ev > 0 and refr > 0:
                        last_event_s[y, x] = le
                if stopped:
                    break
            if stopped:
                break
        fill[band] = f
        if not stopped:
            resume[band, 0] = -1


@numba.njit(parallel=True, cache=True)
def _scatter(sc_t, sc_bp, sc_xy, fill, cursors, out):
    """Move each band's events to their sorted places: out[cursors[band, bucket]] (from _bucket_offsets), each
    cursor advancing past its event."""
    for band in numba.prange(fill.shape[0]):
        cursor = cursors[band]
        t = sc_t[band]
        bp = sc_bp[band]
        xy = sc_xy[band]
        for i in range(fill[band]):
            v = bp[i]
            b = v >> 1
            j = cursor[b]
            cursor[b] = j + 1
            q = xy[i]
            out[j].t = t[i]
            out[j].x = q & 0xFFFF
            out[j].y = q >> 16
            out[j].p = 2 * (v & 1) - 1


@numba.njit(cache=True)
def _bucket_offsets(hist):
    """In place, the counts hist (bands, buckets) become their exclusive prefix sum in bucket-major, band-minor
    order: where each band's events of each bucket start in the output."""
    bands, nb = hist.shape
    acc = 0
    for b in range(nb):
        for band in range(bands):
            count = hist[band, b]
            hist[band, b] = acc
            acc += count


@numba.njit(cache=True)
def _sort_buckets(out, starts, end):
    """Stable sort by t within each coarse bucket [starts[b], starts[b + 1]) (the last one ends at end)."""
    nb = starts.shape[0]
    for b in range(nb):
        a = starts[b]
        e = starts[b + 1] if b + 1 < nb else end
        ordered = True
        for i in range(a + 1, e):
            if out[i].t < out[i - 1].t:
                ordered = False
                break
        if ordered:
            continue
        order = np.argsort(out.t[a:e], kind="mergesort")
        tmp = out[a:e].copy()
        for i in range(e - a):
            out[a + i] = tmp[order[i]]
