"""`blursynth generate --num N --out DIR`: segmentation-based non-uniform blur, written to LMDB shards."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..recipe import RecipeError, load_recipe
from ..sources import SOURCES, spec_forms
from .options import Count, command_line, echo_settings, option_sets, parse_size, resolve_device_option


@click.command()
@click.option("--num", "num", type=Count(), required=True, help="Samples to make: 1000, 1k, 100k, 1M.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--recipe", default="default", show_default=True, help="Recipe name (blursynth/pipelines/) or YAML path.")
@click.option("--source", default="builtin", show_default=True,
              help=f"{spec_forms(described=True)}.")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed.")
@click.option("--size", default=None,
              help="Output WIDTHxHEIGHT (default: the recipe's, 1280x720); the recipe's blur lengths in pixels scale "
                   "with the width (reference_width).")
@click.option("--shard-size", type=int, default=256, show_default=True, help="Samples per LMDB shard.")
@click.option("--codec", default=None, help="Image codec: png, qoi or zstd (default: the recipe's).")
@click.option("--blur-map/--no-blur-map", default=None, help="Also store the blur map (ID-Blau u_x, u_y, px).")
@click.option("--events/--no-events", "events", default=None,
              help="Also simulate and store each sample's event stream (the recipe's events section).")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Override a recipe field, e.g. --set camera.gain=[1,1] (repeatable).")
@click.option("--sam-checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Segment folder:DIR photos with segment-anything using this local checkpoint (never downloaded).")
@click.option("--sam-model", type=click.Choice(["vit_b", "vit_l", "vit_h", "tiny"]), default=None,
              help="SAM model of --sam-checkpoint (default vit_b); tiny without a checkpoint has random weights "
                   "(tests only).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Ray workers on this machine (default: all cores); 0 runs in-process, for debugging.")
@click.option("--address", default=None, help="Join an existing Ray cluster (auto or HOST:PORT); --out must be "
              "visible to every node.")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]|auto",
              help="Where render, camera and events run: cpu (numba), cuda (csrc/ kernels; with Ray each worker "
                   "uses the GPU Ray gives it), cuda:N (in-process, --workers 0), auto (cuda when it can run here).")
@click.option("--gpu-workers", type=click.IntRange(min=1), default=None,
              help="With --device cuda and Ray: workers sharing each GPU, 1/K of it each (default: CPUs per GPU, "
                   "at most 8).")
@click.option("--resume", is_flag=True, help="Finish an interrupted run in --out (complete shards are kept).")
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def generate(num, out, recipe, source, seed, size, shard_size, codec, blur_map, events, overrides, sam_checkpoint,
             sam_model, workers, address, device, gpu_workers, resume, dry_run, no_progress):
    """Segmentation-based non-uniform blur: sharp/blurred pairs written to LMDB shards in OUT."""
    from ..runner import RunError, run_generate

    sets = list(overrides)
    if size is not None:
        w, h = parse_size(size)
        sets.append(f"size=[{w}, {h}]")
    sets += option_sets([("output.codec", codec), ("output.blur_map", blur_map), ("events.enabled", events)])
    try:
        resolved = load_recipe(recipe, sets)
    except RecipeError as exc:
        raise click.UsageError(str(exc)) from exc
    if dry_run:
        echo_settings(resolved)
        return
    device = resolve_device_option(device, resolved.render.method)
    sam = _sam_options(source, sam_checkpoint, sam_model)
    command = command_line()
    try:
        if workers is None:
            workers = 0 if address or device.startswith("cuda:") else (os.cpu_count() or 1)
        summary = run_generate(resolved, source, num, out, seed=seed, shard_size=shard_size, resume=resume,
                               command=command, progress=not no_progress, workers=workers, address=address, sam=sam,
                               device=device, gpu_workers=gpu_workers)
    except (RunError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in summary.lines():
        click.echo(line)


def _sam_options(source: str, checkpoint: str | None, model: str | None) -> dict | None:
    """SamSegmenter arguments from the flags, with the checkpoint loaded once here so that a missing or mismatched
    file fails before any work starts."""
    if checkpoint is None and model is None:
        return None
    kind, _, arg = source.partition(":")
    if not (kind in SOURCES and SOURCES[kind].segments and arg):
        raise click.UsageError("--sam-checkpoint/--sam-model apply to --source folder:DIR only")
    model = model or "vit_b"
    if checkpoint is None and model != "tiny":
        raise click.UsageError(f"--sam-model {model} needs --sam-checkpoint PATH")
    from ..segment.sam import SamSegmenter

    sam = {"checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()), "model_type": model}
    try:
        SamSegmenter(**sam).model
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    return sam
