"""Video recipes: typed, validated settings of `blursynth video` (the video counterpart of `recipe.Recipe`).

A video recipe is a YAML file in `pipelines/` whose name ends in `-video` (loaded by name) or any path, with
the same loader as image recipes (`recipe.py`): dotted `--set FIELD=VALUE` overrides parsed as YAML, every
field checked before any work starts, errors naming the field (`RecipeError`). Without a recipe the defaults
below apply. Flags of `blursynth video` (`--fps`, `--duty-cycle`, ...) are overrides of these fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import Config, check_field, check_range
from ..recipe import ShakeRanges
from ..writers import VIDEO_FORMATS

Range = tuple[float, float]

FLOW_METHODS = ("dis", "farneback")
FLOW_PRESETS = ("ultrafast", "fast", "medium")
MAX_CLIPS = 10_000  # lmdb sample index = clip * writers.WINDOWS_PER_CLIP + window (9 digits)


@dataclass
class VideoFlowRecipe:
    """Optical flow between consecutive real frames (`video.flow.flow_pair`)."""

    method: str = "dis"  # "dis" | "farneback"
    # DIS preset: "ultrafast" | "fast" | "medium". fast: 4-5x cheaper than medium; on the exact-shift clip its
    # blur differs from the exact line kernel by 9e-6 on average, 2e-4 at the 99th percentile (linear units;
    # one 8-bit code at mid-grey is about 4e-3) (benchmarks/results/video.json)
    preset: str = "fast"
    # compute flow (and its forward-backward check) at this fraction of the resolution, then upsample; "auto":
    # on about 640x360 pixels (full resolution up to that, 0.5 at 1280x720; `flow.auto_scale`). At 720p fast
    # DIS at half resolution costs 13 ms instead of 56 ms per frame pair; on a 720p exact shift its blur is off
    # the line kernel by 8e-5 on average, 7e-4 at the 99th percentile (benchmarks/results/video.json)
    scale: Any = "auto"
    # an interval where fewer than this share of pixels are flow-consistent is a scene cut
    min_visible: float = 0.2
    # compute the next window's flows in a background thread while this window is integrated (same bytes)
    prefetch: bool = True


@dataclass
class VideoCameraRecipe:
    """The engine's camera (`camera.apply_camera`) applied to the linear blur and sharp frames."""

    # response used to linearize the clip and to encode the outputs: None = sRGB; a number = pure gamma
    # (1.0 averages the encoded values like GoPro's `blur`, 2.2 like its `blur_gamma`)
    gamma: float | None = None
    gain: Range = (1.0, 1.0)  # linear gain drawn per clip
    noise: bool = True  # Poisson-Gaussian noise on the blurred frames
    shot: Range = (1e-4, 2e-3)  # shot-noise gain drawn per clip, linear [0, 1] units
    read: Range = (1e-4, 4e-3)  # read-noise standard deviation drawn per clip, linear [0, 1] units


@dataclass
class VideoShakeRecipe(ShakeRanges):
    """Extra camera shake on top of the clip's own motion, drawn per output frame (engine's motion models)."""

    models: dict[str, float] = field(default_factory=lambda: {"none": 1.0})  # bf, gp, rotational, none
    length_px: Range = (2.0, 15.0)  # path length over one exposure, pixels
    fov_deg: Range = (40.0, 90.0)  # rotational model
    roll_deg: Range = (0.0, 1.0)


@dataclass
class VideoFilterRecipe:
    """Quality filters; an output frame failing one is skipped and counted. 0 / null disables a filter."""

    # too dark: mean of the encoded sharp frame (all channels, in [0, 1]) below this
    min_brightness: float = 0.08
    # static (not blurry enough): PSNR of the noise-free blurred frame against sharp at or above this, dB
    max_psnr_db: float | None = 40.0
    # low texture: mean absolute gradient of the sharp frame's gray levels (in [0, 1] per pixel) below this
    min_texture: float = 0.01


@dataclass
class VideoOutputRecipe:
    format: str = "lmdb"  # one of writers.VIDEO_FORMATS: "gopro" | "lmdb" | "mp4"
    window: int = 5  # lmdb: consecutive output frames per record (blurred + sharp)
    stride: int | None = None  # lmdb: output frames between the starts of two records (None: window)
    codec: str = "zstd"  # lmdb image codec
    events: bool = False  # lmdb: also simulate events over each window's exposures and gaps
    flow_max_px: float = 20.0  # mp4: flow magnitude drawn at full brightness in NAME_flow.mp4, pixels


@dataclass
class VideoRecipe(Config):
    KIND: ClassVar[str] = "video recipe"
    FILES: ClassVar[str] = "*-video.yaml"
    DEFAULT: ClassVar[str | None] = None  # the defaults below

    name: str = "video"
    # output frame rate; None = the input's. Output frame j is at j / fps seconds.
    fps: float | None = None
    # exposure time as a fraction of the output frame interval, in (0, 1]
    duty_cycle: float = 1.0
    # average_frames [lo, hi]: GoPro mode; each output frame averages N consecutive real frames, N odd, drawn per
    # clip in [lo, hi] (sets fps = input fps / N and duty_cycle = (N - 1) / N; fps must be null)
    average_frames: tuple[int, int] | None = None
    # latent steps per input frame interval: an integer >= 1, or "auto" (about max_step_px of motion per step)
    latent: Any = "auto"
    max_step_px: float = 1.0
    latent_cap: int = 64
    resize: tuple[int, int] | None = None  # output (width, height), after the crop
    crop: tuple[int, int, int, int] | None = None  # (x, y, width, height) of the decoded frame
    max_frames: int | None = None  # use only the first N frames of each clip (None: all)
    flow: VideoFlowRecipe = field(default_factory=VideoFlowRecipe)
    camera: VideoCameraRecipe = field(default_factory=VideoCameraRecipe)
    shake: VideoShakeRecipe = field(default_factory=VideoShakeRecipe)
    filters: VideoFilterRecipe = field(default_factory=VideoFilterRecipe)
    output: VideoOutputRecipe = field(default_factory=VideoOutputRecipe)

    def check(self) -> None:
        _validate(self)


def load_video_recipe(name_or_path: str | Path | None = None,
                      overrides: dict[str, Any] | list[str] | None = None) -> VideoRecipe:
    """Load a video recipe by name (pipelines/NAME.yaml), by path, or the defaults (None); apply overrides;
    validate. Raises RecipeError naming the field."""
    return VideoRecipe.load(name_or_path, overrides)


def video_recipe_from_dict(data: dict[str, Any]) -> VideoRecipe:
    return VideoRecipe.from_dict(data)


def response_of(recipe: VideoRecipe):
    """The `camera.Response` that linearizes and encodes the clip."""
    from ..camera import Response

    return Response() if recipe.camera.gamma is None else Response("gamma", recipe.camera.gamma)


def _validate(r: VideoRecipe) -> None:
    from ..store.codec import IMAGE_CODECS

    check_field(r.fps is None or r.fps > 0, "fps", f"must be > 0 (or null for the input's), got {r.fps}")
    check_field(0 < r.duty_cycle <= 1, "duty_cycle", f"must lie in (0, 1], got {r.duty_cycle}")
    if r.average_frames is not None:
        check_range("average_frames", r.average_frames, lo=1)
        lo, hi = r.average_frames
        check_field(any(n % 2 for n in range(lo, hi + 1)), "average_frames", f"needs an odd count in {list(r.average_frames)}")
        check_field(r.fps is None, "fps", "must be null with average_frames (the output rate is input fps / N)")
    latent_ok = r.latent == "auto" or (isinstance(r.latent, int) and not isinstance(r.latent, bool) and r.latent >= 1)
    check_field(latent_ok, "latent", f"must be an integer >= 1 or 'auto', got {r.latent!r}")
    check_field(r.max_step_px > 0, "max_step_px", f"must be > 0, got {r.max_step_px}")
    check_field(1 <= r.latent_cap <= 1024, "latent_cap", f"must lie in [1, 1024], got {r.latent_cap}")
    if r.resize is not None:
        check_field(min(r.resize) >= 16, "resize", f"must be at least 16x16, got {list(r.resize)}")
    if r.crop is not None:
        check_field(min(r.crop[:2]) >= 0 and min(r.crop[2:]) >= 16, "crop",
               f"must be [x, y, width, height] with x, y >= 0 and a size of at least 16x16, got {list(r.crop)}")
    check_field(r.max_frames is None or r.max_frames >= 3, "max_frames", f"must be >= 3 or null, got {r.max_frames}")
    f = r.flow
    check_field(f.method in FLOW_METHODS, "flow.method", f"must be one of {', '.join(FLOW_METHODS)}, got {f.method!r}")
    check_field(f.preset in FLOW_PRESETS, "flow.preset", f"must be one of {', '.join(FLOW_PRESETS)}, got {f.preset!r}")
    check_field(f.scale == "auto" or (isinstance(f.scale, (int, float)) and not isinstance(f.scale, bool)
                                 and 0.05 <= f.scale <= 1), "flow.scale",
           f"must be 'auto' or lie in [0.05, 1], got {f.scale!r}")
    check_field(0 <= f.min_visible <= 1, "flow.min_visible", f"must lie in [0, 1], got {f.min_visible}")
    c = r.camera
    check_field(c.gamma is None or 0.1 <= c.gamma <= 10, "camera.gamma", f"must be null (sRGB) or in [0.1, 10], got {c.gamma}")
    check_range("camera.gain", c.gain, lo=1e-3)
    check_range("camera.shot", c.shot, lo=0.0)
    check_range("camera.read", c.read, lo=0.0)
    r.shake.check_shake("shake")
    q = r.filters
    check_field(0 <= q.min_brightness <= 1, "filters.min_brightness", f"must lie in [0, 1], got {q.min_brightness}")
    check_field(q.max_psnr_db is None or q.max_psnr_db > 0, "filters.max_psnr_db", f"must be > 0 or null, got {q.max_psnr_db}")
    check_field(0 <= q.min_texture <= 1, "filters.min_texture", f"must lie in [0, 1], got {q.min_texture}")
    o = r.output
    check_field(o.format in VIDEO_FORMATS, "output.format",
                f"must be one of {', '.join(VIDEO_FORMATS)}, got {o.format!r}")
    check_field(1 <= o.window <= 64, "output.window", f"must lie in [1, 64], got {o.window}")
    check_field(o.stride is None or o.stride >= 1, "output.stride", f"must be >= 1 or null, got {o.stride}")
    check_field(o.codec in IMAGE_CODECS, "output.codec", f"must be one of {', '.join(IMAGE_CODECS)}")
    check_field(not o.events or o.format == "lmdb", "output.events", "events are stored in the lmdb format only")
    check_field(o.flow_max_px > 0, "output.flow_max_px", f"must be > 0, got {o.flow_max_px}")
