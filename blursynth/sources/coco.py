"""COCO-format datasets: photos with instance annotations, read through pycocotools.

Moving objects follow SBDD's selection: instances of the person, vehicle and animal supercategories, larger
than 4000 px in the original image, never crowd regions. Every image is used, also those with no such
instance: they give background-only (camera shake) samples.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from .base import MAX_MASKS, Source, SourceItem, masks_in_view, random_view_with_index
from .io import SourceError, read_image

log = logging.getLogger(__name__)

SUPERCATEGORIES = ("person", "vehicle", "animal")
MIN_AREA_PX = 4000


class CocoSource(Source):
    """Images of a COCO instances file; sample i uses image i mod n (sorted image ids) with a random view.

    Args:
        root: the dataset root (holding ``annotations/instances_*.json``; the first in sorted order is used
            when there are several) or the path of an instances JSON itself.
        size: (width, height) of every item.
        supercategories: supercategories whose instances may move.
        min_area_px: an instance moves only if its mask covers more pixels than this in the original image
            (counted on the decoded mask, so a polygon reaching outside the image counts its visible part).
        max_masks: at most this many masks per item, the largest in the view.
        max_zoom: extra zoom range of the random view (see `base.random_view`).

    Images are looked for at ``ROOT/<split>/<file_name>``, ``ROOT/images/<split>/<file_name>``,
    ``ROOT/<file_name>`` and ``ROOT/images/<file_name>``, where split comes from the annotation file name
    (``instances_val2017.json`` -> ``val2017``) and ROOT is the folder above ``annotations/``.
    """

    def __init__(self, root: str | Path, size: tuple[int, int], supercategories=SUPERCATEGORIES,
                 min_area_px: float = MIN_AREA_PX, max_masks: int = MAX_MASKS, max_zoom: float = 1.5):
        self.size = size
        self.ann_file, self.root = _locate(Path(root))
        self.split = self.ann_file.stem.split("_", 1)[1] if "_" in self.ann_file.stem else ""
        self.supercategories = tuple(supercategories)
        self.min_area_px = float(min_area_px)
        self.max_masks = int(max_masks)
        self.max_zoom = float(max_zoom)
        self.coco = _load(self.ann_file)
        self.image_ids = sorted(self.coco.imgs)
        if not self.image_ids:
            raise ValueError(f"annotation file {self.ann_file} lists no images")
        wanted = set(self.supercategories)
        self.moving_categories = {cid for cid, c in self.coco.cats.items() if c.get("supercategory") in wanted}

    def describe(self) -> str:
        n_inst = sum(1 for a in self.coco.anns.values()
                     if a.get("category_id") in self.moving_categories and not a.get("iscrowd", 0))
        return (f"coco {self.ann_file} ({len(self.image_ids)} images, {n_inst} non-crowd "
                f"{'/'.join(self.supercategories)} instances before the {self.min_area_px:g} px area filter)")

    def source_id(self, index: int) -> str:
        return str(self.coco.imgs[self.image_ids[index % len(self.image_ids)]]["file_name"])

    def get(self, index: int, rng: np.random.Generator) -> SourceItem:
        info = self.coco.imgs[self.image_ids[index % len(self.image_ids)]]
        file_name = str(info["file_name"])
        photo = read_image(self._image_path(file_name))
        h, w = photo.shape[:2]
        if "height" not in info or "width" not in info:
            raise SourceError(f"{file_name}: its image entry has no width/height")
        if (info["height"], info["width"]) != (h, w):
            raise SourceError(f"{file_name}: image is {w}x{h} but its annotation says "
                              f"{info['width']}x{info['height']}")
        masks, labels = [], []
        for ann in self.coco.imgToAnns.get(info["id"], []):
            if ann.get("iscrowd", 0) or ann.get("category_id") not in self.moving_categories:
                continue
            mask = _ann_mask(self.coco, ann, file_name)
            if np.count_nonzero(mask) > self.min_area_px:
                masks.append(mask)
                labels.append(str(self.coco.cats[ann["category_id"]]["name"]))
        image, index_map, view = random_view_with_index(photo, self.size, rng, self.max_zoom)
        view_masks, view_labels = masks_in_view(masks, labels, index_map, self.max_masks)
        return SourceItem(image=image, masks=view_masks, labels=view_labels, source_id=file_name, view=view)

    def _image_path(self, file_name: str) -> Path:
        tried = []
        for base in (self.root / self.split, self.root / "images" / self.split, self.root, self.root / "images"):
            path = base / file_name
            if path.is_file():
                return path
            if path not in tried:
                tried.append(path)
        raise SourceError(f"missing image file {file_name} (tried {', '.join(str(p) for p in tried)})")


def _locate(root: Path) -> tuple[Path, Path]:
    """(instances JSON, dataset root) from a root folder or a JSON path."""
    if root.is_file():
        ann_file = root
    elif root.is_dir():
        found = sorted((root / "annotations").glob("instances_*.json")) or sorted(root.glob("instances_*.json"))
        if not found:
            raise ValueError(f"coco root {root} holds no annotations/instances_*.json (or pass the JSON path)")
        if len(found) > 1:
            log.info("coco root %s holds %d instances files; using %s", root, len(found), found[0].name)
        ann_file = found[0]
    else:
        raise ValueError(f"coco root {root} does not exist")
    parent = ann_file.parent
    return ann_file, parent.parent if parent.name == "annotations" else parent


def _load(ann_file: Path):
    from pycocotools.coco import COCO

    # pycocotools reports progress with print(); keep it out of the CLI's output
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            coco = COCO(str(ann_file))
    except json.JSONDecodeError as exc:
        raise ValueError(f"annotation file {ann_file} is not valid JSON: {exc}") from exc
    except (AssertionError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"annotation file {ann_file} is not a COCO instances file: {exc!r}") from exc
    except OSError as exc:
        raise ValueError(f"cannot read annotation file {ann_file}: {exc.strerror or exc}") from exc
    log.debug("pycocotools: %s", chatter.getvalue().strip())
    return coco


def _ann_mask(coco, ann: dict, file_name: str) -> np.ndarray:
    """uint8 (h, w) mask of one annotation; an empty one for a polygon list with no usable polygon."""
    segm = ann.get("segmentation")
    if isinstance(segm, list):
        # pycocotools fails on an empty list and reads 4-number polygons as boxes: both have no area
        polys = [p for p in segm if isinstance(p, list) and len(p) >= 6]
        if not polys:
            info = coco.imgs[ann["image_id"]]
            return np.zeros((info["height"], info["width"]), dtype=np.uint8)
        ann = {**ann, "segmentation": polys}
    try:
        return coco.annToMask(ann)
    except Exception as exc:  # pycocotools raises whatever its C layer meets; the reason goes to the manifest
        raise SourceError(f"{file_name}: annotation {ann.get('id')} has an unusable segmentation ({exc!r})") from exc
