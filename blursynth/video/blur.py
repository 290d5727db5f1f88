"""Blur from video: integrate flow-interpolated latent frames over a simulated exposure.

Timeline, in units of the input frame interval (1 / fps_in seconds): real frame k sits at time k. Output frame j
(at j / fps_out seconds) is centred at c_j = j s, s = fps_in / fps_out the input intervals per output frame
(`step`), and its exposure is the window [c_j - L/2, c_j + L/2], L = d s for duty cycle d in (0, 1]: d / fps_out
seconds. With s = 1 and d = 1 the window reaches the midpoints between frame j and its neighbours, so
consecutive exposures tile the timeline; with s = 5, d = 0.8 (120 fps in, 24 out) it spans 4 input intervals
around every fifth real frame, as REDS did.

The window is sampled at 2K + 1 equally spaced times c_j + (L/2)(k/K), k = -K..K, endpoints included, and the
blurred frame is the unweighted mean of the latent frames there. With M latent steps per input interval,
K = ceil(L M / 2), so consecutive samples are at most 1/M interval apart: with M from
`interpolate.latent_count`, at most about one pixel of motion. A sample that falls on a real frame is that
frame; any other is the flow-interpolated latent frame of the interval it falls in. For a translation of
v px per input frame the blur is exactly the real frame filtered with 2K + 1 taps of weight 1 / (2K + 1) spaced
v L / (2K) px apart along the motion, the discrete line kernel of length v L.

sharp = the latent frame at the window centre c_j: the real frame itself when c_j is a whole number (always
when fps_out divides fps_in, e.g. the default fps_out = fps_in), otherwise the flow-interpolated frame at c_j
between its two real neighbours, computed exactly like the blur's samples (so blur and sharp stay aligned,
and a static clip still gives blur == sharp).

Both come out in linear light; the caller applies the camera (`camera.apply_camera`). Output frames exist for
every j >= 1 whose window lies inside [0, N - 1] (N real frames; frame j = 0 would need time before the first
frame). A window touching a scene cut (an interval where few pixels pass the flow's forward-backward check)
is not averaged across the cut: it comes out with `skip` set and no blur, for the caller to count.

An optional camera shake adds a homography path H(t) over the normalized exposure t in [0, 1] (the engine's
`motion.Motion`, recentred so H(0.5) is the identity): the sample at window position k is the latent frame
warped by H(t_k), t_k = (k + K) / (2K), i.e. it is read at H(t_k)^-1 p. sharp, at t = 0.5, is not warped.

The latent frames are never materialized: a numba kernel warps, blends and accumulates each sample straight
into the sum (`interpolate.latent_frame` is its readable reference, compared in tests/test_video.py); with
d = 1 a window's last sample is the next window's first and is interpolated once for both (see `_integrate`). Real
frames and flows are decoded and computed on demand and dropped once behind the window, so memory does not
grow with the clip's length; intervals that no window touches (the gaps between short exposures) get no flow.
With `prefetch` the next window's flows are computed in a background thread while the current window is
integrated (same results; benchmarks/video.py measures the pipeline with it).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..camera import Response
from ..jit import kernels_may_overlap
from .flow import flow_pair, resolve_scale
from .interpolate import consistency, latent_steps, linear_lut, max_displacement
from .kernels import _accumulate_interval, _accumulate_warped, kernel_inputs

log = logging.getLogger(__name__)

_EPS = 1e-9  # times closer than this to a whole number are that real frame
DISP_PERCENTILE = 99.9  # Interval.max_disp_px: this percentile of |flow| (interpolate.max_displacement)


@dataclass
class Interval:
    """Flow data for one pair of consecutive real frames (frame0 at tau = 0, frame1 at tau = 1).

    Attributes:
        f01, f10: float32 (H, W, 2) forward and backward flow in pixels.
        v0, v1: float32 (H, W) visibility of frame0 in frame1 and of frame1 in frame0 (0 or 1; in between near
            edges when the flow was computed at reduced resolution and upsampled).
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
    _kernel: tuple | None = field(default=None, init=False, repr=False, compare=False)
    _full_disp: float | None = field(default=None, init=False, repr=False, compare=False)

    def kernel_inputs(self) -> tuple:
        """What `_accumulate_rows` reads, made once per interval (see `kernel_inputs`)."""
        if self._kernel is None:
            self._kernel = kernel_inputs(self.f01, self.f10, self.v0, self.v1)
        return self._kernel

    def full_size_displacement(self) -> float:
        """max of `interpolate.max_displacement(f, DISP_PERCENTILE, v)` over (f01, v0) and (f10, v1) as stored
        (full size, visible where v > 0), pixels: what latent="auto" steps by (`latent_count` of these pairs),
        computed once however many windows share the interval."""
        if self._full_disp is None:
            self._full_disp = max(max_displacement(self.f01, DISP_PERCENTILE, self.v0),
                                  max_displacement(self.f10, DISP_PERCENTILE, self.v1))
        return self._full_disp


@dataclass
class VideoExposure:
    """One output frame of the video path, in linear light.

    Attributes:
        index: output frame j (with the default step 1: the source frame at the window centre).
        blur: float32 (H, W, 3) linear mean of the latent frames over the exposure window; None when skipped.
        sharp: float32 (H, W, 3) linear latent frame at the window centre (a real frame when the centre is one).
        latent: M, latent steps per input frame interval used for this window (0 when skipped before it).
        samples: 2K + 1, number of time samples averaged (0 when skipped).
        max_disp_px: largest displacement over the intervals the window touches, pixels per input frame.
        skip: why this window was not integrated (a scene cut inside it, or the caller's `accept`), or None.
        center: c_j, the window centre in input frame units (real frame k at k).
        span: (start, end) of the exposure window in input frame units.
        shake: parameters of the added camera shake (from the `shake` callable), or None.
        flow: with keep_flow, float32 (H, W, 2) forward flow of the interval holding the centre; else None.
    """

    index: int
    blur: np.ndarray | None
    sharp: np.ndarray
    latent: int
    samples: int
    max_disp_px: float
    skip: str | None = None
    center: float = 0.0
    span: tuple[float, float] = (0.0, 0.0)
    shake: dict | None = None
    flow: np.ndarray | None = field(default=None, repr=False)

    @property
    def source_frames(self) -> tuple[int, int]:
        """First and last real frame whose content enters the window (inclusive)."""
        return _floor(self.span[0]), _ceil(self.span[1])


def blur_frames(frames: Iterable[np.ndarray], duty_cycle: float = 1.0, latent: int | str = "auto",
                response: Response = Response(), preset: str = "medium", flow_method: str = "dis",
                max_step_px: float = 1.0, cap: int = 64, min_visible: float = 0.2, step: float = 1.0,
                flow_scale: float | str = 1.0, shake: Callable | None = None, accept: Callable | None = None,
                keep_flow: bool = False, timings=None, on_span: Callable | None = None,
                prefetch: bool = False) -> Iterator[VideoExposure]:
    """Stream blurred/sharp pairs from a stream of real frames (only the frames and flows of the current
    window are held in memory).

    Args:
        frames: iterable of uint8 (H, W, 3) encoded RGB frames at a constant frame rate (e.g. `read_frames`).
        duty_cycle: d in (0, 1], exposure time as a fraction of the output frame interval.
        latent: M latent steps per input interval, or "auto" (from the flow, `latent_count`, per window).
        response: how the frames are linearized (Response("gamma", 1.0) averages the encoded values, as
            GoPro's `blur`; Response("gamma", 2.2) as its `blur_gamma`).
        preset, flow_method: see `flow.flow_pair`.
        max_step_px, cap: see `interpolate.latent_count` (latent="auto" only).
        min_visible: an interval where fewer than this share of pixels pass the forward-backward check is a
            scene cut (or a flow failure); windows touching it are yielded with `skip` set and no blur rather
            than averaged across the cut. Measured on bikes.mp4: consecutive frames 0.5-0.94, cuts to an
            unrelated image 0.01-0.03.
        step: s = fps_in / fps_out > 0, input frame intervals per output frame (1: the input's frame rate).
        flow_scale: in (0, 1], compute flows (and visibility) at this fraction of the resolution and upsample
            them (see `interval`); "auto": `flow.auto_scale` of the frame size (full resolution up to 640x360).
        shake: optional callable j -> (Motion or None, dict of parameters): an extra camera shake for output
            frame j over the normalized exposure, identity at t = 0.5 (see the module docstring).
        accept: optional callable (j, sharp, frame) -> reason or None, called before the blur is integrated,
            with sharp the linear float32 (H, W, 3) frame and frame the uint8 (H, W, 3) real frame it comes from
            when the window centre is a real frame (None otherwise); a reason skips the window (quality filters
            that look at sharp alone).
        keep_flow: attach the forward flow around each centre (for drawing a flow video).
        timings: optional object with a `stage(name)` context manager (`generate.Timings`): seconds spent in
            "decode", "flow" and "blur".
        on_span: optional callable (j, start, lo, hi, latent_at) called for every output frame j before it is
            yielded, while the frames it needs are held: start is the end of frame j - 1's exposure (lo for the
            first frame), [lo, hi] frame j's exposure (input frame units), and latent_at(t) gives the linear
            float32 (H, W, 3) latent frame at any t in [start, hi]. For simulating events over the exposures
            and the gaps between them.
        prefetch: read the next window's frames ahead and compute its flows in a background thread while this
            window is integrated (OpenCV's DIS and the numba kernels release the GIL, so the flow of the next
            interval overlaps the blur of this one on another core). The results are the same; one more frame and
            interval are held. Not with numba's "workqueue" threading layer, which is not thread-safe: there it
            is ignored. timings then has "flow" seconds from the background thread (overlapping the others)
            and "flow wait" for the time the window waited for it.
    Returns:
        an iterator of VideoExposure for output frames 1, 2, ... while their windows fit the clip; arguments
        are checked now, the frames are read lazily (ValueError on first use when fewer than 3 arrive).
    """
    _check(duty_cycle, latent)
    if not max_step_px > 0 or cap < 1:
        raise ValueError(f"max_step_px must be > 0 and cap >= 1, got {max_step_px}, {cap}")
    if not 0.0 <= min_visible <= 1.0:
        raise ValueError(f"min_visible must be in [0, 1], got {min_visible}")
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step (fps_in / fps_out) must be > 0, got {step}")
    if flow_scale != "auto":
        resolve_scale(flow_scale, (1, 1))
    timeline = Timeline(iter(frames), linear_lut(response), preset, flow_method, flow_scale, timings)
    return _blur_frames(timeline, duty_cycle, latent, max_step_px, cap, min_visible, step, shake, accept, keep_flow,
                        timings, on_span, prefetch)


def _blur_frames(tl, duty_cycle, latent, max_step_px, cap, min_visible, step, shake, accept, keep_flow, timings,
                 on_span=None, prefetch=False):
    try:
        yield from _windows(tl, duty_cycle, latent, max_step_px, cap, min_visible, step, shake, accept, keep_flow,
                            timings, on_span, prefetch)
    finally:
        tl.close()


def _windows(tl, duty_cycle, latent, max_step_px, cap, min_visible, step, shake, accept, keep_flow, timings,
             on_span, prefetch):
    if not tl.ensure(2):
        raise ValueError("blur needs at least 3 frames")
    half = duty_cycle * step / 2
    j = 1
    prev_hi = None
    while True:
        center = _snap(j * step)
        lo, hi = _snap(center - half), _snap(center + half)
        if not tl.ensure(_ceil(hi)):
            break
        if prefetch:
            # the next window's frames and the intervals it needs (and this one does not), in the background
            nxt = _snap((j + 1) * step)
            nlo, nhi = _snap(nxt - half), _snap(nxt + half)
            if tl.ensure(_ceil(nhi)):
                for i in range(max(_floor(nlo), _ceil(hi)), _ceil(nhi)):
                    tl.prefetch(i)
        if on_span is not None:
            on_span(j, lo if prev_hi is None else prev_hi, lo, hi, lambda t: _latent_at(tl, _snap(t)))
        prev_hi = hi
        tl.drop_before(_floor(lo))
        used = list(range(_floor(lo), _ceil(hi)))
        ivs = {i: tl.interval(i) for i in used}
        disp = max((iv.max_disp_px for iv in ivs.values()), default=0.0)
        sharp = _latent_at(tl, center)
        flow = None
        if keep_flow:
            k = min(_floor(center), tl.last - 1)
            flow = tl.interval(k).f01
        base = dict(center=center, span=(lo, hi), flow=flow)
        cut = [(i, iv) for i, iv in ivs.items() if iv.visible_fraction < min_visible]
        reason = None
        if cut:
            i, iv = cut[0]
            reason = f"scene cut between frames {i} and {i + 1} ({iv.visible_fraction:.0%} of pixels flow-consistent)"
        elif accept is not None:
            reason = accept(j, sharp, tl.frame(int(center)) if center == int(center) else None)
        if reason is not None:
            log.info("output frame %d skipped: %s", j, reason)
            yield VideoExposure(j, None, sharp, 0, 0, disp, reason, **base)
        else:
            m = latent if latent != "auto" else latent_steps(
                max((iv.full_size_displacement() for iv in ivs.values()), default=0.0), max_step_px, cap)
            motion, params = shake(j) if shake is not None else (None, None)
            # with d = 1 this window's last sample is the next one's first: keep it (no shake: unwarped)
            keep_end = motion is None and abs(_snap(_snap((j + 1) * step) - half) - hi) < _EPS
            with _stage(timings, "blur"):
                blur, samples = _integrate(tl, center, half, m, motion, keep_end)
            yield VideoExposure(j, blur, sharp, m, samples, disp, None, shake=params, **base)
        j += 1
    if j == 1:
        raise ValueError(f"blur needs at least 3 frames and a window that fits the clip (step {step})")


def window_times(center: float, half: float, latent: int) -> np.ndarray:
    """float64 (2K + 1,) sample times c + half (k / K), k = -K..K, K = max(1, ceil(2 half latent / 2)), in
    input frame units; times within 1e-9 of a whole number are snapped to it (they are that real frame)."""
    k = max(1, math.ceil(half * latent - 1e-9))
    return np.array([_snap(center + half * i / k) for i in range(-k, k + 1)])


def _integrate(tl: "Timeline", center: float, half: float, m: int, motion,
               keep_end: bool = False) -> tuple[np.ndarray, int]:
    """Mean of the latent frames at `window_times`, optionally warped by the shake `motion`.

    The samples of one interval go to the kernel in one call. Without shake, the window's first sample is taken
    from `tl.edge` (the previous window's last one, when it was kept) and, with keep_end, the kernel also stores
    the window's last sample in `tl.edge` for the next window, so a sample shared by two windows is made once."""
    times = window_times(center, half, m)
    n = len(times)
    acc = np.zeros(tl.linear(_floor(center)).shape, np.float32)
    groups: dict[int, list] = {}
    hinv = None
    if motion is not None:
        hinv = np.linalg.inv(motion.at(np.linspace(0.0, 1.0, n))).astype(np.float64)
    edge, tl.edge = tl.edge, None
    for s, t in enumerate(times):
        i = _floor(t)
        tau = t - i
        if tau == 0.0 and hinv is None:
            acc += tl.linear(i)
            continue
        if tau == 0.0 and i + 1 > tl.last:  # no frame after it read: the end of the interval before it
            i, tau = i - 1, 1.0
        groups.setdefault(i, []).append((tau, s))
    keep = None  # the interval whose last sample (the window's last) is kept for the next window
    if hinv is None and groups:
        first, last = min(groups), max(groups)
        if edge is not None and abs(edge[0] - times[0]) < _EPS and groups[first][0][1] == 0:
            acc += edge[1]
            groups[first].pop(0)
        if keep_end and groups.get(last) and groups[last][-1][1] == n - 1:
            keep = last
    for i, items in groups.items():
        if not items:
            continue
        iv = tl.interval(i)
        taus = np.array([tau for tau, _ in items], np.float64)
        if hinv is None:
            kept = np.empty_like(acc) if i == keep else None
            _accumulate_interval(tl.linear(i), tl.linear(i + 1), iv, taus, acc, kept)
            if kept is not None:
                tl.edge = (times[-1], kept)
        else:
            _accumulate_warped(tl.linear(i), tl.linear(i + 1), iv.f01, iv.f10, iv.v0[..., None], iv.v1[..., None],
                               taus, np.ascontiguousarray(hinv[[s for _, s in items]]), acc)
    acc *= np.float32(1.0 / n)
    return acc, n


def _latent_at(tl: "Timeline", t: float) -> np.ndarray:
    """Linear frame at time t: the real frame when t is whole, else the interpolated one (fused kernel)."""
    i = _floor(t)
    tau = t - i
    if tau == 0.0:
        return tl.linear(i)
    iv = tl.interval(i)
    out = np.zeros(tl.linear(i).shape, np.float32)
    _accumulate_interval(tl.linear(i), tl.linear(i + 1), iv, np.array([tau]), out)
    return out


class Timeline:
    """Real frames, their linear versions and the intervals between them, made on demand from a frame iterator
    and dropped once behind the current window.

    Attributes:
        last: index of the last real frame read so far (-1 before any).
        edge: (time, float32 (H, W, 3) linear latent frame) of the last window's last sample, which the next
            window starts with when the exposures tile the timeline (duty cycle 1); None when there is none.
    """

    def __init__(self, it: Iterator[np.ndarray], lut: np.ndarray, preset: str, method: str, scale: float | str,
                 timings=None):
        self._it = it
        self._lut = lut
        self._preset, self._method, self._scale = preset, method, scale
        self._timings = timings
        self._frames: dict[int, np.ndarray] = {}
        self._linear: dict[int, np.ndarray] = {}
        self._intervals: dict[int, Interval] = {}
        self.last = -1
        self._ended = False
        self.edge: tuple[float, np.ndarray] | None = None  # (time, linear latent frame) kept by `_integrate`
        self._pending: dict[int, Future] = {}
        self._pool: ThreadPoolExecutor | None = None

    def ensure(self, k: int) -> bool:
        """Read frames up to index k; False when the clip ends before it."""
        while self.last < k and not self._ended:
            with _stage(self._timings, "decode"):
                frame = next(self._it, None)
            if frame is None:
                self._ended = True
                break
            self.last += 1
            self._frames[self.last] = frame
        return self.last >= k

    def frame(self, k: int) -> np.ndarray:
        """uint8 (H, W, 3) encoded real frame k."""
        return self._frames[k]

    def linear(self, k: int) -> np.ndarray:
        """float32 (H, W, 3) linear real frame k (read-only view of a cached array)."""
        if k not in self._linear:
            with _stage(self._timings, "decode"):
                self._linear[k] = np.take(self._lut, self._frames[k])  # lut[frame], 1.5x faster
        return self._linear[k]

    def interval(self, i: int) -> Interval:
        """The `Interval` between real frames i and i + 1."""
        if i not in self._intervals:
            future = self._pending.pop(i, None)
            if future is not None:
                with _stage(self._timings, "flow wait"):
                    self._intervals[i] = future.result()
            else:
                self._intervals[i] = self._compute(self._frames[i], self._frames[i + 1])
        return self._intervals[i]

    def prefetch(self, i: int) -> None:
        """Start computing interval i (frames i and i + 1 read) in a background thread, unless it is known or
        numba's threading layer cannot run kernels from two threads at once."""
        if i in self._intervals or i in self._pending or i + 1 > self.last:
            return
        if self._pool is None:
            if not kernels_may_overlap():
                return
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blursynth-flow")
        self._pending[i] = self._pool.submit(self._compute, self._frames[i], self._frames[i + 1])

    def close(self) -> None:
        """Stop the background thread (waiting for a running interval); the timeline stays usable."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()

    def _compute(self, frame0: np.ndarray, frame1: np.ndarray) -> Interval:
        with _stage(self._timings, "flow"):
            h, w = frame0.shape[:2]
            iv = interval(frame0, frame1, self._preset, self._method, resolve_scale(self._scale, (w, h)))
            iv.kernel_inputs()  # here, in the prefetch thread when there is one
            return iv

    def drop_before(self, k: int) -> None:
        """Forget frames and intervals before real frame k."""
        for cache in (self._frames, self._linear, self._intervals, self._pending):
            for old in [i for i in cache if i < k]:
                del cache[old]


def _stage(timings, name):
    return timings.stage(name) if timings is not None else nullcontext()


def _snap(t: float) -> float:
    r = round(t)
    return float(r) if abs(t - r) < _EPS else float(t)


def _floor(t: float) -> int:
    return int(math.floor(t + _EPS))


def _ceil(t: float) -> int:
    return int(math.ceil(t - _EPS))


def interval(frame0: np.ndarray, frame1: np.ndarray, preset: str = "medium", method: str = "dis",
             scale: float = 1.0) -> Interval:
    """Flows and visibilities between two uint8 (H, W, 3) RGB frames (see `Interval`).

    scale < 1 computes the flows and the forward-backward check on frames resized by that factor (in the
    reduced grid's pixels, where the check's tolerance of half a pixel is then a coarser one) and upsamples
    both bilinearly; the vectors are rescaled to full-resolution pixels.
    """
    h, w = frame0.shape[:2]
    f01, f10 = flow_pair(frame0, frame1, preset, method, scale=scale, full_size=False)
    # the check runs in the flow grid's own units (a reduced grid's with scale < 1), the displacement in
    # full-resolution pixels, both in one pass per direction (interpolate.consistency)
    units = (f01.shape[1] / w, f01.shape[0] / h)
    v0, v1, disp = consistency(f01, f10, units, DISP_PERCENTILE)
    frac = float(v0.mean() + v1.mean()) / 2
    if f01.shape[:2] != (h, w):
        f01, f10 = (_upsample_planar(f, (w, h)) for f in (f01, f10))
        v0, v1 = (cv2.resize(v, (w, h), interpolation=cv2.INTER_LINEAR) for v in (v0, v1))
        return Interval(f01, f10, v0, v1, disp, frac)
    iv = Interval(f01, f10, v0, v1, disp, frac)
    iv._full_disp = disp  # at full size the stored fields are the ones measured
    return iv


def _upsample_planar(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.resize(flow, size, INTER_LINEAR) of a float32 (h, w, 2) field, made plane by plane (the same values)
    into a (2, H, W) array; returned as its (H, W, 2) view, whose planes the blur kernel reads directly."""
    w, h = size
    out = np.empty((2, h, w), np.float32)
    for c in range(2):
        cv2.resize(np.ascontiguousarray(flow[..., c]), size, dst=out[c], interpolation=cv2.INTER_LINEAR)
    return out.transpose(1, 2, 0)


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
        _accumulate_interval(lin0, lin1, iv, taus, acc)
    samples = 2 * len(taus_next) + 1
    acc *= np.float32(1.0 / samples)
    return acc, samples


def _check(duty_cycle, latent) -> None:
    if not 0.0 < duty_cycle <= 1.0:
        raise ValueError(f"duty_cycle must be in (0, 1], got {duty_cycle}")
    if latent != "auto" and not (isinstance(latent, (int, np.integer)) and latent >= 1):
        raise ValueError(f"latent must be an int >= 1 or 'auto', got {latent!r}")


def _accumulate(lin0, lin1, f01, f10, v0, v1, taus, out) -> None:
    """out += sum over taus of interpolate.latent_frame(lin0, lin1, f01, f10, tau, (v0, v1)), without storing
    any latent frame.

    Args:
        lin0, lin1: float32 (H, W, 3) linear frames; f01, f10: float32 (H, W, 2) flows, pixels;
        v0, v1: float32 (H, W) or (H, W, 1) visibilities; taus: float64 (T,) in [0, 1]; out: float32 (H, W, 3),
        accumulated in place.
    """
    h, w = out.shape[:2]
    iv = Interval(f01, f10, np.asarray(v0).reshape(h, w), np.asarray(v1).reshape(h, w), 0.0, 1.0)
    _accumulate_interval(lin0, lin1, iv, taus, out)
