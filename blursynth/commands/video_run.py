"""The `blursynth video` run: plan the clips, make each one, keep the run directory's manifest.

The unit of work (and of retry and resume) is one clip. A clip's outputs are written under
temporary names and renamed when complete (blursynth/writers/), then recorded in manifest.json under
extra["clips"][NAME] (done or skipped, with the reason); lmdb shards (one per clip) also go to the manifest's
shard list, so ShardDataset and `inspect` read them like generate's. A clip's bytes depend on (recipe, seed,
clip name, video) alone (video/clip.py), so they do not depend on the worker count or the order clips finish.
With Ray (`--workers N`, `--address`) each clip is a task of `runner.run_on_ray`.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..backend import backend_for
from ..cuda import device_kind
from ..generate import Timings
from ..runner import check_run_device, run_on_ray
from ..store.manifest import Manifest
from ..store.progress import Progress, stage_shares
from ..store.rundir import RunError, SpaceCheck, check_complete, disk_full_is_clear, lock_out, prepare_out
from ..store.shard import ShardInfo, is_complete

log = logging.getLogger(__name__)

# the modules whose numba kernels a video run calls (the progress bar says "compiling kernels" when not cached)
VIDEO_KERNELS = ("blursynth.video", "blursynth.camera", "blursynth.rng", "blursynth.events")


@dataclass
class VideoSummary:
    out: Path
    clips: int
    done: int
    reused: int
    skipped: dict[str, str]  # clip name -> reason
    frames_in: int
    frames_out: int
    written: int
    windows: int
    filtered: dict[str, int]
    seconds: float
    bytes: int
    fmt: str
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rate = self.frames_out / self.seconds if self.seconds > 0 else 0.0
        unit = f", {self.windows} windows" if self.fmt == "lmdb" else ""
        out = [f"{self.done} of {self.clips} clips made ({self.reused} reused) into {self.out} ({self.fmt}): "
               f"{self.frames_in} frames decoded, {self.frames_out} output frames, {self.written} written{unit}, "
               f"in {self.seconds:.1f} s ({rate:.2f} output frames/s), {self.bytes / 1e6:.1f} MB"]
        if self.filtered:
            out.append(f"filtered {sum(self.filtered.values())} output frames: "
                       + ", ".join(f"{n} {reason}" for reason, n in self.filtered.items()))
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} clips:")
            out += [f"  {name}: {reason}" for name, reason in self.skipped.items()]
        if self.stage_seconds:
            out.append(stage_shares(self.stage_seconds))
        return out


def plan_clips(inputs: list[str | Path]) -> list:
    """The clips of a run from the command line's inputs: files as given (a missing or bad one becomes a recorded
    skip), folders searched recursively for files with a video extension. Sorted by path; names are the file
    stems, made unique with -2, -3, ... in that order. Raises RunError for no input or a folder without videos."""
    from ..inputs import VIDEO_EXTENSIONS, listed, videos_in
    from ..video.clip import Clip

    if not inputs:
        raise RunError("no video given")
    paths = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = videos_in(p, recursive=True)
            if not found:
                raise RunError(f"{p} holds no video (looked for {listed(VIDEO_EXTENSIONS)})")
            paths += found
        else:
            paths.append(p)
    unique = sorted({str(p.resolve()) if p.exists() else str(p.absolute()) for p in paths})
    clips, seen = [], Counter()
    for ordinal, path in enumerate(unique):
        stem = Path(path).stem or "video"
        seen[stem] += 1
        name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        clips.append(Clip(ordinal, name, path))
    return clips


def run_video(recipe, inputs: list[str | Path], out: str | Path, seed: int = 0, resume: bool = False,
              command: str = "", progress: bool = True, workers: int = 0, address: str | None = None,
              device: str = "cpu", gpu_workers: int | None = None) -> VideoSummary:
    """Make blurred/sharp data from videos into `out` (format recipe.output.format); see the block comment above.

    Args:
        recipe: a `video.recipe.VideoRecipe`.
        inputs: video files and/or folders of videos.
        workers: 0 makes every clip in this process; N >= 1 starts a local Ray with N CPUs on loopback only, one
            clip per task. address: join an existing Ray cluster instead.
        device: "cpu", "cuda", "cuda:N" or "auto": where the clip's event simulation runs (make_clip); with Ray
            and a CUDA device each clip task holds 1/`gpu_workers` of a GPU. Part of the run's identity.
    Raises RunError before any work for bad arguments, an unusable `out`, a different run there, or a device
    that cannot run here; RunLockedError while another process writes to `out`; DiskFullError when the disk
    fills up (finished clips kept and listed; --resume finishes).
    """
    from ..video.recipe import MAX_CLIPS

    if seed < 0:
        raise RunError(f"--seed must be non-negative, got {seed}")
    if workers < 0:
        raise RunError(f"--workers must be >= 0, got {workers}")
    device, _ = check_run_device(device, None, "exact", workers, address, gpu_workers)
    clips = plan_clips(inputs)
    if len(clips) > MAX_CLIPS:
        raise RunError(f"at most {MAX_CLIPS} videos per run, got {len(clips)}")
    out = Path(out)
    with lock_out(out, command):
        return _video(recipe, clips, out, seed, resume, command, progress, workers, address, device, gpu_workers)


def _video(recipe, clips: list, out: Path, seed: int, resume: bool, command: str, progress: bool, workers: int,
           address: str | None, device: str, gpu_workers: int | None) -> VideoSummary:
    """run_video once the arguments are checked and `out` is locked."""
    size = list(recipe.resize) if recipe.resize else (list(recipe.crop[2:]) if recipe.crop else [])
    manifest = Manifest(recipe=recipe.to_dict(), seed=seed, num_requested=len(clips), image_size=size,
                        codec=recipe.output.codec, command=command,
                        extra={"kind": "video", "source": [c.path for c in clips], "shard_size": None, "clips": {},
                               "device": device_kind(device)})
    manifest = prepare_out(out, manifest, resume)
    for stale in list(out.glob(".tmp-*")) + list(out.glob("*.tmp")):
        if stale.is_dir():
            log.info("removing partial output %s", stale.name)
            shutil.rmtree(stale, ignore_errors=True)
    records = manifest.extra.setdefault("clips", {})
    fmt = recipe.output.format
    done = {name for name, r in records.items()
            if r["status"] == "skipped" or fmt != "lmdb" or is_complete(out / r["output"]["shard"]["name"])}
    todo = [c for c in clips if c.name not in done]
    timings = Timings()
    start = time.perf_counter()
    frames = sum(_estimate_frames(c.path, recipe) for c in todo)
    bar = Progress(frames, progress, unit="frame", kernels=VIDEO_KERNELS)
    # the size check counts output frames: from the clips a resumed run finished, then from the first clip made
    space = SpaceCheck(out, frames)
    written = sum(r["written"] for r in records.values() if r["status"] == "done")
    if written:
        space.start(_output_bytes(out, fmt, manifest) / written, "from the finished clips")

    def finished(result: dict) -> None:
        for stage, value in result.pop("seconds", {}).items():
            timings.seconds[stage] = timings.seconds.get(stage, 0.0) + value
        if result["status"] == "done" and fmt == "lmdb":
            check_complete(out, ShardInfo.from_dict(result["output"]["shard"]))
        records[result["name"]] = result
        manifest.skipped = [s for s in manifest.skipped if s["source_id"] != result["path"]]
        if result["status"] == "skipped":
            manifest.skipped = sorted(manifest.skipped + [{"index": result["ordinal"], "source_id": result["path"],
                                                           "reason": result["reason"]}], key=lambda s: s["index"])
        elif fmt == "lmdb":
            manifest.add_shard(ShardInfo.from_dict(result["output"]["shard"]))
        manifest.save(out)
        if result["status"] == "done":
            space.shard_done(result["written"], _clip_bytes(out, fmt, result))

    def kept_text() -> str:
        made = sum(r["status"] == "done" for r in records.values())
        return f"the {made} finished clips are kept and listed in manifest.json; the one being made was removed"

    try:
        with disk_full_is_clear(out, kept_text, space):
            if workers == 0 and address is None:
                from ..video.clip import make_clip

                for clip in todo:
                    finished(make_clip(recipe, clip, out, seed, progress=bar, timings=Timings(),
                                       backend=backend_for(device)).to_dict())
            else:
                jobs = [(recipe.to_dict(), (c.ordinal, c.name, c.path), str(out.resolve()), seed, device) for c in todo]
                run_on_ray(_clip_task, jobs, lambda _job, result: finished(result), bar, workers, address, device,
                           gpu_workers)
    finally:
        bar.close()
    kept = [records[c.name] for c in clips if c.name in records]
    filtered: Counter = Counter()
    for r in kept:
        filtered.update(r["filtered"])
    return VideoSummary(
        out=out, clips=len(clips), done=sum(r["status"] == "done" for r in kept), reused=len(clips) - len(todo),
        skipped={r["name"]: r["reason"] for r in kept if r["status"] == "skipped"},
        frames_in=sum(r["frames_in"] for r in kept), frames_out=sum(r["frames_out"] for r in kept),
        written=sum(r["written"] for r in kept), windows=sum(r["windows"] for r in kept),
        filtered=dict(sorted(filtered.items())), seconds=time.perf_counter() - start,
        bytes=_output_bytes(out, fmt, manifest), fmt=fmt, stage_seconds=timings.seconds)


def _estimate_frames(path: str, recipe) -> int:
    """Output frames a clip will give, from the container's claims (for the progress bar only)."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        count, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if not (count > 0 and fps > 0):
        return 0
    if recipe.max_frames is not None:
        count = min(count, recipe.max_frames)
    if recipe.average_frames is not None:
        step = sum(recipe.average_frames) / 2
    else:
        step = fps / recipe.fps if recipe.fps else 1.0
    return max(0, int(count / step) - 1)


def _output_bytes(out: Path, fmt: str, manifest: Manifest) -> int:
    if fmt == "lmdb":
        return sum(s.nbytes for s in manifest.shards)
    return sum(_clip_bytes(out, fmt, r) for r in manifest.extra.get("clips", {}).values())


def _clip_bytes(out: Path, fmt: str, record: dict) -> int:
    """Bytes one clip's outputs take (a ClipResult dict)."""
    output = record.get("output", {})
    if fmt == "lmdb":
        return output.get("shard", {}).get("nbytes", 0)
    total = 0
    for name in output.get("files", []):
        p = out / name
        total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else (
            p.stat().st_size if p.exists() else 0)
    return total


def _clip_task(recipe_dict: dict, clip: tuple, out: str, seed: int, device: str, progress) -> dict:
    """One clip, in a Ray task (runner.run_on_ray): its ClipResult as a dict. device: "cuda" is the GPU Ray gave
    the task."""
    from ..video.clip import Clip, make_clip
    from ..video.recipe import video_recipe_from_dict

    return make_clip(video_recipe_from_dict(recipe_dict), Clip(*clip), out, seed, progress=progress,
                     timings=Timings(), backend=backend_for(device)).to_dict()
