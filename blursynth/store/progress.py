"""The progress bar of a long command: items done, skipped, rate and ETA, honest on a first run.

A first run compiles numba's kernels (about a minute, `blursynth.jit`). The bar says so while it happens, and the
compile time is taken out of its clock, so the rate and ETA are those of the work: a 100k-sample run does not
promise hours more because its first sample took a minute.
"""
from __future__ import annotations

from ..jit import compile_clock, uncached

COMPILING = "compiling kernels, first run only"


def stage_shares(stage_seconds: dict[str, float]) -> str:
    """A run summary's line: each stage's share of the time the stages took, in percent."""
    total = sum(stage_seconds.values()) or 1.0
    return "time per stage: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in stage_seconds.items())


class Progress:
    """tqdm over `total` items with a running count of skipped ones.

    Args:
        total: items the command will do (samples, input frames, windows).
        enabled: False draws nothing (``--no-progress``); the calls still count skips.
        unit: the item's name in the bar.
        kernels: module prefixes of the numba kernels the command calls (e.g. ``("blursynth.render",)``); when
            some have no disk-cache entry yet the bar starts with "compiling kernels, first run only".

    Call ``progress(n, skipped, compile_s)`` as items finish: `compile_s` is compile time spent elsewhere (Ray
    workers report theirs) in wall seconds of this run; compile time in this process is measured here.
    """

    def __init__(self, total: int, enabled: bool, unit: str = "pair", kernels: tuple[str, ...] = ()):
        self.skipped = 0
        self.bar = None
        self._clock = compile_clock()
        self._compiled = self._clock.seconds
        self._note = False
        if not enabled:
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit=unit, dynamic_ncols=True, smoothing=0.1)
        if kernels and uncached(kernels):
            self._set_note(True)
        self._clock.on_start = lambda: self._set_note(True)

    def __call__(self, n: int, skipped: bool | int, compile_s: float = 0.0) -> None:
        if skipped:
            self.skipped += int(skipped)
        if self.bar is None:
            return
        compiled = self._clock.seconds
        pause = compiled - self._compiled + max(compile_s, 0.0)
        self._compiled = compiled
        pause = min(pause, self.bar._time() - self.bar.start_t)  # reports from workers can only pause what has run
        if pause > 0:
            # tqdm's rate and ETA come from start_t (average) and last_print_t (its moving average's step):
            # moving both forward by the compile time leaves that time out of both
            self.bar.start_t += pause
            self.bar.last_print_t += pause
        if self._note and not self._clock.compiling and n > 0:
            self._set_note(False)
        if skipped:
            self.bar.set_postfix(skipped=self.skipped, refresh=False)
        self.bar.update(min(n, self.bar.total - self.bar.n))

    def close(self) -> None:
        if self._clock.on_start is not None:
            self._clock.on_start = None
        if self.bar is not None:
            self.bar.close()

    def _set_note(self, on: bool) -> None:
        if self.bar is not None and on != self._note:
            self._note = on
            self.bar.set_description_str(COMPILING if on else "")
