"""One clip end to end: decode -> flow -> latent frames -> exposure -> camera -> quality filters -> output.

`make_clip` is a pure function of (recipe, clip, seed): every random number (the clip's camera, the noise and
shake of output frame j, GoPro mode's frame count) comes from `seeding.stage_rng(seed, j, "video/NAME/...")`,
keyed by the clip's name, so the bytes do not depend on the worker count, on the order clips run in, or on
which other clips share the call. `commands.video_run.run_video` maps it over the clips.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..camera import CameraParams, add_noise, encode_u8
from ..seeding import child_seed, stage_rng
from ..writers import WRITERS, ClipTarget, Pair
from .blur import blur_frames
from .decode import read_frames
from .filters import category, check_blur, check_sharp
from .recipe import VideoRecipe, response_of

log = logging.getLogger(__name__)


@dataclass
class Clip:
    """One input video of a run: its position in the run's sorted inputs, a unique name, its path."""

    ordinal: int
    name: str
    path: str


@dataclass
class ClipResult:
    """What became of one clip (stored per clip in the manifest).

    Attributes:
        status: "done" or "skipped" (the video could not be used; `reason` says why).
        frames_in: real frames decoded; frames_out: output frames whose window fit the clip;
        written: output frames written; windows: lmdb records written.
        filtered: output frames skipped per filter category ("scene cut", "too dark", "low texture", "static").
        info: the clip's settings as used (fps in/out, duty cycle, step, size, camera, average_frames).
        output: what the writer made (files, shard info).
        seconds: time per stage.
    """

    ordinal: int
    name: str
    path: str
    status: str
    reason: str | None = None
    frames_in: int = 0
    frames_out: int = 0
    written: int = 0
    windows: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def make_clip(recipe: VideoRecipe, clip: Clip, out_dir: str | Path, seed: int, progress=None,
              timings=None, backend=None) -> ClipResult:
    """Make the outputs of one clip in `out_dir` (format `recipe.output.format`, a writer of `writers.WRITERS`).

    Args:
        progress: optional callable(n_frames: int, skipped: bool) after each output frame.
        timings: optional `generate.Timings` (stages decode, flow, blur, camera, encode; flows are computed one
            window ahead in a background thread: "flow" overlaps the others, "flow wait" is the time spent
            waiting for it, see `blur.blur_frames`' prefetch; recipe flow.prefetch).
        backend: the `backend.Backend` the events are simulated on (recipe output.events); None: the CPU. A CUDA
            backend gives the same events, the simulator's per-pixel state kept on the GPU along the clip.
    Returns:
        ClipResult; a video that cannot be decoded, or has fewer than 3 frames, or whose windows do not fit,
        gives status "skipped" with the reason and writes nothing.
    """
    from ..generate import Timings

    timings = timings if timings is not None else Timings()
    result = ClipResult(clip.ordinal, clip.name, clip.path, "done")
    try:
        reader = read_frames(clip.path, resize=recipe.resize, crop=recipe.crop, max_frames=recipe.max_frames)
    except (OSError, ValueError) as exc:
        return _skipped(result, str(exc))
    try:
        return _make(recipe, clip, Path(out_dir), seed, reader, result, progress, timings, backend)
    finally:
        reader.close()
        result.seconds = dict(timings.seconds)


def clip_settings(recipe: VideoRecipe, fps_in: float, name: str, seed: int) -> dict:
    """fps_out, step (input intervals per output frame), duty cycle, and GoPro mode's frame count N."""
    if recipe.average_frames is not None:
        lo, hi = recipe.average_frames
        odd = [n for n in range(lo, hi + 1) if n % 2]
        n = int(odd[int(stage_rng(seed, 0, f"video/{name}/average").integers(len(odd)))])
        return {"fps_in": fps_in, "fps_out": fps_in / n, "step": float(n), "duty_cycle": (n - 1) / n,
                "average_frames": n}
    fps_out = recipe.fps if recipe.fps is not None else fps_in
    return {"fps_in": fps_in, "fps_out": fps_out, "step": fps_in / fps_out, "duty_cycle": recipe.duty_cycle,
            "average_frames": None}


def clip_camera(recipe: VideoRecipe, name: str, seed: int) -> CameraParams:
    """The clip's camera: response from camera.gamma, gain and noise levels drawn once per clip."""
    c = recipe.camera
    u = stage_rng(seed, 0, f"video/{name}/camera").random(3)
    lerp = lambda r, x: float(r[0] + (r[1] - r[0]) * x)  # noqa: E731
    return CameraParams(gain=lerp(c.gain, u[0]), response=response_of(recipe),
                        shot=lerp(c.shot, u[1]) if c.noise else 0.0, read=lerp(c.read, u[2]) if c.noise else 0.0)


def encodes_to_itself(camera: CameraParams) -> bool:
    """True when encoding the linearized 8-bit codes with this camera (gain, response) gives every code back,
    so that the sharp frame at a real frame's time is that frame's own bytes (checked on all 256 codes)."""
    from .interpolate import linear_lut

    codes = np.arange(256, dtype=np.uint8)
    encoded = encode_u8(linear_lut(camera.response)[codes], camera.gain, camera.response.code_thresholds())
    return bool(np.array_equal(encoded, codes))


def shake_for(recipe: VideoRecipe, name: str, seed: int, size: tuple[int, int]):
    """Callable j -> (Motion or None, params) drawing output frame j's extra shake, or None without shake."""
    models = {m: p for m, p in recipe.shake.models.items() if p > 0}
    if set(models) <= {"none"}:
        return None
    from ..motion import SHAKE_MODELS

    names = sorted(models)
    probs = np.array([models[m] for m in names], np.float64)
    probs /= probs.sum()
    s = recipe.shake

    def draw(j: int):
        rng = stage_rng(seed, j, f"video/{name}/shake")
        u = rng.random(4)
        model = names[min(int(np.searchsorted(np.cumsum(probs), u[0], side="right")), len(names) - 1)]
        length = float(s.length_px[0] + (s.length_px[1] - s.length_px[0]) * u[1])
        model_seed = child_seed(rng)
        params = {"model": model, "length_px": length, "seed": model_seed}
        if model == "none":
            return None, params
        if SHAKE_MODELS[model].uses_view:
            fov = float(s.fov_deg[0] + (s.fov_deg[1] - s.fov_deg[0]) * u[2])
            roll = float(s.roll_deg[0] + (s.roll_deg[1] - s.roll_deg[0]) * u[3])
            params.update(fov_deg=fov, roll_deg=roll)
        motion = SHAKE_MODELS[model].build(params, size)
        return motion.recentered(0.5), params

    return draw


def _make(recipe, clip, out_dir, seed, reader, result, progress, timings, backend=None) -> ClipResult:
    settings = clip_settings(recipe, reader.fps, clip.name, seed)
    camera = clip_camera(recipe, clip.name, seed)
    thresholds = camera.response.code_thresholds()
    noisy = camera.shot > 0 or camera.read > 0
    result.info = dict(settings, size=list(reader.size), source_size=list(reader.source_size),
                       camera=camera.to_meta())
    q = recipe.filters
    sharp_u8: dict[int, np.ndarray] = {}
    same_codes = encodes_to_itself(camera)

    def accept(j, sharp, frame):
        with timings.stage("camera"):
            # a real frame through a camera that gives every code back: its encoding is the frame itself
            sharp_u8[j] = frame if frame is not None and same_codes else encode_u8(sharp, camera.gain, thresholds)
            return check_sharp(sharp_u8[j], q.min_brightness, q.min_texture)

    spans = EventSpans(settings["fps_in"], recipe.latent if recipe.latent != "auto" else EVENT_STEPS,
                       recipe.output.window + (recipe.output.stride or recipe.output.window), backend) \
        if recipe.output.events else None
    exposures = blur_frames(reader, duty_cycle=settings["duty_cycle"], latent=recipe.latent,
                            response=camera.response, preset=recipe.flow.preset, flow_method=recipe.flow.method,
                            max_step_px=recipe.max_step_px, cap=recipe.latent_cap,
                            min_visible=recipe.flow.min_visible, step=settings["step"], flow_scale=recipe.flow.scale,
                            shake=shake_for(recipe, clip.name, seed, reader.size), accept=accept,
                            keep_flow=WRITERS[recipe.output.format].flow, timings=timings, on_span=spans,
                            prefetch=recipe.flow.prefetch)
    writer = _writer(recipe, clip, out_dir, seed, settings, camera, reader.size, spans)
    filtered: Counter = Counter()
    try:
        try:
            for exp in exposures:
                result.frames_out += 1
                reason = exp.skip
                if reason is None:
                    with timings.stage("camera"):
                        sharp = sharp_u8.pop(exp.index)
                        blur = None
                        if q.max_psnr_db is not None or not noisy:
                            # the static check looks at the noise-free blur: noise alone must not pass a still frame
                            blur = encode_u8(exp.blur, camera.gain, thresholds)
                            reason = check_blur(blur, sharp, q.max_psnr_db)
                        if reason is None and noisy:
                            rng = stage_rng(seed, exp.index, f"video/{clip.name}/noise")
                            blur = encode_u8(add_noise(exp.blur, camera.shot, camera.read, rng, camera.gain), 1.0,
                                             thresholds)
                sharp_u8.pop(exp.index, None)
                if reason is not None:
                    filtered[category(reason)] += 1
                    writer.skip(exp.index)
                else:
                    with timings.stage("encode"):
                        extra = {"flow": exp.flow} if exp.flow is not None else {}
                        writer.put(Pair(clip.name, exp.index, blur, sharp, _frame_meta(exp, settings), extra))
                    result.written += 1
                if progress is not None:
                    progress(1, reason is not None)
        except ValueError as exc:  # too few frames, or no window fits the clip
            writer.abort()
            result.frames_in = reader.count
            return _skipped(result, str(exc).replace("blur needs", f"{clip.path}: needs"))
        with timings.stage("encode"):
            result.output = writer.close()
    except BaseException:
        writer.abort()
        raise
    result.frames_in = reader.count
    result.windows = result.output.get("windows", 0)
    result.written = result.output.get("frames", result.written)
    result.filtered = dict(sorted(filtered.items()))
    return result


def _writer(recipe, clip, out_dir, seed, settings, camera, size, spans=None):
    o = recipe.output
    base = {"clip": clip.name, "source": clip.path, "seed": seed, "fps_in": settings["fps_in"],
            "fps_out": settings["fps_out"], "duty_cycle": settings["duty_cycle"],
            "average_frames": settings["average_frames"], "camera": camera.to_meta(), "size": list(size),
            "blursynth": __version__}
    target = ClipTarget(clip.name, clip.ordinal, settings["fps_out"], o.flow_max_px, o.window, o.stride or o.window,
                        o.codec, base, events=None if spans is None else spans.window)
    return WRITERS[o.format].video(out_dir, target)


EVENT_STEPS = 8  # latent frames per input interval fed to the event simulator when recipe.latent is "auto"


class EventSpans:
    """Events over the latent frames of each output frame's exposure and of the gap before it, from one ESIM
    state carried along the clip (`events.simulate`, default thresholds 0.2, no noise), for `blur_frames`'
    on_span hook. The latent frames (linear RGB -> luminance, `events.frames.to_gray`) are sampled `steps` per
    input interval; timestamps are microseconds from the clip's first frame (real frame k at k / fps_in)."""

    def __init__(self, fps_in: float, steps: int, keep: int, backend=None):
        from ..backend import CPU

        self.backend = backend if backend is not None else CPU
        self.fps = float(fps_in)
        self.steps = int(steps)
        self.keep = int(keep)
        self.state = None
        self.exposure: dict[int, np.ndarray] = {}
        self.gap: dict[int, np.ndarray] = {}

    def __call__(self, j, start, lo, hi, latent_at) -> None:
        from ..events.frames import to_gray
        from ..events.simulate import EventState

        if self.state is None:
            self.state = EventState.from_frame(to_gray(latent_at(lo)), lo / self.fps)
        elif lo > start:
            self.gap[j] = self._simulate(start, lo, latent_at)
        self.exposure[j] = self._simulate(lo, hi, latent_at)
        for old in [k for k in self.exposure if k <= j - self.keep]:
            self.exposure.pop(old)
            self.gap.pop(old, None)

    def _simulate(self, t0, t1, latent_at) -> np.ndarray:
        from ..events.frames import to_gray

        n = max(1, int(np.ceil((t1 - t0) * self.steps - 1e-9)))
        times = t0 + (t1 - t0) * np.arange(1, n + 1) / n
        frames = np.stack([to_gray(latent_at(float(t))) for t in times])
        events, self.state = self.backend.simulate(frames, times / self.fps, state=self.state)
        return events

    def window(self, first: int, last: int) -> bytes:
        """encode_events bytes of the events from the start of output frame `first`'s exposure to the end of
        `last`'s."""
        from ..events.formats import encode_events
        from ..events.simulate import concatenate_events

        parts = []
        for j in range(first, last + 1):
            if j > first and j in self.gap:
                parts.append(self.gap[j])
            parts.append(self.exposure[j])
        return encode_events(concatenate_events(parts))


def _frame_meta(exp, settings) -> dict:
    fps = settings["fps_in"]
    return {"frames": exp.index, "source_frames": list(exp.source_frames), "center": exp.center,
            "exposure_s": [exp.span[0] / fps, exp.span[1] / fps], "latent": exp.latent, "samples": exp.samples,
            "max_disp_px": round(exp.max_disp_px, 4), "shake": exp.shake}


def _skipped(result: ClipResult, reason: str) -> ClipResult:
    log.warning("clip %s skipped: %s", result.name, reason)
    result.status = "skipped"
    result.reason = reason
    return result

