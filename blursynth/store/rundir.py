"""An output directory's lifecycle, shared by `generate`, `video`, `adapt` and `events`.

- `lock_out`: the directory's write lock (store/lock.py), taken before any work;
- `prepare_out`: check the directory and return the manifest to continue (a new run, or the same run resumed);
- `check_complete`: the invariant that manifest.json lists only complete shards;
- `SpaceCheck` and `disk_full_is_clear`: a size estimate against the free space before the work, and a full disk
  mid-run turned into one clear DiskFullError (exit code 4) that says what was kept and how to finish;
- `RunError`: a run that must not start, with the reason.

The progress bar is store/progress.py.
"""
from __future__ import annotations

import logging
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from .batch import DISK_FULL_ERRNOS, free_bytes
from .errors import DiskFullError, RunLockedError, StoreError
from .lock import LOCK_NAME, RunLock
from .manifest import MANIFEST_NAME, Manifest
from .shard import ShardInfo, is_complete

log = logging.getLogger(__name__)

MANIFEST = MANIFEST_NAME

class RunError(Exception):
    """A run that must not start (bad count, unusable output directory, a different run already there)."""




def prepare_out(out: Path, manifest: Manifest, resume: bool) -> Manifest:
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
        clear_stale(out)
        return existing
    foreign = [p.name for p in out.iterdir() if p.name not in (MANIFEST, LOCK_NAME)]
    if foreign:
        raise RunError(f"--out {out} is not empty and holds no blursynth run ({', '.join(sorted(foreign)[:3])}...); "
                       "choose an empty or new directory")
    manifest.save(out)
    return manifest


def clear_stale(out: Path) -> None:
    for tmp in out.glob("shard-*.lmdb.tmp"):
        log.info("removing partial shard %s", tmp.name)
        shutil.rmtree(tmp, ignore_errors=True)


def lock_out(out: Path, command: str = "") -> RunLock:
    """`out`'s write lock (store.lock.RunLock), taken; release it with `with lock_out(out, command): ...`.
    Raises RunLockedError when another process writes there, RunError when `out` cannot be created."""
    lock = RunLock(out, command)
    try:
        return lock.acquire()
    except RunLockedError:
        raise
    except StoreError as exc:
        raise RunError(str(exc)) from exc


def check_complete(out: Path, info: ShardInfo) -> None:
    """Raise RunError unless shard `info` is complete in `out`: call it before listing a shard in the manifest,
    which lists only complete shards. With the run's lock held nothing else renames shards, so this fails only
    when something outside blursynth changed `out` meanwhile."""
    if not is_complete(out / info.name):
        raise RunError(f"{out}: shard {info.name} was reported finished but is not complete on disk (another "
                       "process changed this directory?); manifest.json does not list it; run again with --resume")


# --- disk space -------------------------------------------------------------------------------------------------
# A full disk mid-run ends the run with DiskFullError (exit code 4): the store layer raises it for ENOSPC; an lmdb
# error or an I/O error from a shard write while the disk is (nearly) full is taken as the same thing, since LMDB
# reports a short write as EIO ("mdb_txn_commit: Input/output error"). Before the work, and again after the first
# shard, the run's size is estimated against the free space and a warning logged when it does not fit.

# Stored bytes of blur + sharp per pixel channel (w * h * 3 each), per codec: 320x240 default-recipe pairs measured
# 0.59 (zstd), 0.61 (png), 0.76 (qoi; its blur does not compress), rounded up. Noise and content move these by
# tens of percent: the first shard refines the estimate.
PAIR_RATIO = {"zstd": 0.65, "png": 0.65, "qoi": 0.8}
BLUR_MAP_RATIO = 0.5  # float16 (u_x, u_y, px) through zstd: 0.42 of w * h * 3 measured
LMDB_OVERHEAD = 1.1  # pages and keys beyond the value bytes (ShardInfo.nbytes)
_NEARLY_FULL = 64 << 20
RESUME = "run the same command with --resume: it writes the rest, with the same bytes as an uninterrupted run"


def as_disk_full(exc: BaseException, out: Path, kept: str, shard_bytes: float = 0.0,
                  then: str = RESUME) -> DiskFullError | None:
    """The run-level DiskFullError for `exc` when it means `out`'s disk is full, else None.

    `exc` may be a Ray task error (its cause is looked at). An lmdb.Error or an OSError other than ENOSPC/EDQUOT
    counts when the free space left is under 64 MiB or under two shards (`shard_bytes` each): the failed shard
    was removed, so what it had written is free again. The message names `out`, the free space and what to do:
    `kept` says what was kept ("the 5 finished shards ... are kept"), `then` what to run once space is freed.
    """
    import lmdb

    cause = exc
    ray_exceptions = sys.modules.get("ray.exceptions")  # a Ray task's error wraps the worker's in .cause
    while ray_exceptions is not None and isinstance(cause, ray_exceptions.RayTaskError) and cause.cause is not None:
        cause = cause.cause
    free = free_bytes(out)
    if isinstance(cause, DiskFullError) or (isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS):
        full = True
    else:
        full = (isinstance(cause, (lmdb.Error, OSError)) and not isinstance(cause, lmdb.MapFullError)
                and free is not None and free < max(_NEARLY_FULL, 2 * shard_bytes))
    if not full:
        return None
    where = "its file system" if free is None else f"{format_bytes(free)} free on its file system"
    if not isinstance(cause, DiskFullError):  # the store layer's own message says no more than this one
        kind = type(cause).__name__
        kind = kind if type(cause).__module__ == "builtins" else f"{type(cause).__module__}.{kind}"
        where += f"; the write failed with {kind}: {cause}"
    return DiskFullError(f"{out}: the disk is full ({where}). {kept[:1].upper()}{kept[1:]}. Free some space, then "
                         f"{then}.")


@contextmanager
def disk_full_is_clear(out: Path, kept, space: "SpaceCheck | None" = None, then: str = RESUME):
    """Turn a full disk inside the block into as_disk_full's DiskFullError. kept: callable -> str, asked when
    it happens."""
    try:
        yield
    except Exception as exc:
        full = as_disk_full(exc, out, kept(), space.shard_bytes if space is not None else 0.0, then)
        if full is None:
            raise
        raise full from exc


class SpaceCheck:
    """Warns (logging WARNING) when the rest of a run will not fit in the free space of `out`'s file system: once
    from the first estimate (`start`), once from the first shard this run writes (`shard_done`); only when short.

    Args:
        remaining: samples (or other units) still to write.
    """

    def __init__(self, out: Path, remaining: int):
        self.out = out
        self.remaining = remaining
        self.per_unit = 0.0
        self.shard_bytes = 0.0
        self._refined = False

    def start(self, per_unit: float, basis: str) -> None:
        self.per_unit = per_unit
        self._warn(basis)

    def shard_done(self, units: int, nbytes: int) -> None:
        self.remaining = max(0, self.remaining - units)
        self.shard_bytes = max(self.shard_bytes, nbytes * LMDB_OVERHEAD)
        if not self._refined and units > 0:
            self._refined = True
            self.per_unit = nbytes * LMDB_OVERHEAD / units
            self._warn("from the first shard written")

    def _warn(self, basis: str) -> None:
        need = self.remaining * self.per_unit
        free = free_bytes(self.out)
        if free is not None and need > free:
            log.warning("this run needs about %s more (rough estimate, %s); %s free on %s: it will run out of space "
                        "(free some, or choose another --out; a run stopped by a full disk finishes with --resume)",
                        format_bytes(need), basis, format_bytes(free), self.out)


def estimate_sample_bytes(size: tuple[int, int], codec: str, blur_map: bool, events: bool,
                          shards: list[ShardInfo]) -> tuple[float, str]:
    """(stored bytes per sample, what the estimate rests on) for `SpaceCheck.start`: from a resumed run's finished
    `shards`, else from the image `size` (width, height), `codec` and whether a blur map is stored (events are
    not counted)."""
    count = sum(s.count for s in shards)
    if count:
        return sum(s.nbytes for s in shards) * LMDB_OVERHEAD / count, f"from the {len(shards)} finished shards"
    w, h = size
    pixels = w * h * 3
    per = 2 * pixels * PAIR_RATIO.get(codec, 1.0) + 4096
    if blur_map:
        per += pixels * BLUR_MAP_RATIO
    return per * LMDB_OVERHEAD, f"from the recipe: {w}x{h} {codec}{', events not counted' if events else ''}"


def format_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
