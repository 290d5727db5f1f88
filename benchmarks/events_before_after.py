"""`blursynth events VIDEO` before and after a change, as a user runs it: two checkouts (e.g. `git worktree add
/tmp/old REV`), `events bikes.mp4 --scale 4` in a fresh process with PYTHONPATH on each, alternating old / new
(the order flips every round) so that drift in the machine's speed falls on both. Per run: wall, user and system
CPU (RUSAGE_CHILDREN), CPU use (CPU / wall) and x real time (the clip plays in 10 s). Then, in a fresh process
per checkout, the flows' forward-backward check on bikes.mp4's first 5 frame pairs (min of 15 repeats, on 1
thread and on all), and in the new checkout the real frames' luminance both ways (gray_codes against
to_gray(np.take(lut, frame)), min of 50).

    python benchmarks/events_before_after.py --old /tmp/old --new . [--rounds 5] [--out PATH]

Writes benchmarks/results/events_before_after.json (runs, micro timings, medians, load averages, machine_info()).
A first untimed run per checkout fills numba's disk cache.

With `--input run`, the same for `blursynth events RUN --num N` on a run the new checkout generates first
(`generate --num N --workers 0`, the default recipe at 1280x720), with minor page faults per run and a hash of
every output file (the two checkouts must write the same bytes). The micro timing is then what a fresh page costs
here: a chunk of 16 latent frames at 720p (177 MB of float32) written 10 times into fresh memory and 10 times into
one buffer, system seconds per GB (RUSAGE_SELF). Writes results/events_run_before_after.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from commands import bikes  # noqa: E402
from common import machine_info  # noqa: E402

RESULTS = HERE / "results"

_CONSISTENCY = """
import json, sys, time, numba
from blursynth.video.decode import read_frames
from blursynth.video.flow import flow_pair
from blursynth.video.interpolate import consistency
from blursynth.video.blur import DISP_PERCENTILE
frames = [f for _, f in zip(range(6), read_frames(sys.argv[1]))]
flows = [flow_pair(frames[i], frames[i + 1], "fast", "dis", scale=1.0, full_size=False) for i in range(5)]
out = {}
for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
    numba.set_num_threads(threads)
    best = float("inf")
    for _ in range(15):
        t = time.perf_counter()
        for a, b in flows:
            consistency(a, b, (1.0, 1.0), DISP_PERCENTILE)
        best = min(best, (time.perf_counter() - t) / len(flows))
    out[f"consistency_ms_{threads}t"] = 1e3 * best
print(json.dumps(out))
"""

_GRAY = """
import json, sys, time
import numpy as np
from blursynth.camera import Response
from blursynth.events.frames import REC709_LUMA, to_gray
from blursynth.video.decode import read_frames
from blursynth.video.interpolate import linear_lut
from blursynth.video.latent import gray_codes
frame = next(iter(read_frames(sys.argv[1])))
lut = linear_lut(Response())
luma = tuple(np.float32(c) * lut for c in REC709_LUMA)
assert np.array_equal(gray_codes(frame, luma), to_gray(np.take(lut, frame)))
out = {}
ways = {"gray_codes_ms": lambda: gray_codes(frame, luma), "take_to_gray_ms": lambda: to_gray(np.take(lut, frame))}
for name, fn in ways.items():
    best = float("inf")
    for _ in range(50):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    out[name] = 1e3 * best
print(json.dumps(out))
"""


_FRESH_PAGES = """
import json, resource, time
import numpy as np
def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime, r.ru_minflt
shape, repeats = (16, 720, 1280, 3), 10
gb = repeats * np.prod(shape) * 4 / 1e9
out = {}
for way in ("fresh", "reused", "fresh", "reused"):
    buf = np.empty(shape, np.float32) if way == "reused" else None
    s0, f0 = usage()
    t = time.perf_counter()
    for _ in range(repeats):
        a = np.empty(shape, np.float32) if way == "fresh" else buf
        a.fill(1.0)
        del a
    wall = time.perf_counter() - t
    s1, f1 = usage()
    out.setdefault(way, []).append({"sys_s_per_gb": (s1 - s0) / gb, "wall_s_per_gb": wall / gb, "minflt": f1 - f0})
print(json.dumps(out))
"""


def _digest(folder: Path) -> dict:
    """sha256 of every file under `folder` but logs and JSON (which carry times)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix not in (".log", ".json")}


def _python(tree: str, args: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    """Run python with PYTHONPATH on `tree`; returns the process and its wall / user / sys seconds and minor
    page faults."""
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{args[:3]} on {tree} failed: {(p.stdout + p.stderr)[-2000:]}")
    return p, {"wall_s": wall, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
               "minflt": r1.ru_minflt - r0.ru_minflt}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="checkout before the change")
    ap.add_argument("--new", required=True, help="checkout after the change")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--input", choices=("video", "run"), default="video")
    ap.add_argument("--num", type=int, default=2, help="--input run: samples generated and simulated")
    ap.add_argument("--out", default=None, help="default results/events_before_after.json (video) or "
                                                "results/events_run_before_after.json (run)")
    args = ap.parse_args(argv)
    on_run = args.input == "run"
    args.out = args.out or str(RESULTS / ("events_run_before_after.json" if on_run else "events_before_after.json"))
    clip = str(bikes())
    trees = {"old": args.old, "new": args.new}
    work = Path(tempfile.mkdtemp(prefix="events-before-after-"))
    start = os.getloadavg()
    if on_run:
        _python(args.new, ["-m", "blursynth", "generate", "--out", str(work / "run"), "--num", str(args.num),
                           "--workers", "0", "--no-progress"])
        command = ["events", str(work / "run"), "--num", str(args.num)]
    else:
        command = ["events", clip, "--scale", "4"]
    digests = {}

    def events(variant: str) -> dict:
        out = work / variant
        load = os.getloadavg()[0]
        _, m = _python(trees[variant], ["-m", "blursynth", *command, "--out", str(out), "--no-progress"])
        m.update(variant=variant, load1_before=load, cpu_use=(m["user_s"] + m["sys_s"]) / m["wall_s"])
        if on_run and variant not in digests:  # the first run of each checkout
            digests[variant] = _digest(out)
        else:
            m.update(x_real_time=10.0 / m["wall_s"],
                     events=json.loads((out / "events.json").read_text())["events"])
        return m

    for variant in trees:  # untimed: numba's disk cache
        events(variant)
    runs = []
    for rnd in range(args.rounds):
        for variant in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
            runs.append(dict(events(variant), round=rnd))
            print(json.dumps(runs[-1]), flush=True)
    if on_run:
        micro = json.loads(_python(args.new, ["-c", _FRESH_PAGES])[0].stdout)
        assert digests["old"] == digests["new"] and digests["new"], "the checkouts wrote different bytes"
    else:
        micro = {v: json.loads(_python(tree, ["-c", _CONSISTENCY, clip])[0].stdout) for v, tree in trees.items()}
        micro["new"].update(json.loads(_python(args.new, ["-c", _GRAY, clip])[0].stdout))
    medians = {v: {k: statistics.median(r[k] for r in runs if r["variant"] == v)
                   for k in ("wall_s", "user_s", "sys_s", "cpu_use", "minflt")} for v in trees}
    ratios = [n["wall_s"] / o["wall_s"] for o, n in
              zip([r for r in runs if r["variant"] == "old"], [r for r in runs if r["variant"] == "new"])]
    commits = {v: subprocess.run(["git", "-C", tree, "describe", "--always", "--dirty"], capture_output=True,
                                 text=True).stdout.strip() or None for v, tree in trees.items()}
    if on_run:
        what = ("input", f"a generated run (default recipe, 1280x720), events on its first {args.num} samples; "
                         f"outputs identical: {len(digests['new'])} files")
    else:
        what = ("clip", "bikes.mp4 (640x272, 250 frames, 10 s), --scale 4")
    report = {"old": args.old, "new": args.new, "commits": commits, what[0]: what[1], "runs": runs,
              "medians": medians,
              "wall_ratio_new_over_old_per_round": ratios, "micro": micro,
              "load_1_5_15_start": start, "load_1_5_15_end": os.getloadavg(), "machine": machine_info()}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"medians": medians, "ratios": ratios, "micro": micro}, indent=1))
    print(f"load {start[0]:.2f} -> {report['load_1_5_15_end'][0]:.2f}; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
