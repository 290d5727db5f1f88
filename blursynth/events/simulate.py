"""ESIM-style event simulation over a stack of linear-intensity frames.

Model (rpg_vid2e esim_py, see REFERENCES.md "Events"): per pixel, L = log(I + log_eps); between consecutive
frames L is linear in time; the reference log intensity starts at the first frame's L; every crossing
c = ref + k * threshold_pos (up) or ref - k * threshold_neg (down) inside (L_prev, L_cur] fires an event at
t_prev + (c - L_prev) * dt / (L_cur - L_prev), and the reference moves to c. A refractory period keeps an
event only if it comes at least `refractory_s` after the pixel's last kept event; as in esim_py the reference
moves even when the event is suppressed.

Two numba passes over runs of frame intervals, parallel over fixed bands of rows (a band's pixels depend on no
other band, so one parallel region walks a whole run of intervals):
- walk: each pixel once per interval (interval by interval, rows, columns): log intensity (through a small
  cache keyed by the float32 bits: 8-bit sources repeat a few hundred values), crossings, state update; the
  kept events go to the band's scratch in walk order and are counted in a histogram of time buckets (one per
  time unit, per interval; 2^k units when an interval spans more than _MAX_BUCKETS units, e.g. nanoseconds);
- scatter: a counting sort: each event goes to its bucket's offset, bands in order within a bucket, walk order
  within a band. Coarse buckets (2^k units) are then sorted stably by t.
Ties thus come out ordered by interval, row, column and crossing, whatever the number of bands or threads.
A band whose scratch fills up stops before the pixel that does not fit and resumes there once it has grown.
The crossing loop is one loop for ON and OFF (a direction sign), exactly equivalent to two mirrored loops.

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
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


_NOISE_LOG_BYTES = 32 * 2**20


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
    scratch = _Scratch(bands, max(_SCRATCH_MIN, h * w // (2 * bands)))
    # Time buckets of each interval: rint(te * scale) for te in [t_prev, t_cur] (up to rounding) lies in
    # [t_lo, t_lo + span); 2^shift units per bucket keep an interval within _MAX_BUCKETS buckets.
    t_all = np.concatenate([[state.last_t_s], t_s])
    t_lo = np.rint(t_all[:-1] * scale).astype(np.int64) - 1
    span = np.rint(t_all[1:] * scale).astype(np.int64) - t_lo + 2
    shift = np.maximum(0, np.ceil(np.log2(span / _MAX_BUCKETS))).astype(np.int64)
    n_buckets = (span >> shift) + 1
    parts = []
    a = 0
    while a < n:
        # a run of intervals whose histograms fit the budget: one parallel walk and one scatter for all of them
        fits = np.cumsum(n_buckets[a:]) * 4 <= _HIST_BYTES_PER_BAND
        e = a + max(1, int(np.count_nonzero(fits)))
        base = np.concatenate([[0], np.cumsum(n_buckets[a:e])])
        hist = np.zeros((bands, int(base[-1])), np.int32)
        resume = np.zeros((bands, 3), np.int64)  # per band: next (interval, row, column); interval -1: done
        resume[:, 0] = a
        resume[:, 1] = rows[:-1]
        fill = np.zeros(bands, np.int64)
        while True:
            _walk_block(vals, bits, is_log, t_all, t_lo, shift, base - base[0], a, e, state.last_frame,
                        state.last_log, state.ref_log, state.last_event_s, cpos, cneg, log_eps, float(refractory_s),
                        scale, rows, resume, keys, lut, hist, scratch.t, scratch.b, scratch.x, scratch.y, scratch.p,
                        fill)
            if np.all(resume[:, 0] < 0):
                break
            scratch.grow()  # a band ran out of room: it stopped before a pixel and resumes there
        cursors = _bucket_offsets(hist)
        coarse = bool(np.any(shift[a:e] > 0))
        first = cursors[0].copy() if coarse else None  # where each bucket starts
        out = np.empty(int(fill.sum()), EVENT_DTYPE)
        _scatter(scratch.t, scratch.b, scratch.x, scratch.y, scratch.p, fill, cursors, out)
        if coarse and len(out):
            _sort_buckets(out, first, len(out))
        parts.append(out)
        a = e
    state.last_t_s = float(t_all[-1])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# Histogram bytes per band and run of intervals: small enough to stay in cache, large enough that a run holds
# many intervals (each run is two parallel regions; on a busy machine every region waits for its slowest thread).
_HIST_BYTES_PER_BAND = 2**20


class _Scratch:
    """Per band of rows, its events of a run of intervals in walk order (interval, row, column, crossing): time
    t, global time bucket b, x, y, p."""

    def __init__(self, bands: int, cap: int):
        self.t = np.empty((bands, cap), np.int64)
        self.b = np.empty((bands, cap), np.int64)
        self.x = np.empty((bands, cap), np.uint16)
        self.y = np.empty((bands, cap), np.uint16)
        self.p = np.empty((bands, cap), np.int8)

    def grow(self) -> None:
        for name in ("t", "b", "x", "y", "p"):
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
def _walk(lp, lc, t_prev, dt, r, le, cpos, cneg, refr, scale, t_lo, shift, hb, hist, x, y, sc_t, sc_b, sc_x, sc_y,
          sc_p, f):
    """The crossings of one pixel over one interval where L goes linearly from lp to lc (lp != lc), from
    reference r and last kept event time le: kept events go to the scratch from index f and are counted in
    hist[hb + bucket]. Returns (events kept, new reference, new last event time), or (-1, r, le) with nothing
    counted when the scratch is full.

    One loop for both directions: s = +1 walks the levels r + C_on, r + 2 C_on ... up, s = -1 walks
    r - C_off ... down; s * (c - l) > 0 is exactly c > l (s = 1) or c < l (s = -1) in IEEE arithmetic, so the
    events and their order are those of two mirrored loops."""
    if lc > lp:
        s = 1.0
        step = cpos
        pol = 1
    else:
        s = -1.0
        step = -cneg
        pol = -1
    c = r + step
    if s * (c - lc) > 0:  # most changed pixels reach no level: no division, no loop
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
                        hist[sc_b[i]] -= 1
                    return -1, r, le
                le = te
                ti = np.int64(np.rint(te * scale))
                b = hb + ((ti - t_lo) >> shift)
                sc_t[f + k] = ti
                sc_b[f + k] = b
                sc_x[f + k] = x
                sc_y[f + k] = y
                sc_p[f + k] = pol
                hist[b] += 1
                k += 1
        r_out = c
        c += step
        if s * (c - lc) > 0:
            break
    return k, r_out, le


@numba.njit(parallel=True, cache=True)
def _walk_block(vals, bits, is_log, t_all, t_lo, shift, base, k0, k1, last_frame, last_log, ref_log, last_event_s,
                cpos, cneg, log_eps, refr, scale, rows, resume, keys, lut, hist, sc_t, sc_b, sc_x, sc_y, sc_p, fill):
    """Walk every pixel of intervals k0..k1-1 once, band by band of rows (parallel; a band's pixels depend on no
    other band): events into the band's scratch in walk order, their time buckets (interval k's start at
    base[k - k0]) counted in hist[band], the state advanced. A band whose scratch fills up stops before the
    pixel that did not fit, state untouched there, and records (interval, row, column) in resume[band];
    resume[band, 0] is -1 when the band is done."""
    n, h, w = vals.shape
    per_pixel = cpos.shape[0] > 1
    for band in numba.prange(rows.shape[0] - 1):
        if resume[band, 0] < 0:
            continue
        f = fill[band]
        band_hist = hist[band]
        bt, bb, bx, by, bp = sc_t[band], sc_b[band], sc_x[band], sc_y[band], sc_p[band]
        bkeys, blut = keys[band], lut[band]
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
                for x in range(x0, w):
                    if is_log:
                        lc = np.float64(vals[k, y, x])
                    else:
                        ic = vals[k, y, x]
                        # 8-bit sources repeat values: an unchanged pixel has no crossing and needs no log
                        if ic == last_frame[y, x]:
                            continue
                        lc = _cached_log(ic, bits[k, y, x], log_eps, bkeys, blut)
                    lp = last_log[y, x]
                    if lc != lp:
                        py = y if per_pixel else 0
                        px = x if per_pixel else 0
                        r0 = ref_log[y, x]
                        # without a refractory period the last event time is never needed: skip its traffic
                        le0 = last_event_s[y, x] if refr > 0 else -np.inf
                        n_ev, r, le = _walk(lp, lc, t_prev, dt, r0, le0, cpos[py, px], cneg[py, px], refr, scale,
                                            tl, sh, hb, band_hist, x, y, bt, bb, bx, by, bp, f)
                        if n_ev < 0:
                            resume[band, 0] = k
                            resume[band, 1] = y
                            resume[band, 2] = x
                            stopped = True
                            break
                        f += n_ev
                        if r != r0:
                            ref_log[y, x] = r
                        if n_ev > 0 and refr > 0:
                            last_event_s[y, x] = le
                    last_log[y, x] = lc
                    if not is_log:
                        last_frame[y, x] = ic
                if stopped:
                    break
            if stopped:
                break
        fill[band] = f
        if not stopped:
            resume[band, 0] = -1


@numba.njit(parallel=True, cache=True)
def _scatter(sc_t, sc_b, sc_x, sc_y, sc_p, fill, cursors, out):
    """Move each band's events to their sorted places: out[cursors[band, bucket]] (from _bucket_offsets)."""
    for band in numba.prange(fill.shape[0]):
        cursor = cursors[band]
        t = sc_t[band]
        bs = sc_b[band]
        xs = sc_x[band]
        ys = sc_y[band]
        ps = sc_p[band]
        for i in range(fill[band]):
            j = cursor[bs[i]]
            cursor[bs[i]] = j + 1
            out[j].t = t[i]
            out[j].x = xs[i]
            out[j].y = ys[i]
            out[j].p = ps[i]


@numba.njit(cache=True)
def _bucket_offsets(hist):
    """Exclusive prefix sum of hist (bands, buckets) in bucket-major, band-minor order: where each band's events
    of each bucket start in the output."""
    bands, nb = hist.shape
    starts = np.empty((bands, nb), np.int64)
    acc = 0
    for b in range(nb):
        for band in range(bands):
            starts[band, b] = acc
            acc += hist[band, b]
    return starts


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
