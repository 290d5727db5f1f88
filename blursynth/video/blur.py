"""Blur from video: integrate flow-interpolated latent frames over a simulated exposure.

Timeline, in units of the input frame interval (1 / fps seconds): real frame j sits at time j. The exposure of
output frame j is the window [j - d/2, j + d/2] for duty cycle d in (0, 1]: a length of d / fps seconds centred
on frame j, made of the last d/2 of the interval (j - 1, j) and the first d/2 of (j, j + 1); with d = 1 it
reaches the midpoints between frame j and its neighbours, so consecutive exposures tile the timeline.

The window is sampled at 2K + 1 equally spaced times j + (d/2)(k/K), k = -K..K, endpoints included, and
the blurred frame is the unweighted mean of the latent frames there (the sample at k = 0 is real frame j). With
M latent steps per frame interval, K = ceil(d M / 2), so consecutive samples are at most 1/M interval apart:
with M from `interpolate.latent_count`, at most about one pixel of motion. For a translation of v px/frame
the blur is exactly the real frame filtered with 2K + 1 taps of weight 1 / (2K + 1) spaced v d / (2K) px
apart along the motion, the discrete line kernel of length v d.

sharp = real frame j. Both come out in linear light; the caller applies the camera (`camera.apply_camera`).
Output frames exist for j = 1 .. N - 2: the first and last real frames lack a neighbour on one side. A window
touching a scene cut (an interval where few pixels pass the flow's forward-backward check) is not averaged
across the cut: it comes out with `skip` set and no blur, for the caller to count.

The latent frames are never materialized: a numba kernel warps, blends and accumulates each sample straight
into the sum (`interpolate.latent_frame` is its readable reference, compared in tests/test_video.py).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numba
import numpy as np

from ..camera import Response
from .flow import flow_pair
from .interpolate import latent_count, linear_lut, max_displacement, visibility

log = logging.getLogger(__name__)

_MIN_WEIGHT = 1e-6  # same fallback as interpolate.latent_frame


@dataclass
class Interval:
    """Flow data for one pair of consecutive real frames (frame0 at tau = 0, frame1 at tau = 1).

    Attributes:
        f01, f10: float32 (H, W, 2) forward and backward flow in pixels.
        v0, v1: float32 (H, W) visibility of frame0 in frame1 and of frame1 in frame0 (0 or 1).
        max_disp_px: the largest displacement over the interval (99.9th percentile of |flow| over the visible
            pixels), pixels.
        visible_fraction: mean of v0 and v1, the share of pixels whose flow passes the consistency check.
    """

    f01: np.ndarray
    f10: np.ndarray
    v0: np.ndarray
    v1: np.ndarray
    max_disp_px: float
    visible_fraction: float


@dataclass
class VideoExposure:
    """One output frame of the video path, in linear light.

    Attributes:
        index: source frame index j (the window centre; sharp is this real frame).
        blur: float32 (H, W, 3) linear mean of the latent frames over the exposure window; None when skipped.
        sharp: float32 (H, W, 3) linear real frame j.
        latent: M, latent steps per frame interval used for this window.
        samples: 2K + 1, number of time samples averaged.
        max_disp_px: largest displacement over the two intervals around frame j, pixels per frame.
        skip: why this window was not integrated (a scene cut inside it), or None.
    """

    index: int
    blur: np.ndarray | None
    sharp: np.ndarray
    latent: int
    samples: int
    max_disp_px: float
    skip: str | None = None


def blur_frames(frames: Iterable[np.ndarray], duty_cycle: float = 1.0, latent: int | str = "auto",
                response: Response = Response(), preset: str = "medium", flow_method: str = "dis",
                max_step_px: float = 1.0, cap: int = 64, min_visible: float = 0.2) -> Iterator[VideoExposure]:
    """Stream blurred/sharp pairs from a stream of real frames (three frames held in memory at a time).

    Args:
        frames: iterable of uint8 (H, W, 3) encoded RGB frames at a constant frame rate (e.g. `read_frames`).
        duty_cycle: d in (0, 1], exposure time as a fraction of the frame interval.
        latent: M latent steps per interval, or "auto" (from the flow, `latent_count`, per window).
        response: how the frames are linearized (Response("gamma", 1.0) averages the encoded values, as
            GoPro's `blur`; Response("gamma", 2.2) as its `blur_gamma`).
        preset, flow_method: see `flow.flow_pair`.
        max_step_px, cap: see `interpolate.latent_count` (latent="auto" only).
        min_visible: an interval where fewer than this share of pixels pass the forward-backward check is a
            scene cut (or a flow failure); windows touching it are yielded with `skip` set and no blur rather
            than averaged across the cut. Measured on bikes.mp4: consecutive frames 0.5-0.94, cuts to an
            unrelated image 0.01-0.03.
    Returns:
        an iterator of VideoExposure for source frames 1 .. N - 2; arguments are checked now, the frames are
        read lazily (ValueError on first use when fewer than 3 arrive).
    """
    _check(duty_cycle, latent)
    if not max_step_px > 0 or cap < 1:
        raise ValueError(f"max_step_px must be > 0 and cap >= 1, got {max_step_px}, {cap}")
    if not 0.0 <= min_visible <= 1.0:
        raise ValueError(f"min_visible must be in [0, 1], got {min_visible}")
    return _blur_frames(iter(frames), duty_cycle, latent, response, preset, flow_method, max_step_px, cap,
                        min_visible)


def _blur_frames(it, duty_cycle, latent, response, preset, flow_method, max_step_px, cap, min_visible):
    prev = next(it, None)
    cur = next(it, None)
    if prev is None or cur is None:
        raise ValueError("blur needs at least 3 frames")
    lut = linear_lut(response)
    lin_prev, lin_cur = lut[prev], lut[cur]
    iv_prev = interval(prev, cur, preset, flow_method)
    j = 1
    for nxt in it:
        lin_next = lut[nxt]
        iv_next = interval(cur, nxt, preset, flow_method)
        disp = max(iv_prev.max_disp_px, iv_next.max_disp_px)
        cut = [(k, iv) for k, iv in ((j - 1, iv_prev), (j, iv_next)) if iv.visible_fraction < min_visible]
        if cut:
            k, iv = cut[0]
            reason = f"scene cut between frames {k} and {k + 1} ({iv.visible_fraction:.0%} of pixels flow-consistent)"
            log.info("frame %d skipped: %s", j, reason)
            yield VideoExposure(j, None, lin_cur, 0, 0, disp, reason)
        else:
            m = latent if latent != "auto" else latent_count(
                ((iv_prev.f01, iv_prev.v0), (iv_prev.f10, iv_prev.v1), (iv_next.f01, iv_next.v0),
                 (iv_next.f10, iv_next.v1)), max_step_px, cap)
            blur, samples = blur_window(lin_prev, lin_cur, lin_next, iv_prev, iv_next, duty_cycle, m)
            yield VideoExposure(j, blur, lin_cur, m, samples, disp)
        prev, cur, lin_prev, lin_cur, iv_prev = cur, nxt, lin_cur, lin_next, iv_next
        j += 1
    if j == 1:
        raise ValueError("blur needs at least 3 frames")


def interval(frame0: np.ndarray, frame1: np.ndarray, preset: str = "medium", method: str = "dis") -> Interval:
    """Flows and visibilities between two uint8 (H, W, 3) RGB frames (see `Interval`)."""
    f01, f10 = flow_pair(frame0, frame1, preset, method)
    v0, v1 = visibility(f01, f10)
    return Interval(f01, f10, v0, v1, max(max_displacement(f01, visible=v0), max_displacement(f10, visible=v1)),
                    float(v0.mean() + v1.mean()) / 2)


def exposure_taus(duty_cycle: float, latent: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample times of one exposure window, as taus within the two intervals around the centre frame.

    Returns:
        (taus_prev, taus_next): float64 (K,) each; taus_prev = 1 - (d/2)(k/K) in the interval before the centre
        frame, taus_next = (d/2)(k/K) in the one after, k = 1..K, K = ceil(d * latent / 2). With the centre
        frame itself that is 2K + 1 samples.
    """
    k = max(1, math.ceil(duty_cycle * latent / 2 - 1e-9))
    offsets = (duty_cycle / 2) * np.arange(1, k + 1, dtype=np.float64) / k
    return 1.0 - offsets, offsets


def blur_window(lin_prev: np.ndarray, lin_cur: np.ndarray, lin_next: np.ndarray, iv_prev: Interval,
                iv_next: Interval, duty_cycle: float, latent: int) -> tuple[np.ndarray, int]:
    """The blurred frame of one exposure window centred on lin_cur.

    Args:
        lin_prev, lin_cur, lin_next: float32 (H, W, 3) linear frames j - 1, j, j + 1.
        iv_prev, iv_next: `Interval`s (j - 1, j) and (j, j + 1).
        duty_cycle: d in (0, 1].
        latent: M latent steps per interval.
    Returns:
        (blur float32 (H, W, 3) linear, number of samples averaged).
    """
    _check(duty_cycle, latent)
    if lin_cur.ndim != 3 or lin_cur.shape[2] != 3 or not lin_prev.shape == lin_cur.shape == lin_next.shape:
        raise ValueError(f"frames must be (H, W, 3) and alike, got {lin_prev.shape}, {lin_cur.shape}, "
                         f"{lin_next.shape}")
    taus_prev, taus_next = exposure_taus(duty_cycle, latent)
    acc = np.array(lin_cur, dtype=np.float32, copy=True)
    for lin0, lin1, iv, taus in ((lin_prev, lin_cur, iv_prev, taus_prev), (lin_cur, lin_next, iv_next, taus_next)):
        _accumulate(np.ascontiguousarray(lin0, dtype=np.float32), np.ascontiguousarray(lin1, dtype=np.float32),
                    iv.f01, iv.f10, iv.v0[..., None], iv.v1[..., None], taus, acc)
    samples = 2 * len(taus_next) + 1
    acc *= np.float32(1.0 / samples)
    return acc, samples


def _check(duty_cycle, latent) -> None:
    if not 0.0 < duty_cycle <= 1.0:
        raise ValueError(f"duty_cycle must be in (0, 1], got {duty_cycle}")
    if latent != "auto" and not (isinstance(latent, (int, np.integer)) and latent >= 1):
        raise ValueError(f"latent must be an int >= 1 or 'auto', got {latent!r}")


@numba.njit(parallel=True, cache=True, fastmath=True)
def _accumulate(lin0, lin1, f01, f10, v0, v1, taus, out):
    # out += sum over taus of interpolate.latent_frame(lin0, lin1, f01, f10, tau), without storing any of them.
    # The bilinear footprint of each source point is found once and reused for its visibility and colours.
    h, w = out.shape[0], out.shape[1]
    for y in numba.prange(h):
        for x in range(w):
            r = np.float32(0)
            g = np.float32(0)
            bl = np.float32(0)
            ax01 = f01[y, x, 0]
            ay01 = f01[y, x, 1]
            ax10 = f10[y, x, 0]
            ay10 = f10[y, x, 1]
            for i in range(taus.shape[0]):
                t = np.float32(taus[i])
                a = -t * (np.float32(1) - t)
                b = t * t
                c2 = (np.float32(1) - t) * (np.float32(1) - t)
                i00, i01, i10, i11, k00, k01, k10, k11 = _footprint(
                    h, w, np.float32(x) + (a * ax01 + b * ax10), np.float32(y) + (a * ay01 + b * ay10))
                j00, j01, j10, j11, m00, m01, m10, m11 = _footprint(
                    h, w, np.float32(x) + (c2 * ax01 + a * ax10), np.float32(y) + (c2 * ay01 + a * ay10))
                w0 = (np.float32(1) - t) * _gather(v0, i00, i01, i10, i11, k00, k01, k10, k11, 0)
                w1 = t * _gather(v1, j00, j01, j10, j11, m00, m01, m10, m11, 0)
                if w0 + w1 < _MIN_WEIGHT:
                    w0 = np.float32(1) - t
                    w1 = t
                norm = np.float32(1) / (w0 + w1)
                w0 *= norm
                w1 *= norm
                r += w0 * _gather(lin0, i00, i01, i10, i11, k00, k01, k10, k11, 0) + w1 * _gather(
                    lin1, j00, j01, j10, j11, m00, m01, m10, m11, 0)
                g += w0 * _gather(lin0, i00, i01, i10, i11, k00, k01, k10, k11, 1) + w1 * _gather(
                    lin1, j00, j01, j10, j11, m00, m01, m10, m11, 1)
                bl += w0 * _gather(lin0, i00, i01, i10, i11, k00, k01, k10, k11, 2) + w1 * _gather(
                    lin1, j00, j01, j10, j11, m00, m01, m10, m11, 2)
            out[y, x, 0] += r
            out[y, x, 1] += g
            out[y, x, 2] += bl


@numba.njit(cache=True, inline="always")
def _footprint(h, w, px, py):
    # the four bilinear neighbours and their weights, by the arithmetic of interpolate.bilinear (border replicated)
    px = min(max(px, np.float32(0)), np.float32(w - 1))
    py = min(max(py, np.float32(0)), np.float32(h - 1))
    # int() truncates, which is floor here since px, py >= 0
    x0 = min(int(px), max(w - 2, 0))
    y0 = min(int(py), max(h - 2, 0))
    ax = px - np.float32(x0)
    ay = py - np.float32(y0)
    x1 = min(x0 + 1, w - 1)
    y1 = min(y0 + 1, h - 1)
    one = np.float32(1)
    return (y0, x0, y1, x1, (one - ax) * (one - ay), ax * (one - ay), (one - ax) * ay, ax * ay)


@numba.njit(cache=True, inline="always")
def _gather(img, y0, x0, y1, x1, k00, k01, k10, k11, c):
    return (img[y0, x0, c] * k00 + img[y0, x1, c] * k01) + (img[y1, x0, c] * k10 + img[y1, x1, c] * k11)
