"""`blursynth train` and `blursynth evaluate` before and after a change, as a user runs them: two checkouts (e.g.
`git worktree add /tmp/old REV`), each command in a fresh process with PYTHONPATH on its checkout, alternating
old / new so that drift in the machine's speed falls on both. CPU = user + sys of the command and its waited
children (the DataLoader workers).

Rows: `generate` (the old checkout makes the data once: 16 and 2 pairs at 1280x720), `train` 20 steps (batch 8,
128 px crops, 2 workers) for old, new, new without ``keep_freed_memory`` (the malloc thresholds), and new with
`--workers 0`; `evaluate` of 2 full frames.

    python benchmarks/train_before_after.py --old /tmp/old --new . [--iters 20] [--work DIR]

Writes benchmarks/results/train_before_after.json (rows, load averages, machine_info()).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NO_MALLOC = ("import sys, blursynth.train.memory as m; m.keep_freed_memory = lambda: {}; "
             "import runpy; sys.argv[0] = 'blursynth'; runpy.run_module('blursynth', run_name='__main__')")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="checkout before the change")
    ap.add_argument("--new", required=True, help="checkout after the change")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=str(RESULTS / "train_before_after.json"))
    args = ap.parse_args(argv)
    trees = {"old": (args.old, None), "new": (args.new, None), "new_no_malloc": (args.new, NO_MALLOC)}
    work = Path(args.work or tempfile.mkdtemp(prefix="train-before-after-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []

    def run(variant: str, cmd_args: list, label: str) -> None:
        tree, code = trees[variant]
        env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
        cmd = [sys.executable, "-c", code, *cmd_args] if code else [sys.executable, "-m", "blursynth", *cmd_args]
        load = os.getloadavg()[0]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            raise RuntimeError(f"{label} ({variant}) failed: {(p.stdout + p.stderr)[-2000:]}")
        row = {"label": label, "variant": variant, "wall_s": round(wall, 2), "user_s": round(r1.ru_utime - r0.ru_utime, 2),
               "sys_s": round(r1.ru_stime - r0.ru_stime, 2), "load1_before": round(load, 2)}
        m = re.search(r"([\d.]+) it/s", p.stdout)
        if m:
            row["it_s"] = float(m.group(1))
        rows.append(row)
        print(json.dumps(row), flush=True)

    start = os.getloadavg()
    for name, num in (("gen", 16), ("gen2", 2)):
        if not (work / name / "manifest.json").exists():
            run("old", ["generate", "--out", str(work / name), "--num", str(num), "--shard-size", "4", "--workers", "0",
                        "--no-progress"], f"generate {num} pairs")

    def train(variant: str, out: str, extra=()) -> None:
        run(variant, ["train", "--data", str(work / "gen"), "--out", str(work / out), "--iters", str(args.iters),
                      "--batch-size", "8", "--crop", "128", "--no-progress", *extra],
            f"train {args.iters} steps" + (" --workers 0" if extra else ""))

    for rnd, order in enumerate((["old", "new_no_malloc", "new"], ["new", "new_no_malloc", "old"])):
        for v in order:
            train(v, f"t_{v}_{rnd}")
        train("new", f"t_w0_{rnd}", ["--workers", "0"])
    for order in (["old", "new"], ["new", "old"], ["old", "new"]):
        for v in order:
            run(v, ["evaluate", "--checkpoint", str(work / "t_new_0"), "--data", str(work / "gen2"), "--rows", "0",
                    "--no-progress"], "evaluate 2 images")
    report = {"rows": rows, "load_1_5_15_start": start, "load_1_5_15_end": os.getloadavg(),
              "old": str(args.old), "new": str(args.new), "machine": machine_info()}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"load {start[0]:.2f} -> {report['load_1_5_15_end'][0]:.2f}; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
