"""`blursynth adapt`: test-time reblurring pairs from the user's blurry videos, written like `generate`'s.

1. analyze every target (`analyze.analyze_video`): flows, blur-condition maps, blur histogram, patch
   sharpness, noise residuals; bad targets (missing, a folder without frames, one frame, a static video,
   frames smaller than the patch) are skipped with their reason, and the run stops with every reason when
   none is left;
2. the domain: the histograms of all targets summed, the noise fitted on all their residuals;
3. the pseudo-sharp patches: the `ratio` sharpest eligible patches of each video, less those the flow says
   moved more than `max_blur_px` during the exposure;
4. the pairs: sample i is draw i % K (K = pairs_per_patch) of patch i // K, in (video, frame, patch) order;
   its condition comes from `stage_rng(seed, i, "adapt/motion")`, its noise from `stage_rng(seed, i,
   "adapt/noise")`, so a sample is a pure function of the inputs, settings, seed and index. Shards of
   `shard_size` consecutive indices, the manifest rewritten after each, `--resume` finishing an interrupted run
   exactly as `generate` does (runner.py).

Output: the `generate` layout (manifest.json + shard-NNNNN.lmdb; each sample `blur`, `sharp`, `blur_map`
(float16 (P, P, 3), ID-Blau's convention), `meta`), plus `conditions/{video}.npy`, the estimated
blur-condition map of every target frame (float16 (N, h, w, 3), longer side at most 256 px). The manifest's
`extra` holds the domain (histogram, summary, noise), per-video statistics and the skipped inputs.
"""
from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from .. import __version__
from ..camera import Response
from ..seeding import stage_rng
from ..store.codec import encode_array, encode_image, encode_meta
from ..store.lock import LOCK_NAME
from ..store.manifest import Manifest
from ..store.progress import Progress, stage_shares
from ..store.rundir import (
    MANIFEST,
    RunError,
    check_complete,
    disk_full_is_clear,
    lock_out,
    prepare_out,
)
from ..store.shard import ShardWriter, is_complete, shard_name
from .analyze import VideoAnalysis, analyze_video
from .domain import BlurDistribution, distribution_distance
from .inputs import InputError, Target, discover
from .noise import NoiseEstimate, NoiseSamples
from .reblur import draw_condition, reblur_patch
from .settings import AdaptSettings
from .sharpness import select_sharpest

log = logging.getLogger(__name__)

CONDITIONS_DIR = "conditions"


class AdaptError(Exception):
    """A run that cannot start or has nothing to work on; the message says why (naming the inputs)."""


@dataclass
class PatchRef:
    """One pseudo-sharp patch: video (position in the analyses), frame, top-left corner and its scores."""

    video: int
    frame: int
    corner: tuple[int, int]
    score: float
    relative: float
    blur_px: float


@dataclass
class AdaptSummary:
    out: Path
    videos: list[dict]
    skipped: list[dict]
    requested: int
    written: int
    shards_done: int
    shards_reused: int
    seconds: float
    nbytes: int
    domain: dict
    noise: dict | None
    produced_w1_px: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        frames = sum(v["frames"] for v in self.videos)
        out = [f"adapted {len(self.videos)} video(s), {frames} frames: "
               f"{sum(v['selected'] for v in self.videos)} pseudo-sharp patches of "
               f"{sum(v['eligible'] for v in self.videos)} eligible"]
        over = sum(v.get("over_max_blur", 0) for v in self.videos)
        if over:
            out[-1] += f" ({over} more in the sharpest share left out: flow blur over sharpness.max_blur_px)"
        d = self.domain
        out.append(f"domain blur: mean {d['mean_px']:.2f} px, median {d['p50_px']:.2f}, p95 {d['p95_px']:.2f}; "
                   f"main axis {d['axis_deg']:.0f} deg (concentration {d['axis_concentration']:.2f}); "
                   f"{d['pixels']} pixels")
        if self.noise is not None:
            out.append(f"noise (linear): shot {self.noise['shot']:.3g}, read {self.noise['read']:.3g} "
                       f"(sigma {self.noise['sigma_at_0.18']:.3g} at 0.18)")
        out.append(f"wrote {self.written} of {self.requested} pairs to {self.out} ({self.shards_done} shards made, "
                   f"{self.shards_reused} reused) in {self.seconds:.1f} s, {self.nbytes / 1e6:.1f} MB")
        if self.produced_w1_px is not None:
            out.append(f"blur of the pairs made vs the domain: Wasserstein-1 {self.produced_w1_px:.2f} px")
        if self.stage_seconds:
            out.append(stage_shares(self.stage_seconds))
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} input(s):")
            out += [f"  {s['input']}: {s['reason']}" for s in self.skipped]
        return out


def run_adapt(inputs, out: str | Path, settings: AdaptSettings, seed: int = 0, shard_size: int = 256,
              max_pairs: int | None = None, resume: bool = False, command: str = "",
              progress: bool = True) -> AdaptSummary:
    """Make adapted pairs from target videos into `out` (see the module docstring).

    Args:
        inputs: video files and folders (`inputs.discover`).
        settings: validated `AdaptSettings`.
        max_pairs: keep at most this many pairs (patches evenly subsampled from the selection).
    Raises:
        AdaptError: bad arguments, an unusable `out`, or no usable input (every reason listed).
        RunLockedError: another process writes to `out` (its lock is taken before the analysis).
        DiskFullError: the disk filled up (finished shards kept and listed; --resume finishes).
    """
    start = time.perf_counter()
    if shard_size < 1:
        raise AdaptError(f"--shard-size must be at least 1, got {shard_size}")
    if seed < 0:
        raise AdaptError(f"--seed must be non-negative, got {seed}")
    if max_pairs is not None and max_pairs < 1:
        raise AdaptError(f"--max-pairs must be at least 1, got {max_pairs}")
    inputs = [str(p) for p in inputs]
    if not inputs:
        raise AdaptError("give at least one video file or folder")
    out = Path(out)
    try:
        lock = lock_out(out, command)
    except RunError as exc:
        raise AdaptError(str(exc)) from exc
    with lock:
        return _adapt(inputs, out, settings, seed, shard_size, max_pairs, resume, command, progress, start)


def _adapt(inputs: list[str], out: Path, settings: AdaptSettings, seed: int, shard_size: int, max_pairs: int | None,
           resume: bool, command: str, progress: bool, start: float) -> AdaptSummary:
    """run_adapt once the arguments are checked and `out` is locked."""
    _precheck(out, resume)
    stages: dict[str, float] = {}
    targets, skipped = discover(inputs)
    staging = out.parent / f".{out.name}.conditions.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    conditions_dir = staging if settings.domain.condition_maps else None
    t0 = time.perf_counter()
    analyses = _analyze_all(targets, settings, conditions_dir, skipped, progress)
    stages["analyze"] = time.perf_counter() - t0
    try:
        if not analyses:
            reasons = "; ".join(f"{s['input']}: {s['reason']}" for s in skipped) or "nothing given"
            raise AdaptError(f"no usable target video ({reasons})")
        distribution = analyses[0].distribution
        for a in analyses[1:]:
            distribution = distribution.merged(a.distribution)
        if distribution.total <= 0:
            raise AdaptError("no flow-consistent pixel in any target: cannot measure the blur")
        noise = _pooled_noise(analyses) if settings.reblur.noise == "estimate" else None
        patches, videos = _select(analyses, settings, max_pairs)
        if not patches:
            if any(v["eligible"] for v in videos):
                raise AdaptError(f"no patch of any target is sharp enough: the flow blurs every candidate more than "
                                 f"sharpness.max_blur_px = {settings.sharpness.max_blur_px} px (raise it, or 0 for "
                                 f"no cap)")
            raise AdaptError("no eligible patch in any target (all too flat, or flow failed everywhere)")
        num = len(patches) * settings.reblur.pairs_per_patch
        manifest = Manifest(recipe=settings.to_dict(), seed=seed, num_requested=num,
                            image_size=[settings.sharpness.patch_size] * 2, codec=settings.output.codec,
                            command=command,
                            extra={"kind": "adapt", "source": inputs, "shard_size": shard_size,
                                   "max_pairs": max_pairs,
                                   "domain": {"exposure_ratio": settings.domain.exposure_ratio,
                                              "summary": distribution.summary(),
                                              "distribution": distribution.to_dict(),
                                              "noise": None if noise is None else noise.to_dict()},
                                   "videos": videos, "skipped_inputs": skipped})
        try:
            manifest = prepare_out(out, manifest, resume)
        except RunError as exc:
            raise AdaptError(str(exc)) from exc
        if conditions_dir is not None and staging.exists():
            shutil.rmtree(out / CONDITIONS_DIR, ignore_errors=True)
            staging.rename(out / CONDITIONS_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    t0 = time.perf_counter()
    done = {s.name for s in manifest.shards if is_complete(out / s.name)}
    manifest.shards = [s for s in manifest.shards if s.name in done]

    def kept_text() -> str:
        return (f"the {len(manifest.shards)} finished shards ({manifest.num_written} of {num} pairs) are kept and "
                "listed in manifest.json; the shard being written was removed")

    with disk_full_is_clear(out, kept_text):
        magnitudes, shards_made = _write_pairs(analyses, patches, settings, distribution, noise, seed, shard_size,
                                               num, out, manifest, done, progress)
    stages["reblur"] = time.perf_counter() - t0
    w1 = distribution_distance(distribution, np.array(magnitudes)) if magnitudes else None
    return AdaptSummary(out=out, videos=videos, skipped=skipped, requested=num, written=manifest.num_written,
                        shards_done=shards_made, shards_reused=len(done), seconds=time.perf_counter() - start,
                        nbytes=sum(s.nbytes for s in manifest.shards), domain=distribution.summary(),
                        noise=None if noise is None else noise.to_dict(), produced_w1_px=w1, stage_seconds=stages)


def _precheck(out: Path, resume: bool) -> None:
    """Fail before the (long) analysis for an `out` that `prepare_out` would refuse anyway."""
    if out.exists() and not out.is_dir():
        raise AdaptError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        has_manifest = (out / MANIFEST).exists()
        if has_manifest and not resume:
            raise AdaptError(f"--out {out} already holds a run; pass --resume to finish it, or choose another --out")
        if not has_manifest and any(p.name != LOCK_NAME for p in out.iterdir()):
            raise AdaptError(f"--out {out} is not empty and holds no blursynth run; choose an empty or new directory")


def _analyze_all(targets: list[Target], settings: AdaptSettings, conditions_dir: Path | None, skipped: list[dict],
                 progress: bool) -> list[VideoAnalysis]:
    from tqdm import tqdm

    total = sum(t.count_hint() for t in targets)
    analyses = []
    with tqdm(total=total or None, unit="frame", desc="analyzing", dynamic_ncols=True, disable=not progress) as bar:
        for target in targets:
            try:
                analyses.append(analyze_video(target, settings, conditions_dir, progress=bar.update))
            except InputError as exc:
                log.warning("skipping %s: %s", target.path, exc)
                skipped.append({"input": str(target.path), "reason": str(exc)})
    return analyses


def _pooled_noise(analyses: list[VideoAnalysis]) -> NoiseEstimate:
    pooled = NoiseSamples(analyses[0].noise.response)
    for a in analyses:
        pooled.extend(a.noise)
    return pooled.fit()


def _select(analyses: list[VideoAnalysis], settings: AdaptSettings, max_pairs: int | None):
    """The pseudo-sharp patches of every video, and the per-video statistics for the manifest."""
    patches: list[PatchRef] = []
    videos = []
    for v, a in enumerate(analyses):
        s = a.scores
        chosen = select_sharpest(s, settings.sharpness.ratio, settings.sharpness.max_blur_px)
        by_ratio = len(select_sharpest(s, settings.sharpness.ratio))
        for k, p in chosen:
            patches.append(PatchRef(v, int(k), (int(a.corners[p, 0]), int(a.corners[p, 1])), float(s.score[k, p]),
                                    float(s.relative[k, p]), float(s.blur_px[k, p])))
        videos.append({
            "id": a.target.id, "path": str(a.target.path), "frames": a.frames, "size": list(a.size),
            "patches": int(s.score.size), "eligible": int(s.eligible.sum()), "selected": int(len(chosen)),
            "over_max_blur": int(by_ratio - len(chosen)),
            "blur": a.distribution.summary(), "motion_p99_px": round(a.motion_p99_px, 4),
            "noise": a.noise.fit().to_dict(),
            "conditions": None if a.conditions is None else f"{CONDITIONS_DIR}/{a.conditions.name}",
            "frame_scores": [None if not math.isfinite(x) else round(float(x), 5) for x in s.frame_scores()],
            "frame_blur_px": [None if not math.isfinite(x) else round(float(x), 4) for x in a.frame_blur_px],
        })
    per_patch = settings.reblur.pairs_per_patch
    if max_pairs is not None and len(patches) * per_patch > max_pairs:
        keep = max(1, max_pairs // per_patch)
        picks = np.unique(np.linspace(0, len(patches) - 1, keep).round().astype(np.int64))
        patches = [patches[i] for i in picks]
    return patches, videos


def _write_pairs(analyses, patches, settings, distribution, noise, seed, shard_size, num, out, manifest, done,
                 progress):
    """Render every pair whose shard is not done, in index order, shard by shard."""
    response = Response(settings.reblur.response, settings.reblur.gamma)
    per_patch = settings.reblur.pairs_per_patch
    codec = settings.output.codec
    todo = {shard_name(s) for s in range((num + shard_size - 1) // shard_size)} - done
    remaining = sum(min(shard_size, num - s * shard_size) for s in range((num + shard_size - 1) // shard_size)
                    if shard_name(s) in todo)
    bar = Progress(remaining, progress, kernels=("blursynth.adapt", "blursynth.video", "blursynth.camera"))
    magnitudes: list[float] = []
    made = 0
    writer = None
    by_video: dict[int, dict[int, list[int]]] = {}
    for i, ref in enumerate(patches):
        by_video.setdefault(ref.video, {}).setdefault(ref.frame, []).append(i)
    threads = numba.get_num_threads()
    # one pair is small: the thread pool's start-up per kernel call costs more than it saves (on a loaded 2-core
    # machine 48 px pairs took 11 ms with one thread, 160 ms with two; 256 px pairs 66 ms and 163 ms)
    numba.set_num_threads(1)
    try:
        for v, frames in by_video.items():
            wanted = [i for ids in frames.values() for i in ids
                      if any(shard_name((i * per_patch + j) // shard_size) in todo for j in range(per_patch))]
            if not wanted:
                continue
            a = analyses[v]
            last = max(frames)
            for k, frame in enumerate(a.target.open()):
                for i in frames.get(k, []):
                    for j in range(per_patch):
                        index = i * per_patch + j
                        shard = index // shard_size
                        if shard_name(shard) not in todo:
                            continue
                        if writer is None or writer.name != shard_name(shard):
                            writer = ShardWriter(out, shard)
                        record, magnitude = _sample(a, patches[i], frame, index, j, settings, distribution, noise,
                                                    response, seed, codec)
                        writer.put(index, record)
                        magnitudes.append(magnitude)
                        bar(1, False)
                        if index == min((shard + 1) * shard_size, num) - 1:
                            info = writer.close()
                            check_complete(out, info)
                            manifest.add_shard(info)
                            manifest.save(out)
                            writer = None
                            made += 1
                if k >= last:
                    break
    except InputError as exc:
        raise AdaptError(f"a target changed between the two passes: {exc}") from exc
    finally:
        numba.set_num_threads(threads)
        if writer is not None:
            writer.abort()
        bar.close()
    return magnitudes, made


def _sample(a: VideoAnalysis, ref: PatchRef, frame: np.ndarray, index: int, draw: int, settings: AdaptSettings,
            distribution: BlurDistribution, noise: NoiseEstimate | None, response: Response, seed: int, codec: str):
    """The stored record of sample `index` (draw `draw` of its patch) and its blur magnitude."""
    condition = draw_condition(distribution, stage_rng(seed, index, "adapt/motion"), settings.reblur.path)
    pair = reblur_patch(frame, ref.corner, settings.sharpness.patch_size, condition, response, noise,
                        stage_rng(seed, index, "adapt/noise"), settings.reblur.method, settings.reblur.denoise)
    m = pair.blur_map[..., 2]
    x0, y0 = ref.corner
    source = {"video": str(a.target.path), "video_id": a.target.id, "frame": ref.frame, "corner": [x0, y0],
              "patch_px": settings.sharpness.patch_size, "score": round(ref.score, 6),
              "relative_energy": round(ref.relative, 6), "blur_px": round(ref.blur_px, 4), "draw": draw}
    if a.target.frames is not None:
        source["file"] = str(a.target.frames[ref.frame])
    meta = {
        "index": index,
        "seed": seed,
        "source_id": f"{a.target.id}:{ref.frame}:{x0},{y0}",
        "size": [pair.blur.shape[1], pair.blur.shape[0]],
        "source": source,
        "condition": condition.to_meta(),
        "exposure_ratio": settings.domain.exposure_ratio,
        "camera": pair.camera.to_meta(),
        "render": {"method": settings.reblur.method, "samples": pair.samples, "reference_time": 0.5},
        "blur_px": {"mean": float(m.mean()), "p95": float(np.percentile(m, 95)), "max": float(m.max())},
        "blursynth": __version__,
    }
    record = {"sharp": encode_image(pair.sharp, codec), "blur": encode_image(pair.blur, codec),
              "blur_map": encode_array(pair.blur_map.astype(np.float16)), "meta": encode_meta(meta)}
    return record, condition.magnitude_px
