"""`blursynth events INPUT --out DIR`: event streams from a video, a folder of frames, or a generated run.

- video file: decoded with OpenCV, linearized (sRGB), latent frames between consecutive frames by flow
  interpolation (blursynth.video), luminance, simulated; one stream for the clip (timestamps: frame j at j / fps).
- folder of frames: images sorted by name plus a timestamps file (one time in seconds per line, as many as
  frames; `timestamps.txt` in the folder or --timestamps), used as they are (no interpolation).
- generated run (a directory with manifest.json): each written sample's scene is re-derived from the run's
  recipe, seed and index (generation is deterministic) and its exposure (plus gap) simulated with the recipe's
  events section, overridden by the flags given here.

Formats: h5 (DSEC-style, events/{t,x,y,p}), npz, gem (per-sample GEM-style npz; runs only).
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..recipe import EVENT_NOISE_PRESETS


@click.command("events")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--format", "fmt", type=click.Choice(["h5", "npz", "gem"]), default="h5", show_default=True,
              help="h5 (DSEC-style), npz, or gem (per-sample GEM-style npz; generated runs only).")
@click.option("--threshold", type=float, default=None, help="ON and OFF contrast threshold, log units [0.2].")
@click.option("--threshold-neg", type=float, default=None, help="OFF threshold when it differs from ON.")
@click.option("--refractory-s", type=float, default=None, help="Refractory period, seconds [0].")
@click.option("--scale", type=click.IntRange(min=1), default=None, help="Events at 1/SCALE resolution [1].")
@click.option("--noise", type=click.Choice(list(EVENT_NOISE_PRESETS)), default=None,
              help="v2e noise preset [ideal].")
@click.option("--random-reference/--no-random-reference", default=None,
              help="Random initial reference per pixel (no first-frame ghost).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise (videos and folders).")
@click.option("--latent", default="auto", show_default=True,
              help="Video: latent frames per frame interval (int, or auto: about one pixel of motion each).")
@click.option("--timestamps", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Folder input: file with one time in seconds per frame (default INPUT/timestamps.txt).")
@click.option("--num", type=click.IntRange(min=1), default=None, help="Run input: only the first NUM samples.")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]|auto",
              help="Where the simulator (and, for a run, the latent frames) runs: cpu, cuda, cuda:N or auto (cuda "
                   "when it can run here). Same events on either; a noise model runs on the CPU.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def events(input_path, out, fmt, threshold, threshold_neg, refractory_s, scale, noise, random_reference, seed,
           latent, timestamps, num, device, no_progress):
    """Simulate event streams from INPUT (video file, folder of frames + timestamps, or generated run)."""
    from .options import command_line, resolve_device_option
    from ..store.rundir import RunError
    from .events_run import EventOptions, InputError, run_events

    device = resolve_device_option(device)

    opts = EventOptions(threshold_pos=threshold, threshold_neg=threshold_neg if threshold_neg is not None
                        else threshold, refractory_s=refractory_s, scale=scale, noise=noise,
                        random_reference=random_reference, seed=seed)
    if latent != "auto":
        try:
            latent = int(latent)
            assert latent >= 1
        except (ValueError, AssertionError):
            raise click.BadParameter(f"{latent!r}: expected a positive integer or 'auto'", param_hint="--latent")
    start = time.perf_counter()
    command = command_line()
    try:
        summary = run_events(Path(input_path), Path(out), fmt, opts, latent=latent, timestamps=timestamps, num=num,
                             progress=not no_progress, device=device, command=command)
    except (InputError, RunError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    seconds = time.perf_counter() - start
    click.echo(f"{summary['kind']} {input_path}: {summary['streams']} stream(s), {summary['events']} events "
               f"({summary['frames']} frames simulated on {device}) in {seconds:.1f} s -> {out}")
    for skip in summary.get("skipped", []):
        click.echo(f"skipped {skip['index']}: {skip['reason']}")
    click.echo(f"summary: {Path(out) / 'events.json'}")
