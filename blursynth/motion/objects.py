"""Motion of a moving segment: translation along a curved path, in-plane rotation and scale about its
centroid, all over the normalized exposure; and the table of object models (``OBJECT_MODELS``, recipe
``scene.objects.model``), each a way to turn a segment's drawn parameters into its motion."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..seeding import child_seed
from .core import Motion
from .shake import PATH_SAMPLES, bf_trajectory


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


@dataclass(frozen=True)
class ObjectModel:
    """A moving segment's own motion, an entry of ``OBJECT_MODELS`` (recipe ``scene.objects.model``).

    Every segment draws the shared parameters (centre, depth, speed_px, heading_rad, curvature_rad, rotation_deg,
    scale: ``scene.sample_scene``); a model may draw more after them.

    Attributes:
        motion: ``motion(params) -> Motion``: the segment's uncentred image-space motion from its parameters.
        with_camera: whether the segment also moves with the camera (shake, then parallax / depth): a surface in
            the scene; otherwise the motion is the segment's whole motion (SBDD's independent kernels).
        draw: ``draw(rng) -> dict``: the model's own parameters, drawn after the shared ones and stored beside them
            in the meta; None draws nothing.
        translation_only: whether the motion is a translation whatever the recipe's ranges (a translation-only
            render method then needs no further rule); otherwise rotation_deg and scale must be fixed at 0 and 1.
        help: one line for the recipe's documentation.
    """

    motion: Callable[[dict], Motion]
    with_camera: bool
    draw: Callable[[np.random.Generator], dict] | None = None
    translation_only: bool = False
    help: str = ""


def _affine(params: dict) -> Motion:
    return object_motion(tuple(params["center"]), params["speed_px"], params["heading_rad"], params["curvature_rad"],
                         params["rotation_deg"], params["scale"])


def _kernel(params: dict) -> Motion:
    return Motion.from_translation(bf_trajectory(params["seed"], params["speed_px"]))


def _kernel_draw(rng: np.random.Generator) -> dict:
    return {"seed": child_seed(rng)}


OBJECT_MODELS: dict[str, ObjectModel] = {
    "affine": ObjectModel(_affine, with_camera=True,
                          help="own translation along a curved path, rotation and scale about the centroid, composed "
                               "with the camera's motion"),
    "kernel": ObjectModel(_kernel, with_camera=False, draw=_kernel_draw, translation_only=True,
                          help="one independent Boracchi-Foi translation kernel of length speed_px per segment "
                               "(SBDD's model), not composed with the camera"),
}
