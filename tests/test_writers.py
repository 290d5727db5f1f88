"""Every entry of `writers.WRITERS`, for every command that opens it: a few pairs go in through the protocol
(`put`, `skip`, `close`) and come back out of the files with a reader of that layout; `abort` leaves nothing of a
video writer. The CLI's --format choices and the video recipe's check read the table."""
from __future__ import annotations

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
from blursynth.recipe import RecipeError
from blursynth.store.codec import decode_image, decode_meta, encode_png
from blursynth.store.shard import ShardReader
from blursynth.video.recipe import load_video_recipe
from blursynth.writers import EXPORT_FORMATS, VIDEO_FORMATS, WINDOWS_PER_CLIP, WRITERS, ClipTarget, ExportTarget, Pair

H, W = 32, 48
CASES = [(name, command) for name, kind in WRITERS.items() for command in ("export", "video")
         if getattr(kind, command) is not None]


def _pairs(seqs=("shard-00000", "shard-00000", "shard-00001", "shard-00001")) -> list[Pair]:
    """Smooth images (mp4 is lossy) that differ from pair to pair, with a meta (the video path's "frames": j), a
    blur map and a flow."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for j, seq in enumerate(seqs):
        sharp = np.stack([xx * 4 + 20 * j, yy * 6, np.full_like(xx, 60 + 30 * j)], -1).clip(0, 255).astype(np.uint8)
        blur = cv2.GaussianBlur(sharp, (5, 5), 2)
        extra = {"blur_map": np.full((H, W, 3), j, np.float16), "flow": np.full((H, W, 2), j, np.float32)}
        out.append(Pair(seq, 10 + j, blur, sharp, {"frames": 10 + j, "note": f"pair {j}"}, extra))
    return out


def _open(name: str, command: str, out):
    if command == "export":
        return WRITERS[name].export(out, ExportTarget(split="train", samples_per_tar=3, prefix="shard"))
    return WRITERS[name].video(out, ClipTarget("clip", 1, fps=10.0, window=2, stride=2, codec="png",
                                                base_meta={"clip": "clip"}))


def _read_basicsr(out, summary):
    assert summary == {"lq": "blur.lmdb", "gt": "sharp.lmdb"}
    found = {}
    for name in ("blur", "sharp"):
        lines = (out / f"{name}.lmdb" / "meta_info.txt").read_text().splitlines()
        assert all(re.fullmatch(rf"\d{{6}}\.png \({H},{W},3\) 1", line) for line in lines), lines
        env = lmdb.open(str(out / f"{name}.lmdb"), readonly=True, lock=False)
        with env.begin() as txn:
            for line in lines:
                key = line.split(".")[0]
                found.setdefault(int(key), {})[name] = decode_image(txn.get(key.encode()), "png")
        env.close()
    return found


def _read_gopro(root, summary, seqs):
    assert summary["files"] == seqs
    found = {}
    for seq in seqs:
        blurs = sorted((root / seq / "blur").glob("*.png"))
        assert [p.name for p in blurs] == sorted(p.name for p in (root / seq / "sharp").glob("*.png"))
        for p in blurs:
            found[int(p.stem)] = {name: decode_image((root / seq / name / p.name).read_bytes(), "png")
                                  for name in ("blur", "sharp")}
    return found


def _read_webdataset(out, summary):
    assert summary["shards"] == ["shard-000000.tar", "shard-000001.tar"]
    found = {}
    for tar_name in summary["shards"]:
        with tarfile.open(out / tar_name) as tar:
            for member in tar.getmembers():
                key, field = member.name.split(".", 1)
                data = tar.extractfile(member).read()
                item = found.setdefault(int(key), {})
                if field.endswith(".png"):
                    item[field[:-4]] = decode_image(data, "png")
                elif field == "json":
                    item["meta"] = json.loads(data)
                else:
                    item[field[:-4]] = np.load(io.BytesIO(data))
    return found


def _read_windows(out, summary):
    """lmdb: records of 2 consecutive frames; a skip ends a window, so pairs 0, 1 and then 2, 3 (skip after 1)."""
    assert summary["windows"] == 2 and summary["frames"] == 4
    reader = ShardReader(out / summary["shard"]["name"])
    found = {}
    for index in reader.indices():
        assert index // WINDOWS_PER_CLIP == 1
        meta = decode_meta(reader.get(index, "meta"))
        assert meta["clip"] == "clip" and meta["num_frames"] == 2
        for k, j in enumerate(meta["frames"]):
            found[j] = {name: decode_image(reader.get(index, f"{name}_{k}"), "png") for name in ("blur", "sharp")}
    reader.close()
    return found


def _read_mp4(out, summary):
    assert summary == {"files": ["clip_blurry.mp4", "clip_sharp.mp4", "clip_flow.mp4"], "frames": 4}
    videos = {}
    for suffix in ("blurry", "sharp", "flow"):
        cap = cv2.VideoCapture(str(out / f"clip_{suffix}.mp4"))
        frames = []
        while (got := cap.read())[0]:
            frames.append(got[1][..., ::-1])
        cap.release()
        videos[suffix] = frames
    assert [len(v) for v in videos.values()] == [4, 4, 4]
    return {10 + j: {"blur": videos["blurry"][j], "sharp": videos["sharp"][j]} for j in range(4)}


def test_every_table_entry_has_a_case_here():
    assert {c for c in CASES} == {("basicsr", "export"), ("gopro", "export"), ("gopro", "video"),
                                  ("lmdb", "video"), ("mp4", "video"), ("webdataset", "export")}


@pytest.mark.parametrize("name,command", CASES)
def test_writer_writes_pairs_that_read_back(name, command, tmp_path):
    pairs = _pairs() if command == "export" else _pairs(("clip",) * 4)
    writer = _open(name, command, tmp_path)
    for k, pair in enumerate(pairs):
        writer.put(pair)
        if k == 1:
            writer.skip(99)
    summary = writer.close()
    if (name, command) == ("gopro", "export"):
        found = _read_gopro(tmp_path / "train", summary, ["shard-00000", "shard-00001"])
    elif name == "gopro":
        found = _read_gopro(tmp_path, summary, ["clip"])
        assert not list(tmp_path.glob("*.tmp"))
    else:
        read = {"basicsr": _read_basicsr, "webdataset": _read_webdataset, "lmdb": _read_windows, "mp4": _read_mp4}
        found = read[name](tmp_path, summary)
    assert sorted(found) == [p.index for p in pairs]
    lossy = name == "mp4"
    for pair in pairs:
        for field in ("blur", "sharp"):
            got = found[pair.index][field].astype(np.int16)
            if lossy:
                assert got.shape == pair.blur.shape and np.abs(got - getattr(pair, field)).mean() < 8
            else:
                np.testing.assert_array_equal(got, getattr(pair, field))
        if name == "webdataset":
            assert found[pair.index]["meta"] == pair.meta
            np.testing.assert_array_equal(found[pair.index]["blur_map"], pair.extra["blur_map"])
            np.testing.assert_array_equal(found[pair.index]["flow"], pair.extra["flow"])


@pytest.mark.parametrize("name,command", CASES)
def test_abort_releases_and_a_video_writer_leaves_nothing(name, command, tmp_path):
    writer = _open(name, command, tmp_path)
    for pair in _pairs(("clip",) * 3):
        writer.put(pair)
    writer.abort()
    if command == "video":
        assert list(tmp_path.iterdir()) == []


def test_gopro_encodes_as_each_command_did():
    """One GoPro writer serves both commands; export keeps BasicSR's PNG (cv2 with only the level), video the
    codec's fast PNG (level 1, run-length, Up filter), so that each writes the bytes it wrote before."""
    pair = _pairs()[0]
    assert WRITERS["gopro"].export is not WRITERS["gopro"].video
    ok, plain = cv2.imencode(".png", pair.sharp[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert encode_png(pair.sharp, 1, adaptive=True) == plain.tobytes()


def test_cli_choices_and_recipe_check_read_the_table():
    assert EXPORT_FORMATS == ("basicsr", "gopro", "webdataset") and VIDEO_FORMATS == ("gopro", "lmdb", "mp4")
    for command, formats in (("export", EXPORT_FORMATS), ("video", VIDEO_FORMATS)):
        param = next(p for p in main.commands[command].params if p.name == "fmt")
        assert tuple(param.type.choices) == formats
        help_text = CliRunner().invoke(main, [command, "--help"]).output
        assert all(f"{name}:" in help_text for name in formats)
    assert load_video_recipe(None, ["output.format=mp4"]).output.format == "mp4"
    with pytest.raises(RecipeError, match="must be one of gopro, lmdb, mp4"):
        load_video_recipe(None, ["output.format=basicsr"])
