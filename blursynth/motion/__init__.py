"""Motion over the exposure: `Motion` (T homographies), camera shake models, object models, PSF rasterization."""
from .core import Motion, exposure_times, rasterize_psf
from .objects import OBJECT_MODELS, ObjectModel, object_motion
from .shake import (SHAKE_MODELS, ShakeModel, bf_trajectory, gp_trajectory, line_trajectory, rotational_motion,
                    shake_motion)

__all__ = ["Motion", "exposure_times", "rasterize_psf", "object_motion", "OBJECT_MODELS", "ObjectModel",
           "bf_trajectory", "gp_trajectory", "line_trajectory", "rotational_motion", "SHAKE_MODELS", "ShakeModel",
           "shake_motion"]
