"""commands/threads.py: every command's OpenMP threads sleep between parallel regions (OMP_WAIT_POLICY=PASSIVE)
unless the user chose a wait policy, and the setting reaches the OpenMP runtime numba loads.

Whether it pays is measured, not asserted here: benchmarks/threads.py, results/threads.json."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blursynth.commands.threads import USER_SETTINGS, wait_passively


def test_sets_passive_when_the_user_chose_nothing():
    env = {"PATH": "/bin"}
    assert wait_passively(env) is True
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.parametrize("name", USER_SETTINGS)
@pytest.mark.parametrize("value", ["ACTIVE", "300000", ""])
def test_leaves_a_users_choice_alone(name, value):
    env = {name: value}
    assert wait_passively(env) is False
    assert env == {name: value}


# In a fresh process: importing the command layer loads no OpenMP runtime; a command sets the policy; numba's
# OpenMP runtime, loaded afterwards by a parallel kernel, reports it (omp_display_env, OpenMP 5.1 / GCC 11).
_CHILD = r"""
import ctypes, os
from click.testing import CliRunner
from blursynth.commands import main
assert not [l for l in open("/proc/self/maps") if "libgomp" in l], "an OpenMP runtime is loaded at import"
assert CliRunner().invoke(main, ["inspect", "--help"]).exit_code == 0
print("policy", os.environ.get("OMP_WAIT_POLICY"))
import numba, numpy as np
numba.config.THREADING_LAYER = "omp"
@numba.njit(parallel=True)
def bump(a):
    for i in numba.prange(a.size):
        a[i] += 1
bump(np.zeros(64))
lib = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l})[0]
gomp = ctypes.CDLL(lib)
if hasattr(gomp, "omp_display_env"):
    gomp.omp_display_env(0)
else:
    print("no omp_display_env")
"""


def _child(env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)


def _runtime_policy(proc: subprocess.CompletedProcess) -> str:
    if "no omp_display_env" in proc.stdout:
        pytest.skip("this libgomp cannot display its settings")
    line = next(ln for ln in proc.stdout.splitlines() + proc.stderr.splitlines() if "OMP_WAIT_POLICY" in ln)
    return line.split("=")[1].strip().strip("'")


def test_the_openmp_runtime_numba_loads_sleeps():
    if importlib.util.find_spec("numba.np.ufunc.omppool") is None:
        pytest.skip("numba has no OpenMP threading layer here")
    proc = _child({})
    assert proc.returncode == 0, proc.stderr
    assert "policy PASSIVE" in proc.stdout
    assert _runtime_policy(proc) == "PASSIVE"
    # a user's own setting is what the runtime gets
    proc = _child({"OMP_WAIT_POLICY": "ACTIVE"})
    assert proc.returncode == 0, proc.stderr
    assert "policy ACTIVE" in proc.stdout and _runtime_policy(proc) == "ACTIVE"


def test_the_benchmarks_busy_neighbours_start_burn_and_stop():
    # benchmarks/threads.py's load: processes that are no child of the benchmark, each using a core, gone when
    # stopped. The launcher must return: its forked neighbours once held its stdout pipe open and it never did
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from threads import Neighbours
    finally:
        sys.path.pop(0)
    nb = Neighbours(1)
    try:
        assert len(nb.pids) == 1
        pid = nb.pids[0]
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        assert ppid != os.getpid()
        before = nb.cpu_s()
        time.sleep(0.5)
        assert nb.cpu_s() - before > 0.1
    finally:
        nb.stop()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break  # killed, waiting for init to reap it
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"neighbour {pid} still runs after stop()")
