"""The full ADE20K dataset's per-image files: ``NAME.jpg`` with its ``NAME_seg.png`` beside it.

The segmentation PNG encodes, as the official loader (utils_ade20k.loadAde20K) reads it, the class of each
pixel as R // 10 * 256 + G (0: unlabelled) and its object instance as the B value (0: none).

Moving objects follow SBDD's selection: ``car`` instances larger than 400 px, only in images that show no
person. Images with a person are not dropped: they are used for background-only (camera shake) samples, so the
rule only keeps their cars still. A photo's worth as a background does not depend on who stands in it.
Light sources (SBDD's lamps, bulbs, street lights...) whose pixels exceed 250 in any channel are returned as
`SourceItem.lights`, the pixels a scene boosts so that they saturate after blurring.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import cv2
import numpy as np

from .base import MAX_MASKS, Source, SourceItem, masks_in_view, random_view_with_index
from .io import SourceError, read_image

log = logging.getLogger(__name__)

MOVING_CLASSES = ("car",)
PERSON_CLASSES = ("person",)
MIN_AREA_PX = 400
# SBDD's light-source classes, as ADE20K names (or synonyms of names) them
LIGHT_CLASSES = ("light bulb", "lightbulb", "bulb", "spotlight", "street light", "streetlight", "street lamp",
                 "lamp", "table lamp", "floor lamp", "chandelier", "sconce", "ceiling light", "light",
                 "traffic light", "candle", "torch", "neon light", "lantern", "headlight", "tail light",
                 "taillight", "light source")
LIGHT_MIN_VALUE = 250
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SEG_SUFFIX = "_seg.png"


class Ade20kSource(Source):
    """ADE20K images found (recursively, sorted by segmentation path) under a root; image i mod n per sample.

    Class names come from ``ROOT/index_ade20k.pkl`` (the official index: class index k is
    ``objectnames[k - 1]``), else from ``ROOT/classes.txt`` (line k, counting from 1, names class index k),
    else they are unknown and labels read ``class_<index>``. A name may list synonyms separated by commas
    (``"car, auto, automobile"``); a class matches a wanted name when one of its synonyms equals it, ignoring
    case, spacing, hyphens and underscores. The first synonym is the label.

    Args:
        root: folder searched recursively for ``*_seg.png``.
        size: (width, height) of every item.
        moving_classes: names (or int class indices) of the classes whose instances may move.
        min_area_px: an instance moves only if it covers more pixels than this in the original image.
        person_classes: names or indices; an image with any such pixel gets no moving object.
        light_classes: names or indices of light sources.
        light_min_value: a light-source pixel is a light when max(R, G, B) exceeds this (uint8 scale).
        max_masks: at most this many masks per item, the largest in the view.
        max_zoom: extra zoom range of the random view (see `base.random_view`).
    """

    def __init__(self, root: str | Path, size: tuple[int, int], moving_classes=MOVING_CLASSES,
                 min_area_px: float = MIN_AREA_PX, person_classes=PERSON_CLASSES, light_classes=LIGHT_CLASSES,
                 light_min_value: int = LIGHT_MIN_VALUE, max_masks: int = MAX_MASKS, max_zoom: float = 1.5):
        self.root = Path(root)
        self.size = size
        if not self.root.is_dir():
            raise ValueError(f"ade20k root {self.root} does not exist or is not a directory")
        self.segs = sorted(self.root.rglob("*" + SEG_SUFFIX))
        if not self.segs:
            raise ValueError(f"ade20k root {self.root} holds no *{SEG_SUFFIX} segmentation files")
        self.names, self.names_from = _load_names(self.root)
        self.min_area_px = float(min_area_px)
        self.light_min_value = int(light_min_value)
        self.max_masks = int(max_masks)
        self.max_zoom = float(max_zoom)
        self.moving = _ClassSet(moving_classes, self.names)
        self.person = _ClassSet(person_classes, self.names)
        self.light = _ClassSet(light_classes, self.names)
        if self.names is None and (self.moving.wanted_names or self.person.wanted_names or self.light.wanted_names):
            log.warning("ade20k root %s has no class names (index_ade20k.pkl or classes.txt): class names in "
                        "moving_classes, person_classes and light_classes match nothing; pass class indices",
                        self.root)

    def describe(self) -> str:
        names = self.names_from or "none, labels are class_<index>"
        return f"ade20k {self.root} ({len(self.segs)} images; class names: {names})"

    def source_id(self, index: int) -> str:
        """The photo's path relative to the root (the ``.jpg`` name when the photo is missing)."""
        seg = self.segs[index % len(self.segs)]
        candidates = _image_candidates(seg)
        path = next((p for p in candidates if p.is_file()), candidates[0])
        return str(path.relative_to(self.root))

    def label(self, class_index: int) -> str:
        """Display name of a class index: its first synonym, or ``class_<index>`` when names are unknown."""
        return _label(self.names, class_index)

    def get(self, index: int, rng: np.random.Generator) -> SourceItem:
        seg_path = self.segs[index % len(self.segs)]
        photo = read_image(self._image_path(seg_path))
        classes, instances = read_seg(seg_path)
        h, w = photo.shape[:2]
        if classes.shape != (h, w):
            raise SourceError(f"{seg_path.name}: segmentation is {classes.shape[1]}x{classes.shape[0]} "
                              f"but its image is {w}x{h}")
        present = np.unique(classes)
        masks, labels = [], []
        if not any(self.person.matches(int(c)) for c in present):
            moving_px = np.isin(classes, [c for c in present if self.moving.matches(int(c))])
            for inst in np.unique(instances[moving_px]):
                if inst == 0:
                    continue
                mask = instances == inst
                cls = int(np.bincount(classes[mask]).argmax())
                if self.moving.matches(cls) and np.count_nonzero(mask) > self.min_area_px:
                    masks.append(mask)
                    labels.append(self.label(cls))
        light_ids = [c for c in present if self.light.matches(int(c))]
        lights = np.isin(classes, light_ids) & (photo.max(axis=2) > self.light_min_value)
        image, index_map, view = random_view_with_index(photo, self.size, rng, self.max_zoom)
        view_masks, view_labels = masks_in_view(masks, labels, index_map, self.max_masks)
        view_lights = lights.reshape(-1)[index_map.reshape(-1)].reshape(index_map.shape)
        return SourceItem(image=image, masks=view_masks, labels=view_labels, source_id=self.source_id(index),
                          view=view, lights=view_lights)

    def _image_path(self, seg_path: Path) -> Path:
        tried = _image_candidates(seg_path)
        for path in tried:
            if path.is_file():
                return path
        raise SourceError(f"missing image file {tried[0].name} for {seg_path.name} "
                          f"(tried {', '.join(str(p) for p in tried)})")


def read_seg(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode an ADE20K ``_seg.png``.

    Returns:
        (classes int32 (H, W): R // 10 * 256 + G, 0 unlabelled; instances int32 (H, W): the B value, 0 none).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    seg = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if seg is None or seg.dtype != np.uint8 or seg.ndim != 3 or seg.shape[2] < 3:
        raise SourceError(f"{path.name}: not an ADE20K segmentation (need an 8-bit RGB PNG)")
    b, g, r = (seg[..., i].astype(np.int32) for i in range(3))  # OpenCV decodes to BGR
    return (r // 10) * 256 + g, b


class _ClassSet:
    """Which class indices a list of names and/or int indices selects, memoized per index."""

    def __init__(self, wanted, names: dict[int, str] | None):
        wanted = (wanted,) if isinstance(wanted, (str, int)) else tuple(wanted)
        self.wanted_ids = {int(c) for c in wanted if isinstance(c, (int, np.integer))}
        self.wanted_names = {_normalize(c) for c in wanted if isinstance(c, str)}
        self.names = names
        self._memo: dict[int, bool] = {}

    def matches(self, class_index: int) -> bool:
        hit = self._memo.get(class_index)
        if hit is None:
            hit = class_index in self.wanted_ids or (
                self.names is not None and class_index in self.names
                and not self.wanted_names.isdisjoint(_synonyms(self.names[class_index])))
            self._memo[class_index] = hit
        return hit


def _image_candidates(seg_path: Path) -> list[Path]:
    stem = seg_path.name[: -len(SEG_SUFFIX)]
    return [seg_path.with_name(stem + suffix) for suffix in IMAGE_SUFFIXES]


def _load_names(root: Path) -> tuple[dict[int, str] | None, str | None]:
    """Class index -> name, and where the names came from."""
    index_file = root / "index_ade20k.pkl"
    if index_file.is_file():
        # the official index is a pickle; like any pickle it can run code, so only the dataset's own is read
        try:
            with open(index_file, "rb") as f:
                objectnames = pickle.load(f)["objectnames"]
        except Exception as exc:
            raise ValueError(f"cannot read class names from {index_file}: {exc!r}") from exc
        return {k + 1: str(n) for k, n in enumerate(objectnames)}, str(index_file)
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        lines = classes_file.read_text(encoding="utf-8").splitlines()
        return {k + 1: line.strip() for k, line in enumerate(lines) if line.strip()}, str(classes_file)
    return None, None


def _label(names: dict[int, str] | None, class_index: int) -> str:
    if names is not None and class_index in names:
        first = re.split(r"[,;]", names[class_index])[0].strip()
        if first:
            return first
    return f"class_{class_index}"


def _synonyms(name: str) -> list[str]:
    return [s for s in (_normalize(part) for part in re.split(r"[,;]", name)) if s]


def _normalize(name: str) -> str:
    return " ".join(re.sub(r"[-_]", " ", name).lower().split())
