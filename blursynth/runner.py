"""Run orchestration: check the output directory, plan shards, make them, keep the manifest.

The run is planned as shards of K consecutive sample indices; shard s holds indices [s K, (s + 1) K). A shard
is written under a temporary name and renamed when complete, then recorded in manifest.json (written
atomically after every shard), so an interrupted run keeps every finished shard and `resume` redoes only the
rest. Samples depend on (recipe, seed, index) alone, so the bytes do not depend on how shards are scheduled.

A run holds the output directory's write lock (store/lock.py) from before it reads the manifest until it
ends, so two runs on one --out cannot interleave (the second gets RunLockedError, naming the first). A disk that
fills up mid-run ends it with DiskFullError (finished shards kept and listed, the failed one removed); the
manifest only ever lists complete shards.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .cuda import device_kind
from .generate import RENDER_BATCH, Timings, write_shard
from .recipe import Recipe
from .sources import open_source
from .store.manifest import Manifest
from .store.progress import Progress, stage_shares
from .store.rundir import (
    RunError,
    SpaceCheck,
    check_complete,
    disk_full_is_clear,
    estimate_sample_bytes,
    lock_out,
    prepare_out,
)
from .store.shard import ShardInfo, is_complete, shard_name

log = logging.getLogger(__name__)

# the modules whose numba kernels generate calls: the progress bar says "compiling kernels" when some are not cached
GENERATE_KERNELS = ("blursynth.render", "blursynth.camera", "blursynth.scene", "blursynth.motion", "blursynth.rng",
                    "blursynth.events")


@dataclass
class Plan:
    num: int
    shard_size: int

    @property
    def num_shards(self) -> int:
        return (self.num + self.shard_size - 1) // self.shard_size

    def indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num))


@dataclass
class RunSummary:
    out: Path
    requested: int
    written: int
    skipped: dict[str, int]
    shards_done: int
    shards_reused: int
    seconds: float
    bytes: int
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rate = (self.written + sum(self.skipped.values())) / self.seconds if self.seconds > 0 else 0.0
        out = [f"wrote {self.written} of {self.requested} samples to {self.out} "
               f"({self.shards_done} shards made, {self.shards_reused} reused) in {self.seconds:.1f} s "
               f"({rate:.2f} samples/s), {self.bytes / 1e6:.1f} MB"]
        if self.skipped:
            out.append(f"skipped {sum(self.skipped.values())}:")
            out += [f"  {n} x {reason}" for reason, n in self.skipped.items()]
        if self.stage_seconds:
            out.append(stage_shares(self.stage_seconds))
        return out


def run_generate(recipe: Recipe, source_spec: str, num: int, out: str | Path, seed: int = 0, shard_size: int = 256,
                 resume: bool = False, command: str = "", progress: bool = True, workers: int = 0,
                 address: str | None = None, sam: dict | None = None, sam_actors: int | None = None,
                 device: str = "cpu", gpu_workers: int | None = None, kernels: str | None = None) -> RunSummary:
    """Generate `num` samples into `out`; see the module docstring.

    Args:
        workers: 0 makes every shard in this process (debugging, tests); N >= 1 starts a local Ray with N CPUs
            on loopback only, one shard per task.
        address: join an existing Ray cluster instead ("auto" or "HOST:PORT"); `out` must be a path every node
            sees.
        sam: segment folder sources with segment-anything ({"checkpoint": PATH, "model_type": ...}).
        sam_actors: with Ray, run SAM in this many actors that hold the model (one GPU each when the cluster has
            GPUs) and send them the images; default one per GPU, or none (each worker loads its own model on
            the CPU) without GPUs.
        device: where render, camera and events run: "cpu", "cuda", "cuda:N" or "auto" (cuda.resolve_device).
            With Ray and a CUDA device, shards go to GPU workers: Ray actors holding 1/`gpu_workers` of a GPU each
            (see "GPU workers" below). The device kind (cpu or cuda) is part of the run's identity: the bytes differ
            within csrc/README.md's tolerances, so a resume must use the same kind.
        gpu_workers: GPU workers per GPU (default: default_gpu_workers).
        kernels: internal switch for machines without a GPU (tests): run the code path of `device` (its Ray
            resources, GPU actors and batches) with the kernels on this device instead ("cpu": numba).
    Raises RunError before any work for a bad count, an unwritable or foreign `out`, a different run there, or a
    device that cannot run here (the message names the reason); RunLockedError while another process writes to
    `out` (lock_out); DiskFullError when the disk fills up (finished shards kept and listed; --resume finishes).
    """
    if num < 1:
        raise RunError(f"--num must be at least 1, got {num}")
    if shard_size < 1:
        raise RunError(f"--shard-size must be at least 1, got {shard_size}")
    if seed < 0:
        raise RunError(f"--seed must be non-negative, got {seed}")
    if workers < 0:
        raise RunError(f"--workers must be >= 0, got {workers}")
    device, kernels = check_run_device(device, kernels, recipe.render.method, workers, address, gpu_workers)
    out = Path(out)
    with lock_out(out, command):
        return _generate(recipe, source_spec, num, out, seed, shard_size, resume, command, progress, workers,
                         address, sam, sam_actors, device, gpu_workers, kernels)


def _generate(recipe: Recipe, source_spec: str, num: int, out: Path, seed: int, shard_size: int, resume: bool,
              command: str, progress: bool, workers: int, address: str | None, sam: dict | None,
              sam_actors: int | None, device: str, gpu_workers: int | None, kernels: str) -> RunSummary:
    """run_generate once the arguments are checked and `out` is locked."""
    source = open_source(source_spec, recipe.size, sam)
    extra = {"source": source_spec, "shard_size": shard_size, "device": device_kind(device)}
    if sam is not None:
        extra["sam"] = sam
    manifest = Manifest(recipe=recipe.to_dict(), seed=seed, num_requested=num, image_size=list(recipe.size),
                        codec=recipe.output.codec, command=command, extra=extra)
    manifest = prepare_out(out, manifest, resume)
    plan = Plan(num, shard_size)
    done = {s.name for s in manifest.shards if is_complete(out / s.name)}
    manifest.shards = [s for s in manifest.shards if s.name in done]
    todo = [s for s in range(plan.num_shards) if shard_name(s) not in done]
    remaining = sum(len(plan.indices(s)) for s in todo)
    space = SpaceCheck(out, remaining)
    space.start(*estimate_sample_bytes(recipe.size, recipe.output.codec, recipe.output.blur_map,
                                      recipe.events.enabled, manifest.shards))
    timings = Timings()
    start = time.perf_counter()
    bar = Progress(remaining, progress, kernels=GENERATE_KERNELS)

    def finished(shard: int, info: ShardInfo, skips: list[dict], node: str | None = None,
                 worker: dict | None = None) -> None:
        check_complete(out, info)
        manifest.add_shard(info)
        if node is not None:
            # which Ray node made each shard: for debugging a cluster run (not part of the samples)
            manifest.extra.setdefault("shard_nodes", {})[info.name] = node
        if worker is not None:
            # the GPU share and GPU ids of the worker that made it (same purpose)
            manifest.extra.setdefault("shard_workers", {})[info.name] = worker
        span = plan.indices(shard)
        kept = [s for s in manifest.skipped if not span.start <= s["index"] < span.stop]
        manifest.skipped = sorted(kept + skips, key=lambda s: s["index"])
        manifest.save(out)
        space.shard_done(info.count + len(skips), info.nbytes)

    def kept_text() -> str:
        return (f"the {len(manifest.shards)} finished shards ({manifest.num_written} of {num} samples) are kept "
                "and listed in manifest.json; the shard being written was removed")

    try:
        with disk_full_is_clear(out, kept_text, space):
            if workers == 0 and address is None:
                batch = 1 if device == "cpu" else RENDER_BATCH
                for shard in todo:
                    info, skips = write_shard(recipe, source, seed, shard, plan.indices(shard), out, progress=bar,
                                              timings=timings, device=kernels, batch=batch)
                    finished(shard, info, [s.to_dict() for s in skips])
            elif device == "cpu":
                _run_shards_on_ray(recipe, source_spec, sam, sam_actors, seed, [(s, plan.indices(s)) for s in todo],
                                   out, workers, address, bar, timings, finished)
            else:
                _run_shards_on_gpus(recipe, source_spec, sam, sam_actors, seed, [(s, plan.indices(s)) for s in todo],
                                    out, workers, address, bar, timings, finished, gpu_workers, kernels,
                                    manifest.extra)
    finally:
        bar.close()
    return RunSummary(out=out, requested=num, written=manifest.num_written, skipped=manifest.skipped_by_reason(),
                      shards_done=len(todo), shards_reused=len(done), seconds=time.perf_counter() - start,
                      bytes=sum(s.nbytes for s in manifest.shards), stage_seconds=timings.seconds)


def check_run_device(device: str, kernels: str | None, method: str, workers: int, address: str | None,
                     gpu_workers: int | None) -> tuple[str, str]:
    """(device, kernels) for a run, checked before any work: the device resolved (cuda.resolve_device), and the
    device the kernels run on (the same, unless the internal `kernels` switch says otherwise)."""
    from .cuda import check_device_name, check_method, resolve_device

    if gpu_workers is not None and gpu_workers < 1:
        raise RunError(f"--gpu-workers must be at least 1, got {gpu_workers}")
    try:
        if kernels is None:
            device = resolve_device(device, method)
            kernels = device
        else:
            check_device_name(device)
            check_method(device, method)
            kernels = resolve_device(kernels, method)
    except (ValueError, RuntimeError) as exc:
        raise RunError(str(exc)) from exc
    if device.startswith("cuda:") and (workers > 0 or address is not None):
        raise RunError(f"--device {device}: Ray workers use the GPU Ray gives each of them; pass --device cuda "
                       f"(or --workers 0 to run in this process on {device})")
    return device, kernels


# --- Ray -------------------------------------------------------------------------------------------------------
# A shard is one task; a worker process that dies mid-shard is retried by Ray (its half-written .tmp shard is
# removed by the next writer of that shard). Samples depend on (recipe, seed, index) only, so a retried or
# reordered shard is byte-identical.

TASK_RETRIES = 3
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _run_shards_on_ray(recipe: Recipe, source_spec: str, sam: dict | None, sam_actors: int | None, seed: int,
                       shards: list[tuple[int, range]], out: Path, workers: int, address: str | None,
                       progress: "Progress", timings: Timings, finished) -> None:
    ray = _start_ray(workers, address)
    try:
        tally = _Tally(ray, progress, workers)
        counter = tally.counter
        segmenters = _sam_actors(ray, sam, sam_actors)
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_shard_task)
        recipe_dict = recipe.to_dict()

        def submit(job, _worker):
            shard, indices = job
            return task.remote(recipe_dict, source_spec, sam, segmenters, seed, shard, list(indices),
                               str(out.resolve()), counter)

        def done(job, result):
            info, skips, seconds, node = result
            for stage, value in seconds.items():
                timings.seconds[stage] = timings.seconds.get(stage, 0.0) + value
            finished(job[0], ShardInfo.from_dict(info), skips, node)

        map_tasks(ray, shards, submit, done, tally)
    finally:
        if address is None:
            ray.shutdown()


def _start_ray(workers: int, address: str | None, num_gpus: int | None = None):
    """A local Ray on loopback with `workers` CPUs (and `num_gpus` GPUs; None: Ray's detection), or a connection
    to an existing cluster."""
    import os

    if address is None:
        # Ray reads this when imported: with it, every process of a local Ray binds to 127.0.0.1 only (Ray has no
        # authentication; an open port lets anyone who reaches it run code).
        os.environ.update(LOOPBACK_ENV)
    import ray

    if ray.is_initialized():
        ray.shutdown()
    kwargs = dict(include_dashboard=False, configure_logging=False, log_to_driver=False,
                  runtime_env={"env_vars": {**LOOPBACK_ENV, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}})
    if address is None:
        ray.init(num_cpus=workers, num_gpus=num_gpus, object_store_memory=256 << 20, **kwargs)
    else:
        ray.init(address=address, **kwargs)
    return ray


def map_tasks(ray, jobs: list, submit, done, tally: "_Tally", pool: list | None = None, label=str,
              retries: int = TASK_RETRIES) -> None:
    """Run every job on Ray and give each result to `done(job, result)` as it finishes (in completion order; the
    bytes of a run never depend on it), moving the progress bar (`tally.poll()`) at least every 0.5 s.

    `submit(job, worker)` starts one job and returns its ObjectRef. Without `pool`, worker is None and every job
    is submitted at once as a Ray task: Ray queues them and reruns a task whose process died (the task's own
    max_retries). With `pool` (a list of actors), each actor runs one job at a time, and a job whose actor died
    mid-job (RayActorError; Ray restarts the actor, max_restarts) is given out again, at most `retries` times;
    `label(job)` names it in the warning. Any other error ends the map and propagates.
    """
    from collections import deque

    queue = deque(enumerate(jobs))
    idle = None if pool is None else list(pool)
    running: dict = {}
    tries: Counter = Counter()
    while queue or running:
        while queue and (idle is None or idle):
            worker = None if idle is None else idle.pop()
            key, job = queue.popleft()
            running[submit(job, worker)] = (key, job, worker)
        ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
        tally.poll()
        for ref in ready:
            key, job, worker = running.pop(ref)
            if worker is not None:
                idle.append(worker)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:
                if worker is None:
                    raise
                tries[key] += 1
                if tries[key] > retries:
                    raise
                log.warning("a Ray worker died on %s; giving it out again (%d/%d)", label(job), tries[key], retries)
                queue.appendleft((key, job))
                continue
            done(job, result)


def run_on_ray(fn, jobs: list, done, progress: Progress, workers: int, address: str | None, device: str = "cpu",
               gpu_workers: int | None = None) -> None:
    """Call `fn(*job, progress=report)` for every job (a tuple of picklable arguments; `fn` a module-level
    function) as one Ray task each, on a local Ray with `workers` CPUs on loopback or on the cluster at
    `address`, and give each result to `done(job, result)` as it finishes. `report(n, skipped)` in the task moves
    the driver's progress bar. A task whose process dies is rerun (TASK_RETRIES). With a CUDA `device` each task
    holds 1/k of a GPU (k = `gpu_workers`, see "GPU workers"), and "cuda" in the task is the GPU Ray gave it."""
    ray = _start_ray(workers, address, _local_gpus(address, device))
    try:
        tally = _Tally(ray, progress, workers or len(jobs))
        options = dict(num_cpus=1, max_retries=TASK_RETRIES)
        if device != "cpu":
            resources = ray.cluster_resources()
            if resources.get("GPU", 0.0) <= 0:
                raise RunError(f"--device {device}: the Ray cluster has no GPU")
            options["num_gpus"] = _gpu_share(gpu_workers, resources.get("CPU", 0.0), resources["GPU"])[1]
        task = ray.remote(**options)(_call_with_progress)
        map_tasks(ray, jobs, lambda job, _worker: task.remote(fn, job, tally.counter), done, tally)
    finally:
        if address is None:
            ray.shutdown()


def _call_with_progress(fn, job: tuple, counter):
    """Ray task of run_on_ray: fn(*job) with a progress callback that reports to the driver's counter."""
    import cv2

    cv2.setNumThreads(1)
    return fn(*job, progress=_reporter(counter))


class _Counter:
    """Ray actor: items done and skipped so far, and the seconds the workers spent compiling numba kernels, for the
    driver's progress bar (which leaves compile time out of its rate)."""

    def __init__(self):
        self.done = 0
        self.skipped = 0
        self.compile_s = 0.0

    def add(self, n: int, skipped: bool, compile_s: float = 0.0) -> None:
        self.done += n
        self.skipped += int(skipped)
        self.compile_s += compile_s

    def get(self) -> tuple[int, int, float]:
        return self.done, self.skipped, self.compile_s


def _reporter(counter):
    """A worker's progress callback (n, skipped): counts to the counter actor, with the compile time this worker
    spent since its last report."""
    from .jit import compile_clock

    clock = compile_clock()
    last = [clock.seconds]

    def report(n: int, skipped: bool) -> None:
        now = clock.seconds
        counter.add.remote(n, skipped, now - last[0])
        last[0] = now

    return report


class _Tally:
    """The driver's side of a _Counter: `poll()` moves the progress bar by what the workers did since the last poll;
    their compile seconds count once per `slots` workers compiling side by side."""

    def __init__(self, ray, progress: Progress, slots: int):
        self.ray = ray
        self.progress = progress
        self.slots = max(1, slots or int(ray.cluster_resources().get("CPU", 1)))  # slots=0: a cluster's CPUs
        self.counter = ray.remote(num_cpus=0)(_Counter).remote()
        self.seen = (0, 0, 0.0)

    def poll(self) -> None:
        now = self.ray.get(self.counter.get.remote())
        done, skipped, compile_s = (a - b for a, b in zip(now, self.seen))
        self.seen = now
        self.progress(done, skipped, compile_s / self.slots)


def _shard_task(recipe_dict: dict, source_spec: str, sam: dict | None, segmenters: list, seed: int, shard: int,
                indices: list[int], out: str, counter):
    """Ray task: make one shard; returns (ShardInfo dict, skipped dicts, stage seconds, node id)."""
    import cv2
    import ray

    from .recipe import recipe_from_dict

    cv2.setNumThreads(1)
    recipe = recipe_from_dict(recipe_dict)
    source = _worker_source(source_spec, tuple(recipe.size), sam, segmenters)
    timings = Timings()
    info, skips = write_shard(recipe, source, seed, shard, indices, out,
                              progress=_reporter(counter), timings=timings)
    return info.to_dict(), [s.to_dict() for s in skips], timings.seconds, ray.get_runtime_context().get_node_id()


# --- GPU workers ------------------------------------------------------------------------------------------------
# With a CUDA device every shard goes to a GPU worker: a Ray actor holding 1 CPU and 1/k of a GPU (k workers per
# GPU, --gpu-workers), which keeps its CUDA context and the loaded extension across shards and renders
# RENDER_BATCH samples per launch. Ray gives each actor its GPU through CUDA_VISIBLE_DEVICES, so "cuda" in the
# actor is its GPU. No shard runs on the CPU kernels beside them: the bytes of a run come from one kind of device.
# A worker that dies mid-shard is restarted by Ray and the shard is given to a worker again (TASK_RETRIES times).

# Default k: per sample the CPU stages (source decode, compose, the exact renderer's plan, PNG/QOI/zstd encode, LMDB
# write) take longer than the GPU render, so one worker per GPU would leave it idle most of the time; k workers
# share each GPU (1/k of it each, Ray's fractional GPUs): the cluster's CPUs per GPU, at most MAX_GPU_WORKERS (a
# CUDA context and a batch take about 1 GB of GPU memory per worker). Not measured on a GPU yet.
MAX_GPU_WORKERS = 8


def default_gpu_workers(cpus: float, gpus: float) -> int:
    """GPU workers per GPU when --gpu-workers is not given: CPUs per GPU, between 1 and MAX_GPU_WORKERS."""
    if gpus <= 0:
        return 1
    return int(max(1, min(MAX_GPU_WORKERS, cpus // gpus)))


def _local_gpus(address: str | None, device: str) -> int | None:
    """GPUs to declare to a local Ray started for a run on `device` (None: a cluster's, or Ray's detection)."""
    if address is not None or device == "cpu":
        return None
    import torch

    return torch.cuda.device_count()


def _gpu_share(gpu_workers: int | None, cpus: float, gpus: float) -> tuple[int, float]:
    """(workers per GPU, the fraction of a GPU each holds), rounded to Ray's resolution for fractional
    resources."""
    per_gpu = gpu_workers or default_gpu_workers(cpus, gpus)
    return per_gpu, round(1.0 / per_gpu, 4)


def _run_shards_on_gpus(recipe: Recipe, source_spec: str, sam: dict | None, sam_actors: int | None, seed: int,
                        shards: list[tuple[int, range]], out: Path, workers: int, address: str | None,
                        progress: "Progress", timings: Timings, finished, gpu_workers: int | None, kernels: str,
                        extra: dict) -> None:
    ray = _start_ray(workers, address, _local_gpus(address, kernels))
    try:
        resources = ray.cluster_resources()
        segmenters = _sam_actors(ray, sam, sam_actors)
        gpus = resources.get("GPU", 0.0) - (len(segmenters) if resources.get("GPU", 0.0) else 0)
        cpus = resources.get("CPU", 0.0)
        if gpus <= 0:
            raise RunError("--device cuda: the Ray cluster has no GPU left for the render workers "
                           f"({resources.get('GPU', 0.0):g} GPUs, {len(segmenters)} held by SAM actors)")
        per_gpu, share = _gpu_share(gpu_workers, cpus, gpus)
        count = max(1, min(int(gpus * per_gpu + 1e-9), int(cpus), len(shards)))
        extra["gpu_workers"] = {"count": count, "per_gpu": per_gpu, "gpu_share": share}
        log.info("%d GPU workers, %g of a GPU each (%g GPUs, %g CPUs)", count, share, gpus, cpus)
        tally = _Tally(ray, progress, count)
        counter = tally.counter
        actor = ray.remote(num_cpus=1, num_gpus=share, max_restarts=TASK_RETRIES)(_GpuShardWorker)
        pool = [actor.remote(kernels) for _ in range(count)]
        recipe_dict = recipe.to_dict()

        def submit(job, worker):
            shard, indices = job
            return worker.make_shard.remote(recipe_dict, source_spec, sam, segmenters, seed, shard, list(indices),
                                            str(out.resolve()), counter)

        def done(job, result):
            info, skips, seconds, node, assigned = result
            for stage, value in seconds.items():
                timings.seconds[stage] = timings.seconds.get(stage, 0.0) + value
            finished(job[0], ShardInfo.from_dict(info), skips, node, assigned)

        map_tasks(ray, shards, submit, done, tally, pool=pool, label=lambda job: f"shard {job[0]}")
    finally:
        if address is None:
            ray.shutdown()


class _GpuShardWorker:
    """Ray actor holding 1/k of a GPU: makes whole shards with the kernels on its GPU, RENDER_BATCH samples per
    launch. `kernels` is "cuda" (the GPU Ray assigned it) or, on machines without a GPU, "cpu" (run_generate's
    internal switch: the same actors, resources and batches with the numba kernels)."""

    def __init__(self, kernels: str):
        import cv2

        cv2.setNumThreads(1)
        self.kernels = kernels
        if kernels != "cpu":
            from .cuda import check_device

            check_device(kernels)  # loads the extension now: a broken build fails at start, not mid-shard

    def make_shard(self, recipe_dict: dict, source_spec: str, sam: dict | None, segmenters: list, seed: int,
                   shard: int, indices: list[int], out: str, counter):
        """One shard; returns (ShardInfo dict, skipped dicts, stage seconds, node id, {"resources": the actor's
        Ray resources, "gpu_ids": its GPU ids})."""
        import ray

        from .recipe import recipe_from_dict

        recipe = recipe_from_dict(recipe_dict)
        source = _worker_source(source_spec, tuple(recipe.size), sam, segmenters)
        timings = Timings()
        info, skips = write_shard(recipe, source, seed, shard, indices, out,
                                  progress=_reporter(counter), timings=timings,
                                  device=self.kernels, batch=RENDER_BATCH)
        context = ray.get_runtime_context()
        assigned = {"resources": context.get_assigned_resources(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
        return info.to_dict(), [s.to_dict() for s in skips], timings.seconds, context.get_node_id(), assigned


_SOURCES: dict = {}


def _worker_source(spec: str, size: tuple[int, int], sam: dict | None, segmenters: list):
    # one source per worker process and spec: sources cache decoded photos, their segmentation and SAM's model
    key = (spec, size, tuple(sorted((sam or {}).items())), len(segmenters))
    if key not in _SOURCES:
        remote = _RemoteSegmenter(segmenters, sam["model_type"]) if segmenters else None
        _SOURCES[key] = open_source(spec, size, None if remote else sam, segmenter=remote)
    return _SOURCES[key]


def _sam_actors(ray, sam: dict | None, count: int | None) -> list:
    """Actors holding SAM's model: `count` of them, or one per GPU of the cluster (none without GPUs)."""
    if sam is None:
        return []
    gpus = int(ray.cluster_resources().get("GPU", 0))
    count = gpus if count is None else count
    if count <= 0:
        return []
    actor = ray.remote(num_cpus=0, num_gpus=1 if gpus else 0, max_restarts=TASK_RETRIES)(_SegmenterActor)
    return [actor.remote(sam) for _ in range(count)]


class _SegmenterActor:
    """Ray actor: loads SAM once (on its GPU when it has one) and segments the images tasks send it."""

    def __init__(self, sam: dict):
        from .segment.sam import SamSegmenter

        self.segmenter = SamSegmenter(**sam)
        self.segmenter.model  # load now: a bad checkpoint fails at start, not on the first image

    def segment(self, image):
        return self.segmenter(image)


class _RemoteSegmenter:
    """Callable image -> label map that sends the image to one of the SAM actors. Which actor does not change
    the result (same model, same settings), so the choice only spreads the load."""

    def __init__(self, actors: list, model_type: str):
        self.actors = actors
        self.model_type = model_type
        self._next = 0

    def __call__(self, image):
        import ray

        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        return ray.get(actor.segment.remote(image))
