"""LMDB shards: one environment per shard, written under a temporary name and renamed when complete.

Layout of a shard directory ``shard-00012.lmdb/`` (``data.mdb``; shards written before the per-record
digests also have a ``lock.mdb``, which nothing needs):

- ``{index:09d}/{field}`` -> bytes, one key per field of each sample (``blur``, ``sharp``, ``meta``, ...);
- ``__index__`` -> JSON ``{"indices": [...], "fields": [...], "digest": "xxh3_64", "digests": {key: int}}``:
  sample indices in put order, field names, and the digest of every sample record, keyed by its key as text.

A shard is written to ``shard-00012.lmdb.tmp/`` and renamed to its final name only after commit and fsync,
so a directory under a final name is always whole; a killed writer leaves at most a ``.tmp`` directory,
which the next writer of that shard removes.

The checksum of a shard is a pure function of its records::

    sha256( concat over keys k in sorted byte order of: len(k) as 4-byte little-endian, k, sha256(value) )

so it does not depend on put order or transaction batching, and ``ShardReader.checksum`` recomputes it
from the stored data. The index is not part of it, so the digests added to the index left the sample records
and the checksums of every run as they were.

Every value ``ShardReader.get`` returns has been checked against its digest (``DIGEST``): xxHash's 64-bit
XXH3. On a 1280x720 zstd pair it costs 0.035 ms, 0.17 % of ``ShardDataset[i]``'s 21 ms full-frame read and
decode (zlib's crc32, the fastest digest in the standard library, 2.0 %; sha256 4.9 %; blake2b 9.0 %:
benchmarks/integrity.py, results/integrity.json). The
index names its digest, so a later digest can be added beside it without making older shards unreadable. A
mismatch, a truncated ``data.mdb`` or a record LMDB cannot read is a ``CorruptRecordError`` that names the
shard and the sample. Shards written before the digests are read unchecked.
"""
from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import shutil
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

import lmdb
import xxhash

from .batch import INITIAL_MAP_BYTES, BatchWriter, _one_line, disk_full_raised
from .errors import CorruptRecordError

log = logging.getLogger(__name__)

INDEX_KEY = b"__index__"
_TMP_SUFFIX = ".tmp"
_OLD_SUFFIX = ".old"
_MAX_INDEX = 10**9 - 1  # keys hold the index as 9 digits
# Per-record digests a shard index can name, and the one the writer stores: name -> bytes -> int.
DIGESTS = {"xxh3_64": xxhash.xxh3_64_intdigest}
DIGEST = "xxh3_64"

# A write transaction holds its dirty pages in memory until commit; bound it by records and bytes.
_BATCH_RECORDS = 64
_BATCH_BYTES = 256 << 20


def shard_name(shard_index: int) -> str:
    """Final directory name of shard ``shard_index``: ``shard-00012.lmdb``."""
    if shard_index < 0:
        raise ValueError(f"shard index must be >= 0, got {shard_index}")
    return f"shard-{shard_index:05d}.lmdb"


def is_complete(path: str | os.PathLike) -> bool:
    """True for a directory under a final ``*.lmdb`` name holding ``data.mdb``; ``*.tmp`` never is."""
    path = Path(path)
    return path.suffix == ".lmdb" and path.is_dir() and (path / "data.mdb").is_file()


@dataclass
class ShardInfo:
    """What the manifest records about one finished shard.

    Attributes:
        name: directory name, relative to the output directory.
        indices: sample indices in put order.
        count: number of samples (``len(indices)``).
        nbytes: sum of the value lengths of all sample records, in bytes (not the file size, which depends
            on LMDB page layout).
        checksum: hex sha256 as defined in this module's docstring.
    """

    name: str
    indices: list[int]
    count: int
    nbytes: int
    checksum: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ShardInfo":
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"shard entry {d.get('name', '?')!r} lacks {', '.join(missing)}")
        info = cls(**{n: d[n] for n in names})
        info.indices = [int(i) for i in info.indices]
        if info.count != len(info.indices):
            raise ValueError(f"shard {info.name}: count {info.count} != {len(info.indices)} indices")
        return info


class ShardWriter:
    """Write one shard; visible under its final name only once ``close`` has succeeded.

    Use as a context manager; an exception inside the block aborts the shard and deletes the temporary
    directory::

        with ShardWriter(out_dir, 12) as writer:
            for i in range(...):
                writer.put(i, {"blur": ..., "sharp": ..., "meta": ...})
        info = writer.info   # or info = writer.close() inside the block

    The LMDB map starts at ``map_size`` bytes and grows when full (``batch.BatchWriter``), whatever the shard
    size. A full disk aborts the shard (the temporary directory is removed) and raises ``DiskFullError``; any
    other error raised by LMDB inside ``put`` or ``close`` aborts the shard too, since earlier records of the
    same transaction would otherwise be silently lost.
    """

    def __init__(self, out_dir: str | os.PathLike, shard_index: int, map_size: int = INITIAL_MAP_BYTES):
        self.out_dir = Path(out_dir)
        self.name = shard_name(shard_index)
        self.final_path = self.out_dir / self.name
        self.tmp_path = self.out_dir / (self.name + _TMP_SUFFIX)
        self.info: ShardInfo | None = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.tmp_path, self.out_dir / (self.name + _OLD_SUFFIX)):
            if stale.exists():
                log.info("removing stale %s", stale)
                shutil.rmtree(stale)
        # sync=False: commits skip fsync; close() syncs once before the rename makes the shard visible.
        # No lock file: this writer is the environment's only user, and readers open it without one.
        try:
            self._batch = BatchWriter(self.tmp_path, self.out_dir, map_size=map_size, lock=False, sync=False)
        except BaseException:
            shutil.rmtree(self.tmp_path, ignore_errors=True)
            raise
        self._batch_records = 0
        self._indices: list[int] = []
        self._seen: set[int] = set()
        self._fields: set[str] = set()
        self._digests: dict[bytes, bytes] = {}
        self._crcs: dict[str, int] = {}
        self._nbytes = 0
        self._state = "open"

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":
            self.close()
        return False

    def put(self, index: int, record: dict[str, bytes]) -> None:
        """Store one sample: each ``field -> bytes`` under key ``{index:09d}/{field}``."""
        self._check_open()
        index = operator.index(index)
        if not 0 <= index <= _MAX_INDEX:
            raise ValueError(f"sample index must be in 0..{_MAX_INDEX}, got {index}")
        if index in self._seen:
            raise ValueError(f"sample {index} was already put in {self.name}")
        if not record:
            raise ValueError(f"sample {index}: empty record")
        for field, value in record.items():
            if not isinstance(field, str) or not field or "/" in field or field.startswith("__"):
                raise ValueError(f"sample {index}: bad field name {field!r} (non-empty, no '/', no leading '__')")
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"sample {index} field {field!r}: value must be bytes, got {type(value).__name__}")
        digest = DIGESTS[DIGEST]
        try:
            for field, value in record.items():
                text = f"{index:09d}/{field}"
                key = text.encode()
                self._batch.put(key, value)
                self._digests[key] = hashlib.sha256(value).digest()
                self._crcs[text] = digest(value)
                self._nbytes += memoryview(value).nbytes
            self._batch_records += 1
            if self._batch_records >= _BATCH_RECORDS or self._batch.pending_bytes >= _BATCH_BYTES:
                self._commit()
        except BaseException:
            self.abort()
            raise
        self._seen.add(index)
        self._indices.append(index)
        self._fields.update(record)

    def close(self) -> ShardInfo:
        """Commit, sync, rename to the final name (replacing an existing shard of that name), return its info."""
        self._check_open()
        try:
            # the rename or an fsync can find the disk full too (the LMDB writes say so themselves)
            with disk_full_raised(self.out_dir):
                index = {"indices": self._indices, "fields": sorted(self._fields), "digest": DIGEST,
                         "digests": dict(sorted(self._crcs.items()))}
                self._batch.put(INDEX_KEY, json.dumps(index, separators=(",", ":")).encode())
                self._commit()
                self._batch.sync()
                self._batch.close()
                self._state = "closed"
                if self.final_path.exists():
                    # Move the old shard aside rather than delete it in place: an interrupted rmtree could leave
                    # a final-named directory that still has data.mdb but lost other files.
                    old = self.out_dir / (self.name + _OLD_SUFFIX)
                    os.replace(self.final_path, old)
                    os.replace(self.tmp_path, self.final_path)
                    shutil.rmtree(old)
                else:
                    os.replace(self.tmp_path, self.final_path)
                _fsync_dir(self.out_dir)
        except BaseException:
            self.abort()
            raise
        self.info = ShardInfo(
            name=self.name,
            indices=list(self._indices),
            count=len(self._indices),
            nbytes=self._nbytes,
            checksum=_combine(sorted(self._digests.items())),
        )
        log.debug("wrote %s: %d samples, %d bytes", self.name, self.info.count, self.info.nbytes)
        return self.info

    def abort(self) -> None:
        """Drop everything written and delete the temporary directory. Safe to call more than once."""
        if self._state == "aborted":
            return
        if self._state == "open":
            self._batch.abort()
        self._state = "aborted"
        shutil.rmtree(self.tmp_path, ignore_errors=True)

    def _commit(self) -> None:
        self._batch.commit()
        self._batch_records = 0

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"ShardWriter for {self.name} is {self._state}")


class ShardReader:
    """Read one complete shard. Opens the LMDB environment lazily, and again in a forked child process.

    Lazy opening matters for torch DataLoader workers: an environment opened in the parent must not be
    used after fork, so each worker opens its own on first access. A reader pickles without its
    environment, so spawn-started workers work too. Readers of the same shard files in one process share
    one environment, because LMDB forbids opening the same files twice in a process.
    """

    def __init__(self, path: str | os.PathLike, max_readers: int = 1024):
        self.path = Path(path)
        self.max_readers = max_readers
        self._env: lmdb.Environment | None = None
        self._key: tuple | None = None
        self._pid: int | None = None
        self._index: dict | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "max_readers": self.max_readers}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["max_readers"])

    def __del__(self):
        # Garbage collection runs this at whatever allocation triggers it, which can be inside _acquire or
        # _release on this same thread while it holds _shared_lock (a non-reentrant lock: calling _release here
        # would wait on it forever; a DataLoader hung so). So the release is queued without any lock, and the
        # next _acquire or _release in this process performs it.
        try:
            if self._env is not None and self._pid == os.getpid():
                _deferred.append(self._key)
            self._env = None
        except Exception:  # interpreter shutdown may have torn down the module already
            pass

    def indices(self) -> list[int]:
        """Sample indices in put order."""
        return list(self._read_index()["indices"])

    def fields(self) -> list[str]:
        """Field names present in the shard, sorted."""
        return list(self._read_index()["fields"])

    def get(self, index: int, field: str) -> bytes:
        """The bytes stored for ``field`` of sample ``index``, checked against the digest stored with them.

        Raises:
            KeyError: no such sample or field.
            CorruptRecordError: the bytes do not match their digest, or the shard is truncated or unreadable.
        """
        text = f"{index:09d}/{field}"
        env = self._environment(index, field)
        try:
            with env.begin() as txn:
                value = txn.get(text.encode())
        except lmdb.Error as exc:
            raise _corrupt(self.path, f"sample {index} field {field!r} cannot be read ({_one_line(exc)})",
                           index) from None
        if value is None:
            raise KeyError(f"sample {index} field {field!r} is not in shard {self.path}")
        check = self._check(index, field)
        if check is not None:
            name, digest, digests = check
            expected = digests.get(text)
            if expected is None:
                raise _corrupt(self.path, f"sample {index} field {field!r} has no {name} digest in the shard "
                                          "index", index)
            if digest(value) != expected:
                raise _corrupt(self.path, f"sample {index} field {field!r} does not match the {name} digest "
                                          "stored with it (the stored bytes changed)", index)
        return value

    def checksum(self) -> str:
        """Recompute the shard checksum from the stored records (reads every value once)."""
        return self.scan(digests=False)[0]

    def bad_records(self) -> list[tuple[int, str]]:
        """(sample index, field) of every record that does not match its digest, in key order; empty for a
        shard written without digests. Reads every value once."""
        return self.scan(checksum=False)[1]

    def scan(self, checksum: bool = True, digests: bool = True) -> tuple[str | None, list[tuple[int, str]]]:
        """One pass over every stored value: (the shard checksum, or None without ``checksum``; the records
        that fail their digest, as ``bad_records``)."""
        check = self._check() if digests else None
        h = hashlib.sha256() if checksum else None
        bad = []
        with self._environment().begin(buffers=True) as txn:
            for k, v in txn.cursor():
                key = bytes(k)
                if key == INDEX_KEY:
                    continue
                if h is not None:
                    _add(h, key, hashlib.sha256(v).digest())
                text = key.decode("utf-8", "replace")
                if check is not None and check[2].get(text) != check[1](v):
                    index, _, field = text.partition("/")
                    bad.append((int(index) if index.isdigit() else -1, field))
        return (h.hexdigest() if h is not None else None), bad

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            _release(self._key)
        self._env = None
        self._key = None
        self._pid = None

    def _environment(self, index: int | None = None, field: str | None = None) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            if not is_complete(self.path):
                raise FileNotFoundError(
                    f"{self.path} is not a complete shard (missing, still being written, or without data.mdb)"
                )
            try:
                self._key, self._env = _acquire(self.path, self.max_readers)
            except _Unreadable as exc:
                reading = "" if index is None else f" (reading sample {index} field {field!r})"
                raise _corrupt(self.path, f"{exc}{reading}", index) from None
            self._pid = os.getpid()
        return self._env

    def _read_index(self) -> dict:
        if self._index is None:
            try:
                with self._environment().begin() as txn:
                    raw = txn.get(INDEX_KEY)
            except lmdb.Error as exc:
                raise _corrupt(self.path, f"its {INDEX_KEY.decode()} record cannot be read ({_one_line(exc)})") \
                    from None
            if raw is None:
                raise _corrupt(self.path, f"it has no {INDEX_KEY.decode()} record")
            try:
                index = json.loads(raw)
                if not isinstance(index, dict) or not isinstance(index.get("indices"), list) \
                        or not isinstance(index.get("fields"), list):
                    raise ValueError("expected an object with lists 'indices' and 'fields'")
                if "digests" in index and (index.get("digest") not in DIGESTS
                                           or not isinstance(index["digests"], dict)):
                    raise ValueError(f"unknown digest {index.get('digest')!r} or a bad digest table")
            except (UnicodeDecodeError, ValueError) as exc:
                raise _corrupt(self.path, f"its {INDEX_KEY.decode()} record is not valid ({_one_line(exc)})") \
                    from None
            self._index = index
        return self._index

    def _check(self, index: int | None = None, field: str | None = None):
        """(digest name, function, {key text: digest}) of this shard, or None for a shard without digests."""
        try:
            shard_index = self._read_index()
        except CorruptRecordError as exc:
            if index is None:
                raise
            raise CorruptRecordError(f"{exc} (reading sample {index} field {field!r})", exc.shard, index) from None
        if "digests" not in shard_index:
            if str(self.path) not in _unchecked:
                _unchecked.add(str(self.path))
                log.info("%s was written without per-record digests: its records are read unchecked", self.path)
            return None
        name = shard_index["digest"]
        return name, DIGESTS[name], shard_index["digests"]


class _Unreadable(Exception):
    """A shard's environment cannot be opened, or is shorter than its own pages say (truncated)."""


def _corrupt(path: Path, problem: str, index: int | None = None) -> CorruptRecordError:
    return CorruptRecordError(f"corrupt shard {path}: {problem}. Run `blursynth inspect {path.parent} --verify` "
                              "to check the whole run.", shard=str(path), index=index)


# Shards already logged as read unchecked (written without digests), so each is logged once per process.
_unchecked: set[str] = set()

# Read-only environments open in this process: (realpath, st_dev, st_ino of data.mdb) -> [pid, env, users].
# The inode is part of the key so that a shard rewritten under the same name opens afresh.
_shared: dict[tuple, list] = {}
_shared_lock = threading.Lock()
# Keys whose reader was garbage-collected (ShardReader.__del__): released by the next _acquire or _release, under
# the lock. list.append needs no lock, so __del__ never waits on _shared_lock.
_deferred: list[tuple] = []


def _new_lock_after_fork() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()  # another parent thread may have held it at fork time
    _deferred.clear()  # the parent's readers: its own to release, not this child's (whose entries may reuse keys)


os.register_at_fork(after_in_child=_new_lock_after_fork)


def _acquire(path: Path, max_readers: int) -> tuple[tuple, lmdb.Environment]:
    st = os.stat(path / "data.mdb")
    key = (os.path.realpath(path), st.st_dev, st.st_ino)
    pid = os.getpid()
    with _shared_lock:
        _release_deferred()
        entry = _shared.get(key)
        if entry is not None and entry[0] != pid:
            # Inherited through fork. py-lmdb refuses to open files it believes already open in this
            # process, so close it first. That is safe for these environments only: read-only with
            # lock=False, they hold no reader slot and no fcntl lock, so closing unmaps the child's copy
            # of the map and closes the child's file descriptor, and the parent is untouched.
            entry[1].close()
            entry = None
        if entry is None:
            entry = _shared[key] = [pid, _open_readonly(path, max_readers), 0]
        entry[2] += 1
        return key, entry[1]


def _open_readonly(path: Path, max_readers: int) -> lmdb.Environment:
    """Open a complete shard read-only, after checking that data.mdb holds every page LMDB will touch: a
    truncated file would otherwise be a SIGBUS on the first read beyond its end, not an exception."""
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True, max_readers=max_readers)
    except lmdb.Error as exc:
        raise _Unreadable(f"LMDB cannot open it ({_one_line(exc)})") from None
    try:
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        size = os.stat(path / "data.mdb").st_size
    except (lmdb.Error, OSError) as exc:
        env.close()
        raise _Unreadable(f"LMDB cannot read its header ({_one_line(exc)})") from None
    if size < needed:
        env.close()
        raise _Unreadable(f"data.mdb is truncated: {size} bytes, but its pages need {needed}")
    return env


def _release(key: tuple) -> None:
    with _shared_lock:
        _release_deferred()
        _release_locked(key)


def _release_deferred() -> None:
    """Release the keys that garbage-collected readers queued (with _shared_lock held)."""
    while _deferred:
        _release_locked(_deferred.pop())


def _release_locked(key: tuple) -> None:
    entry = _shared.get(key)
    if entry is None or entry[0] != os.getpid():
        return
    entry[2] -= 1
    if entry[2] <= 0:
        entry[1].close()
        del _shared[key]


def _combine(digests: Iterable[tuple[bytes, bytes]]) -> str:
    h = hashlib.sha256()
    for key, digest in digests:
        _add(h, key, digest)
    return h.hexdigest()


def _add(h, key: bytes, digest: bytes) -> None:
    """One record's part of the shard checksum (module docstring); keys must come in sorted byte order."""
    h.update(len(key).to_bytes(4, "little"))
    h.update(key)
    h.update(digest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
