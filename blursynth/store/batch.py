"""LMDB writes in batched transactions that grow the map when it fills up, and that turn a full disk into
``DiskFullError``. Shared by the shard writer (``shard.ShardWriter``) and the BasicSR export writer.

An LMDB environment has a fixed map size; a put or commit beyond it fails with ``MDB_MAP_FULL``. Instead of
failing, ``BatchWriter`` aborts the transaction, enlarges the map (``env.set_mapsize``) and replays the
batch's puts, which it keeps until they are committed: no record is lost and the committed data is the same
as with a map that was large enough from the start. Growing the map costs no disk space (the data file grows
as pages are written), so a modest initial map is enough.

A full disk shows in several guises: ``OSError`` with errno ENOSPC (or EDQUOT), an ``lmdb.Error`` naming
ENOSPC, or, on tmpfs, a short write that LMDB reports as ``Input/output error``. ``disk_full_error`` calls
an error a full disk when its errno says so, or when it is an ``lmdb.Error`` while the free space left is
below what the failed write needed (plus a margin); anything else is not a full disk and propagates as is.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

import lmdb

from .errors import DiskFullError

log = logging.getLogger(__name__)

INITIAL_MAP_BYTES = 1 << 30
RESUME_ADVICE = "free space, then run the same command with --resume"
# Free space below which a failed LMDB write is taken for a full disk, beyond the bytes it was writing:
# B-tree and overflow-page overhead of the batch, and the metadata pages of the commit.
_DISK_MARGIN_BYTES = 1 << 20
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})  # what an OSError of a full disk says
_MAX_GROWTHS = 64  # doubling from one page reaches far beyond any address space long before this


class BatchWriter:
    """One LMDB environment opened for writing, filled in batched write transactions.

    Args:
        path: environment directory (created).
        directory: what a ``DiskFullError`` names as the place to free space (the output directory).
        map_size: initial map size in bytes; it grows as needed.
        lock: use LMDB's lock file. A writer that is the only user of its environment can do without one,
            which also spares it the new memory-mapped lock file that a full tmpfs answers with SIGBUS; with a
            lock file, too little free space is a ``DiskFullError`` before opening.
        sync: fsync on each commit (False: only ``sync()`` flushes, as a writer that renames when done wants).
        advice: what the ``DiskFullError`` message tells the user to do.

    ``put`` adds to the open transaction; ``commit`` ends it. Both may raise ``DiskFullError``; after any
    error the writer is unusable and ``abort`` (always safe) closes it.
    """

    def __init__(self, path: str | os.PathLike, directory: str | os.PathLike, map_size: int = INITIAL_MAP_BYTES,
                 lock: bool = True, sync: bool = True, advice: str = RESUME_ADVICE):
        self.path = Path(path)
        self.directory = Path(directory)
        self.advice = advice
        self._txn: lmdb.Transaction | None = None
        self._pending: list[tuple[bytes, bytes]] = []
        self.pending_bytes = 0
        free = free_bytes(self.directory)
        if lock and free is not None and free < _DISK_MARGIN_BYTES:
            # LMDB initialises a new lock file through a shared memory map: on a full tmpfs that is a SIGBUS
            raise _disk_full(self.directory, free, f"too little to open {self.path.name}", advice)
        try:
            self.env = lmdb.open(str(self.path), map_size=max(int(map_size), 1), subdir=True, lock=lock,
                                 sync=sync, metasync=sync, meminit=False, max_dbs=0)
        except (OSError, lmdb.Error) as exc:
            raise self._classify(exc) from exc

    def put(self, key: bytes, value: bytes | bytearray | memoryview) -> None:
        """Add one record to the current batch (opening a transaction if none is open)."""
        # The batch is kept for a replay after growing the map: hold bytes that cannot change under us.
        value = value if isinstance(value, bytes) else bytes(value)
        self._pending.append((key, value))
        self.pending_bytes += len(value)
        if self._txn is None:
            self._txn = self._begin()
        self._grow_on_full(lambda: self._txn.put(key, value), self._replay)

    def commit(self) -> None:
        """Commit the current batch, if any."""
        if self._txn is None:
            return

        def replay_and_commit():
            self._replay()
            self._txn.commit()

        self._grow_on_full(lambda: self._txn.commit(), replay_and_commit)
        self._txn = None
        self._pending.clear()
        self.pending_bytes = 0

    def sync(self) -> None:
        """Flush committed data to disk (fsync)."""
        try:
            self.env.sync(True)
        except (OSError, lmdb.Error) as exc:
            raise self._classify(exc) from exc

    def close(self) -> None:
        """Commit what is pending, then close the environment (no sync: call ``sync`` first to flush)."""
        self.commit()
        self.env.close()

    def abort(self) -> None:
        """Drop the current batch and close the environment. Safe to call more than once."""
        self._drop_txn()
        self._pending.clear()
        self.pending_bytes = 0
        self.env.close()

    def _grow_on_full(self, operation, after_growing) -> None:
        """Run ``operation`` on the current batch. On a full map: grow it, then run ``after_growing`` (which
        replays the batch and redoes the operation), again until it fits. On a full disk: ``DiskFullError``."""
        step = operation
        for _ in range(_MAX_GROWTHS):
            try:
                step()
                return
            except lmdb.MapFullError:
                self._grow()
                step = after_growing
            except (OSError, lmdb.Error) as exc:
                raise self._classify(exc) from exc
        raise lmdb.MapFullError(f"{self.path}: the map did not fit the batch after {_MAX_GROWTHS} doublings")

    def _grow(self) -> None:
        # A failed put leaves its transaction unusable and a failed commit has already aborted it; either way
        # the map can only be resized with no transaction open.
        self._drop_txn()
        info, stat = self.env.info(), self.env.stat()
        used = (info["last_pgno"] + 1) * stat["psize"]
        new = max(2 * info["map_size"], used + 2 * self.pending_bytes + _DISK_MARGIN_BYTES)
        new = -(-new // stat["psize"]) * stat["psize"]
        log.info("%s: LMDB map full at %d bytes, growing it to %d", self.path, info["map_size"], new)
        self.env.set_mapsize(new)

    def _replay(self) -> None:
        self._txn = self._begin()
        for key, value in self._pending:
            self._txn.put(key, value)

    def _begin(self) -> lmdb.Transaction:
        try:
            return self.env.begin(write=True)
        except (OSError, lmdb.Error) as exc:
            raise self._classify(exc) from exc

    def _drop_txn(self) -> None:
        if self._txn is not None:
            try:
                self._txn.abort()
            except lmdb.Error:  # already aborted by a failed commit
                pass
            self._txn = None

    def _classify(self, exc: BaseException) -> BaseException:
        return disk_full_error(exc, self.directory, self.pending_bytes, self.advice) or exc


@contextlib.contextmanager
def disk_full_raised(directory: str | os.PathLike, advice: str = RESUME_ADVICE):
    """Inside the block, an ``OSError`` or ``lmdb.Error`` that comes from a full disk (``disk_full_error``) is
    raised as a ``DiskFullError`` (from it); anything else passes as it is."""
    try:
        yield
    except (OSError, lmdb.Error) as exc:
        full = disk_full_error(exc, directory, advice=advice)
        if full is None:
            raise
        raise full from exc


def disk_full_error(exc: BaseException, directory: str | os.PathLike, needed_bytes: int = 0,
                    advice: str = RESUME_ADVICE) -> DiskFullError | None:
    """A ``DiskFullError`` for ``exc`` if it comes from a full disk, else None.

    Args:
        exc: the error a write raised.
        directory: where the write went; the message names it and its free space.
        needed_bytes: bytes the failed write was writing; an ``lmdb.Error`` counts as a full disk when the free
            space is below this plus a margin.
        advice: what the message tells the user to do.
    """
    directory = Path(directory)
    free = free_bytes(directory)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        full = True
    elif isinstance(exc, lmdb.DiskError):  # py-lmdb's name for ENOSPC
        full = True
    elif isinstance(exc, lmdb.Error):
        full = "No space left" in str(exc) or (free is not None and free < needed_bytes + _DISK_MARGIN_BYTES)
    else:
        full = False
    return _disk_full(directory, free, _one_line(exc), advice) if full else None


def _disk_full(directory: Path, free: int | None, cause: str, advice: str) -> DiskFullError:
    left = "unknown" if free is None else f"{free / 1e6:.1f} MB"
    return DiskFullError(f"disk full writing to {directory} ({left} free; {cause}): {advice}")


def free_bytes(directory: Path) -> int | None:
    """Free bytes on the file system of `directory`, or of its nearest existing parent; None if unknown."""
    for d in (directory, *directory.parents):
        try:
            return shutil.disk_usage(d).free
        except OSError:
            continue
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
