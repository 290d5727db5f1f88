"""Motion on the normalized exposure timeline and PSF rasterization.

A `Motion` is a path of 3x3 homographies sampled uniformly over t in [0, 1]: `H[k]` maps a layer's pixel
coordinates (x, y, 1) (pixel centres at integer coordinates, as OpenCV) to image coordinates at
t_k = k / (T - 1). Between samples the matrices are interpolated linearly, which is exact for piecewise
linear translation and accurate for the small inter-sample rotations the generators produce.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Motion:
    """Layer-to-image homographies over the exposure.

    Attributes:
        H: float64 (T, 3, 3), H[k] at t_k = k / (T - 1) (T == 1: the same transform for the whole exposure),
            normalized so H[k, 2, 2] == 1.
    """

    H: np.ndarray

    def __post_init__(self):
        H = np.asarray(self.H, dtype=np.float64)
        if H.ndim != 3 or H.shape[1:] != (3, 3) or len(H) < 1:
            raise ValueError(f"Motion needs homographies of shape (T, 3, 3), got {H.shape}")
        if not np.all(np.isfinite(H)) or np.any(np.abs(H[:, 2, 2]) < 1e-12):
            raise ValueError("Motion homographies must be finite with H[2, 2] != 0")
        object.__setattr__(self, "H", H / H[:, 2:3, 2:3])

    @classmethod
    def identity(cls) -> "Motion":
        return cls(np.eye(3)[None])

    @classmethod
    def from_translation(cls, xy: np.ndarray) -> "Motion":
        """xy: (T, 2) displacement in pixels (x right, y down) at t_k = k / (T - 1)."""
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"translation path must be (T, 2), got {xy.shape}")
        H = np.repeat(np.eye(3)[None], len(xy), axis=0)
        H[:, :2, 2] = xy
        return cls(H)

    @classmethod
    def from_homographies(cls, H: np.ndarray) -> "Motion":
        """H: (T, 3, 3) layer-to-image homographies at t_k = k / (T - 1)."""
        return cls(np.asarray(H, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.H)

    def at(self, t) -> np.ndarray:
        """Homographies at times t (scalar or (N,) in [0, 1]) -> (N, 3, 3) float64."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if len(self.H) == 1:
            return np.repeat(self.H, len(t), axis=0)
        pos = np.clip(t, 0.0, 1.0) * (len(self.H) - 1)
        k = np.minimum(np.floor(pos).astype(np.int64), len(self.H) - 2)
        f = (pos - k)[:, None, None]
        H = (1.0 - f) * self.H[k] + f * self.H[k + 1]
        return H / H[:, 2:3, 2:3]

    def recentered(self, reference_time: float) -> "Motion":
        """The same motion of content re-expressed so that H(reference_time) is the identity.

        If a layer's pixels are what the camera sees at `reference_time`, H'(t) = H(t) H(t_ref)^-1.
        """
        return Motion(self.H @ np.linalg.inv(self.at(reference_time)[0]))

    def then(self, outer: "Motion") -> "Motion":
        """Apply self, then `outer` (e.g. object motion, then camera motion): H(t) = outer(t) @ self(t)."""
        T = max(len(self), len(outer))
        t = np.linspace(0.0, 1.0, T)
        return Motion(outer.at(t) @ self.at(t))

    @property
    def is_translation(self) -> bool:
        A = self.H[:, :2, :2]
        return bool(np.allclose(A, np.eye(2), atol=1e-9) and np.allclose(self.H[:, 2, :2], 0.0, atol=1e-12))

    @property
    def is_static(self) -> bool:
        return bool(np.allclose(self.H, self.H[:1], atol=1e-9))

    def translation(self) -> np.ndarray:
        """(T, 2) displacement path in pixels; ValueError unless the motion is a pure translation."""
        if not self.is_translation:
            raise ValueError("motion is not a pure translation")
        return self.H[:, :2, 2].copy()

    def trace(self, points: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
        """Image positions of layer points over time.

        Args:
            points: (P, 2) layer pixel coordinates.
            t: (N,) times; default the motion's own samples.
        Returns:
            (N, P, 2) image coordinates.
        """
        H = self.H if t is None else self.at(t)
        p = np.concatenate([np.asarray(points, np.float64), np.ones((len(points), 1))], axis=1)
        q = np.einsum("nij,pj->npi", H, p)
        return q[..., :2] / q[..., 2:3]

    def path_length_px(self, points: np.ndarray) -> float:
        """Longest polyline length in pixels, over the given layer points, of their paths over the exposure."""
        if len(self.H) == 1:
            return 0.0
        q = self.trace(points)
        return float(np.max(np.sum(np.linalg.norm(np.diff(q, axis=0), axis=-1), axis=0)))


def exposure_times(n: int) -> np.ndarray:
    """Midpoint-rule sample times of the exposure: (n,) float64, t_k = (k + 0.5) / n."""
    if n < 1:
        raise ValueError(f"need at least one time sample, got {n}")
    return (np.arange(n, dtype=np.float64) + 0.5) / n


def rasterize_psf(xy: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Bilinearly splat a translation path into a blur kernel that sums to 1.

    Blurring an image I with this kernel as a convolution, B(p) = sum_u k(u) I(p - u), equals averaging
    bilinear samples of I displaced by every point of the path, which is what the exact renderer computes.
    (cv2.filter2D computes a correlation: flip the kernel for it.)

    Args:
        xy: (N, 2) displacements in pixels (x right, y down), one per time sample, equally weighted.
        radius: half size of the kernel; default just large enough for the path.
    Returns:
        float64 (2 * radius + 1, 2 * radius + 1); element [radius + dy, radius + dx] weighs displacement
        (dx, dy).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    need = int(np.ceil(np.max(np.abs(xy)))) + 1 if len(xy) else 1
    r = need if radius is None else int(radius)
    if r < need:
        raise ValueError(f"radius {r} too small for a path reaching {need - 1} px")
    size = 2 * r + 1
    kernel = np.zeros((size, size), dtype=np.float64)
    x = xy[:, 0] + r
    y = xy[:, 1] + r
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = x - x0
    fy = y - y0
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            np.add.at(kernel, (y0 + dy, x0 + dx), wx * wy)
    return kernel / len(xy)
