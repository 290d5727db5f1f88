"""Felzenszwalb-Huttenlocher graph segmentation (opencv-contrib ximgproc) as a classic, offline segmenter."""
from __future__ import annotations

import cv2
import numpy as np


def graph_segments(image: np.ndarray, sigma: float = 0.8, k: float = 400.0, min_size_frac: float = 0.002) -> np.ndarray:
    """Segment a photo into regions.

    Args:
        image: uint8 (H, W, 3) RGB.
        sigma: Gaussian smoothing before segmentation, pixels.
        k: the algorithm's scale parameter (larger -> larger segments).
        min_size_frac: smallest segment, as a fraction of the image area.
    Returns:
        int32 (H, W) label map, labels 0..n-1.
    """
    h, w = image.shape[:2]
    seg = cv2.ximgproc.segmentation.createGraphSegmentation(sigma=sigma, k=k, min_size=max(int(min_size_frac * h * w), 16))
    return seg.processImage(np.ascontiguousarray(image[..., ::-1])).astype(np.int32)
