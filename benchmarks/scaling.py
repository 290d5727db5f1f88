"""Scaling benchmark: pairs/s with 1 and 2 Ray workers against the in-process runner, and peak memory per
worker, for the same 1280x720 run of the default recipe.

    python benchmarks/scaling.py [--num 24] [--out benchmarks/results/scaling.json]

Each configuration generates the same samples (same seed) into a fresh directory, one thread per worker
(the in-process run too, so all compare equal compute). A warm-up run first fills numba's on-disk cache; the
timed runs still include what every run pays: Ray's start-up and, in each new worker process, loading the
cached kernels and segmenting the built-in photos it meets. The per-run start-up is measured separately with
a run of one shard per worker, and the steady rate is (num - startup_pairs) / (time - startup_time).
Targets (issue 3): 2 workers >= 1.8x one; Ray's overhead at 1 worker <= 10% over --workers 0.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import machine_info


def run(num: int, workers: int, out: Path, shard_size: int) -> dict:
    """One `blursynth generate` in a subprocess; wall time and the peak RSS of every process it started."""
    cmd = [sys.executable, "-m", "blursynth", "generate", "--num", str(num), "--out", str(out), "--seed", "3",
           "--shard-size", str(shard_size), "--workers", str(workers), "--no-progress"]
    # one thread per worker everywhere, the in-process run included, so the configurations compare equal compute
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    peaks: dict[int, tuple[str, int]] = {}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for pid, name, rss in _descendants(proc.pid):
                if rss > peaks.get(pid, ("", 0))[1]:
                    peaks[pid] = (name, rss)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    output = proc.communicate()[0].decode()
    seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output}")
    workers_rss = [rss for name, rss in peaks.values() if "_shard_task" in name or "ray::" in name and "IDLE" in name]
    return {"workers": workers, "num": num, "seconds": seconds, "pairs_per_s": num / seconds,
            "peak_rss_mb_by_process": {f"{pid} {name[:40]}": rss / 2**20 for pid, (name, rss) in peaks.items()},
            "peak_worker_rss_mb": max(workers_rss) / 2**20 if workers_rss else None,
            "peak_driver_rss_mb": peaks.get(proc.pid, ("", 0))[1] / 2**20}


def _descendants(root: int):
    """(pid, command line, RSS bytes) of `root` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    info = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            rss_pages = int((entry / "statm").read_text().split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
        info[int(entry.name)] = (cmd, rss_pages * resource.getpagesize())
    stack, seen = [root], []
    while stack:
        pid = stack.pop()
        if pid in info:
            seen.append((pid, *info[pid]))
        stack += children.get(pid, [])
    return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=96, help="pairs per timed run (a multiple of 8 keeps shards even)")
    ap.add_argument("--shard-size", type=int, default=4)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scaling.json"))
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1, 2):
            warm = Path(tmp) / f"warm{workers}"
            first = run(max(workers, 1) * args.shard_size, workers, warm, args.shard_size)
            shutil.rmtree(warm)
            rows[workers] = run(args.num, workers, Path(tmp) / f"run{workers}", args.shard_size)
            rows[workers]["startup_run"] = {"pairs": first["num"], "seconds": first["seconds"]}
            rows[workers]["steady_pairs_per_s"] = ((args.num - first["num"]) /
                                                   max(rows[workers]["seconds"] - first["seconds"], 1e-9))
            print(f"--workers {workers}: {rows[workers]['seconds']:.1f} s, {rows[workers]['pairs_per_s']:.3f} pairs/s "
                  f"(steady {rows[workers]['steady_pairs_per_s']:.3f}; a {first['num']}-pair run takes "
                  f"{first['seconds']:.1f} s), "
                  f"peak worker RSS {rows[workers]['peak_worker_rss_mb'] or 0:.0f} MB, "
                  f"driver {rows[workers]['peak_driver_rss_mb']:.0f} MB", flush=True)
    speedup = rows[2]["pairs_per_s"] / rows[1]["pairs_per_s"]
    overhead = rows[1]["seconds"] / rows[0]["seconds"] - 1.0
    steady_speedup = rows[2]["steady_pairs_per_s"] / rows[1]["steady_pairs_per_s"]
    steady_overhead = rows[0]["steady_pairs_per_s"] / rows[1]["steady_pairs_per_s"] - 1.0
    result = {"machine": machine_info(), "num": args.num, "shard_size": args.shard_size, "runs": rows,
              "two_vs_one_worker": speedup, "ray_overhead_at_one_worker": overhead,
              "two_vs_one_worker_steady": steady_speedup, "ray_overhead_at_one_worker_steady": steady_overhead,
              "targets": {"two_vs_one_worker": ">= 1.8", "ray_overhead_at_one_worker": "<= 0.10",
                          "peak_worker_rss_mb": "< 1536"}}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"2 workers vs 1: {speedup:.2f}x, steady {steady_speedup:.2f}x (target >= 1.8); Ray overhead at 1 worker "
          f"vs in-process: {100 * overhead:+.1f}%, steady {100 * steady_overhead:+.1f}% (target <= 10%)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
