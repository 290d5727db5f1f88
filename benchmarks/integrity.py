"""What the run directory's safety costs: the per-record digest checked on every read, and the write lock.

On a real 1280x720 run of the default recipe (zstd), in one process, one after the other:
- each digest (xxh3_64, the one shards store; crc32, sha256 and blake2b for comparison) over every stored value of a
  pair, against ``ShardDataset[i]``'s whole read and decode of that pair (digest check included);
- ``RunLock`` taken and released on the output directory's file system.

Prints the ratios and writes results/integrity.json with the machine and the load average at both ends.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import xxhash

from common import machine_info

DIGESTS = {
    "xxh3_64": xxhash.xxh3_64_intdigest,
    "crc32": zlib.crc32,
    "sha256": lambda b: hashlib.sha256(b).digest(),
    "blake2b": lambda b: hashlib.blake2b(b).digest(),
}


def best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    from blursynth.data import ShardDataset
    from blursynth.store.lock import RunLock
    from blursynth.store.manifest import Manifest
    from blursynth.store.shard import ShardReader

    load_start = os.getloadavg()
    pairs = 8
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "blursynth", "generate", "--num", str(pairs), "--out", str(out),
                        "--size", "1280x720", "--workers", "0", "--no-progress"], check=True, capture_output=True)
        manifest = Manifest.load(out)
        reader = ShardReader(out / manifest.shards[0].name)
        values = [[reader.get(i, f) for f in reader.fields()] for i in reader.indices()]
        stored = sum(len(v) for vs in values for v in vs) / len(values)
        ds = ShardDataset(out)
        ds[0]  # open the environment
        read_ms = min(best_ms(lambda: ds[i], 5) for i in range(len(ds)))
        digest_ms = {name: min(best_ms(lambda: [fn(v) for v in vs], 25) for vs in values)
                     for name, fn in DIGESTS.items()}

        def take_release():
            with RunLock(out / "lockbench", command="bench"):
                pass

        lock_ms = best_ms(lambda: [take_release() for _ in range(100)], 5) / 100
        cpu0 = time.process_time()
        for _ in range(200):
            take_release()
        lock_cpu_ms = (time.process_time() - cpu0) / 200 * 1e3
    load_end = os.getloadavg()
    result = {
        "machine": machine_info(),
        "pair": f"1280x720 default recipe, zstd, {stored / 1e6:.2f} MB stored per pair (all fields)",
        "read_ms": read_ms,
        "digest_ms": digest_ms,
        "digest_share_of_read": {k: v / read_ms for k, v in digest_ms.items()},
        "lock_take_release_wall_ms": lock_ms,
        "lock_take_release_cpu_ms": lock_cpu_ms,
        "load_average_start": list(load_start),
        "load_average_end": list(load_end),
    }
    for name, ms in digest_ms.items():
        print(f"{name:8s} {ms:6.3f} ms per pair, {100 * ms / read_ms:5.2f}% of a {read_ms:.1f} ms ShardDataset read")
    print(f"RunLock take + release: {lock_ms:.3f} ms wall, {lock_cpu_ms:.3f} ms CPU")
    print(f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end")
    path = Path(__file__).parent / "results" / "integrity.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
