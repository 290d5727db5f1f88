"""The training loop: NAFNet-style model, L1 or PSNR loss, AdamW, cosine schedule, gradient clipping, mixed
precision (AMP: on CUDA by default, on request on the CPU), checkpoints with auto-resume, validation PSNR/SSIM logged as CSV and drawn as a PNG.

Reproducibility: the model's initial weights come from ``torch.manual_seed(seed)``; batch ``k`` of epoch ``e``
is a pure function of (seed, e, k) (a seeded permutation per epoch, and the dataset's own crops keyed by its
epoch), and the learning rate is a pure function of the step. A run resumed from a checkpoint at step ``s``
therefore sees the same batches and learning rates as the uninterrupted run, whatever the worker count; on
the CPU it reaches the same weights bit for bit.

One ``DataLoader``, and so one set of worker processes, serves the whole run: its batch sampler (``RunBatches``)
spans every epoch and names each item by (epoch, position), and ``EpochItems`` sets the dataset's epoch in the
process that reads the item, so workers started once see every epoch's crops. (A loader per epoch restarted
the workers each epoch, which on a small dataset cost more than the training.)

Files in the run directory ``out``:

- ``config.json``: the ``TrainConfig`` and model shape;
- ``last.pt``: checkpoint (model, optimizer, scaler, step, configs), replaced atomically; a later ``train``
  with the same ``out`` resumes from it (auto-resume);
- ``train.csv``: step, loss, psnr (training batches, dB), lr, it_s, every ``log_every`` steps;
- ``val.csv``: step, psnr, ssim (restored vs sharp), psnr_input, ssim_input (blurred vs sharp), over the first
  ``val_max`` validation samples, full frames;
- ``val.png``: training loss and validation PSNR against the step (OpenCV drawing).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .metrics import psnr, ssim
from .model import NAFNet, build_model, count_parameters, ModelConfig

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
TRAIN_CSV = ["step", "loss", "psnr", "lr", "it_s"]
VAL_CSV = ["step", "psnr", "ssim", "psnr_input", "ssim_input"]


AMP_MODES = ("auto", "off", "bf16", "fp16")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an ``amp`` mode on ``device`` (None: full precision). "auto" is bfloat16 on a CUDA
    device that supports it, float16 on an older one, and off on the CPU (autocast there is slower than float32
    on most CPUs)."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


@dataclass
class TrainConfig:
    """Everything a run depends on (written to ``config.json`` and into every checkpoint).

    Attributes:
        data: blursynth output directory of training pairs (ignored when a dataset is passed to ``train``).
        out: run directory.
        iters: total optimizer steps.
        val: output directory of validation pairs, or None.
        preset, width: model shape (``model.PRESETS``), optional width override.
        batch_size, crop: batch of random ``crop`` x ``crop`` windows (flipped / transposed).
        loss: "psnr" (NAFNet's: -PSNR of each image, averaged), "psnr-batch" (-PSNR of the whole batch) or "l1".
        lr, min_lr, weight_decay, betas: AdamW with a cosine schedule from lr to min_lr over ``iters``.
        grad_clip: max global gradient norm (NAFNet clips at 0.01); 0 disables.
        workers: DataLoader workers.
        seed: model initialisation, batch order and crop randomness.
        val_every, ckpt_every, log_every: in steps; validation and a checkpoint also at the last step.
        val_max: validate on at most this many samples (the first ones).
        amp: mixed precision (``AMP_MODES``): "auto" (CUDA: bfloat16 where supported, else float16 with loss
            scaling; CPU: off), "off", "bf16", or "fp16" (float16 autocast with a dynamic loss scale, on either
            device). True / False (older configs) read as "auto" / "off".
        device: "auto" (CUDA when available), "cpu" or "cuda[:N]".
        on_corrupt: what a stored record that fails its digest check does (``ShardDataset``): "error" stops
            the run with ``CorruptRecordError``; "skip" drops the sample from its batch and counts it.
        min_crop_blur: ``ShardDataset``'s: redraw training crops whose mean |blur - sharp| is below this.
    """

    data: str = ""
    out: str = "runs/train"
    iters: int = 1000
    val: str | None = None
    preset: str = "small"
    width: int | None = None
    batch_size: int = 8
    crop: int = 128
    loss: str = "psnr"
    lr: float = 1e-3
    min_lr: float = 1e-7
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.9)
    grad_clip: float = 0.01
    workers: int = 2
    seed: int = 0
    val_every: int = 500
    ckpt_every: int = 500
    log_every: int = 10
    val_max: int = 32
    amp: str = "auto"
    device: str = "auto"
    on_corrupt: str = "error"
    min_crop_blur: float = 0.0

    def __post_init__(self):
        if self.iters < 1:
            raise ValueError(f"iters must be >= 1, got {self.iters}")
        if self.batch_size < 1 or self.crop < 8:
            raise ValueError(f"batch_size must be >= 1 and crop >= 8, got {self.batch_size}, {self.crop}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        for name in ("val_every", "ckpt_every", "log_every", "val_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0 or self.seed < 0 or self.grad_clip < 0:
            raise ValueError("workers, seed and grad_clip must be >= 0")
        self.betas = tuple(float(b) for b in self.betas)
        if isinstance(self.amp, bool):
            self.amp = "auto" if self.amp else "off"
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if not self.min_crop_blur >= 0:
            raise ValueError(f"min_crop_blur must be >= 0, got {self.min_crop_blur}")
        if self.on_corrupt not in ("error", "skip"):
            raise ValueError(f"on_corrupt must be error or skip, got {self.on_corrupt!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclass
class TrainResult:
    """What ``train`` did. ``skipped_corrupt``: training samples dropped from their batches as corrupt
    (``on_corrupt="skip"``), counted each time one was drawn; ``skipped_corrupt_val``: validation reads
    dropped likewise; ``empty_batches``: steps whose every sample was dropped (no update, the step counts)."""

    out: Path
    step: int
    resumed_from: int
    seconds: float
    last_loss: float
    val: list[dict] = field(default_factory=list)
    parameters: int = 0
    skipped_corrupt: int = 0
    skipped_corrupt_val: int = 0
    empty_batches: int = 0


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def psnr_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-PSNR in dB of each (C, H, W) image (data range 1), averaged over the batch (NAFNet's PSNRLoss)."""
    mse = (pred - target).pow(2).mean(dim=(1, 2, 3))
    return (10.0 / math.log(10.0)) * torch.log(mse + 1e-8).mean()


def psnr_batch_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-PSNR in dB of the whole batch (the log of its mean squared error): each pixel weighs the same, so crops
    where nothing moved (error near 0, whose log dominates ``psnr_loss``) do not drown the blurred ones."""
    mse = (pred - target).pow(2).mean()
    return (10.0 / math.log(10.0)) * torch.log(mse + 1e-8)


LOSSES = {"l1": l1_loss, "psnr": psnr_loss, "psnr-batch": psnr_batch_loss}


def cosine_lr(step: int, iters: int, lr: float, min_lr: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``iters``: cosine from lr down to min_lr."""
    t = min(step, iters) / iters
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))


def _load_model_state(path: Path, model, device, state: dict | None = None) -> dict:
    """The model weights of a checkpoint, after checking they fit `model`'s shape."""
    state = state if state is not None else torch.load(path, map_location=device, weights_only=False)
    saved = ModelConfig.from_dict(state["model_config"])
    if saved != model.config:
        raise ValueError(f"checkpoint {path} holds a model of shape {saved}, this run asks for {model.config}")
    return state["model"]


def train(cfg: TrainConfig, train_set: Dataset | None = None, val_set: Dataset | None = None,
          resume: str | os.PathLike | None = None, progress: bool = True, stop_at: int | None = None,
          init: str | os.PathLike | None = None) -> TrainResult:
    """Train (or continue training) a model; see the module docstring for what is written.

    Args:
        cfg: the run's configuration.
        train_set: a Dataset of dicts with ``blur`` / ``sharp`` float32 (3, crop, crop) tensors and
            ``set_epoch`` (``ShardDataset``, ``OnTheFly``); default ``ShardDataset(cfg.data, crop, augment)``.
        val_set: full-frame pairs for validation; default ``ShardDataset(cfg.val)`` when ``cfg.val`` is set.
        resume: checkpoint to start from; default ``out/last.pt`` when it exists (auto-resume).
        progress: show a tqdm bar (loss, PSNR, it/s).
        stop_at: stop after this step with a checkpoint, as a job whose time slot ends would (the schedule
            still spans ``cfg.iters``; run again to continue).
        init: fine-tune: start from this checkpoint's model weights only, with a fresh optimizer and the
            schedule from step 0 (e.g. on `blursynth adapt` pairs). Ignored once ``out/last.pt`` exists, so a
            fine-tuning run resumes like any other; exclusive with ``resume``.
    """
    from tqdm import tqdm

    from ..data import ShardDataset, collate

    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    device = _device(cfg.device)
    if train_set is None:
        if not cfg.data:
            raise ValueError("no training data: give --data DIR")
        train_set = ShardDataset(cfg.data, crop=cfg.crop, augment=True, seed=cfg.seed, on_corrupt=cfg.on_corrupt,
                                 min_crop_blur=cfg.min_crop_blur)
    if val_set is None and cfg.val:
        val_set = ShardDataset(cfg.val, on_corrupt=cfg.on_corrupt)
    per_epoch = len(train_set) // cfg.batch_size
    if per_epoch < 1:
        raise ValueError(f"{len(train_set)} training samples are fewer than one batch of {cfg.batch_size}")

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.preset, cfg.width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    autocast_dtype = amp_dtype(cfg.amp, device)
    # float16's narrow range needs the loss scaled (and the scale adapted) so small gradients do not flush to 0
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)

    step = 0
    if init is not None and resume is not None:
        raise ValueError("give --init (fine-tune from weights) or --resume (continue a run), not both")
    ckpt_path = Path(resume) if resume is not None else out / CHECKPOINT_NAME
    if resume is not None and not ckpt_path.is_file():
        raise FileNotFoundError(f"--resume {ckpt_path}: no such checkpoint")
    if init is not None and not ckpt_path.is_file():
        init_path = Path(init)
        if not init_path.is_file():
            raise FileNotFoundError(f"--init {init_path}: no such checkpoint")
        model.load_state_dict(_load_model_state(init_path, model, device))
        log.info("fine-tuning from the weights of %s", init_path)
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(_load_model_state(ckpt_path, model, device, state))
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        log.info("resuming from %s at step %d", ckpt_path, step)
    resumed_from = step
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"train": cfg.to_dict(), "model": model.config.to_dict()}, indent=2))
    train_log = _CsvLog(out / "train.csv", TRAIN_CSV, keep_until=step)
    val_log = _CsvLog(out / "val.csv", VAL_CSV, keep_until=step)

    loss_fn = LOSSES[cfg.loss]
    context = getattr(train_set, "multiprocessing_context", None) if cfg.workers > 0 else None
    start = time.perf_counter()
    window = {"loss": 0.0, "psnr": 0.0, "n": 0, "t": time.perf_counter()}
    last_loss = float("nan")
    dropped = {"train": 0, "val": 0, "empty": 0}
    bar = tqdm(total=cfg.iters, initial=step, unit="it", desc="train", disable=not progress, dynamic_ncols=True)
    # the batches this call trains on: to the end of the schedule, or to stop_at (at least one step, as ever)
    stop = cfg.iters if stop_at is None else min(cfg.iters, max(stop_at, step + 1))
    try:
        if step < stop:
            loader = DataLoader(EpochItems(train_set),
                                batch_sampler=RunBatches(len(train_set), cfg.batch_size, cfg.seed, step, stop),
                                num_workers=cfg.workers, collate_fn=collate, pin_memory=device.type == "cuda",
                                multiprocessing_context=context)
            for batch in loader:
                # corrupt samples dropped in the workers (on_corrupt="skip"): the batch carries their count
                dropped["train"] += batch.get("skipped", 0)
                lr = cosine_lr(step, cfg.iters, cfg.lr, cfg.min_lr)
                if batch["meta"]:
                    last_loss, batch_psnr = _update(model, optimizer, scaler, loss_fn, batch, lr, cfg, step, device,
                                                    autocast_dtype)
                    window["loss"] += last_loss
                    window["psnr"] += batch_psnr
                    window["n"] += 1
                    bar.set_postfix(loss=f"{last_loss:.4f}", psnr=f"{batch_psnr:.2f}")
                else:
                    # every sample of the batch was dropped: the step passes without an update, so that batch
                    # k of an epoch stays step k and a resumed run still sees the same batches
                    dropped["empty"] += 1
                    log.warning("step %d: every sample of the batch was corrupt and dropped; no update", step)
                step += 1
                bar.update(1)
                if (step % cfg.log_every == 0 or step == cfg.iters) and window["n"]:
                    now = time.perf_counter()
                    n = window["n"]
                    train_log.append({"step": step, "loss": window["loss"] / n, "psnr": window["psnr"] / n,
                                      "lr": lr, "it_s": n / max(now - window["t"], 1e-9)})
                    window = {"loss": 0.0, "psnr": 0.0, "n": 0, "t": now}
                if val_set is not None and (step % cfg.val_every == 0 or step == cfg.iters):
                    before = getattr(val_set, "skipped", 0)
                    row = {"step": step, **validate(model, val_set, cfg.val_max, device)}
                    dropped["val"] += getattr(val_set, "skipped", 0) - before
                    val_log.append(row)
                    bar.write(f"step {step}: val PSNR {row['psnr']:.2f} dB (input {row['psnr_input']:.2f}), "
                              f"SSIM {row['ssim']:.4f} (input {row['ssim_input']:.4f})")
                    plot_curves(out / "val.png", train_log.rows, val_log.rows)
                stopping = stop_at is not None and step >= stop_at
                if step % cfg.ckpt_every == 0 or step == cfg.iters or stopping:
                    save_checkpoint(out / CHECKPOINT_NAME, model, optimizer, scaler, step, cfg)
                if step >= cfg.iters or stopping:
                    break
    finally:
        bar.close()
    plot_curves(out / "val.png", train_log.rows, val_log.rows)
    return TrainResult(out=out, step=step, resumed_from=resumed_from, seconds=time.perf_counter() - start,
                       last_loss=last_loss, val=val_log.rows, parameters=count_parameters(model),
                       skipped_corrupt=dropped["train"], skipped_corrupt_val=dropped["val"],
                       empty_batches=dropped["empty"])


def _update(model: NAFNet, optimizer, scaler, loss_fn, batch: dict, lr: float, cfg: TrainConfig, step: int,
            device: torch.device, autocast_dtype: torch.dtype | None) -> tuple[float, float]:
    """One optimizer step on ``batch`` at learning rate ``lr``; returns (loss, mean PSNR in dB of the batch)."""
    model.train()
    blur = batch["blur"].to(device, non_blocking=True)
    sharp = batch["sharp"].to(device, non_blocking=True)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        pred = model(blur)
    loss = loss_fn(pred.float(), sharp)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {step}: loss is {loss.item()} (lower --lr?)")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    with torch.no_grad():
        mse = (pred.detach().float().clamp(0, 1) - sharp).pow(2).mean(dim=(1, 2, 3))
        batch_psnr = (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean().item()
    return loss.item(), batch_psnr


class RunBatches:
    """Batch sampler of a run's steps ``start`` .. ``stop - 1``, across epochs: step s is batch s mod E of
    epoch s // E (E = n // batch_size full batches per epoch), cut as ``EpochBatches`` cuts it.

    Yields lists of ``batch_size`` (epoch, position) pairs, the keys ``EpochItems`` reads.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int):
        self.per_epoch = n // batch_size
        if self.per_epoch < 1:
            raise ValueError(f"{n} samples are fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        step = self.start
        while step < self.stop:
            epoch, offset = divmod(step, self.per_epoch)
            for batch in EpochBatches(self.n, self.batch_size, self.seed, epoch, offset):
                if step >= self.stop:
                    return
                yield [(epoch, i) for i in batch]
                step += 1


class EpochItems(Dataset):
    """``dataset`` read by (epoch, position) keys: item (e, i) is ``dataset[i]`` after ``dataset.set_epoch(e)``.

    The epoch is set in the process that reads the item, so DataLoader workers that live for the whole run read
    each epoch's crops (a ``set_epoch`` in the main process does not reach a running worker's copy).
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        self.dataset.set_epoch(epoch)
        return self.dataset[i]


class EpochBatches:
    """Batch sampler of one epoch: a permutation seeded by (seed, epoch), cut into full batches, from ``start``.

    Yields lists of ``batch_size`` dataset positions; the last partial batch is dropped.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0):
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        self.perm = torch.randperm(n, generator=g).tolist()
        self.batch_size = batch_size
        self.start = start

    def __len__(self) -> int:
        return len(self.perm) // self.batch_size - self.start

    def __iter__(self):
        b = self.batch_size
        for k in range(self.start, len(self.perm) // b):
            yield self.perm[k * b : (k + 1) * b]


@torch.no_grad()
def restore(model: NAFNet, blur: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on a (3, H, W) or (B, 3, H, W) float image in [0, 1]; returns float32 clamped to [0, 1]."""
    model.eval()
    x = blur[None] if blur.ndim == 3 else blur
    device = next(model.parameters()).device
    y = model(x.to(device)).float().clamp_(0, 1).cpu()
    return y[0] if blur.ndim == 3 else y


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [0, 1] -> uint8 (H, W, 3), rounded (what a PNG of it holds)."""
    return (img.clamp(0, 1).mul(255).round_().byte().permute(1, 2, 0).numpy()).copy()


def validate(model: NAFNet, dataset: Dataset, max_samples: int, device: torch.device | None = None) -> dict:
    """Mean PSNR / SSIM of the restored (quantized to 8 bits) and of the blurred input against the sharp
    image, over the first ``max_samples`` items of ``dataset`` (items dropped as corrupt, None, left out)."""
    rows = []
    for i in range(min(len(dataset), max_samples)):
        s = dataset[i]
        if s is None:
            continue
        restored = to_uint8(restore(model, s["blur"])) / 255.0
        sharp = to_uint8(s["sharp"]) / 255.0
        blur = to_uint8(s["blur"]) / 255.0
        rows.append((psnr(restored, sharp), ssim(restored, sharp), psnr(blur, sharp), ssim(blur, sharp)))
    m = np.mean(np.array(rows, np.float64), axis=0) if rows else [float("nan")] * 4
    return {"psnr": float(m[0]), "ssim": float(m[1]), "psnr_input": float(m[2]), "ssim_input": float(m[3])}


def save_checkpoint(path: Path, model: NAFNet, optimizer, scaler, step: int, cfg: TrainConfig) -> None:
    """Write atomically (temp file, fsync, rename): a kill mid-write leaves the previous checkpoint."""
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scaler": scaler.state_dict(), "model_config": model.config.to_dict(), "train_config": cfg.to_dict()}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_model(checkpoint: str | os.PathLike, device: str = "auto") -> tuple[NAFNet, dict]:
    """A trained model from a run directory (its ``last.pt``) or a checkpoint file; returns (model in eval
    mode, checkpoint info: step, train_config)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    dev = _device(device)
    try:
        state = torch.load(path, map_location=dev, weights_only=False)
        model = NAFNet(ModelConfig.from_dict(state["model_config"])).to(dev)
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"{path} is not a blursynth checkpoint: {exc}") from exc
    model.eval()
    return model, {"step": state.get("step"), "train_config": state.get("train_config"), "path": str(path)}


def plot_curves(path: Path, train_rows: list[dict], val_rows: list[dict], size: tuple[int, int] = (900, 360)) -> None:
    """Two panels drawn with OpenCV: training loss, and validation PSNR (restored and input) against step."""
    import cv2

    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    panels = [("train loss", [("loss", train_rows, "loss", (200, 80, 0))]),
              ("val PSNR (dB)", [("restored", val_rows, "psnr", (0, 0, 200)),
                                 ("input", val_rows, "psnr_input", (120, 120, 120))])]
    pw = w // len(panels)
    for k, (title, series) in enumerate(panels):
        x0, x1, y0, y1 = k * pw + 60, (k + 1) * pw - 15, 30, h - 40
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
        cv2.putText(img, title, (x0, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        pts = [(float(r["step"]), float(r[key])) for _, rows, key, _ in series for r in rows
               if math.isfinite(float(r[key]))]
        if not pts:
            continue
        xs, ys = zip(*pts)
        xmin, xmax = min(xs), max(xs)
        ymin, ymax = min(ys), max(ys)
        if xmax == xmin:
            xmax = xmin + 1
        if ymax == ymin:
            ymin, ymax = ymin - 0.5, ymax + 0.5

        def px(sx, sy):
            return (int(round(x0 + (sx - xmin) / (xmax - xmin) * (x1 - x0))),
                    int(round(y1 - (sy - ymin) / (ymax - ymin) * (y1 - y0))))

        for label, rows, key, color in series:
            p = [px(float(r["step"]), float(r[key])) for r in rows if math.isfinite(float(r[key]))]
            for a, b in zip(p, p[1:]):
                cv2.line(img, a, b, color, 2, cv2.LINE_AA)
            for q in p[-1:] if len(p) > 1 else p:
                cv2.circle(img, q, 3, color, -1, cv2.LINE_AA)
        for i, (label, _, _, color) in enumerate(series):
            cv2.putText(img, label, (x0 + 150 + 90 * i, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
        for v, y in ((ymax, y0), (ymin, y1)):
            cv2.putText(img, f"{v:.3g}", (x0 - 55, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for v, x in ((xmin, x0), (xmax, x1)):
            cv2.putText(img, f"{int(v)}", (x - 10, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "step", ((x0 + x1) // 2 - 15, y1 + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    tmp = path.with_name(path.name + ".tmp.png")
    cv2.imwrite(str(tmp), img)
    os.replace(tmp, path)


class _CsvLog:
    """A CSV file appended row by row; on resume, rows after the checkpoint's step are dropped (a killed run
    may have logged steps it never saved)."""

    def __init__(self, path: Path, columns: list[str], keep_until: int):
        self.path = path
        self.columns = columns
        self.rows: list[dict] = []
        if path.is_file() and keep_until > 0:
            with open(path, newline="") as f:
                self.rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)
                             if float(r["step"]) <= keep_until]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: _fmt(r[k]) for k in columns})

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow({k: _fmt(row[k]) for k in self.columns})


def _fmt(v) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{float(v):.6g}"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available")
    return dev
