"""A run's contact sheet: one row ``sharp | blurred | blur map`` per chosen sample, as a PNG."""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..seeding import stage_rng
from ..store.codec import decode_array, decode_image, decode_meta
from ..store.manifest import Manifest
from ..store.shard import ShardInfo, ShardReader, is_complete
from .common import _load_manifest

# Contact-sheet layout, in px (see ``preview``).
PREVIEW_MARGIN_PX = 4
PREVIEW_HEADER_PX = 18
PREVIEW_LABEL_PX = 16
PREVIEW_COLUMNS = ("sharp", "blurred", "blur map")
PREVIEW_BACKGROUND = 24
PLACEHOLDER_GREY = 128
PLACEHOLDER_TEXT = ("no blur map", "(generate --blur-map)")

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_MIN_FONT_SCALE = 0.25
_TEXT_COLOUR = (230, 230, 230)


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
