"""Inspect a finished (or interrupted) run: what it holds, whether its shards are intact, what it looks like.

- ``summarize(run_dir)``: counts, skipped inputs by reason, shards, recipe, versions, and the distribution of
  blur magnitude over every written sample (from each sample's ``meta["blur_px"]``); ``format_summary``
  turns it into lines for a terminal.
- ``verify(run_dir)``: every shard the manifest lists exists, is complete, and still has the checksum,
  indices and count the manifest recorded, and every record its digest (naming the samples that fail);
  shard directories the manifest does not list are warnings.
  Reads only: shards are opened read-only without a lock file, nothing is written or removed.
- ``preview(run_dir, png_path)``: a contact sheet, one row ``sharp | blurred | blur map`` per sample.

Everything goes through ``Manifest`` and ``ShardReader``; only shards listed in the manifest are part of
the dataset, exactly as ``ShardDataset`` sees it.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import lmdb
import numpy as np

from .seeding import stage_rng
from .store.codec import decode_array, decode_image, decode_meta
from .store.errors import CorruptRecordError
from .store.manifest import MANIFEST_NAME, Manifest
from .store.shard import ShardInfo, ShardReader, is_complete

# Bins of the per-sample mean blur magnitude, in px: [0, 1), [1, 2), [2, 4), ..., [128, inf).
BLUR_BIN_EDGES_PX = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, math.inf)
PERCENTILES = (5, 50, 95)
SKIP_EXAMPLES = 3

# Contact-sheet layout, in px (see ``preview``).
PREVIEW_MARGIN_PX = 4
PREVIEW_HEADER_PX = 18
PREVIEW_LABEL_PX = 16
PREVIEW_COLUMNS = ("sharp", "blurred", "blur map")
PREVIEW_BACKGROUND = 24
PLACEHOLDER_GREY = 128
PLACEHOLDER_TEXT = ("no blur map", "(generate --blur-map)")

_BAR_WIDTH = 40
_SHARD_DIR = re.compile(r"^shard-\d+\.lmdb(\.tmp|\.old)?$")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_MIN_FONT_SCALE = 0.25
_TEXT_COLOUR = (230, 230, 230)


# ---------------------------------------------------------------------------------------------- summarize


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


# ------------------------------------------------------------------------------------------------- verify


@dataclass
class Finding:
    """One problem or warning; ``shard`` is the shard directory name, None for the run as a whole."""

    shard: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.shard}: {self.message}" if self.shard else self.message


@dataclass
class VerifyResult:
    """Outcome of ``verify``. ``ok`` is False when there is any problem; warnings do not fail a run."""

    run_dir: Path
    shards_checked: int = 0
    samples_checked: int = 0
    bytes_checked: int = 0
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        verdict = "OK" if self.ok else f"FAILED, {len(self.problems)} problem(s)"
        out = [f"verify {self.run_dir}: {self.shards_checked} shards, {self.samples_checked} samples, "
               f"{_megabytes(self.bytes_checked)}: {verdict}"]
        out += [f"  problem: {p}" for p in self.problems]
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def verify(run_dir: str | os.PathLike, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Check every shard of the manifest against what the manifest recorded about it.

    Per listed shard: the directory exists and is complete (``is_complete``), the checksum recomputed from
    the stored records equals the manifest's and every record matches the digest stored with it (one pass,
    ``ShardReader.scan``; the failing samples are named), and the stored sample indices and their count equal
    the manifest's. Across the run: no sample index in two shards or both written and
    skipped. Shard directories on disk that the manifest does not list (complete ones, ``.tmp`` leftovers
    of an interrupted write, ``.old`` leftovers of an interrupted replacement) are warnings, and so is a
    run with samples not yet made. Nothing is modified.

    Args:
        run_dir: output directory of a run.
        progress: optional callable(nbytes: int), called after each listed shard with the bytes of its
            records as the manifest counts them (``ShardInfo.nbytes``), the data the checksum reads.

    Raises:
        FileNotFoundError: ``run_dir`` is not a blursynth run (no manifest.json).
        ValueError: the manifest is corrupt.
    """
    run_dir = Path(run_dir)
    manifest = _load_manifest(run_dir)
    result = VerifyResult(run_dir=run_dir)
    owner: dict[int, str] = {}
    for info in manifest.shards:
        result.problems += _verify_shard(run_dir, info)
        result.shards_checked += 1
        result.samples_checked += info.count
        result.bytes_checked += info.nbytes
        again = [i for i in info.indices if i in owner]
        if again:
            result.problems.append(Finding(info.name, f"{len(again)} sample(s) also listed in an earlier shard "
                                                      f"(e.g. sample {again[0]} in {owner[again[0]]})"))
        for index in info.indices:
            owner.setdefault(index, info.name)
        if progress is not None:
            progress(info.nbytes)

    both = sorted({s["index"] for s in manifest.skipped} & owner.keys())
    if both:
        result.problems.append(Finding(None, f"{len(both)} sample(s) both written and listed as skipped "
                                             f"(e.g. {', '.join(map(str, both[:5]))})"))
    pending = manifest.num_requested - manifest.num_written - len(manifest.skipped)
    if pending > 0:
        result.warnings.append(Finding(None, f"{pending} of {manifest.num_requested} requested samples not made "
                                             "yet (interrupted run; generate --resume finishes it)"))
    result.warnings += _unlisted(run_dir, {s.name for s in manifest.shards})
    return result


def _verify_shard(run_dir: Path, info: ShardInfo) -> list[Finding]:
    path = run_dir / info.name
    if not path.exists():
        return [Finding(info.name, "listed in manifest.json but missing on disk")]
    if not is_complete(path):
        return [Finding(info.name, "listed in manifest.json but incomplete (no data.mdb)")]
    found = []
    reader = ShardReader(path)
    try:
        indices = reader.indices()
        if len(indices) != info.count:
            found.append(Finding(info.name, f"holds {len(indices)} samples, manifest.json says {info.count}"))
        if indices != info.indices:
            first = next((k for k, (a, b) in enumerate(zip(indices, info.indices)) if a != b),
                         min(len(indices), len(info.indices)))
            found.append(Finding(info.name, f"sample indices differ from manifest.json's from position {first} "
                                            f"(stored {indices[first:first + 3]}, "
                                            f"manifest {info.indices[first:first + 3]})"))
        checksum, bad = reader.scan()
        named = ", ".join(f"sample {i} {f}" for i, f in bad[:5]) + (", ..." if len(bad) > 5 else "")
        if checksum != info.checksum:
            note = f" ({len(bad)} record(s) fail their digest: {named})" if bad else ""
            found.append(Finding(info.name, f"checksum {checksum[:12]}... != manifest.json's "
                                            f"{info.checksum[:12]}...: stored data changed or is corrupt{note}"))
        elif bad:  # the records are as written, so it is the index holding their digests that changed
            found.append(Finding(info.name, f"the shard index is corrupt: {len(bad)} record(s) fail the digest "
                                            f"it stores: {named}"))
    except (OSError, ValueError, lmdb.Error, CorruptRecordError) as exc:
        found.append(Finding(info.name, f"cannot be read: {_one_line(exc)}"))
    finally:
        reader.close()
    return found


def _unlisted(run_dir: Path, listed: set[str]) -> list[Finding]:
    found = []
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        if name == MANIFEST_NAME + ".tmp":
            found.append(Finding(None, f"{name}: leftover of an interrupted manifest write; safe to delete"))
        if not _SHARD_DIR.match(name) or name in listed:
            continue
        if name.endswith(".tmp"):
            found.append(Finding(name, "partial shard left by an interrupted write, not part of the dataset "
                                       "(generate --resume removes it)"))
        elif name.endswith(".old"):
            found.append(Finding(name, "old copy left by an interrupted shard rewrite, not part of the dataset"))
        elif is_complete(entry):
            found.append(Finding(name, "complete shard not listed in manifest.json, not part of the dataset "
                                       "(generate --resume rewrites and lists it)"))
        else:
            found.append(Finding(name, "incomplete shard directory (no data.mdb) not listed in manifest.json"))
    return found


# ------------------------------------------------------------------------------------------------ preview


def preview(run_dir: str | os.PathLike, png_path: str | os.PathLike, n: int = 8, seed: int = 0,
            width: int = 256, max_blur_px: float | None = None) -> Path:
    """Write a contact sheet PNG: one row ``sharp | blurred | blur map`` per sample, for ``n`` samples.

    The samples are ``choose_samples(written, n, seed)``: one from each of ``n`` equal stretches of the
    run, in dataset order (the order of ``ShardDataset``). Every tile is resized to ``width`` px wide and
    ``tile_h = max(1, round(width * H / W))`` px high with ``cv2.INTER_AREA``. The blur map is drawn as an
    HSV colour wheel: hue = direction of (u_x, u_y) (x right, y down; 0 deg red = right, 90 deg = down),
    saturation 1, value = magnitude / scale clipped to 1, where scale is ``max_blur_px`` or, when None, the
    sample's own largest magnitude; a sample without a stored blur map gets a grey tile saying so.

    Layout, in px: a header band of ``PREVIEW_HEADER_PX`` with the column titles, then per row a label band
    of ``PREVIEW_LABEL_PX`` (sample index, source id, mean and max blur px) above the tiles and a gap of
    ``PREVIEW_MARGIN_PX`` below them. Sheet size: width ``M + 3 (width + M)``, height
    ``PREVIEW_HEADER_PX + rows (PREVIEW_LABEL_PX + tile_h + M)`` with M = ``PREVIEW_MARGIN_PX``; the tile of
    row r, column c has its top-left corner at x = M + c (width + M),
    y = PREVIEW_HEADER_PX + r (PREVIEW_LABEL_PX + tile_h + M) + PREVIEW_LABEL_PX.

    Args:
        run_dir: output directory of a run.
        png_path: where to write the sheet; must end in ``.png``, its folder must exist.
        n: number of rows (fewer when the run has fewer samples).
        seed: seed of the sample choice.
        width: tile width in px.
        max_blur_px: common magnitude scale of the blur-map tiles, px; None scales each tile by itself.

    Returns:
        ``png_path`` as a Path.

    Raises:
        FileNotFoundError: ``run_dir`` is not a blursynth run, or a chosen sample's shard is missing.
        ValueError: bad arguments, or a run with no written samples.
        OSError: the PNG cannot be written.
    """
    run_dir, png_path = Path(run_dir), Path(png_path)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if width < 8:
        raise ValueError(f"width must be at least 8 px, got {width}")
    if max_blur_px is not None and not max_blur_px > 0:
        raise ValueError(f"max_blur_px must be positive, got {max_blur_px}")
    if png_path.suffix.lower() != ".png":
        raise ValueError(f"preview file {png_path} must end in .png")
    if not png_path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {png_path}: folder {png_path.parent} does not exist")
    manifest = _load_manifest(run_dir)
    if manifest.num_written == 0:
        raise ValueError(f"{run_dir}: the run has no written samples to preview")

    image_w, image_h = manifest.image_size
    tile_h = max(1, round(width * image_h / image_w))
    positions = choose_samples(manifest.num_written, n, seed)
    margin, row_h = PREVIEW_MARGIN_PX, PREVIEW_LABEL_PX + tile_h + PREVIEW_MARGIN_PX
    sheet_w = margin + len(PREVIEW_COLUMNS) * (width + margin)
    sheet = np.full((PREVIEW_HEADER_PX + len(positions) * row_h, sheet_w, 3), PREVIEW_BACKGROUND, np.uint8)
    for c, title in enumerate(PREVIEW_COLUMNS):
        _put_text(sheet, title, (margin + c * (width + margin), PREVIEW_HEADER_PX - 5), width)

    readers: dict[str, ShardReader] = {}
    try:
        for r, (info, index) in enumerate(_locate(manifest, positions)):
            reader = readers.get(info.name)
            if reader is None:
                path = run_dir / info.name
                if not is_complete(path):
                    raise FileNotFoundError(f"{run_dir}: shard {info.name} of sample {index} is missing or "
                                            "incomplete (run inspect --verify)")
                reader = readers[info.name] = ShardReader(path)
            meta = decode_meta(reader.get(index, "meta"))
            blur_map = decode_array(reader.get(index, "blur_map")) if "blur_map" in reader.fields() else None
            tiles = [
                _tile(_rgb(decode_image(reader.get(index, "sharp"), manifest.codec)), width, tile_h),
                _tile(_rgb(decode_image(reader.get(index, "blur"), manifest.codec)), width, tile_h),
                _blur_map_tile(blur_map, width, tile_h, max_blur_px),
            ]
            top = PREVIEW_HEADER_PX + r * row_h
            _put_text(sheet, _row_label(index, meta), (margin, top + PREVIEW_LABEL_PX - 4), sheet_w - 2 * margin)
            for c, tile in enumerate(tiles):
                x = margin + c * (width + margin)
                sheet[top + PREVIEW_LABEL_PX: top + PREVIEW_LABEL_PX + tile_h, x: x + width] = tile
    finally:
        for reader in readers.values():
            reader.close()

    if not cv2.imwrite(str(png_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cv2 could not write {png_path}")
    return png_path


def choose_samples(total: int, n: int, seed: int = 0) -> list[int]:
    """``min(n, total)`` dataset positions spread over ``[0, total)``: one drawn uniformly from each of that
    many equal stretches, so increasing, distinct, and a pure function of (total, n, seed)."""
    if total < 0 or n < 1:
        raise ValueError(f"need total >= 0 and n >= 1, got total={total}, n={n}")
    k = min(n, total)
    rng = stage_rng(seed, 0, "preview")
    bounds = [j * total // k for j in range(k + 1)] if k else [0]
    return [int(lo + rng.integers(hi - lo)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def blur_map_rgb(blur_map: np.ndarray, max_blur_px: float | None = None) -> np.ndarray:
    """Colour-wheel picture of a blur map.

    Args:
        blur_map: (H, W, 3) float array of (u_x, u_y, magnitude px), u a unit vector (x right, y down).
        max_blur_px: magnitude drawn at full value; None uses the map's own largest magnitude.

    Returns:
        uint8 (H, W, 3) RGB: hue = atan2(u_y, u_x) (0 deg red = right, 90 deg = down, 180 deg cyan = left),
        saturation 1, value = clip(magnitude / max_blur_px, 0, 1). An all-zero map is black.
    """
    m = np.nan_to_num(np.asarray(blur_map, np.float32))
    if m.ndim != 3 or m.shape[2] != 3:
        raise ValueError(f"blur map must be (H, W, 3) (u_x, u_y, magnitude px), got shape {m.shape}")
    scale = float(m[..., 2].max()) if max_blur_px is None else float(max_blur_px)
    hsv = np.empty_like(m)
    hsv[..., 0] = np.degrees(np.arctan2(m[..., 1], m[..., 0])) % 360.0
    hsv[..., 1] = 1.0
    hsv[..., 2] = np.clip(m[..., 2] / scale, 0.0, 1.0) if scale > 0 else 0.0
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ helpers


def _load_manifest(run_dir: Path) -> Manifest:
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a directory, so not a blursynth run")
    if not (run_dir / MANIFEST_NAME).is_file():
        raise FileNotFoundError(f"{run_dir} is not a blursynth run: it has no {MANIFEST_NAME}")
    return Manifest.load(run_dir)


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


def _locate(manifest: Manifest, positions: list[int]) -> list[tuple[ShardInfo, int]]:
    """(shard, sample index) of each dataset position, positions counted over the manifest's shards in order."""
    starts = np.cumsum([0] + [s.count for s in manifest.shards])
    out = []
    for p in positions:
        shard = int(np.searchsorted(starts, p, side="right")) - 1
        info = manifest.shards[shard]
        out.append((info, info.indices[p - int(starts[shard])]))
    return out


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def _tile(img: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def _blur_map_tile(blur_map: np.ndarray | None, width: int, height: int, max_blur_px: float | None) -> np.ndarray:
    if blur_map is None:
        tile = np.full((height, width, 3), PLACEHOLDER_GREY, np.uint8)
        for k, text in enumerate(PLACEHOLDER_TEXT):
            _put_text(tile, text, (3, min(height - 3, 12 + 12 * k)), width - 6)
        return tile
    # Resize the vectors, not the colours: averaged colours of opposite directions would be meaningless.
    m = np.nan_to_num(blur_map.astype(np.float32))
    scale = max_blur_px if max_blur_px is not None else float(m[..., 2].max())
    small = cv2.resize(m, (width, height), interpolation=cv2.INTER_AREA)
    return blur_map_rgb(small, scale if scale > 0 else 1.0)


def _row_label(index: int, meta: dict) -> str:
    blur_px = meta.get("blur_px") or {}
    blur = (f"blur mean {blur_px['mean']:.1f} px, max {blur_px.get('max', math.nan):.1f} px"
            if "mean" in blur_px else "no blur_px")
    return f"#{index}  {meta.get('source_id', '?')}  {blur}"


def _put_text(img: np.ndarray, text: str, origin: tuple[int, int], max_width: int) -> None:
    """Draw ``text`` with its baseline at ``origin``, shrinking the font (down to a floor) to fit ``max_width``."""
    scale = _FONT_SCALE
    while scale > _MIN_FONT_SCALE and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > max_width:
        scale = max(_MIN_FONT_SCALE, scale - 0.05)
    cv2.putText(img, text, origin, _FONT, scale, _TEXT_COLOUR, 1, cv2.LINE_AA)


def _edge(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:g}"


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
