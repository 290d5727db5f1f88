"""Helpers shared by the tests."""
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from blursynth.store.shard import ShardReader


def shard_bytes(out: Path, by_shard: bool = True) -> dict:
    """Every stored value of every complete shard in `out`: {(shard, index, field): bytes}, or
    {(index, field): bytes} with by_shard=False (to compare runs sharded differently)."""
    values = {}
    for shard in sorted(Path(out).glob("shard-*.lmdb")):
        reader = ShardReader(shard)
        for i in reader.indices():
            for field in reader.fields():
                key = (shard.name, i, field) if by_shard else (i, field)
                values[key] = reader.get(i, field)
    return values


def write_video(path: Path, frames, fps: float = 25.0) -> Path:
    """Write uint8 RGB (H, W, 3) frames as a lossless FFV1 video (decodes back to the same pixels)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()
    return path


@contextmanager
def mounted_tmpfs(mnt: Path, size: str):
    """A real tmpfs of `size` (e.g. "24m") mounted at `mnt` (created), unmounted afterwards: a disk that fills up.
    Skips the test where mounting is not permitted (needs root or CAP_SYS_ADMIN)."""
    import pytest

    mnt.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def kill_after_first_shard(cmd: list[str], out: Path, timeout_s: float = 120.0) -> subprocess.Popen:
    """Start `cmd` (a run writing to `out`), SIGKILL it as soon as its manifest lists a shard; returns the dead
    process."""
    from blursynth.store.manifest import Manifest

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        try:
            if Manifest.load(out).shards:
                break
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc

