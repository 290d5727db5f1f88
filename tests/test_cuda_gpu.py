"""The CUDA kernels against the numba kernels on a GPU (skipped without one): random scenes with rotation,
occlusion and saturation; random event inputs with identical streams; the camera's 8-bit output.

Tolerances (csrc/README.md): blur within 1e-5 of the largest radiance (fused multiply-adds on the device, early
exit); sharp image and blur map within 1e-5 relative; events identical in count and order; camera codes equal
except where a value lies within float rounding of a code threshold (at most 1e-4 of the values, off by one).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: GPU parity tests run only on a machine with one", allow_module_level=True)

from blursynth import cuda as bcuda  # noqa: E402
from blursynth.camera import CameraParams, Response, apply_camera  # noqa: E402
from blursynth.events import simulate  # noqa: E402
from blursynth.render import latent_frames, render  # noqa: E402

from test_cuda_host import random_frames, random_scene  # noqa: E402

TOL_BLUR = 1e-5


@pytest.fixture(scope="module", autouse=True)
def ext():
    reason = bcuda.unavailable_reason()
    if reason is not None:
        pytest.fail(f"a CUDA device is present but the extension does not load: {reason}")


@pytest.mark.parametrize("seed,back_extends,samples", [(0, True, None), (1, True, 9), (2, False, None),
                                                       (5, True, None)])
def test_render_matches_numba(seed, back_extends, samples):
    scene = random_scene(seed, h=72, w=96, back_extends=back_extends)
    ref = render(scene, samples=samples)
    ours = bcuda.render(scene, samples=samples)
    assert ours.samples == ref.samples
    blur = ours.blur.cpu().numpy()
    assert ref.blur.max() > 1.0
    # the CPU path convolves a translating background where no object reaches; this one gathers: both are the
    # same integral, equal to float rounding (the background here rotates, so both gather)
    assert np.abs(blur - ref.blur).max() <= TOL_BLUR * ref.blur.max()
    np.testing.assert_allclose(ours.sharp.cpu().numpy(), ref.sharp, rtol=1e-5, atol=1e-5 * ref.sharp.max())
    np.testing.assert_allclose(ours.blur_map.cpu().numpy(), ref.blur_map, rtol=1e-5, atol=1e-5)


def test_batch_equals_one_by_one_and_static_scenes():
    scenes = [random_scene(s, h=40, w=56) for s in (0, 1, 2)]
    static = random_scene(3, h=40, w=56)
    for layer in static.layers:
        layer.motion = type(layer.motion).identity()
    batch = bcuda.render_batch(scenes + [static])
    for s, b in zip(scenes, batch):
        one = bcuda.render(s)
        assert torch.equal(one.blur, b.blur) and torch.equal(one.blur_map, b.blur_map)
    assert torch.equal(batch[-1].blur, batch[-1].sharp) and batch[-1].samples == 1


def test_latent_frames_match_numba():
    scene = random_scene(4, h=40, w=56)
    times = np.array([0.0, 0.3, 0.5, 1.0])
    ours = bcuda.latent_frames(scene, times).cpu().numpy()
    np.testing.assert_allclose(ours, latent_frames(scene, times), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed,cpos,cneg,refractory_s,unit", [(0, 0.2, 0.2, 0.0, "us"), (1, 0.15, 0.31, 0.0, "ns"),
                                                               (2, 0.1, 0.1, 5e-4, "us")])
def test_events_identical_to_numba(seed, cpos, cneg, refractory_s, unit):
    frames, t_s = random_frames(seed, n=16, h=60, w=80)
    kw = dict(threshold_pos=cpos, threshold_neg=cneg, refractory_s=refractory_s, time_unit=unit)
    ref, ref_state = simulate(frames, t_s, **kw)
    ours, state = bcuda.simulate_cuda(torch.from_numpy(frames).cuda(), t_s, **kw)
    assert len(ref) > 1000 and len(ours) == len(ref)
    for name in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(ours[name], ref[name], err_msg=name)
    cpu = state.cpu()
    np.testing.assert_array_equal(cpu.ref_log, ref_state.ref_log)
    np.testing.assert_array_equal(cpu.last_frame, ref_state.last_frame)


def test_event_chunks_carry_state_on_the_device():
    frames, t_s = random_frames(9, n=20, h=30, w=40)
    ref, _ = simulate(frames, t_s, threshold_pos=0.12, threshold_neg=0.12, refractory_s=1e-3)
    dev = torch.from_numpy(frames).cuda()
    parts, state = [], None
    for a, b in ((0, 5), (5, 6), (6, 20)):
        ev, state = bcuda.simulate_cuda(dev[a:b], t_s[a:b], threshold_pos=0.12, threshold_neg=0.12,
                                        refractory_s=1e-3, state=state)
        parts.append(ev)
    np.testing.assert_array_equal(np.concatenate(parts), ref)


@pytest.mark.parametrize("shot,read,jpeg", [(0.0, 0.0, None), (2e-3, 2e-3, None), (1e-4, 0.0, 90)])
def test_camera_on_the_device_writes_the_cpu_bytes(shot, read, jpeg):
    scene = random_scene(6, h=48, w=64)
    ours = bcuda.render(scene)
    params = CameraParams(gain=1.3, response=Response("srgb"), shot=shot, read=read, jpeg_quality=jpeg)
    blur = ours.blur.cpu().numpy()
    sharp = ours.sharp.cpu().numpy()
    ref_b, ref_s = apply_camera(blur, sharp, params, np.random.default_rng(5))
    got_b, got_s = bcuda.apply_camera(ours.blur, ours.sharp, params, np.random.default_rng(5))
    np.testing.assert_array_equal(got_s, ref_s)
    diff = np.abs(got_b.astype(int) - ref_b.astype(int))
    if jpeg is None:
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * diff.size + 1
    else:
        assert np.mean(diff) < 0.01
