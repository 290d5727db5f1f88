"""What only a GPU can run (skipped without one): the extension loads wherever torch sees a CUDA device, and the
commands end to end with --device cuda against --device cpu: `generate` (with and without camera noise), the Ray
GPU workers, `events` on a run, and `video --events`.

The kernels' parity (render, latent frames, events, camera) is in tests/test_backend.py, one suite over both
backends, each against independent references; its CUDA cases skip without a device. On a GPU machine run both:
`python -m pytest tests/test_cuda_gpu.py tests/test_backend.py` (benchmarks/gpu_check.sh does, with the build and
benchmarks/gpu.py).

Tolerances of the commands (blursynth/csrc/README.md): sharp bytes equal; blur codes at most 1 off (no noise) on
at most 1e-3 of the values, more where the CPU takes a rotating background by shifted tiles; meta equal but
blur_px (1e-5 relative); blur map within one float16 step; events identical.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: GPU parity tests run only on a machine with one", allow_module_level=True)

from blursynth import cuda as bcuda  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ext():
    reason = bcuda.unavailable_reason()
    if reason is not None:
        pytest.fail(f"a CUDA device is present but the extension does not load: {reason}")


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
    pytest.importorskip("ray", reason="Ray is not installed (its wheel does not fit a device call's carry)")
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
