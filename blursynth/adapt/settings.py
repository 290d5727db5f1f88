"""Settings of `blursynth adapt`: typed, validated, loaded from YAML (pipelines/adapt.yaml) with overrides.

The same loader rules as the generate recipes (`blursynth.recipe`): every field typed, unknown or out-of-range
fields rejected before any work, an error names the field, `--set section.field=value` overrides.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import Config, check_field

MIN_PATCH_PX = 32


@dataclass
class SharpnessSettings:
    """Relative sharpness of target patches (see `adapt.sharpness`)."""

    ratio: float = 0.2  # the sharpest fraction of each video's eligible patches kept as pseudo-sharp
    patch_size: int = 256  # side of the square patches, px (at least MIN_PATCH_PX)
    stride: int = 0  # step of the patch grid, px; 0: patch_size (no overlap)
    window: int = 4  # frames on each side the detail energy is compared with (same content, followed by flow)
    blur_tolerance_px: float = 2.0  # flow-estimated blur at which a patch's score is halved
    min_texture: float = 0.3  # eligible when the patch's reference energy >= this x the video's median
    # never pseudo-sharp when the flow blur (90th percentile over the patch) exceeds this, px; 0: no cap
    max_blur_px: float = 0.0


@dataclass
class DomainSettings:
    """How the target's blur is measured (see `adapt.domain`)."""

    # exposure time / frame interval of the target camera (the duty cycle): blur px = ratio x flow px per frame
    exposure_ratio: float = 0.5
    flow_preset: str = "medium"  # DIS preset: ultrafast, fast, medium
    flow_scale: float = 0.5  # flows (and the condition maps) at this fraction of the resolution
    magnitude_bin_px: float = 0.5
    max_blur_px: float = 64.0  # histogram range; larger estimates are counted as outliers and left out
    angle_bins: int = 24
    static_px: float = 0.1  # a video whose 99th percentile of motion is below this (px per frame) is static
    condition_maps: bool = True  # write conditions/VIDEO.npz: the per-frame blur-condition maps


@dataclass
class ReblurSettings:
    """Matched reblurring of the pseudo-sharp patches (see `adapt.reblur`)."""

    pairs_per_patch: int = 1
    path: str = "line"  # "line": straight motion; "gp": a Gaussian-process curve with the drawn end-to-end motion
    method: str = "exact"  # engine integrator: "exact" or "layered"
    response: str = "srgb"  # how the target's frames are encoded: "srgb" or "gamma"
    gamma: float = 2.2  # response "gamma" only
    noise: str = "estimate"  # "estimate": the target's Poisson-Gaussian level; "none"
    # blur a denoised copy of each patch and add the whole noise, so the input's noise is independent of the
    # target's (`adapt.reblur`); false: blur the patch as it is and add only the noise the blur averaged away
    denoise: bool = False
    noise_frames: int = 16  # frames per video the noise is estimated on (evenly spaced)


@dataclass
class AdaptOutput:
    codec: str = "zstd"


@dataclass
class AdaptSettings(Config):
    KIND: ClassVar[str] = "adapt settings"
    FILES: ClassVar[str] = "adapt*.yaml"
    DEFAULT: ClassVar[str | None] = "adapt"

    name: str = "adapt"
    sharpness: SharpnessSettings = field(default_factory=SharpnessSettings)
    domain: DomainSettings = field(default_factory=DomainSettings)
    reblur: ReblurSettings = field(default_factory=ReblurSettings)
    output: AdaptOutput = field(default_factory=AdaptOutput)

    @property
    def stride(self) -> int:
        return self.sharpness.stride or self.sharpness.patch_size

    def check(self) -> None:
        _validate(self)


def load_settings(name_or_path: str | Path = "adapt",
                  overrides: dict[str, Any] | list[str] | None = None) -> AdaptSettings:
    """Load adapt settings by name (a file in pipelines/) or path, apply overrides, validate.

    Raises RecipeError naming the field for anything unknown or out of range.
    """
    return AdaptSettings.load(name_or_path, overrides)


def settings_from_dict(data: dict[str, Any]) -> AdaptSettings:
    return AdaptSettings.from_dict(data)


def _validate(s: AdaptSettings) -> None:
    from ..store.codec import IMAGE_CODECS
    from ..video.flow import PRESETS

    sh, d, r = s.sharpness, s.domain, s.reblur
    _check(0 < sh.ratio <= 1, "sharpness.ratio", f"must lie in (0, 1], got {sh.ratio}")
    _check(sh.patch_size >= MIN_PATCH_PX, "sharpness.patch_size",
           f"must be at least {MIN_PATCH_PX}, got {sh.patch_size}")
    _check(sh.stride >= 0, "sharpness.stride", f"must be >= 0 (0: the patch size), got {sh.stride}")
    _check(sh.window >= 1, "sharpness.window", f"must be >= 1, got {sh.window}")
    _check(sh.blur_tolerance_px > 0, "sharpness.blur_tolerance_px", f"must be > 0, got {sh.blur_tolerance_px}")
    _check(sh.min_texture >= 0, "sharpness.min_texture", f"must be >= 0, got {sh.min_texture}")
    _check(sh.max_blur_px >= 0, "sharpness.max_blur_px", f"must be >= 0 (0: no cap), got {sh.max_blur_px}")
    _check(0 < d.exposure_ratio <= 1, "domain.exposure_ratio", f"must lie in (0, 1], got {d.exposure_ratio}")
    _check(d.flow_preset in PRESETS, "domain.flow_preset",
           f"must be one of {', '.join(PRESETS)}, got {d.flow_preset!r}")
    _check(0 < d.flow_scale <= 1, "domain.flow_scale", f"must lie in (0, 1], got {d.flow_scale}")
    _check(d.magnitude_bin_px > 0, "domain.magnitude_bin_px", f"must be > 0, got {d.magnitude_bin_px}")
    _check(d.max_blur_px >= 2 * d.magnitude_bin_px, "domain.max_blur_px", "must span at least two magnitude bins")
    _check(d.max_blur_px / d.magnitude_bin_px <= 4096, "domain.max_blur_px", "at most 4096 magnitude bins")
    _check(1 <= d.angle_bins <= 360, "domain.angle_bins", f"must lie in [1, 360], got {d.angle_bins}")
    _check(d.static_px >= 0, "domain.static_px", f"must be >= 0, got {d.static_px}")
    _check(r.pairs_per_patch >= 1, "reblur.pairs_per_patch", f"must be >= 1, got {r.pairs_per_patch}")
    _check(r.path in ("line", "gp"), "reblur.path", f"must be 'line' or 'gp', got {r.path!r}")
    _check(r.method in ("exact", "layered"), "reblur.method", f"must be 'exact' or 'layered', got {r.method!r}")
    _check(r.response in ("srgb", "gamma"), "reblur.response", f"must be 'srgb' or 'gamma', got {r.response!r}")
    _check(r.gamma > 0, "reblur.gamma", f"must be > 0, got {r.gamma}")
    _check(r.noise in ("estimate", "none"), "reblur.noise", f"must be 'estimate' or 'none', got {r.noise!r}")
    _check(r.noise_frames >= 1, "reblur.noise_frames", f"must be >= 1, got {r.noise_frames}")
    _check(s.output.codec in IMAGE_CODECS, "output.codec", f"must be one of {', '.join(IMAGE_CODECS)}")


def _check(ok: bool, name: str, message: str) -> None:
    check_field(ok, name, message, kind="adapt setting")
