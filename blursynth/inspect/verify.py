"""Verify a run: every shard the manifest lists exists, is complete, and still has the checksum, indices and count
the manifest recorded, and every record its digest (naming the samples that fail); shard directories the manifest
does not list are warnings. Reads only: shards are opened read-only without a lock file, nothing is written or
removed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import lmdb

from ..store.errors import CorruptRecordError
from ..store.manifest import MANIFEST_NAME
from ..store.shard import ShardInfo, ShardReader, is_complete
from .common import _load_manifest, _megabytes, _one_line

_SHARD_DIR = re.compile(r"^shard-\d+\.lmdb(\.tmp|\.old)?$")


@dataclass
class Finding:
    """One problem or warning; ``shard`` is the shard directory name, None for the run as a whole."""

    shard: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.shard}: {self.message}" if self.shard else self.message


@dataclass
class VerifyResult:
    """Outcome of ``verify``. ``ok`` is False when there is any problem; warnings do not fail a run."""

    run_dir: Path
    shards_checked: int = 0
    samples_checked: int = 0
    bytes_checked: int = 0
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        verdict = "OK" if self.ok else f"FAILED, {len(self.problems)} problem(s)"
        out = [f"verify {self.run_dir}: {self.shards_checked} shards, {self.samples_checked} samples, "
               f"{_megabytes(self.bytes_checked)}: {verdict}"]
        out += [f"  problem: {p}" for p in self.problems]
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def verify(run_dir: str | os.PathLike, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Check every shard of the manifest against what the manifest recorded about it.

    Per listed shard: the directory exists and is complete (``is_complete``), the checksum recomputed from
    the stored records equals the manifest's and every record matches the digest stored with it (one pass,
    ``ShardReader.scan``; the failing samples are named), and the stored sample indices and their count equal
    the manifest's. Across the run: no sample index in two shards or both written and
    skipped. Shard directories on disk that the manifest does not list (complete ones, ``.tmp`` leftovers
    of an interrupted write, ``.old`` leftovers of an interrupted replacement) are warnings, and so is a
    run with samples not yet made. Nothing is modified.

    Args:
        run_dir: output directory of a run.
        progress: optional callable(nbytes: int), called after each listed shard with the bytes of its
            records as the manifest counts them (``ShardInfo.nbytes``), the data the checksum reads.

    Raises:
        FileNotFoundError: ``run_dir`` is not a blursynth run (no manifest.json).
        ValueError: the manifest is corrupt.
    """
    run_dir = Path(run_dir)
    manifest = _load_manifest(run_dir)
    result = VerifyResult(run_dir=run_dir)
    owner: dict[int, str] = {}
    for info in manifest.shards:
        result.problems += _verify_shard(run_dir, info)
        result.shards_checked += 1
        result.samples_checked += info.count
        result.bytes_checked += info.nbytes
        again = [i for i in info.indices if i in owner]
        if again:
            result.problems.append(Finding(info.name, f"{len(again)} sample(s) also listed in an earlier shard "
                                                      f"(e.g. sample {again[0]} in {owner[again[0]]})"))
        for index in info.indices:
            owner.setdefault(index, info.name)
        if progress is not None:
            progress(info.nbytes)

    both = sorted({s["index"] for s in manifest.skipped} & owner.keys())
    if both:
        result.problems.append(Finding(None, f"{len(both)} sample(s) both written and listed as skipped "
                                             f"(e.g. {', '.join(map(str, both[:5]))})"))
    pending = manifest.num_requested - manifest.num_written - len(manifest.skipped)
    if pending > 0:
        result.warnings.append(Finding(None, f"{pending} of {manifest.num_requested} requested samples not made "
                                             "yet (interrupted run; generate --resume finishes it)"))
    result.warnings += _unlisted(run_dir, {s.name for s in manifest.shards})
    return result


def _verify_shard(run_dir: Path, info: ShardInfo) -> list[Finding]:
    path = run_dir / info.name
    if not path.exists():
        return [Finding(info.name, "listed in manifest.json but missing on disk")]
    if not is_complete(path):
        return [Finding(info.name, "listed in manifest.json but incomplete (no data.mdb)")]
    found = []
    reader = ShardReader(path)
    try:
        indices = reader.indices()
        if len(indices) != info.count:
            found.append(Finding(info.name, f"holds {len(indices)} samples, manifest.json says {info.count}"))
        if indices != info.indices:
            first = next((k for k, (a, b) in enumerate(zip(indices, info.indices)) if a != b),
                         min(len(indices), len(info.indices)))
            found.append(Finding(info.name, f"sample indices differ from manifest.json's from position {first} "
                                            f"(stored {indices[first:first + 3]}, "
                                            f"manifest {info.indices[first:first + 3]})"))
        checksum, bad = reader.scan()
        named = ", ".join(f"sample {i} {f}" for i, f in bad[:5]) + (", ..." if len(bad) > 5 else "")
        if checksum != info.checksum:
            note = f" ({len(bad)} record(s) fail their digest: {named})" if bad else ""
            found.append(Finding(info.name, f"checksum {checksum[:12]}... != manifest.json's "
                                            f"{info.checksum[:12]}...: stored data changed or is corrupt{note}"))
        elif bad:  # the records are as written, so it is the index holding their digests that changed
            found.append(Finding(info.name, f"the shard index is corrupt: {len(bad)} record(s) fail the digest "
                                            f"it stores: {named}"))
    except (OSError, ValueError, lmdb.Error, CorruptRecordError) as exc:
        found.append(Finding(info.name, f"cannot be read: {_one_line(exc)}"))
    finally:
        reader.close()
    return found


def _unlisted(run_dir: Path, listed: set[str]) -> list[Finding]:
    found = []
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        if name == MANIFEST_NAME + ".tmp":
            found.append(Finding(None, f"{name}: leftover of an interrupted manifest write; safe to delete"))
        if not _SHARD_DIR.match(name) or name in listed:
            continue
        if name.endswith(".tmp"):
            found.append(Finding(name, "partial shard left by an interrupted write, not part of the dataset "
                                       "(generate --resume removes it)"))
        elif name.endswith(".old"):
            found.append(Finding(name, "old copy left by an interrupted shard rewrite, not part of the dataset"))
        elif is_complete(entry):
            found.append(Finding(name, "complete shard not listed in manifest.json, not part of the dataset "
                                       "(generate --resume rewrites and lists it)"))
        else:
            found.append(Finding(name, "incomplete shard directory (no data.mdb) not listed in manifest.json"))
    return found
