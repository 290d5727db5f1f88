"""Event-camera simulation from the latent frames of an exposure (ESIM model with an optional v2e-style noise
model): simulate.py (kernels), noise.py, frames.py (luminance, downscaling), formats.py (byte form, h5, npz,
GEM npz, voxel grids)."""
from .formats import decode_events, encode_events, voxel_grid
from .frames import downscale, to_gray
from .noise import NoiseModel
from .simulate import EVENT_DTYPE, EventState, concatenate_events, simulate

__all__ = ["EVENT_DTYPE", "EventState", "NoiseModel", "concatenate_events", "decode_events", "downscale",
           "encode_events", "simulate", "to_gray", "voxel_grid"]
