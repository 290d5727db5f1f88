"""Keep freed memory in the process (glibc), for commands that allocate and free the same large tensors over and
over: ``blursynth train`` and ``blursynth evaluate``.

By default glibc serves every allocation of 32 MiB or more (less at first; its threshold adapts up to that) with a
fresh ``mmap`` and returns it to the kernel with ``munmap`` on free, and gives back the top of its heap once more
than its trim threshold is free there. A full-frame activation of the model (16-32 channels x 1280x720 float32:
59-118 MB) is therefore mapped, page-faulted page by page, and unmapped again in every layer of every image:
``blursynth evaluate`` spent about 45 % of its CPU time in the kernel doing that. Raising both thresholds makes
glibc keep freed blocks for the next allocation instead; the cost is that the process keeps its peak heap
until it exits, which these commands reach again at the next image or step anyway.
"""
from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

# mallopt's parameter numbers (glibc <malloc.h>)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# The largest value mallopt's int argument holds (2 GiB - 1): blocks up to 2 GiB (a 4K frame at 64 channels
# float32 is 2.1 GB) come from the heap and are reused; the heap's top is never trimmed below 2 GiB of free space.
KEEP_BYTES = 2**31 - 1

# each parameter and the environment settings with which a user chooses it himself (left as they are)
_PARAMETERS = {
    "mmap_threshold": (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
    "trim_threshold": (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"),
}


def keep_freed_memory() -> dict[str, int]:
    """Raise glibc's mmap and trim thresholds to ``KEEP_BYTES`` (``mallopt``), for this process and the processes
    it forks afterwards.

    Returns the thresholds set, by name ("mmap_threshold", "trim_threshold"): empty on a C library other than
    glibc (nothing is done); a threshold the user set (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
    ``glibc.malloc.*`` in ``GLIBC_TUNABLES``) is left as it is and not in the result.
    """
    wanted = malloc_settings(_libc_version(), os.environ)
    if not wanted:
        return {}
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = {}
    for name, value in wanted.items():
        if mallopt(_PARAMETERS[name][0], value) == 1:
            done[name] = value
        else:
            log.debug("mallopt refused %s = %d", name, value)
    return done


def malloc_settings(libc_version: str | None, environ: dict[str, str]) -> dict[str, int]:
    """The thresholds ``keep_freed_memory`` sets for a C library ``libc_version`` (``os.confstr``'s
    "CS_GNU_LIBC_VERSION", e.g. "glibc 2.36"; None elsewhere) under the environment ``environ``."""
    if not libc_version or not libc_version.startswith("glibc "):
        return {}
    tunables = environ.get("GLIBC_TUNABLES", "")
    return {name: KEEP_BYTES for name, (_, env) in _PARAMETERS.items()
            if env not in environ and f"glibc.malloc.{name}" not in tunables}


def _libc_version() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
