"""The video path: blurred/sharp pairs from real clips (DESIGN.md, section 1; issue 4).

decode (OpenCV, streaming) -> flow (DIS, both directions) -> latent frames by flow interpolation in linear
light -> mean over an exposure window with a duty cycle -> the engine's camera (`camera.apply_camera`).
"""
from .blur import Interval, VideoExposure, blur_frames, blur_window, exposure_taus, interval
from .decode import VideoReader, read_frames
from .flow import flow_pair, flow_to_color
from .interpolate import latent_count, latent_frame, linearize, visibility

__all__ = ["Interval", "VideoExposure", "VideoReader", "blur_frames", "blur_window", "exposure_taus",
           "flow_pair", "flow_to_color", "interval", "latent_count", "latent_frame", "linearize", "read_frames",
           "visibility"]
