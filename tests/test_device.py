"""--device on generate, events and video, and the Ray runner's GPU workers, on a machine without a GPU.

- Without CUDA, --device cuda fails before any work with the reason (exit code 2, nothing written); --device auto
  runs on the CPU and says so in the manifest; a render method without a CUDA kernel is refused.
- The GPU-worker path for real: a Ray cluster on loopback that declares 2 GPUs, shards given to actors that each
  hold the fractional GPU asked for, with the kernels switched to the CPU ones (run_generate's `kernels`): their
  samples are the bytes of a plain in-process CPU run with the same seed.
- The device versions of the event stages in blursynth.cuda (to_gray, downscale, blur statistics) run on torch CPU
  tensors here and are bit-compared with the numpy stages they replace.
The same checks on a GPU are in tests/test_cuda_gpu.py and the CUDA cases of tests/test_backend.py.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data

from blursynth import cuda as bcuda
from blursynth.commands import main
from blursynth.events.frames import downscale, to_gray
from blursynth.recipe import load_recipe
from blursynth.runner import RunError, default_gpu_workers, run_generate
from blursynth.store.manifest import Manifest
from blursynth.store.shard import ShardReader

SIZE = (48, 32)
no_cuda = pytest.mark.skipif(bcuda.available(), reason="this machine can run CUDA: the no-CUDA errors do not apply")


def small_recipe(**sets):
    extra = [f"{k}={v}" for k, v in sets.items()]
    return load_recipe("default", [f"size=[{SIZE[0]}, {SIZE[1]}]", *extra])


def records(out) -> dict:
    """Every stored value of a run, keyed by (sample key, field)."""
    m = Manifest.load(out)
    got = {}
    for s in m.shards:
        reader = ShardReader(out / s.name)
        try:
            for i in s.indices:
                for field in ("sharp", "blur", "meta", "blur_map", "events"):
                    try:
                        got[(i, field)] = bytes(reader.get(i, field))
                    except KeyError:
                        pass
        finally:
            reader.close()
    return got


# --------------------------------------------------------------------------------------------------------------
# the flag


@no_cuda
@pytest.mark.parametrize("command", ["generate", "events", "video"])
def test_cuda_without_a_gpu_fails_fast_and_writes_nothing(command, tmp_path):
    out = tmp_path / "out"
    args = {"generate": ["generate", "--num", "2", "--size", "48x32", "--workers", "0"],
            "events": ["events", str(tmp_path)],
            "video": ["video", str(tmp_path / "missing.mp4")]}[command]
    r = CliRunner().invoke(main, args + ["--out", str(out), "--device", "cuda"])
    assert r.exit_code == 2, r.output
    assert bcuda.unavailable_reason() in r.output and "--device cuda" in r.output
    assert not out.exists()


def test_unknown_device_and_method_without_a_cuda_kernel_are_usage_errors(tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(out), "--device", "gpu"])
    assert r.exit_code == 2 and "unknown device 'gpu'" in r.output
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(out), "--recipe", "sbdd", "--device", "cuda"])
    assert r.exit_code == 2, r.output
    assert "render.method='sbdd' has no CUDA kernel" in r.output
    assert not out.exists()
    with pytest.raises(ValueError, match="render.method='layered' has no CUDA kernel"):
        bcuda.resolve_device("cuda", "layered")


def test_resolve_device():
    assert bcuda.resolve_device("cpu") == "cpu"
    assert bcuda.resolve_device("auto", "sbdd") == "cpu"  # no CUDA kernel for sbdd: auto never picks cuda
    assert bcuda.resolve_device("auto") == ("cuda" if bcuda.available() else "cpu")
    for bad in ("gpu", "cuda:", "cuda:x", "CUDA0"):
        with pytest.raises(ValueError, match="unknown device"):
            bcuda.resolve_device(bad)
    if not bcuda.available():
        with pytest.raises(RuntimeError, match=bcuda.unavailable_reason()):
            bcuda.resolve_device("cuda:0")
    assert bcuda.device_kind("cuda:1") == "cuda" and bcuda.device_kind("cpu") == "cpu"
    assert default_gpu_workers(16, 1) == 8 and default_gpu_workers(16, 4) == 4 and default_gpu_workers(1, 2) == 1


@no_cuda
def test_auto_falls_back_to_cpu_and_records_it(tmp_path):
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--size", "48x32", "--workers", "0", "--seed", "3",
                                  "--out", str(tmp_path / "auto"), "--device", "auto", "--no-progress"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--size", "48x32", "--workers", "0", "--seed", "3",
                                  "--out", str(tmp_path / "cpu"), "--no-progress"])
    assert r.exit_code == 0, r.output
    auto, cpu = Manifest.load(tmp_path / "auto"), Manifest.load(tmp_path / "cpu")
    assert auto.extra["device"] == "cpu" and cpu.extra["device"] == "cpu"
    assert [s.checksum for s in auto.shards] == [s.checksum for s in cpu.shards]


def test_device_kind_is_part_of_the_run_identity(tmp_path):
    """A cpu run resumed on a CUDA device (the bytes would differ within the stated tolerances) is refused before
    anything is written; the `kernels` switch stands in for a GPU so the check runs here."""
    recipe = small_recipe()
    out = tmp_path / "run"
    run_generate(recipe, "builtin", 2, out, seed=1, shard_size=1, progress=False)
    before = sorted(p.name for p in out.iterdir())
    manifest = (out / "manifest.json").read_bytes()
    with pytest.raises(RunError, match=r"differs in: device"):
        run_generate(recipe, "builtin", 2, out, seed=1, shard_size=1, progress=False, resume=True, device="cuda",
                     kernels="cpu")
    assert sorted(p.name for p in out.iterdir()) == before and (out / "manifest.json").read_bytes() == manifest
    with pytest.raises(RunError, match="Ray workers use the GPU Ray gives"):
        run_generate(recipe, "builtin", 2, tmp_path / "other", device="cuda:1", kernels="cpu", workers=2)
    assert not (tmp_path / "other").exists()


# --------------------------------------------------------------------------------------------------------------
# Ray GPU workers


@pytest.fixture
def gpu_cluster():
    """One Ray node on loopback (conftest) declaring 2 CPUs and 2 GPUs: Ray schedules by these numbers, so the
    fractional-GPU actors are placed as on a GPU machine."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 2, "include_dashboard": False})
    try:
        cluster.wait_for_nodes()
        yield cluster
    finally:
        import ray

        ray.shutdown()  # the runner leaves a joined cluster connected
        cluster.shutdown()


def test_gpu_workers_hold_their_gpu_share_and_write_the_cpu_bytes(gpu_cluster, tmp_path):
    recipe = small_recipe(**{"output.blur_map": "true", "events.enabled": "true", "events.samples": "4"})
    reference = tmp_path / "cpu"
    run_generate(recipe, "builtin", 4, reference, seed=11, shard_size=2, progress=False)
    out = tmp_path / "gpu"
    summary = run_generate(recipe, "builtin", 4, out, seed=11, shard_size=2, progress=False,
                           address=gpu_cluster.address, device="cuda", gpu_workers=4, kernels="cpu")
    assert summary.written == 4
    m = Manifest.load(out)
    # 2 GPUs x 4 workers each would be 8 actors; the 2 declared CPUs (one per worker) and the 2 shards allow 2
    assert m.extra["gpu_workers"] == {"count": 2, "per_gpu": 4, "gpu_share": 0.25}
    assert m.extra["device"] == "cuda"
    assert sorted(m.extra["shard_workers"]) == [s.name for s in m.shards]
    for worker in m.extra["shard_workers"].values():
        assert worker["resources"]["GPU"] == pytest.approx(0.25)
        assert worker["resources"]["CPU"] == pytest.approx(1.0)
        assert len(worker["gpu_ids"]) == 1 and worker["gpu_ids"][0] in ("0", "1")
    got, want = records(out), records(reference)
    assert {k[1] for k in want} == {"sharp", "blur", "meta", "blur_map", "events"}
    assert got == want
    # the same run, by shard checksums, as the manifest records them
    assert [s.checksum for s in m.shards] == [s.checksum for s in Manifest.load(reference).shards]


# --------------------------------------------------------------------------------------------------------------
# device stages run on the host


def photo_frames(n=5, h=37, w=50, seed=0) -> np.ndarray:
    """float32 (n, h, w, 3) linear frames: a real photo at several gains plus random values of every magnitude."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    frames = np.stack([img ** 2.2 * g for g in np.linspace(0.05, 3.0, n)]).astype(np.float32)
    frames[0] = (rng.random((h, w, 3)) * 10.0 ** rng.uniform(-6, 1, (h, w, 3))).astype(np.float32)
    return frames


def test_device_to_gray_and_downscale_are_bit_identical_to_numpy():
    frames = photo_frames()
    gray = bcuda.to_gray(torch.from_numpy(frames))
    np.testing.assert_array_equal(gray.numpy(), to_gray(frames))
    for scale in (1, 2, 3, 4):
        np.testing.assert_array_equal(bcuda.downscale(gray, scale).numpy(), downscale(to_gray(frames), scale))
    # a reference written out here: Rec. 709 weights in float32, one rounding per product and per sum
    f = frames.astype(np.float32)
    y = (np.float32(0.2126) * f[..., 0] + np.float32(0.7152) * f[..., 1]).astype(np.float32)
    y = (y + np.float32(0.0722) * f[..., 2]).astype(np.float32)
    np.testing.assert_array_equal(gray.numpy(), y)
    with pytest.raises(ValueError, match="smaller than the event scale"):
        bcuda.downscale(gray, 64)


def test_device_blur_stats_match_numpy():
    rng = np.random.default_rng(4)
    blur_map = rng.random((31, 45, 3)).astype(np.float32) * 20
    want = bcuda.blur_stats(blur_map)
    assert want["p95"] == pytest.approx(np.sort(blur_map[..., 2].ravel())[int(0.95 * (31 * 45 - 1))], rel=1e-2)
    got = bcuda.blur_stats(torch.from_numpy(blur_map))
    assert got["max"] == want["max"]
    assert got["mean"] == pytest.approx(want["mean"], rel=1e-6)
    assert got["p95"] == pytest.approx(want["p95"], rel=1e-6)


def test_events_summary_records_the_device(tmp_path):
    frames = photo_frames(n=4, h=20, w=24)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(frames[1:]):
        srgb = np.clip(np.clip(f, 0, 1) ** (1 / 2.2) * 255 + 0.5, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{k:03d}.png"), srgb[..., ::-1])
    (folder / "timestamps.txt").write_text("0.0\n0.01\n0.02\n")
    r = CliRunner().invoke(main, ["events", str(folder), "--out", str(tmp_path / "ev"), "--device", "auto",
                                  "--no-progress", "--format", "npz"])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "ev" / "events.json").read_text())
    assert summary["device"] == ("cuda" if bcuda.available() else "cpu")
