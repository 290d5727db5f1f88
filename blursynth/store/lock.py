"""One writer per output directory: an exclusive lock taken before any work and held until the command ends.

``RunLock(OUT)`` locks ``OUT/.blursynth.lock`` with ``flock(LOCK_EX | LOCK_NB)``: the kernel drops a flock when
its holder dies, however it dies, so a dead holder's lock is free and the next writer takes it over. After
locking, the holder writes who it is into the file (JSON: host, pid, since (ISO 8601 UTC), command), so a second
writer's ``RunLockedError`` names the holder. The file is removed on release; one left by a killed process is
harmless (nobody holds its flock) and is reused.

Where the file system rejects flock (``ENOLCK``, ``EOPNOTSUPP``, ...: NFSv3 without a lock manager, some FUSE
mounts) the lock is the file itself, created with ``O_CREAT | O_EXCL``. A holder on this host whose process no
longer runs is stale: its file is renamed away and the lock created again, so of two writers taking it over at
once only one wins. A holder on another host cannot be checked from here: it is reported as busy, with the file
to remove if that host's process is really gone.

What each file system guarantees (network file systems in particular) is in the README, "One writer per output
directory".
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import DiskFullError, RunLockedError, StoreError

log = logging.getLogger(__name__)

LOCK_NAME = ".blursynth.lock"

# flock errors that mean "this file system has no (working) flock", not "someone holds it"
_NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL})
_TRIES = 8
_READ_WAIT_S = 1.0  # a holder writes its info right after locking; wait this long for it to appear


class RunLock:
    """Exclusive lock on an output directory; see the module docstring.

    Use as a context manager (entering takes it unless ``acquire`` already did; leaving releases it)::

        with RunLock(out, command="blursynth generate ..."):
            ...  # the only writer of `out`

    Args:
        out: the directory being written; created (with parents) when missing, and removed again on release
            when this lock created it and it is still empty.
        command: what the holder runs, shown to a second writer (default: this process's command line).
        path: the lock file (default ``out / LOCK_NAME``); for outputs renamed into place at the end (export),
            a file beside ``out``.
    Raises (from ``acquire`` / entering):
        RunLockedError: another live process holds it (the message names host, pid, since and command).
        StoreError: ``out`` or the lock file cannot be created (the message names the path and the reason).
    """

    def __init__(self, out: str | os.PathLike, command: str = "", path: str | os.PathLike | None = None):
        self.out = Path(out)
        self.path = Path(path) if path is not None else self.out / LOCK_NAME
        self.command = command or shlex.join(sys.argv)
        self.mode: str | None = None  # "flock" or "file" while held
        self._fd: int | None = None
        self._info: dict | None = None
        self._made_dir = False
        self._no_flock = False  # set when the file system rejects flock

    def __enter__(self) -> "RunLock":
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self.mode is not None

    def acquire(self) -> "RunLock":
        if self.held:
            raise RuntimeError(f"{self.path}: already held by this RunLock")
        for _ in range(_TRIES):
            self._make_dir()
            try:
                if not self._no_flock and self._try_flock():
                    return self
                if self._no_flock and self._try_file():
                    return self
            except FileNotFoundError:
                continue  # the directory went away under us (a holder that had made it released it): again
        raise RunLockedError(f"{self.out}: could not take the write lock {self.path} in {_TRIES} tries "
                             "(other processes keep taking and releasing it); try again")

    def release(self) -> None:
        if self.mode == "flock":
            # unlink while still holding it: a process that opened the old file finds it replaced after it locks
            # (acquire checks the inode) and tries again
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._fd)
        elif self.mode == "file":
            if _read_info(self.path) == self._info:  # never remove a lock someone else took over
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
        self.mode, self._fd, self._info = None, None, None
        if self._made_dir:
            self._made_dir = False
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only succeeds while empty

    # --- flock ---------------------------------------------------------------------------------------------------

    def _try_flock(self) -> bool:
        """True when locked; False to try again (the file was replaced meanwhile, or the file system rejects
        flock: then _no_flock is set). Raises RunLockedError when another process holds it."""
        try:
            fd, created = self._open(os.O_RDWR | os.O_CREAT | os.O_EXCL), True
        except FileExistsError:
            fd, created = self._open(os.O_RDWR), False
        try:
            _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_info_fd(fd, wait=True)
            os.close(fd)
            raise RunLockedError(_busy_message(self.out, self.path, holder, local_locks=True)) from None
        except OSError as exc:
            os.close(fd)
            if created:  # the fallback's lock is the file's existence: an empty one would block everyone
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            if exc.errno in _NO_FLOCK:
                log.info("%s: flock not supported here (%s); using an exclusive lock file", self.path,
                         os.strerror(exc.errno))
                self._no_flock = True
                return False
            raise StoreError(f"{self.out}: cannot lock {self.path}: {exc.strerror or exc}") from exc
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed (or replaced) the file between our open and our lock
            os.close(fd)
            return False
        previous = _read_info_fd(fd, wait=False)
        if previous is not None and previous.get("mode") == "file" and not _is_stale(previous):
            # a holder on a host where flock does not work holds it by the file's existence
            os.close(fd)
            raise RunLockedError(_busy_message(self.out, self.path, previous, local_locks=False))
        if previous is not None:  # a clean release removes the file: its writer was killed or crashed
            elsewhere = previous.get("host") != socket.gethostname()
            log.warning("%s: taking over the lock of pid %s on %s (since %s), which has ended%s", self.out,
                        previous.get("pid"), previous.get("host"), previous.get("since"),
                        " or whose locks this host cannot see (a file system whose locks are local to each host, "
                        "such as NFS mounted with nolock: then both are writing; stop one)" if elsewhere else "")
        self._info = _holder_info(self.command, "flock")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(self._info).encode(), 0)
            os.fsync(fd)  # so that a second writer on another NFS client can read who holds it
        except OSError as exc:
            os.close(fd)
            raise self._write_error(exc) from exc
        self._fd, self.mode = fd, "flock"
        return True

    # --- exclusive lock file (no flock) ------------------------------------------------------------------------

    def _try_file(self) -> bool:
        """True when the lock file was created by us. Raises RunLockedError for a live or unverifiable holder;
        False after taking over a stale one (the caller tries again)."""
        info = _holder_info(self.command, "file")
        try:
            fd = self._open(os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            holder = _read_info(self.path, wait=True)
            if holder is None and not self.path.exists():
                return False  # removed meanwhile: try again
            if holder is None or not _is_stale(holder):
                raise RunLockedError(_busy_message(self.out, self.path, holder, local_locks=False)) from None
            self._take_over(holder)
            return False
        try:
            os.write(fd, json.dumps(info).encode())
            os.fsync(fd)
        except OSError as exc:
            os.unlink(self.path)
            raise self._write_error(exc) from exc
        finally:
            os.close(fd)
        self._info, self.mode = info, "file"
        return True

    def _take_over(self, stale: dict) -> None:
        """Move a stale lock file away, unless another writer replaced it by its own meanwhile."""
        aside = self.path.with_name(f"{self.path.name}.stale-{socket.gethostname()}-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another writer moved it first
        moved = _read_info(aside)
        if moved != stale:
            # we moved a fresh lock of a writer that took over before us: put it back (link fails if a third
            # writer created one meanwhile; then that one stands and ours is dropped)
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            os.unlink(aside)
            raise RunLockedError(_busy_message(self.out, self.path, moved, local_locks=False))
        log.warning("%s: taking over the stale lock of pid %s on %s (since %s; that process has ended)", self.out,
                    stale.get("pid"), stale.get("host"), stale.get("since"))
        os.unlink(aside)

    # --- helpers ----------------------------------------------------------------------------------------------

    def _make_dir(self) -> None:
        target = self.path.parent
        if self.out.exists() and not self.out.is_dir():
            raise StoreError(f"--out {self.out} exists and is not a directory")
        try:
            if not target.is_dir():
                target.mkdir(parents=True)
                self._made_dir = self._made_dir or target == self.out
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"--out {self.out} is not writable: {exc.strerror or exc}") from exc

    def _write_error(self, exc: OSError) -> StoreError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(self.path.parent).free
            return DiskFullError(f"{self.out}: the disk is full ({free / 1e6:.1f} MB free on its file system), too "
                                 f"full to write the lock file {self.path.name}; free some space, then run again")
        return StoreError(f"{self.out}: cannot write the lock file {self.path}: {exc.strerror or exc}")

    def _open(self, flags: int) -> int:
        try:
            return os.open(self.path, flags | os.O_CLOEXEC, 0o644)
        except (FileNotFoundError, FileExistsError):
            raise
        except OSError as exc:
            raise StoreError(f"--out {self.out} is not writable: cannot create {self.path.name}: "
                             f"{exc.strerror or exc}") from exc


def locks_new_output(param: str):
    """Decorator for a function that makes a new directory, its argument `param`, under a temporary name and
    renames it into place when complete (store/export.py): it runs holding a RunLock on a hidden file beside
    that directory, ``.NAME.blursynth.lock`` (the directory does not exist yet, and the function removes and
    recreates its temporary one), so a second writer of the same output gets RunLockedError instead of racing
    the first one on the temporary directory."""

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            out = Path(signature.bind(*args, **kwargs).arguments[param])
            with RunLock(out, path=new_output_lock_path(out)):
                return fn(*args, **kwargs)

        return locked

    return decorate


def new_output_lock_path(out: str | os.PathLike) -> Path:
    """The lock file of a directory made by a `locks_new_output` function: ``.NAME.blursynth.lock`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}{LOCK_NAME}"


def _flock(fd: int, operation: int) -> None:
    # one indirection, so that tests can stand in for a file system without flock
    fcntl.flock(fd, operation)


def _holder_info(command: str, mode: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_ticks(os.getpid()),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command, "mode": mode,
            "token": os.urandom(8).hex()}


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid, it tells a
    process apart from a later one that reused the pid. None where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _is_stale(holder: dict) -> bool:
    """True for a holder on this host whose process has ended (a holder elsewhere cannot be checked: False)."""
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    start = holder.get("start")
    return start is not None and _start_ticks(pid) not in (None, start)


def _read_info_fd(fd: int, wait: bool) -> dict | None:
    deadline = time.monotonic() + (_READ_WAIT_S if wait else 0.0)
    while True:
        try:
            info = json.loads(os.pread(fd, 1 << 16, 0).decode())
            if isinstance(info, dict):
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _read_info(path: Path, wait: bool = False) -> dict | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_info_fd(fd, wait)
    finally:
        os.close(fd)


def _busy_message(out: Path, path: Path, holder: dict | None, local_locks: bool) -> str:
    if holder is None:
        text = f"{out} is being written by another process (its lock file {path} names no holder yet)"
    else:
        command = f" (command: {holder['command']})" if holder.get("command") else ""
        text = (f"{out} is being written by pid {holder.get('pid')} on host {holder.get('host')} since "
                f"{holder.get('since')}{command}")
    text += "; wait for it, or stop that process"
    if not local_locks and (holder is None or holder.get("host") != socket.gethostname()):
        text += (f". This file system has no working locks, so the lock is the file itself: if that process is "
                 f"really gone, remove {path} and run again")
    return text
