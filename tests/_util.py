"""Helpers shared by the tests."""
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
