"""A run's summary: counts, skipped inputs by reason, shards, recipe, versions, and the distribution of blur
magnitude over every written sample (from each sample's ``meta["blur_px"]``); ``format_summary`` turns it into
lines for a terminal.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import lmdb
import numpy as np

from ..store.codec import decode_meta
from ..store.errors import CorruptRecordError
from ..store.shard import ShardReader, is_complete
from .common import _load_manifest, _megabytes, _one_line

# Bins of the per-sample mean blur magnitude, in px: [0, 1), [1, 2), [2, 4), ..., [128, inf).
BLUR_BIN_EDGES_PX = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, math.inf)
PERCENTILES = (5, 50, 95)
SKIP_EXAMPLES = 3

_BAR_WIDTH = 40


def summarize(run_dir: str | os.PathLike, progress: Callable[[int], None] | None = None) -> dict:
    """What a run holds, from its manifest and the meta of every written sample.

    Reads each listed shard once (the ``meta`` record of each of its samples, about 30-50 us per sample,
    mostly JSON decoding); a shard that is missing or unreadable is listed under ``unreadable_shards`` and
    left out of the blur statistics (``verify`` says more).

    Args:
        run_dir: output directory of a run.
        progress: optional callable(n_samples: int), called after each listed shard with its sample count.

    Returns:
        A JSON-compatible dict (except the last bin edge, ``math.inf``)::

            run_dir, recipe (name), seed, codec, image_size [W, H], created, command, format_version,
            source (the --source of the run, if recorded), versions {library: version},
            counts {requested, written, skipped, pending}   pending = requested - written - skipped
            skipped {reason: {count, examples: [source_id, ...]}}   sorted by reason
            shards {count, total_bytes, shard_size, samples_min, samples_max, samples_mean}
            fields [field names stored, union over shards]
            blur_px {bin_edges, counts, samples, no_blur_px,
                     mean_percentiles {p5, p50, p95, max}, p95_percentiles {p5, p50, p95, max}}
            unreadable_shards [{name, error}]

        ``blur_px.counts[i]`` counts samples whose ``meta["blur_px"]["mean"]`` lies in
        ``[bin_edges[i], bin_edges[i + 1])``; it sums to ``counts.written`` minus unreadable and
        ``no_blur_px`` samples. Percentiles are over samples (one value per sample), in px.

    Raises:
        FileNotFoundError: ``run_dir`` is not a blursynth run (no manifest.json).
        ValueError: the manifest is corrupt.
    """
    run_dir = Path(run_dir)
    manifest = _load_manifest(run_dir)
    means: list[float] = []
    p95s: list[float] = []
    no_blur_px = 0
    stored_fields: set[str] = set()
    unreadable = []
    for info in manifest.shards:
        try:
            shard_fields, metas = _read_metas(run_dir / info.name, info.indices)
        except (OSError, KeyError, ValueError, lmdb.Error, CorruptRecordError) as exc:
            unreadable.append({"name": info.name, "error": _one_line(exc)})
            shard_fields, metas = [], []
        stored_fields.update(shard_fields)
        for meta in metas:
            blur_px = meta.get("blur_px")
            if not isinstance(blur_px, dict) or "mean" not in blur_px:
                no_blur_px += 1
                continue
            means.append(float(blur_px["mean"]))
            p95s.append(float(blur_px.get("p95", math.nan)))
        if progress is not None:
            progress(info.count)

    counts_per_shard = [s.count for s in manifest.shards]
    written = manifest.num_written
    return {
        "run_dir": str(run_dir),
        "recipe": manifest.recipe.get("name", "?"),
        "seed": manifest.seed,
        "codec": manifest.codec,
        "image_size": list(manifest.image_size),
        "created": manifest.created,
        "command": manifest.command,
        "format_version": manifest.format_version,
        "source": manifest.extra.get("source"),
        "versions": dict(manifest.versions),
        "counts": {
            "requested": manifest.num_requested,
            "written": written,
            "skipped": len(manifest.skipped),
            "pending": max(0, manifest.num_requested - written - len(manifest.skipped)),
        },
        "skipped": _skipped_by_reason(manifest.skipped),
        "shards": {
            "count": len(manifest.shards),
            "total_bytes": sum(s.nbytes for s in manifest.shards),
            "shard_size": manifest.extra.get("shard_size"),
            "samples_min": min(counts_per_shard, default=0),
            "samples_max": max(counts_per_shard, default=0),
            "samples_mean": float(np.mean(counts_per_shard)) if counts_per_shard else 0.0,
        },
        "fields": sorted(stored_fields),
        "blur_px": {
            "bin_edges": list(BLUR_BIN_EDGES_PX),
            "counts": blur_histogram(means),
            "samples": len(means),
            "no_blur_px": no_blur_px,
            "mean_percentiles": _percentiles(means),
            "p95_percentiles": _percentiles([v for v in p95s if not math.isnan(v)]),
        },
        "unreadable_shards": unreadable,
    }


def blur_histogram(values_px, edges=BLUR_BIN_EDGES_PX) -> list[int]:
    """Counts of ``values_px`` per bin ``[edges[i], edges[i + 1])``; values below ``edges[0]`` go to bin 0."""
    values = np.asarray(values_px, np.float64).ravel()
    edges = np.asarray(edges, np.float64)
    bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(bins, minlength=len(edges) - 1).tolist()


def format_summary(summary: dict) -> list[str]:
    """Human-readable lines for ``summarize``'s dict, with a text bar chart of the blur histogram."""
    s = summary
    width, height = s["image_size"]
    lines = [
        f"run {s['run_dir']}",
        f"  recipe {s['recipe']}, seed {s['seed']}, {width}x{height} px, codec {s['codec']}"
        + (f", source {s['source']}" if s.get("source") else ""),
        f"  created {s['created']}" + (f" by: {s['command']}" if s.get("command") else ""),
    ]
    c = s["counts"]
    line = f"samples: {c['written']} written, {c['skipped']} skipped of {c['requested']} requested"
    if c["pending"]:
        line += f"; {c['pending']} not yet made (interrupted run? generate --resume finishes it)"
    lines.append(line)
    for reason, entry in s["skipped"].items():
        examples = ", ".join(entry["examples"])
        lines.append(f"  skipped {entry['count']} x {reason} (e.g. {examples})")
    sh = s["shards"]
    per_shard = (f"{sh['samples_min']}" if sh["samples_min"] == sh["samples_max"]
                 else f"{sh['samples_min']}-{sh['samples_max']} (mean {sh['samples_mean']:.1f})")
    lines.append(f"shards: {sh['count']}, {_megabytes(sh['total_bytes'])}, samples per shard {per_shard}"
                 + (f" (shard size {sh['shard_size']})" if sh.get("shard_size") else ""))
    if s["fields"]:
        lines.append(f"fields: {', '.join(s['fields'])}")
    for entry in s["unreadable_shards"]:
        lines.append(f"  UNREADABLE {entry['name']}: {entry['error']} (run inspect --verify)")

    b = s["blur_px"]
    lines.append(f"blur magnitude, per-sample mean (px), {b['samples']} samples:")
    peak = max(b["counts"], default=0)
    labels = [f"[{_edge(lo)}, {_edge(hi)})" for lo, hi in zip(b["bin_edges"][:-1], b["bin_edges"][1:])]
    label_width = max(len(t) for t in labels)
    count_width = len(str(peak))
    for label, count in zip(labels, b["counts"]):
        bar = "#" * (math.ceil(_BAR_WIDTH * count / peak) if peak else 0)
        lines.append(f"  {label:>{label_width}} {count:>{count_width}} {bar}")
    for key, name in (("mean_percentiles", "mean"), ("p95_percentiles", "p95")):
        pct = b[key]
        if pct:
            lines.append(f"  per-sample {name:<4} px: " + ", ".join(f"{k} {v:.2f}" for k, v in pct.items()))
    if b["no_blur_px"]:
        lines.append(f"  {b['no_blur_px']} samples have no blur_px in their meta")
    if s["versions"]:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(s["versions"].items())))
    return lines


def _read_metas(path: Path, indices: list[int]) -> tuple[list[str], list[dict]]:
    """Field names and decoded ``meta`` of ``indices`` in one complete shard."""
    if not is_complete(path):
        raise FileNotFoundError(f"{path.name} is missing or incomplete")
    reader = ShardReader(path)
    try:
        return reader.fields(), [decode_meta(reader.get(i, "meta")) for i in indices]
    finally:
        reader.close()


def _skipped_by_reason(skipped: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for entry in skipped:
        group = out.setdefault(str(entry.get("reason", "?")), {"count": 0, "examples": []})
        group["count"] += 1
        source_id = str(entry.get("source_id", "?"))
        if len(group["examples"]) < SKIP_EXAMPLES and source_id not in group["examples"]:
            group["examples"].append(source_id)
    return dict(sorted(out.items()))


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values, np.float64)
    out = {f"p{q}": float(np.percentile(a, q)) for q in PERCENTILES}
    out["max"] = float(a.max())
    return out


def _edge(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:g}"
