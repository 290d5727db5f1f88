"""Device backends (blursynth/backend.py): one interface, a CPU and a CUDA implementation, and one suite over both.

Every case runs on each backend and checks it against a reference that is not the code under test: the per-pixel
gather and OpenCV's convolution for the blur, a supersampled scipy rotation, the analytic displacement for the
blur map, the plain per-pixel ESIM of tests/test_events.py for events, the float response curve for the camera's
codes, and the noise model's mean and variance. Where the CUDA kernels promise the CPU's output (csrc/README.md),
a case also compares with the CPU path; on the CPU backend that part is the same call and proves nothing, the
reference part is what binds it.

The CUDA cases skip without a usable GPU. tests/test_cuda_gpu.py holds what only a GPU can run: the extension
must load where a device is visible, and the commands end to end with --device cuda against --device cpu.

Tolerances (csrc/README.md): the GPU gathers every pixel, within 2e-5 of the largest radiance of numba's gather
(fused multiply-adds); the CPU takes a background no object reaches by a convolution or shifted tiles, within
SHIFT_TOL_PX times the background's largest neighbour differences (tests/test_render.py). Sharp and latent images
are equal on both, events identical in count and order, camera codes off by one only within float rounding of a
code threshold.
"""
from __future__ import annotations

import inspect

import cv2
import numpy as np
import pytest

from blursynth import cuda, generate
from blursynth.backend import CPU, Backend, CpuBackend, backend_for
from blursynth.camera import CameraParams, Response, apply_camera, jpeg_roundtrip, quantize
from blursynth.cuda.backend import CudaBackend
from blursynth.events import downscale, simulate, to_gray
from blursynth.motion import Motion
from blursynth.recipe import load_recipe
from blursynth.render import latent_frames, render
from blursynth.render.exact import integrate_exact, plan_exact
from blursynth.render.pack import pack_layers
from blursynth.scene import Layer, Scene
from blursynth.sources import open_source

from test_cuda_host import random_frames, random_scene
from test_events import by_tyxp, reference_events
from test_render import (curved_path, filter2d_reference, opaque, photo, rotation_about, runs_bound,
                         supersampled_rotation, tiles_bound)

BACKENDS = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not cuda.available(),
                                                                  reason=str(cuda.unavailable_reason())))]
METHODS = [name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_")]
TOL_GPU_BLUR = 2e-5  # of the largest radiance: the host code's 1e-5 (test_cuda_host.TOL_RENDER) plus fused multiply-adds


def on_host(x) -> np.ndarray:
    """A backend's array as numpy (the CUDA backend keeps exposures on the device)."""
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


def gpu_slack(device: str, largest: float) -> float:
    """What the GPU's blur may add to a bound that holds for numba's gather: TOL_GPU_BLUR of the largest radiance."""
    return 0.0 if device == "cpu" else TOL_GPU_BLUR * float(largest)


def render_recipe(*overrides: str):
    return load_recipe("default", list(overrides)).render


def exposure(device: str, scene: Scene, *overrides: str):
    (exp,) = backend_for(device).render_batch([scene], render_recipe(*overrides))
    return exp


# --------------------------------------------------------------------------------------------------------------
# the interface


def test_the_interface_names_six_methods_and_both_backends_have_them_with_its_arguments():
    assert sorted(METHODS) == ["apply_camera", "blur_stats", "render_batch", "scene_events", "simulate", "to_host"]
    for cls in (CpuBackend, CudaBackend):
        for name in METHODS:
            want = list(inspect.signature(getattr(Backend, name)).parameters)
            assert list(inspect.signature(getattr(cls, name)).parameters) == want, (cls.__name__, name)


def test_backend_for_maps_device_names():
    assert backend_for("cpu") is CPU
    for device in ("cuda", "cuda:1"):  # constructing one touches no GPU
        b = backend_for(device)
        assert isinstance(b, CudaBackend) and b.device == device and b.name == "cuda"


def test_the_cpu_backend_renders_with_every_field_of_the_recipes_render_section():
    recipe = load_recipe("default", ["size=[96, 64]", "render.reference_time=0.3", "render.max_samples=48"])
    made = generate.make_scene(recipe, open_source("builtin", recipe.size), 4, 1)
    scene = made[2]
    (got,) = CPU.render_batch([scene], recipe.render)
    want = render(scene, method="exact", reference_time=0.3, max_samples=48, kernel_size=recipe.render.kernel_size)
    assert got.samples == want.samples
    np.testing.assert_array_equal(got.blur, want.blur)
    np.testing.assert_array_equal(got.sharp, want.sharp)
    default = CPU.render_batch([scene], load_recipe("default", ["size=[96, 64]"]).render)[0]
    assert not np.array_equal(default.sharp, want.sharp)  # reference_time reached the renderer


# --------------------------------------------------------------------------------------------------------------
# render_batch: blur, sharp image and blur map


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("seed,back_extends,max_samples", [(0, True, 256), (1, True, 9), (2, False, 256),
                                                           (5, True, 256)])
def test_a_backends_blur_equals_the_per_pixel_gather(device, seed, back_extends, max_samples):
    """Random scenes (rotating camera, three objects that rotate, scale, occlude and are translucent, lights at 6x
    white) against numba's gather of every pixel over the same plan."""
    scene = random_scene(seed, h=72, w=96, back_extends=back_extends)
    exp = exposure(device, scene, f"render.max_samples={max_samples}")
    packed = pack_layers(scene)
    plan = plan_exact(packed, scene, max_samples=max_samples)
    ref, n = integrate_exact(packed, scene, max_samples=max_samples, shortcuts=False)
    assert exp.samples == n and (max_samples == 256 or n == max_samples)
    blur = on_host(exp.blur)
    diff = np.abs(blur - ref)
    assert ref.max() > 1.0
    if device == "cpu":
        # objects' pixels through the same gather, in runs; the background elsewhere as shifted tiles
        assert diff[plan.covered].max() <= runs_bound(scene, ref.max())
        assert diff[~plan.covered].max(initial=0.0) <= tiles_bound(scene.layers[0].rgb)
    else:
        assert diff.max() <= gpu_slack(device, ref.max())


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("extend", [False, True])
def test_a_backends_translation_blur_is_opencvs_convolution(device, extend):
    img = photo()
    scene = Scene([opaque(img, curved_path(), extend=extend)])
    exp = exposure(device, scene)
    ref, r = filter2d_reference(img, scene.layers[0].motion, exp.samples,
                                cv2.BORDER_REPLICATE if extend else cv2.BORDER_CONSTANT)
    inner = (slice(r, -r), slice(r, -r))
    assert exp.samples > 10
    # float32 precision, not just close (on a GPU, plus its fused multiply-adds)
    assert np.abs(on_host(exp.blur)[inner] - ref[inner]).max() < 1e-5 + gpu_slack(device, ref.max())


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("extend,mode", [(False, "constant"), (True, "nearest")])
def test_a_backends_rotation_blur_matches_a_supersampled_rotation(device, extend, mode):
    h = w = 81
    img = photo(h, w)
    angle, c = np.radians(12.0), (w - 1) / 2.0
    exp = exposure(device, Scene([opaque(img, rotation_about(c, angle, 33), extend=extend)]))
    ref = supersampled_rotation(img, c, angle, mode)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx - c) ** 2 + (yy - c) ** 2 < (c - 4) ** 2 if not extend else np.ones((h, w), bool)
    assert np.abs(on_host(exp.blur) - ref)[inside].max() < 1e-2 * ref.max()


@pytest.mark.parametrize("device", BACKENDS)
def test_a_backends_blur_map_is_the_analytic_displacement(device):
    """One layer under a rotating, zooming, perspective camera path: each pixel's entry is the displacement from
    the start to the end of the exposure of the point it shows at the reference time, by the homographies."""
    h, w, t_ref = 60, 80, 0.3
    H = []
    for t in np.linspace(0.0, 1.0, 9):
        a, s = 0.08 * (t - 0.5), 1.0 + 0.04 * t
        H.append(np.array([[s * np.cos(a), -s * np.sin(a), 8.0 * t], [s * np.sin(a), s * np.cos(a), -5.0 * t],
                           [2e-4 * t, -1e-4 * t, 1.0]]))
    scene = Scene([opaque(photo(h, w), Motion.from_homographies(np.array(H)), extend=True)])
    exp = exposure(device, scene, f"render.reference_time={t_ref}")
    got = on_host(exp.blur_map).astype(np.float64)
    motion = scene.layers[0].motion
    at_ref = np.linalg.inv(motion.at(t_ref)[0])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    p = np.stack([xx, yy, np.ones_like(xx)], axis=-1) @ at_ref.T
    ends = []
    for t in (0.0, 1.0):
        q = p @ motion.at(t)[0].T
        ends.append(q[..., :2] / q[..., 2:])
    d = ends[1] - ends[0]
    magnitude = np.hypot(d[..., 0], d[..., 1])
    assert magnitude.min() > 1.0 and magnitude.max() > 2 * magnitude.min()
    np.testing.assert_allclose(got[..., 2], magnitude, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got[..., :2], d / magnitude[..., None], rtol=0, atol=1e-4)
    stats = backend_for(device).blur_stats(exp.blur_map)
    assert stats["mean"] == pytest.approx(magnitude.mean(), abs=1e-4)
    assert stats["p95"] == pytest.approx(np.percentile(magnitude, 95), abs=1e-4)
    assert stats["max"] == pytest.approx(magnitude.max(), abs=1e-4)
    kept = backend_for(device).to_host(exp.blur_map, True)
    assert isinstance(kept, np.ndarray) and kept.shape == (h, w, 3)
    np.testing.assert_allclose(kept[..., 2].astype(np.float64), magnitude, rtol=1e-3)  # float16 on the GPU


@pytest.mark.parametrize("device", BACKENDS)
def test_a_backends_sharp_image_is_the_latent_frame_at_the_reference_time(device):
    scene = random_scene(3, h=40, w=56)
    for t in (0.0, 0.3, 1.0):
        exp = exposure(device, scene, f"render.reference_time={t}")
        np.testing.assert_array_equal(on_host(exp.sharp), latent_frames(scene, [t])[0])


@pytest.mark.parametrize("device", BACKENDS)
def test_a_batch_equals_its_scenes_one_by_one_and_a_static_scene_is_its_sharp_image(device):
    scenes = [random_scene(s, h=40, w=56) for s in (0, 1, 2)]
    static = random_scene(3, h=40, w=56)
    for layer in static.layers:
        layer.motion = Motion.identity()
    backend = backend_for(device)
    batch = backend.render_batch(scenes + [static], render_recipe())
    for s, b in zip(scenes, batch):
        (one,) = backend.render_batch([s], render_recipe())
        assert one.samples == b.samples > 1
        for name in ("blur", "sharp", "blur_map"):
            np.testing.assert_array_equal(on_host(getattr(one, name)), on_host(getattr(b, name)), err_msg=name)
    assert batch[-1].samples == 1
    np.testing.assert_array_equal(on_host(batch[-1].blur), on_host(batch[-1].sharp))
    assert not np.any(on_host(batch[-1].blur_map))


# --------------------------------------------------------------------------------------------------------------
# events


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("seed,cpos,cneg,refractory_s,unit", [(0, 0.2, 0.2, 0.0, "us"), (1, 0.15, 0.31, 0.0, "ns"),
                                                               (2, 0.1, 0.1, 5e-4, "us")])
def test_a_backends_events_are_the_plain_per_pixel_esim(device, seed, cpos, cneg, refractory_s, unit):
    """8-bit-like frames with large swings and a ramp: the same events as the plain per-pixel reference, in the
    simulator's order (by time, ties by interval, row, column) that events.simulate writes."""
    frames, t_s = random_frames(seed, n=16, h=24, w=32)
    kw = dict(threshold_pos=cpos, threshold_neg=cneg, refractory_s=refractory_s, time_unit=unit)
    got, _ = backend_for(device).simulate(frames, t_s, **kw)
    ref = reference_events(frames, t_s, cpos, cneg, refractory_s, scale=1e6 if unit == "us" else 1e9)
    assert len(ref) > 1000
    np.testing.assert_array_equal(by_tyxp(got), by_tyxp(ref))
    np.testing.assert_array_equal(got, simulate(frames, t_s, **kw)[0])  # the order (a GPU's parity)


@pytest.mark.parametrize("device", BACKENDS)
def test_a_backends_event_stream_equals_one_cpu_simulation(device):
    """simulate over a stream in three chunks, the state carried, against events.simulate over all frames in one
    call: the same events in the same order (on a GPU too: csrc/README.md, the simulator's parity)."""
    rng = np.random.default_rng(3)
    h, w, n = 24, 40, 30
    yy, xx = np.mgrid[:h, :w]
    frames = np.stack([0.5 + 0.4 * np.sin((xx - 1.3 * k) / 3.0 + yy / 7.0) for k in range(n)]).astype(np.float32)
    frames *= rng.uniform(0.9, 1.1, (1, h, w)).astype(np.float32)
    t_s = np.arange(n) / 200.0
    want, _ = simulate(frames, t_s)
    backend, state, parts = backend_for(device), None, []
    for a, b in ((0, 7), (7, 19), (19, n)):
        ev, state = backend.simulate(frames[a:b], t_s[a:b], state=state)
        parts.append(ev)
    got = np.concatenate(parts)
    assert len(want) > 1000
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("scale", [1, 2])
def test_a_backends_scene_events_are_the_esim_of_the_scenes_latent_frames(device, scale):
    """A sample's events: the latent frames at n evenly spaced times (equal to the sharp image at each), their
    luminance at 1/scale the size, through the plain per-pixel ESIM; and the meta that describes them."""
    scene = random_scene(4, h=40, w=56)
    cfg = load_recipe("default", ["events.samples=12", f"events.scale={scale}", "events.exposure_s=0.02"]).events
    events, meta = backend_for(device).scene_events(scene, cfg, np.random.default_rng(0))
    u = np.linspace(0.0, 1.0, 12)
    frames = downscale(to_gray(np.stack([render(scene, reference_time=t).sharp for t in u])), scale)
    ref = reference_events(frames, u * cfg.exposure_s, cfg.threshold_pos, cfg.threshold_neg, cfg.refractory_s)
    assert len(ref) > 500
    np.testing.assert_array_equal(by_tyxp(events), by_tyxp(ref))
    assert np.all(np.diff(events["t"].astype(np.int64)) >= 0)
    assert meta == {"count": len(ref), "width": 56 // scale, "height": 40 // scale, "scale": scale,
                    "exposure_us": [0, 20000], "end_us": 20000, "latent_exposure": 12, "latent_gap": 0,
                    "on": int(np.count_nonzero(ref["p"] > 0))}


# --------------------------------------------------------------------------------------------------------------
# the camera


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("response,gain,jpeg", [(Response("srgb"), 1.3, None), (Response("gamma", 2.2), 0.8, None),
                                                (Response("srgb"), 1.0, 90)])
def test_a_backends_camera_codes_are_the_quantized_response(device, response, gain, jpeg):
    """Without noise, the 8-bit codes of gain * radiance through the float response curve (clipped, rounded); off
    by one only for values within float rounding of a code threshold. JPEG, when asked, of those codes."""
    exp = exposure(device, random_scene(6, h=48, w=64))
    params = CameraParams(gain=gain, response=response, shot=0.0, read=0.0, jpeg_quality=jpeg)
    blur_u8, sharp_u8 = backend_for(device).apply_camera(exp.blur, exp.sharp, params, np.random.default_rng(5))
    for got, linear in ((sharp_u8, on_host(exp.sharp)), (blur_u8, on_host(exp.blur))):
        ref = quantize(response.to_encoded(linear * np.float32(gain)))
        if got is blur_u8 and jpeg is not None:
            ref = jpeg_roundtrip(ref, jpeg)
        assert got.dtype == np.uint8 and got.shape == ref.shape
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * diff.size + 1
    assert np.count_nonzero(sharp_u8 == 255) > 0 and np.count_nonzero(sharp_u8 == 0) < sharp_u8.size


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("x,shot,read", [(0.31, 1e-3, 0.0), (0.05, 1e-4, 4e-3)])
def test_a_backends_camera_noise_has_the_models_mean_and_variance(device, x, shot, read):
    """A flat exposure of radiance x through a linear response: the codes / 255 have mean x and variance
    shot * x + read^2, plus a code's rounding (1 / 12 of a code squared). And the same bytes as the CPU path (the
    counter-based stream keyed by one draw from the sample's generator, csrc/README.md)."""
    h, w = 256, 256
    rgb = np.full((h, w, 3), x, np.float32)
    scene = Scene([Layer(rgb, np.ones((h, w), np.float32), Motion.identity(), extend=True)])
    exp = exposure(device, scene)
    params = CameraParams(gain=1.0, response=Response("gamma", 1.0), shot=shot, read=read, jpeg_quality=None)
    blur_u8, sharp_u8 = backend_for(device).apply_camera(exp.blur, exp.sharp, params, np.random.default_rng(11))
    y = blur_u8.astype(np.float64) / 255.0
    n, var = y.size, shot * x + read ** 2
    assert abs(y.mean() - x) < 5 * np.sqrt(var / n)
    assert y.var() == pytest.approx(var + 1 / (12 * 255.0 ** 2), rel=5 * np.sqrt(2.0 / n) + 0.01)
    assert np.all(sharp_u8 == quantize(params.response.to_encoded(np.float32(x))))
    cpu_b, _ = apply_camera(on_host(exp.blur), on_host(exp.sharp), params, np.random.default_rng(11))
    diff = np.abs(blur_u8.astype(int) - cpu_b.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * diff.size + 1


# --------------------------------------------------------------------------------------------------------------
# a generated sample through a backend


@pytest.mark.parametrize("device", BACKENDS)
def test_a_backends_samples_equal_the_cpu_samples(device):
    """make_samples through a backend against the CPU backend: the same bytes on the CPU; on a GPU within the
    camera's tolerance (csrc/README.md: a code at most, on few pixels) and the same blur statistics to 1e-4 px."""
    recipe = load_recipe("default", ["size=[96, 64]", "output.blur_map=true"])
    source = open_source("builtin", recipe.size)
    ref = generate.make_samples(recipe, source, 7, [0, 1, 2], device="cpu")
    got = generate.make_samples(recipe, source, 7, [0, 1, 2], device=device)
    for a, b in zip(ref, got):
        assert a.meta["scene"] == b.meta["scene"]
        for key in ("mean", "p95", "max"):
            assert b.meta["blur_px"][key] == pytest.approx(a.meta["blur_px"][key], abs=1e-4)
        for x, y in ((a.blur, b.blur), (a.sharp, b.sharp)):
            diff = np.abs(x.astype(np.int16) - y.astype(np.int16))
            if device == "cpu":
                assert diff.max() == 0
            else:
                assert diff.max() <= 2 and np.count_nonzero(diff) <= 0.1 * diff.size
        assert b.blur_map is not None and b.blur_map.shape == a.blur_map.shape
