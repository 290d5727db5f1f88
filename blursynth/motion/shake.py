"""Camera shake over the exposure: Boracchi & Foi random trajectories, Gaussian-process trajectories, a
constant-velocity line and a rotational model (small 3D rotations, H = K R(t) K^-1, so blur varies across the
frame).

Each generator is a pure function of its parameters and an integer seed, so a sample's meta (parameters and
seed) replays its motion exactly. Paths are returned uncentred; `compose` recentres every layer's motion on
the reference time.

`SHAKE_MODELS` is the table of models by name, shared by the image path (`scene.camera_motion`) and the video
path (`video.clip.shake_for`); recipe validation and the CLI's choices read its keys. A new model is one
``build(params, size) -> Motion`` function here and one entry in the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numba
import numpy as np

from .core import Motion

PATH_SAMPLES = 128


def bf_trajectory(seed: int, length_px: float, n_steps: int = 2000, samples: int = PATH_SAMPLES) -> np.ndarray:
    """Boracchi & Foi random camera trajectory with their published parameters.

    Per trajectory: centripetal c = 0.7 U, big-shake probability p = 0.2 U, Gaussian term g = 10 U,
    initial direction 360 U degrees, anxiety a = 0.1 U. Each of `n_steps` steps: with probability p * a an
    impulsive turn adds 2 v e^{i (pi + U - 0.5)}; then v += a (g N - c x) dt; v is renormalized to constant
    speed, so the path has exactly `length_px` of arc length; x += v.

    Args:
        seed: integer seed of the trajectory.
        length_px: total path length in pixels over the exposure.
        n_steps: simulation steps (B&F: 2000).
        samples: points returned, equally spaced in time.
    Returns:
        float64 (samples, 2) positions in pixels, starting at (0, 0).
    """
    rng = np.random.default_rng(seed)
    c = 0.7 * rng.random()
    p_big = 0.2 * rng.random()
    g = 10.0 * rng.random()
    angle = 2.0 * np.pi * rng.random()
    anxiety = 0.1 * rng.random()
    u_big = rng.random(n_steps)
    u_turn = rng.random(n_steps)
    noise = rng.standard_normal((n_steps, 2))
    step = length_px / max(n_steps - 1, 1)
    path = _bf_walk(c, p_big, g, angle, anxiety, u_big, u_turn, noise, step, n_steps)
    return _resample(path, samples)


def gp_trajectory(seed: int, length_px: float, lengthscale: float | None = None, samples: int = PATH_SAMPLES) -> np.ndarray:
    """Gaussian-process trajectory (after Wieschollek et al.): x(t) and y(t) independent GP draws over
    t in [0, 1] with a Matern-3/2 covariance, scaled so the path has `length_px` of arc length.

    Args:
        seed: integer seed.
        length_px: path length in pixels.
        lengthscale: GP lengthscale on the exposure timeline; default sampled in [0.15, 0.6] (quantized, so the
            covariance factor is cached).
    Returns:
        float64 (samples, 2) positions in pixels.
    """
    rng = np.random.default_rng(seed)
    if lengthscale is None:
        lengthscale = float(rng.choice(_GP_LENGTHSCALES))
    L = _gp_factor(samples, round(float(lengthscale), 4))
    xy = L @ rng.standard_normal((samples, 2))
    xy -= xy[0]
    arc = float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))
    return xy * (length_px / arc) if arc > 0 else xy


def line_trajectory(seed: int, length_px: float, samples: int = PATH_SAMPLES) -> np.ndarray:
    """A straight path at constant velocity (a steady pan during the exposure), direction uniform from ``seed``.

    Returns:
        float64 (samples, 2) positions in pixels, equally spaced in time, starting at (0, 0), ``length_px`` long.
    """
    angle = 2.0 * math.pi * np.random.default_rng(seed).random()
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return t * length_px * np.array([[math.cos(angle), math.sin(angle)]])


def rotational_motion(seed: int, size: tuple[int, int], length_px: float, fov_deg: float, roll_deg: float,
                      samples: int = PATH_SAMPLES) -> Motion:
    """Small 3D camera rotations seen through a pinhole: H(t) = K R(t) K^-1.

    Yaw and pitch follow a Gaussian-process path whose image-centre arc length is `length_px` (angle = px / f);
    roll swings up to `roll_deg` about the optical axis, so blur grows with distance from the centre.

    Args:
        seed: integer seed.
        size: (width, height) of the image in pixels; the principal point is its centre.
        length_px: arc length in pixels at the image centre from yaw and pitch.
        fov_deg: horizontal field of view; f = (width / 2) / tan(fov / 2) pixels.
        roll_deg: amplitude of the roll path in degrees.
    Returns:
        Motion with (samples, 3, 3) homographies.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    f = (w / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    K = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
    yaw_pitch = gp_trajectory(int(rng.integers(2**62)), length_px / f, samples=samples)
    roll = np.linspace(0.0, 1.0, samples) * math.radians(roll_deg) * rng.choice([-1.0, 1.0])
    rvec = np.stack([yaw_pitch[:, 1], -yaw_pitch[:, 0], roll], axis=1)  # pitch about x, yaw about y
    R = _rodrigues(rvec)
    return Motion(K @ R @ np.linalg.inv(K))


@dataclass(frozen=True)
class ShakeModel:
    """A camera-shake model of ``SHAKE_MODELS``.

    Attributes:
        build: ``build(params, size) -> Motion``: the uncentred image-space motion of a camera whose drawn
            parameters are ``params`` ({"length_px", "seed"}, and "fov_deg", "roll_deg" where ``uses_view``), on an
            image of ``size`` (width, height) pixels.
        uses_view: whether the model reads the field of view and roll (the video path draws them only then).
    """

    build: Callable[[dict, tuple[int, int]], Motion]
    uses_view: bool = False


def _bf(params: dict, size: tuple[int, int]) -> Motion:
    return Motion.from_translation(bf_trajectory(params["seed"], params["length_px"]))


def _gp(params: dict, size: tuple[int, int]) -> Motion:
    return Motion.from_translation(gp_trajectory(params["seed"], params["length_px"]))


def _line(params: dict, size: tuple[int, int]) -> Motion:
    return Motion.from_translation(line_trajectory(params["seed"], params["length_px"]))


def _rotational(params: dict, size: tuple[int, int]) -> Motion:
    return rotational_motion(params["seed"], size, params["length_px"], params["fov_deg"], params["roll_deg"])


def _none(params: dict, size: tuple[int, int]) -> Motion:
    return Motion.identity()


SHAKE_MODELS: dict[str, ShakeModel] = {
    "bf": ShakeModel(_bf),
    "gp": ShakeModel(_gp),
    "line": ShakeModel(_line),
    "rotational": ShakeModel(_rotational, uses_view=True),
    "none": ShakeModel(_none),
}


def shake_motion(params: dict, size: tuple[int, int]) -> Motion:
    """The camera's uncentred motion from its drawn parameters (``params["model"]`` names a ``SHAKE_MODELS``
    entry), on an image of ``size`` (width, height)."""
    model = params["model"]
    if model not in SHAKE_MODELS:
        raise ValueError(f"unknown camera shake model {model!r} (known: {', '.join(SHAKE_MODELS)})")
    return SHAKE_MODELS[model].build(params, size)


def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    """(N, 3) rotation vectors -> (N, 3, 3) rotation matrices."""
    theta = np.linalg.norm(rvec, axis=1)
    R = np.repeat(np.eye(3)[None], len(rvec), axis=0)
    nz = theta > 1e-15
    k = rvec[nz] / theta[nz, None]
    Kx = np.zeros((len(k), 3, 3))
    Kx[:, 0, 1], Kx[:, 0, 2], Kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    Kx[:, 1, 0], Kx[:, 2, 0], Kx[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    s = np.sin(theta[nz])[:, None, None]
    c = np.cos(theta[nz])[:, None, None]
    R[nz] = np.eye(3) + s * Kx + (1 - c) * (Kx @ Kx)
    return R


def _resample(path: np.ndarray, samples: int) -> np.ndarray:
    src = np.linspace(0.0, 1.0, len(path))
    dst = np.linspace(0.0, 1.0, samples)
    return np.stack([np.interp(dst, src, path[:, 0]), np.interp(dst, src, path[:, 1])], axis=1)


_GP_LENGTHSCALES = np.round(np.geomspace(0.15, 0.6, 8), 4)


@lru_cache(maxsize=32)
def _gp_factor(n: int, lengthscale: float) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    d = np.abs(t[:, None] - t[None, :]) * math.sqrt(3.0) / lengthscale
    cov = (1.0 + d) * np.exp(-d)
    return np.linalg.cholesky(cov + 1e-9 * np.eye(n))


@numba.njit(cache=True)
def _bf_walk(c, p_big, g, angle, anxiety, u_big, u_turn, noise, step, n_steps):
    x = np.zeros((n_steps, 2))
    vx = math.cos(angle) * step
    vy = math.sin(angle) * step
    for t in range(n_steps - 1):
        if u_big[t] < p_big * anxiety:
            # impulsive turn: 2 v rotated by pi + U - 0.5
            phi = math.pi + u_turn[t] - 0.5
            nx = 2.0 * (vx * math.cos(phi) - vy * math.sin(phi))
            ny = 2.0 * (vx * math.sin(phi) + vy * math.cos(phi))
        else:
            nx = 0.0
            ny = 0.0
        vx += nx + anxiety * (g * noise[t, 0] - c * x[t, 0]) * step
        vy += ny + anxiety * (g * noise[t, 1] - c * x[t, 1]) * step
        speed = math.sqrt(vx * vx + vy * vy)
        if speed > 0.0:
            vx = vx / speed * step
            vy = vy / speed * step
        x[t + 1, 0] = x[t, 0] + vx
        x[t + 1, 1] = x[t, 1] + vy
    return x
