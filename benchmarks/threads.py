"""How the commands' threads wait, on an idle machine and on a shared one: each command as a user runs it (fresh
processes, benchmarks/commands.py's measurement), with OpenMP's idle threads spinning (libgomp's default, what
blursynth did before commands/threads.py) or sleeping at once (OMP_WAIT_POLICY=PASSIVE, the default now), with
0, 1 and 2 other busy processes on the machine (pure-Python loops, one core each: another user's job).

    python benchmarks/threads.py [--rounds 1] [--quick] [--out PATH | --write]

Configurations (the command's environment):
  spin      GOMP_SPINCOUNT=300000: libgomp's own default spin count, which blursynth's commands leave alone when
            the user set it (commands/threads.py); the behaviour of every command before that module
  passive   nothing set: the commands set OMP_WAIT_POLICY=PASSIVE themselves

Rows: `events bikes.mp4 --scale 4` (x real time), `video bikes.mp4` (input frames/s), `generate --workers 0` at
1280x720 (pairs/s), `train` on that run (small preset, steps/s: numba is not involved, torch's own libgomp and its
DataLoader workers are). Each (load, row) runs both configurations back to back, the order alternating by
round. Per run: wall, CPU of the command (RUSAGE_CHILDREN), the rate, and the CPU the neighbours got meanwhile
(their share of a core each: a spinning command takes it from them). Ratios are within one run: passive / spin
at the same load, and each configuration's rate under load / its rate on the idle machine ("keeps").
The neighbours are started by a launcher that exits, so they are not this process's children and no command's
CPU includes theirs.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from commands import Bench, bikes, clip_head  # noqa: E402
from common import git_describe, machine_info  # noqa: E402

RESULTS = HERE / "results"
CONFIGS = {"spin": {"GOMP_SPINCOUNT": "300000"}, "passive": {}}
USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_LAUNCHER = r"""
import os, sys
pids = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        # let go of the pipe the parent's stdout is, or the reader waits for an end of file that never comes
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        while True:
            pass
    pids.append(pid)
print(" ".join(map(str, pids)), flush=True)
"""


class Neighbours:
    """n busy processes (one core each), not children of this process."""

    def __init__(self, n: int):
        self.pids: list[int] = []
        if n:
            out = subprocess.run([sys.executable, "-c", _LAUNCHER, str(n)], capture_output=True, text=True,
                                 check=True, timeout=60).stdout
            self.pids = [int(p) for p in out.split()]
            time.sleep(1.0)  # let them reach full speed

    def cpu_s(self) -> float:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += (int(rest[11]) + int(rest[12])) / tick
        return total

    def stop(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def plan(quick: bool, work: Path, train_iters: int = 20) -> tuple[list[tuple[str, list[str], float, str]], list[str]]:
    """(row id, blursynth arguments with {out}, units, unit) and the set-up command (the run train reads)."""
    clip = bikes() if not quick else clip_head(bikes(), 12, work / "bikes_head.mp4")
    import cv2

    cap = cv2.VideoCapture(str(clip))
    frames, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    num = 2 if quick else 8
    size = ["--size", "320x180"] if quick else []
    iters = 3 if quick else train_iters
    rows = [
        ("events_video", ["events", str(clip), "--out", "{out}", "--scale", "4", "--no-progress"], frames / fps,
         "x real time"),
        ("video_640x272", ["video", str(clip), "--out", "{out}", "--no-progress"], frames, "input frames/s"),
        ("generate_workers0", ["generate", "--out", "{out}", "--num", str(num), "--shard-size", "4", "--workers", "0",
                               "--no-progress"] + size, num, "pairs/s"),
        ("train", ["train", "--data", str(work / "data"), "--out", "{out}", "--iters", str(iters), "--batch-size", str(min(8, num)),
                   "--crop", "64" if quick else "128", "--no-progress", "--val-every", "100000",
                   "--ckpt-every", "100000"], iters, "steps/s"),
    ]
    setup = ["generate", "--out", str(work / "data"), "--num", str(num), "--shard-size", "4", "--workers", "0",
             "--no-progress"] + size
    return rows, setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--loads", default="0,1,2", help="numbers of busy neighbour processes, comma-separated")
    ap.add_argument("--train-iters", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="tiny inputs, one load: a smoke run (CI-sized)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--write", action="store_true", help="write results/threads.json")
    args = ap.parse_args()
    loads = [0] if args.quick else [int(x) for x in args.loads.split(",")]
    base_env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bs_threads_") as tmp:
        work = Path(tmp)
        rows, setup = plan(args.quick, work, args.train_iters)
        bench = Bench(work)
        # the training data, and numba's disk cache for every row's kernels, before anything is timed
        assert bench.run(setup, env=base_env).ok
        for rid, argv, *_ in rows:
            bench.run([a.replace("{out}", str(work / f"warm_{rid}")) for a in argv], env=base_env)
        runs = []
        for rnd in range(args.rounds):
            for load in loads:
                for rid, argv, units, unit in rows:
                    order = list(CONFIGS) if rnd % 2 == 0 else list(CONFIGS)[::-1]
                    for config in order:
                        out = work / f"{rid}_{config}_{load}_{rnd}"
                        nb = Neighbours(load)
                        try:
                            c0, t0 = nb.cpu_s(), time.perf_counter()
                            m = bench.run([a.replace("{out}", str(out)) for a in argv],
                                          env={**base_env, **CONFIGS[config]})
                            share = (nb.cpu_s() - c0) / (time.perf_counter() - t0) if load else None
                        finally:
                            nb.stop()
                        if not m.ok:
                            raise SystemExit(f"{m.display} failed:\n{m.stderr[-2000:]}")
                        run = {"round": rnd, "load": load, "row": rid, "config": config, "command": m.display,
                               "wall_s": m.wall_s, "cpu_s": m.cpu_waited_s, "rate": units / m.wall_s,
                               "rate_unit": unit, "neighbour_cores": share, "load_1min_before": m.load_before}
                        runs.append(run)
                        print(f"load {load} {rid:18s} {config:8s} wall {m.wall_s:7.2f} s  cpu {m.cpu_waited_s:7.2f} s"
                              f"  {run['rate']:.3f} {unit}" + (f"  neighbours got {share:.2f} cores" if load else ""),
                              flush=True)
                        shutil_rm(out)
    result = {"machine": machine_info(), "commit": git_describe(), "quick": args.quick, "rounds": args.rounds,
              "loads": loads, "configs": CONFIGS, "load_average_start": load_start,
              "load_average_end": os.getloadavg(), "seconds": time.perf_counter() - t_start,
              "runs": runs, "summary": summarize(runs, loads, [r[0] for r in rows])}
    for line in table(result):
        print(line)
    path = args.out or (RESULTS / "threads.json" if args.write else None)
    if path:
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {path}")


def shutil_rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def summarize(runs: list[dict], loads: list[int], row_ids: list[str]) -> dict:
    """Per (load, row): each configuration's best rate over the rounds, its median CPU and neighbours' cores;
    passive / spin; and each configuration's rate under the load / on the idle machine."""
    out: dict = {}
    for load in loads:
        for rid in row_ids:
            cell = {}
            for config in CONFIGS:
                mine = [r for r in runs if r["load"] == load and r["row"] == rid and r["config"] == config]
                if not mine:
                    continue
                cpus = sorted(r["cpu_s"] for r in mine)
                shares = [r["neighbour_cores"] for r in mine if r["neighbour_cores"] is not None]
                cell[config] = {"rate": max(r["rate"] for r in mine), "cpu_s": cpus[len(cpus) // 2],
                                "neighbour_cores": sum(shares) / len(shares) if shares else None}
            if len(cell) == len(CONFIGS):
                cell["passive_over_spin_rate"] = cell["passive"]["rate"] / cell["spin"]["rate"]
                cell["passive_over_spin_cpu"] = cell["passive"]["cpu_s"] / cell["spin"]["cpu_s"]
            out.setdefault(str(load), {})[rid] = cell
    idle = out.get("0", {})
    for load in loads:
        for rid, cell in out[str(load)].items():
            for config in CONFIGS:
                if config in cell and config in idle.get(rid, {}):
                    cell[config]["keeps"] = cell[config]["rate"] / idle[rid][config]["rate"]
    return out


def table(result: dict) -> list[str]:
    lines = ["| busy neighbours | command | spin: rate | passive: rate | passive / spin | CPU passive / spin | "
             "keeps under load (spin -> passive) | neighbours' cores (spin -> passive) |",
             "|---:|---|---:|---:|---:|---:|---|---|"]
    for load, cells in result["summary"].items():
        for rid, c in cells.items():
            if "passive_over_spin_rate" not in c:
                continue
            keeps = "" if load == "0" else f"{c['spin']['keeps']:.2f} -> {c['passive']['keeps']:.2f}"
            nb = "" if load == "0" else f"{c['spin']['neighbour_cores']:.2f} -> {c['passive']['neighbour_cores']:.2f}"
            unit = next(r["rate_unit"] for r in result["runs"] if r["row"] == rid)
            lines.append(f"| {load} | {rid} | {c['spin']['rate']:.3g} {unit} | {c['passive']['rate']:.3g} | "
                         f"{c['passive_over_spin_rate']:.2f}x | {c['passive_over_spin_cpu']:.2f}x | {keeps} | {nb} |")
    return lines


if __name__ == "__main__":
    main()
