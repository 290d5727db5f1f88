"""Errors of the run directory and its shards, each with the exit code the CLI gives it.

The CLI turns each of these into one clear message (no traceback) and its exit code; the codes are part of
the command-line contract (README, "Exit codes"):

===  ==========================================================================================
0    success
1    any other error that names its cause (a bad run directory, a failed check)
2    a usage error (bad flag or recipe field), before any work
3    ``RunLockedError``: another process is writing to this output directory
4    ``DiskFullError``: the disk ran out of space (LMDB maps grow as needed); free space, then ``--resume``
5    ``CorruptRecordError``: a stored record does not match its digest, or a shard is truncated or unreadable
===  ==========================================================================================
"""
from __future__ import annotations

import re

# What torch's DataLoader makes of an exception raised in a worker (torch/_utils.py, ExceptionWrapper.reraise).
_WORKER_WRAPPED = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\s*Original Traceback", re.S)


class StoreError(Exception):
    """Base of the errors below; ``exit_code`` is what the CLI exits with.

    Raised in a torch DataLoader worker, an error reaches the main process as the same type made from the text
    "Caught X in DataLoader worker process N. Original Traceback ...: message"; the message is kept as it was
    (what the CLI shows), and the worker's traceback goes to ``worker_traceback``.
    """

    exit_code = 1

    def __init__(self, message: str = "", *args):
        self.worker_traceback = None
        if isinstance(message, str) and _WORKER_WRAPPED.match(message):
            marker = f"{type(self).__name__}: "
            cut = message.rfind(marker)
            if cut >= 0:
                self.worker_traceback = message
                message = message[cut + len(marker):].strip()
        super().__init__(message, *args)


class RunLockedError(StoreError):
    """Another live process holds the output directory's write lock (the message names host, pid, since)."""

    exit_code = 3


class DiskFullError(StoreError):
    """Writing ran out of disk space. Finished shards are intact; the failed one was removed."""

    exit_code = 4


class CorruptRecordError(StoreError):
    """A record read from a shard does not match the digest stored with it, or the shard is truncated.

    Attributes:
        shard: path of the shard.
        index: the sample index (None when the shard itself cannot be read).
    """

    exit_code = 5

    def __init__(self, message: str, shard: str | None = None, index: int | None = None):
        super().__init__(message)
        self.shard = shard
        self.index = index

    def __reduce__(self):  # survives pickling out of a DataLoader worker with its fields
        return (type(self), (str(self), self.shard, self.index))

