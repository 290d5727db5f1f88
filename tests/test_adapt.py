"""blursynth adapt: relative sharpness, the domain's blur and noise, matched reblurring, the adapt run.

Targets are rendered by the engine from scikit-image photos with a known motion over the video timeline, so the
true blur of every pixel is known (the engine's own blur map of each frame). References: scipy's
wasserstein_distance for distances, exact analytic cases for the flow arithmetic and the noise bookkeeping,
OpenCV decoding of videos the tests write (FFV1, lossless), ShardDataset and inspect for the output.
"""
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import wasserstein_distance
from skimage import data as skdata

from blursynth.adapt.domain import (BlurDistribution, condition_map, distribution_distance, frame_velocity,
                                    wasserstein1)
from blursynth.adapt.inputs import InputError, discover
from blursynth.adapt.analyze import analyze_video
from blursynth.adapt.noise import NoiseEstimate, estimate_noise
from blursynth.adapt.reblur import Condition, condition_path, denoise_codes, reblur_patch
from blursynth.adapt.run import AdaptError, run_adapt
from blursynth.adapt.settings import load_settings
from blursynth.adapt.sharpness import EnergyMap, _noise_gain, patch_grid, score_patches, select_sharpest
from blursynth.camera import Response, add_noise, encode_u8
from blursynth.commands import main
from blursynth.data import ShardDataset
from blursynth.motion import Motion, rasterize_psf
from blursynth.recipe import RecipeError
from blursynth.render import render
from blursynth.scene import Layer, Scene

from _util import shard_bytes, write_video

SIZE = (160, 120)
PATCH = 48
SRGB = Response()
# the known target: content moves along 30 degrees with speed 16 |sin(2 pi t / 24)| px per frame, exposure half
# the frame interval, so the true blur of a frame runs from 0 to 8 px
N_FRAMES, AMP_PX, AXIS_DEG, EXPOSURE = 24, 16.0, 30.0, 0.5
# Wasserstein-1 bound (px) on the estimated and the produced blur-magnitude distribution vs the true one
# (measured: 0.31 px estimated, 0.30 px produced, for a true mean of 5.1 px)
W1_BOUND_PX = 0.6


def _settings(*sets):
    return load_settings("adapt", [f"sharpness.patch_size={PATCH}", "domain.flow_scale=1.0", *sets])


def _sine_path(n, amp, axis_deg):
    """Content position q(tau) (px) at video time tau (frames): velocity amp sin(2 pi tau / n) along the axis."""
    omega = 2 * math.pi / n
    axis = np.array([math.cos(math.radians(axis_deg)), math.sin(math.radians(axis_deg))])
    return lambda tau: np.outer((amp / omega) * (1 - np.cos(omega * np.asarray(tau, float))), axis)


def _line_path(speed, axis_deg):
    axis = np.array([math.cos(math.radians(axis_deg)), math.sin(math.radians(axis_deg))])
    return lambda tau: np.outer(speed * np.asarray(tau, float), axis)


def _engine_clip(q, n, duty, photo, noise=None, margin=16, seed=0):
    """Frames of a camera moving over a photo: frame k integrates the content path q over its exposure
    [k - d/2, k + d/2] with the engine (exact renderer, linear light, sRGB), plus optional Poisson-Gaussian noise.

    Returns (uint8 (H, W, 3) frames, the engine's float32 (H, W, 3) blur map of each frame).
    """
    canvas = SRGB.lut_to_linear()[photo]
    w, h = SIZE
    span = q(np.linspace(-1, n, 4 * n + 8))
    lo, hi = np.floor(span.min(axis=0)).astype(int), np.ceil(span.max(axis=0)).astype(int)
    x_org, y_org = margin + 2 + hi[0] - 2 * lo[0], margin + 2 + hi[1] - 2 * lo[1]
    duties = np.broadcast_to(np.asarray(duty, float), (n,))
    rng = np.random.default_rng(seed)
    frames, maps = [], []
    for k in range(n):
        o = np.floor(q([k])[0]).astype(int)
        x0, y0 = x_org - o[0] - margin, y_org - o[1] - margin
        layer = np.ascontiguousarray(canvas[y0:y0 + h + 2 * margin, x0:x0 + w + 2 * margin])
        assert x0 >= 0 and y0 >= 0 and layer.shape[:2] == (h + 2 * margin, w + 2 * margin)
        tau = k - duties[k] / 2 + duties[k] * np.linspace(0, 1, 64)
        motion = Motion.from_translation(q(tau) - o).recentered(0.5)
        e = render(Scene([Layer(layer, np.ones(layer.shape[:2], np.float32), motion, extend=True)]))
        inner = (slice(margin, margin + h), slice(margin, margin + w))
        blur = np.ascontiguousarray(e.blur[inner])
        if noise is not None:
            blur = add_noise(blur, noise[0], noise[1], rng)
        frames.append(encode_u8(blur, 1.0, SRGB.code_thresholds()))
        maps.append(e.blur_map[inner])
    return frames, maps


def _write_bsd(seq: Path, frames) -> Path:
    rgb = seq / "Blur" / "RGB"
    rgb.mkdir(parents=True)
    for k, f in enumerate(frames):
        cv2.imwrite(str(rgb / f"{k:05d}.png"), f[..., ::-1])
    return seq


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """The known target as a BSD-style folder, its true blur maps, and an adapt run over it."""
    root = tmp_path_factory.mktemp("adapt")
    frames, maps = _engine_clip(_sine_path(N_FRAMES, AMP_PX, AXIS_DEG), N_FRAMES, EXPOSURE, skdata.astronaut())
    _write_bsd(root / "bsd" / "seq1", frames)
    out = root / "run"
    summary = run_adapt([root / "bsd"], out, _settings("reblur.pairs_per_patch=4"), seed=3, shard_size=64,
                        progress=False)
    true = np.concatenate([m[..., 2].ravel() for m in maps])
    return {"root": root, "frames": frames, "maps": maps, "true": true, "out": out, "summary": summary}


# ----------------------------------------------------------------------------------------------- the domain

def test_estimated_blur_distribution_matches_the_known_one(target):
    analysis = analyze_video(discover([target["root"] / "bsd" / "seq1"])[0][0], _settings())
    dist, true = analysis.distribution, target["true"]
    drawn, angle = dist.sample(np.random.default_rng(0), 40000)
    w1 = wasserstein_distance(drawn, true)
    assert w1 < W1_BOUND_PX
    assert wasserstein1(drawn, true) == pytest.approx(w1, rel=1e-9, abs=1e-12)
    assert distribution_distance(dist, true) < W1_BOUND_PX
    # the bound tells a 25% error in the exposure ratio apart
    assert wasserstein_distance(drawn, 1.25 * true) > 2 * W1_BOUND_PX
    axis_deg, concentration = dist.direction()
    assert math.degrees(axis_deg) == pytest.approx(AXIS_DEG, abs=3.0)
    assert concentration > 0.9
    # motion is along +axis in the first half of the clip and -axis in the second: both directions drawn
    d = np.mod(np.degrees(angle[drawn > 1.0]), 360)
    forward = np.mean(np.abs(d - AXIS_DEG) < 15.5)  # the 15-degree bins next to the axis
    backward = np.mean(np.abs(d - AXIS_DEG - 180) < 15.5)
    assert forward > 0.35 and backward > 0.35 and forward + backward > 0.95
    # per frame: the mean estimated blur follows the true one away from the one-sided first and last frame
    true_mean = np.array([m[..., 2].mean() for m in target["maps"]])
    assert np.max(np.abs(analysis.frame_blur_px[1:-1] - true_mean[1:-1])) < 0.5


def test_reblurred_pairs_follow_the_target_distribution(target):
    ds = ShardDataset(target["out"], fields=("blur", "sharp", "blur_map"))
    assert len(ds) == target["summary"].written > 40
    maps = [ds[i]["blur_map"].numpy() for i in range(len(ds))]
    produced = np.concatenate([m[2].ravel() for m in maps])
    assert wasserstein_distance(produced, target["true"]) < W1_BOUND_PX
    assert target["summary"].produced_w1_px < W1_BOUND_PX
    d = np.concatenate([m[:2].reshape(2, -1) for m in maps], axis=1)
    axial = np.angle(np.mean((d[0] + 1j * d[1]) ** 2 * produced)) / 2  # magnitude-weighted axis
    assert math.degrees(axial) == pytest.approx(AXIS_DEG, abs=4.0)
    for i in range(0, len(ds), 7):
        s = ds[i]
        m, cond = s["blur_map"].numpy(), s["meta"]["condition"]
        # ID-Blau's convention: the drawn condition at every pixel
        np.testing.assert_allclose(m[2], cond["magnitude_px"], atol=2e-2 * max(1.0, cond["magnitude_px"]))
        if cond["magnitude_px"] > 0.5:
            np.testing.assert_allclose(m[0], math.cos(cond["angle_rad"]), atol=2e-3)
            np.testing.assert_allclose(m[1], math.sin(cond["angle_rad"]), atol=2e-3)
        # the sharp target is the source patch of its frame, byte for byte
        src = s["meta"]["source"]
        frame = cv2.imread(src["file"])[..., ::-1]
        x0, y0 = src["corner"]
        patch = frame[y0:y0 + PATCH, x0:x0 + PATCH]
        np.testing.assert_array_equal((s["sharp"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8), patch)
        assert src["frame"] == int(Path(src["file"]).stem)


def test_output_is_a_generate_style_run(target):
    from blursynth.inspect import summarize, verify

    out = target["out"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image_size"] == [PATCH, PATCH]
    assert manifest["extra"]["kind"] == "adapt"
    assert manifest["extra"]["domain"]["exposure_ratio"] == EXPOSURE
    video = manifest["extra"]["videos"][0]
    assert video["id"] == "seq1" and video["frames"] == N_FRAMES
    assert summarize(out)["counts"]["written"] == target["summary"].written
    assert verify(out).ok
    # the condition-map set: one ID-Blau map per target frame, magnitudes consistent with the per-frame blur
    maps = np.load(out / video["conditions"])
    assert maps.shape == (N_FRAMES, SIZE[1], SIZE[0], 3) and maps.dtype == np.float16
    unit = np.hypot(maps[..., 0].astype(np.float32), maps[..., 1].astype(np.float32))
    assert np.all(np.abs(unit[maps[..., 2] > 0.1] - 1) < 2e-3)
    np.testing.assert_allclose(maps[..., 2].astype(np.float32).mean(axis=(1, 2)), video["frame_blur_px"], atol=0.15)


def test_same_seed_same_bytes_whatever_the_shard_size(target, tmp_path):
    src = target["root"] / "bsd" / "seq1"
    a = run_adapt([src], tmp_path / "a", _settings(), seed=5, shard_size=3, max_pairs=7, progress=False)
    b = run_adapt([src], tmp_path / "b", _settings(), seed=5, shard_size=8, max_pairs=7, progress=False)
    assert a.written == b.written == 7
    assert shard_bytes(tmp_path / "a", by_shard=False) == shard_bytes(tmp_path / "b", by_shard=False)
    # resume: a lost shard is remade to the same bytes
    before = shard_bytes(tmp_path / "a", by_shard=False)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    manifest["shards"] = manifest["shards"][:1]
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(manifest))
    for d in sorted((tmp_path / "a").glob("shard-*.lmdb"))[1:]:
        shutil.rmtree(d)
    c = run_adapt([src], tmp_path / "a", _settings(), seed=5, shard_size=3, max_pairs=7, resume=True, progress=False)
    assert c.shards_reused == 1 and c.shards_done == 2
    assert shard_bytes(tmp_path / "a", by_shard=False) == before


# ------------------------------------------------------------------------------------------ relative sharpness

def test_selected_patches_are_the_sharp_frames_of_an_alternating_clip(tmp_path):
    # even frames: exposure 5% of the frame interval (0.3 px of blur); odd frames: 100% (6 px); noisy camera
    n = 16
    frames, maps = _engine_clip(_line_path(6.0, 20.0), n, [0.05, 1.0] * (n // 2), skdata.astronaut(),
                                noise=(2e-3, 2e-3))
    video = write_video(tmp_path / "alternating.avi", frames)
    settings = _settings()
    analysis = analyze_video(discover([video])[0][0], settings)
    chosen = select_sharpest(analysis.scores, settings.sharpness.ratio)
    assert len(chosen) == math.ceil(0.2 * analysis.scores.eligible.sum())
    assert set(chosen[:, 0] % 2) == {0}
    frame_scores = analysis.scores.frame_scores()
    assert frame_scores[0::2].min() > 2 * frame_scores[1::2].max()
    summary = run_adapt([video], tmp_path / "out", settings, progress=False)
    sources = [ShardDataset(tmp_path / "out")[i]["meta"]["source"]["frame"] for i in range(summary.written)]
    assert sources and all(k % 2 == 0 for k in sources)


def test_blur_cap_keeps_only_patches_that_are_truly_sharp(target):
    # ratio 0.5 of a clip whose frames blur 0-8 px takes frames blurred 5-6 px; the cap keeps only the patches
    # whose true blur (the engine's blur map) is small, and still some
    analysis = analyze_video(discover([target["root"] / "bsd" / "seq1"])[0][0], _settings())
    true_p90 = np.array([[np.percentile(m[y:y + PATCH, x:x + PATCH, 2], 90) for x, y in analysis.corners]
                         for m in target["maps"]])
    by_ratio = select_sharpest(analysis.scores, 0.5)
    capped = select_sharpest(analysis.scores, 0.5, max_blur_px=3.0)
    assert true_p90[by_ratio[:, 0], by_ratio[:, 1]].max() > 4.5
    assert len(capped) >= 0.25 * len(by_ratio)
    assert true_p90[capped[:, 0], capped[:, 1]].max() < 3.5
    assert {tuple(c) for c in capped} <= {tuple(c) for c in by_ratio}
    # the cap applies to the flow blur the analysis measured, exactly
    assert np.all(analysis.scores.blur_px[capped[:, 0], capped[:, 1]] <= 3.0)
    assert np.all(select_sharpest(analysis.scores, 0.5, max_blur_px=0.0) == by_ratio)


def test_score_selection_and_patch_grid():
    grid = patch_grid((100, 70), 32, 32)
    assert grid.tolist() == [[x, y] for y in (0, 32, 38) for x in (0, 32, 64, 68)]
    assert len(patch_grid((20, 70), 32, 32)) == 0
    energy = np.array([[1.0, 4.0, 0.001], [2.0, 4.0, 0.001], [4.0, 1.0, 0.001]])
    reference = np.array([[4.0, 4.0, 0.001]] * 3)
    blur = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    s = score_patches(energy, reference, blur, tolerance_px=2.0, min_texture=0.1)
    np.testing.assert_allclose(s.relative[:, :2], [[0.25, 1.0], [0.5, 1.0], [1.0, 0.25]])
    np.testing.assert_allclose(s.score[1, 1], 0.5)  # blur at the tolerance halves the score
    assert not s.eligible[:, 2].any()  # too flat
    # the 3 best of 6 eligible: (0, 1) and (2, 0) score 1, then (1, 1) and (1, 0) tie at 0.5: the earlier patch
    assert select_sharpest(s, 0.5).tolist() == [[0, 1], [1, 0], [2, 0]]


def test_detail_energy_noise_share_matches_white_noise():
    rng = np.random.default_rng(0)
    sigma = 6.0 / 255
    gray = np.clip(128 + 255 * sigma * rng.standard_normal((256, 256)), 0, 255).round().astype(np.uint8)
    frame = np.repeat(gray[..., None], 3, axis=2)
    measured = EnergyMap(frame).means(np.array([[64, 64]]), 128)[0][0]
    assert measured == pytest.approx(_noise_gain(1.0) * (sigma ** 2 + 1 / 12 / 255 ** 2), rel=0.05)
    assert EnergyMap(frame, sigma).means(np.array([[64, 64]]), 128)[0][0] < 0.05 * measured


# ------------------------------------------------------------------------------------ flow arithmetic, noise

def test_frame_velocity_and_condition_map_exact_cases():
    fwd = np.zeros((2, 3, 2), np.float32)
    fwd[..., 0] = 4.0
    bwd = np.zeros((2, 3, 2), np.float32)
    bwd[..., 0] = -2.0
    ok, bad = np.ones((2, 3)), np.zeros((2, 3))
    v, valid = frame_velocity(fwd, bwd, ok, ok)
    np.testing.assert_allclose(v[..., 0], 3.0)  # (4 - (-2)) / 2
    v, _ = frame_velocity(fwd, bwd, bad, ok)
    np.testing.assert_allclose(v[..., 0], 2.0)  # only the backward flow holds
    v, valid = frame_velocity(None, bwd, None, ok)
    np.testing.assert_allclose(v[..., 0], 2.0)
    _, valid = frame_velocity(fwd, bwd, bad, bad)
    assert not valid.any()
    c = condition_map(np.array([[[3.0, -4.0], [0.0, 0.0]]], np.float32), 0.5)
    np.testing.assert_allclose(c[0, 0], [0.6, -0.8, 2.5], rtol=1e-6)
    np.testing.assert_allclose(c[0, 1], [0.0, 0.0, 0.0])


def test_distribution_sampling_and_wasserstein_against_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2.0, 2.0, 3000), rng.normal(5, 1, 2000)
    wa, wb = rng.random(3000), rng.random(2000)
    assert wasserstein1(a, b, wa, wb) == pytest.approx(wasserstein_distance(a, b, wa, wb), rel=1e-9)
    dist = BlurDistribution.empty(0.5, 8.0, 8)
    cond = np.zeros((1, 2, 3))
    cond[0, 0] = [1.0, 0.0, 2.25]  # bin [2, 2.5), angle 0
    cond[0, 1] = [0.0, -1.0, 6.75]  # bin [6.5, 7), angle 3 pi / 2
    for _ in range(3):
        dist.add(cond[:, :1])
    dist.add(cond[:, 1:])
    m, angle = dist.sample(np.random.default_rng(2), 20000)
    low = m < 4
    assert np.mean(low) == pytest.approx(0.75, abs=0.015)
    assert m[low].min() >= 2.0 and m[low].max() < 2.5 and m[~low].min() >= 6.5 and m[~low].max() < 7.0
    assert np.all(angle[low] < 2 * math.pi / 8)
    assert np.all((angle[~low] >= 3 * math.pi / 2) & (angle[~low] < 7 * math.pi / 4))
    np.testing.assert_allclose(dist.magnitude_quantile([0.0, 0.375, 0.7, 0.8, 1.0]),
                               [2.0, 2.25, 2.0 + 0.5 * 0.7 / 0.75, 6.6, 7.0])
    assert BlurDistribution.from_dict(json.loads(json.dumps(dist.to_dict()))).counts.tolist() == dist.counts.tolist()


def test_noise_estimate_recovers_known_poisson_gaussian_noise():
    photo = skdata.rocket()
    linear = SRGB.lut_to_linear()[photo]
    clean = estimate_noise([photo], SRGB)
    for shot, read in ((2e-3, 2e-3), (5e-4, 1e-3)):
        noisy = encode_u8(add_noise(linear, shot, read, np.random.default_rng(0)), 1.0, SRGB.code_thresholds())
        est = estimate_noise([noisy], SRGB)
        for x in (0.05, 0.18, 0.5):
            true = math.sqrt(shot * x + read ** 2)
            assert est.sigma(x) == pytest.approx(true, rel=0.10), (shot, read, x)
        assert clean.sigma(0.18) < 0.1 * est.sigma(0.18)


def test_reblur_adds_the_rest_of_the_noise_variance():
    flat = np.full((300, 300, 3), 118, np.uint8)
    x = float(SRGB.lut_to_linear()[118])
    noise = NoiseEstimate(shot=2e-3, read=3e-3)
    still = reblur_patch(flat, (20, 20), 256, Condition(0.0, 0.0), SRGB, noise, np.random.default_rng(0))
    np.testing.assert_array_equal(still.blur, still.sharp)  # no motion: the source's own noise is all there is
    cond = Condition(10.0, 0.3)
    pair = reblur_patch(flat, (20, 20), 256, cond, SRGB, noise, np.random.default_rng(0))
    xy = condition_path(cond)
    kept = float(np.sum(rasterize_psf(xy - xy.mean(axis=0)) ** 2))
    expected = math.sqrt((1 - kept) * (noise.shot * x + noise.read ** 2))
    measured = float(np.std(SRGB.lut_to_linear()[pair.blur]))
    assert measured == pytest.approx(expected, rel=0.1)
    assert pair.camera.read == pytest.approx(noise.read * math.sqrt(1 - kept))


def test_denoised_source_makes_the_input_noise_independent_of_the_target():
    # a flat patch with known noise, no motion: without denoising the input's noise is the target's own
    # (correlation 1); denoised, the input gets a fresh draw of the whole noise (correlation about 0, same level)
    noise = NoiseEstimate(shot=2e-3, read=3e-3)
    x = float(SRGB.lut_to_linear()[118])
    flat = np.full((200, 200, 3), x, np.float32)
    noisy = encode_u8(add_noise(flat, noise.shot, noise.read, np.random.default_rng(1)), 1.0, SRGB.code_thresholds())
    lut = SRGB.lut_to_linear()
    for denoise in (False, True):
        pair = reblur_patch(noisy, (36, 36), 128, Condition(0.0, 0.0), SRGB, noise, np.random.default_rng(0),
                            denoise=denoise)
        np.testing.assert_array_equal(pair.sharp, noisy[36:164, 36:164])  # the target is the patch as it was
        a, b = lut[pair.blur].ravel() - x, lut[pair.sharp].ravel() - x
        corr = float(np.corrcoef(a, b)[0, 1])
        assert np.std(a) == pytest.approx(noise.sigma(x), rel=0.1)
        assert corr > 0.99 if not denoise else abs(corr) < 0.05
    assert pair.camera.shot == noise.shot and pair.camera.read == noise.read
    # the denoiser itself removes most of the noise of a flat image
    assert np.std(lut[denoise_codes(noisy, noise, SRGB)]) < 0.3 * noise.sigma(x)


def test_gp_path_keeps_the_drawn_end_to_end_motion():
    cond = Condition(7.0, 2.0, "gp", seed=11)
    xy = condition_path(cond)
    np.testing.assert_allclose(xy[-1] - xy[0], [7 * math.cos(2.0), 7 * math.sin(2.0)], atol=1e-9)
    assert np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)) > 7.0 + 1e-6  # curved, not the line


def test_layered_integrator_gives_the_exact_pair():
    frame = skdata.chelsea()
    cond = Condition(9.0, 0.7)
    a = reblur_patch(frame, (100, 80), 64, cond, SRGB, None, np.random.default_rng(0), method="exact")
    b = reblur_patch(frame, (100, 80), 64, cond, SRGB, None, np.random.default_rng(0), method="layered")
    assert np.abs(a.blur.astype(int) - b.blur.astype(int)).max() <= 1
    np.testing.assert_array_equal(a.sharp, b.sharp)


# ---------------------------------------------------------------------------------------------- bad input

def test_discover_layouts(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(3):
        (frames / f"{k:03d}.png").write_bytes(b"")
    bsd = tmp_path / "BSD" / "train"
    for seq in ("a", "b"):
        (bsd / seq / "Blur" / "RGB").mkdir(parents=True)
        (bsd / seq / "Sharp" / "RGB").mkdir(parents=True)
        (bsd / seq / "Blur" / "RGB" / "00000.png").write_bytes(b"")
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(b"")
    (videos / "frames").mkdir()
    (videos / "frames" / "clip.png").write_bytes(b"")
    targets, skipped = discover([frames, tmp_path / "BSD", videos / "clip.mp4", videos, tmp_path / "nope"])
    assert [(t.id, None if t.frames is None else len(t.frames)) for t in targets] == [
        ("frames", 3), ("train_a", 1), ("train_b", 1), ("clip", None), ("clip-2", None)]
    assert skipped == [{"input": str(tmp_path / "nope"), "reason": "not found"}]
    # a folder of frames with fewer than two frames is named in the error
    with pytest.raises(InputError, match="needs at least 2 frames, has 1"):
        next(targets[1].open())

def test_bad_inputs_give_clear_errors(target, tmp_path):
    still = write_video(tmp_path / "still.avi", [target["frames"][5]] * 6)
    one = write_video(tmp_path / "one.avi", [target["frames"][5]])
    empty = tmp_path / "empty"
    (empty / "Blur" / "RGB").mkdir(parents=True)
    (empty / "notes.txt").write_text("no frames here")
    cases = [(still, "static video"), (one, "needs at least 2 frames"), (empty, "folder without frames"),
             (tmp_path / "missing.mp4", "not found")]
    for path, reason in cases:
        with pytest.raises(AdaptError, match=reason) as info:
            run_adapt([path], tmp_path / f"out-{path.stem}", _settings(), progress=False)
        assert str(path) in str(info.value)
        assert not (tmp_path / f"out-{path.stem}" / "manifest.json").exists()
    with pytest.raises(AdaptError, match="smaller than the patch size 256"):
        run_adapt([target["root"] / "bsd"], tmp_path / "big", load_settings("adapt", ["domain.flow_scale=1.0"]),
                  progress=False)
    # with a usable input beside them, bad ones are skipped and recorded with their reason
    out = tmp_path / "mixed"
    summary = run_adapt([still, target["root"] / "bsd", empty], out, _settings(), max_pairs=3, progress=False)
    assert summary.written == 3
    skipped = json.loads((out / "manifest.json").read_text())["extra"]["skipped_inputs"]
    assert [Path(s["input"]).name for s in skipped] == ["empty", "still.avi"]
    assert "folder without frames" in skipped[0]["reason"] and "static video" in skipped[1]["reason"]
    # an --out holding something else fails before any work
    with pytest.raises(AdaptError, match="not empty"):
        run_adapt([target["root"] / "bsd"], empty, _settings(), progress=False)
    # a camera that always blurs 6 px, and a cap of 3 px: an error naming the setting, nothing written
    frames, _ = _engine_clip(_line_path(6.0, 20.0), 6, 1.0, skdata.astronaut())
    blurred = write_video(tmp_path / "blurred.avi", frames)
    with pytest.raises(AdaptError, match="sharpness.max_blur_px") as info:
        run_adapt([blurred], tmp_path / "capped", _settings("domain.exposure_ratio=1.0", "sharpness.max_blur_px=3"),
                  progress=False)
    assert "3.0 px" in str(info.value)
    assert not (tmp_path / "capped" / "manifest.json").exists()
    with pytest.raises(RecipeError, match="sharpness.max_blur_px"):
        load_settings("adapt", ["sharpness.max_blur_px=-1"])
    with pytest.raises(RecipeError, match="sharpness.patch_size"):
        load_settings("adapt", ["sharpness.patch_size=16"])
    with pytest.raises(RecipeError, match="sharpness.nope"):
        load_settings("adapt", ["sharpness.nope=1"])


def test_cli(target, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(main, ["adapt", str(target["root"] / "bsd" / "seq1"), "--out", str(out), "--patch-size",
                             str(PATCH), "--set", "domain.flow_scale=1.0", "--max-pairs", "4", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "wrote 4 of 4 pairs" in r.output and "domain blur: mean" in r.output
    assert len(ShardDataset(out)) == 4
    r = runner.invoke(main, ["adapt", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "--no-progress"])
    assert r.exit_code == 1 and "not found" in r.output
    r = runner.invoke(main, ["adapt", "x", "--out", str(tmp_path / "x"), "--ratio", "1.5"])
    assert r.exit_code == 2 and "sharpness.ratio" in r.output
