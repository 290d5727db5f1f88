"""`blursynth inspect RUN_DIR`: a run's summary, and optionally its shards verified and a preview sheet."""
from __future__ import annotations

import sys

import click


@click.command("inspect")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--verify", "check", is_flag=True,
              help="Recompute every shard's checksum and compare indices and counts with the manifest.")
@click.option("--preview", "preview_png", type=click.Path(dir_okay=False), default=None,
              help="Write a contact sheet PNG: sharp | blurred | blur map, one row per sample.")
@click.option("--n", "n", type=click.IntRange(min=1), default=8, show_default=True, help="Rows of the preview.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def inspect_run(run_dir, check, preview_png, n, no_progress):
    """Summarize the run in RUN_DIR; optionally verify its shards and write a preview."""
    from tqdm import tqdm

    from ..inspect import format_summary, preview, summarize, verify
    from ..store.manifest import Manifest

    try:
        manifest = Manifest.load(run_dir)  # for the progress totals; its errors name the path
        with tqdm(total=manifest.num_written, unit="pair", desc="reading meta", leave=False,
                  disable=no_progress) as bar:
            summary = summarize(run_dir, progress=bar.update)
        for line in format_summary(summary):
            click.echo(line)
        result = None
        if check:
            with tqdm(total=summary["shards"]["total_bytes"], unit="B", unit_scale=True, desc="verifying",
                      leave=False, disable=no_progress) as bar:
                result = verify(run_dir, progress=bar.update)
            for line in result.lines():
                click.echo(line)
        if preview_png is not None:
            click.echo(f"preview: {preview(run_dir, preview_png, n=n)}")
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if result is not None and not result.ok:
        sys.exit(1)
