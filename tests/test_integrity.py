"""Integrity of the store against real LMDB, real files and real processes: maps that start too small grow
without changing a byte, a full disk (a real tmpfs) is a DiskFullError, and a corrupted or truncated shard is
a CorruptRecordError naming the shard and the sample, from the reader up to the train / evaluate / export
commands, with an opt-in skip that counts what it dropped."""
import errno
import json
import logging
import os
import shutil
import subprocess
import sys

import lmdb
import numpy as np
import pytest
import torch
from _util import mounted_tmpfs
from click.testing import CliRunner
from torch.utils.data import DataLoader

from blursynth.commands import main
from blursynth.data import ShardDataset, collate
from blursynth.inspect import verify
from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.store import Manifest, ShardReader, ShardWriter, shard_name
from blursynth.store import shard as shard_module
from blursynth.store.batch import BatchWriter, disk_full_error
from blursynth.store.errors import CorruptRecordError, DiskFullError
from blursynth.store.export import export
from blursynth.writers import basicsr as basicsr_module

NUM, SHARD = 10, 5
CORRUPT = 7  # the sample whose blur record the tests flip (in the second shard)


def _random_records(n, size, seed=0, start=0):
    """Incompressible records: sample index -> {field: bytes}."""
    rng = np.random.default_rng(seed)
    return {start + k: {"blur": rng.bytes(size), "sharp": rng.bytes(size // 2), "meta": json.dumps({"k": k}).encode()}
            for k in range(n)}


def _write(out, shard_index, records, **kw):
    with ShardWriter(out, shard_index, **kw) as writer:
        for index, record in records.items():
            writer.put(index, record)
    return writer.info


def _all_values(path):
    env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    with env.begin() as txn:
        values = dict(txn.cursor())
    env.close()
    return values


# ------------------------------------------------------------------------------------------- map growth


@pytest.mark.parametrize("batch_records", [64, 3])
def test_a_tiny_map_grows_and_the_shard_is_byte_identical(tmp_path, monkeypatch, batch_records, caplog):
    monkeypatch.setattr(shard_module, "_BATCH_RECORDS", batch_records)
    records = _random_records(12, 200_000)  # 3.6 MB through a map of one page
    big = _write(tmp_path / "big", 0, records, map_size=1 << 30)
    with caplog.at_level(logging.INFO, logger="blursynth.store.batch"):
        small = _write(tmp_path / "small", 0, records, map_size=4096)
    assert any("map full" in r.getMessage() for r in caplog.records)
    assert small == big  # indices, count, bytes and checksum
    reader = ShardReader(tmp_path / "small" / small.name)
    for index, record in records.items():
        for field, value in record.items():
            assert reader.get(index, field) == value
    assert reader.checksum() == big.checksum
    reader.close()
    assert _all_values(tmp_path / "small" / small.name) == _all_values(tmp_path / "big" / big.name)


def test_a_map_full_at_commit_is_replayed(tmp_path, monkeypatch):
    """LMDB can also run out of map while committing (freelist pages): the batch is replayed and committed."""
    failed = []

    class CommitFailsOnce:
        def __init__(self, txn):
            self.txn = txn

        def put(self, key, value):
            return self.txn.put(key, value)

        def abort(self):
            return self.txn.abort()

        def commit(self):
            if not failed:
                failed.append(True)
                self.txn.abort()  # what a failed mdb_txn_commit does
                raise lmdb.MapFullError("mdb_txn_commit: MDB_MAP_FULL")
            return self.txn.commit()

    begin = BatchWriter._begin
    monkeypatch.setattr(BatchWriter, "_begin", lambda self: CommitFailsOnce(begin(self)))
    writer = BatchWriter(tmp_path / "env", tmp_path, map_size=1 << 20)
    writer.put(b"a", b"1" * 1000)
    writer.put(b"b", b"2" * 1000)
    writer.commit()
    writer.close()
    assert failed and _all_values(tmp_path / "env") == {b"a": b"1" * 1000, b"b": b"2" * 1000}


def test_the_basicsr_export_writes_the_same_lmdb_through_a_tiny_map(tmp_path, monkeypatch, run):
    export(run, tmp_path / "big", "basicsr")
    monkeypatch.setattr(basicsr_module, "_MAP_BYTES", 4096)
    monkeypatch.setattr(basicsr_module, "_BATCH", 3)
    export(run, tmp_path / "small", "basicsr")
    for name in ("blur.lmdb", "sharp.lmdb"):
        small, big = _all_values(tmp_path / "small" / name), _all_values(tmp_path / "big" / name)
        assert len(small) == NUM and small == big
        assert (tmp_path / "small" / name / "meta_info.txt").read_text() == \
            (tmp_path / "big" / name / "meta_info.txt").read_text()
        env = lmdb.open(str(tmp_path / "small" / name), readonly=True, lock=False)
        assert env.info()["map_size"] > 4096
        env.close()


# --------------------------------------------------------------------------------------------- disk full


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2MB tmpfs at tmp_path/disk, unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "disk", "2m") as mnt:
        yield mnt


@pytest.mark.parametrize("batch_records", [64, 1])  # the disk fills at the commit in close, or at one in put
def test_a_full_disk_is_a_disk_full_error_and_earlier_shards_stay_whole(tiny_disk, monkeypatch, batch_records):
    monkeypatch.setattr(shard_module, "_BATCH_RECORDS", batch_records)
    out = tiny_disk / "run"
    manifest = Manifest(recipe={}, seed=0, num_requested=100, image_size=[1, 1], codec="png")
    written = []
    with pytest.raises(DiskFullError) as info:
        for shard_index in range(10):
            records = _random_records(4, 100_000, seed=shard_index, start=4 * shard_index)  # 600 kB a shard
            written.append(_write(out, shard_index, records))
            manifest.add_shard(written[-1])
            manifest.save(out)
    text = str(info.value)
    assert str(out) in text and "MB free" in text and "free space, then run the same command with --resume" in text
    assert info.value.exit_code == 4
    assert 1 <= len(written) < 10
    assert not list(out.glob("*.tmp"))
    for shard in written:
        reader = ShardReader(out / shard.name)
        assert reader.scan() == (shard.checksum, [])
        reader.close()
    assert Manifest.load(out).shards == written

    # the manifest on a disk with no byte left: DiskFullError, and the old manifest is intact
    with open(tiny_disk / "filler", "wb", buffering=0) as f:  # unbuffered: nothing left to flush on close
        with pytest.raises(OSError) as filled:
            while True:
                f.write(b"\0" * 65536)
    assert filled.value.errno == errno.ENOSPC
    before = (out / "manifest.json").read_bytes()
    manifest.skipped.append({"index": 99, "source_id": "x" * 100_000, "reason": "too long"})
    with pytest.raises(DiskFullError, match=str(out)):
        manifest.save(out)
    assert (out / "manifest.json").read_bytes() == before and not (out / "manifest.json.tmp").exists()
    with pytest.raises(DiskFullError, match="--resume"):  # a shard writer cannot even start
        _write(out, 20, _random_records(1, 1000))
    assert not (out / (shard_name(20) + ".tmp")).exists()


def _fill(disk, leave_bytes):
    """Fill the file system of `disk` up to `leave_bytes` free."""
    with open(disk / "filler", "wb", buffering=0) as f:
        f.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave_bytes))


@pytest.mark.parametrize("fmt", ["basicsr", "gopro", "webdataset"])
def test_an_export_onto_a_full_disk_is_a_disk_full_error_and_leaves_nothing(run, tiny_disk, fmt):
    _fill(tiny_disk, 48_000)
    out = tiny_disk / "export"
    with pytest.raises(DiskFullError, match=f"{tiny_disk}.*MB free.*run the same export again") as info:
        export(run, out, fmt)
    assert info.value.exit_code == 4
    assert not out.exists() and not (tiny_disk / "export.tmp").exists()


def test_only_a_full_disk_is_taken_for_one(tmp_path):
    assert isinstance(disk_full_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path), DiskFullError)
    assert isinstance(disk_full_error(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path), DiskFullError)
    assert disk_full_error(OSError(errno.EACCES, "Permission denied"), tmp_path) is None
    assert disk_full_error(ValueError("no"), tmp_path) is None
    io_error = lmdb.Error("mdb_txn_commit: Input/output error")
    free = shutil.disk_usage(tmp_path).free
    assert disk_full_error(io_error, tmp_path, needed_bytes=1000) is None  # plenty of room: another problem
    assert isinstance(disk_full_error(io_error, tmp_path, needed_bytes=free + 1), DiskFullError)


# ------------------------------------------------------------------------------------------- corruption


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real run: 10 samples of 64x48 in two shards of 5."""
    out = tmp_path_factory.mktemp("integrity") / "run"
    recipe = load_recipe("default", ["size=[64, 48]"])
    run_generate(recipe, "builtin", NUM, out, seed=4, shard_size=SHARD, progress=False)
    return out


def _copy(run, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


def _shard_of(root, index):
    return root / shard_name(index // SHARD)


def _flip(root, index, field, nbytes=64):
    """XOR-flip `nbytes` bytes in the middle of the stored value of (index, field), found in data.mdb by its
    bytes; returns the shard path."""
    shard = _shard_of(root, index)
    reader = ShardReader(shard)
    value = reader.get(index, field)
    reader.close()
    mid = len(value) // 2
    piece = value[mid - nbytes // 2: mid + nbytes // 2]
    data = bytearray((shard / "data.mdb").read_bytes())
    assert data.count(piece) == 1  # the flip hits this value and nothing else
    at = data.index(piece)
    for k in range(at, at + nbytes):
        data[k] ^= 0xA5
    (shard / "data.mdb").write_bytes(bytes(data))
    return shard


def _all_records(root):
    """(index, field) -> 'ok' or the CorruptRecordError, for every record of every shard."""
    out = {}
    for shard in sorted(root.glob("shard-*.lmdb")):
        reader = ShardReader(shard)
        for index in reader.indices():
            for field in reader.fields():
                try:
                    reader.get(index, field)
                    out[index, field] = "ok"
                except CorruptRecordError as exc:
                    out[index, field] = exc
        reader.close()
    return out


@pytest.mark.parametrize("index, field", [(CORRUPT, "blur"), (2, "sharp"), (9, "meta")])
def test_a_flipped_value_is_caught_for_that_record_only(run, tmp_path, index, field):
    root = _copy(run, tmp_path)
    shard = _flip(root, index, field)
    records = _all_records(root)
    bad = {k: v for k, v in records.items() if v != "ok"}
    assert list(bad) == [(index, field)]
    exc = bad[index, field]
    assert exc.shard == str(shard) and exc.index == index and exc.exit_code == 5
    text = str(exc)
    assert str(shard) in text and f"sample {index}" in text and repr(field) in text
    assert f"blursynth inspect {root} --verify" in text
    # inspect --verify names it too
    problems = verify(root).problems
    assert [p.shard for p in problems] == [shard.name] and f"sample {index} {field}" in problems[0].message


def test_shard_dataset_raises_or_skips_exactly_the_corrupt_sample(run, tmp_path):
    root = _copy(run, tmp_path)
    shard = _flip(root, CORRUPT, "blur")
    ds = ShardDataset(root)
    with pytest.raises(CorruptRecordError, match=f"sample {CORRUPT} field 'blur'") as info:
        [ds[i] for i in range(len(ds))]
    assert info.value.shard == str(shard) and info.value.index == CORRUPT

    skipping = ShardDataset(root, on_corrupt="skip")
    items = [skipping[i] for i in range(len(skipping))]
    assert [s is None for s in items] == [i == CORRUPT for i in range(NUM)]
    assert skipping.skipped == 1
    clean = ShardDataset(run)
    for i, s in enumerate(items):
        if s is not None:
            assert torch.equal(s["blur"], clean[i]["blur"]) and s["index"] == i

    def batches(workers):
        ds = ShardDataset(root, crop=32, augment=True, seed=5, on_corrupt="skip")
        g = torch.Generator().manual_seed(3)
        return list(DataLoader(ds, batch_size=4, shuffle=True, generator=g, num_workers=workers, collate_fn=collate))

    serial, parallel = batches(0), batches(2)
    assert sum(b.get("skipped", 0) for b in parallel) == 1
    assert sorted(i for b in parallel for i in b["index"].tolist()) == [i for i in range(NUM) if i != CORRUPT]
    for a, b in zip(serial, parallel):  # the same seed gives the same batches, with or without workers
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["blur"], b["blur"])
        assert a.get("skipped", 0) == b.get("skipped", 0)


def test_an_error_in_a_dataloader_worker_reaches_the_main_process_whole(run, tmp_path):
    root = _copy(run, tmp_path)
    shard = _flip(root, CORRUPT, "blur")
    loader = DataLoader(ShardDataset(root), batch_size=NUM, num_workers=1, collate_fn=collate)
    with pytest.raises(CorruptRecordError) as info:
        next(iter(loader))
    # torch makes the error again from the worker's traceback and the message: the message is what is kept
    text = str(info.value)
    assert text.startswith(f"corrupt shard {shard}: sample {CORRUPT} field 'blur'") and "\n" not in text
    assert "Traceback" in info.value.worker_traceback and "ShardReader.get" not in text


def test_a_batch_of_corrupt_samples_only_collates_to_an_empty_batch():
    assert collate([None, None]) == {"meta": [], "skipped": 2}


@pytest.mark.parametrize("keep", [0.5, 0.9, 100])
def test_a_truncated_shard_is_a_corrupt_record_error_not_a_crash(run, tmp_path, keep):
    root = _copy(run, tmp_path)
    data = _shard_of(root, CORRUPT) / "data.mdb"
    size = data.stat().st_size
    os.truncate(data, int(size * keep) if keep < 1 else keep)
    reader = ShardReader(data.parent)
    with pytest.raises(CorruptRecordError, match=f"corrupt shard {data.parent}.*sample {CORRUPT}") as info:
        reader.get(CORRUPT, "blur")
    assert info.value.index == CORRUPT and "inspect" in str(info.value)
    assert ("truncated" if keep < 1 else "cannot open") in str(info.value)
    ds = ShardDataset(root, on_corrupt="skip")
    # in DataLoader workers too: an error, not a SIGBUS that kills the worker
    loader = DataLoader(ShardDataset(root), batch_size=NUM, num_workers=1, collate_fn=collate)
    with pytest.raises(CorruptRecordError, match="corrupt shard"):
        next(iter(loader))
    items = [ds[i] for i in range(len(ds))]
    assert [s is None for s in items] == [i >= SHARD for i in range(NUM)] and ds.skipped == SHARD
    result = verify(root)
    assert not result.ok and "cannot be read" in result.problems[0].message


def test_a_corrupt_index_record_is_a_corrupt_record_error(run, tmp_path):
    root = _copy(run, tmp_path)
    shard = _shard_of(root, CORRUPT)
    data = bytearray((shard / "data.mdb").read_bytes())
    assert data.count(b'{"indices":[') == 1
    data[data.index(b'{"indices":[')] ^= 0xFF  # no longer JSON
    (shard / "data.mdb").write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError, match="__index__ record is not valid"):
        ShardReader(shard).indices()
    with pytest.raises(CorruptRecordError, match=f"sample {CORRUPT}") as info:
        ShardReader(shard).get(CORRUPT, "blur")
    assert info.value.shard == str(shard)


def test_shards_without_digests_are_read_unchecked(tmp_path, caplog):
    records = _random_records(3, 1000)
    info = _write(tmp_path, 0, records)
    path = tmp_path / info.name
    env = lmdb.open(str(path), subdir=True, lock=False)
    with env.begin(write=True) as txn:  # the index as shards written before the digests have it
        index = json.loads(txn.get(b"__index__"))
        txn.put(b"__index__", json.dumps({"indices": index["indices"], "fields": index["fields"]}).encode())
        txn.put(b"000000001/blur", b"changed")
    env.close()
    reader = ShardReader(path)
    with caplog.at_level(logging.INFO, logger="blursynth.store.shard"):
        assert reader.get(1, "blur") == b"changed"
        assert reader.get(0, "blur") == records[0]["blur"]
    assert sum("without per-record digests" in r.getMessage() for r in caplog.records) == 1
    assert reader.bad_records() == []
    reader.close()


# -------------------------------------------------------------------------------------- the commands


def _blursynth(*args):
    return subprocess.run([sys.executable, "-m", "blursynth", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def corrupt_run(run, tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt") / "run"
    shutil.copytree(run, root)
    _flip(root, CORRUPT, "blur")
    return root


def _clear_error(r, root):
    """The one-line error of a command stopped by the corrupt record: exit code 5, no traceback."""
    assert r.returncode == 5, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: corrupt shard {_shard_of(root, CORRUPT)}: sample {CORRUPT} field 'blur'"), error
    assert f"blursynth inspect {root} --verify" in error


@pytest.mark.parametrize("workers", [0, 2])
def test_train_stops_with_exit_code_5_or_skips_and_counts(corrupt_run, tmp_path, workers):
    # 10 samples in batches of 5: 2 steps are one epoch, which draws every sample once
    args = ["train", "--data", corrupt_run, "--iters", 2, "--preset", "tiny", "--batch-size", 5, "--crop", 32,
            "--workers", workers, "--no-progress"]
    _clear_error(_blursynth(*args, "--out", tmp_path / "stopped"), corrupt_run)
    r = _blursynth(*args, "--out", tmp_path / "skipping", "--skip-corrupt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "step 2" in r.stdout and "dropped 1 corrupt training sample(s)" in r.stdout


def test_evaluate_stops_with_exit_code_5_or_skips_and_counts(corrupt_run):
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", "--data", str(corrupt_run), "--no-progress"])
    assert res.exit_code == 5 and f"sample {CORRUPT} field 'blur'" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["evaluate", "--data", str(corrupt_run), "--no-progress", "--skip-corrupt"])
    assert res.exit_code == 0, res.output
    assert "left out 1 corrupt sample(s)" in res.output and f"{NUM - 1} more rows" not in res.output


def test_export_stops_with_exit_code_5_or_skips_and_counts(corrupt_run, tmp_path):
    _clear_error(_blursynth("export", corrupt_run, "--format", "basicsr", "--out", tmp_path / "a", "--no-progress"),
                 corrupt_run)
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.tmp").exists()
    r = _blursynth("export", corrupt_run, "--format", "basicsr", "--out", tmp_path / "b", "--no-progress",
                   "--skip-corrupt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"exported {NUM - 1} pairs" in r.stdout and f"left out 1 corrupt sample(s) ({CORRUPT})" in r.stdout
    keys = [line.split(".")[0] for line in (tmp_path / "b" / "blur.lmdb" / "meta_info.txt").read_text().splitlines()]
    assert keys == [f"{i:06d}" for i in range(NUM) if i != CORRUPT]
