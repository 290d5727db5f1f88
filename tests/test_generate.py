"""`blursynth generate` end to end: determinism, the output directory contract, bad input, compose."""

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from blursynth.camera import Response
from blursynth.commands import main
from blursynth.commands.options import parse_count
from blursynth.data import ShardDataset
from blursynth.recipe import RecipeError, load_recipe
from blursynth.render import render
from blursynth.runner import run_generate
from blursynth.scene import compose
from blursynth.store.manifest import Manifest

from _util import shard_bytes

SMALL = ["--size", "96x64", "--no-progress", "--workers", "0"]


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_same_seed_same_bytes_different_seed_different_samples(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        r = cli("generate", "--num", 5, "--out", tmp_path / name, "--seed", seed, "--shard-size", 2, *SMALL)
        assert r.exit_code == 0, r.output
        assert "wrote 5 of 5 samples" in r.output
    a, b, c = (shard_bytes(tmp_path / n) for n in "abc")
    assert a == b and len(a) == 5 * 3
    differ = [k for k in a if k[2] == "blur" and a[k] != c[k]]
    assert len(differ) == 5
    ma, mb = Manifest.load(tmp_path / "a"), Manifest.load(tmp_path / "b")
    assert [s.checksum for s in ma.shards] == [s.checksum for s in mb.shards]


def test_shard_partition_does_not_change_samples(tmp_path):
    rec = load_recipe("default", ["size=[96, 64]"])
    run_generate(rec, "builtin", 4, tmp_path / "one", seed=9, shard_size=4, progress=False)
    run_generate(rec, "builtin", 4, tmp_path / "many", seed=9, shard_size=1, progress=False)
    one, many = ShardDataset(tmp_path / "one"), ShardDataset(tmp_path / "many")
    for i in range(4):
        assert np.array_equal(one[i]["blur"].numpy(), many[i]["blur"].numpy())
        assert one[i]["meta"] == many[i]["meta"]


def test_dataset_reads_back_what_was_rendered(tmp_path):
    r = cli("generate", "--num", 3, "--out", tmp_path / "r", "--blur-map", *SMALL)
    assert r.exit_code == 0, r.output
    ds = ShardDataset(tmp_path / "r", fields=("blur", "sharp", "blur_map"))
    assert len(ds) == 3
    s = ds[1]
    assert s["blur"].shape == (3, 64, 96) and s["blur"].dtype.is_floating_point
    assert 0.0 <= float(s["blur"].min()) and float(s["blur"].max()) <= 1.0
    assert s["meta"]["index"] == 1 and s["meta"]["size"] == [96, 64]
    assert s["blur_map"].shape == (3, 64, 96)
    m = Manifest.load(tmp_path / "r")
    assert m.num_written == 3 and m.recipe["size"] == [96, 64] and m.seed == 0


def test_static_scene_gives_blur_equal_to_sharp(tmp_path):
    out = tmp_path / "static"
    r = cli("generate", "--num", 2, "--out", out, *SMALL, "--set", "shake.models={none: 1}",
            "--set", "shake.parallax_px=[0, 0]", "--set", "scene.objects.speed_px=[0, 0]",
            "--set", "scene.objects.rotation_deg=[0, 0]", "--set", "scene.objects.scale=[1, 1]",
            "--set", "camera.noise_prob=0")
    assert r.exit_code == 0, r.output
    ds = ShardDataset(out)
    for i in range(2):
        assert np.array_equal(ds[i]["blur"].numpy(), ds[i]["sharp"].numpy())


def test_counts_and_bad_arguments_fail_before_any_work(tmp_path):
    assert parse_count("1k") == 1000 and parse_count("100k") == 100_000 and parse_count("1M") == 1_000_000
    assert parse_count("2.5k") == 2500
    for bad in ("0", "-5", "abc", "1.5"):
        r = CliRunner().invoke(main, ["generate", "--num", bad, "--out", str(tmp_path / "x"), *SMALL])
        assert r.exit_code != 0
        assert "--num" in r.output, r.output
        assert not (tmp_path / "x").exists()
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(tmp_path / "y"), "--set", "camera.gain=[2, 1]"])
    assert r.exit_code != 0 and "camera.gain" in r.output and not (tmp_path / "y").exists()
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(tmp_path / "y"), "--set", "camera.gian=[1, 1]"])
    assert r.exit_code != 0 and "camera.gian" in r.output
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(tmp_path / "y"), "--size", "10"])
    assert r.exit_code != 0 and "WIDTHxHEIGHT" in r.output


def test_out_that_is_a_file_or_unwritable_is_a_clear_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    r = CliRunner().invoke(main, ["generate", "--num", "1", "--out", str(target), *SMALL])
    assert r.exit_code != 0 and "is a file" in r.output
    # a path below a regular file cannot be created, even by root
    r = CliRunner().invoke(main, ["generate", "--num", "1", "--out", str(target / "run"), *SMALL])
    assert r.exit_code != 0 and "not writable" in r.output


def test_existing_runs_are_protected(tmp_path):
    out = tmp_path / "run"
    assert cli("generate", "--num", 2, "--out", out, "--seed", 1, *SMALL).exit_code == 0
    before = shard_bytes(out)
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(out), "--seed", "2", *SMALL])
    assert r.exit_code != 0 and "different run" in r.output and "seed" in r.output
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(out), "--seed", "1", *SMALL])
    assert r.exit_code != 0 and "--resume" in r.output
    # resuming with another shard size would re-plan which indices each shard holds
    r = CliRunner().invoke(main, ["generate", "--num", "2", "--out", str(out), "--seed", "1", "--shard-size", "1",
                                  "--resume", *SMALL])
    assert r.exit_code != 0 and "shard_size" in r.output
    assert shard_bytes(out) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = CliRunner().invoke(main, ["generate", "--num", "1", "--out", str(other), *SMALL])
    assert r.exit_code != 0 and "not empty" in r.output and (other / "notes.txt").read_text() == "mine"


def test_resume_after_losing_a_shard_gives_the_same_bytes(tmp_path):
    rec = load_recipe("default", ["size=[96, 64]"])
    run_generate(rec, "builtin", 5, tmp_path / "clean", seed=2, shard_size=2, progress=False)
    out = tmp_path / "broken"
    run_generate(rec, "builtin", 5, out, seed=2, shard_size=2, progress=False)
    # simulate a crash: the last shard was half-written (tmp name), the manifest never recorded it
    import shutil

    m = Manifest.load(out)
    last = m.shards[-1]
    m.shards = m.shards[:-1]
    m.save(out)
    shutil.move(out / last.name, out / (last.name + ".tmp"))
    summary = run_generate(rec, "builtin", 5, out, seed=2, shard_size=2, resume=True, progress=False)
    assert summary.shards_reused == 2 and summary.shards_done == 1
    assert shard_bytes(out) == shard_bytes(tmp_path / "clean")
    assert not list(out.glob("*.tmp"))


def test_folder_source_skips_bad_images_with_reasons(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    cv2.imwrite(str(src / "a_good.jpg"), data.astronaut()[..., ::-1])
    (src / "b_empty.png").write_bytes(b"")
    (src / "c_text.png").write_text("not an image")
    good = cv2.imencode(".jpg", data.coffee()[..., ::-1])[1].tobytes()
    (src / "d_truncated.jpg").write_bytes(good[: len(good) // 3])
    cv2.imwrite(str(src / "e_tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(src / "f_gray16.png"), (data.camera().astype(np.uint16) * 257))
    cv2.imwrite(str(src / "g_gray8.png"), data.camera())
    rgba = np.dstack([data.astronaut()[..., ::-1], np.full((512, 512), 200, np.uint8)])
    cv2.imwrite(str(src / "h_rgba.png"), rgba)
    from PIL import Image

    Image.fromarray(data.coffee()).convert("CMYK").save(src / "i_cmyk.jpg", quality=90)
    assert Image.open(src / "i_cmyk.jpg").mode == "CMYK"
    out = tmp_path / "run"
    r = cli("generate", "--num", 9, "--out", out, "--source", f"folder:{src}", *SMALL)
    assert r.exit_code == 0, r.output
    m = Manifest.load(out)
    reasons = {s["source_id"]: s["reason"] for s in m.skipped}
    assert set(reasons) == {"b_empty.png", "c_text.png", "d_truncated.jpg", "e_tiny.png"}
    assert "truncated" in reasons["d_truncated.jpg"]
    assert "empty file" in reasons["b_empty.png"] and "decode" in reasons["c_text.png"]
    assert "too small" in reasons["e_tiny.png"]
    assert m.num_written == 9 - len(reasons)
    assert "skipped" in r.output
    ids = [ShardDataset(out)[i]["meta"]["source_id"] for i in range(m.num_written)]
    assert ids == ["a_good.jpg", "f_gray16.png", "g_gray8.png", "h_rgba.png", "i_cmyk.jpg"]


@pytest.mark.parametrize("name,make", [
    ("gray16.png", lambda p: cv2.imwrite(str(p), data.camera().astype(np.uint16) * 257)),
    ("rgba.png", lambda p: cv2.imwrite(str(p), np.dstack([data.coffee()[..., ::-1], np.full((400, 600), 9, np.uint8)]))),
    ("cmyk.jpg", lambda p: __import__("PIL.Image", fromlist=["Image"]).fromarray(data.coffee()).convert("CMYK")
     .save(p, quality=95)),
])
def test_reader_converts_unusual_images_to_rgb8(tmp_path, name, make):
    from blursynth.sources import read_image

    path = tmp_path / name
    make(path)
    img = read_image(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    if name.startswith("gray16"):
        assert np.array_equal(img[..., 0], data.camera()) and np.array_equal(img[..., 0], img[..., 2])
    else:
        # colour order is RGB and the alpha / CMYK conversion keeps the photo (JPEG within a few levels)
        tol = 0 if name.startswith("rgba") else 12
        assert np.abs(img.astype(int) - data.coffee()).mean() <= max(tol, 0.01)


def test_missing_source_folder_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(main, ["generate", "--num", "1", "--out", str(tmp_path / "o"), "--source",
                                  f"folder:{tmp_path / 'nope'}", *SMALL])
    assert r.exit_code != 0 and "does not exist" in r.output


def test_recipe_errors_name_the_field():
    with pytest.raises(RecipeError, match="render.method"):
        load_recipe("default", {"render.method": "magic"})
    with pytest.raises(RecipeError, match="shake.models.wobble"):
        load_recipe("default", {"shake.models": {"wobble": 1.0}})
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("no-such-recipe")
    with pytest.raises(RecipeError, match="output.codec"):
        load_recipe("default", ["output.codec=gif"])
    with pytest.raises(RecipeError, match="shake.models.rotational.*layered"):
        load_recipe("default", ["render.method=layered"])
    ok = load_recipe("default", ["render.method=layered", "shake.models={bf: 1}", "scene.objects.rotation_deg=[0, 0]",
                                 "scene.objects.scale=[1, 1]"])
    assert ok.render.method == "layered"


def test_reference_width_scales_the_pixel_ranges_and_is_validated():
    r = load_recipe("default", ["size=[320, 180]"])
    assert r.reference_width == 1280 and r.px_factor == 0.25
    assert r.px_range(r.shake.length_px) == (0.5, 7.5)  # [2, 30] px at 1280 wide
    assert load_recipe("default").px_factor == 1.0  # at the recipe's own size nothing changes
    assert load_recipe("default", ["size=[320, 180]", "reference_width=null"]).px_range((2.0, 30.0)) == (2.0, 30.0)
    with pytest.raises(RecipeError, match="reference_width"):
        load_recipe("default", ["reference_width=0"])
    # sbdd's kernels must fit their kernel_size as drawn at the output size: 4-30 px fit 33x33 at 1280 wide,
    # not at twice that width, and the message says why
    load_recipe("sbdd", ["size=[640, 360]"])
    with pytest.raises(RecipeError, match=r"shake.length_px.*x 2 at 2560 px wide"):
        load_recipe("sbdd", ["size=[2560, 1440]"])
    load_recipe("sbdd", ["size=[2560, 1440]", "render.kernel_size=65"])


def test_compose_fills_behind_moving_segments_with_background():
    h, w = 64, 96
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 1] = 180  # green field
    img[20:44, 30:60] = (220, 20, 20)  # a red object
    mask = np.zeros((1, h, w), bool)
    mask[0, 20:44, 30:60] = True
    rec = load_recipe("default", ["size=[96, 64]", "scene.objects.count=[1, 1]", "scene.objects.speed_px=[30, 30]",
                                  "scene.objects.max_area=0.5", "shake.models={none: 1}", "shake.parallax_px=[0, 0]",
                                  "scene.highlight_boost=[0, 0]", "reference_width=null"])
    scene, params = compose(img, mask, ["thing"], rec, np.random.default_rng(0), Response("srgb"))
    assert [l.label for l in scene.layers] == ["background", "thing"]
    assert params["objects"][0]["mask_index"] == 0 and params["objects"][0]["speed_px"] == 30.0
    bg = scene.layers[0].rgb
    # behind the object the background layer holds inpainted green, not red
    assert bg[32, 45, 0] < 0.05 and bg[32, 45, 1] > 0.3
    exp = render(scene)
    # the object leaves part of its own footprint during the exposure: there blur mixes in green
    assert exp.blur[32, 45, 1] > 0.0
    assert np.allclose(exp.sharp[32, 45], scene.layers[1].rgb[32, 45], atol=1e-6)


def test_light_sources_get_the_full_highlight_boost_and_saturate_after_blur():
    h, w = 48, 64
    img = np.full((h, w, 3), 120, np.uint8)
    img[20:24, 30:34] = 200  # a lamp that is not near white in the photo
    lights = np.zeros((h, w), bool)
    lights[20:24, 30:34] = True
    rec = load_recipe("default", ["size=[64, 48]", "scene.objects.count=[0, 0]", "scene.highlight_boost=[3, 3]",
                                  "shake.models={none: 1}", "shake.parallax_px=[0, 0]"])
    masks = np.zeros((0, h, w), bool)
    plain, _ = compose(img, masks, [], rec, np.random.default_rng(0), Response("gamma", 2.2))
    lit, _ = compose(img, masks, [], rec, np.random.default_rng(0), Response("gamma", 2.2), lights)
    lin = (200 / 255) ** 2.2
    assert plain.layers[0].rgb[21, 31, 0] == pytest.approx(lin, rel=1e-5)
    assert lit.layers[0].rgb[21, 31, 0] == pytest.approx(4 * lin, rel=1e-5)
    assert lit.layers[0].rgb[5, 5, 0] == plain.layers[0].rgb[5, 5, 0]


def test_recipe_dataclass_defaults_equal_pipelines_default_yaml():
    """The default recipe is written twice (the dataclass defaults and pipelines/default.yaml): they must agree,
    field by field, so that a change to one is a test failure until the other follows."""
    from blursynth.recipe import Recipe

    assert Recipe().validate().to_dict() == load_recipe("default").to_dict()
