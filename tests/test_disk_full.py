"""A disk that fills up mid-run, on a real 24 MB tmpfs: a clear error with exit code 4 (no traceback), the
finished shards intact and listed, a pre-flight warning, and --resume after space is freed giving the shards
of an uninterrupted run."""
import errno
import subprocess
import sys
import uuid

import pytest
from _util import mounted_tmpfs
from click.testing import CliRunner

from blursynth.commands import main
from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.store.errors import DiskFullError
from blursynth.store.manifest import Manifest
from blursynth.store.rundir import disk_full_is_clear
from blursynth.store.shard import is_complete

# 320x240 zstd pairs store about 265 kB each: shards of 16 take 4.2 MB, so 24 MB holds 5 or 6 of the 7
NUM, SHARD, SIZE = 112, 16, "320x240"


@pytest.fixture
def small_disk(tmp_path):
    """A 24MB tmpfs at tmp_path/disk, unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "disk", "24m") as mnt:
        yield mnt


def test_disk_full_is_a_clear_error_and_resume_after_freeing_space_finishes_the_run(small_disk, tmp_path):
    out = small_disk / "run"
    cmd = [sys.executable, "-m", "blursynth", "generate", "--num", str(NUM), "--out", str(out), "--size", SIZE,
           "--shard-size", str(SHARD), "--workers", "0", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: {out}: the disk is full (") and " free on its file system" in error, error
    assert "Free some space, then run the same command with --resume" in error
    # the pre-flight estimate saw it coming, from the recipe and again from the first shard
    assert "WARNING blursynth.store.rundir: this run needs about" in r.stderr and "from the recipe: 320x240 zstd" in r.stderr
    assert "from the first shard written" in r.stderr
    # the finished shards are whole and listed, nothing else is
    shards = Manifest.load(out).shards
    assert 1 <= len(shards) < NUM // SHARD and all(is_complete(out / s.name) for s in shards)
    assert f"The {len(shards)} finished shards ({len(shards) * SHARD} of {NUM} samples) are kept" in error
    assert not list(out.glob("*.tmp"))
    v = CliRunner().invoke(main, ["inspect", str(out), "--verify", "--no-progress"])
    assert v.exit_code == 0, v.output
    # space freed: --resume writes the rest, the same shards as an uninterrupted run
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"wrote {NUM} of {NUM} samples" in r.stdout and "WARNING" not in r.stderr
    reference = tmp_path / "reference"
    run_generate(load_recipe("default", ["size=[320, 240]"]), "builtin", NUM, reference, shard_size=SHARD,
                 progress=False)
    assert [(s.name, s.checksum) for s in Manifest.load(out).shards] == \
        [(s.name, s.checksum) for s in Manifest.load(reference).shards]


def test_a_ray_task_error_for_a_full_disk_is_a_disk_full_error(tmp_path):
    """The Ray path gets a worker's exception wrapped in RayTaskError: its cause decides."""
    exceptions = pytest.importorskip("ray.exceptions")
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = exceptions.RayTaskError("_shard_task", "worker traceback", full)
    with pytest.raises(DiskFullError, match=f"{tmp_path}: the disk is full") as info:
        with disk_full_is_clear(tmp_path, lambda: "the 2 finished shards are kept"):
            raise wrapped
    assert "The 2 finished shards are kept" in str(info.value) and "--resume" in str(info.value)
    # anything else on a disk with room passes through as it is
    other = exceptions.RayTaskError("_shard_task", "worker traceback", ValueError(str(uuid.uuid4())))
    with pytest.raises(type(other)):
        with disk_full_is_clear(tmp_path, lambda: ""):
            raise other
