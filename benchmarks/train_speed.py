"""Training step speed of the restoration model per preset and mixed-precision mode, on this machine.

One optimizer step (forward under the mode's autocast, PSNR loss, backward through the loss scaler, gradient
clipping, AdamW) on a random batch, as `blursynth.train.loop.train` runs it. Modes are interleaved round by
round and timed in process CPU seconds (the machine is shared), best of the rounds; the ratio to full precision
is what to read. The data loader is left out (benchmarks/store.py measures it).

    python benchmarks/train_speed.py [--quick] [--out benchmarks/results/train_speed.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info  # noqa: E402

from blursynth.train.loop import amp_dtype, psnr_loss  # noqa: E402
from blursynth.train.model import build_model, count_parameters  # noqa: E402

MODES = ("off", "bf16", "fp16")


def make_step(preset: str, mode: str, batch: int, crop: int):
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = build_model(preset)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = amp_dtype(mode, device)
    scaler = torch.amp.GradScaler("cpu", enabled=dtype == torch.float16)
    blur, sharp = torch.rand(batch, 3, crop, crop), torch.rand(batch, 3, crop, crop)

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            pred = model(blur)
        loss = psnr_loss(pred.float(), sharp)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        scaler.step(optimizer)
        scaler.update()

    return step, count_parameters(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one preset, two rounds (a smoke run)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train_speed.json"))
    args = ap.parse_args()
    presets = ("tiny",) if args.quick else ("tiny", "small")
    rounds, steps, batch, crop = (2, 2, 4, 64) if args.quick else (4, 4, 8, 128)
    results = {}
    for preset in presets:
        runs = {mode: make_step(preset, mode, batch, crop) for mode in MODES}
        for step, _ in runs.values():
            step()  # warm-up (allocations, oneDNN kernel selection)
        best = {mode: float("inf") for mode in MODES}
        for _ in range(rounds):
            for mode, (step, _) in runs.items():
                t = time.process_time()
                for _ in range(steps):
                    step()
                best[mode] = min(best[mode], (time.process_time() - t) / steps)
        results[preset] = {
            "parameters": runs["off"][1],
            "cpu_s_per_step": best,
            "it_per_cpu_s": {m: 1.0 / s for m, s in best.items()},
            "cpu_time_ratio_to_fp32": {m: best[m] / best["off"] for m in MODES},
        }
        print(f"{preset}: " + ", ".join(f"{m} {best[m] * 1e3:.0f} ms/step ({best[m] / best['off']:.2f}x fp32)"
                                        for m in MODES), flush=True)
    out = {"what": "one training step on CPU per preset and AMP mode, process CPU seconds, best of rounds",
           "batch": batch, "crop": crop, "torch_threads": torch.get_num_threads(), "rounds": rounds,
           "steps_per_round": steps, "quick": args.quick, "results": results, "machine": machine_info()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
