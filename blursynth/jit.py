"""Numba's just-in-time compiles as a run sees them: which kernels still have to compile, and how long it took.

The first run after an install (or after a kernel's source changed) compiles every kernel it calls: about a
minute of one core for `generate`. Numba then keeps them on disk (``cache=True``), and later runs load them in
well under a second. The progress bar says "compiling kernels, first run only" while that happens, and keeps the
compile time out of its rate and ETA (`store.progress.Progress`).

Both functions read numba's own state: the compile event numba triggers for every compile that missed the disk
cache (``numba:compile``), and each cached dispatcher's index file.
"""
from __future__ import annotations

import sys
import threading
import time

import numba
from numba.core import event
from numba.core.registry import CPUDispatcher


def uncached(prefixes: tuple[str, ...]) -> list[str]:
    """Names of the cached numba kernels, in the loaded modules whose names start with one of `prefixes` (e.g.
    ``("blursynth.render",)``), that have no up-to-date entry in numba's disk cache yet: each will compile on its
    first call. Kernels compiled in this process already are not listed."""
    names = []
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(prefixes):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, CPUDispatcher) and value.__module__ == name and not value.overloads \
                    and not _has_cache_entry(value):
                names.append(f"{name}.{attr}")
    return sorted(names)


def _has_cache_entry(dispatcher: CPUDispatcher) -> bool:
    cache = getattr(dispatcher, "_cache", None)
    index_file = getattr(cache, "_cache_file", None)
    if index_file is None:  # not cache=True, or a numba whose internals differ: assume nothing to compile
        return True
    try:
        return bool(index_file._load_index())  # empty for a missing, other-version or stale (source changed) index
    except Exception:  # an unreadable index is recompiled by numba; say so
        return False


class CompileClock:
    """Seconds this process has spent compiling numba kernels (outermost compiles only: a kernel that compiles
    the functions it inlines is counted once). ``compiling`` is true while a compile runs; `on_start` and
    `on_end`, when set, are called as the outermost compile starts and ends (from the compiling thread)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._started = 0.0
        self._seconds = 0.0
        self.on_start = None
        self.on_end = None

    @property
    def seconds(self) -> float:
        with self._lock:
            running = time.perf_counter() - self._started if self._depth else 0.0
            return self._seconds + running

    @property
    def compiling(self) -> bool:
        return self._depth > 0

    def _start(self) -> None:
        with self._lock:
            self._depth += 1
            outermost = self._depth == 1
            if outermost:
                self._started = time.perf_counter()
        if outermost and self.on_start is not None:
            self.on_start()

    def _end(self) -> None:
        with self._lock:
            self._depth -= 1
            outermost = self._depth == 0
            if outermost:
                self._seconds += time.perf_counter() - self._started
        if outermost and self.on_end is not None:
            self.on_end()


class _Listener(event.Listener):
    def __init__(self, clock: CompileClock):
        self.clock = clock

    def on_start(self, ev) -> None:
        self.clock._start()

    def on_end(self, ev) -> None:
        self.clock._end()


_clock: CompileClock | None = None
_clock_lock = threading.Lock()


def compile_clock() -> CompileClock:
    """The process's CompileClock, listening to numba from the first call on."""
    global _clock
    with _clock_lock:
        if _clock is None:
            _clock = CompileClock()
            event.register("numba:compile", _Listener(_clock))
        return _clock


def kernels_may_overlap() -> bool:
    """Whether two threads may run numba's parallel kernels at the same time: true for the omp and tbb
    threading layers; false for workqueue, which is not thread-safe (a second concurrent launch aborts the
    process), and false while no parallel kernel has run yet and the layer is not chosen. The pipelines that
    run a stage in a thread of their own (the video path's flow prefetch, the events command's simulator) ask
    this before they start one."""
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel kernel has run yet: the layer is not chosen
        return False
