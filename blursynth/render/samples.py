"""How many time samples an exposure needs: one module that the renderer entry point and the exact path both
import (it used to live in ``render/__init__``, which ``render/exact`` imported back)."""
from __future__ import annotations

import numpy as np

from ..layers import Scene


def samples_for(scene: Scene, max_samples: int = 256) -> int:
    """Time samples so consecutive latent images move at most about one pixel: ceil(longest path) + 1.

    The longest path is taken over the corners and centre of every layer's visible extent (rotation and zoom
    move corners most), in pixels. A scene without motion needs one sample.
    """
    longest = 0.0
    moving = False
    for layer in scene.layers:
        if layer.motion.is_static:
            continue
        moving = True
        x0, y0, x1, y1 = layer.support_box()
        pts = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1], [(x0 + x1) / 2, (y0 + y1) / 2]], dtype=np.float64)
        longest = max(longest, layer.motion.path_length_px(pts))
    if not moving:
        return 1
    return int(min(max(int(np.ceil(longest)) + 1, 2), max_samples))
