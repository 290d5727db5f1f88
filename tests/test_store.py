"""Codecs, LMDB shards and the manifest, on real photos and real LMDB environments."""
import json
import os

import cv2
import lmdb
import numpy as np
import pytest
import qoi
from skimage import data as skdata

from blursynth.store import (
    FORMAT_VERSION,
    IMAGE_CODECS,
    Manifest,
    ShardInfo,
    ShardReader,
    ShardWriter,
    decode_array,
    decode_image,
    decode_meta,
    encode_array,
    encode_image,
    encode_meta,
    is_complete,
    shard_name,
)
from blursynth.store import shard as shard_module
from blursynth.store.codec import encode_zstd


def _images():
    chelsea = skdata.chelsea()[:299, :451]  # odd height and width
    return {
        "rgb_odd": chelsea,
        "rgb_noncontiguous": skdata.astronaut()[::3, ::5],
        "gray": skdata.camera()[:257, :131],
        "one_row": skdata.coffee()[:1],
    }


IMAGES = _images()


@pytest.mark.parametrize("codec", IMAGE_CODECS)
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_codecs_round_trip_exactly(codec, name):
    img = IMAGES[name]
    out = decode_image(encode_image(img, codec), codec)
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("codec", IMAGE_CODECS)
def test_gray_with_channel_axis_comes_back_2d(codec):
    gray = IMAGES["gray"]
    out = decode_image(encode_image(gray[:, :, None], codec), codec)
    np.testing.assert_array_equal(out, gray)


@pytest.mark.parametrize("level", [0, 1, 9])
def test_png_levels_round_trip(level):
    img = IMAGES["rgb_odd"]
    np.testing.assert_array_equal(decode_image(encode_image(img, "png", level), "png"), img)


def test_zstd_with_and_without_row_delta():
    img = IMAGES["rgb_odd"]
    plain, delta = encode_zstd(img, delta=False), encode_zstd(img, delta=True)
    np.testing.assert_array_equal(decode_image(plain, "zstd"), img)
    np.testing.assert_array_equal(decode_image(delta, "zstd"), img)
    assert len(delta) < len(plain)


def test_png_is_a_standard_png_in_true_colour(tmp_path):
    img = skdata.astronaut()
    path = tmp_path / "astronaut.png"
    path.write_bytes(encode_image(img, "png"))
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(bgr[:, :, ::-1], img)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    path.write_bytes(encode_image(red, "png"))
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 255]  # cv2 reads BGR


def test_qoi_is_a_standard_qoi():
    img = IMAGES["rgb_odd"]
    np.testing.assert_array_equal(qoi.decode(encode_image(img, "qoi")), img)


def test_unknown_codec_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"'webp'.*png, qoi, zstd"):
        encode_image(IMAGES["gray"], "webp")
    with pytest.raises(ValueError, match="webp"):
        decode_image(b"", "webp")


@pytest.mark.parametrize(
    "img", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)]
)
def test_bad_images_are_refused(img):
    with pytest.raises(ValueError):
        encode_image(img, "png")


def test_qoi_has_no_level():
    with pytest.raises(ValueError, match="level"):
        encode_image(IMAGES["gray"], "qoi", level=3)


@pytest.mark.parametrize("codec", IMAGE_CODECS)
def test_corrupt_image_data_raises_value_error(codec):
    good = encode_image(IMAGES["rgb_odd"], codec)
    for bad in (b"", b"not an image at all", good[: len(good) // 2]):
        with pytest.raises(ValueError, match=codec):
            decode_image(bad, codec)


def test_zstd_bad_header_raises_value_error():
    good = encode_image(IMAGES["rgb_odd"], "zstd")
    with pytest.raises(ValueError, match="magic"):
        decode_image(b"XXXX" + good[4:], "zstd")


ARRAYS = {
    "float16_map": np.array([[[0.5, -0.25, np.inf]], [[np.nan, 65504.0, -0.0]]], np.float16),
    "uint8_mask": (skdata.camera()[:33, :17] > 100).astype(np.uint8),
    "int64": np.arange(-5, 7, dtype=np.int64).reshape(3, 4) * (1 << 40),
    "events": np.array(
        [(12, 3, 4, 1), (99, 0, 1, -1)], dtype=[("t_us", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "i1")]
    ),
    "scalar": np.array(3.25),
    "empty": np.zeros((0, 3), np.float32),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
    "strided": np.arange(40, dtype=np.float64).reshape(5, 8)[::2, ::3],
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_array_round_trip_is_exact(name):
    arr = ARRAYS[name]
    out = decode_array(encode_array(arr))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert out.tobytes() == np.ascontiguousarray(arr).tobytes()  # bit-exact, NaN and -0.0 included


def test_array_refuses_objects_and_corrupt_data():
    with pytest.raises(ValueError, match="pickl"):
        encode_array(np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="corrupt"):
        decode_array(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        decode_array(encode_array(ARRAYS["int64"])[:-4])


def test_meta_round_trip_with_numpy_values():
    meta = {
        "seed": np.int64(7),
        "gain": np.float32(1.5),
        "flag": np.bool_(True),
        "path": np.arange(3, dtype=np.int32),
        "homography": np.eye(3),
        "nested": [{"b": np.uint8(2), "a": (1, 2.5)}],
        "source_id": "photo-ü",
        np.int64(3): None,
    }
    raw = encode_meta(meta)
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert decode_meta(raw) == {
        "seed": 7,
        "gain": 1.5,
        "flag": True,
        "path": [0, 1, 2],
        "homography": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        "nested": [{"a": [1, 2.5], "b": 2}],
        "source_id": "photo-ü",
        "3": None,
    }


def test_meta_errors():
    with pytest.raises(ValueError, match="NaN"):
        encode_meta({"x": float("nan")})
    with pytest.raises(TypeError, match="object"):
        encode_meta({"x": object()})
    with pytest.raises(ValueError, match="corrupt"):
        decode_meta(b"{not json")
    with pytest.raises(ValueError, match="object"):
        decode_meta(b"[1, 2]")


def _records(n=5, start=0):
    photos = [skdata.astronaut()[:64, :80], skdata.coffee()[:64, :80], skdata.chelsea()[:64, :80]]
    out = {}
    for k in range(n):
        sharp = photos[k % 3]
        blur = cv2.GaussianBlur(sharp, (0, 0), 1.0 + k)
        out[start + k] = {
            "blur": encode_image(blur, "png"),
            "sharp": encode_image(sharp, "png"),
            "meta": encode_meta({"index": start + k}),
        }
    return out


def _write(out_dir, shard_index, records, order=None):
    with ShardWriter(out_dir, shard_index) as writer:
        for index in order if order is not None else records:
            writer.put(index, records[index])
    return writer.info


def test_shard_round_trip_is_byte_exact(tmp_path):
    records = _records()
    info = _write(tmp_path, 3, records)
    assert info.name == shard_name(3) == "shard-00003.lmdb"
    assert info.indices == list(records) and info.count == len(records)
    assert info.nbytes == sum(len(v) for r in records.values() for v in r.values())
    assert is_complete(tmp_path / info.name)
    assert not (tmp_path / (info.name + ".tmp")).exists()

    reader = ShardReader(tmp_path / info.name)
    assert reader.indices() == list(records)
    assert reader.fields() == ["blur", "meta", "sharp"]
    for index, record in records.items():
        for field, value in record.items():
            assert reader.get(index, field) == value
    assert reader.checksum() == info.checksum
    with pytest.raises(KeyError, match="flow"):
        reader.get(0, "flow")
    with pytest.raises(KeyError, match="99"):
        reader.get(99, "blur")
    reader.close()


def test_readers_of_one_shard_share_it_and_survive_a_fork(tmp_path):
    records = _records(3)
    info = _write(tmp_path, 0, records)
    a, b = ShardReader(tmp_path / info.name), ShardReader(tmp_path / info.name)
    assert a.get(1, "blur") == b.get(1, "blur") == records[1]["blur"]
    a.close()
    assert b.get(2, "sharp") == records[2]["sharp"]
    pid = os.fork()
    if pid == 0:  # child: the environment b opened in the parent must be replaced, not reused
        ok = b.get(0, "meta") == records[0]["meta"] and ShardReader(tmp_path / info.name).checksum() == info.checksum
        os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert b.get(0, "meta") == records[0]["meta"]
    b.close()


def test_a_reader_collected_while_its_thread_holds_the_table_lock_does_not_deadlock(tmp_path, monkeypatch):
    """Garbage collection runs ShardReader.__del__ at any allocation, also inside _acquire / _release while this
    thread holds the environment table's (non-reentrant) lock: a DataLoader read in test_integrity hung forever
    so. __del__ must not wait on the lock; the release it queues is done by the next acquire."""
    import threading

    records = _records(2)
    path = tmp_path / _write(tmp_path, 0, records).name
    reader = ShardReader(path)
    assert reader.get(0, "blur") == records[0]["blur"]
    key = reader._key
    lock = threading.Lock()
    monkeypatch.setattr(shard_module, "_shared_lock", lock)
    collected = threading.Event()

    def collect_inside_the_lock():
        with lock:  # as _acquire holds it when a collection strikes
            reader.__del__()
        collected.set()

    threading.Thread(target=collect_inside_the_lock, daemon=True).start()
    assert collected.wait(10), "ShardReader.__del__ waited on the lock its own thread holds"
    assert shard_module._shared[key][2] == 1  # still open: the release is queued, not lost
    other = ShardReader(path)
    assert other.get(1, "sharp") == records[1]["sharp"]
    assert shard_module._shared[key][2] == 1  # the queued release was done by this acquire
    other.close()
    assert key not in shard_module._shared


def test_checksum_ignores_batching_and_order_but_not_bytes(tmp_path, monkeypatch):
    records = _records(6)
    reference = _write(tmp_path / "a", 0, records).checksum
    monkeypatch.setattr(shard_module, "_BATCH_RECORDS", 1)
    assert _write(tmp_path / "b", 0, records, order=[5, 2, 0, 1, 4, 3]).checksum == reference
    monkeypatch.setattr(shard_module, "_BATCH_BYTES", 1)
    assert _write(tmp_path / "c", 0, records).checksum == reference

    changed = {k: dict(v) for k, v in records.items()}
    blob = bytearray(changed[4]["sharp"])
    blob[len(blob) // 2] ^= 1
    changed[4]["sharp"] = bytes(blob)
    info = _write(tmp_path / "d", 0, changed)
    assert info.checksum != reference
    assert ShardReader(tmp_path / "d" / info.name).checksum() == info.checksum


def test_exception_inside_writer_leaves_nothing(tmp_path):
    records = _records(3)
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path, 1) as writer:
            for index, record in records.items():
                writer.put(index, record)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="aborted"):
        writer.put(9, records[0])


def test_writer_refuses_bad_puts_without_aborting(tmp_path):
    with ShardWriter(tmp_path, 0) as writer:
        writer.put(0, {"blur": b"x"})
        with pytest.raises(ValueError, match="already"):
            writer.put(0, {"blur": b"y"})
        with pytest.raises(ValueError, match="field"):
            writer.put(1, {"a/b": b"y"})
        with pytest.raises(TypeError, match="bytes"):
            writer.put(1, {"blur": np.zeros(3)})
    assert writer.info.indices == [0]


def test_rewriting_a_shard_replaces_it(tmp_path):
    _write(tmp_path, 0, _records(3))
    info = _write(tmp_path, 0, _records(2, start=10))
    assert sorted(p.name for p in tmp_path.iterdir()) == [shard_name(0)]
    assert ShardReader(tmp_path / info.name).indices() == [10, 11]


def _leave_stale_tmp(out_dir, shard_index, records):
    """What a writer killed mid-shard leaves: a real LMDB environment under the .tmp name."""
    tmp = out_dir / (shard_name(shard_index) + ".tmp")
    env = lmdb.open(str(tmp), map_size=1 << 26, subdir=True)
    with env.begin(write=True) as txn:
        for index, record in records.items():
            for field, value in record.items():
                txn.put(f"{index:09d}/{field}".encode(), value)
    env.close()
    assert (tmp / "data.mdb").is_file()
    return tmp


def test_stale_tmp_shard_is_not_complete_nor_read(tmp_path):
    from blursynth.data import ShardDataset

    info = _write(tmp_path, 0, _records(3))
    tmp = _leave_stale_tmp(tmp_path, 1, _records(2, start=3))
    assert is_complete(tmp_path / info.name)
    assert not is_complete(tmp)
    assert not is_complete(tmp_path / shard_name(7))
    with pytest.raises(FileNotFoundError, match="not a complete shard"):
        ShardReader(tmp).indices()

    Manifest(recipe={}, seed=0, num_requested=5, image_size=[80, 64], codec="png", shards=[info]).save(tmp_path)
    ds = ShardDataset(tmp_path)
    assert len(ds) == 3
    assert sorted(ds[i]["index"] for i in range(len(ds))) == [0, 1, 2]

    # The next writer of that shard starts clean.
    _write(tmp_path, 1, _records(1, start=8))
    assert not tmp.exists()


def _manifest(**kw):
    args = dict(
        recipe={"name": "default", "blur": {"exposure_s": 0.02, "samples": (8, 16)}},
        seed=1234,
        num_requested=10,
        image_size=(1280, 720),
        codec="zstd",
        command="blursynth generate --num 10 --out x",
    )
    args.update(kw)
    return Manifest(**args)


def test_manifest_round_trip(tmp_path):
    records = _records(3)
    infos = [_write(tmp_path, 0, dict(list(records.items())[:2])), _write(tmp_path, 1, dict(list(records.items())[2:]))]
    m = _manifest(
        shards=infos,
        skipped=[
            {"index": 3, "source_id": "a.jpg", "reason": "unreadable image"},
            {"index": 5, "source_id": "b.jpg", "reason": "unreadable image"},
            {"index": 7, "source_id": "c.jpg", "reason": "empty annotation"},
        ],
        extra={"note": np.float32(0.5)},
    )
    m.save(tmp_path)
    assert not (tmp_path / "manifest.json.tmp").exists()
    loaded = Manifest.load(tmp_path)
    assert loaded.to_dict() == m.to_dict()
    assert loaded.shards == infos
    assert loaded.num_written == 3
    assert loaded.format_version == FORMAT_VERSION
    assert loaded.skipped_by_reason() == {"empty annotation": 1, "unreadable image": 2}
    assert loaded.identity() == m.identity()
    assert loaded.identity()["image_size"] == [1280, 720]
    assert loaded.identity() != _manifest(seed=1235).identity()
    assert {"python", "numpy", "lmdb", "cv2"} <= set(loaded.versions)
    assert Manifest.load(tmp_path / "manifest.json").seed == 1234


def test_manifest_add_shard_replaces_same_name(tmp_path):
    m = _manifest()
    m.add_shard(ShardInfo("shard-00001.lmdb", [2, 3], 2, 10, "b"))
    m.add_shard(ShardInfo("shard-00000.lmdb", [0, 1], 2, 10, "a"))
    m.add_shard(ShardInfo("shard-00001.lmdb", [2], 1, 5, "c"))
    assert [(s.name, s.checksum) for s in m.shards] == [("shard-00000.lmdb", "a"), ("shard-00001.lmdb", "c")]
    assert m.num_written == 3


def test_manifest_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        Manifest.load(tmp_path)
    path = tmp_path / "manifest.json"
    path.write_text('{"format_version": 1, "seed": ')
    with pytest.raises(ValueError, match="corrupt"):
        Manifest.load(tmp_path)
    d = _manifest().to_dict()
    path.write_text(json.dumps({**d, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        Manifest.load(tmp_path)
    del d["codec"]
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="codec"):
        Manifest.load(tmp_path)
