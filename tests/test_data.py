"""ShardDataset over an output directory written by the store, read back through a real DataLoader."""
import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata
from torch.utils.data import DataLoader

from blursynth.data import ShardDataset, collate
from blursynth.store import Manifest, ShardWriter, encode_array, encode_image, encode_meta

H, W = 48, 64
SHIFT = (3, 5)  # (dy, dx) of the shifted pair


def _photo(k):
    photos = (skdata.astronaut, skdata.coffee, skdata.chelsea)
    return cv2.resize(photos[k % 3](), (W, H), interpolation=cv2.INTER_AREA)


def _sources():
    """Sample index -> (blur, sharp) uint8 RGB (H, W, 3). Index 4 is skipped, 5 has blur == sharp and
    6 has blur = sharp shifted by SHIFT."""
    out = {}
    for index in (0, 1, 2, 3, 7):
        sharp = _photo(index)
        out[index] = (cv2.GaussianBlur(sharp, (0, 0), 1.5), sharp)
    out[5] = (_photo(5), _photo(5))
    out[6] = (np.roll(_photo(6), SHIFT, axis=(0, 1)), _photo(6))
    return out


def _coords():
    """(H, W, 2) int32 source (y, x) of each pixel: follows each pixel through crop and augmentation."""
    return np.stack(np.mgrid[:H, :W], axis=-1).astype(np.int32)


BLUR_VECTOR = np.array([0.6, -0.8, 7.0], np.float16)  # (u_x, u_y, magnitude px)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    sources = _sources()
    coords = encode_array(_coords())
    blur_map = encode_array(np.broadcast_to(BLUR_VECTOR, (H, W, 3)))
    infos = []
    for shard_index, indices in enumerate([(0, 1, 2, 3), (5, 6, 7)]):
        with ShardWriter(root, shard_index) as writer:
            for index in indices:
                blur, sharp = sources[index]
                writer.put(index, {
                    "blur": encode_image(blur, "qoi"),
                    "sharp": encode_image(sharp, "qoi"),
                    "coords": coords,
                    "blur_map": blur_map,
                    "meta": encode_meta({"source_id": f"photo-{index}", "motions": list(range(index))}),
                })
        infos.append(writer.info)
    Manifest(
        recipe={"name": "test"}, seed=0, num_requested=8, image_size=[W, H], codec="qoi", shards=infos,
        skipped=[{"index": 4, "source_id": "photo-4", "reason": "unreadable image"}],
    ).save(root)
    return root


def test_full_samples_equal_sources_over_255(root):
    ds = ShardDataset(root)
    sources = _sources()
    assert len(ds) == 7
    assert [ds[i]["index"] for i in range(len(ds))] == [0, 1, 2, 3, 5, 6, 7]
    for i in range(len(ds)):
        sample = ds[i]
        blur, sharp = sources[sample["index"]]
        for name, src in (("blur", blur), ("sharp", sharp)):
            t = sample[name]
            assert t.dtype == torch.float32 and t.shape == (3, H, W)
            expected = src.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            np.testing.assert_array_equal(t.numpy(), expected)
        assert sample["meta"]["source_id"] == f"photo-{sample['index']}"
    assert ds[-1]["index"] == 7
    with pytest.raises(IndexError):
        ds[7]


def test_extra_fields_are_decoded(root):
    sample = ShardDataset(root, fields=("blur", "sharp", "blur_map", "coords"))[0]
    assert sample["blur_map"].dtype == torch.float32 and sample["blur_map"].shape == (3, H, W)
    np.testing.assert_array_equal(sample["blur_map"][:, 0, 0].numpy(), BLUR_VECTOR.astype(np.float32))
    assert sample["coords"].dtype == torch.int32 and sample["coords"].shape == (2, H, W)


@pytest.mark.parametrize("crop", [32, (24, 40)])
def test_crop_and_augment_apply_one_transform_to_every_field(root, crop):
    ds = ShardDataset(root, crop=crop, augment=True, fields=("blur", "sharp", "coords", "blur_map"), seed=7)
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    sources = _sources()
    seen_transforms = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            blur, sharp = sources[s["index"]]
            y, x = s["coords"][0].numpy(), s["coords"][1].numpy()
            assert s["sharp"].shape[1:] == s["blur"].shape[1:] == y.shape
            assert sorted(y.shape) == sorted((ch, cw))
            # Every output pixel of every field comes from the same source pixel.
            np.testing.assert_array_equal(s["sharp"].numpy(), sharp[y, x].transpose(2, 0, 1) / np.float32(255))
            np.testing.assert_array_equal(s["blur"].numpy(), blur[y, x].transpose(2, 0, 1) / np.float32(255))
            if s["index"] == 5:
                assert torch.equal(s["blur"], s["sharp"])
            if s["index"] == 6:
                # blur is sharp moved by SHIFT in the source frame; the crop keeps that relation.
                shifted = sharp[(y - SHIFT[0]) % H, (x - SHIFT[1]) % W]
                np.testing.assert_array_equal(s["blur"].numpy(), shifted.transpose(2, 0, 1) / np.float32(255))
            # The blur direction turns with the image: source +x / +y steps seen in output coordinates.
            dx_src = np.array([x[0, 1] - x[0, 0], x[1, 0] - x[0, 0]], np.float32)
            dy_src = np.array([y[0, 1] - y[0, 0], y[1, 0] - y[0, 0]], np.float32)
            ux, uy, mag = BLUR_VECTOR.astype(np.float32)
            expected = ux * dx_src + uy * dy_src
            np.testing.assert_array_equal(s["blur_map"][:2, 0, 0].numpy(), expected)
            assert s["blur_map"][2, 0, 0] == mag
            seen_transforms.add((tuple(dx_src), tuple(dy_src)))
    assert len(seen_transforms) == (8 if ch == cw else 4)  # transposes only for square crops


def test_crops_are_deterministic_per_seed_and_epoch(root):
    def windows(seed, epoch):
        ds = ShardDataset(root, crop=16, augment=True, fields=("sharp", "coords"), seed=seed)
        ds.set_epoch(epoch)
        return [ds[i]["coords"].numpy() for i in range(len(ds))]

    a, b = windows(0, 0), windows(0, 0)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, windows(0, 1)))
    assert not all(np.array_equal(p, q) for p, q in zip(a, windows(1, 0)))


def test_crop_larger_than_image_is_an_error(root):
    with pytest.raises(ValueError, match="larger"):
        ShardDataset(root, crop=H + 1)[0]


def test_missing_shard_is_an_error(root, tmp_path):
    m = Manifest.load(root)
    m.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="shard-00000.lmdb"):
        ShardDataset(tmp_path)


def test_dataloader_with_two_workers_yields_every_sample_once(root):
    ds = ShardDataset(root, crop=16, augment=True)
    ds[0]  # an environment opened in the parent before the fork must not leak into the workers
    loader = DataLoader(ds, batch_size=3, shuffle=True, num_workers=2, collate_fn=collate)
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen = []
        for batch in loader:
            assert batch["blur"].shape[1:] == (3, 16, 16) and batch["blur"].dtype == torch.float32
            assert len(batch["meta"]) == len(batch["index"])
            seen += batch["index"].tolist()
        assert sorted(seen) == [0, 1, 2, 3, 5, 6, 7]
    assert ds[1]["index"] == 1  # the parent's environment is untouched by the workers


def test_two_datasets_over_one_directory(root):
    # Both hold the same shard files open at once; LMDB allows that only through one shared environment.
    full, again = ShardDataset(root), ShardDataset(root)
    assert torch.equal(full[2]["sharp"], again[2]["sharp"])
    assert torch.equal(full[6]["blur"], again[6]["blur"])


def _event_counts(h, w):
    """(h, w) int: how many events the test puts at each sensor pixel (1..5, varies across the frame)."""
    return 1 + (np.arange(h * w).reshape(h, w) * 7 // 3) % 5


@pytest.fixture(scope="module", params=[1, 2], ids=["events-full", "events-half"])
def event_root(request, tmp_path_factory):
    from blursynth.events import EVENT_DTYPE, encode_events

    scale = request.param
    root = tmp_path_factory.mktemp(f"events{scale}")
    eh, ew = H // scale, W // scale
    counts = _event_counts(eh, ew)
    ys, xs = np.nonzero(counts > 0)
    reps = counts[ys, xs]
    ev = np.zeros(int(reps.sum()), EVENT_DTYPE)
    ev["y"], ev["x"] = np.repeat(ys, reps), np.repeat(xs, reps)
    ev["t"] = np.arange(len(ev)) % 1000
    ev["p"] = np.where(np.arange(len(ev)) % 2, 1, -1)
    ev = ev[np.argsort(ev["t"], kind="stable")]
    with ShardWriter(root, 0) as writer:
        for index in (0, 1):
            writer.put(index, {"blur": encode_image(_photo(index), "qoi"), "sharp": encode_image(_photo(index), "qoi"),
                               "coords": encode_array(_coords()), "events": encode_events(ev),
                               "meta": encode_meta({"events": {"exposure_us": [0, 1000], "width": ew, "height": eh,
                                                               "scale": scale}})})
    Manifest(recipe={"name": "test"}, seed=0, num_requested=2, image_size=[W, H], codec="qoi",
             shards=[writer.info]).save(root)
    return root, scale


def test_events_voxel_grid_is_cropped_and_flipped_with_the_images(event_root):
    root, scale = event_root
    counts = _event_counts(H // scale, W // scale)
    ds = ShardDataset(root, crop=16, augment=True, fields=("blur", "sharp", "coords", "events"), event_bins=3, seed=1)
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            vox = s["events"]
            assert vox.dtype == torch.float32 and vox.shape == (6, 16 // scale, 16 // scale)
            y, x = s["coords"][0].numpy(), s["coords"][1].numpy()
            # every event adds 1 in total over its pixel's channels, so the channel sum is the event count there
            src = counts[y[::scale, ::scale] // scale, x[::scale, ::scale] // scale]
            np.testing.assert_allclose(vox.sum(0).numpy(), src, atol=1e-5)
            if scale > 1:  # each event pixel covers whole scale x scale blocks of image pixels
                assert np.all(y // scale == np.repeat(np.repeat(y[::scale, ::scale] // scale, scale, 0), scale, 1))


def test_on_the_fly_is_deterministic_in_any_number_of_workers():
    from blursynth.data import OnTheFly
    from blursynth.generate import make_sample
    from blursynth.sources import open_source

    ds = OnTheFly("default", length=4, crop=32, augment=True, size=(64, 48), seed=5, blur_map=True)

    def epoch(e, workers):
        ds.set_epoch(e)
        loader = DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate,
                            multiprocessing_context=ds.multiprocessing_context if workers else None)
        return list(loader)

    serial, parallel = epoch(0, 0), epoch(0, 2)
    for a, b in zip(serial, parallel):
        for key in ("blur", "sharp", "blur_map", "index"):
            assert torch.equal(a[key], b[key]), key
        assert a["meta"] == b["meta"]
    assert torch.cat([b["index"] for b in serial]).tolist() == [0, 1, 2, 3]
    nxt = epoch(1, 0)
    assert torch.cat([b["index"] for b in nxt]).tolist() == [4, 5, 6, 7]
    assert not torch.equal(nxt[0]["blur"], serial[0]["blur"])
    # epoch 0 holds exactly the pairs `blursynth generate` makes at these indices
    full = OnTheFly("default", length=4, size=(64, 48), seed=5)
    direct = make_sample(full.recipe, open_source("builtin", (64, 48)), 5, 2)
    assert torch.equal(full[2]["blur"], torch.from_numpy(direct.blur.transpose(2, 0, 1) / np.float32(255)))
    assert torch.equal(full[2]["sharp"], torch.from_numpy(direct.sharp.transpose(2, 0, 1) / np.float32(255)))


def test_video_windows_read_as_frame_stacks_with_one_crop(tmp_path):
    """`blursynth video --format lmdb` windows: blur and sharp come back as (W, 3, h, w) stacks, every frame of
    the window cut and flipped alike (a still clip has blur == sharp in every frame, before and after)."""
    from click.testing import CliRunner

    from _util import write_video
    from blursynth.commands import main
    from blursynth.store import ShardReader
    from blursynth.store.codec import decode_image

    frames = [np.ascontiguousarray(skdata.astronaut()[100:148, 150 + 2 * i:214 + 2 * i]) for i in range(8)]
    frames[4:] = [frames[4]] * 4  # a pan, then still
    clip = write_video(tmp_path / "pan.avi", frames, fps=20.0)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["video", str(clip), "--out", str(out), "--format", "lmdb", "--window", "2",
                                       "--latent", "2", "--no-noise", "--workers", "0", "--no-filters",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    full = ShardDataset(out)
    reader = ShardReader(out / full.manifest.shards[0].name)
    assert len(full) == len(reader.indices()) == 3
    for i in range(len(full)):
        item = full[i]
        assert item["blur"].shape == item["sharp"].shape == (2, 3, H, W)
        for k in range(2):
            stored = decode_image(reader.get(item["index"], f"sharp_{k}"), full.manifest.codec)
            assert torch.equal(item["sharp"][k], torch.from_numpy(stored).permute(2, 0, 1).float() / 255.0)
    still = full[len(full) - 1]
    assert torch.equal(still["blur"], still["sharp"])
    cropped = ShardDataset(out, crop=32, augment=True, seed=3)
    for epoch in range(4):
        cropped.set_epoch(epoch)
        item = cropped[len(cropped) - 1]
        assert item["blur"].shape == (2, 3, 32, 32) and torch.equal(item["blur"], item["sharp"])
        assert torch.equal(item["sharp"][0], item["sharp"][1])  # the same window of both frames
    with pytest.raises(ValueError, match="video windows"):
        ShardDataset(out, fields=("blur", "sharp", "events"))[0]


def test_crop_with_blur_redraws_windows_where_nothing_moved():
    from blursynth.data import CROP_TRIES, crop_and_augment, crop_with_blur

    sharp = _photo(0)
    blur = sharp.copy()
    blur[16:32, 24:40] = 255 - blur[16:32, 24:40]  # only this 16x16 box differs
    arrays = {"blur": blur, "sharp": sharp}
    crop, threshold = (16, 16), 0.05

    def moved(s):
        return float((s["blur"] - s["sharp"]).abs().mean()) >= threshold

    with_rule, plain = 0, 0
    for seed in range(60):
        got = crop_with_blur(arrays, np.random.default_rng(seed), crop, True, None, threshold)
        # the rule by hand: the first of CROP_TRIES draws from one stream that moved, else the last
        rng = np.random.default_rng(seed)
        for _ in range(CROP_TRIES):
            want = crop_and_augment(arrays, rng, crop, True)
            if moved(want):
                break
        assert torch.equal(got["blur"], want["blur"]) and torch.equal(got["sharp"], want["sharp"])
        first = crop_and_augment(arrays, np.random.default_rng(seed), crop, True)
        off = crop_with_blur(arrays, np.random.default_rng(seed), crop, True, None, 0.0)
        assert torch.equal(off["blur"], first["blur"])  # 0: exactly one draw, as without the option
        with_rule += moved(got)
        plain += moved(first)
    assert plain < 30 and with_rule > 50


def test_min_crop_blur_keeps_a_window_of_a_pair_where_nothing_moved(root):
    ds = ShardDataset(root, crop=16, augment=True, fields=("blur", "sharp"), min_crop_blur=0.05)
    static = [i for i in range(len(ds)) if ds.locate(i)[1] == 5][0]  # blur == sharp everywhere
    s = ds[static]
    assert s["blur"].shape == (3, 16, 16) and torch.equal(s["blur"], s["sharp"])
    with pytest.raises(ValueError, match="min_crop_blur"):
        ShardDataset(root, crop=16, min_crop_blur=-1.0)
