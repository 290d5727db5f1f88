"""SAM segmenter: a tiny segment_anything model at random weights on a real photo, checkpoint loading, errors.

No trained weights exist offline, so the masks themselves are not judged; the tests check the contract (shapes,
dtypes, labels), determinism, that a checkpoint file's weights are the ones used, and the label painting.
"""
import json
import pickle

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from blursynth.segment.sam import OFFICIAL_CHECKPOINTS, SamSegmenter, paint_labels

# random weights score every mask low: with SAM's quality thresholds nothing would be kept
LOOSE = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)


@pytest.fixture(scope="module")
def photo():
    return cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def seed0_labels(photo):
    return SamSegmenter.tiny(seed=0, **LOOSE)(photo)


def test_tiny_model_segments_a_photo(photo, seed0_labels):
    seg = SamSegmenter.tiny(seed=0, **LOOSE)
    masks, scores = seg.masks(photo)
    assert masks.dtype == bool and masks.ndim == 3 and masks.shape[1:] == photo.shape[:2]
    assert len(masks) >= 1 and scores.shape == (len(masks),) and scores.dtype == np.float32
    areas = masks.sum(axis=(1, 2))
    assert np.all(areas > 0) and np.all(np.diff(areas) <= 0), "masks come largest first"

    labels = seg(photo)
    assert labels.shape == photo.shape[:2] and labels.dtype == np.int32
    assert labels.max() >= 1
    present = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(present, np.arange(1, labels.max() + 1))
    np.testing.assert_array_equal(labels, paint_labels(masks))
    np.testing.assert_array_equal(labels, seed0_labels)


def test_same_seed_same_labels_other_seed_other_labels(photo, seed0_labels):
    rng_state = torch.get_rng_state()
    again = SamSegmenter.tiny(seed=0, **LOOSE)(photo)
    other = SamSegmenter.tiny(seed=1, **LOOSE)(photo)
    np.testing.assert_array_equal(again, seed0_labels)
    assert not np.array_equal(other, seed0_labels)
    assert torch.equal(torch.get_rng_state(), rng_state), "building a random model must not move the global RNG"


def test_image_larger_than_model_input():
    # 320 x 240 exceeds the tiny model's 256 px input: SAM's resize maps it in, masks come back at full size
    image = cv2.resize(data.coffee(), (320, 240), interpolation=cv2.INTER_AREA)
    labels = SamSegmenter.tiny(seed=0, **LOOSE)(image)
    assert labels.shape == (240, 320) and labels.dtype == np.int32 and labels.max() >= 1


def test_checkpoint_weights_are_used(tmp_path, photo):
    source = SamSegmenter.tiny(seed=3, **LOOSE)
    path = tmp_path / "tiny.pth"
    torch.save(source.model.state_dict(), path)
    # seed is only for random weights: the file's weights (seed 3) must win over seed 0
    loaded = SamSegmenter(path, model_type="tiny", seed=0, **LOOSE)
    for key, value in source.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    np.testing.assert_array_equal(loaded(photo), source(photo))


def test_registry_model_and_checkpoint_mismatch(tmp_path):
    # segment_anything's own vit_b builder (about 90M parameters, built in a second or two; no inference here)
    vit_b = SamSegmenter(None, model_type="vit_b", device="cpu").model
    assert vit_b.image_encoder.img_size == 1024
    assert 85e6 < sum(p.numel() for p in vit_b.parameters()) < 100e6
    path = tmp_path / "tiny.pth"
    torch.save(SamSegmenter.tiny().model.state_dict(), path)
    seg = SamSegmenter(path, model_type="vit_b", device="cpu")
    with pytest.raises(ValueError, match="does not fit model type 'vit_b'"):
        _ = seg.model


def test_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(FileNotFoundError) as err:
        SamSegmenter(missing, model_type="vit_b")
    assert str(missing) in str(err.value) and OFFICIAL_CHECKPOINTS["vit_b"] in str(err.value)
    with pytest.raises(FileNotFoundError, match="torch.save"):
        SamSegmenter(tmp_path / "tiny.pth", model_type="tiny")


@pytest.mark.parametrize("kwargs, match", [
    (dict(model_type="vit_x"), "vit_b, vit_l, vit_h, tiny"),
    (dict(model_type="tiny", device="tpu"), "device"),
    (dict(model_type="tiny", pred_iou_thresh=1.5), "pred_iou_thresh"),
    (dict(model_type="tiny", points_per_side=0), "points_per_side"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamSegmenter(None, **kwargs)


def test_bad_image():
    seg = SamSegmenter.tiny(**LOOSE)
    with pytest.raises(ValueError, match="uint8"):
        seg.masks(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        seg.masks(np.zeros((32, 32), dtype=np.uint8))


def test_device_auto():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert SamSegmenter.tiny(device="auto").device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            SamSegmenter.tiny(device="cuda")


def test_pickles_as_configuration():
    seg = SamSegmenter.tiny(seed=5, **LOOSE)
    weights = seg.model.state_dict()
    blob = pickle.dumps(seg)
    assert len(blob) < 10_000, "the weights must not travel with the segmenter"
    copy = pickle.loads(blob)
    for key, value in weights.items():
        assert torch.equal(copy.model.state_dict()[key], value), key


def test_paint_labels_keeps_small_masks_on_top():
    big = np.zeros((6, 6), dtype=bool)
    big[:, :4] = True
    covered = np.zeros((6, 6), dtype=bool)
    covered[0:2, 0:2] = True
    small = np.zeros((6, 6), dtype=bool)
    small[0:2, 0:3] = True  # paints over all of `covered`
    masks = np.stack([big, covered, small])
    expected = np.zeros((6, 6), dtype=np.int32)
    expected[:, :4] = 1
    expected[0:2, 0:3] = 2  # `covered` left no pixel: `small` is renumbered 3 -> 2
    np.testing.assert_array_equal(paint_labels(masks), expected)
    assert paint_labels(np.zeros((0, 4, 5), dtype=bool)).shape == (4, 5)


def test_folder_run_segmented_with_sam_end_to_end(tmp_path):
    """A folder source segmented by the tiny SAM (random weights, thresholds lowered so it yields masks)."""
    import cv2
    from click.testing import CliRunner
    from skimage import data

    from blursynth.commands import main
    from blursynth.data import ShardDataset
    from blursynth.recipe import load_recipe
    from blursynth.runner import run_generate
    from blursynth.store.manifest import Manifest

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), data.astronaut()[..., ::-1])
    # random weights: seed 20 gives one mask that passes the instance filters (area <= 40%, compact) in both views
    sam = {"checkpoint": None, "model_type": "tiny", "seed": 20, "points_per_side": 8, "pred_iou_thresh": 0.0,
           "stability_score_thresh": 0.0}
    recipe = load_recipe("default", ["size=[96, 64]", "scene.objects.count=[1, 1]", "scene.objects.min_area=0",
                                     "scene.objects.max_area=1", "scene.objects.speed_px=[5, 5]"])
    out = tmp_path / "run"
    run_generate(recipe, f"folder:{photos}", 2, out, progress=False, sam=sam)
    assert Manifest.load(out).extra["sam"] == sam
    metas = [ShardDataset(out)[i]["meta"] for i in range(2)]
    assert all(len(m["scene"]["objects"]) == 1 for m in metas)
    # flags: a missing checkpoint is a usage error before any work
    r = CliRunner().invoke(main, ["generate", "--num", "1", "--out", str(tmp_path / "x"), "--source",
                                  f"folder:{photos}", "--sam-checkpoint", str(tmp_path / "nope.pth")])
    assert r.exit_code == 2 and "nope.pth" in r.output and not (tmp_path / "x").exists()
    r = CliRunner().invoke(main, ["generate", "--num", "1", "--out", str(tmp_path / "x"), "--sam-model", "tiny"])
    assert r.exit_code == 2 and "folder:DIR" in r.output


def test_sam_in_actors_gives_the_same_samples(tmp_path):
    """The GPU layout (SAM in actors that hold the model, tasks send them images), exercised on the CPU."""
    import cv2
    from skimage import data

    from blursynth.recipe import load_recipe
    from blursynth.runner import run_generate

    from _util import shard_bytes

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), data.astronaut()[..., ::-1])
    cv2.imwrite(str(photos / "b.png"), data.coffee()[..., ::-1])
    sam = {"checkpoint": None, "model_type": "tiny", "seed": 20, "points_per_side": 8, "pred_iou_thresh": 0.0,
           "stability_score_thresh": 0.0}
    recipe = load_recipe("default", ["size=[96, 64]", "scene.objects.min_area=0", "scene.objects.max_area=1"])
    run_generate(recipe, f"folder:{photos}", 4, tmp_path / "local", shard_size=2, progress=False, sam=sam)
    run_generate(recipe, f"folder:{photos}", 4, tmp_path / "actors", shard_size=2, progress=False, sam=sam,
                 workers=1, sam_actors=1)

    local = shard_bytes(tmp_path / "local", by_shard=False)
    assert local == shard_bytes(tmp_path / "actors", by_shard=False)
    # not vacuous: SAM's masks made moving objects in some samples
    metas = [json.loads(v) for (_, field), v in local.items() if field == "meta"]
    assert any(m["scene"]["objects"] for m in metas)
