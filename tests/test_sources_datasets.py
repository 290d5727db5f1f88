"""COCO and ADE20K sources on small datasets written here from scikit-image photos, through real pycocotools."""
import json
import logging
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from skimage import data

from blursynth.commands import main
from blursynth.sources import SOURCES, Ade20kSource, CocoSource, SourceError, open_source, read_image, spec_forms
from blursynth.sources.ade20k import read_seg
from blursynth.sources.base import random_view
from blursynth.store.codec import decode_meta
from blursynth.store.manifest import Manifest
from blursynth.store.shard import ShardReader

# pycocotools' decode under numpy 2 warns about __array__(copy=...); harmless and not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

PHOTOS = {"astronaut.jpg": data.astronaut, "coffee.jpg": data.coffee, "chelsea.jpg": data.chelsea}
CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 17, "name": "cat", "supercategory": "animal"},
    {"id": 52, "name": "banana", "supercategory": "food"},
]


def box_polygon(x0, y0, x1, y1):
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def rect_mask(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    """A COCO layout: annotations/instances_val2017.json, images under images/val2017/ and val2017/."""
    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "images" / "val2017").mkdir(parents=True)
    (root / "val2017").mkdir()
    images, sizes = [], {}
    for image_id, (name, load) in enumerate(PHOTOS.items(), start=1):
        photo = load()
        folder = root / "val2017" if name == "chelsea.jpg" else root / "images" / "val2017"
        cv2.imwrite(str(folder / name), photo[..., ::-1])
        h, w = photo.shape[:2]
        sizes[image_id] = (h, w)
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
    images.append({"id": 4, "file_name": "missing.jpg", "height": 100, "width": 100})
    # image ids listed out of order: the source sorts them
    images = images[::-1]

    h, w = sizes[1]
    crowd_counts = _uncompressed_counts(rect_mask(h, w, 300, 300, 420, 400))
    h2, w2 = sizes[2]
    car = mask_utils.encode(np.asfortranarray(rect_mask(h2, w2, 100, 150, 260, 300)))
    anns = [
        # astronaut: one moving person; the crowd, the tiny person and the banana never move
        {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 0,
         "segmentation": [[180.0, 100.0, 300.0, 110.0, 310.0, 230.0, 240.0, 260.0, 170.0, 220.0]]},
        {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": float(crowd_counts["area"]),
         "segmentation": {"size": [h, w], "counts": crowd_counts["counts"]}},
        {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 1600.0,
         "segmentation": [box_polygon(20, 20, 60, 60)]},
        {"id": 13, "image_id": 1, "category_id": 52, "iscrowd": 0, "area": 20000.0,
         "segmentation": [box_polygon(380, 40, 500, 200)]},
        # coffee: a compressed-RLE car and a cat whose polygon runs past the right and bottom edges
        {"id": 20, "image_id": 2, "category_id": 3, "iscrowd": 0, "area": float(mask_utils.area(car)),
         "segmentation": {"size": car["size"], "counts": car["counts"].decode("ascii")}},
        {"id": 21, "image_id": 2, "category_id": 17, "iscrowd": 0, "area": 30000.0,
         "segmentation": [box_polygon(w2 - 100, h2 - 80, w2 + 150, h2 + 200)]},
        # chelsea: a cat entirely outside the image and a degenerate polygon: no usable instance
        {"id": 30, "image_id": 3, "category_id": 17, "iscrowd": 0, "area": 9000.0,
         "segmentation": [box_polygon(1000, 1000, 1200, 1200)]},
        {"id": 31, "image_id": 3, "category_id": 17, "iscrowd": 0, "area": 0.0, "segmentation": [[1.0, 2.0, 3.0, 4.0]]},
        {"id": 40, "image_id": 4, "category_id": 1, "iscrowd": 0, "area": 5000.0,
         "segmentation": [box_polygon(0, 0, 80, 80)]},
    ]
    dataset = {"images": images, "annotations": anns, "categories": CATEGORIES}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(dataset))
    return root


def _uncompressed_counts(mask: np.ndarray) -> dict:
    """Uncompressed (list) RLE counts, column-major as COCO's iscrowd annotations store them."""
    flat = mask.T.reshape(-1)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs
    return {"counts": runs, "area": int(mask.sum())}


# what each image should yield: (label, annotation id) of its moving instances
EXPECTED = {"astronaut.jpg": [("person", 10)], "coffee.jpg": [("car", 20), ("cat", 21)], "chelsea.jpg": []}


def view_matrix(view: dict, w: int) -> np.ndarray:
    """The affine `random_view` documents: output (x, y) <- photo ((x + off) / scale), optional flip."""
    s, (ox, oy), flip = view["scale"], view["offset"], view["flip"]
    if flip:
        return np.array([[-s, 0.0, w * s - 1.0 - ox], [0.0, s, -oy]])
    return np.array([[s, 0.0, -ox], [0.0, s, -oy]])


def expected_view_masks(coco: COCO, file_name: str, view: dict, size) -> dict:
    """Annotation id -> (label, bool (H, W)): pycocotools' mask warped independently with the item's view."""
    img = next(i for i in coco.imgs.values() if i["file_name"] == file_name)
    out = {}
    for label, ann_id in EXPECTED[file_name]:
        m = coco.annToMask(coco.anns[ann_id])
        warped = cv2.warpAffine(m, view_matrix(view, img["width"]), size, flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_REFLECT_101)
        if warped.any():
            out[ann_id] = (label, warped.astype(bool))
    return out


def test_coco_identity_view_gives_the_annotated_instances(coco_root):
    coco = COCO(str(coco_root / "annotations" / "instances_val2017.json"))
    # the crowd region is a valid, large person mask: only iscrowd keeps it still
    assert np.array_equal(coco.annToMask(coco.anns[11]), rect_mask(512, 512, 300, 300, 420, 400))
    for index, file_name in enumerate(["astronaut.jpg", "coffee.jpg", "chelsea.jpg"]):
        img = next(i for i in coco.imgs.values() if i["file_name"] == file_name)
        size = (img["width"], img["height"])
        src = CocoSource(coco_root, size, max_zoom=1.0)
        item = src.get(index, np.random.default_rng(index))
        assert item.view["scale"] == pytest.approx(1.0) and item.view["offset"] == [0.0, 0.0]
        assert item.source_id == file_name == src.source_id(index)
        assert item.masks.dtype == bool and item.masks.shape[1:] == (img["height"], img["width"])
        assert item.image.shape == (img["height"], img["width"], 3) and item.lights is None
        want = {}
        for label, ann_id in EXPECTED[file_name]:
            m = coco.annToMask(coco.anns[ann_id]).astype(bool)
            want[label] = m[:, ::-1] if item.view["flip"] else m
        assert sorted(item.labels) == sorted(want)
        for label, m in zip(item.labels, item.masks):
            assert np.array_equal(m, want[label]), (file_name, label)


def test_coco_masks_follow_the_random_view(coco_root):
    coco = COCO(str(coco_root / "annotations" / "instances_val2017.json"))
    size = (128, 96)
    src = CocoSource(coco_root, size)
    flips = set()
    for seed in range(8):
        for index, file_name in ((0, "astronaut.jpg"), (1, "coffee.jpg")):
            item = src.get(index, np.random.default_rng(seed))
            flips.add(item.view["flip"])
            # the image is exactly base.random_view's with the same stream
            ref, _, ref_view = random_view(read_image(_coco_file(coco_root, file_name)), None, size,
                                           np.random.default_rng(seed))
            assert item.view == ref_view and np.array_equal(item.image, ref)
            want = expected_view_masks(coco, file_name, item.view, size)
            got = sorted(zip(item.labels, item.masks), key=lambda lm: lm[0])
            assert [label for label, _ in got] == sorted(label for label, _ in want.values())
            for label, m in got:
                assert any(label == wl and np.array_equal(m, wm) for wl, wm in want.values()), (seed, label)
            areas = item.masks.reshape(len(item.masks), -1).sum(axis=1)
            assert np.all(areas > 0) and np.all(np.diff(areas) <= 0)
    assert flips == {True, False}


def _coco_file(root: Path, name: str) -> Path:
    return next(p for p in (root / "val2017" / name, root / "images" / "val2017" / name) if p.is_file())


def test_coco_missing_image_and_bad_roots(coco_root, tmp_path):
    src = CocoSource(coco_root, (64, 48))
    assert len(src.image_ids) == 4 and "4 images" in src.describe()
    with pytest.raises(SourceError, match="missing image file missing.jpg") as info:
        src.get(3, np.random.default_rng(0))
    assert str(coco_root / "images" / "val2017" / "missing.jpg") in str(info.value)
    assert src.source_id(7) == "missing.jpg"  # i mod n

    # the JSON itself as ROOT, and the first of several instances files
    direct = open_source(f"coco:{coco_root / 'annotations' / 'instances_val2017.json'}", (64, 48))
    assert isinstance(direct, CocoSource) and direct.root == coco_root
    assert direct.get(1, np.random.default_rng(0)).source_id == "coffee.jpg"

    broken = tmp_path / "broken"
    (broken / "annotations").mkdir(parents=True)
    (broken / "annotations" / "instances_a.json").write_text('{"images": [')
    (broken / "annotations" / "instances_b.json").write_text("{}")
    with pytest.raises(ValueError, match="instances_a.json.*not valid JSON"):
        open_source(f"coco:{broken}", (64, 48))
    (broken / "annotations" / "instances_a.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="instances_a.json.*not a COCO instances file"):
        CocoSource(broken, (64, 48))
    with pytest.raises(ValueError, match="instances_b.json lists no images"):
        CocoSource(broken / "annotations" / "instances_b.json", (64, 48))
    with pytest.raises(ValueError, match="does not exist"):
        CocoSource(tmp_path / "nope", (64, 48))
    with pytest.raises(ValueError, match="no annotations/instances"):
        CocoSource(tmp_path, (64, 48))
    with pytest.raises(ValueError, match="builtin, folder:DIR, coco:ROOT or ade20k:ROOT"):
        open_source("lvis:/data", (64, 48))
    with pytest.raises(ValueError, match="unknown source"):
        open_source("coco", (64, 48))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_metas(out: Path) -> list[dict]:
    metas = []
    for shard in sorted(out.glob("shard-*.lmdb")):
        reader = ShardReader(shard)
        metas += [decode_meta(reader.get(i, "meta")) for i in reader.indices()]
        reader.close()
    return metas


def test_generate_from_coco_records_category_labels_and_skips(coco_root, tmp_path):
    out = tmp_path / "run"
    r = cli("generate", "--num", 4, "--out", out, "--source", f"coco:{coco_root}", "--size", "128x96",
            "--no-progress", "--set", "scene.objects.count=[2, 3]")
    assert r.exit_code == 0, r.output
    m = Manifest.load(out)
    assert m.num_written == 3
    assert [(s["index"], s["source_id"]) for s in m.skipped] == [(3, "missing.jpg")]
    assert "missing image file missing.jpg" in m.skipped[0]["reason"]
    metas = run_metas(out)
    assert sorted(meta["source_id"] for meta in metas) == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    labels = {meta["source_id"]: sorted(o["label"] for o in meta["scene"]["objects"]) for meta in metas}
    assert labels["chelsea.jpg"] == []
    assert labels["astronaut.jpg"] == ["person"]
    assert labels["coffee.jpg"] and set(labels["coffee.jpg"]) <= {"car", "cat"}


# ---------------------------------------------------------------------------------------------- ADE20K

CAR, PERSON, LAMP, WALL = 300, 3, 4, 1  # CAR > 255 puts part of the class in the R channel


def encode_seg(classes: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """ADE20K's encoding (R = class // 256 * 10, G = class % 256, B = instance) as a BGR array for cv2."""
    r = (classes // 256) * 10
    g = classes % 256
    return np.stack([instances, g, r], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ade")
    street = root / "images" / "ADE" / "training" / "street"
    street.mkdir(parents=True)
    names = [f"thing{k}" for k in range(1, 320)]
    names[WALL - 1], names[PERSON - 1], names[LAMP - 1] = "wall", "person, individual, someone", "Lamp"
    names[CAR - 1] = "car, auto, automobile, machine, motorcar"
    (root / "classes.txt").write_text("\n".join(names) + "\n")

    # a: a car, a car too small to move, a lamp with a saturated part, a bright wall (not a light)
    photo = data.coffee().copy()
    h, w = photo.shape[:2]
    classes = np.full((h, w), WALL, np.int32)
    instances = np.zeros((h, w), np.int32)
    classes[100:160, 200:260] = CAR
    instances[100:160, 200:260] = 1
    classes[300:315, 50:70] = CAR  # 300 px
    instances[300:315, 50:70] = 2
    classes[20:80, 400:480] = LAMP
    instances[20:80, 400:480] = 3
    photo[30:60, 420:460] = 255
    photo[200:260, 500:560] = 255  # bright wall
    cv2.imwrite(str(street / "a.jpg"), photo[..., ::-1])
    cv2.imwrite(str(street / "a_seg.png"), encode_seg(classes, instances))

    # b: a big car, but a person in the picture: background-only
    photo = data.chelsea()
    h, w = photo.shape[:2]
    classes = np.full((h, w), WALL, np.int32)
    instances = np.zeros((h, w), np.int32)
    classes[50:150, 50:200] = CAR
    instances[50:150, 50:200] = 1
    classes[200:260, 300:340] = PERSON
    instances[200:260, 300:340] = 2
    cv2.imwrite(str(street / "b.jpg"), photo[..., ::-1])
    cv2.imwrite(str(street / "b_seg.png"), encode_seg(classes, instances))

    # c: a segmentation whose photo is missing
    cv2.imwrite(str(street / "c_seg.png"), encode_seg(classes, instances))
    return root


def ade_truth(root: Path, stem: str):
    """(photo as the source reads it, moving car mask, lights mask) of image `stem`, from the written files."""
    street = root / "images" / "ADE" / "training" / "street"
    photo = read_image(street / f"{stem}.jpg")
    seg = cv2.imread(str(street / f"{stem}_seg.png"))
    classes = (seg[..., 2].astype(int) // 10) * 256 + seg[..., 1]
    car = (seg[..., 0] == 1) & (classes == CAR) if stem == "a" else np.zeros(classes.shape, bool)
    lights = (classes == LAMP) & (photo.max(axis=2) > 250)
    return photo, car, lights


def test_read_seg_decodes_class_and_instance(ade_root):
    classes, instances = read_seg(ade_root / "images" / "ADE" / "training" / "street" / "a_seg.png")
    assert classes.dtype == np.int32 and classes[120, 220] == CAR and classes[0, 0] == WALL
    assert classes[50, 450] == LAMP and instances[120, 220] == 1 and instances[305, 60] == 2
    assert instances[0, 0] == 0 and set(np.unique(instances)) == {0, 1, 2, 3}


def test_ade20k_car_person_rule_and_lights(ade_root):
    photo_a, car_a, lights_a = ade_truth(ade_root, "a")
    assert lights_a.sum() > 1000 and not lights_a[200:260, 500:560].any()
    photo_b, _, _ = ade_truth(ade_root, "b")
    src = Ade20kSource(ade_root, (photo_a.shape[1], photo_a.shape[0]), max_zoom=1.0)
    assert len(src.segs) == 3 and "classes.txt" in src.describe()
    item = src.get(0, np.random.default_rng(1))
    assert item.source_id == str(Path("images/ADE/training/street/a.jpg")) == src.source_id(0)
    flip = (lambda m: m[:, ::-1]) if item.view["flip"] else (lambda m: m)
    assert item.labels == ["car"] and np.array_equal(item.masks[0], flip(car_a))
    assert item.lights.dtype == bool and np.array_equal(item.lights, flip(lights_a))

    item_b = Ade20kSource(ade_root, (photo_b.shape[1], photo_b.shape[0])).get(1, np.random.default_rng(0))
    assert item_b.masks.shape[0] == 0 and item_b.labels == [] and not item_b.lights.any()
    with pytest.raises(SourceError, match="missing image file c.jpg"):
        src.get(2, np.random.default_rng(0))

    # random views: car and lights move with the image, as an independent warp of the truth puts them
    size = (128, 96)
    src = Ade20kSource(ade_root, size)
    for seed in range(6):
        item = src.get(0, np.random.default_rng(seed))
        A = view_matrix(item.view, photo_a.shape[1])
        warp = lambda m: cv2.warpAffine(m.astype(np.uint8), A, size, flags=cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_REFLECT_101).astype(bool)
        assert np.array_equal(item.lights, warp(lights_a))
        car = warp(car_a)
        assert (item.labels, len(item.masks)) == ((["car"], 1) if car.any() else ([], 0))
        if car.any():
            assert np.array_equal(item.masks[0], car)


def test_ade20k_names_from_index_pickle_or_indices(ade_root, tmp_path, caplog):
    photo_a, car_a, lights_a = ade_truth(ade_root, "a")
    size = (photo_a.shape[1], photo_a.shape[0])
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (ade_root / "images" / "ADE" / "training" / "street").glob("a*"):
        (bare / f.name).write_bytes(f.read_bytes())
    with caplog.at_level(logging.WARNING, logger="blursynth.sources.ade20k"):
        unnamed = Ade20kSource(bare, size, max_zoom=1.0)
    assert "match nothing" in caplog.text
    item = unnamed.get(0, np.random.default_rng(0))
    assert item.masks.shape[0] == 0 and not item.lights.any()
    item = Ade20kSource(bare, size, moving_classes=(CAR,), light_classes=[LAMP], max_zoom=1.0).get(
        0, np.random.default_rng(0))
    flip = (lambda m: m[:, ::-1]) if item.view["flip"] else (lambda m: m)
    assert item.labels == [f"class_{CAR}"] and np.array_equal(item.masks[0], flip(car_a))
    assert np.array_equal(item.lights, flip(lights_a))

    names = (ade_root / "classes.txt").read_text().splitlines()
    names[LAMP - 1] = "table lamp"
    with open(bare / "index_ade20k.pkl", "wb") as f:
        pickle.dump({"objectnames": names, "wordnet_name": []}, f)
    src = Ade20kSource(bare, size, max_zoom=1.0)
    assert "index_ade20k.pkl" in src.describe()
    item = src.get(0, np.random.default_rng(0))
    assert item.labels == ["car"] and np.array_equal(item.lights, flip(lights_a))

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no \\*_seg.png"):
        open_source(f"ade20k:{tmp_path / 'empty'}", size)
    with pytest.raises(ValueError, match="does not exist"):
        open_source(f"ade20k:{tmp_path / 'nope'}", size)


def test_generate_from_ade20k(ade_root, tmp_path):
    out = tmp_path / "run"
    r = cli("generate", "--num", 3, "--out", out, "--source", f"ade20k:{ade_root}", "--size", "128x96",
            "--no-progress", "--set", "scene.objects.count=[1, 2]", "--seed", 2)
    assert r.exit_code == 0, r.output
    m = Manifest.load(out)
    assert m.num_written == 2 and [s["index"] for s in m.skipped] == [2]
    assert "missing image file c.jpg" in m.skipped[0]["reason"]
    for meta in run_metas(out):
        labels = [o["label"] for o in meta["scene"]["objects"]]
        assert labels == (["car"] if meta["source_id"].endswith("a.jpg") else []), meta["source_id"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    import cv2
    import skimage.data

    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee"):
        cv2.imwrite(str(root / f"{name}.png"), getattr(skimage.data, name)()[..., ::-1])
    return root


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_same_index_and_stream_give_the_same_item(kind, coco_root, ade_root, photo_folder):
    """Every kind of the SOURCES table (a new kind needs its test data here), opened from its spec."""
    arg = {"builtin": None, "folder": photo_folder, "coco": coco_root, "ade20k": ade_root}[kind]
    src = open_source(kind if arg is None else f"{kind}:{arg}", (96, 64))
    for index in (0, 1):
        a, b = (src.get(index, np.random.default_rng([7, index])) for _ in range(2))
        assert a.view == b.view and a.labels == b.labels and a.source_id == b.source_id
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
        assert (a.lights is None and b.lights is None) or np.array_equal(a.lights, b.lights)
        c = src.get(index, np.random.default_rng([8, index]))
        assert c.view != a.view


def test_the_sources_table_is_what_specs_help_and_errors_name():
    from blursynth.commands.generate import generate

    assert spec_forms() == "builtin, folder:DIR, coco:ROOT or ade20k:ROOT"
    help_text = next(p for p in generate.params if p.name == "source").help
    for kind, entry in SOURCES.items():
        assert (kind if entry.arg is None else f"{kind}:{entry.arg} ({entry.help})") in help_text
        bad = f"{kind}:x" if entry.arg is None else kind  # an argument where none is taken, or none where one is
        with pytest.raises(ValueError, match=f"unknown source .*{spec_forms()}"):
            open_source(bad, (64, 48))
    with pytest.raises(ValueError, match="SAM segmentation applies to folder:DIR sources only"):
        open_source("builtin", (64, 48), sam={"checkpoint": None, "model_type": "tiny"})
