"""Camera response, noise statistics, quantization and parameter sampling."""
import numpy as np
import pytest

from blursynth.camera import CameraParams, Response, add_noise, apply_camera, quantize, sample_camera
from blursynth.recipe import CameraRecipe


@pytest.mark.parametrize("response", [Response("srgb"), Response("gamma", 2.2), Response("gamma", 1.0),
                                      Response("gamma", 2.6)])
def test_response_round_trip(response):
    x = np.linspace(0.0, 1.0, 10001, dtype=np.float32)
    np.testing.assert_allclose(response.to_linear(response.to_encoded(x)), x, atol=2e-6)
    # every 8-bit code survives linearize -> encode -> quantize
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(quantize(response.to_encoded(response.lut_to_linear()[codes])), codes)


def test_srgb_matches_the_standard():
    r = Response("srgb")
    # IEC 61966-2-1 reference points
    assert r.to_linear(np.float32(0.04045)) == pytest.approx(0.04045 / 12.92, rel=1e-6)
    assert r.to_linear(np.float32(0.5)) == pytest.approx(((0.5 + 0.055) / 1.055) ** 2.4, rel=1e-5)
    assert r.to_encoded(np.float32(0.0031308)) == pytest.approx(0.0031308 * 12.92, rel=1e-5)


@pytest.mark.parametrize("x", [0.002, 0.05, 0.6])
@pytest.mark.parametrize("shot,read", [(1e-3, 0.0), (1e-4, 2e-3), (0.0, 5e-3)])
def test_noise_mean_and_variance_match_the_model(x, shot, read):
    n = 400_000
    rng = np.random.default_rng(7)
    y = add_noise(np.full(n, x, np.float32), shot, read, rng).astype(np.float64)
    var = shot * x + read**2
    # sampling error of the mean: sqrt(var / n); of the variance: ~ var * sqrt(2 / n) (+ Poisson excess kurtosis)
    assert abs(y.mean() - x) < 5 * np.sqrt(var / n) + 1e-9
    assert y.var() == pytest.approx(var, rel=5 * np.sqrt(2.0 / n) + 5 * np.sqrt(shot / max(x, 1e-9) / n) + 1e-9)


def test_poisson_branch_is_integer_photon_counts():
    # lam = x / shot = 20 photons (below 32): the exact Poisson sampler is used, outputs are multiples of shot
    shot = 0.01
    y = add_noise(np.full(1000, 0.2, np.float32), shot, 0.0, np.random.default_rng(1))
    counts = y / shot
    assert np.allclose(counts, np.round(counts), atol=1e-3)


def test_clipping_happens_after_integration_and_gain():
    blur = np.full((4, 4, 3), 0.7, np.float32)
    blur[1, 1] = 0.6
    blur[0, 0] = 3.0  # a light streak brighter than white
    params = CameraParams(gain=1.5, response=Response("gamma", 1.0))
    b, s = apply_camera(blur, blur, params, np.random.default_rng(0))
    assert b[0, 0, 0] == 255 and b[2, 2, 0] == 255  # 0.7 * 1.5 > 1 clips
    params = CameraParams(gain=1.0, response=Response("gamma", 1.0))
    b, _ = apply_camera(blur, blur, params, np.random.default_rng(0))
    assert b[1, 1, 0] == 153 and b[0, 0, 0] == 255


def test_sharp_has_no_noise_and_blur_has_jpeg_only_when_asked():
    rng = np.random.default_rng(3)
    img = rng.random((32, 48, 3)).astype(np.float32)
    params = CameraParams(gain=1.0, response=Response("srgb"), shot=1e-3, read=1e-3, jpeg_quality=80)
    b, s = apply_camera(img, img, params, np.random.default_rng(0))
    clean = quantize(Response("srgb").to_encoded(img))
    assert np.array_equal(s, clean)
    assert not np.array_equal(b, clean)


def test_sample_camera_is_deterministic_and_in_range():
    rec = CameraRecipe(gain=(0.5, 1.5), jpeg_prob=1.0, jpeg_quality=(70, 72))
    a = [sample_camera(rec, np.random.default_rng(i)) for i in range(200)]
    b = [sample_camera(rec, np.random.default_rng(i)) for i in range(200)]
    assert a == b
    assert all(0.5 <= p.gain <= 1.5 and p.jpeg_quality in (70, 71, 72) for p in a)
    assert {p.response.kind for p in a} == {"srgb", "gamma"}
    assert all(1.8 <= p.response.gamma <= 2.4 for p in a if p.response.kind == "gamma")


@pytest.mark.parametrize("response", [Response("srgb"), Response("gamma", 2.2), Response("gamma", 1.7)])
def test_threshold_encoder_equals_quantized_response(response):
    from blursynth.camera import encode_u8

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(200_000) * 1.2 - 0.1, rng.random(1000) * 1e-3]).astype(np.float32)
    for gain in (1.0, 1.37):
        fast = encode_u8(x, gain, response.code_thresholds())
        ref = quantize(response.to_encoded(x * np.float32(gain)))
        # identical but for values within float32 rounding of a code boundary
        assert np.mean(fast != ref) < 1e-4
        assert np.abs(fast.astype(int) - ref).max() <= 1


def test_encoder_saturates_infinity_and_zeroes_nan():
    from blursynth.camera import encode_u8

    x = np.array([np.inf, 1e30, 1.0, 0.0, -np.inf, np.nan], dtype=np.float32)
    codes = encode_u8(x, 1.0, Response("srgb").code_thresholds())
    assert codes.tolist() == [255, 255, 255, 0, 0, 0]
