"""Evaluate a model (or just the blurred input) on pairs: PSNR / SSIM per image and mean, optionally after
ECC alignment (RealBlur's protocol), for the restored image and for the blurred input (the gain is the
difference).

Pairs come from a blursynth output directory (``shard_pairs``, full frames in dataset order) or from folders
(``folder_pairs``: GoPro ``SEQ/blur`` + ``SEQ/sharp``, RealBlur ``SCENE/blur/blur_N`` + ``SCENE/gt/gt_N``, or
two parallel trees). Images are compared as 8-bit RGB (the restored image is rounded to 8 bits, as the PNG
``--save`` writes holds it), in float64 with data range 1.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from ..inputs import is_image
from .metrics import align_ecc, psnr, ssim

BLUR_DIRS = ("blur", "input", "lq")
SHARP_DIRS = ("sharp", "gt", "target")
_PREFIX = re.compile(r"^(blur|gt|sharp|input|target)[_-]", re.IGNORECASE)


@dataclass
class Pair:
    """One evaluation pair. ``blur`` / ``sharp``: uint8 (H, W, 3) RGB; ``name``: what the CSV shows
    (``index`` of a shard sample, or the blurred file's path relative to its root)."""

    name: str
    blur: np.ndarray
    sharp: np.ndarray


def shard_pairs(root: str | os.PathLike, on_corrupt: str = "error") -> "ShardPairs":
    """Full-frame pairs of a blursynth output directory, in dataset order; ``name`` is the sample index.

    ``on_corrupt`` as ``ShardDataset``'s: "skip" leaves out samples whose records are corrupt, and the
    returned iterable's ``skipped`` counts them."""
    return ShardPairs(root, on_corrupt)


class ShardPairs:
    """Iterable of the ``Pair`` of each sample of a run (``shard_pairs``); ``len`` is the samples listed,
    ``skipped`` the corrupt ones left out so far."""

    def __init__(self, root: str | os.PathLike, on_corrupt: str = "error"):
        from ..data import ShardDataset

        self.dataset = ShardDataset(root, on_corrupt=on_corrupt)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def skipped(self) -> int:
        return self.dataset.skipped

    def __iter__(self) -> Iterator[Pair]:
        from .loop import to_uint8

        for i in range(len(self.dataset)):
            s = self.dataset[i]
            if s is not None:
                yield Pair(str(s["index"]), to_uint8(s["blur"]), to_uint8(s["sharp"]))


def folder_pairs(blur_dir: str | os.PathLike, sharp_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """Match blurred and sharp image files; returns [(name, blur_path, sharp_path)] sorted by name.

    Two trees (``blur_dir != sharp_dir``): files match by relative path without extension, ignoring a
    ``blur_`` / ``gt_`` / ``sharp_`` file prefix. One dataset root (``blur_dir == sharp_dir``): blurred files
    are those under a folder named blur / input / lq, sharp ones under a sibling sharp / gt / target (GoPro,
    RealBlur layouts); ``blur_gamma`` folders are not blurred inputs. An unmatched file is an error naming it.
    """
    blur_dir, sharp_dir = Path(blur_dir), Path(sharp_dir)
    for d, flag in ((blur_dir, "--blur"), (sharp_dir, "--sharp")):
        if not d.is_dir():
            raise FileNotFoundError(f"{flag} {d}: not a directory")
    same = blur_dir.resolve() == sharp_dir.resolve()
    blurs = _keyed(blur_dir, BLUR_DIRS if same else None)
    sharps = _keyed(sharp_dir, SHARP_DIRS if same else None)
    if not blurs:
        raise ValueError(f"no blurred images found under {blur_dir}" + (" (in folders named blur/input/lq)" if same else ""))
    missing = sorted(set(blurs) - set(sharps))
    extra = sorted(set(sharps) - set(blurs))
    if missing:
        raise ValueError(f"{len(missing)} blurred images have no sharp partner, e.g. {blurs[missing[0]]}")
    if extra:
        raise ValueError(f"{len(extra)} sharp images have no blurred partner, e.g. {sharps[extra[0]]}")
    return [(str(blurs[k].relative_to(blur_dir)), blurs[k], sharps[k]) for k in sorted(blurs)]


def load_folder_pairs(matches: Iterable[tuple[str, Path, Path]]) -> Iterator[Pair]:
    from ..sources.io import read_image

    for name, b, s in matches:
        blur, sharp = read_image(b), read_image(s)
        if blur.shape != sharp.shape:
            raise ValueError(f"{b} is {blur.shape[1]}x{blur.shape[0]} but {s} is {sharp.shape[1]}x{sharp.shape[0]}")
        yield Pair(name, blur, sharp)


def evaluate(pairs: Iterable[Pair], model=None, align: bool = False, save_dir: str | os.PathLike | None = None,
             progress=None) -> list[dict]:
    """Metrics of every pair, in order.

    Args:
        pairs: the pairs.
        model: a restoration model (``loop.load_model``), or None to score the blurred input only.
        align: also compute PSNR / SSIM after ``metrics.align_ecc`` of the restored (and blurred) image to the
            sharp one (columns ``*_aligned``).
        save_dir: write each restored image as ``{position:06d}.png`` (position = 0-based rank in ``pairs``).
        progress: optional callable(n) after each pair.
    Returns:
        one dict per pair: position, name, psnr_input, ssim_input, [psnr, ssim, gain_psnr, gain_ssim],
        and with ``align`` the same names suffixed ``_aligned``.
    """
    import torch

    from .loop import restore, to_uint8

    if save_dir is not None:
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for position, pair in enumerate(pairs):
        sharp = pair.sharp / 255.0
        blur = pair.blur / 255.0
        row = {"position": position, "name": pair.name}
        row.update(_scores(blur, sharp, align, "_input"))
        if model is not None:
            x = torch.from_numpy(np.ascontiguousarray(pair.blur.transpose(2, 0, 1))).float().div_(255)
            restored_u8 = to_uint8(restore(model, x))
            row.update(_scores(restored_u8 / 255.0, sharp, align, ""))
            for suffix in ("", "_aligned") if align else ("",):
                row[f"gain_psnr{suffix}"] = row[f"psnr{suffix}"] - row[f"psnr_input{suffix}"]
                row[f"gain_ssim{suffix}"] = row[f"ssim{suffix}"] - row[f"ssim_input{suffix}"]
            if save_dir is not None:
                path = save_dir / f"{position:06d}.png"
                if not cv2.imwrite(str(path), cv2.cvtColor(restored_u8, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {path}")
        rows.append(row)
        if progress is not None:
            progress(1)
    return rows


def mean_row(rows: list[dict]) -> dict:
    """Column means of ``rows`` (numeric columns), name "mean"."""
    out = {"position": "", "name": "mean"}
    for k in rows[0] if rows else []:
        if k not in out:
            out[k] = float(np.mean([r[k] for r in rows]))
    return out


def write_csv(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Per-pair rows, then the mean row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0]) if rows else ["position", "name"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for r in rows + ([mean_row(rows)] if rows else []):
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def format_table(rows: list[dict], max_rows: int = 20) -> list[str]:
    """Text table: a line per pair (the first ``max_rows``), then the mean."""
    if not rows:
        return ["no pairs"]
    cols = [c for c in rows[0] if c not in ("position", "name")]
    width = max(12, min(40, max(len(r["name"]) for r in rows)))
    head = f"{'#':>6} {'name':<{width}} " + " ".join(f"{c:>16}" for c in cols)
    lines = [head]
    shown = rows[:max_rows]
    for r in shown + [mean_row(rows)]:
        if r["name"] == "mean" and r["position"] == "":
            lines.append("-" * len(head))
        cells = " ".join(f"{r[c]:>16.4f}" for c in cols)
        lines.append(f"{str(r['position']):>6} {r['name'][-width:]:<{width}} {cells}")
    if len(rows) > max_rows:
        lines.insert(len(shown) + 1, f"... {len(rows) - max_rows} more rows in the CSV")
    return lines


def _scores(image: np.ndarray, sharp: np.ndarray, align: bool, suffix: str) -> dict:
    row = {f"psnr{suffix}": psnr(image, sharp), f"ssim{suffix}": ssim(image, sharp)}
    if align:
        al = align_ecc(image, sharp)
        row[f"psnr{suffix}_aligned"] = psnr(al.image, al.reference, mask=al.mask)
        row[f"ssim{suffix}_aligned"] = ssim(al.image, al.reference, mask=al.mask)
    return row


def _keyed(root: Path, folder_names: tuple[str, ...] | None) -> dict[tuple, Path]:
    out: dict[tuple, Path] = {}
    for path in sorted(root.rglob("*")):
        if not is_image(path):
            continue
        rel = path.relative_to(root)
        parts = [p.lower() for p in rel.parts[:-1]]
        if folder_names is not None:
            hits = [i for i, p in enumerate(parts) if p in folder_names]
            if not hits:
                continue
            parts[hits[-1]] = "*"
        key = tuple(parts) + (_PREFIX.sub("", path.stem),)
        if key in out:
            raise ValueError(f"{out[key]} and {path} would pair with the same partner")
        out[key] = path
    return out
