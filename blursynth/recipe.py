"""Recipes: typed, validated descriptions of how samples are made.

A recipe is data: YAML files in `pipelines/` (loaded by name) or any path, overridden field by field from the
command line with dotted keys (`camera.gain=[0.8, 1.2]`). Every field is checked before any work starts, and
an error names the field. The resolved recipe (`to_dict`) is written into each run's manifest.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .config import PIPELINES_DIR, Config, RecipeError, check_field, check_range

__all__ = ["PIPELINES_DIR", "RecipeError", "Recipe", "load_recipe", "recipe_from_dict", "ShakeRanges",
           "EVENT_NOISE_PRESETS", "scale_range"]

Range = tuple[float, float]


@dataclass
class ShakeRanges:
    """Camera shake, the section the image recipe (`ShakeRecipe`) and the video recipe (`video.recipe.
    VideoShakeRecipe`) share: each draws a model from `models` (name -> probability, normalized; motion.SHAKE_MODELS
    names them, "none" is a static camera) and its parameters from the ranges. Each subclass sets its defaults."""

    models: dict[str, float]
    length_px: Range  # path length over the exposure, pixels
    fov_deg: Range  # rotational model: horizontal field of view, degrees
    roll_deg: Range  # rotational model: roll amplitude, degrees

    def check_shake(self, prefix: str = "shake") -> None:
        """The rules of the shared fields (RecipeError naming `prefix`.FIELD)."""
        from .motion.shake import SHAKE_MODELS

        for name in ("length_px", "fov_deg", "roll_deg"):
            check_range(f"{prefix}.{name}", getattr(self, name), lo=0.0)
        check_field(0 < self.fov_deg[0] and self.fov_deg[1] < 170, f"{prefix}.fov_deg", "must lie in (0, 170) degrees")
        for model, p in self.models.items():
            check_field(model in SHAKE_MODELS, f"{prefix}.models.{model}",
                        f"unknown shake model (known: {', '.join(sorted(SHAKE_MODELS))})")
            check_field(p >= 0, f"{prefix}.models.{model}", "probability must be >= 0")
        check_field(sum(self.models.values()) > 0, f"{prefix}.models", "probabilities must not all be 0")


@dataclass
class ShakeRecipe(ShakeRanges):
    """Camera shake over the exposure. Lengths are path lengths in pixels of the whole exposure."""

    # probability of each model; they are normalized, "none" gives a static camera
    models: dict[str, float] = field(default_factory=lambda: {"bf": 0.35, "gp": 0.25, "rotational": 0.3, "none": 0.1})
    length_px: Range = (2.0, 30.0)
    # rotational model: horizontal field of view sampled in degrees, roll amplitude in degrees
    fov_deg: Range = (40.0, 90.0)
    roll_deg: Range = (0.0, 2.0)
    # camera translation seen as parallax: shift in pixels of a layer at depth 1 (background), / depth otherwise
    parallax_px: Range = (0.0, 4.0)


@dataclass
class ObjectRecipe:
    """Moving segments and their own motion (affine about the segment's centroid)."""

    # "affine": own translation along a curved path, rotation and scale, composed with the camera's motion;
    # "kernel": one independent Boracchi-Foi translation kernel per segment of length speed_px (SBDD)
    model: str = "affine"
    count: tuple[int, int] = (0, 5)
    min_area: float = 0.002  # fraction of the image
    max_area: float = 0.25
    speed_px: Range = (0.0, 40.0)  # translation path length over the exposure
    curvature: Range = (-1.5, 1.5)  # change of heading over the exposure, radians
    rotation_deg: Range = (-8.0, 8.0)
    scale: Range = (0.95, 1.05)  # size at end / size at start
    depth: Range = (0.3, 0.9)  # background is at depth 1


@dataclass
class SceneRecipe:
    objects: ObjectRecipe = field(default_factory=ObjectRecipe)
    # radius in pixels of the feathered segment edge
    feather_px: float = 0.7
    # background behind moving segments: cv2.inpaint at 1/inpaint_scale resolution; inpaint=false keeps the photo
    # (SBDD's model has no disocclusion)
    inpaint: bool = True
    inpaint_scale: int = 4
    # linear radiance of near-white pixels is multiplied by 1 + U(highlight_boost) (clipped highlights are
    # brighter than white; clipping after integration then makes saturated streaks)
    highlight_threshold: float = 0.94
    highlight_boost: Range = (0.0, 2.0)


@dataclass
class CameraRecipe:
    """Sensor model: linear gain, clipping, Poisson-Gaussian noise, response curve, quantization, JPEG."""

    gain: Range = (0.8, 1.3)
    # response curve: probability of "srgb", otherwise a pure gamma sampled in gamma_range
    srgb_prob: float = 0.5
    gamma_range: Range = (1.8, 2.4)
    # Poisson-Gaussian noise on the blurred image in linear [0, 1] units: variance = shot * x + read^2
    noise_prob: float = 0.8
    shot: Range = (1e-4, 2e-3)
    read: Range = (1e-4, 4e-3)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (75, 95)


@dataclass
class RenderRecipe:
    method: str = "exact"  # "exact" | "layered" | "sbdd"
    # sbdd: side of the square kernel each path is rasterized into (SBDD used 33 or 65)
    kernel_size: int = 33
    reference_time: float = 0.5  # where sharp is taken on the normalized exposure [0, 1]
    max_samples: int = 256


@dataclass
class OutputRecipe:
    codec: str = "zstd"  # lossless; see benchmarks/README.md for the measured choice
    blur_map: bool = False


@dataclass
class EventNoiseRecipe:
    """DVS noise (v2e's model, see events/noise.py); all zero: an ideal sensor."""

    threshold_sigma: float = 0.0  # per-pixel threshold std, log units (v2e --sigma_thres)
    cutoff_hz: float = 0.0  # photoreceptor bandwidth at full intensity, Hz; 0: no low-pass (v2e --cutoff_hz)
    leak_rate_hz: float = 0.0  # leak ON events per pixel, Hz (v2e --leak_rate_hz)
    leak_spread_decades: float = 0.0  # std of log10 of the per-pixel leak rate (v2e --noise_rate_cov_decades)
    shot_rate_hz: float = 0.0  # shot-noise events per pixel (ON + OFF) at black, Hz (v2e --shot_noise_rate_hz)
    shot_intensity_factor: float = 0.25  # shot rate at white / at black (v2e's SHOT_NOISE_INTEN_FACTOR)
    hot_pixel_fraction: float = 0.0  # fraction of hot pixels
    hot_pixel_rate_hz: float = 0.0  # ON events per second of a hot pixel

    # the config engine reads a name in EVENT_NOISE_PRESETS where this section is expected (set below)
    PRESETS: ClassVar[dict[str, "EventNoiseRecipe"]]
    PRESET_KIND: ClassVar[str] = "noise preset"

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


# Named event-noise settings, v2e's command-line presets: a recipe may write `events.noise: v2e` for these values,
# `blursynth events --noise` takes the names. "ideal": no noise; "clean": sigma 0.02 only; "v2e": its defaults
# (sigma 0.03, cutoff 300 Hz, leak 0.01 Hz spread 0.1 decades, shot 0.001 Hz); "noisy": sigma 0.05, cutoff 30 Hz,
# leak 0.1 Hz, shot 5 Hz.
EVENT_NOISE_PRESETS: dict[str, EventNoiseRecipe] = {
    "ideal": EventNoiseRecipe(),
    "clean": EventNoiseRecipe(threshold_sigma=0.02),
    "v2e": EventNoiseRecipe(threshold_sigma=0.03, cutoff_hz=300.0, leak_rate_hz=0.01, leak_spread_decades=0.1,
                            shot_rate_hz=0.001),
    "noisy": EventNoiseRecipe(threshold_sigma=0.05, cutoff_hz=30.0, leak_rate_hz=0.1, leak_spread_decades=0.1,
                              shot_rate_hz=5.0),
}
EventNoiseRecipe.PRESETS = EVENT_NOISE_PRESETS


@dataclass
class EventsRecipe:
    """Event streams simulated from the latent images of each exposure (blursynth.events; off by default)."""

    enabled: bool = False
    threshold_pos: float = 0.2  # contrast thresholds, log intensity
    threshold_neg: float = 0.2
    log_eps: float = 1e-3  # L = log(I + log_eps)
    refractory_s: float = 0.0
    scale: int = 1  # events at 1/scale the frame resolution (area downsampling in linear light)
    exposure_s: float = 0.01  # duration of the exposure the blur integrates, seconds
    gap_s: float = 0.0  # simulated time after the exposure (until the next one), seconds
    samples: int = 0  # latent frames over the exposure; 0: about one per pixel of motion (at least 2)
    max_samples: int = 256  # cap of the adaptive count
    random_reference: bool = False  # start references at a random offset (no first-frame ghost)
    noise: EventNoiseRecipe = field(default_factory=EventNoiseRecipe)  # or the name of an EVENT_NOISE_PRESETS entry


@dataclass
class Recipe(Config):
    KIND: ClassVar[str] = "recipe"
    FILES: ClassVar[str] = "*.yaml"
    DEFAULT: ClassVar[str | None] = "default"

    name: str = "default"
    size: tuple[int, int] = (1280, 720)  # width, height of every output
    # the output width at which the pixel ranges (shake.length_px, shake.parallax_px, scene.objects.speed_px)
    # hold; at another width they scale by size[0] / reference_width, as the same shake and the same object
    # speeds cover fewer pixels of a smaller image (a 30 px shake at 1280 wide is 3.75 px at 160); null: absolute
    # pixels at every size
    reference_width: int | None = 1280
    shake: ShakeRecipe = field(default_factory=ShakeRecipe)
    scene: SceneRecipe = field(default_factory=SceneRecipe)
    camera: CameraRecipe = field(default_factory=CameraRecipe)
    render: RenderRecipe = field(default_factory=RenderRecipe)
    output: OutputRecipe = field(default_factory=OutputRecipe)
    events: EventsRecipe = field(default_factory=EventsRecipe)

    def check(self) -> None:
        _validate(self)

    @property
    def px_factor(self) -> float:
        """What the recipe's pixel ranges are multiplied by at this output size (``reference_width``)."""
        return 1.0 if self.reference_width is None else self.size[0] / self.reference_width

    def px_range(self, bounds: Range) -> Range:
        """A pixel range of the recipe as it holds at this output size (``px_factor``)."""
        return scale_range(bounds, self.px_factor)


def scale_range(bounds: Range, factor: float) -> Range:
    """(lo, hi) times factor: a recipe pixel range at an output size whose `Recipe.px_factor` is factor (the
    stages that get sections of the recipe, not all of it, get the factor beside them)."""
    return (bounds[0] * factor, bounds[1] * factor)


def load_recipe(name_or_path: str | Path = "default", overrides: dict[str, Any] | list[str] | None = None) -> Recipe:
    """Load a recipe by name (a file in pipelines/) or by path, apply overrides, validate (`Config.load`).

    Args:
        name_or_path: "default", "sbdd", ... or a path to a YAML file.
        overrides: {"camera.gain": [1, 1]} or ["camera.gain=[1, 1]", ...] (values parsed as YAML).
    """
    return Recipe.load(name_or_path, overrides)


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    return Recipe.from_dict(data)


def _validate(r: Recipe) -> None:
    from .store.codec import IMAGE_CODECS

    w, h = r.size
    check_field(w >= 16 and h >= 16, "size", f"must be at least 16x16, got {w}x{h}")
    check_field(w <= 16384 and h <= 16384, "size", f"must be at most 16384 on a side, got {w}x{h}")
    check_field(r.reference_width is None or r.reference_width >= 1, "reference_width",
                f"must be null or an integer >= 1, got {r.reference_width}")
    r.shake.check_shake("shake")
    check_range("shake.parallax_px", r.shake.parallax_px, lo=0.0)
    o = r.scene.objects
    check_range("scene.objects.count", o.count, lo=0)
    check_field(0 <= o.min_area <= o.max_area <= 1, "scene.objects.min_area", "need 0 <= min_area <= max_area <= 1")
    check_range("scene.objects.speed_px", o.speed_px, lo=0.0)
    check_range("scene.objects.curvature", o.curvature)
    check_range("scene.objects.rotation_deg", o.rotation_deg)
    check_range("scene.objects.scale", o.scale, lo=1e-3)
    check_range("scene.objects.depth", o.depth, lo=1e-3)
    check_field(o.depth[1] <= 1.0, "scene.objects.depth", "objects must not lie behind the background (depth <= 1)")
    check_field(r.scene.feather_px >= 0, "scene.feather_px", "must be >= 0")
    check_field(r.scene.inpaint_scale >= 1, "scene.inpaint_scale", "must be >= 1")
    check_range("scene.highlight_boost", r.scene.highlight_boost, lo=0.0)
    check_field(0 < r.scene.highlight_threshold <= 1, "scene.highlight_threshold", "must lie in (0, 1]")
    c = r.camera
    check_range("camera.gain", c.gain, lo=1e-3)
    check_range("camera.gamma_range", c.gamma_range, lo=0.1)
    check_range("camera.shot", c.shot, lo=0.0)
    check_range("camera.read", c.read, lo=0.0)
    check_range("camera.jpeg_quality", c.jpeg_quality, lo=1)
    check_field(c.jpeg_quality[1] <= 100, "camera.jpeg_quality", "must be <= 100")
    for name in ("srgb_prob", "noise_prob", "jpeg_prob"):
        check_field(0 <= getattr(c, name) <= 1, f"camera.{name}", "probability must lie in [0, 1]")
    from .motion.objects import OBJECT_MODELS
    from .render import RENDER_METHODS

    check_field(r.render.method in RENDER_METHODS, "render.method",
                f"must be one of {', '.join(RENDER_METHODS)}, got {r.render.method!r}")
    check_field(o.model in OBJECT_MODELS, "scene.objects.model",
                f"must be one of {', '.join(OBJECT_MODELS)}, got {o.model!r}")
    method = RENDER_METHODS[r.render.method]
    if method.check is not None:
        method.check(r)
    if method.translation_only:
        # convolution needs translation-only motion: say which fields would break it, before any work
        m = r.render.method
        check_field(r.shake.models.get("rotational", 0) == 0, "shake.models.rotational",
                    f"must be 0 with render.method={m} (camera rotation is not a translation)")
        if not OBJECT_MODELS[o.model].translation_only:
            check_field(tuple(o.rotation_deg) == (0.0, 0.0), "scene.objects.rotation_deg", f"must be [0, 0] with render.method={m}")
            check_field(tuple(o.scale) == (1.0, 1.0), "scene.objects.scale", f"must be [1, 1] with render.method={m}")
    check_field(0 <= r.render.reference_time <= 1, "render.reference_time", "must lie in [0, 1]")
    check_field(1 <= r.render.max_samples <= 4096, "render.max_samples", "must lie in [1, 4096]")
    check_field(r.output.codec in IMAGE_CODECS, "output.codec", f"must be one of {', '.join(IMAGE_CODECS)}")
    _validate_events(r)


def _validate_events(r: Recipe) -> None:
    e = r.events
    for name in ("threshold_pos", "threshold_neg", "log_eps", "exposure_s"):
        check_field(getattr(e, name) > 0, f"events.{name}", f"must be > 0, got {getattr(e, name)}")
    for name in ("refractory_s", "gap_s"):
        check_field(getattr(e, name) >= 0, f"events.{name}", f"must be >= 0, got {getattr(e, name)}")
    check_field(e.scale >= 1, "events.scale", f"must be an integer >= 1, got {e.scale}")
    w, h = r.size
    check_field(w // e.scale >= 1 and h // e.scale >= 1, "events.scale", f"{e.scale} leaves no pixel of {w}x{h}")
    check_field(e.samples == 0 or e.samples >= 2, "events.samples", f"must be 0 (adaptive) or >= 2, got {e.samples}")
    check_field(2 <= e.max_samples <= 4096, "events.max_samples", f"must lie in [2, 4096], got {e.max_samples}")
    for name, value in e.noise.to_dict().items():
        check_field(value >= 0, f"events.noise.{name}", f"must be >= 0, got {value}")
    check_field(e.noise.hot_pixel_fraction <= 1, "events.noise.hot_pixel_fraction", "must lie in [0, 1]")
