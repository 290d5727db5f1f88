"""ESIM-style event simulation over a stack of linear-intensity frames.

Model (rpg_vid2e esim_py, see REFERENCES.md "Events"): per pixel, L = log(I + log_eps); between consecutive
frames L is linear in time; the reference log intensity starts at the first frame's L; every crossing
c = ref + k * threshold_pos (up) or ref - k * threshold_neg (down) inside (L_prev, L_cur] fires an event at
t_prev + (c - L_prev) * dt / (L_cur - L_prev), and the reference moves to c. A refractory period keeps an
event only if it comes at least `refractory_s` after the pixel's last kept event; as in esim_py the reference
moves even when the event is suppressed.

Three numba passes per call: count events per (frame interval, row), an exclusive prefix sum for offsets,
fill (parallel over rows, writes the carried state), then a stable counting sort of each interval's events by
time. Intervals are time-disjoint, so sorting each one sorts the whole stream.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numba
import numpy as np

log = logging.getLogger(__name__)

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.uint16), ("y", np.uint16), ("p", np.int8)])
"""Structured event record: t in integer time units (us by default), x column, y row, p +1 / -1."""

TIME_SCALE = {"us": 1e6, "ns": 1e9}


@dataclass
class EventState:
    """Per-pixel simulator state carried between chunks of frames.

    Attributes:
        ref_log: float64 (H, W), reference log intensity (the level of the pixel's last crossing).
        last_event_s: float64 (H, W), time in seconds of the pixel's last kept event; -inf if none.
        last_frame: float32 (H, W), linear intensity of the last frame seen.
        last_log: float64 (H, W), log(last_frame + log_eps).
        last_t_s: time in seconds of the last frame seen.
    """

    ref_log: np.ndarray
    last_event_s: np.ndarray
    last_frame: np.ndarray
    last_log: np.ndarray
    last_t_s: float

    @classmethod
    def from_frame(cls, frame: np.ndarray, t_s: float, log_eps: float = 1e-3) -> "EventState":
        """State whose reference is `frame`'s log intensity (ESIM's start). frame: float32 (H, W) in [0, 1]."""
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        log_i = np.empty(frame.shape, np.float64)
        _log_frame(frame, log_eps, log_i)
        return cls(log_i.copy(), np.full(frame.shape, -np.inf), frame.copy(), log_i, float(t_s))

    def copy(self) -> "EventState":
        return EventState(self.ref_log.copy(), self.last_event_s.copy(), self.last_frame.copy(),
                          self.last_log.copy(), self.last_t_s)


def simulate(frames: np.ndarray, t_s: np.ndarray, *, threshold_pos: float = 0.2, threshold_neg: float = 0.2,
             log_eps: float = 1e-3, refractory_s: float = 0.0, state: EventState | None = None,
             time_unit: str = "us") -> tuple[np.ndarray, EventState]:
    """Simulate the events of an event camera watching `frames`.

    Args:
        frames: float32 (N, H, W), linear intensity in [0, 1].
        t_s: float64 (N,), frame times in seconds, strictly increasing (and after `state.last_t_s`).
        threshold_pos, threshold_neg: contrast thresholds C in log intensity for ON / OFF events.
        log_eps: offset inside the log, L = log(I + log_eps).
        refractory_s: per-pixel refractory period in seconds (0: none).
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
    if state is None:
        if len(frames) == 0:
            raise ValueError("the first call needs at least one frame to start the reference")
        state = EventState.from_frame(frames[0], t_s[0], log_eps)
        frames, t_s = frames[1:], t_s[1:]
    else:
        if state.ref_log.shape != frames.shape[1:]:
            raise ValueError(f"state is {state.ref_log.shape}, frames are {frames.shape[1:]}")
        state = state.copy()
    t_all = np.concatenate([[state.last_t_s], t_s])
    if np.any(np.diff(t_all) <= 0):
        raise ValueError("frame times must be strictly increasing (and after the carried state's last time)")
    if len(frames) == 0:
        return np.empty(0, EVENT_DTYPE), state

    n, h, w = frames.shape
    # The count pass keeps each changed pixel's log intensity for the fill pass (one log per pixel-frame, not
    # two); blocks of frames bound that buffer whatever the number of frames.
    block = max(1, min(n, _LOG_BUFFER_BYTES // (8 * h * w)))
    log_buf = np.empty((block, h, w), np.float64)
    parts = []
    for a in range(0, n, block):
        parts.append(_simulate_block(frames[a:a + block], t_s[a:a + block], state, log_buf, threshold_pos,
                                     threshold_neg, log_eps, refractory_s, TIME_SCALE[time_unit]))
    events = parts[0] if len(parts) == 1 else np.concatenate(parts)
    total = len(events)
    log.debug("simulated %d events over %d frames of %dx%d", total, n, w, h)
    return events, state


_LOG_BUFFER_BYTES = 32 * 2**20


def _simulate_block(frames, t_s, state, log_buf, threshold_pos, threshold_neg, log_eps, refractory_s, scale):
    """Events of frames (n, H, W) at times t_s (n,) following `state`, which is advanced in place."""
    n, h, w = frames.shape
    args = (frames, log_buf, t_s, state.last_t_s, state.last_frame, state.last_log, state.ref_log,
            state.last_event_s, float(threshold_pos), float(threshold_neg), float(log_eps), float(refractory_s))
    counts = np.empty((n, h), np.int64)
    _count_pass(*args, counts)
    offsets = np.zeros(n * h + 1, np.int64)
    np.cumsum(counts.ravel(), out=offsets[1:])
    total = int(offsets[-1])
    ev_t = np.empty(total, np.int64)
    ev_x = np.empty(total, np.uint16)
    ev_y = np.empty(total, np.uint16)
    ev_p = np.empty(total, np.int8)
    _fill_pass(*args, scale, offsets, ev_t, ev_x, ev_y, ev_p)
    state.last_t_s = float(t_s[-1])
    events = np.empty(total, EVENT_DTYPE)
    _sort_intervals(offsets[::h].copy(), ev_t, ev_x, ev_y, ev_p, events)
    return events


@numba.njit(parallel=True, cache=True)
def _log_frame(frame, log_eps, out):
    h, w = frame.shape
    for y in numba.prange(h):
        for x in range(w):
            out[y, x] = math.log(np.float64(frame[y, x]) + log_eps)


@numba.njit(cache=True, inline="always")
def _row_interval(frame_row, log_row, t_prev, t_cur, i_prev, l_prev, ref, last_ev, cpos, cneg, log_eps, refr,
                  write, scale, o, y, ev_t, ev_x, ev_y, ev_p):
    """Advance one row by one frame interval; returns the number of kept events. Without write, computes the
    log intensity of changed pixels into log_row; with write, reads it from there and fills the event arrays
    from index o. Updates i_prev, l_prev, ref, last_ev (row views) in place."""
    w = frame_row.shape[0]
    dt = t_cur - t_prev
    k = 0
    for x in range(w):
        ic = frame_row[x]
        # 8-bit sources repeat values: an unchanged pixel has no crossing and needs no log.
        if ic == i_prev[x]:
            continue
        lp = l_prev[x]
        if write:
            lc = log_row[x]
        else:
            lc = math.log(np.float64(ic) + log_eps)
            log_row[x] = lc
        i_prev[x] = ic
        l_prev[x] = lc
        if lc == lp:
            continue
        r = ref[x]
        le = last_ev[x]
        if lc > lp:
            c = r
            while True:
                c += cpos
                if c > lc:
                    break
                if c > lp:
                    te = t_prev + (c - lp) * dt / (lc - lp)
                    if te - le >= refr:
                        le = te
                        if write:
                            ev_t[o + k] = np.int64(np.rint(te * scale))
                            ev_x[o + k] = x
                            ev_y[o + k] = y
                            ev_p[o + k] = 1
                        k += 1
                r = c
        else:
            c = r
            while True:
                c -= cneg
                if c < lc:
                    break
                if c < lp:
                    te = t_prev + (c - lp) * dt / (lc - lp)
                    if te - le >= refr:
                        le = te
                        if write:
                            ev_t[o + k] = np.int64(np.rint(te * scale))
                            ev_x[o + k] = x
                            ev_y[o + k] = y
                            ev_p[o + k] = -1
                        k += 1
                r = c
        ref[x] = r
        last_ev[x] = le
    return k


@numba.njit(parallel=True, cache=True)
def _count_pass(frames, log_buf, t_s, t0, last_frame, last_log, ref_log, last_event_s, cpos, cneg, log_eps,
                refr, counts):
    n, h, w = frames.shape
    dummy_i = np.empty(0, np.int64)
    dummy_u = np.empty(0, np.uint16)
    dummy_p = np.empty(0, np.int8)
    for y in numba.prange(h):
        i_prev = last_frame[y].copy()
        l_prev = last_log[y].copy()
        ref = ref_log[y].copy()
        last_ev = last_event_s[y].copy()
        t_prev = t0
        for k in range(n):
            counts[k, y] = _row_interval(frames[k, y], log_buf[k, y], t_prev, t_s[k], i_prev, l_prev, ref, last_ev, cpos, cneg,
                                         log_eps, refr, False, 0.0, 0, y, dummy_i, dummy_u, dummy_u, dummy_p)
            t_prev = t_s[k]


@numba.njit(parallel=True, cache=True)
def _fill_pass(frames, log_buf, t_s, t0, last_frame, last_log, ref_log, last_event_s, cpos, cneg, log_eps,
               refr, scale, offsets, ev_t, ev_x, ev_y, ev_p):
    n, h, w = frames.shape
    for y in numba.prange(h):
        t_prev = t0
        for k in range(n):
            _row_interval(frames[k, y], log_buf[k, y], t_prev, t_s[k], last_frame[y], last_log[y], ref_log[y], last_event_s[y],
                          cpos, cneg, log_eps, refr, True, scale, offsets[k * h + y], y, ev_t, ev_x, ev_y, ev_p)
            t_prev = t_s[k]


@numba.njit(parallel=True, cache=True)
def _sort_intervals(starts, ev_t, ev_x, ev_y, ev_p, out):
    """Stable sort by t of each interval [starts[k], starts[k+1]) into the structured `out`. Counting sort
    when the interval's time span is small against its event count (us timestamps), merge sort otherwise."""
    for k in numba.prange(starts.shape[0] - 1):
        s = starts[k]
        e = starts[k + 1]
        m = e - s
        if m == 0:
            continue
        tmin = ev_t[s]
        tmax = ev_t[s]
        for i in range(s, e):
            tmin = min(tmin, ev_t[i])
            tmax = max(tmax, ev_t[i])
        span = tmax - tmin + 1
        if span <= 4 * m + 65536:
            pos = np.zeros(span + 1, np.int64)
            for i in range(s, e):
                pos[ev_t[i] - tmin + 1] += 1
            for j in range(span):
                pos[j + 1] += pos[j]
            for i in range(s, e):
                b = ev_t[i] - tmin
                j = s + pos[b]
                pos[b] += 1
                _put(out, j, ev_t, ev_x, ev_y, ev_p, i)
        else:
            order = np.argsort(ev_t[s:e], kind="mergesort")
            for j in range(m):
                _put(out, s + j, ev_t, ev_x, ev_y, ev_p, s + order[j])


@numba.njit(cache=True, inline="always")
def _put(out, j, ev_t, ev_x, ev_y, ev_p, i):
    out[j].t = ev_t[i]
    out[j].x = ev_x[i]
    out[j].y = ev_y[i]
    out[j].p = ev_p[i]
