"""Latent frames for the event simulator: the luminance of the flow-interpolated latent frames, area-downscaled to
the event resolution, made in one numba kernel.

`blursynth events VIDEO` simulates over every latent frame of every input interval (M per interval, about one
pixel of motion each), so the latent frames are most of its work. The numpy reference is

    downscale(to_gray(interpolate.latent_frame(lin0, lin1, f01, f10, tau, (v0, v1))), s)

(`events.frames`: Rec. 709 luminance of linear RGB, then the mean of each s x s block). The latent frame is a
blend of the two warped frames whose weights (time and visibility) do not depend on the colour channel, and the
luminance is linear, so the luminance of the latent frame is the same blend of the two frames' luminances:
`gray_latent` warps and blends to_gray(lin0) and to_gray(lin1), one channel instead of three, and never makes an
RGB latent frame. Each thread takes one row of the output; for each tau it makes the s input rows under it with
the video kernel's own sample points and blend weights (`kernels._row_cells`, `kernels._blend_weights`: the latent
images `blursynth video` integrates) and adds them into the row's block sums. `gray_latents` streams a clip
through it, with the flows and visibilities of each interval computed once (`blur.Timeline`) and the next
interval's computed in a background thread while this one's frames are made.

Against the reference the frames agree to float32 rounding amplified by the image gradient (tests/
test_events_video.py states the bound and the reason); against the video kernel's RGB followed by to_gray and
downscale, to a few float32 ulps (the blend and the luminance are summed in the other order).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numba
import numpy as np

from ..camera import Response
from ..events.frames import REC709_LUMA, downscale
from .blur import Interval, Timeline
from .kernels import _bilinear, _blend_weights, _row_cells
from .interpolate import latent_steps, linear_lut

# DIS preset of the events' flows: the video path's default (recipe.VideoFlowRecipe, where its accuracy is
# measured). medium costs 52 ms per frame pair at 640x272 on one core (13 s for bikes.mp4, longer than the clip
# plays), fast 12 ms.
FLOW_PRESET = "fast"


def gray_latents(frames: Iterable[np.ndarray], latent: int | str = "auto", scale: int = 1,
                 response: Response = Response(), preset: str = FLOW_PRESET, flow_method: str = "dis",
                 max_step_px: float = 1.0, cap: int = 64, prefetch: bool = True,
                 timings=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream the event simulator's frames of a clip: real frame 0, then for each interval (i, i + 1) the latent
    frames at i + k / M, k = 1..M (the last one is real frame i + 1).

    Args:
        frames: iterable of uint8 (H, W, 3) encoded RGB frames at a constant frame rate (e.g. `read_frames`),
            H, W >= 2.
        latent: M latent steps per interval, or "auto": as the video path steps (`Interval.full_size_displacement`,
            the flows' displacement over their visible pixels, through `interpolate.latent_steps` with max_step_px
            and cap): about max_step_px of motion per step.
        scale: s >= 1, events at 1 / s of the frame resolution (rows and columns beyond a multiple of s dropped).
        response: how the frames are linearized.
        preset, flow_method: see `flow.flow_pair` (flows at full resolution).
        prefetch: compute the next interval's flows in a background thread (see `blur.blur_frames`).
        timings: optional object with a `stage(name)` context manager: "decode", "flow" (and "flow wait").
    Yields:
        (gray, t): gray float32 (k, H // s, W // s) linear luminance, t float64 (k,) times in input frame units
        (real frame j at j): first (frame 0, [0.0]), then one chunk per interval, in order. A clip of one frame
        yields only the first chunk.
    Raises:
        ValueError: latent is neither "auto" nor an int >= 1; scale is not an integer >= 1 or is larger than the
            frames (on the first frame).
    """
    if latent != "auto" and not (isinstance(latent, (int, np.integer)) and latent >= 1):
        raise ValueError(f"latent must be an int >= 1 or 'auto', got {latent!r}")
    lut = linear_lut(response)
    luma = tuple(np.float32(c) * lut for c in REC709_LUMA)  # each code's term of to_gray, as to_gray rounds it
    tl = Timeline(iter(frames), lut, preset, flow_method, 1.0, timings)
    try:
        if not tl.ensure(0):
            return
        gray0 = gray_codes(tl.frame(0), luma)
        yield downscale(gray0, scale)[None], np.zeros(1)
        i = 0
        while tl.ensure(i + 1):
            if prefetch and tl.ensure(i + 2):
                tl.prefetch(i + 1)
            iv = tl.interval(i)
            m = latent if latent != "auto" else latent_steps(iv.full_size_displacement(), max_step_px, cap)
            taus = np.arange(1, m + 1) / m
            gray1 = gray_codes(tl.frame(i + 1), luma)
            yield gray_latent(gray0, gray1, iv, taus, scale), i + taus
            tl.drop_before(i + 1)
            gray0 = gray1
            i += 1
    finally:
        tl.close()


def gray_codes(frame: np.ndarray, luma: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """to_gray(np.take(lut, frame)) of a uint8 (H, W, 3) frame, to the bit, without the linear RGB frame:
    luma[c] = np.float32(REC709_LUMA[c]) * lut (float32 (256,) each), summed in to_gray's order."""
    out = np.empty(frame.shape[:2], np.float32)
    _gray_codes(np.ascontiguousarray(frame), *luma, out)
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _gray_codes(frame, lr, lg, lb, out):
    h, w = out.shape
    for y in numba.prange(h):
        for x in range(w):
            out[y, x] = (lr[frame[y, x, 0]] + lg[frame[y, x, 1]]) + lb[frame[y, x, 2]]


def gray_latent(gray0: np.ndarray, gray1: np.ndarray, iv: Interval, taus: np.ndarray, scale: int = 1) -> np.ndarray:
    """The event simulator's frames of one interval: for each tau, the `interpolate.latent_frame` of the one-channel
    frames gray0, gray1 (flows and visibilities of iv) area-downscaled by `scale`, in one kernel; with gray =
    to_gray(linear RGB frame) that is the luminance of the RGB latent frame (see the module docstring).

    Args:
        gray0, gray1: float32 (H, W) linear luminance of the real frames at tau = 0 and 1, H, W >= 2.
        iv: their `Interval` (its `kernel_inputs` are made once and cached on it).
        taus: (T,) times in [0, 1].
        scale: s >= 1, the area-downscale factor.
    Returns:
        float32 (T, H // s, W // s) linear luminance; at tau = 1 exactly downscale(gray1, s).
    """
    if not (isinstance(scale, (int, np.integer)) and scale >= 1):
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    if gray0.ndim != 2 or gray1.shape != gray0.shape or min(gray0.shape) < 2:
        raise ValueError(f"frames must be (H, W) with H, W >= 2 and alike, got {gray0.shape}, {gray1.shape}")
    h, w = gray0.shape
    if h // scale == 0 or w // scale == 0:
        raise ValueError(f"frames of {w}x{h} are smaller than the event scale {scale}")
    taus = np.ascontiguousarray(taus, dtype=np.float64).reshape(-1)
    out = np.empty((len(taus), h // scale, w // scale), np.float32)
    p01, p10, v0, v1, m0, m1 = iv.kernel_inputs()
    _gray_rows(np.ascontiguousarray(gray0, dtype=np.float32), np.ascontiguousarray(gray1, dtype=np.float32),
               p01, p10, v0, v1, m0, m1, taus, int(scale), out)
    return out


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _gray_rows(gray0, gray1, p01, p10, v0, v1, m0, m1, taus, scale, out):
    # out[i, Y, X] = mean over the scale x scale block (Y, X) of latent frame taus[i] of the gray frames. One
    # output row per thread, so the bytes do not depend on the thread count. Per tau, each of the `scale` input
    # rows under it: the video kernel's cells and blend weights (kernels._row_cells, kernels._blend_weights), one
    # channel gathered, added into the block sums in float64, where a sum of s^2 float32 values is exact unless
    # their magnitudes span more than about 2^(29 - 2 log2 s): downscale's float64 mean whatever the order.
    h, w = gray0.shape
    hs, ws = out.shape[1], out.shape[2]
    c0 = gray0.reshape(-1)
    c1 = gray1.reshape(-1)
    q0 = v0.reshape(-1)
    q1 = v1.reshape(-1)
    z0 = m0.reshape(-1)
    z1 = m1.reshape(-1)
    uw = np.uintp(w)
    u1 = np.uintp(1)
    area = np.float64(scale * scale)
    for yb in numba.prange(hs):
        o0 = np.empty(w, np.int32)
        ax0 = np.empty(w, np.float32)
        ay0 = np.empty(w, np.float32)
        o1 = np.empty(w, np.int32)
        ax1 = np.empty(w, np.float32)
        ay1 = np.empty(w, np.float32)
        acc = np.empty(ws, np.float64)
        for i in range(taus.shape[0]):
            t = np.float32(taus[i])
            acc[:] = 0.0
            for dy in range(scale):
                y = yb * scale + dy
                _row_cells(p01[0, y], p01[1, y], p10[0, y], p10[1, y], h, w, y, t, o0, ax0, ay0, o1, ax1, ay1)
                for xb in range(ws):
                    block = 0.0
                    for x in range(xb * scale, xb * scale + scale):
                        e0, e1, k00, k01, k10, k11, l00, l01, l10, l11, w0, w1 = _blend_weights(
                            q0, q1, z0, z1, w, t, o0, ax0, ay0, o1, ax1, ay1, x)
                        block += np.float64(w0 * _bilinear(c0, e0, e0 + uw, u1, k00, k01, k10, k11)
                                            + w1 * _bilinear(c1, e1, e1 + uw, u1, l00, l01, l10, l11))
                    acc[xb] += block
            for xb in range(ws):
                out[i, yb, xb] = np.float32(acc[xb] / area)

