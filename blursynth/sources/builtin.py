"""The built-in source: the photos scikit-image ships, random views, graph-segmentation instance masks.

Works offline with nothing from the user. Segmentation runs once per photo per process (cached).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .base import Source, SourceItem, masks_from_labels, random_view, segment_labels

# photos in skimage.data that ship inside the package (no download); gray ones are replicated to RGB
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
          "motorcycle_left", "motorcycle_right", "camera", "coins", "moon", "brick", "grass", "gravel")


class BuiltinSource(Source):
    def __init__(self, size: tuple[int, int]):
        self.size = size

    def describe(self) -> str:
        return f"builtin ({len(PHOTOS)} scikit-image photos)"

    def get(self, index: int, rng: np.random.Generator) -> SourceItem:
        name = PHOTOS[int(rng.integers(len(PHOTOS)))]
        photo, labels = _photo(name)
        image, view_labels, view = random_view(photo, labels, self.size, rng)
        masks = masks_from_labels(view_labels)
        return SourceItem(image=image, masks=masks, labels=["segment"] * len(masks), source_id=f"skimage:{name}",
                          view=view)


@lru_cache(maxsize=len(PHOTOS))
def _photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3].astype(np.uint8))
    img.flags.writeable = False
    labels = segment_labels(img)
    labels.flags.writeable = False
    return img, labels
