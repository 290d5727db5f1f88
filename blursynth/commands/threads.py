"""How the command's worker threads wait: OpenMP threads sleep between parallel regions instead of spinning.

numba's parallel kernels (its ``omp`` threading layer) and torch's CPU operators run on GNU OpenMP (libgomp). When
a parallel region ends, libgomp's idle threads spin for up to ``GOMP_SPINCOUNT`` iterations (300 000 by default,
a fraction of a millisecond to milliseconds) before they sleep, so that the next region starts without a wake-up.
That pays when nothing else wants the cores. In blursynth something else always does: the video and events
commands compute the next interval's optical flow in a prefetch thread (OpenCV) beside short numba kernels, and
``train`` runs its DataLoader workers beside torch's operators. A spinning thread takes a core from them, and on a
machine shared with other jobs it takes it from those too. ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep at
once. ``benchmarks/threads.py`` measures each command with and without it, on an idle machine and beside other
processes (results/threads.json); the README's Performance section gives the figures.

The setting only counts if it is in the environment before libgomp is loaded: numba loads it at the first
parallel kernel, torch when it is imported. ``main`` (commands/__init__.py) calls `wait_passively` before any
command runs, when only click and the option helpers are imported. A user's own ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` is left as it is. Ray's workers inherit the environment of the process that starts Ray.
"""
from __future__ import annotations

import os
from collections.abc import MutableMapping

# the environment settings with which a user chooses libgomp's waiting himself
USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def wait_passively(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in `environ` unless the user chose a wait policy (``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` set, even empty). Returns whether it was set here."""
    if any(name in environ for name in USER_SETTINGS):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
