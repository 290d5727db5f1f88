"""Event simulator: analytic ramps, refractory, chunked streaming, and a plain per-pixel reference."""
import math

import numpy as np
import pytest

from blursynth.events import EVENT_DTYPE, EventState, simulate

EPS = 1e-3


def ramp_frames(l_start, deltas):
    """(2, 1, P) float32 frames whose pixel p goes from log intensity l_start to l_start + deltas[p]; returns the
    frames and the float64 log deltas the float32 values actually give."""
    i0 = np.full(len(deltas), math.exp(l_start) - EPS)
    i1 = np.exp(l_start + np.asarray(deltas, np.float64)) - EPS
    frames = np.stack([i0, i1]).astype(np.float32)[:, None, :]
    log_f = np.log(frames.astype(np.float64) + EPS)
    return frames, log_f[1, 0] - log_f[0, 0]


@pytest.mark.parametrize("deltas,c_pos,c_neg", [
    ([1.05, 0.53, 0.19, 2.71], 0.2, 0.2),
    ([-1.05, -0.53, -0.19, -2.71], 0.2, 0.2),
    ([0.95, -0.95, 0.31, -0.31], 0.15, 0.3),
])
def test_ramp_gives_floor_d_over_c_events_at_analytic_times(deltas, c_pos, c_neg):
    frames, d = ramp_frames(math.log(0.05 + EPS), deltas)
    t0, dt = 0.25, 0.04
    events, _ = simulate(frames, np.array([t0, t0 + dt]), threshold_pos=c_pos, threshold_neg=c_neg)
    assert events.dtype == EVENT_DTYPE
    for px, d_px in enumerate(d):
        c = c_pos if d_px > 0 else c_neg
        mine = events[events["x"] == px]
        n = math.floor(abs(d_px) / c)
        assert len(mine) == n
        assert np.all(mine["p"] == (1 if d_px > 0 else -1))
        assert np.all(mine["y"] == 0)
        expected_us = (t0 + np.arange(1, n + 1) * c / abs(d_px) * dt) * 1e6
        np.testing.assert_allclose(mine["t"], expected_us, atol=1.0, rtol=0)
    assert np.all(np.diff(events["t"]) >= 0)


def test_nanoseconds():
    frames, d = ramp_frames(math.log(0.2), [1.3])
    us, _ = simulate(frames, np.array([1.0, 1.01]))
    ns, _ = simulate(frames, np.array([1.0, 1.01]), time_unit="ns")
    expected_ns = (1.0 + np.arange(1, 7) * 0.2 / d[0] * 0.01) * 1e9
    np.testing.assert_allclose(ns["t"], expected_ns, atol=1.0, rtol=0)
    np.testing.assert_array_equal(us["t"], np.rint(ns["t"] / 1000))


def test_refractory_drops_exactly_and_still_moves_the_reference():
    # 10 crossings 2 ms apart (C = 0.1 over D = 1.05 in 21 ms); a 3 ms refractory keeps every other one.
    frames, d = ramp_frames(math.log(0.05 + EPS), [1.05])
    dt = 0.021
    events, state = simulate(frames, np.array([0.0, dt]), threshold_pos=0.1, refractory_s=0.003)
    spacing_us = 0.1 / d[0] * dt * 1e6
    np.testing.assert_allclose(events["t"], spacing_us * np.array([1, 3, 5, 7, 9]), atol=1.0, rtol=0)
    l0 = math.log(np.float64(frames[0, 0, 0]) + EPS)
    # the reference followed all 10 crossings, suppressed or not
    assert state.ref_log[0, 0] == pytest.approx(l0 + 10 * 0.1, abs=1e-9)
    assert state.last_event_s[0, 0] == pytest.approx(9 * spacing_us * 1e-6, abs=1e-9)


def test_no_change_no_events_and_first_frame_emits_nothing():
    frames = np.full((5, 4, 3), 0.5, np.float32)
    events, state = simulate(frames, np.arange(5) * 0.01)
    assert len(events) == 0
    assert state.last_t_s == 0.04


def smooth_frames(rng, n, h, w):
    """Per-pixel random sinusoids in time, in [0.01, 1]: many crossings of both signs per pixel."""
    t = np.arange(n)[:, None, None]
    amp = rng.uniform(0.5, 3.0, (1, h, w))
    freq = rng.uniform(0.02, 0.3, (1, h, w))
    phase = rng.uniform(0, 2 * np.pi, (1, h, w))
    log_i = -2.3 + amp * (np.sin(2 * np.pi * freq * t + phase) - 1) / 2
    return np.exp(log_i).astype(np.float32)


def reference_events(frames, t_s, c_pos, c_neg, refractory_s, scale=1e6):
    """Plain per-pixel ESIM, one pixel and one interval at a time."""
    out = []
    n, h, w = frames.shape
    for y in range(h):
        for x in range(w):
            ref = math.log(float(frames[0, y, x]) + EPS)
            last = -math.inf
            for k in range(1, n):
                lp = math.log(float(frames[k - 1, y, x]) + EPS)
                lc = math.log(float(frames[k, y, x]) + EPS)
                if lc == lp:
                    continue
                pol = 1 if lc > lp else -1
                c = c_pos if pol > 0 else c_neg
                cross = ref
                while True:
                    cross += pol * c
                    if (pol > 0 and cross > lc) or (pol < 0 and cross < lc):
                        break
                    te = t_s[k - 1] + (cross - lp) * (t_s[k] - t_s[k - 1]) / (lc - lp)
                    if te - last >= refractory_s:
                        out.append((int(np.rint(te * scale)), x, y, pol))
                        last = te
                    ref = cross
    return np.array(out, EVENT_DTYPE)


def by_tyxp(events):
    return events[np.lexsort((events["p"], events["x"], events["y"], events["t"]))]


@pytest.mark.parametrize("c_pos,c_neg,refractory_s", [(0.2, 0.2, 0.0), (0.13, 0.27, 0.0), (0.1, 0.15, 0.004)])
def test_matches_plain_per_pixel_reference(c_pos, c_neg, refractory_s):
    rng = np.random.default_rng(5)
    frames = smooth_frames(rng, 40, 9, 11)
    t_s = 0.5 + np.cumsum(rng.uniform(0.002, 0.01, 40))
    events, _ = simulate(frames, t_s, threshold_pos=c_pos, threshold_neg=c_neg, refractory_s=refractory_s)
    expected = reference_events(frames, t_s, c_pos, c_neg, refractory_s)
    assert len(expected) > 1000
    np.testing.assert_array_equal(by_tyxp(events), by_tyxp(expected))
    assert np.all(np.diff(events["t"]) >= 0)


def test_tie_order_is_interval_then_row_then_column():
    # every pixel crosses at the same instants: ties come out row-major
    frames = np.stack([np.full((3, 4), 0.1), np.full((3, 4), 0.3)]).astype(np.float32)
    events, _ = simulate(frames, np.array([0.0, 0.001]))
    assert len(events) == 12 * 5
    first = events[:12]
    assert np.all(first["t"] == first["t"][0]) and events["t"][12] > first["t"][0]
    np.testing.assert_array_equal(first["y"].astype(int) * 4 + first["x"], np.arange(12))


@pytest.mark.parametrize("splits", [[1], [7], [1, 2, 3], [5, 17, 18, 30], list(range(1, 40))])
def test_chunked_streaming_equals_one_call(splits):
    rng = np.random.default_rng(11)
    frames = smooth_frames(rng, 40, 13, 17)
    t_s = np.cumsum(rng.uniform(0.001, 0.02, 40))
    kw = dict(threshold_pos=0.17, threshold_neg=0.23, refractory_s=0.002)
    whole, whole_state = simulate(frames, t_s, **kw)
    parts, state = [], None
    for a, b in zip([0] + splits, splits + [len(frames)]):
        ev, state = simulate(frames[a:b], t_s[a:b], state=state, **kw)
        parts.append(ev)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    for name in ("ref_log", "last_event_s", "last_frame", "last_log"):
        np.testing.assert_array_equal(getattr(state, name), getattr(whole_state, name))


def test_state_passed_in_is_not_modified():
    rng = np.random.default_rng(2)
    frames = smooth_frames(rng, 6, 4, 4)
    state = EventState.from_frame(frames[0], 0.0)
    before = state.copy()
    simulate(frames[1:], np.arange(1, 6) * 0.01, state=state)
    np.testing.assert_array_equal(state.ref_log, before.ref_log)
    np.testing.assert_array_equal(state.last_frame, before.last_frame)


@pytest.mark.parametrize("bad", [
    dict(t_s=np.array([0.0, 0.0, 0.1])),
    dict(time_unit="ms"),
    dict(threshold_pos=0.0),
])
def test_bad_arguments_raise(bad):
    kw = dict(t_s=np.array([0.0, 0.05, 0.1]))
    kw.update(bad)
    with pytest.raises(ValueError):
        simulate(np.zeros((3, 2, 2), np.float32), **kw)


def test_frame_blocks_inside_one_call_change_nothing(monkeypatch):
    import sys

    rng = np.random.default_rng(3)
    frames = smooth_frames(rng, 30, 8, 8)
    t_s = np.arange(30) * 0.005
    whole, _ = simulate(frames, t_s)
    # a log buffer of 3 frames: the call runs in 10 blocks
    monkeypatch.setattr(sys.modules["blursynth.events.simulate"], "_LOG_BUFFER_BYTES", 3 * 8 * 8 * 8)
    blocks, _ = simulate(frames, t_s)
    np.testing.assert_array_equal(blocks, whole)
