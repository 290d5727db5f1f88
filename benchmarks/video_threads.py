"""Video pipeline structure on this machine: wall fps and CPU per output frame of the default pipeline at 1280x720
(latent 8, filters off; benchmarks/video.py's clip and `run_pipeline`) under several thread layouts, each run in a
fresh process, configurations interleaved round by round, best of --rounds by fps (the spread is recorded).

    python benchmarks/video_threads.py [--rounds 3] [--frames 40] [--quick] [--out results/video_threads.json]
        [--before PATH]   # also time the package found under PATH (e.g. an export of the previous commit)

Configurations (environment of the child process; "prefetch" is the recipe's flow.prefetch):
  numba2+prefetch   NUMBA_NUM_THREADS unset (2 here) and the flow prefetch thread: the default
  numba1+prefetch   NUMBA_NUM_THREADS=1 with the prefetch thread
  numba1            NUMBA_NUM_THREADS=1, no prefetch thread (one core's worth of work, for reference)
  numba2+prefetch+malloc / numba1+prefetch+malloc: the same with glibc's malloc keeping freed memory
                    (MALLOC_MMAP_THRESHOLD_=64 MiB, MALLOC_TRIM_THRESHOLD_=1 GiB): large arrays are then reused
                    instead of mapped and faulted in afresh each frame
  numba2+prefetch+passive: OMP_WAIT_POLICY=PASSIVE: numba's OpenMP workers sleep between kernels instead of
                    spinning
CPU is process_time of the child (all its threads); minor page faults from getrusage.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
BENCH = _HERE if (_HERE / "video.py").exists() else Path("/work/main/benchmarks")

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import video as V
import blursynth, numba
tmp = Path(sys.argv[3])
V.run_pipeline(V.make_clip_file(tmp / "warm.mp4", 4, (64, 48)), ["latent=2"], tmp)  # numba cache load / compile
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
r = V.run_pipeline(Path(sys.argv[2]), json.loads(sys.argv[4]), tmp)
r["minflt_per_frame"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / r["output_frames"]
r["numba_threads"] = numba.get_num_threads()
r["package"] = blursynth.__file__
print("RESULT " + json.dumps(r))
"""

MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def configs(before: str | None) -> dict:
    c = {"numba2+prefetch": ({}, []),
         "numba1+prefetch": ({"NUMBA_NUM_THREADS": "1"}, []),
         "numba1": ({"NUMBA_NUM_THREADS": "1"}, ["flow.prefetch=false"]),
         "numba2+prefetch+malloc": (MALLOC, []),
         "numba1+prefetch+malloc": ({"NUMBA_NUM_THREADS": "1", **MALLOC}, []),
         "numba2+prefetch+passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, [])}
    if before:
        c["before:numba2+prefetch"] = ({"PYTHONPATH": before}, [])
        c["before:numba1"] = ({"PYTHONPATH": before, "NUMBA_NUM_THREADS": "1"}, ["flow.prefetch=false"])
    return c


def run(clip: Path, tmp: Path, env_extra: dict, overrides: list[str]) -> dict:
    env = dict(os.environ)
    env.pop("NUMBA_NUM_THREADS", None)
    env.update(env_extra)
    default = ["latent=8", "filters.max_psnr_db=null", "filters.min_brightness=0", "filters.min_texture=0"]
    out = subprocess.run([sys.executable, "-c", CHILD, str(BENCH), str(clip), str(tmp),
                          json.dumps(default + overrides)], env=env, capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--before", default=None)
    ap.add_argument("--only", default=None, help="comma-separated configuration names")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "video_threads.json"))
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.frames = 1, 8
    sys.path.insert(0, str(BENCH))
    import video as V
    from common import machine_info

    tmp = Path(tempfile.mkdtemp(prefix="bench-video-threads-"))
    clip = V.make_clip_file(tmp / "bikes720.mp4", args.frames, V.SIZE)
    cfgs = configs(args.before)
    if args.only:
        cfgs = {k: v for k, v in cfgs.items() if k in args.only.split(",")}
    load_start = os.getloadavg()
    rounds: dict[str, list] = {k: [] for k in cfgs}
    for i in range(args.rounds):
        for name, (env, ov) in cfgs.items():
            r = run(clip, tmp, env, ov)
            rounds[name].append(r)
            print(f"round {i} {name}: {r['fps']:.2f} fps, {1e3 * r['cpu_s_per_frame']:.1f} CPU ms/frame, "
                  f"{r['minflt_per_frame']:.0f} faults/frame, threads {r['numba_threads']}", flush=True)
    runs = {}
    for name, rs in rounds.items():
        best = max(rs, key=lambda r: r["fps"])
        runs[name] = dict(best, fps_rounds=[r["fps"] for r in rs],
                          cpu_ms_per_frame_rounds=[1e3 * r["cpu_s_per_frame"] for r in rs],
                          best_cpu_ms_per_frame=min(1e3 * r["cpu_s_per_frame"] for r in rs),
                          fps_spread=(min(r["fps"] for r in rs), max(r["fps"] for r in rs)))
    base = runs.get("numba2+prefetch")
    ratios = {}
    if base:
        for name, r in runs.items():
            ratios[name] = {"fps_vs_default": r["fps"] / base["fps"],
                            "best_cpu_vs_default": r["best_cpu_ms_per_frame"] / base["best_cpu_ms_per_frame"]}
    for name, r in runs.items():
        print(f"{name}: best {r['fps']:.2f} fps (rounds {[round(x, 2) for x in r['fps_rounds']]}), CPU ms/frame "
              f"{[round(x, 1) for x in r['cpu_ms_per_frame_rounds']]}; stage CPU ms/frame",
              {k: round(v, 1) for k, v in r["cpu_ms_per_frame"].items()}, ratios.get(name))
    result = {"machine": machine_info(), "input": {"clip": "bikes.mp4 first frames at 1280x720 (benchmarks/video.py)",
              "frames": args.frames, "rounds": args.rounds, "quick": args.quick, "load_average_start": load_start,
              "load_average_end": os.getloadavg()}, "runs": runs, "ratios": ratios}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
