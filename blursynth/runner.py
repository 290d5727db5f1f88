"""Run orchestration: check the output directory, plan shards, make them, keep the manifest.

The run is planned as shards of K consecutive sample indices; shard s holds indices [s K, (s + 1) K). A shard
is written under a temporary name and renamed when complete, then recorded in manifest.json (written
atomically after every shard), so an interrupted run keeps every finished shard and `resume` redoes only the
rest. Samples depend on (recipe, seed, index) alone, so the bytes do not depend on how shards are scheduled.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .generate import Timings, write_shard
from .recipe import Recipe
from .sources import open_source
from .store.manifest import Manifest
from .store.shard import is_complete, shard_name

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class RunError(Exception):
    """A run that must not start (bad count, unusable output directory, a different run already there)."""


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
            total = sum(self.stage_seconds.values())
            out.append("time per stage: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in self.stage_seconds.items()))
        return out


def run_generate(recipe: Recipe, source_spec: str, num: int, out: str | Path, seed: int = 0, shard_size: int = 256,
                 resume: bool = False, command: str = "", progress: bool = True) -> RunSummary:
    """Generate `num` samples into `out`; see the module docstring.

    Raises RunError before any work for a bad count, an unwritable or foreign `out`, or a different run there.
    """
    if num < 1:
        raise RunError(f"--num must be at least 1, got {num}")
    if shard_size < 1:
        raise RunError(f"--shard-size must be at least 1, got {shard_size}")
    if seed < 0:
        raise RunError(f"--seed must be non-negative, got {seed}")
    source = open_source(source_spec, recipe.size)
    out = Path(out)
    manifest = Manifest(recipe=recipe.to_dict(), seed=seed, num_requested=num, image_size=list(recipe.size),
                        codec=recipe.output.codec, command=command,
                        extra={"source": source_spec, "shard_size": shard_size})
    manifest = _prepare_out(out, manifest, resume)
    plan = Plan(num, shard_size)
    done = {s.name for s in manifest.shards if is_complete(out / s.name)}
    manifest.shards = [s for s in manifest.shards if s.name in done]
    todo = [s for s in range(plan.num_shards) if shard_name(s) not in done]
    remaining = sum(len(plan.indices(s)) for s in todo)
    timings = Timings()
    start = time.perf_counter()
    bar = _Progress(remaining, progress)
    try:
        for shard in todo:
            info, skips = write_shard(recipe, source, seed, shard, plan.indices(shard), out,
                                      progress=bar, timings=timings)
            manifest.add_shard(info)
            kept = [s for s in manifest.skipped if not (plan.indices(shard).start <= s["index"] < plan.indices(shard).stop)]
            manifest.skipped = sorted(kept + [s.to_dict() for s in skips], key=lambda s: s["index"])
            manifest.save(out)
    finally:
        bar.close()
    return RunSummary(out=out, requested=num, written=manifest.num_written, skipped=manifest.skipped_by_reason(),
                      shards_done=len(todo), shards_reused=len(done), seconds=time.perf_counter() - start,
                      bytes=sum(s.nbytes for s in manifest.shards), stage_seconds=timings.seconds)


def _prepare_out(out: Path, manifest: Manifest, resume: bool) -> Manifest:
    """Check `out` and return the manifest to continue (the existing one when resuming the same run)."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".blursynth-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"--out {out} is not writable: {exc.strerror or exc}") from exc
    if (out / MANIFEST).exists():
        try:
            existing = Manifest.load(out)
        except Exception as exc:  # a damaged manifest is not ours to overwrite
            raise RunError(f"--out {out} holds a manifest.json that cannot be read ({exc}); choose another --out") from exc
        if existing.identity() != manifest.identity():
            differ = [k for k, v in existing.identity().items() if manifest.identity()[k] != v]
            raise RunError(f"--out {out} already holds a different run (differs in: {', '.join(differ)}); "
                           "choose another --out or remove it")
        if not resume:
            raise RunError(f"--out {out} already holds this run ({existing.num_written} samples written); "
                           "pass --resume to finish it")
        _clear_stale(out)
        return existing
    foreign = [p.name for p in out.iterdir() if p.name != MANIFEST]
    if foreign:
        raise RunError(f"--out {out} is not empty and holds no blursynth run ({', '.join(sorted(foreign)[:3])}...); "
                       "choose an empty or new directory")
    manifest.save(out)
    return manifest


def _clear_stale(out: Path) -> None:
    for tmp in out.glob("shard-*.lmdb.tmp"):
        log.info("removing partial shard %s", tmp.name)
        shutil.rmtree(tmp, ignore_errors=True)


class _Progress:
    """Progress bar over samples (rate and ETA from tqdm) with a running count of skipped samples."""

    def __init__(self, total: int, enabled: bool):
        self.skipped = 0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="pair", dynamic_ncols=True, smoothing=0.1)

    def __call__(self, n: int, skipped: bool) -> None:
        if self.bar is None:
            return
        self.bar.update(n)
        if skipped:
            self.skipped += 1
            self.bar.set_postfix(skipped=self.skipped)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
