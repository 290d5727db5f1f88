"""What the training pairs of each generalization arm look like next to the real-blur targets.

For every pair: the mean of blur - sharp (RGB in [0, 1]: a brightness bias between the input and its target, which
linear-light integration produces by Jensen's inequality wherever the blur spreads bright into dark, and the
highlight boost adds to), the mean |blur - sharp|, and the share of pixels where the two differ by more than 2
codes (how much of the frame is blurred at all). Reads the data directories a `generalization.py --work DIR` run
kept, and builds the real pairs itself.

    python benchmarks/pair_stats.py --work /tmp/gfull [--seed 0]

Writes benchmarks/results/pair_stats.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import realblur  # noqa: E402
from common import machine_info  # noqa: E402


def stats(pairs) -> dict:
    """Means over ``pairs`` of (blur uint8, sharp uint8) of the per-pair figures in the module docstring."""
    bias, mad, moved = [], [], []
    for blur, sharp in pairs:
        d = blur.astype(np.float64) / 255.0 - sharp.astype(np.float64) / 255.0
        bias.append(d.mean())
        mad.append(np.abs(d).mean())
        moved.append((np.abs(d).max(axis=-1) > 2 / 255.0).mean())
    return {"pairs": len(bias), "mean_blur_minus_sharp": float(np.mean(bias)), "mean_abs_diff": float(np.mean(mad)),
            "blurred_pixel_share": float(np.mean(moved))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="A generalization.py --work directory.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=160, help="Width of the real pairs (the run's test_width).")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "pair_stats.json"))
    args = ap.parse_args(argv)
    from blursynth.train.evaluate import shard_pairs

    work = Path(args.work)
    report = {"seed": args.seed, "width": args.width, "arms": {}, "real": {}}
    for data in sorted(work.glob(f"data-*-s{args.seed}")):
        name = data.name[len("data-"): -len(f"-s{args.seed}")]
        report["arms"][name] = stats((p.blur, p.sharp) for p in shard_pairs(data))
    for split in ("test", "train"):
        pairs = realblur.build(split, args.width)
        report["real"][split] = stats((p.blur, p.sharp) for p in pairs)
        for kind in realblur.KINDS:
            report["real"][f"{split}/{kind}"] = stats((p.blur, p.sharp) for p in pairs if p.kind == kind)
    report["machine"] = machine_info()
    print(f"{'pairs':>24} {'mean(blur-sharp)':>17} {'mean|blur-sharp|':>17} {'blurred share':>14}")
    for group in ("arms", "real"):
        for name, s in report[group].items():
            print(f"{name:>24} {s['mean_blur_minus_sharp']:>+17.4f} {s['mean_abs_diff']:>17.4f} "
                  f"{s['blurred_pixel_share']:>14.3f}")
    Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
