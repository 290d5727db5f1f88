"""The CUDA kernels against the numba kernels on a GPU (skipped without one): random scenes with rotation,
occlusion and saturation; random event inputs with identical streams; the camera's 8-bit output; and end to end,
`generate`, `events` and the Ray GPU workers with --device cuda against --device cpu.

Tolerances (blursynth/csrc/README.md): blur within 2e-5 of the largest radiance (fused multiply-adds on the device, early
exit); sharp and latent images equal, blur map within 1e-6 px; events identical in count and order; camera codes
equal except where a value lies within float rounding of a code threshold (at most 1e-4 of the values, off by one).
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

from blursynth.render.pack import pack_layers  # noqa: E402

from test_cuda_host import numba_render, random_frames, random_scene  # noqa: E402

TOL_BLUR = 2e-5  # the host code's 1e-5 (test_cuda_host.TOL_RENDER) plus the device's fused multiply-adds


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
    # every pixel gathered, as here: numba's kernel over the same plan (render() takes a background no object
    # reaches by a cheaper route, a convolution or shifted tiles; see test_generate_on_cuda_matches_cpu)
    packed = pack_layers(scene)
    gathered = numba_render(packed, bcuda.plan_exact(packed, scene, samples), *scene.size)
    assert gathered.max() > 1.0
    assert np.abs(blur - gathered).max() <= TOL_BLUR * gathered.max()
    np.testing.assert_array_equal(ours.sharp.cpu().numpy(), ref.sharp)
    np.testing.assert_allclose(ours.blur_map.cpu().numpy(), ref.blur_map, rtol=0, atol=1e-6)


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
    # every product that feeds a sum is rounded on its own on the device (BS_DMUL), as numba rounds it
    np.testing.assert_array_equal(ours, latent_frames(scene, times))


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


# --------------------------------------------------------------------------------------------------------------
# end to end: the commands with --device cuda against --device cpu


def e2e_recipe(noise: bool):
    from blursynth.recipe import load_recipe

    return load_recipe("default", ["size=[128, 96]", f"camera.noise_prob={1.0 if noise else 0.0}",
                                   "output.blur_map=true", "events.enabled=true", "events.samples=12",
                                   "events.gap_s=0.002"])


def run_records(out) -> dict:
    from blursynth.store.manifest import Manifest
    from blursynth.store.shard import ShardReader

    got = {}
    for s in Manifest.load(out).shards:
        reader = ShardReader(out / s.name)
        for i in s.indices:
            got[i] = {f: bytes(reader.get(i, f)) for f in ("sharp", "blur", "meta", "blur_map", "events")}
        reader.close()
    return got


def assert_same_run_within_tolerance(cuda_out, cpu_out, noise: bool):
    from blursynth.events.formats import decode_events
    from blursynth.store.codec import decode_array, decode_image, decode_meta

    from blursynth.store.manifest import Manifest

    got, want = run_records(cuda_out), run_records(cpu_out)
    codec = Manifest.load(cpu_out).codec
    assert sorted(got) == sorted(want)
    changed = total = 0
    for i in want:
        g, w = got[i], want[i]
        assert decode_image(g["sharp"], codec).tobytes() == decode_image(w["sharp"], codec).tobytes(), i
        diff = np.abs(decode_image(g["blur"], codec).astype(int) - decode_image(w["blur"], codec).astype(int))
        gm, wm = decode_meta(g["meta"]), decode_meta(w["meta"])
        if wm["scene"]["camera"]["model"] == "rotational":
            # the CPU integrates a rotating background no object reaches as shifted tiles (within 0.05 px of
            # each pixel's source, render/exact.py SHIFT_TOL_PX), the GPU gathers every pixel: measured on the
            # host (gather vs tiles, this recipe) up to 0.6% of the largest radiance, 1 code on up to 5% of values
            assert noise or diff.max() <= 2, i
            assert np.count_nonzero(diff) <= 0.1 * diff.size, i
        else:
            if not noise:
                assert diff.max() <= 1, i  # linear blur within 2e-5 of the largest radiance: a code at most
            changed += np.count_nonzero(diff)
            total += diff.size
        for key in ("mean", "p95", "max"):
            assert gm["blur_px"][key] == pytest.approx(wm["blur_px"][key], rel=1e-5, abs=1e-5)
        gm.pop("blur_px"), wm.pop("blur_px")
        assert gm == wm
        bm_g, bm_w = decode_array(g["blur_map"]).astype(np.float32), decode_array(w["blur_map"]).astype(np.float32)
        # float16 storage of values within 1e-6 px: at most one float16 step apart
        assert np.all(np.abs(bm_g - bm_w) <= np.spacing(np.abs(bm_w).astype(np.float16)).astype(np.float32)), i
        ev_g, ev_w = decode_events(g["events"]), decode_events(w["events"])
        assert len(ev_w) > 100 and len(ev_g) == len(ev_w), i
        np.testing.assert_array_equal(ev_g, ev_w)  # latent frames identical: the same events, in the same order
    # camera codes: off where a value lies within float rounding of a code threshold (and, with noise, where a
    # Poisson draw flips on such a value)
    assert total > 0 and changed <= 1e-3 * total, (changed, total)


@pytest.mark.parametrize("noise", [False, True])
def test_generate_on_cuda_matches_cpu(noise, tmp_path):
    from blursynth.runner import run_generate
    from blursynth.store.manifest import Manifest

    recipe = e2e_recipe(noise)
    run_generate(recipe, "builtin", 6, tmp_path / "cpu", seed=4, shard_size=3, progress=False)
    run_generate(recipe, "builtin", 6, tmp_path / "cuda", seed=4, shard_size=3, progress=False, device="cuda")
    assert Manifest.load(tmp_path / "cuda").extra["device"] == "cuda"
    assert_same_run_within_tolerance(tmp_path / "cuda", tmp_path / "cpu", noise)


def test_gpu_workers_on_ray_write_the_in_process_cuda_bytes(tmp_path):
    from blursynth.runner import run_generate
    from blursynth.store.manifest import Manifest

    recipe = e2e_recipe(False)
    run_generate(recipe, "builtin", 4, tmp_path / "one", seed=8, shard_size=2, progress=False, device="cuda")
    run_generate(recipe, "builtin", 4, tmp_path / "ray", seed=8, shard_size=2, progress=False, device="cuda",
                 workers=2, gpu_workers=2)
    m = Manifest.load(tmp_path / "ray")
    assert m.extra["gpu_workers"]["gpu_share"] == 0.5
    for worker in m.extra["shard_workers"].values():
        assert worker["resources"]["GPU"] == pytest.approx(0.5) and len(worker["gpu_ids"]) == 1
    assert run_records(tmp_path / "ray") == run_records(tmp_path / "one")


def test_events_command_on_cuda_writes_the_cpu_events(tmp_path):
    from click.testing import CliRunner

    from blursynth.commands import main
    from blursynth.runner import run_generate

    run = tmp_path / "run"
    run_generate(e2e_recipe(False), "builtin", 2, run, seed=6, shard_size=2, progress=False)
    for device in ("cpu", "cuda"):
        r = CliRunner().invoke(main, ["events", str(run), "--out", str(tmp_path / device), "--format", "npz",
                                      "--device", device, "--no-progress", "--random-reference"])
        assert r.exit_code == 0, r.output
    files = sorted(p.name for p in (tmp_path / "cpu").glob("*.npz"))
    assert len(files) == 2
    for name in files:
        a, b = np.load(tmp_path / "cpu" / name), np.load(tmp_path / "cuda" / name)
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")


def test_video_events_on_cuda_equal_cpu(tmp_path):
    """video --events --device cuda: the clip's event simulation on the GPU gives the CPU's event bytes (the blur
    and sharp frames are made on the CPU either way). Needs video/clip.py's make_clip to take a device."""
    from click.testing import CliRunner
    from skimage import data

    from _util import shard_bytes, write_video
    from blursynth.commands import main
    photo = data.astronaut()
    frames = [np.ascontiguousarray(photo[100:148, 100 + 2 * k:164 + 2 * k]) for k in range(10)]
    clip = write_video(tmp_path / "pan.avi", frames, fps=20.0)
    for device in ("cpu", "cuda"):
        r = CliRunner().invoke(main, ["video", str(clip), "--out", str(tmp_path / device), "--events", "--window", "2",
                                      "--latent", "4", "--no-noise", "--no-filters", "--workers", "0", "--device",
                                      device, "--no-progress"])
        assert r.exit_code == 0, r.output
    cpu, gpu = shard_bytes(tmp_path / "cpu"), shard_bytes(tmp_path / "cuda")
    assert sorted(cpu) == sorted(gpu) and any(k[2] == "events" for k in cpu)
    assert cpu == gpu
