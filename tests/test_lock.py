"""One writer per output directory (store/lock.py), with real processes: two `generate --resume` at once, a
writer killed with SIGKILL, the exclusive-file fallback for file systems without flock, and the lock of adapt,
events and export."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from _util import kill_after_first_shard, write_video
from click.testing import CliRunner
from skimage import data as skdata

from blursynth.commands import main
from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.store import lock as lock_module
from blursynth.store.errors import RunLockedError
from blursynth.store.lock import LOCK_NAME, RunLock, new_output_lock_path
from blursynth.store.manifest import Manifest

GENERATE = [sys.executable, "-m", "blursynth", "generate", "--size", "96x64", "--shard-size", "4", "--workers",
            "0", "--no-progress"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Shard checksums of an uninterrupted run of 24 samples (shard s holds indices 4s..4s+3 whatever --num)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    run_generate(load_recipe("default", ["size=[96, 64]"]), "builtin", 24, out, shard_size=4, progress=False)
    return {s.name: s.checksum for s in Manifest.load(out).shards}


def checksums(out) -> dict:
    return {s.name: s.checksum for s in Manifest.load(out).shards}


def test_two_writers_at_once_one_refused_with_the_holder_named(reference, tmp_path):
    out = tmp_path / "run"
    cmd = GENERATE + ["--num", "16", "--out", str(out), "--resume"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 3], [(p.returncode, err) for p, _, err in results]
    (winner, stdout, _), = [r for r in results if r[0].returncode == 0]
    (_, _, refused), = [r for r in results if r[0].returncode == 3]
    assert f"is being written by pid {winner.pid} on host {socket.gethostname()} since " in refused, refused
    assert "generate" in refused and "Traceback" not in refused
    assert "wrote 16 of 16 samples" in stdout
    assert checksums(out) == {k: v for k, v in reference.items() if k in checksums(out)} and len(checksums(out)) == 4
    assert not (out / LOCK_NAME).exists()  # released: removed
    # a lock file left behind (a killed writer's) is not part of the run
    (out / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": 1 << 22}))
    r = CliRunner().invoke(main, ["inspect", str(out), "--verify", "--no-progress"])
    assert r.exit_code == 0, r.output


def test_a_killed_writer_lock_is_taken_over_and_resume_gives_the_same_shards(reference, tmp_path):
    out = tmp_path / "run"
    cmd = GENERATE + ["--num", "24", "--out", str(out)]
    proc = kill_after_first_shard(cmd, out)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= len(Manifest.load(out).shards) < 6, "the writer finished before it could be killed"
    left = json.loads((out / LOCK_NAME).read_text())  # the dead writer's lock file stays; its flock is gone
    assert left["pid"] == proc.pid and left["host"] == socket.gethostname()
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"taking over the lock of pid {proc.pid}" in r.stderr
    assert checksums(out) == reference
    assert not (out / LOCK_NAME).exists() and not list(out.glob("*.tmp"))


@pytest.fixture
def no_flock(monkeypatch):
    """A file system that rejects flock (as NFSv3 without a lock manager does: ENOLCK)."""

    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock_module, "_flock", refuse)


def _holder(path, **info):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "since": "2024-01-01T00:00:00+00:00",
                                "command": "blursynth generate", "mode": "file", **info}))


def test_fallback_lock_file_takes_over_a_dead_holder_and_refuses_live_ones(no_flock, tmp_path):
    out = tmp_path / "run"
    path = out / LOCK_NAME
    # one writer holds it, a second is refused, and after release it is free again
    with RunLock(out, "first") as first:
        assert first.mode == "file" and json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on host {socket.gethostname()}"):
            RunLock(out, "second").acquire()
    assert not path.exists()
    # a holder on this host whose process has ended: stale, taken over
    ended = subprocess.Popen(["true"])
    ended.wait()
    _holder(path, pid=ended.pid)
    with RunLock(out, "after a crash") as lock:
        assert lock.mode == "file"
        held = json.loads(path.read_text())
        assert held["pid"] == os.getpid() and held["command"] == "after a crash"
    assert not path.exists()
    # a live process on this host: refused, naming it; the same pid with another start time was reused: stale
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _holder(path, pid=sleeper.pid, start=lock_module._start_ticks(sleeper.pid))
        with pytest.raises(RunLockedError, match=f"pid {sleeper.pid} on host {socket.gethostname()} since "
                                                 "2024-01-01T00:00:00"):
            RunLock(out).acquire()
        assert json.loads(path.read_text())["pid"] == sleeper.pid  # left alone
        _holder(path, pid=sleeper.pid, start=lock_module._start_ticks(sleeper.pid) - 1)
        RunLock(out).acquire().release()
    finally:
        sleeper.kill()
        sleeper.wait()
    # another host cannot be checked from here: refused, with the file to remove if that process is gone
    _holder(path, pid=ended.pid, host="elsewhere.example")
    with pytest.raises(RunLockedError, match="on host elsewhere.example") as info:
        RunLock(out).acquire()
    assert f"remove {path}" in str(info.value)
    # a lock file that names no holder (its writer died before writing it) is refused the same way
    path.write_text("")
    with pytest.raises(RunLockedError, match="names no holder") as info:
        RunLock(out).acquire()
    assert f"remove {path}" in str(info.value)


def test_flock_holder_refuses_and_a_flock_less_host_holder_is_respected(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with RunLock(out) as held:
        assert held.mode == "flock"
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(out).acquire()
    # a holder on a host without flock holds it by the file alone: a host with flock does not take it over
    _holder(out / LOCK_NAME, pid=12345, host="elsewhere.example")
    with pytest.raises(RunLockedError, match="elsewhere.example"):
        RunLock(out).acquire()


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    photo = skdata.astronaut()[::4, ::4]
    frames = [np.roll(photo, 2 * k, axis=1) for k in range(4)]
    video = write_video(root / "clip.avi", frames)
    run = root / "run"
    run_generate(load_recipe("default", ["size=[96, 64]"]), "builtin", 2, run, shard_size=2, progress=False)
    return {"video": video, "run": run}


@pytest.mark.parametrize("command", ["adapt", "events", "export"])
def test_adapt_events_and_export_refuse_a_second_writer(command, small_inputs, tmp_path):
    out = tmp_path / "out"
    args = {"adapt": ["adapt", str(small_inputs["video"]), "--out", str(out), "--no-progress"],
            "events": ["events", str(small_inputs["video"]), "--out", str(out), "--no-progress"],
            "export": ["export", str(small_inputs["run"]), "--format", "gopro", "--out", str(out), "--no-progress"]}
    path = new_output_lock_path(out) if command == "export" else out / LOCK_NAME
    with RunLock(out, "the test's writer", path=path):
        r = subprocess.run([sys.executable, "-m", "blursynth", *args[command]], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 3, r.stdout + r.stderr
        assert f"{out} is being written by pid {os.getpid()} on host {socket.gethostname()}" in r.stderr
        assert "the test's writer" in r.stderr and "Traceback" not in r.stderr
        # nothing was written: export's output does not exist, the others' holds only the test's lock
        assert not out.exists() if command == "export" else [p.name for p in out.iterdir()] == [LOCK_NAME]
    assert not path.exists()
