"""The scene a renderer integrates: an ordered stack of layers in linear light, each with its motion over the
exposure. `scene.compose` builds one from a photo, its masks and a recipe; the render package, the event
simulator and the CUDA backend read it and nothing of the recipe (so `recipe` may look up `render`'s table of
methods without an import loop)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .motion import Motion


@dataclass
class Layer:
    """One layer of a scene.

    Attributes:
        rgb: float32 (H, W, 3) linear straight (not premultiplied) RGB; values may exceed 1 (highlights).
        alpha: float32 (H, W) coverage in [0, 1].
        motion: layer-to-image homographies over the exposure.
        depth: relative depth (background 1; smaller is nearer), scales camera-translation parallax.
        label: class name or description, for meta and errors.
        extend: outside the image the layer repeats its border (an opaque background, so camera motion does not
            pull in black) instead of being transparent.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    motion: Motion = field(default_factory=Motion.identity)
    depth: float = 1.0
    label: str = ""
    extend: bool = False
    _box: tuple[int, int, int, int] | None = field(default=None, repr=False)
    _opaque: bool | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"layer rgb must be (H, W, 3), got {self.rgb.shape}")
        if self.alpha.shape != self.rgb.shape[:2]:
            raise ValueError(f"layer alpha {self.alpha.shape} does not match rgb {self.rgb.shape[:2]}")
        if self.rgb.dtype != np.float32 or self.alpha.dtype != np.float32:
            raise ValueError("layer rgb and alpha must be float32")

    def is_opaque(self) -> bool:
        """Alpha is 1 everywhere."""
        if self._opaque is None:
            self._opaque = bool(self.alpha.min() >= 1.0)
        return self._opaque

    def support_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) inclusive box of the pixels with alpha > 0 (the whole layer if it extends)."""
        if self._box is None:
            h, w = self.alpha.shape
            if self.extend:
                self._box = (0, 0, w - 1, h - 1)
            else:
                rows = np.flatnonzero(self.alpha.max(axis=1) > 0)
                cols = np.flatnonzero(self.alpha.max(axis=0) > 0)
                self._box = (0, 0, 0, 0) if len(rows) == 0 else (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))
        return self._box


@dataclass
class Scene:
    """Layers back to front, all of one size."""

    layers: list[Layer]

    def __post_init__(self):
        if not self.layers:
            raise ValueError("a scene needs at least one layer")
        shapes = {layer.alpha.shape for layer in self.layers}
        if len(shapes) != 1:
            raise ValueError(f"all layers must have one size, got {sorted(shapes)}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        h, w = self.layers[0].alpha.shape
        return w, h
