"""Event streams to and from bytes and files, and the voxel-grid training representation.

- ``encode_events`` / ``decode_events``: the compact byte form stored per sample in the LMDB shards (record
  key ``"events"``). Byte-exact round trip of any EVENT_DTYPE array, sorted or not.
- ``voxel_grid``: B time bins x 2 polarities of bilinear-in-time event counts, float32 (2B, H, W).
- ``write_h5`` / ``read_h5``: DSEC-style h5 (``events/t``, ``events/x``, ``events/y``, ``events/p``, chunked,
  compressed; ``ms_to_idx`` and ``t_offset`` as DSEC has them), readable with plain h5py.
- ``write_npz`` / ``read_npz``: plain npz of the four columns.
- ``write_gem_npz`` / ``read_gem_npz``: GEM-style per-sample npz (blurred frames, exposure start/end, sharp
  frames and their timestamps, scale factor, events dict).
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import zstandard

from .simulate import EVENT_DTYPE

# Byte form: header, then zstd over the concatenation of
#   dt: t[0] - t0 then successive differences, byte-shuffled (all bytes 0 of each value, then all bytes 1...),
#       uint32 when every difference fits, else int64;
#   x, y: uint16, byte-shuffled;
#   p: one bit per event (1 = ON) when every p is +1 or -1, else the raw int8 values.
_MAGIC = b"BSEV"
_VERSION = 1
_HEADER = struct.Struct("<4sBBBxQq")  # magic, version, dt bytes (4 or 8), p packed (1/0), count, t0
_ZSTD_LEVEL = 3

H5_CHUNK = 2**16
"""Events per h5 chunk (each column is chunked and gzip-compressed along it)."""


def encode_events(events: np.ndarray) -> bytes:
    """Compact lossless bytes of an event array.

    Args:
        events: structured array of EVENT_DTYPE (t int64, x uint16, y uint16, p int8), shape (N,); any order
            (time-sorted streams compress best: their time differences are small).

    Returns:
        bytes; ``decode_events`` gives back an array equal field for field (and byte for byte).
    """
    events = _as_events(events, "events")
    n = len(events)
    t = events["t"]
    t0 = int(t[0]) if n else 0
    dt = np.diff(t, prepend=np.int64(t0))
    small = n == 0 or (int(dt.min()) >= 0 and int(dt.max()) < 2**32)
    dt = dt.astype(np.uint32) if small else dt
    p = events["p"]
    packed = bool(np.all((p == 1) | (p == -1)))
    p_bytes = np.packbits(p > 0).tobytes() if packed else p.tobytes()
    body = b"".join([_shuffle(dt), _shuffle(events["x"]), _shuffle(events["y"]), p_bytes])
    header = _HEADER.pack(_MAGIC, _VERSION, 4 if small else 8, int(packed), n, t0)
    return header + zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(body)


def decode_events(data: bytes) -> np.ndarray:
    """Inverse of ``encode_events``: a fresh EVENT_DTYPE array (N,). Corrupt data -> ValueError."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ValueError(f"corrupt event data: {len(data)} bytes is shorter than the header")
    magic, version, dt_bytes, packed, n, t0 = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION or dt_bytes not in (4, 8):
        raise ValueError(f"corrupt event data: header {magic!r} version {version} dt width {dt_bytes}")
    p_size = (n + 7) // 8 if packed else n
    size = n * (dt_bytes + 4) + p_size
    try:
        raw = zstandard.ZstdDecompressor().decompress(data[_HEADER.size:], max_output_size=max(size, 1))
    except zstandard.ZstdError as exc:
        raise ValueError(f"corrupt event data ({len(data)} bytes): {exc}") from exc
    if len(raw) != size:
        raise ValueError(f"corrupt event data: {len(raw)} bytes after decompression, expected {size}")
    out = np.empty(n, EVENT_DTYPE)
    a = n * dt_bytes
    dt = _unshuffle(raw[:a], np.uint32 if dt_bytes == 4 else np.int64, n)
    out["t"] = np.cumsum(dt, dtype=np.int64) + np.int64(t0) if n else dt
    out["x"] = _unshuffle(raw[a:a + 2 * n], np.uint16, n)
    out["y"] = _unshuffle(raw[a + 2 * n:a + 4 * n], np.uint16, n)
    p_raw = np.frombuffer(raw, np.uint8, count=p_size, offset=a + 4 * n)
    if packed:
        out["p"] = np.where(np.unpackbits(p_raw, count=n).astype(bool), 1, -1)
    else:
        out["p"] = p_raw.view(np.int8)
    return out


def voxel_grid(events: np.ndarray, bins: int, height: int, width: int, t0_us: int, t1_us: int) -> np.ndarray:
    """Bilinear-in-time event-count voxel grid with polarities kept apart.

    Each event at time t in [t0_us, t1_us] has the continuous bin coordinate
    tau = (bins - 1) * (t - t0_us) / (t1_us - t0_us), so the window's start falls on bin 0 and its end on
    bin bins - 1; the event adds weight 1 - frac(tau) to bin floor(tau) and frac(tau) to bin floor(tau) + 1
    of its polarity's channel at its pixel (with bins = 1 all of it goes to bin 0). Every event in the window
    thus adds exactly 1 in total; events outside the window are ignored.

    Args:
        events: EVENT_DTYPE array (N,); t in the same unit as t0_us / t1_us (microseconds by default).
        bins: number of time bins B >= 1.
        height, width: sensor size (H, W); every event must have x < W and y < H.
        t0_us, t1_us: window, t1_us > t0_us.

    Returns:
        float32 (2 * B, H, W): channels [bin 0 ON, bin 0 OFF, bin 1 ON, bin 1 OFF, ...], non-negative counts.
    """
    events = _as_events(events, "events")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if t1_us <= t0_us:
        raise ValueError(f"t1_us ({t1_us}) must be after t0_us ({t0_us})")
    if len(events) and (int(events["x"].max()) >= width or int(events["y"].max()) >= height):
        raise ValueError(f"events outside the {width}x{height} sensor (max x {events['x'].max()}, "
                         f"max y {events['y'].max()})")
    ev = events[(events["t"] >= t0_us) & (events["t"] <= t1_us)]
    tau = (bins - 1) * (ev["t"] - t0_us).astype(np.float64) / float(t1_us - t0_us)
    lo = np.minimum(np.floor(tau).astype(np.int64), bins - 1)
    frac = tau - lo
    pix = ev["y"].astype(np.int64) * width + ev["x"]
    pol = (ev["p"] <= 0).astype(np.int64)  # 0: ON, 1: OFF
    plane = height * width
    size = 2 * bins * plane
    grid = np.bincount((2 * lo + pol) * plane + pix, weights=1.0 - frac, minlength=size)
    hi = np.minimum(lo + 1, bins - 1)
    has_hi = frac > 0
    grid += np.bincount(((2 * hi + pol) * plane + pix)[has_hi], weights=frac[has_hi], minlength=size)
    return grid.astype(np.float32).reshape(2 * bins, height, width)


def write_h5(path: str | Path, events: np.ndarray, *, height: int | None = None, width: int | None = None,
             attrs: dict | None = None) -> Path:
    """Write a DSEC-style event h5 file.

    Layout: ``events/t`` (int64, microseconds relative to ``t_offset``), ``events/x``, ``events/y`` (uint16),
    ``events/p`` (int8, +1 / -1; DSEC stores 0 / 1), each chunked by ``H5_CHUNK`` events (or by the count, when
    fewer) and gzip-compressed; ``t_offset`` (int64 scalar, the t subtracted, here the first event's time, 0 when
    empty); ``ms_to_idx`` (uint64, index of the first event with t >= 1000 * k, k = 0 .. last ms). Sensor size and
    ``attrs`` are stored as attributes of ``events``. `H5EventWriter` writes the same file as the events come.

    Args:
        path: output file (overwritten).
        events: EVENT_DTYPE array (N,) sorted by t, t in microseconds.
        height, width: sensor size, recorded when given.
        attrs: extra attributes (scalars / strings) of the ``events`` group, e.g. ``scale``.
    """
    writer = H5EventWriter(path)
    try:
        writer.append(events)
    except BaseException:
        writer.abort()
        raise
    return writer.close(height=height, width=width, attrs=attrs)


class H5EventWriter:
    """`write_h5`'s file, written as a stream's events come (`append`, then `close`; `abort` on failure), so a
    long stream is compressed while it is simulated and never held in memory whole.

    Columns are written a whole chunk at a time: HDF5 would otherwise compress a partial chunk, then read it
    back and compress it again at the next append. The file is written as ``PATH.part`` and renamed to PATH by
    `close`, so an earlier complete file stays until this one is complete too. The datasets, their chunks and
    every value are `write_h5`'s for the same events (its chunk size for fewer than H5_CHUNK events too: the
    datasets are made once a first chunk fills, or at `close`).
    """

    _COLUMNS = (("t", np.int64), ("x", np.uint16), ("y", np.uint16), ("p", np.int8))

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        self._part = self.path.with_name(self.path.name + ".part")
        self._file = h5py.File(self._part, "w")
        self._group = self._file.create_group("events")
        self._pending: list[np.ndarray] = []  # events appended, not yet written: count - written of them
        self.count = 0  # events appended
        self._written = 0
        self._t_offset: int | None = None
        self._last_t: int | None = None
        self._ms: list[np.ndarray] = []  # ms_to_idx, as it is found
        self._next_ms = 0

    def append(self, events: np.ndarray) -> None:
        """Add events (EVENT_DTYPE, sorted by t, none before the last appended)."""
        events = _as_events(events, "events")
        if not len(events):
            return
        t = events["t"]
        if np.any(np.diff(t) < 0) or (self._last_t is not None and int(t[0]) < self._last_t):
            raise ValueError("write_h5 needs events sorted by t (ms_to_idx indexes time)")
        if self._t_offset is None:
            self._t_offset = int(t[0])
        self._last_t = int(t[-1])
        # ms marks k with prev last < 1000 k <= this last: their first event is in this block
        t_rel = t - self._t_offset
        last_ms = int(t_rel[-1]) // 1000
        if last_ms >= self._next_ms:
            marks = 1000 * np.arange(self._next_ms, last_ms + 1, dtype=np.int64)
            self._ms.append(self.count + np.searchsorted(t_rel, marks, side="left"))
            self._next_ms = last_ms + 1
        self.count += len(events)
        self._pending.append(events)
        if self.count - self._written >= H5_CHUNK:
            self._flush(final=False)

    def close(self, *, height: int | None = None, width: int | None = None, attrs: dict | None = None) -> Path:
        """Write what is left, the index and the attributes; rename the file into place. Returns its path."""
        try:
            self._flush(final=True)
            self._file.create_dataset("ms_to_idx", data=(np.concatenate(self._ms) if self._ms
                                                         else np.zeros(0, np.int64)).astype(np.uint64))
            self._file.create_dataset("t_offset", data=np.int64(self._t_offset or 0))
            if height is not None:
                self._group.attrs["height"] = int(height)
            if width is not None:
                self._group.attrs["width"] = int(width)
            for key, value in (attrs or {}).items():
                self._group.attrs[key] = value
            self._file.close()
        except BaseException:
            self.abort()
            raise
        self._part.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file; an earlier file at `path` is left as it was."""
        try:
            self._file.close()
        finally:
            self._part.unlink(missing_ok=True)

    def _flush(self, final: bool) -> None:
        from .simulate import concatenate_events

        events = concatenate_events(self._pending)
        n = len(events) if final else len(events) // H5_CHUNK * H5_CHUNK
        if "t" not in self._group:
            if not final and n == 0:
                return
            # nothing is written before the datasets exist: events are all the events so far
            chunk = H5_CHUNK if not final or len(events) >= H5_CHUNK else max(len(events), 1)
            for name, dtype in self._COLUMNS:
                self._group.create_dataset(name, shape=(0,), dtype=dtype, chunks=(chunk,), compression="gzip",
                                           compression_opts=4, shuffle=True, maxshape=(None,))
        # one chunk at a time, each column in turn: the file's bytes do not depend on how the events were split
        # into appends
        for start in range(0, n, H5_CHUNK):
            block = events[start:min(start + H5_CHUNK, n)]
            end = self._written + len(block)
            for name, _ in self._COLUMNS:
                col = block["t"] - self._t_offset if name == "t" else block[name]
                dataset = self._group[name]
                dataset.resize((end,))
                dataset[self._written:end] = np.ascontiguousarray(col)
            self._written = end
        rest = events[n:]
        self._pending = [rest] if len(rest) else []


def read_h5(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a ``write_h5`` file (or any h5 with ``events/{t,x,y,p}``, plus ``t_offset`` when present).

    Returns:
        (events EVENT_DTYPE (N,) with absolute t, attributes of the ``events`` group as a dict).
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        if "events" not in f or any(k not in f["events"] for k in "txyp"):
            raise ValueError(f"{path}: no events/t, events/x, events/y, events/p datasets")
        grp = f["events"]
        out = np.empty(len(grp["t"]), EVENT_DTYPE)
        offset = int(f["t_offset"][()]) if "t_offset" in f else 0
        out["t"] = grp["t"][:].astype(np.int64) + offset
        out["x"], out["y"] = grp["x"][:], grp["y"][:]
        p = grp["p"][:]
        out["p"] = np.where(p > 0, 1, -1) if p.dtype.kind == "u" else p
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in grp.attrs.items()}
    return out, attrs


def write_npz(path: str | Path, events: np.ndarray, **extra) -> Path:
    """Plain npz with arrays ``t`` (int64), ``x``, ``y`` (uint16), ``p`` (int8), plus any ``extra`` arrays
    (e.g. ``height``, ``width``, ``scale``). Compressed."""
    events = _as_events(events, "events")
    path = Path(path)
    with open(path, "wb") as f:
        np.savez_compressed(f, t=events["t"], x=events["x"], y=events["y"], p=events["p"],
                            **{k: np.asarray(v) for k, v in extra.items()})
    return path


def read_npz(path: str | Path) -> np.ndarray:
    """Events of a ``write_npz`` file as EVENT_DTYPE (N,)."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in "txyp" if k not in z]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing} (need t, x, y, p)")
        return _from_columns(z["t"], z["x"], z["y"], z["p"])


def write_gem_npz(path: str | Path, *, blur1: np.ndarray, exp_start1: int, exp_end1: int, events: np.ndarray,
                  blur2: np.ndarray | None = None, exp_start2: int | None = None, exp_end2: int | None = None,
                  sharp_imgs: np.ndarray | None = None, sharp_timestamps: np.ndarray | None = None,
                  scale_factor: int = 1) -> Path:
    """GEM-style per-sample npz (GEM, ICCV 2023, Ev-REDS / GoPro-event loaders).

    Args:
        blur1, blur2: blurred frames (C, H, W) (uint8 or float, as the trainer expects; stored as given).
        exp_start1, exp_end1, exp_start2, exp_end2: exposure start / end, integer microseconds.
        events: EVENT_DTYPE (N,), stored as GEM stores it: a pickled dict {x, y, t, p} of arrays.
        sharp_imgs: optional latent sharp frames (N, C, H, W); sharp_timestamps: their times (N,) in us.
        scale_factor: frame resolution / event resolution (GEM crops the image at event crop x this).
    """
    events = _as_events(events, "events")
    arrays = {"blur1": np.asarray(blur1), "exp_start1": np.int64(exp_start1), "exp_end1": np.int64(exp_end1),
              "scale_factor": np.int64(scale_factor),
              "events": np.array({"x": events["x"].copy(), "y": events["y"].copy(), "t": events["t"].copy(),
                                  "p": events["p"].copy()}, dtype=object)}
    if blur2 is not None:
        arrays.update(blur2=np.asarray(blur2), exp_start2=np.int64(exp_start2), exp_end2=np.int64(exp_end2))
    if sharp_imgs is not None:
        arrays["sharp_imgs"] = np.asarray(sharp_imgs)
        arrays["sharp_timestamps"] = np.asarray(sharp_timestamps, np.int64)
    path = Path(path)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def read_gem_npz(path: str | Path) -> dict:
    """A GEM-style npz as a dict of arrays; ``events`` becomes an EVENT_DTYPE array. The file holds a pickle:
    read only files you trust (as with GEM's own loader)."""
    with np.load(path, allow_pickle=True) as z:
        out = {k: z[k] for k in z.files}
    if "events" not in out:
        raise ValueError(f"{path}: no 'events' entry (not a GEM-style npz)")
    ev = out["events"].item() if out["events"].dtype == object else out["events"]
    if isinstance(ev, (bytes, bytearray)):
        ev = pickle.loads(ev)
    out["events"] = _from_columns(ev["t"], ev["x"], ev["y"], ev["p"])
    return out


def _as_events(events: np.ndarray, name: str) -> np.ndarray:
    events = np.asarray(events)
    if events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of EVENT_DTYPE {EVENT_DTYPE}, got {events.dtype} "
                         f"shape {events.shape}")
    return events


def _from_columns(t, x, y, p) -> np.ndarray:
    out = np.empty(len(t), EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out


def _shuffle(col: np.ndarray) -> bytes:
    """Byte planes of a 1-D numeric array: all first bytes, then all second bytes, ..."""
    col = np.ascontiguousarray(col, dtype=col.dtype.newbyteorder("<"))  # little-endian whatever the host
    return col.view(np.uint8).reshape(len(col), col.itemsize).T.tobytes()


def _unshuffle(raw: bytes, dtype, n: int) -> np.ndarray:
    dtype = np.dtype(dtype).newbyteorder("<")
    planes = np.frombuffer(raw, np.uint8, count=n * dtype.itemsize).reshape(dtype.itemsize, n)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(n).astype(dtype.newbyteorder("="))


__all__ = ["H5_CHUNK", "decode_events", "encode_events", "read_gem_npz", "read_h5", "read_npz", "voxel_grid",
           "write_gem_npz", "write_h5", "write_npz"]
