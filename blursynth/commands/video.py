"""`blursynth video VIDEO... --out DIR`: blurred/sharp data from real clips (flow-interpolated exposures).

Only click, the shake-model table (for --shake's choices) and the writer table (--format's) are imported here; the stages load inside the
command, so `blursynth --help` stays fast.
"""
from __future__ import annotations

import os

import click

from ..motion.shake import SHAKE_MODELS
from ..writers import VIDEO_FORMATS, formats_help


def _latent(value: str) -> str:
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return text
    raise click.BadParameter(f"{value!r}: use a whole number >= 1 or 'auto'", param_hint="--latent")


@click.command("video")
@click.argument("videos", nargs=-1, required=True)
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--recipe", default=None, help="Video recipe name (pipelines/*-video.yaml: gopro-video, reds-video) "
              "or YAML path; default: the built-in defaults.")
@click.option("--format", "fmt", type=click.Choice(VIDEO_FORMATS), default=None,
              help=f"{formats_help(VIDEO_FORMATS)} (default: the recipe's, lmdb).")
@click.option("--fps", type=float, default=None, help="Output frame rate (default: the input's).")
@click.option("--duty-cycle", type=float, default=None, help="Exposure as a fraction of the output frame interval, (0, 1].")
@click.option("--latent", default=None, help="Latent frames per input interval: N or auto (about 1 px per step).")
@click.option("--gamma", type=float, default=None,
              help="Average in gamma G space: 1 averages the encoded values (GoPro's blur), 2.2 GoPro's blur_gamma "
                   "(default: sRGB linearization).")
@click.option("--noise/--no-noise", default=None, help="Poisson-Gaussian sensor noise on the blurred frames.")
@click.option("--shake", type=click.Choice(list(SHAKE_MODELS)), default=None,
              help="Add camera shake on top of the clip's motion with this model.")
@click.option("--resize", default=None, help="Output WIDTHxHEIGHT (after --crop).")
@click.option("--crop", default=None, help="Crop X,Y,WIDTH,HEIGHT of the decoded frames.")
@click.option("--max-frames", type=click.IntRange(min=3), default=None, help="Use only the first N frames of each clip.")
@click.option("--window", type=click.IntRange(min=1), default=None, help="lmdb: output frames per record (default 5).")
@click.option("--flow-preset", type=click.Choice(["ultrafast", "fast", "medium"]), default=None, help="DIS preset.")
@click.option("--flow-scale", default=None,
              help="Compute flow at this fraction of the resolution, or auto (about 640x360 pixels; the default).")
@click.option("--no-filters", is_flag=True, help="Keep every output frame (no dark / static / texture filter).")
@click.option("--events", is_flag=True, default=False, help="lmdb: also simulate events per window.")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Override a video recipe field, e.g. --set flow.scale=0.5 (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Ray workers on this machine (default: all cores, at most one per clip); 0 runs in-process.")
@click.option("--address", default=None, help="Join an existing Ray cluster (auto or HOST:PORT).")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]|auto",
              help="Where the clip's GPU stages run (the event simulation with --events): cpu, cuda (with Ray, the "
                   "GPU each task gets), cuda:N (--workers 0) or auto.")
@click.option("--gpu-workers", type=click.IntRange(min=1), default=None,
              help="With --device cuda and Ray: clip tasks sharing each GPU (default: CPUs per GPU, at most 8).")
@click.option("--resume", is_flag=True, help="Finish an interrupted run in --out (finished clips are kept).")
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and the clips, and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def video(videos, out, recipe, fmt, fps, duty_cycle, latent, gamma, noise, shake, resize, crop, max_frames, window, flow_preset,
          flow_scale, no_filters, events, overrides, seed, workers, address, device, gpu_workers, resume, dry_run,
          no_progress):
    """Blurred/sharp pairs from real VIDEOS (files or folders) by flow-interpolated exposures."""
    from .options import command_line, echo_settings, option_sets, parse_size, resolve_device_option
    from ..recipe import RecipeError
    from ..store.rundir import RunError
    from .video_run import plan_clips, run_video
    from ..video.recipe import load_video_recipe

    device = resolve_device_option(device)

    sets = option_sets([("output.format", fmt), ("fps", fps), ("duty_cycle", duty_cycle),
                        ("latent", None if latent is None else _latent(latent)), ("camera.gamma", gamma),
                        ("camera.noise", noise)])
    if shake is not None:
        sets.append(f"shake.models={{{shake}: 1.0}}")
    if resize is not None:
        w, h = parse_size(resize)
        sets.append(f"resize=[{w}, {h}]")
    if crop is not None:
        parts = crop.replace("x", ",").split(",")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            raise click.BadParameter(f"{crop!r} is not X,Y,WIDTH,HEIGHT", param_hint="--crop")
        sets.append(f"crop=[{', '.join(p.strip() for p in parts)}]")
    sets += option_sets([("max_frames", max_frames), ("output.window", window), ("flow.preset", flow_preset),
                         ("flow.scale", flow_scale)])
    if no_filters:
        sets += ["filters.min_brightness=0", "filters.max_psnr_db=null", "filters.min_texture=0"]
    if events:
        sets.append("output.events=true")
    sets += list(overrides)
    try:
        resolved = load_video_recipe(recipe, sets)
    except RecipeError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        clips = plan_clips(list(videos))
        if dry_run:
            echo_settings(resolved)
            for c in clips:
                click.echo(f"clip {c.ordinal}: {c.name} <- {c.path}")
            return
        if workers is None:
            workers = 0 if address or device.startswith("cuda:") else min(os.cpu_count() or 1, len(clips))
            workers = 0 if workers == 1 and not address else workers
        command = command_line()
        summary = run_video(resolved, list(videos), out, seed=seed, resume=resume, command=command,
                            progress=not no_progress, workers=workers, address=address, device=device,
                            gpu_workers=gpu_workers)
    except (RunError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in summary.lines():
        click.echo(line)
