"""Motion of a moving segment: translation along a curved path, in-plane rotation and scale about its
centroid, all over the normalized exposure."""
from __future__ import annotations

import numpy as np

from .core import Motion
from .shake import PATH_SAMPLES


def object_motion(center: tuple[float, float], speed_px: float, heading_rad: float, curvature_rad: float,
                  rotation_deg: float, scale: float, samples: int = PATH_SAMPLES) -> Motion:
    """Affine motion of an object about its centroid.

    Args:
        center: (x, y) centroid in pixels, the fixed point of rotation and scale.
        speed_px: arc length of the centroid's path over the exposure, pixels.
        heading_rad: initial direction of travel (0 = +x, pi/2 = +y, image coordinates).
        curvature_rad: total change of heading over the exposure (0 = straight line).
        rotation_deg: in-plane rotation accumulated over the exposure.
        scale: size at the end of the exposure relative to the start (geometric in time).
    Returns:
        Motion (samples, 3, 3), identity at t = 0 (recentre it on the reference time).
    """
    t = np.linspace(0.0, 1.0, samples)
    heading = heading_rad + curvature_rad * t
    # the centroid path: integral of speed * (cos, sin) of the heading, trapezoidal on the sample grid
    vx = speed_px * np.cos(heading)
    vy = speed_px * np.sin(heading)
    dt = np.diff(t)
    px = np.concatenate([[0.0], np.cumsum(0.5 * (vx[1:] + vx[:-1]) * dt)])
    py = np.concatenate([[0.0], np.cumsum(0.5 * (vy[1:] + vy[:-1]) * dt)])
    angle = np.radians(rotation_deg) * t
    s = float(scale) ** t
    cx, cy = center
    H = np.zeros((samples, 3, 3))
    cos_a, sin_a = np.cos(angle) * s, np.sin(angle) * s
    H[:, 0, 0], H[:, 0, 1] = cos_a, -sin_a
    H[:, 1, 0], H[:, 1, 1] = sin_a, cos_a
    # x' = A (x - c) + c + p(t)
    H[:, 0, 2] = cx + px - (cos_a * cx - sin_a * cy)
    H[:, 1, 2] = cy + py - (sin_a * cx + cos_a * cy)
    H[:, 2, 2] = 1.0
    return Motion(H)
