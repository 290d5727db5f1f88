"""``blursynth train`` and ``blursynth evaluate``. Only click is imported here; torch loads inside the commands."""
from __future__ import annotations

import click


@click.command("train")
@click.option("--data", "data", type=click.Path(file_okay=False), default=None,
              help="blursynth output directory of training pairs.")
@click.option("--recipe", "recipe", default=None,
              help="Instead of --data: generate pairs on the fly with this recipe (nothing stored).")
@click.option("--source", "source", default="builtin", show_default=True, help="Source of --recipe's pairs.")
@click.option("--size", "size", default="256x256", show_default=True, help="Render size of --recipe's pairs.")
@click.option("--val", "val", type=click.Path(file_okay=False), default=None, help="Validation output directory.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Run directory.")
@click.option("--iters", "iters", type=click.IntRange(min=1), required=True, help="Optimizer steps.")
@click.option("--resume", "resume", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint to start from (default: RUN/last.pt when it exists).")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
              help="Fine-tune: start from this checkpoint's weights with a fresh optimizer and schedule.")
@click.option("--preset", type=click.Choice(["tiny", "small", "base", "large"]), default="small", show_default=True,
              help="Model size: small ~1.1M params (CPU), base ~17M, large ~68M (GPU).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Override the preset's width.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--crop", type=click.IntRange(min=8), default=128, show_default=True, help="Training crop side, px.")
@click.option("--loss", type=click.Choice(["psnr", "psnr-batch", "l1"]), default="psnr", show_default=True,
              help="psnr: -PSNR of each crop, averaged (NAFNet's); psnr-batch: -PSNR of the whole batch; l1.")
@click.option("--min-crop-blur", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Redraw training crops whose mean |blur - sharp| (in [0, 1]) is below this (up to 8 draws): "
                   "windows where nothing moved teach nothing. 0: off.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--weight-decay", type=float, default=1e-3, show_default=True)
@click.option("--grad-clip", type=float, default=0.01, show_default=True, help="Max gradient norm; 0: off.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="DataLoader workers.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--val-every", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--ckpt-every", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--val-max", type=click.IntRange(min=1), default=32, show_default=True,
              help="Validate on the first N pairs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--amp", "amp", type=click.Choice(["auto", "off", "bf16", "fp16"]), default="auto",
              show_default=True, help="Mixed precision: auto = bf16 (or fp16 with loss scaling) on CUDA, off on CPU.")
@click.option("--no-amp", is_flag=True, help="Same as --amp off.")
@click.option("--skip-corrupt", is_flag=True,
              help="Drop samples whose stored records are corrupt (counted in the summary) instead of stopping.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(data, recipe, source, size, val, out, iters, resume, init, preset, width, batch_size, crop, loss, min_crop_blur,
          lr, weight_decay,
          grad_clip, workers, seed, val_every, ckpt_every, val_max, device, amp, no_amp, skip_corrupt, no_progress):
    """Train a restoration model on blursynth pairs; continues RUN/last.pt when present."""
    from .options import parse_size
    from ..train.loop import TrainConfig
    from ..train.loop import train as run_train
    from ..train.memory import keep_freed_memory

    if (data is None) == (recipe is None):
        raise click.UsageError("give exactly one of --data DIR or --recipe NAME")
    if recipe is not None and min_crop_blur > 0:
        raise click.UsageError("--min-crop-blur applies to --data (pairs made on the fly are not redrawn)")
    keep_freed_memory()
    try:
        cfg = TrainConfig(data=data or "", out=out, iters=iters, val=val, preset=preset, width=width,
                          batch_size=batch_size, crop=crop, loss=loss, lr=lr, min_lr=min(1e-7, lr),
                          weight_decay=weight_decay, grad_clip=grad_clip, workers=workers, seed=seed,
                          val_every=val_every, ckpt_every=ckpt_every, val_max=val_max,
                          amp="off" if no_amp else amp,
                          device=device, on_corrupt="skip" if skip_corrupt else "error", min_crop_blur=min_crop_blur)
        train_set = None
        if recipe is not None:
            from ..data import OnTheFly

            train_set = OnTheFly(recipe, source, length=max(1000, batch_size), crop=crop, augment=True, seed=seed,
                                 size=parse_size(size))
        result = run_train(cfg, train_set=train_set, resume=resume, init=init, progress=not no_progress)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    rate = (result.step - result.resumed_from) / max(result.seconds, 1e-9)
    click.echo(f"{result.out}: step {result.step} ({result.parameters / 1e6:.2f}M parameters, "
               f"{rate:.2f} it/s{', resumed at ' + str(result.resumed_from) if result.resumed_from else ''})")
    if result.val:
        v = result.val[-1]
        click.echo(f"validation: PSNR {v['psnr']:.2f} dB (input {v['psnr_input']:.2f}), "
                   f"SSIM {v['ssim']:.4f} (input {v['ssim_input']:.4f}); log {result.out / 'val.csv'}, "
                   f"plot {result.out / 'val.png'}")
    if result.skipped_corrupt:
        empty = f", {result.empty_batches} step(s) had none left" if result.empty_batches else ""
        click.echo(f"dropped {result.skipped_corrupt} corrupt training sample(s) from their batches{empty}; "
                   f"run blursynth inspect {data} --verify")
    if result.skipped_corrupt_val:
        click.echo(f"dropped {result.skipped_corrupt_val} corrupt validation read(s); "
                   f"run blursynth inspect {val} --verify")


@click.command("evaluate")
@click.option("--checkpoint", type=click.Path(exists=True), default=None,
              help="Run directory (its last.pt) or checkpoint file; without it only the blurred input is scored.")
@click.option("--data", type=click.Path(file_okay=False), default=None, help="blursynth output directory.")
@click.option("--blur", "blur_dir", type=click.Path(file_okay=False), default=None, help="Folder of blurred images.")
@click.option("--sharp", "sharp_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of sharp images (the same folder as --blur for GoPro / RealBlur roots).")
@click.option("--align", is_flag=True, help="Also score after ECC alignment (RealBlur's protocol).")
@click.option("--save", "save_dir", type=click.Path(file_okay=False), default=None,
              help="Write restored images here as 000000.png, ... in dataset order.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Per-image metrics CSV (default: SAVE/metrics.csv with --save).")
@click.option("--rows", type=click.IntRange(min=0), default=20, show_default=True, help="Table rows to print.")
@click.option("--device", default="auto", show_default=True)
@click.option("--skip-corrupt", is_flag=True,
              help="--data: leave out samples whose stored records are corrupt (counted) instead of stopping.")
@click.option("--no-progress", is_flag=True)
def evaluate(checkpoint, data, blur_dir, sharp_dir, align, save_dir, csv_path, rows, device, skip_corrupt, no_progress):
    """PSNR / SSIM of restored images and of the blurred input, per image and mean."""
    from pathlib import Path

    from tqdm import tqdm

    from ..train.evaluate import evaluate as run_eval
    from ..train.evaluate import folder_pairs, format_table, load_folder_pairs, mean_row, shard_pairs, write_csv
    from ..train.loop import load_model
    from ..train.memory import keep_freed_memory

    if (data is None) == (blur_dir is None and sharp_dir is None):
        raise click.UsageError("give either --data DIR or --blur DIR --sharp DIR")
    if data is None and (blur_dir is None or sharp_dir is None):
        raise click.UsageError("--blur and --sharp go together")
    if save_dir is not None and checkpoint is None:
        raise click.UsageError("--save needs --checkpoint (there is nothing restored to save)")
    keep_freed_memory()
    try:
        model = load_model(checkpoint, device)[0] if checkpoint else None
        if data is not None:
            from ..store.manifest import Manifest

            total = Manifest.load(data).num_written
            pairs = shard_pairs(data, on_corrupt="skip" if skip_corrupt else "error")
        else:
            matches = folder_pairs(blur_dir, sharp_dir)
            total = len(matches)
            pairs = load_folder_pairs(matches)
        with tqdm(total=total, unit="img", desc="evaluating", disable=no_progress, leave=False) as bar:
            results = run_eval(pairs, model, align=align, save_dir=save_dir, progress=bar.update)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in format_table(results, rows):
        click.echo(line)
    if csv_path is None and save_dir is not None:
        csv_path = Path(save_dir) / "metrics.csv"
    if csv_path is not None:
        click.echo(f"csv: {write_csv(csv_path, results)}")
    if results and model is not None:
        m = mean_row(results)
        click.echo(f"mean gain over the blurred input: {m['gain_psnr']:+.2f} dB PSNR, {m['gain_ssim']:+.4f} SSIM"
                   f" ({len(results)} images)")
    skipped = getattr(pairs, "skipped", 0)
    if skipped:
        click.echo(f"left out {skipped} corrupt sample(s); run blursynth inspect {data} --verify")
