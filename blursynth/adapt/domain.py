"""How a target domain blurs: per-pixel blur from the flow between neighbouring frames, its histogram over
magnitude and direction, and draws from it.

Between frames k - 1, k and k + 1 of a video the content at a pixel of frame k moves with the velocity
v_k = (F_{k->k+1} - F_{k->k-1}) / 2 px per frame interval (central difference of the DIS flows; one-sided at
the ends and where one of the two flows fails its forward-backward check). A camera whose exposure lasts
`exposure_ratio` of the frame interval (the duty cycle) smears it over the displacement d = exposure_ratio v_k,
so the blur-condition map of frame k in ID-Blau's convention is (u_x, u_y, m) = (d / |d|, |d|): unit direction
of the motion (x right, y down; (0, 0) where it is still) and its magnitude in pixels, what the engine's
`render(...).blur_map` holds for a rendered exposure.

`BlurDistribution` is the histogram of (m, angle) over the flow-consistent pixels of every frame (the domain's
blur condition); `sample` draws conditions that follow it, uniform within a bin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TWO_PI = 2.0 * math.pi


@dataclass
class BlurDistribution:
    """Histogram of blur magnitude and direction over pixels.

    Attributes:
        magnitude_edges: float64 (M + 1,) bin edges in px, from 0.
        angle_edges: float64 (A + 1,) bin edges in radians over [0, 2 pi); angle = atan2(u_y, u_x) (y down).
        counts: float64 (M, A) pixel counts.
        outliers: pixels whose magnitude exceeded the last edge (left out of `counts`).
    """

    magnitude_edges: np.ndarray
    angle_edges: np.ndarray
    counts: np.ndarray
    outliers: int = 0

    @classmethod
    def empty(cls, bin_px: float, max_px: float, angle_bins: int) -> "BlurDistribution":
        n = int(math.ceil(max_px / bin_px - 1e-9))
        return cls(np.arange(n + 1, dtype=np.float64) * bin_px, np.linspace(0.0, TWO_PI, angle_bins + 1),
                   np.zeros((n, angle_bins)), 0)

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    def add(self, condition: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Count the pixels of a blur-condition map.

        Args:
            condition: float (H, W, 3) (u_x, u_y, magnitude px).
            valid: optional bool (H, W): pixels to count.
        """
        c = condition.reshape(-1, 3)
        if valid is not None:
            c = c[valid.reshape(-1)]
        m = c[:, 2].astype(np.float64)
        angle = np.mod(np.arctan2(c[:, 1], c[:, 0]).astype(np.float64), TWO_PI)
        top = self.magnitude_edges[-1]
        inside = m < top
        self.outliers += int(np.count_nonzero(~inside))
        counts, _, _ = np.histogram2d(m[inside], angle[inside], bins=(self.magnitude_edges, self.angle_edges))
        self.counts += counts

    def merged(self, other: "BlurDistribution") -> "BlurDistribution":
        if not (np.array_equal(self.magnitude_edges, other.magnitude_edges)
                and np.array_equal(self.angle_edges, other.angle_edges)):
            raise ValueError("cannot merge blur distributions with different bins")
        return BlurDistribution(self.magnitude_edges, self.angle_edges, self.counts + other.counts,
                                self.outliers + other.outliers)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n draws of (magnitude px, angle rad), float64 (n,) each: a bin by its count, uniform inside it.

        Two uniforms per draw come first from `rng`, then the bins: a fixed number of draws in a fixed order.
        """
        if self.total <= 0:
            raise ValueError("the blur distribution is empty: no flow-consistent pixel was measured")
        u = rng.random((n, 3))
        cdf = np.cumsum(self.counts.reshape(-1))
        flat = np.minimum(np.searchsorted(cdf, u[:, 0] * cdf[-1], side="right"), cdf.size - 1)
        mi, ai = np.divmod(flat, self.counts.shape[1])
        me, ae = self.magnitude_edges, self.angle_edges
        magnitude = me[mi] + u[:, 1] * (me[mi + 1] - me[mi])
        angle = ae[ai] + u[:, 2] * (ae[ai + 1] - ae[ai])
        return magnitude, angle

    def magnitude_quantile(self, q) -> np.ndarray:
        """Quantiles of the magnitude marginal (uniform within bins: the CDF is piecewise linear), px."""
        marginal = self.counts.sum(axis=1)
        cdf = np.concatenate([[0.0], np.cumsum(marginal)]) / max(marginal.sum(), 1e-300)
        q = np.asarray(q, dtype=np.float64)
        # only the ends of the rising stretches: empty bins in between add nothing (interp needs them out)
        rising = np.diff(cdf) > 0
        keep = np.concatenate([rising, [False]]) | np.concatenate([[False], rising])
        return np.interp(q, cdf[keep], self.magnitude_edges[keep])

    def direction(self) -> tuple[float, float]:
        """Dominant axis of motion: (angle in [0, pi) rad, concentration in [0, 1]) from the mean of e^{2 i angle}
        weighted by magnitude (blur along a line looks the same both ways; 1 = all along one axis)."""
        centres_m = 0.5 * (self.magnitude_edges[1:] + self.magnitude_edges[:-1])
        centres_a = 0.5 * (self.angle_edges[1:] + self.angle_edges[:-1])
        w = self.counts * centres_m[:, None]
        z = np.sum(w * np.exp(2j * centres_a)[None, :]) / max(w.sum(), 1e-300)
        return float(np.mod(np.angle(z) / 2.0, math.pi)), float(abs(z))

    def summary(self) -> dict:
        """Plain numbers for logs and the manifest: magnitude mean, p50, p95 (px), direction."""
        marginal = self.counts.sum(axis=1)
        centres = 0.5 * (self.magnitude_edges[1:] + self.magnitude_edges[:-1])
        mean = float((marginal * centres).sum() / max(marginal.sum(), 1e-300))
        p50, p95 = (float(v) for v in self.magnitude_quantile([0.5, 0.95]))
        axis, concentration = self.direction()
        return {"pixels": int(self.total), "outliers": self.outliers, "mean_px": round(mean, 4),
                "p50_px": round(p50, 4), "p95_px": round(p95, 4), "axis_deg": round(math.degrees(axis), 2),
                "axis_concentration": round(concentration, 4)}

    def to_dict(self) -> dict:
        return {"magnitude_edges_px": self.magnitude_edges.tolist(), "angle_edges_rad": self.angle_edges.tolist(),
                "counts": self.counts.astype(np.int64).tolist(), "outliers": int(self.outliers)}

    @classmethod
    def from_dict(cls, d: dict) -> "BlurDistribution":
        return cls(np.asarray(d["magnitude_edges_px"], np.float64), np.asarray(d["angle_edges_rad"], np.float64),
                   np.asarray(d["counts"], np.float64), int(d.get("outliers", 0)))


def frame_velocity(forward: np.ndarray | None, backward: np.ndarray | None, forward_ok: np.ndarray | None,
                   backward_ok: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Velocity of frame k's pixels from its flows to the next and the previous frame.

    Args:
        forward: float32 (h, w, 2) flow k -> k + 1 in px, or None (last frame).
        backward: float32 (h, w, 2) flow k -> k - 1 in px, or None (first frame).
        forward_ok, backward_ok: float32/bool (h, w): where each flow passed the forward-backward check.
    Returns:
        (v, valid): float32 (h, w, 2) px per frame interval, (forward - backward) / 2 where both flows hold,
        the one that holds elsewhere, the plain average where neither does; bool (h, w) where at least one held.
    """
    if forward is None and backward is None:
        raise ValueError("a frame needs a flow to at least one neighbour")
    if backward is None:
        return forward.astype(np.float32, copy=True), np.asarray(forward_ok) > 0.5
    if forward is None:
        return (-backward).astype(np.float32), np.asarray(backward_ok) > 0.5
    f_ok = (np.asarray(forward_ok) > 0.5)[..., None]
    b_ok = (np.asarray(backward_ok) > 0.5)[..., None]
    both = 0.5 * (forward - backward)
    v = np.where(f_ok & b_ok, both, np.where(f_ok, forward, np.where(b_ok, -backward, both)))
    return v.astype(np.float32), (f_ok | b_ok)[..., 0]


def condition_map(velocity: np.ndarray, exposure_ratio: float) -> np.ndarray:
    """Blur-condition map in ID-Blau's convention from a velocity field.

    Args:
        velocity: float (h, w, 2) px per frame interval.
        exposure_ratio: exposure time / frame interval.
    Returns:
        float32 (h, w, 3): (u_x, u_y) unit direction ((0, 0) where still) and magnitude px = ratio |v|.
    """
    d = np.asarray(velocity, np.float32) * np.float32(exposure_ratio)
    m = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)
    inv = np.where(m > 0, 1.0 / np.maximum(m, 1e-30), 0.0).astype(np.float32)
    return np.stack([d[..., 0] * inv, d[..., 1] * inv, m], axis=-1)


def resize_condition(condition: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A condition map at another (width, height), averaging displacement vectors (not unit directions)."""
    import cv2

    d = condition[..., :2] * condition[..., 2:3]
    h, w = condition.shape[:2]
    interp = cv2.INTER_AREA if size[0] <= w and size[1] <= h else cv2.INTER_LINEAR
    return condition_map(cv2.resize(np.ascontiguousarray(d, np.float32), size, interpolation=interp), 1.0)


def wasserstein1(a: np.ndarray, b: np.ndarray, a_weights: np.ndarray | None = None,
                 b_weights: np.ndarray | None = None) -> float:
    """Wasserstein-1 distance between two weighted 1-D samples: the integral of |F_a - F_b| (same units as
    the values, here px)."""
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    wa = np.ones_like(a) if a_weights is None else np.asarray(a_weights, np.float64).reshape(-1)
    wb = np.ones_like(b) if b_weights is None else np.asarray(b_weights, np.float64).reshape(-1)
    if a.size == 0 or b.size == 0 or wa.sum() <= 0 or wb.sum() <= 0:
        raise ValueError("wasserstein1 needs two non-empty samples with positive weight")
    values = np.concatenate([a, b])
    order = np.argsort(values, kind="mergesort")
    values = values[order]
    signed = np.concatenate([wa / wa.sum(), -wb / wb.sum()])[order]
    diff = np.cumsum(signed)[:-1]  # F_a - F_b on each gap between consecutive values
    return float(np.sum(np.abs(diff) * np.diff(values)))


def distribution_distance(dist: BlurDistribution, values: np.ndarray, weights: np.ndarray | None = None,
                          points: int = 4096) -> float:
    """Wasserstein-1 (px) between a distribution's magnitude marginal and a weighted sample of magnitudes,
    the distribution taken through its quantile function on `points` midpoint quantiles."""
    q = (np.arange(points) + 0.5) / points
    return wasserstein1(dist.magnitude_quantile(q), values, None, weights)
