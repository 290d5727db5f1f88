"""One sample end to end, from (recipe, source, seed, index): source -> compose -> render -> camera -> record.

`make_sample` is a pure function of its arguments (every random number comes from `seeding.stage_rng`), so
the runner may call it in any process, in any order. `write_shard` makes one shard: the unit of work, of
retry and of resume.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .backend import Backend, backend_for
from .camera import sample_camera
from .recipe import Recipe
from .scene import compose
from .seeding import stage_rng
from .sources import Source, SourceError
from .store.codec import encode_array, encode_image, encode_meta
from .store.shard import ShardInfo, ShardWriter

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """A finished sample: uint8 RGB images, the linear blur map (float32 (H, W, 3); from a GPU worker float16, and
    None when the recipe does not store it), its meta, and its events (EVENT_DTYPE, t in us from the exposure
    start) when the recipe asks for them."""

    index: int
    sharp: np.ndarray
    blur: np.ndarray
    blur_map: np.ndarray | None
    meta: dict
    events: np.ndarray | None = None


@dataclass
class Skip:
    index: int
    source_id: str
    reason: str

    def to_dict(self) -> dict:
        return {"index": self.index, "source_id": self.source_id, "reason": self.reason}


@dataclass
class Timings:
    """Seconds spent per stage, summed over the samples timed."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


RENDER_BATCH = 8
"""Samples a GPU worker renders in one launch (write_shard's `batch` in the Ray runner's CUDA workers): enough to
fill a GPU with 1280x720 scenes, few enough that their float32 images (about 33 MB per sample) stay small."""


def make_sample(recipe: Recipe, source: Source, seed: int, index: int, timings: Timings | None = None,
                device: str = "cpu") -> Sample | Skip:
    """Generate sample `index` of the run with global `seed`; a bad input gives a Skip with its reason.

    device: where the render, camera and event kernels run: "cpu" (numba) or "cuda"/"cuda:N" (csrc/ through
    blursynth.cuda; the same sample within csrc/README.md's tolerances).
    """
    return make_samples(recipe, source, seed, [index], timings, device)[0]


def make_samples(recipe: Recipe, source: Source, seed: int, indices, timings: Timings | None = None,
                 device: str = "cpu") -> list[Sample | Skip]:
    """make_sample over several indices, their exposures rendered together.

    On a CUDA device the scenes of one size render in one launch (cuda.render_batch) and each exposure stays on
    the GPU through the camera and the events: what comes back is the uint8 images, the events, three blur
    statistics and, when the recipe stores it, the blur map as float16. Every sample is the same function of
    (recipe, source, seed, index) as made alone, whatever the batch.

    Returns:
        one Sample or Skip per index, in the order of `indices`.
    """
    timings = timings or Timings()
    backend = backend_for(device)
    made = {index: make_scene(recipe, source, seed, index, timings) for index in indices}
    todo = [index for index in indices if not isinstance(made[index], Skip)]
    by_size: dict[tuple[int, int], list[int]] = {}
    for index in todo:
        by_size.setdefault(made[index][2].size, []).append(index)
    results = dict(made)
    for group in by_size.values():
        with timings.stage("render"):
            exposures = backend.render_batch([made[i][2] for i in group], recipe.render)
        for index, exposure in zip(group, exposures):
            results[index] = _finish_sample(recipe, seed, index, made[index], exposure, backend, timings)
    return [results[index] for index in indices]


def _finish_sample(recipe: Recipe, seed: int, index: int, made: tuple, exposure, backend: Backend,
                   timings: Timings) -> Sample:
    """Camera, events and meta of one rendered sample (the exposure where `backend` keeps it)."""
    item, camera, scene, scene_params = made
    events = events_meta = None
    with timings.stage("camera"):
        blur, sharp = backend.apply_camera(exposure.blur, exposure.sharp, camera, stage_rng(seed, index, "noise"))
    if recipe.events.enabled:
        with timings.stage("events"):
            events, events_meta = backend.scene_events(scene, recipe.events, stage_rng(seed, index, "events"))
    blur_px = backend.blur_stats(exposure.blur_map)
    blur_map = backend.to_host(exposure.blur_map, recipe.output.blur_map)
    meta = {
        "index": index,
        "seed": seed,
        "source_id": item.source_id,
        "view": item.view,
        "size": [blur.shape[1], blur.shape[0]],
        "scene": scene_params,
        "light_px": int(item.lights.sum()) if item.lights is not None else 0,
        "camera": camera.to_meta(),
        "render": {"method": exposure.method, "samples": exposure.samples,
                   "reference_time": recipe.render.reference_time},
        "blur_px": blur_px,
        "blursynth": __version__,
    }
    if events_meta is not None:
        meta["events"] = events_meta
    return Sample(index=index, sharp=sharp, blur=blur, blur_map=blur_map, meta=meta, events=events)


def make_scene(recipe: Recipe, source: Source, seed: int, index: int, timings: Timings | None = None):
    """The first stages of `make_sample`: (source item, camera params, Scene, scene params), or a Skip.

    Deterministic in (recipe, source, seed, index) like `make_sample`, so a run's scenes, and from them its
    latent frames (`render.latent_frames`), can be re-derived later (`blursynth events RUN_DIR`)."""
    timings = timings or Timings()
    with timings.stage("source"):
        try:
            item = source.get(index, stage_rng(seed, index, "source"))
        except SourceError as exc:
            source_id = getattr(source, "source_id", lambda i: "?")(index)
            return Skip(index, source_id, str(exc))
    camera = sample_camera(recipe.camera, stage_rng(seed, index, "camera"))
    with timings.stage("compose"):
        scene, scene_params = compose(item.image, item.masks, item.labels, recipe, stage_rng(seed, index, "scene"),
                                      camera.response, item.lights)
    return item, camera, scene, scene_params


def encode_sample(sample: Sample, recipe: Recipe, timings: Timings | None = None) -> dict[str, bytes]:
    """The record stored for a sample: encoded images, meta, and the blur map and events (`events.encode_events`)
    if the recipe asks for them."""
    timings = timings or Timings()
    with timings.stage("encode"):
        record = {
            "sharp": encode_image(sample.sharp, recipe.output.codec),
            "blur": encode_image(sample.blur, recipe.output.codec),
            "meta": encode_meta(sample.meta),
        }
        if recipe.output.blur_map:
            record["blur_map"] = encode_array(sample.blur_map.astype(np.float16))
        if sample.events is not None:
            from .events.formats import encode_events

            record["events"] = encode_events(sample.events)
    return record


def write_shard(recipe: Recipe, source: Source, seed: int, shard_index: int, indices: range | list[int],
                out_dir: str | Path, progress=None, timings: Timings | None = None, device: str = "cpu",
                batch: int = 1) -> tuple[ShardInfo, list[Skip]]:
    """Make every sample of one shard and write it under a temporary name, renamed when complete.

    Args:
        progress: optional callable(n_done: int, skipped: bool) called after each sample.
        device: where the kernels run (make_sample).
        batch: samples made together (make_samples; RENDER_BATCH on a GPU). The bytes do not depend on it.
    Returns:
        (ShardInfo, skips).
    """
    timings = timings or Timings()
    skips: list[Skip] = []
    indices = list(indices)
    batch = max(1, int(batch))
    with ShardWriter(Path(out_dir), shard_index) as writer:
        for a in range(0, len(indices), batch):
            for result in make_samples(recipe, source, seed, indices[a:a + batch], timings, device):
                if isinstance(result, Skip):
                    log.warning("sample %d skipped: %s (%s)", result.index, result.reason, result.source_id)
                    skips.append(result)
                else:
                    record = encode_sample(result, recipe, timings)
                    with timings.stage("write"):
                        writer.put(result.index, record)
                if progress is not None:
                    progress(1, isinstance(result, Skip))
        info = writer.close()
    return info, skips
