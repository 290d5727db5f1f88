"""Event simulator: analytic ramps, refractory, chunked streaming, a plain per-pixel reference (smooth, 8-bit and
within-ulps-of-a-level frames), kernel internals (coarse buckets, scratch overflow, thread count, the bounds'
exp), the noise model's statistics, downscaling."""
import math

import numpy as np
import pytest

from blursynth.events import EVENT_DTYPE, EventState, NoiseModel, downscale, simulate, to_gray
from blursynth.events.noise import shot_rate_hz

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


@pytest.mark.parametrize("refractory_s", [0.0, 0.006])
def test_8bit_frames_match_plain_per_pixel_reference(refractory_s):
    # k / 255 values repeat (the log cache hits, unchanged pixels reach no level) and jump by whole 8-bit steps
    rng = np.random.default_rng(6)
    frames = (np.round(smooth_frames(rng, 30, 7, 12) * 255) / np.float32(255)).astype(np.float32)
    t_s = np.arange(30) * 0.004
    events, _ = simulate(frames, t_s, threshold_pos=0.2, threshold_neg=0.2, refractory_s=refractory_s)
    expected = reference_events(frames, t_s, 0.2, 0.2, refractory_s)
    assert len(expected) > 500 and np.any(frames[1:] == frames[:-1])
    np.testing.assert_array_equal(by_tyxp(events), by_tyxp(expected))


def test_values_within_ulps_of_a_level_match_plain_per_pixel_reference():
    # Each frame puts every pixel's log intensity on the next level up or down (or on the same one) to within
    # -3..3 float32 ulps: whether a pixel-frame crosses is decided in the last bits, so the columns the walk
    # picks (values outside the pixel's bounds) must miss none. Some jittered values fall short of their level.
    rng = np.random.default_rng(4)
    c = 0.2
    moves = [1, 1, 0, -1, -1, -1, 0, 1, -1, 1, 1, -1]
    targets = [math.log(float(np.float32(0.3)) + EPS)]
    for move in moves:  # the levels as the walk computes them: repeated + C / + (-C)
        targets.append(targets[-1] + move * c if move else targets[-1])
    frames = np.empty((len(targets), 1, 64), np.float32)
    for k, target in enumerate(targets):
        v = np.full(64, np.float32(math.exp(target) - EPS))
        ulps = rng.integers(-3, 4, 64) if k else np.zeros(64, int)
        for i, j in enumerate(ulps):
            for _ in range(abs(j)):
                v[i] = np.nextafter(v[i], np.float32(math.copysign(np.inf, j)))
        frames[k, 0] = v
    t_s = np.arange(len(targets)) * 0.01
    events, _ = simulate(frames, t_s, threshold_pos=c, threshold_neg=c)
    expected = reference_events(frames, t_s, c, c, 0.0)
    most = 64 * np.count_nonzero(moves)
    assert 0.3 * most < len(expected) < 0.9 * most
    np.testing.assert_array_equal(by_tyxp(events), by_tyxp(expected))


def test_exp_approx_relative_error():
    # the linear bounds' exp: within 2.5e-7 of numpy's wherever the result is a normal float (the bounds keep a
    # 1e-4 margin), exact at the ends
    import sys

    exp_approx = sys.modules["blursynth.events.simulate"]._exp_approx
    a = np.linspace(-708, 709, 2001)
    got = np.array([exp_approx(v) for v in a])
    assert np.max(np.abs(got / np.exp(a) - 1)) < 2.5e-7
    assert [exp_approx(v) for v in (-np.inf, -1000.0, 1000.0, np.inf)] == [0.0, 0.0, np.inf, np.inf]
    assert math.isnan(exp_approx(np.nan))


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


@pytest.mark.parametrize("value", [np.nan, np.inf, -0.002])
def test_frames_without_a_log_intensity_raise(value):
    """NaN, inf or I <= -log_eps have no log(I + log_eps): a clear error (the crossing walk would never end)."""
    frames = np.full((3, 2, 2), 0.5, np.float32)
    frames[1, 0, 1] = value
    with pytest.raises(ValueError, match="I \\+ log_eps > 0"):
        simulate(frames, np.array([0.0, 0.05, 0.1]), log_eps=1e-3)
    frames[1, 0, 1] = -0.0005  # below 0 but inside the log's domain: allowed
    simulate(frames, np.array([0.0, 0.05, 0.1]), log_eps=1e-3)


@pytest.mark.parametrize("name,value", [("_MAX_BUCKETS", 4), ("_MAX_BUCKETS", 64),
                                        ("_HIST_BYTES_PER_BAND", 1)])
def test_coarse_time_buckets_give_the_same_stream(monkeypatch, name, value):
    # Intervals spanning more time units than _MAX_BUCKETS are counted in 2^k-unit buckets and each bucket is
    # then sorted by t; a histogram budget of 1 byte walks one interval at a time: the stream (ties included)
    # must not change.
    import sys

    rng = np.random.default_rng(3)
    frames = smooth_frames(rng, 30, 8, 8)
    t_s = np.arange(30) * 0.005
    for kw in ({}, {"refractory_s": 0.002, "threshold_pos": 0.11}):
        whole, _ = simulate(frames, t_s, **kw)
        monkeypatch.setattr(sys.modules["blursynth.events.simulate"], name, value)
        coarse, _ = simulate(frames, t_s, **kw)
        monkeypatch.undo()
        assert len(whole) > 1000
        np.testing.assert_array_equal(coarse, whole)
    # ns timestamps take that path at normal frame rates (5 ms = 5e6 ns per interval)
    ns, _ = simulate(frames, t_s, time_unit="ns")
    us, _ = simulate(frames, t_s)
    assert len(ns) == len(us) and np.all(np.diff(ns["t"]) >= 0)
    assert np.abs(np.sort(ns["t"]) / 1000 - np.sort(us["t"])).max() <= 1


def test_scratch_overflow_resumes_where_it_stopped(monkeypatch):
    # A scratch of a few dozen events per band fills up within the first intervals: each band stops before the
    # pixel that did not fit, the scratch grows, and the walk resumes there. Stream and state must not change.
    import sys

    rng = np.random.default_rng(17)
    frames = smooth_frames(rng, 12, 9, 7)
    t_s = np.arange(12) * 0.004
    kw = dict(threshold_pos=0.1, threshold_neg=0.13, refractory_s=0.001)
    whole, state = simulate(frames, t_s, **kw)
    module = sys.modules["blursynth.events.simulate"]
    monkeypatch.setattr(module, "_SCRATCH_MIN", 1)
    grows = []
    original = module._Scratch.grow
    monkeypatch.setattr(module._Scratch, "grow", lambda self: (grows.append(1), original(self)))
    small, small_state = simulate(frames, t_s, **kw)
    assert len(grows) >= 2 and len(whole) > 500
    np.testing.assert_array_equal(small, whole)
    np.testing.assert_array_equal(small_state.ref_log, state.ref_log)


def test_thread_count_does_not_change_the_stream():
    import numba

    rng = np.random.default_rng(13)
    frames = smooth_frames(rng, 20, 23, 19)
    t_s = np.arange(20) * 0.004
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one, _ = simulate(frames, t_s)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many, _ = simulate(frames, t_s)
    finally:
        numba.set_num_threads(threads)
    assert len(one) > 1000 and one.tobytes() == many.tobytes()


# --- noise model -------------------------------------------------------------------------------------------


def test_noise_off_is_deterministic_and_ignores_rng():
    rng = np.random.default_rng(8)
    frames = smooth_frames(rng, 20, 7, 9)
    t_s = np.arange(20) * 0.004
    a, _ = simulate(frames, t_s)
    b, _ = simulate(frames, t_s, noise=NoiseModel(), rng=np.random.default_rng(1))
    c, _ = simulate(frames, t_s, noise=NoiseModel.preset("ideal"), rng=np.random.default_rng(2))
    assert len(a) > 100 and a.tobytes() == b.tobytes() == c.tobytes()


def test_noise_on_same_seed_same_events_and_chunking_invariant():
    rng = np.random.default_rng(9)
    frames = smooth_frames(rng, 30, 8, 10)
    t_s = np.arange(30) * 0.002
    model = NoiseModel.preset("noisy")
    kw = dict(noise=model, threshold_pos=0.15, threshold_neg=0.25, refractory_s=0.001)
    a, _ = simulate(frames, t_s, rng=np.random.default_rng(3), **kw)
    b, _ = simulate(frames, t_s, rng=np.random.default_rng(3), **kw)
    c, _ = simulate(frames, t_s, rng=np.random.default_rng(4), **kw)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    r = np.random.default_rng(3)
    first, state = simulate(frames[:11], t_s[:11], rng=r, **kw)
    second, _ = simulate(frames[11:], t_s[11:], rng=r, state=state, **kw)
    np.testing.assert_array_equal(np.concatenate([first, second]), a)
    with pytest.raises(ValueError, match="rng"):
        simulate(frames, t_s, noise=model)


def test_threshold_spread_matches_requested_sigma():
    # Each pixel ramps up by exactly D in log intensity: it fires floor(D / C_px) events, so C_px is pinned to
    # (D / (n + 1), D / n]; with D = 6 and C ~ 0.2 that interval is about 0.007 wide. The std of the interval
    # midpoints over 40000 pixels estimates sigma = 0.03 with sampling error sigma / sqrt(2 N) = 1.1e-4 and a
    # quantization error below 0.007 / sqrt(12) = 0.002 (added in quadrature: < 2 %); we allow 5 %.
    h, w, d = 200, 200, 6.0
    l0 = math.log(0.01 + EPS)
    i1 = math.exp(l0 + d) - EPS
    frames = np.stack([np.full((h, w), 0.01), np.full((h, w), i1)]).astype(np.float32)
    d_true = math.log(float(frames[1, 0, 0]) + EPS) - math.log(float(frames[0, 0, 0]) + EPS)
    sigma = 0.03
    events, state = simulate(frames, np.array([0.0, 0.01]), noise=NoiseModel(threshold_sigma=sigma),
                             rng=np.random.default_rng(12))
    n = np.bincount(events["y"].astype(np.int64) * w + events["x"], minlength=h * w)
    assert np.all(events["p"] == 1) and n.min() > 0
    c_mid = (d_true / (n + 1) + d_true / n) / 2
    assert c_mid.std() == pytest.approx(sigma, rel=0.05)
    assert c_mid.mean() == pytest.approx(0.2, abs=0.002)
    assert state.noise.threshold_pos.std() == pytest.approx(sigma, rel=0.02)


@pytest.mark.parametrize("intensity", [0.0, 0.5])
def test_shot_noise_rate_matches_requested_rate(intensity):
    # A static scene: every event is shot noise. Count over P pixels x T seconds is Poisson with mean
    # lambda = rate * P * T (lambda = 48000 at black); we accept |count - lambda| < 5 sqrt(lambda) (about 2 %),
    # a bound a correct implementation misses with probability 6e-7. ON and OFF are half each, same bound.
    h, w, n = 40, 60, 101
    t_s = np.arange(n) * 0.01
    frames = np.full((n, h, w), intensity, np.float32)
    model = NoiseModel(shot_rate_hz=20.0)
    events, _ = simulate(frames, t_s, noise=model, rng=np.random.default_rng(5))
    rate = float(shot_rate_hz(model, frames[0])[0, 0])
    assert rate == pytest.approx(20.0 * (1 - 0.75 * ((255 * intensity + 20) / 275)))
    lam = rate * h * w * (t_s[-1] - t_s[0])
    assert abs(len(events) - lam) < 5 * math.sqrt(lam)
    on = int(np.count_nonzero(events["p"] > 0))
    assert abs(on - lam / 2) < 5 * math.sqrt(lam / 2)
    assert events["t"].min() > 0 and events["t"].max() <= 1e6 and np.all(np.diff(events["t"]) >= 0)


def test_leak_and_hot_pixels_rates():
    # Static scene, leak only: each pixel's reference drifts down by rate * C per second, so a pixel fires ON
    # events exactly every 1 / rate seconds: floor(T * rate) events (no spread). Hot pixels: Poisson, 5 sigma.
    h, w = 10, 10
    frames = np.full((41, h, w), 0.3, np.float32)
    t_s = np.arange(41) * 0.05  # 2 s
    events, _ = simulate(frames, t_s, noise=NoiseModel(leak_rate_hz=2.6), rng=np.random.default_rng(0))
    assert len(events) == h * w * 5 and np.all(events["p"] == 1)
    first = events[(events["x"] == 3) & (events["y"] == 4)]["t"]
    np.testing.assert_allclose(first, np.arange(1, 6) / 2.6 * 1e6, atol=1.0)
    hot, _ = simulate(frames, t_s, noise=NoiseModel(hot_pixel_fraction=0.1, hot_pixel_rate_hz=300.0),
                      rng=np.random.default_rng(1))
    n_hot = len(np.unique(hot["y"].astype(int) * w + hot["x"]))
    lam = n_hot * 300.0 * 2.0
    assert 0 < n_hot < 30 and abs(len(hot) - lam) < 5 * math.sqrt(lam)


def test_low_pass_delays_a_step():
    # A step of +1 in log intensity through the low-pass: the filter output reaches the threshold later than
    # the unfiltered ramp would, and with a bright pixel (bandwidth grows with intensity) sooner than a dark one.
    t_s = np.arange(201) * 1e-4
    def first_time(level):
        frames = np.full((201, 1, 1), level, np.float32)
        frames[1:] = level * math.e
        ev, _ = simulate(frames, t_s, noise=NoiseModel(cutoff_hz=200.0), rng=np.random.default_rng(0))
        return ev["t"][0], len(ev)
    t_dark, n_dark = first_time(0.02)
    t_bright, n_bright = first_time(0.3)
    # 20 ms after the step the dark pixel's filter (time constant 8.7 ms) is at about 90 % of the step, the bright
    # one's at all of it (just under 1.0 in float): 4 crossings of 0.2 each
    assert n_dark == n_bright == 4
    assert 100 < t_bright < t_dark


def test_random_reference_spreads_first_events():
    # With the reference at L0, a slow common ramp makes every pixel fire at the same instant; with a random
    # reference, the first crossings spread uniformly over one threshold's worth of the ramp.
    frames, _ = ramp_frames(math.log(0.05 + EPS), [0.5] * 2000)
    plain, _ = simulate(frames, np.array([0.0, 0.01]))
    rand, _ = simulate(frames, np.array([0.0, 0.01]), random_reference=True, rng=np.random.default_rng(0))
    assert len(np.unique(plain["t"])) == 2
    assert len(np.unique(rand["t"])) > 1000
    with pytest.raises(ValueError, match="rng"):
        simulate(frames, np.array([0.0, 0.01]), random_reference=True)


# --- spatial scale -----------------------------------------------------------------------------------------

def test_events_at_quarter_scale_equal_events_of_the_small_video():
    rng = np.random.default_rng(21)
    small = smooth_frames(rng, 25, 6, 8)
    big = np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)
    t_s = np.arange(25) * 0.003
    a, _ = simulate(downscale(big, 4), t_s)
    b, _ = simulate(small, t_s)
    assert len(b) > 500 and a.tobytes() == b.tobytes()
    # a non-constant block averages in linear intensity
    img = np.arange(16, dtype=np.float32).reshape(4, 4) / 16
    assert downscale(img, 2)[0, 0] == np.float32(np.mean([0, 1, 4, 5]) / 16)
    assert downscale(big[:, :7, :9], 4).shape == (25, 1, 2)
    with pytest.raises(ValueError, match="scale"):
        downscale(big, 0)


def test_to_gray_is_rec709_luminance():
    rgb = np.random.default_rng(0).random((3, 4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(to_gray(rgb), rgb @ np.array([0.2126, 0.7152, 0.0722]), rtol=1e-6)
