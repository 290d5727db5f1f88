"""Run inspection over real runs made by the runner: summary, verification, contact sheet."""
import hashlib
import json
import shutil

import cv2
import lmdb
import numpy as np
import pytest
from skimage import data as skdata

from blursynth.inspect import (
    BLUR_BIN_EDGES_PX,
    PLACEHOLDER_GREY,
    PREVIEW_HEADER_PX,
    PREVIEW_LABEL_PX,
    PREVIEW_MARGIN_PX,
    blur_histogram,
    blur_map_rgb,
    choose_samples,
    format_summary,
    preview,
    summarize,
    verify,
)
from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.store import Manifest, ShardReader, decode_meta

W, H = 96, 64
TILE_W, TILE_H = 48, 32  # tiles at half size keep the aspect ratio exactly


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """6 samples of the built-in source with blur maps, in shards of 4 and 2."""
    out = tmp_path_factory.mktemp("inspect") / "run"
    recipe = load_recipe("default", [f"size=[{W}, {H}]", "output.blur_map=true"])
    run_generate(recipe, "builtin", 6, out, seed=0, shard_size=4, progress=False)
    return out


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A folder source of one photo, one corrupt file and one empty file, no blur maps: samples 0 and 3 are
    written, 1, 2, 4, 5 skipped for two different reasons."""
    root = tmp_path_factory.mktemp("inspect-plain")
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a_photo.png"), cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR))
    (photos / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    (photos / "c_empty.png").write_bytes(b"")
    out = root / "run"
    recipe = load_recipe("default", [f"size=[{W}, {H}]", "output.blur_map=false"])
    run_generate(recipe, f"folder:{photos}", 6, out, seed=3, shard_size=3, progress=False)
    return out


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _tree(root):
    """Every path under root with its size, mtime and content hash: equal before and after a read-only pass."""
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns,
                                   None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
    }


def _metas(root):
    """Sample index -> meta, read straight from the shards the manifest lists."""
    out = {}
    for info in Manifest.load(root).shards:
        reader = ShardReader(root / info.name)
        out.update({i: decode_meta(reader.get(i, "meta")) for i in info.indices})
        reader.close()
    return out


def _sheet(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.ndim == 3
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _tile(sheet, row, col):
    m = PREVIEW_MARGIN_PX
    x = m + col * (TILE_W + m)
    y = PREVIEW_HEADER_PX + row * (PREVIEW_LABEL_PX + TILE_H + m) + PREVIEW_LABEL_PX
    return sheet[y: y + TILE_H, x: x + TILE_W]


# ---------------------------------------------------------------------------------------------- summary


def test_summary_counts_equal_the_manifest(run):
    manifest = Manifest.load(run)
    s = summarize(run)
    assert s["counts"] == {"requested": 6, "written": manifest.num_written, "skipped": len(manifest.skipped),
                           "pending": 0}
    assert manifest.num_written == 6 and s["skipped"] == {}
    assert s["shards"]["count"] == len(manifest.shards) == 2
    assert s["shards"]["total_bytes"] == sum(info.nbytes for info in manifest.shards)
    assert (s["shards"]["samples_min"], s["shards"]["samples_max"], s["shards"]["shard_size"]) == (2, 4, 4)
    assert s["image_size"] == [W, H] and s["codec"] == manifest.codec and s["recipe"] == "default"
    assert s["seed"] == 0 and s["versions"] == manifest.versions and s["created"] == manifest.created
    assert s["fields"] == ["blur", "blur_map", "meta", "sharp"]
    assert s["unreadable_shards"] == []
    json.dumps(s)  # plain data, ready for a --json flag


def test_histogram_puts_each_sample_in_the_bin_its_meta_says(run):
    metas = _metas(run)
    expected = [0] * (len(BLUR_BIN_EDGES_PX) - 1)
    for meta in metas.values():
        mean = meta["blur_px"]["mean"]
        (b,) = [b for b in range(len(expected)) if BLUR_BIN_EDGES_PX[b] <= mean < BLUR_BIN_EDGES_PX[b + 1]]
        expected[b] += 1
    b = summarize(run)["blur_px"]
    assert b["counts"] == expected
    assert sum(b["counts"]) == b["samples"] == 6 and b["no_blur_px"] == 0
    means = [m["blur_px"]["mean"] for m in metas.values()]
    p95s = [m["blur_px"]["p95"] for m in metas.values()]
    assert b["mean_percentiles"]["p50"] == pytest.approx(np.median(means))
    assert b["mean_percentiles"]["max"] == max(means)
    assert b["p95_percentiles"]["p95"] == pytest.approx(np.percentile(p95s, 95))


def test_histogram_bins_are_closed_below():
    values = [0.0, 0.99, 1.0, 3.9, 4.0, 127.9, 128.0, 1e9, -0.5]
    assert blur_histogram(values) == [3, 1, 1, 1, 0, 0, 0, 1, 2]


def test_skipped_inputs_are_grouped_by_reason(plain_run):
    s = summarize(plain_run)
    assert s["counts"] == {"requested": 6, "written": 2, "skipped": 4, "pending": 0}
    assert s["skipped"] == {
        "b_broken.png: not an image OpenCV can decode (corrupt or unsupported)": {
            "count": 2, "examples": ["b_broken.png"]},
        "c_empty.png: empty file": {"count": 2, "examples": ["c_empty.png"]},
    }
    assert s["fields"] == ["blur", "meta", "sharp"]
    assert sum(s["blur_px"]["counts"]) == 2


def test_format_summary_draws_the_histogram(run, plain_run):
    s = summarize(run)
    lines = format_summary(s)
    assert any("6 written, 0 skipped of 6 requested" in line for line in lines)
    rows = [line for line in lines if line.lstrip().startswith("[")]
    assert len(rows) == len(BLUR_BIN_EDGES_PX) - 1
    bars = [row.count("#") for row in rows]
    peak = max(s["blur_px"]["counts"])
    for count, bar in zip(s["blur_px"]["counts"], bars):
        assert (bar == 40) if count == peak else (0 < bar < 40 if count else bar == 0)
    plain = "\n".join(format_summary(summarize(plain_run)))
    assert "skipped 2 x c_empty.png: empty file (e.g. c_empty.png)" in plain


# ----------------------------------------------------------------------------------------------- verify


def test_verify_passes_on_a_clean_run_and_changes_nothing(run):
    before = _tree(run)
    seen = []
    result = verify(run, progress=seen.append)
    assert result.ok, result.lines()
    assert result.problems == [] and result.warnings == []
    assert (result.shards_checked, result.samples_checked) == (2, 6)
    assert seen == [info.nbytes for info in Manifest.load(run).shards]
    assert "OK" in result.lines()[0]
    assert _tree(run) == before


def test_verify_finds_one_flipped_byte(run, tmp_path):
    root = _copy(run, tmp_path)
    shard = root / "shard-00001.lmdb"
    key = f"{5:09d}/blur".encode()
    env = lmdb.open(str(shard), subdir=True)
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(key))
        value[len(value) // 2] ^= 0x01
        txn.put(key, bytes(value))
    env.close()
    before = _tree(root)
    result = verify(root)
    assert not result.ok
    assert [p.shard for p in result.problems] == ["shard-00001.lmdb"]
    assert "checksum" in result.problems[0].message
    assert any("shard-00001.lmdb" in line and "checksum" in line for line in result.lines())
    assert _tree(root) == before


def test_verify_reports_missing_shards_and_leftovers(run, tmp_path):
    root = _copy(run, tmp_path)
    shutil.rmtree(root / "shard-00001.lmdb")
    tmp = root / "shard-00002.lmdb.tmp"
    tmp.mkdir()
    (tmp / "data.mdb").write_bytes(b"")
    shutil.copytree(root / "shard-00000.lmdb", root / "shard-00007.lmdb")
    result = verify(root)
    assert not result.ok
    assert [(p.shard, "missing" in p.message) for p in result.problems] == [("shard-00001.lmdb", True)]
    warned = {w.shard: w.message for w in result.warnings}
    assert set(warned) == {"shard-00002.lmdb.tmp", "shard-00007.lmdb"}
    assert "interrupted" in warned["shard-00002.lmdb.tmp"] and "not listed" in warned["shard-00007.lmdb"]
    # The summary still describes what can be read, and says what cannot.
    s = summarize(root)
    assert [u["name"] for u in s["unreadable_shards"]] == ["shard-00001.lmdb"]
    assert s["blur_px"]["samples"] == 4


def test_verify_compares_indices_with_the_manifest(run, tmp_path):
    root = _copy(run, tmp_path)
    manifest = Manifest.load(root)
    manifest.shards[1].indices = [5, 4]
    manifest.save(root)
    result = verify(root)
    assert [(p.shard, "indices differ" in p.message) for p in result.problems] == [("shard-00001.lmdb", True)]
    manifest.shards[1].indices = [3, 5]  # sample 3 is in shard-00000 too
    manifest.save(root)
    messages = [(p.shard, p.message) for p in verify(root).problems]
    assert len(messages) == 2 and all(shard == "shard-00001.lmdb" for shard, _ in messages)
    assert "indices differ" in messages[0][1] and "sample 3 in shard-00000.lmdb" in messages[1][1]


# ---------------------------------------------------------------------------------------------- preview


def test_preview_layout_and_tiles_equal_downscaled_images(run, tmp_path):
    from blursynth.data import ShardDataset

    path = preview(run, tmp_path / "sheet.png", n=8, width=TILE_W)
    assert path == tmp_path / "sheet.png"
    sheet = _sheet(path)
    rows, m = 6, PREVIEW_MARGIN_PX  # n=8 over 6 samples shows all six, in dataset order
    assert sheet.shape == (PREVIEW_HEADER_PX + rows * (PREVIEW_LABEL_PX + TILE_H + m), m + 3 * (TILE_W + m), 3)
    ds = ShardDataset(run, fields=("sharp", "blur"))
    for row in range(rows):
        sample = ds[row]
        for col, name in enumerate(("sharp", "blur")):
            stored = np.rint(sample[name].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
            expected = cv2.resize(stored, (TILE_W, TILE_H), interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(_tile(sheet, row, col), expected)
        blur_tile = _tile(sheet, row, 2).astype(int)
        assert (blur_tile.max(axis=2) - blur_tile.min(axis=2)).max() > 0  # coloured, not the grey placeholder


def test_preview_choice_is_spread_and_deterministic(run, tmp_path):
    chosen = choose_samples(100, 8, seed=0)
    assert len(chosen) == 8 and all(12.5 * j <= p < 12.5 * (j + 1) for j, p in enumerate(chosen))
    assert chosen == choose_samples(100, 8, seed=0) != choose_samples(100, 8, seed=1)
    assert choose_samples(6, 8) == list(range(6))
    a = preview(run, tmp_path / "a.png", n=3, seed=4, width=TILE_W).read_bytes()
    b = preview(run, tmp_path / "b.png", n=3, seed=4, width=TILE_W).read_bytes()
    assert a == b
    row_h = PREVIEW_LABEL_PX + TILE_H + PREVIEW_MARGIN_PX
    assert _sheet(tmp_path / "a.png").shape[0] == PREVIEW_HEADER_PX + 3 * row_h


def test_preview_without_blur_map_shows_the_placeholder(plain_run, tmp_path):
    sheet = _sheet(preview(plain_run, tmp_path / "plain.png", n=8, width=TILE_W))
    assert sheet.shape[0] == PREVIEW_HEADER_PX + 2 * (PREVIEW_LABEL_PX + TILE_H + PREVIEW_MARGIN_PX)
    for row in range(2):
        tile = _tile(sheet, row, 2)
        assert (tile == tile[..., :1]).all()  # grey: R == G == B
        grey = (tile[..., 0] == PLACEHOLDER_GREY).mean()
        assert 0.6 < grey < 1.0  # mostly the placeholder grey, with its text on it


def test_blur_map_colour_wheel():
    # (u_x, u_y, magnitude px): right, down, left, right at half magnitude, no motion
    m = np.array([[[1, 0, 4], [0, 1, 4], [-1, 0, 4], [1, 0, 2], [0, 0, 0]]], np.float16)
    expected = [[255, 0, 0], [128, 255, 0], [0, 255, 255], [128, 0, 0], [0, 0, 0]]
    np.testing.assert_allclose(blur_map_rgb(m, 4.0)[0], expected, atol=1)
    np.testing.assert_array_equal(blur_map_rgb(m), blur_map_rgb(m, 4.0))  # default scale: the map's max
    np.testing.assert_allclose(blur_map_rgb(m, 2.0)[0, 3], [255, 0, 0], atol=1)  # clipped at full value
    assert blur_map_rgb(np.zeros((2, 2, 3), np.float16)).max() == 0


# -------------------------------------------------------------------------------------------- not a run


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path, what):
    target = tmp_path / "nothing-here"
    if what == "empty":
        target.mkdir()
    for call in (lambda: summarize(target), lambda: verify(target),
                 lambda: preview(target, tmp_path / "x.png")):
        with pytest.raises(FileNotFoundError, match="nothing-here"):
            call()
    assert not (tmp_path / "x.png").exists()
