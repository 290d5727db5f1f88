"""How much can the generalization benchmark's budget learn? The oracle arm alone, over budgets and learning rates.

The generalization benchmark (issue 14) asks its CPU budget to let the oracle (pairs made exactly as the real
test targets are, from frames disjoint from them) gain at least +1 dB PSNR over the blurred input, with every
arm and seed inside 60 minutes on a 2-core CPU. This script measures the oracle's gain as a function of the
model preset, batch size, learning rate and steps, with `generalization.run_arm` (the same data, training,
crops and scoring as the benchmark; one seed, the benchmark's seed 0), so that the budget is chosen from a
measured curve and the minutes +1 dB would cost are stated, not guessed.

    python benchmarks/oracle_curve.py                      # the committed grid (about 23 min quiet)
    python benchmarks/oracle_curve.py --grid tiny:16:4e-3:1000,small:8:2e-3:550

Each row: preset, batch, lr, steps, gain (overall and per target kind), steps/s, train seconds, the 1-minute load
average before and after. Writes benchmarks/results/generalization_oracle_curve.json with machine_info().
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import generalization as G  # noqa: E402
import realblur  # noqa: E402
from common import machine_info  # noqa: E402

# preset:batch:lr:steps. The first is the committed budget's, to tie the curve to generalization.json.
GRID = ("small:8:2e-3:550,tiny:16:2e-3:1000,tiny:16:4e-3:1000,tiny:16:8e-3:1000,small:16:4e-3:1000,"
        "tiny:16:4e-3:2000,tiny:16:4e-3:4000")


def parse_grid(text: str) -> list[dict]:
    rows = []
    for item in text.split(","):
        preset, batch, lr, steps = item.strip().split(":")
        rows.append({"preset": preset, "batch_size": int(batch), "lr": float(lr), "iters": int(steps)})
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=GRID, help="Comma-separated PRESET:BATCH:LR:STEPS budgets.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-test", type=int, default=None, help="At most this many test pairs per kind (quick runs).")
    ap.add_argument("--out", default=str(G.RESULTS / "generalization_oracle_curve.json"))
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    test = realblur.build("test", G.CPU_BUDGET["test_width"])
    if args.max_test:
        test = [p for k in realblur.KINDS for p in [q for q in test if q.kind == k][: args.max_test]]
    train = realblur.build("train", G.CPU_BUDGET["test_width"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="oracle-curve-") as work:
        for i, cfg in enumerate(parse_grid(args.grid)):
            budget = {**G.CPU_BUDGET, **cfg}
            load = os.getloadavg()[0]
            r = G.run_arm("oracle", args.seed, budget, Path(work) / f"b{i}", test, train)
            row = {**cfg, "gain_psnr_db": r["gain_psnr_db"], "gain_ssim": r["gain_ssim"],
                   "per_target": {k: v["gain_psnr_db"] for k, v in r["per_target"].items()},
                   "train_it_s": r["train_it_s"], "train_s": r["train_s"], "parameters": r["parameters"],
                   "load_1min_before": load, "load_1min_after": os.getloadavg()[0]}
            rows.append(row)
            print(f"{cfg['preset']:>5} batch {cfg['batch_size']:>2} lr {cfg['lr']:.0e} {cfg['iters']:>5} steps: "
                  f"oracle {row['gain_psnr_db']:+.2f} dB, {row['train_it_s']:.2f} steps/s, {row['train_s']:.0f} s; "
                  f"load {load:.2f} -> {row['load_1min_after']:.2f}", flush=True)
    report = {"seed": args.seed, "test_pairs": len(test), "oracle_pairs": len(train),
              "fixed": {k: G.CPU_BUDGET[k] for k in ("crop", "test_width", "loss", "min_crop_blur", "workers")},
              "rows": rows, "seconds": time.perf_counter() - t_all, "machine": machine_info()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out} ({report['seconds'] / 60:.1f} min)")
    return report


if __name__ == "__main__":
    main()
