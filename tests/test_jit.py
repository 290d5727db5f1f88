"""blursynth.jit against numba itself: a kernel module written by the test, with its own cache directory, run in
fresh processes (a first run compiles, a second loads from the disk cache)."""
import json
import os
import subprocess
import sys
import textwrap

KERNELS = textwrap.dedent("""
    import numba

    @numba.njit(cache=True)
    def inner(x):
        return x * 2.0

    @numba.njit(cache=True)
    def outer(a):
        s = 0.0
        for v in a:
            s += inner(v)
        return s
""")

PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jitprobe_kernels as k
    from blursynth.jit import compile_clock, uncached

    clock = compile_clock()
    events = []
    clock.on_start = lambda: events.append("start")
    clock.on_end = lambda: events.append("end")
    before = uncached(("jitprobe_",))
    assert not clock.compiling
    value = k.outer(np.arange(4.0))
    print(json.dumps({"before": before, "after": uncached(("jitprobe_",)), "seconds": clock.seconds,
                      "events": events, "value": value}))
""")


def _probe(tmp_path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path))
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_first_run_compiles_and_is_timed_then_the_cache_serves(tmp_path):
    (tmp_path / "jitprobe_kernels.py").write_text(KERNELS)
    first = _probe(tmp_path)
    assert first["before"] == ["jitprobe_kernels.inner", "jitprobe_kernels.outer"]
    assert first["after"] == []  # compiled in this process
    assert first["value"] == 12.0
    assert first["seconds"] > 0.0
    # outer compiles inner inside its own compile: one outermost start/end pair per top-level call
    assert first["events"] == ["start", "end"]

    second = _probe(tmp_path)
    assert second["before"] == []
    assert second["seconds"] == 0.0 and second["events"] == []

    # a changed source invalidates numba's index: uncached again
    (tmp_path / "jitprobe_kernels.py").write_text(KERNELS + "\n# edited\n")
    os.utime(tmp_path / "jitprobe_kernels.py", (1, 1))
    third = _probe(tmp_path)
    assert third["before"] == ["jitprobe_kernels.inner", "jitprobe_kernels.outer"]
    assert third["seconds"] > 0.0


def test_progress_leaves_compile_time_out_of_rate_and_eta(capsys):
    import time

    import numba

    from blursynth.jit import compile_clock
    from blursynth.store.progress import COMPILING, Progress

    progress = Progress(total=10, enabled=True, unit="pair")
    try:
        progress(1, False)
        start_before = progress.bar.start_t
        compiled_before = compile_clock().seconds

        @numba.njit  # a fresh function: a real compile, which numba announces through its compile event
        def fresh(x):
            return x + 1

        assert fresh(1) == 2
        compile_s = compile_clock().seconds - compiled_before
        assert compile_s > 0.01
        assert progress.bar.desc.startswith(COMPILING)  # shown from the compile's start
        progress(1, False)
        assert progress.bar.desc == ""  # cleared when work goes on
        shift = progress.bar.start_t - start_before
        assert abs(shift - compile_s) < 1e-6
        # elapsed as tqdm reports it excludes the compile: far below the compile time itself
        assert progress.bar.format_dict["elapsed"] < compile_s

        # time another process spent compiling (a Ray worker's report) moves the clock too, but never past what
        # has run: elapsed stays >= 0
        time.sleep(0.2)
        before = progress.bar.start_t
        progress(1, 0, compile_s=0.1)
        assert 0.1 - 1e-6 <= progress.bar.start_t - before < 0.11
        progress(1, 2, compile_s=50.0)
        assert 0.0 <= progress.bar.format_dict["elapsed"] < 0.05
        assert progress.skipped == 2
    finally:
        progress.close()
    assert compile_clock().on_start is None
