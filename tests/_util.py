"""Helpers shared by the tests."""
from pathlib import Path

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
