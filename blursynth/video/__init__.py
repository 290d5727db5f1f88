"""The video path: blurred/sharp pairs from real clips (DESIGN.md, section 1; issue 4).

decode (OpenCV, streaming) -> flow (DIS, both directions) -> latent frames by flow interpolation in linear
light -> mean over an exposure window with a duty cycle -> the engine's camera (`camera.apply_camera`) ->
quality filters -> mp4 / GoPro folders / LMDB windows (`blursynth.writers`); `video.clip.make_clip` does one clip,
`commands.video_run.run_video` many, `commands.video` is `blursynth video`.

The names below load lazily (PEP 562), so that importing `blursynth.commands.video` for the command line does not
import numba and OpenCV.
"""
from importlib import import_module

_EXPORTS = {
    "Interval": "blur", "VideoExposure": "blur", "blur_frames": "blur", "blur_window": "blur",
    "exposure_taus": "blur", "interval": "blur", "window_times": "blur",
    "VideoReader": "decode", "read_frames": "decode",
    "flow_pair": "flow", "flow_to_color": "flow",
    "latent_count": "interpolate", "latent_frame": "interpolate", "linearize": "interpolate",
    "visibility": "interpolate",
    "VideoRecipe": "recipe", "load_video_recipe": "recipe",
    "Clip": "clip", "ClipResult": "clip", "make_clip": "clip",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
