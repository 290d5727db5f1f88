"""Event formats: byte form, h5 (read back with plain h5py), npz, GEM npz; voxel grid against hand-computed
weights."""
import h5py
import numpy as np
import pytest

from blursynth.events import EVENT_DTYPE, decode_events, encode_events, voxel_grid
from blursynth.events import concatenate_events
from blursynth.events.formats import (H5_CHUNK, H5EventWriter, read_gem_npz, read_h5, read_npz, write_gem_npz,
                                     write_h5, write_npz)


def random_events(rng, n, h=50, w=70, t_span=200_000, sort=True):
    ev = np.empty(n, EVENT_DTYPE)
    ev["t"] = rng.integers(10**9, 10**9 + t_span, n)
    if sort:
        ev["t"].sort()
    ev["x"] = rng.integers(0, w, n)
    ev["y"] = rng.integers(0, h, n)
    ev["p"] = rng.choice(np.array([-1, 1], np.int8), n)
    return ev


@pytest.mark.parametrize("case", ["sorted", "unsorted", "empty", "one", "big_gaps", "odd_p", "wide_xy"])
def test_encode_decode_is_byte_exact(case):
    rng = np.random.default_rng(3)
    ev = random_events(rng, 5000, sort=case != "unsorted")
    if case == "empty":
        ev = ev[:0]
    elif case == "one":
        ev = ev[:1]
    elif case == "big_gaps":
        ev["t"] = np.cumsum(rng.integers(0, 2**40, len(ev)))
    elif case == "odd_p":
        ev["p"][::7] = 0
    elif case == "wide_xy":
        ev["x"] = rng.integers(0, 65536, len(ev))
        ev["y"] = 65535
    data = encode_events(ev)
    back = decode_events(data)
    assert back.dtype == EVENT_DTYPE
    assert back.tobytes() == ev.tobytes()
    if case == "sorted":
        assert len(data) < 0.5 * ev.nbytes


def test_decode_rejects_garbage():
    with pytest.raises(ValueError, match="event data"):
        decode_events(b"nonsense")
    good = encode_events(random_events(np.random.default_rng(0), 100))
    with pytest.raises(ValueError, match="event data"):
        decode_events(good[:-5])
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        encode_events(np.zeros(3))


def test_h5_round_trip_and_plain_h5py_layout(tmp_path):
    ev = random_events(np.random.default_rng(1), 100_000)
    path = write_h5(tmp_path / "ev.h5", ev, height=50, width=70, attrs={"scale": 4})
    with h5py.File(path, "r") as f:  # what a DSEC-style loader reads
        t = f["events/t"][:] + f["t_offset"][()]
        np.testing.assert_array_equal(t, ev["t"])
        np.testing.assert_array_equal(f["events/x"][:], ev["x"])
        np.testing.assert_array_equal(f["events/y"][:], ev["y"])
        np.testing.assert_array_equal(f["events/p"][:], ev["p"])
        assert f["events/t"].chunks is not None and f["events/t"].compression == "gzip"
        ms_to_idx = f["ms_to_idx"][:]
        t_rel = f["events/t"][:]
        for k in (0, 1, 57, len(ms_to_idx) - 1):  # first event at or after k ms
            i = int(ms_to_idx[k])
            assert t_rel[i] >= 1000 * k and (i == 0 or t_rel[i - 1] < 1000 * k)
        assert f["events"].attrs["scale"] == 4 and f["events"].attrs["width"] == 70
    back, attrs = read_h5(path)
    assert back.tobytes() == ev.tobytes()
    assert attrs["height"] == 50


@pytest.mark.parametrize("n", [0, 1, 999, H5_CHUNK, H5_CHUNK + 1, 3 * H5_CHUNK + 17])
def test_h5_writer_streams_the_bytes_of_one_write(tmp_path, n):
    # the events of a stream, appended in uneven pieces (empty ones too), give the file write_h5 writes for all
    # of them at once: same datasets, chunks (the count's own below H5_CHUNK), values and bytes; ms_to_idx is
    # numpy's searchsorted over the whole stream
    rng = np.random.default_rng(n)
    ev = random_events(rng, n, t_span=5_000_000)
    whole = write_h5(tmp_path / "whole.h5", ev, height=50, width=70, attrs={"scale": 2})
    writer = H5EventWriter(tmp_path / "stream.h5")
    cuts = np.sort(rng.integers(0, n + 1, 9))
    for part in np.split(ev, cuts):
        writer.append(part)
    assert not (tmp_path / "stream.h5").exists() and (tmp_path / "stream.h5.part").exists()
    stream = writer.close(height=50, width=70, attrs={"scale": 2})
    assert writer.count == n and not (tmp_path / "stream.h5.part").exists()
    assert stream.read_bytes() == whole.read_bytes()
    with h5py.File(stream, "r") as f:
        assert f["events/t"].chunks == (min(H5_CHUNK, max(n, 1)),)
        t_rel = ev["t"] - (ev["t"][0] if n else 0)
        last_ms = int(t_rel[-1]) // 1000 if n else -1
        np.testing.assert_array_equal(f["ms_to_idx"][:], np.searchsorted(t_rel, 1000 * np.arange(last_ms + 1)))
    back, _ = read_h5(stream)
    assert back.tobytes() == ev.tobytes()


def test_h5_writer_failure_keeps_the_earlier_file(tmp_path):
    ev = random_events(np.random.default_rng(3), 2 * H5_CHUNK)
    path = write_h5(tmp_path / "ev.h5", ev[:100])
    before = path.read_bytes()
    writer = H5EventWriter(path)
    writer.append(ev[H5_CHUNK:])  # one chunk written to ev.h5.part
    with pytest.raises(ValueError, match="sorted by t"):
        writer.append(ev[:10])  # earlier than what came before
    writer.abort()
    assert path.read_bytes() == before and not (tmp_path / "ev.h5.part").exists()
    with pytest.raises(ValueError, match="sorted by t"):
        write_h5(path, ev[::-1])
    assert path.read_bytes() == before and not (tmp_path / "ev.h5.part").exists()


def test_concatenate_events_is_numpys():
    rng = np.random.default_rng(4)
    parts = [random_events(rng, k) for k in (0, 5, 1, 300)]
    assert concatenate_events(parts).tobytes() == np.concatenate(parts).tobytes()
    assert concatenate_events(parts[2:3]) is parts[2]
    empty = concatenate_events([])
    assert empty.dtype == EVENT_DTYPE and len(empty) == 0


def test_npz_and_gem_npz_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    ev = random_events(rng, 3000)
    write_npz(tmp_path / "ev.npz", ev, height=50, width=70)
    assert read_npz(tmp_path / "ev.npz").tobytes() == ev.tobytes()
    with np.load(tmp_path / "ev.npz") as z:
        assert int(z["width"]) == 70 and z["t"].dtype == np.int64
    blur = rng.integers(0, 256, (3, 200, 280), dtype=np.uint8)
    sharp = rng.integers(0, 256, (4, 3, 200, 280), dtype=np.uint8)
    write_gem_npz(tmp_path / "gem.npz", blur1=blur, exp_start1=10, exp_end1=30, blur2=blur[::-1],
                  exp_start2=50, exp_end2=70, events=ev, sharp_imgs=sharp, sharp_timestamps=[10, 15, 20, 25],
                  scale_factor=4)
    with np.load(tmp_path / "gem.npz", allow_pickle=True) as z:  # what GEM's loader does
        d = z["events"].item()
        assert set(d) == {"x", "y", "t", "p"}
        np.testing.assert_array_equal(d["t"], ev["t"])
        assert int(z["exp_end2"]) == 70 and int(z["scale_factor"]) == 4
        np.testing.assert_array_equal(z["blur1"], blur)
    gem = read_gem_npz(tmp_path / "gem.npz")
    assert gem["events"].tobytes() == ev.tobytes()
    np.testing.assert_array_equal(gem["sharp_imgs"], sharp)


def test_voxel_grid_mass_and_single_event_weights():
    rng = np.random.default_rng(4)
    ev = random_events(rng, 20_000, h=6, w=9)
    t0, t1 = int(ev["t"][100]), int(ev["t"][-100])
    grid = voxel_grid(ev, 5, 6, 9, t0, t1)
    assert grid.shape == (10, 6, 9) and grid.dtype == np.float32 and grid.min() >= 0
    inside = (ev["t"] >= t0) & (ev["t"] <= t1)
    assert grid.sum(dtype=np.float64) == pytest.approx(inside.sum(), rel=1e-6)
    assert grid[0::2].sum(dtype=np.float64) == pytest.approx((inside & (ev["p"] > 0)).sum(), rel=1e-6)

    one = np.zeros(1, EVENT_DTYPE)
    one[0] = (1_000 + 700, 3, 2, -1)  # tau = 4 * 700 / 1000 = 2.8: 0.2 in bin 2, 0.8 in bin 3, OFF channels
    g = voxel_grid(one, 5, 4, 5, 1_000, 2_000)
    expected = np.zeros((10, 4, 5), np.float32)
    expected[2 * 2 + 1, 2, 3] = 0.2
    expected[2 * 3 + 1, 2, 3] = 0.8
    np.testing.assert_allclose(g, expected, atol=1e-6)
    one[0] = (2_000, 0, 0, 1)  # the window's end lands wholly in the last bin
    g = voxel_grid(one, 5, 4, 5, 1_000, 2_000)
    assert g[8, 0, 0] == 1 and g.sum() == 1
    one[0] = (1_250, 4, 3, 1)  # one bin: everything in bin 0
    assert voxel_grid(one, 1, 4, 5, 1_000, 2_000)[0, 3, 4] == 1
    one[0] = (999, 0, 0, 1)  # outside the window
    assert voxel_grid(one, 5, 4, 5, 1_000, 2_000).sum() == 0
    with pytest.raises(ValueError, match="sensor"):
        voxel_grid(ev, 5, 3, 3, t0, t1)
