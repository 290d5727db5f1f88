"""`blursynth adapt VIDEO_OR_DIR... --out DIR`: pairs for test-time adaptation from the target's own videos."""
from __future__ import annotations


import click


@click.command("adapt")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--recipe", default="adapt", show_default=True, help="Settings name (pipelines/) or YAML path.")
@click.option("--ratio", type=float, default=None, help="Sharpest share of each video's patches kept (default 0.2).")
@click.option("--max-blur-px", type=float, default=None,
              help="Never take a patch the flow says moved more than this during the exposure, px (default 0: "
                   "no cap).")
@click.option("--patch-size", type=int, default=None, help="Side of the patches and of the pairs, px (default 256).")
@click.option("--exposure-ratio", type=float, default=None,
              help="Exposure time / frame interval of the target camera (default 0.5).")
@click.option("--pairs-per-patch", type=int, default=None, help="Pairs drawn per pseudo-sharp patch (default 1).")
@click.option("--max-pairs", type=int, default=None, help="Keep at most this many pairs (patches evenly subsampled).")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed.")
@click.option("--shard-size", type=int, default=256, show_default=True, help="Pairs per LMDB shard.")
@click.option("--codec", default=None, help="Image codec: png, qoi or zstd (default: the settings').")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Override a setting, e.g. --set domain.flow_scale=1 (repeatable).")
@click.option("--resume", is_flag=True, help="Finish an interrupted run in --out.")
@click.option("--dry-run", is_flag=True, help="Print the resolved settings and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def adapt(inputs, out, recipe, ratio, max_blur_px, patch_size, exposure_ratio, pairs_per_patch, max_pairs, seed,
          shard_size, codec, overrides, resume, dry_run, no_progress):
    """Test-time reblurring: find the sharpest patches of the blurry INPUTS (video files, BSD-style folders with
    Blur/RGB/*.png, folders of frames), measure how that domain blurs and how noisy it is, and reblur the
    patches with matching blur and noise into LMDB shards in OUT (read them with ShardDataset, fine-tune with
    `blursynth train`)."""
    from .options import command_line, echo_settings, option_sets
    from ..recipe import RecipeError
    from ..adapt.run import AdaptError, run_adapt
    from ..adapt.settings import load_settings

    sets = list(overrides) + option_sets([
        ("sharpness.ratio", ratio), ("sharpness.max_blur_px", max_blur_px), ("sharpness.patch_size", patch_size),
        ("domain.exposure_ratio", exposure_ratio), ("reblur.pairs_per_patch", pairs_per_patch),
        ("output.codec", codec)])
    try:
        settings = load_settings(recipe, sets)
    except RecipeError as exc:
        raise click.UsageError(str(exc)) from exc
    if dry_run:
        echo_settings(settings)
        return
    command = command_line()
    try:
        summary = run_adapt(list(inputs), out, settings, seed=seed, shard_size=shard_size, max_pairs=max_pairs,
                            resume=resume, command=command, progress=not no_progress)
    except AdaptError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in summary.lines():
        click.echo(line)
