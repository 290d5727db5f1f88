"""Per-sample random streams: a pure function of (global seed, sample index, stage name).

A sample's randomness never depends on which worker renders it, in which order, or how many samples came
before it, so any partition of the run into shards and workers gives the same bytes. Each stage gets its
own stream, so drawing one more number in, say, the camera stage does not shift the motions.
"""
from __future__ import annotations

import zlib

import numpy as np

_MAX_SEED = 2**63 - 1


def stage_rng(seed: int, index: int, stage: str) -> np.random.Generator:
    """Generator for one stage of one sample.

    Args:
        seed: global run seed (non-negative int).
        index: sample index within the run (non-negative int).
        stage: stage name, e.g. "source", "scene", "camera", "noise".
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    key = zlib.crc32(stage.encode("utf-8"))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index), key])))


def child_seed(rng: np.random.Generator) -> int:
    """Draw an integer seed to store in a sample's meta; `np.random.default_rng(child_seed)` replays the draw."""
    return int(rng.integers(0, _MAX_SEED))
