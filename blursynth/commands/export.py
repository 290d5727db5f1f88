"""``blursynth export``. Only click and the writer table (for --format's choices) are imported here; the export
code loads inside the command."""
from __future__ import annotations

import click

from ..writers import EXPORT_FORMATS, formats_help


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help=formats_help(EXPORT_FORMATS))
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="New output directory.")
@click.option("--split", default="train", show_default=True, help="gopro: split folder name.")
@click.option("--samples-per-tar", type=click.IntRange(min=1), default=1000, show_default=True,
              help="webdataset: samples per tar shard.")
@click.option("--skip-corrupt", is_flag=True,
              help="Leave out samples whose stored records are corrupt (counted in the summary) instead of stopping.")
@click.option("--no-progress", is_flag=True)
def export(run_dir, fmt, out, split, samples_per_tar, skip_corrupt, no_progress):
    """Export the pairs of RUN_DIR for other trainers (BasicSR/NAFNet LMDB, GoPro folders, WebDataset)."""
    from tqdm import tqdm

    from ..store.export import export as run_export
    from ..store.manifest import Manifest

    try:
        total = Manifest.load(run_dir).num_written
        with tqdm(total=total, unit="pair", desc=f"export {fmt}", disable=no_progress, leave=False) as bar:
            summary = run_export(run_dir, out, fmt, split=split, samples_per_tar=samples_per_tar, progress=bar.update,
                                 on_corrupt="skip" if skip_corrupt else "error")
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    skipped = summary.pop("skipped_corrupt")
    details = {k: v for k, v in summary.items() if k not in ("format", "out", "samples")}
    extra = ", ".join(f"{k}: {', '.join(v) if isinstance(v, list) and len(v) <= 4 else (f'{len(v)} files' if isinstance(v, list) else v)}"
                      for k, v in details.items())
    click.echo(f"exported {summary['samples']} pairs to {summary['out']} ({fmt}; {extra})")
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        click.echo(f"left out {len(skipped)} corrupt sample(s) ({shown}); run blursynth inspect {run_dir} --verify")
