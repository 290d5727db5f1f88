"""Test-time reblurring (issue 8): domain-adaptive training pairs from the user's own blurry videos.

relative sharpness (`sharpness`) -> the domain's blur condition from flow x exposure ratio (`domain`) and its
noise (`noise`) -> the sharpest patches reblurred by the engine with matching blur and noise (`reblur`) ->
shards like `generate`'s (`run.run_adapt`, `blursynth adapt`).

Names are imported on first use, so `blursynth --help` (which imports `commands.adapt`) loads no numerics.
"""
import importlib

_EXPORTS = {
    "AdaptSettings": "settings", "load_settings": "settings",
    "BlurDistribution": "domain", "condition_map": "domain", "distribution_distance": "domain",
    "frame_velocity": "domain", "wasserstein1": "domain",
    "InputError": "inputs", "Target": "inputs", "discover": "inputs",
    "NoiseEstimate": "noise", "estimate_noise": "noise",
    "Condition": "reblur", "condition_path": "reblur", "denoise_codes": "reblur", "draw_condition": "reblur",
    "reblur_patch": "reblur",
    "SharpnessScores": "sharpness", "detail_energy": "sharpness", "patch_grid": "sharpness",
    "score_patches": "sharpness", "select_sharpest": "sharpness",
    "VideoAnalysis": "analyze", "analyze_video": "analyze",
    "AdaptError": "run", "run_adapt": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
