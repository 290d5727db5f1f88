"""Inspect a finished (or interrupted) run: what it holds, whether its shards are intact, what it looks like.

- ``summarize(run_dir)`` (``summary.py``): counts, skipped inputs by reason, shards, recipe, versions, and the
  distribution of blur magnitude over every written sample (from each sample's ``meta["blur_px"]``);
  ``format_summary`` turns it into lines for a terminal.
- ``verify(run_dir)`` (``verify.py``): every shard the manifest lists exists, is complete, and still has the
  checksum, indices and count the manifest recorded, and every record its digest (naming the samples that fail);
  shard directories the manifest does not list are warnings.
  Reads only: shards are opened read-only without a lock file, nothing is written or removed.
- ``preview(run_dir, png_path)`` (``preview.py``): a contact sheet, one row ``sharp | blurred | blur map`` per
  sample.

Everything goes through ``Manifest`` and ``ShardReader``; only shards listed in the manifest are part of
the dataset, exactly as ``ShardDataset`` sees it. ``common.py`` opens a run's manifest for all three.
"""
from .preview import (
    PLACEHOLDER_GREY,
    PLACEHOLDER_TEXT,
    PREVIEW_BACKGROUND,
    PREVIEW_COLUMNS,
    PREVIEW_HEADER_PX,
    PREVIEW_LABEL_PX,
    PREVIEW_MARGIN_PX,
    blur_map_rgb,
    choose_samples,
    preview,
)
from .summary import BLUR_BIN_EDGES_PX, PERCENTILES, SKIP_EXAMPLES, blur_histogram, format_summary, summarize
from .verify import Finding, VerifyResult, verify

__all__ = [
    "BLUR_BIN_EDGES_PX", "PERCENTILES", "SKIP_EXAMPLES", "blur_histogram", "format_summary", "summarize",
    "Finding", "VerifyResult", "verify",
    "PLACEHOLDER_GREY", "PLACEHOLDER_TEXT", "PREVIEW_BACKGROUND", "PREVIEW_COLUMNS", "PREVIEW_HEADER_PX",
    "PREVIEW_LABEL_PX", "PREVIEW_MARGIN_PX", "blur_map_rgb", "choose_samples", "preview",
]
