"""Any folder of images, segmented with the classic graph segmenter."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .base import Source, SourceItem, masks_from_labels, random_view, segment_labels
from ..inputs import IMAGE_EXTENSIONS, images_in, listed
from .io import read_image


class FolderSource(Source):
    """Images found (recursively, sorted) under a folder; sample i uses image i mod n with a random view."""

    def __init__(self, root: str | Path, size: tuple[int, int], segmenter=None):
        """segmenter: a callable uint8 RGB image -> int32 label map (e.g. segment.SamSegmenter, whose label 0
        means no mask); default the classic graph segmenter."""
        self.root = Path(root)
        self.size = size
        self.segmenter = segmenter
        if not self.root.is_dir():
            raise ValueError(f"source folder {self.root} does not exist or is not a directory")
        self.files = images_in(self.root, recursive=True)
        if not self.files:
            raise ValueError(f"source folder {self.root} holds no images ({listed(IMAGE_EXTENSIONS)})")

    def describe(self) -> str:
        how = "graph segmenter" if self.segmenter is None else f"SAM {self.segmenter.model_type}"
        return f"folder {self.root} ({len(self.files)} images, {how})"

    def source_id(self, index: int) -> str:
        return str(self.files[index % len(self.files)].relative_to(self.root))

    def get(self, index: int, rng: np.random.Generator) -> SourceItem:
        path = self.files[index % len(self.files)]
        photo, labels = _read_segmented(str(path), self.segmenter)
        image, view_labels, view = random_view(photo, labels, self.size, rng)
        masks = masks_from_labels(view_labels, background=None if self.segmenter is None else 0)
        return SourceItem(image=image, masks=masks, labels=["segment"] * len(masks),
                          source_id=self.source_id(index), view=view)


@lru_cache(maxsize=8)
def _read_segmented(path: str, segmenter=None) -> tuple[np.ndarray, np.ndarray]:
    img = read_image(path)
    return img, segment_labels(img, segmenter)
