"""Exports read back the way their consumers read them: BasicSR's LMDB reader (meta_info.txt keys, readonly
env, cv2.imdecode to BGR), GoPro folder pairs, WebDataset tar members; pixels compared with ShardDataset."""
import dataclasses
import io
import json
import re
import tarfile

import cv2
import lmdb
import numpy as np
import pytest
from click.testing import CliRunner

from blursynth.commands import main
from blursynth.data import ShardDataset
from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.store.export import export
from blursynth.train.loop import to_uint8


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs") / "run"
    recipe = dataclasses.replace(load_recipe("default", {"output.blur_map": True}), size=(48, 40)).validate()
    run_generate(recipe, "builtin", 5, out, seed=2, shard_size=3, progress=False)
    return out


@pytest.fixture(scope="module")
def samples(run_dir):
    ds = ShardDataset(run_dir, fields=("blur", "sharp", "blur_map"))
    return {s["index"]: s for s in (ds[i] for i in range(len(ds)))}


def test_basicsr_lmdb_reads_back_as_basicsr_does(run_dir, samples, tmp_path):
    out = tmp_path / "basicsr"
    export(run_dir, out, "basicsr")
    keys = {}
    for name in ("blur", "sharp"):
        root = out / f"{name}.lmdb"
        assert (root / "data.mdb").is_file() and (root / "lock.mdb").is_file()
        lines = (root / "meta_info.txt").read_text().splitlines()
        assert all(re.fullmatch(r"\d{6}\.png \(40,48,3\) 1", line) for line in lines), lines
        keys[name] = [line.split(".")[0] for line in lines]  # paired_paths_from_lmdb's key parsing
    assert keys["blur"] == keys["sharp"] == [f"{i:06d}" for i in sorted(samples)]
    for name in ("blur", "sharp"):
        env = lmdb.open(str(out / f"{name}.lmdb"), readonly=True, lock=False, readahead=False, meminit=False)
        with env.begin(write=False) as txn:
            for key in keys[name]:
                buf = txn.get(key.encode("ascii"))
                bgr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
                assert buf[:8] == b"\x89PNG\r\n\x1a\n"
                np.testing.assert_array_equal(bgr[..., ::-1], to_uint8(samples[int(key)][name]))
        env.close()


def test_gopro_folders_pair_up(run_dir, samples, tmp_path):
    out = tmp_path / "gopro"
    summary = export(run_dir, out, "gopro", split="train")
    assert summary["files"] == ["shard-00000", "shard-00001"] and summary["frames"] == len(samples)
    blurs = sorted((out / "train").glob("*/blur/*.png"))
    sharps = sorted((out / "train").glob("*/sharp/*.png"))
    assert [p.relative_to(out).parts[1:] for p in blurs] == [
        (p.parts[-3], "blur", p.name) for p in sharps]
    assert len(blurs) == len(samples)
    for b, s in zip(blurs, sharps):
        index = int(b.stem)
        for path, name in ((b, "blur"), (s, "sharp")):
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(rgb, to_uint8(samples[index][name]))


def test_webdataset_tar_members(run_dir, samples, tmp_path):
    out = tmp_path / "wds"
    summary = export(run_dir, out, "webdataset", samples_per_tar=2)
    assert summary["shards"] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    seen = []
    for tar_name in summary["shards"]:
        with tarfile.open(out / tar_name) as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            keys = [n.split(".", 1)[0] for n in names]
            # webdataset groups consecutive members by key: each sample's members are contiguous
            assert keys == sorted(keys) and len(set(keys)) <= 2
            for key in dict.fromkeys(keys):
                files = {n.split(".", 1)[1]: tar.extractfile(m).read() for n, m in zip(names, members)
                         if n.startswith(key + ".")}
                assert set(files) == {"blur.png", "sharp.png", "json", "blur_map.npy"}
                s = samples[int(key)]
                for name in ("blur", "sharp"):
                    bgr = cv2.imdecode(np.frombuffer(files[f"{name}.png"], np.uint8), cv2.IMREAD_COLOR)
                    np.testing.assert_array_equal(bgr[..., ::-1], to_uint8(s[name]))
                assert json.loads(files["json"]) == s["meta"]
                blur_map = np.load(io.BytesIO(files["blur_map.npy"]))
                np.testing.assert_array_equal(blur_map.transpose(2, 0, 1).astype(np.float32), s["blur_map"].numpy())
                seen.append(int(key))
    assert seen == sorted(samples)
    again = tmp_path / "wds2"
    export(run_dir, again, "webdataset", samples_per_tar=2)
    assert (out / "shard-000000.tar").read_bytes() == (again / "shard-000000.tar").read_bytes()


def test_export_never_overwrites_and_cli(run_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="taken"):
        export(run_dir, out, "gopro")
    assert (out / "keep.txt").read_text() == "mine"
    res = CliRunner().invoke(main, ["export", str(run_dir), "--format", "basicsr", "--out", str(out), "--no-progress"])
    assert res.exit_code != 0 and "already exists" in res.output
    res = CliRunner().invoke(main, ["export", str(run_dir), "--format", "webdataset", "--out", str(tmp_path / "w"),
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "exported 5 pairs" in res.output and not (tmp_path / "w.tmp").exists()
