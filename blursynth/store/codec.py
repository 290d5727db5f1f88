"""The one codec module: images, arrays and per-sample metadata to and from bytes.

Images are uint8, RGB channel order, shape (H, W, 3), or gray (H, W) ((H, W, 1) is accepted and comes
back as (H, W)). Every codec here is lossless: ``decode_image(encode_image(img, c), c)`` equals ``img``
bit for bit.

- ``png``: a standard PNG (cv2, zlib level 0-9, default 1) stored in true colour order, so any PNG
  reader shows the right colours. The format BasicSR-style exports need.
- ``qoi``: a standard QOI image (the ``qoi`` package). Gray images, which QOI cannot hold, are stored as
  QOI RGB with a 4-byte blursynth prefix.
- ``zstd``: raw pixels behind a 16-byte header, compressed with zstandard (default level 1). By default
  each row is stored as its difference from the row above (PNG's "Up" filter), which on 720p photographs
  and their noisy blurred versions halves the output and costs about 1 ms per image to undo
  (benchmarks/store.py).

Arrays (float16 blur maps, uint8 masks, structured event arrays) use ``encode_array``: zstd over the
``.npy`` serialization, so any dtype numpy can write without pickling round-trips exactly.
"""
from __future__ import annotations

import io
import json
import struct
import threading

import cv2
import numpy as np
import qoi
import zstandard

IMAGE_CODECS = ("png", "qoi", "zstd")

PNG_DEFAULT_LEVEL = 1
_PNG_FAST_MAX_LEVEL = 3
# Level 1, not zstd's usual 3, for images: on 720p pairs level 3 is 4 % larger overall (10 % larger on the
# noisy blurred image) and 3x slower to encode (benchmarks/store.py).
ZSTD_DEFAULT_LEVEL = 1
ARRAY_DEFAULT_LEVEL = 3

# zstd image header: magic, version, filter, channels (0 = 2-D gray), dtype code, height, width.
_ZSTD_MAGIC = b"BSZI"
_ZSTD_HEADER = struct.Struct("<4sBBBBII")
_ZSTD_VERSION = 1
_FILTER_NONE = 0
_FILTER_UP = 1
_DTYPE_UINT8 = 1

# QOI has no 1-channel mode; gray images are stored as RGB QOI after this prefix.
_QOI_GRAY_PREFIX = b"BSQG"


def encode_image(img: np.ndarray, codec: str = "png", level: int | None = None) -> bytes:
    """Encode an 8-bit image losslessly.

    Args:
        img: uint8 array, (H, W, 3) RGB, or gray (H, W) / (H, W, 1).
        codec: one of ``IMAGE_CODECS``.
        level: compression level; png 0-9 (default 1), zstd 1-22 or negative for faster (default 1).
            QOI has no level: passing one is an error.

    Returns:
        The encoded bytes.
    """
    _check_codec(codec)
    if codec == "png":
        return encode_png(img, PNG_DEFAULT_LEVEL if level is None else level)
    if codec == "qoi":
        if level is not None:
            raise ValueError(f"codec 'qoi' has no compression level (got level={level})")
        return encode_qoi(img)
    return encode_zstd(img, ZSTD_DEFAULT_LEVEL if level is None else level)


def decode_image(data: bytes, codec: str) -> np.ndarray:
    """Decode bytes from ``encode_image``.

    Returns:
        uint8 array (H, W, 3) RGB, or (H, W) for gray. Always a fresh, writable, C-contiguous array.

    Raises:
        ValueError: unknown codec, or data that is not a valid image of that codec.
    """
    _check_codec(codec)
    try:
        if codec == "png":
            return _decode_png(data)
        if codec == "qoi":
            return _decode_qoi(data)
        return _decode_zstd(data)
    except ValueError:
        raise
    except Exception as exc:  # the backends raise RuntimeError, cv2.error, ZstdError
        raise ValueError(f"corrupt {codec} image data ({len(data)} bytes): {exc}") from exc


def encode_png(img: np.ndarray, level: int = PNG_DEFAULT_LEVEL, adaptive: bool = False) -> bytes:
    """Standard PNG in true colour order; zlib ``level`` 0 (stored) to 9.

    Levels 0-3 favour speed: zlib's run-length strategy with the Up filter, as OpenCV's own default does
    (with Sub). On 720p photos that encodes 1.8x faster than libpng's adaptive filters at level 1 and is
    6 % smaller; higher levels barely shrink it. Levels 4-9 use zlib's default strategy and adaptive
    filters, for files a few percent smaller at many times the encode time (level 6: 8x).
    ``adaptive=True`` uses zlib's default strategy and adaptive filters at every level: what
    ``cv2.imencode`` writes given only the level, as BasicSR's ``lmdb_util`` does (the exports' PNGs).
    """
    img = _as_image(img)
    if not 0 <= level <= 9:
        raise ValueError(f"png compression level must be in 0..9, got {level}")
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(level)]
    if level <= _PNG_FAST_MAX_LEVEL and not adaptive:
        params += [
            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP
        ]
    ok, buf = cv2.imencode(".png", bgr, params)
    if not ok:
        raise ValueError(f"cv2 could not encode a {img.shape} image as PNG")
    return buf.tobytes()


def encode_qoi(img: np.ndarray) -> bytes:
    """Standard QOI for RGB; gray is replicated to RGB behind a 4-byte prefix."""
    img = _as_image(img)
    if img.ndim == 2:
        return _QOI_GRAY_PREFIX + qoi.encode(np.repeat(img[:, :, None], 3, axis=2))
    return qoi.encode(img)


def encode_zstd(img: np.ndarray, level: int = ZSTD_DEFAULT_LEVEL, delta: bool = True) -> bytes:
    """Raw pixels, optionally row-delta filtered, zstd-compressed behind a 16-byte header.

    Args:
        img: as in ``encode_image``.
        level: zstd level.
        delta: store each row minus the row above (mod 256) rather than the row itself.
    """
    img = _as_image(img)
    h, w = img.shape[:2]
    channels = 0 if img.ndim == 2 else img.shape[2]
    if delta and h > 1:
        payload = np.empty_like(img)
        payload[0] = img[0]
        np.subtract(img[1:], img[:-1], out=payload[1:])
    else:
        payload = img
    header = _ZSTD_HEADER.pack(
        _ZSTD_MAGIC, _ZSTD_VERSION, _FILTER_UP if delta else _FILTER_NONE, channels, _DTYPE_UINT8, h, w
    )
    return header + _compressor(level).compress(payload.data)


def encode_array(arr: np.ndarray, level: int = ARRAY_DEFAULT_LEVEL) -> bytes:
    """Any non-object numpy array (any dtype incl. structured, any shape), lossless: zstd of its .npy bytes."""
    arr = np.asarray(arr)
    buf = io.BytesIO()
    try:
        np.lib.format.write_array(buf, arr, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"cannot store array of dtype {arr.dtype} without pickling: {exc}") from exc
    return _compressor(level).compress(buf.getbuffer())


def decode_array(data: bytes) -> np.ndarray:
    """Inverse of ``encode_array``; returns a fresh writable array. Corrupt data -> ValueError."""
    try:
        raw = _decompressor().decompress(data)
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"corrupt encoded array ({len(data)} bytes): {exc}") from exc


def encode_meta(meta: dict) -> bytes:
    """Compact UTF-8 JSON with sorted keys; numpy scalars and arrays become Python numbers and lists.

    Strict JSON: NaN and infinity are rejected so any JSON reader can read the result.
    """
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        text = json.dumps(
            _jsonable(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        raise ValueError(f"meta is not valid JSON (NaN or infinity?): {exc}") from exc
    return text.encode("utf-8")


def decode_meta(data: bytes) -> dict:
    """Inverse of ``encode_meta``. Corrupt data or a non-object -> ValueError."""
    try:
        meta = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupt meta ({len(data)} bytes): {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a JSON object, got {type(meta).__name__}")
    return meta


def _check_codec(codec: str) -> None:
    if codec not in IMAGE_CODECS:
        raise ValueError(f"unknown image codec {codec!r}; valid codecs: {', '.join(IMAGE_CODECS)}")


def _as_image(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"images must be (H, W, 3) RGB or (H, W) gray, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"empty image, shape {img.shape}")
    return np.ascontiguousarray(img)


def _decode_png(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"corrupt png image data ({len(data)} bytes): cv2 could not decode it")
    if img.dtype != np.uint8 or not (img.ndim == 2 or img.shape[2] == 3):
        raise ValueError(f"png holds a {img.dtype} image of shape {img.shape}; expected 8-bit RGB or gray")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def _decode_qoi(data: bytes) -> np.ndarray:
    gray = bytes(data[:4]) == _QOI_GRAY_PREFIX
    img = qoi.decode(data[4:] if gray else data)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"qoi holds an image of shape {img.shape}; expected RGB")
    return np.ascontiguousarray(img[:, :, 0]) if gray else img


def _decode_zstd(data: bytes) -> np.ndarray:
    if len(data) < _ZSTD_HEADER.size:
        raise ValueError(f"corrupt zstd image data: {len(data)} bytes is shorter than the header")
    magic, version, filt, channels, dtype_code, h, w = _ZSTD_HEADER.unpack_from(data)
    if magic != _ZSTD_MAGIC:
        raise ValueError(f"corrupt zstd image data: bad magic {magic!r} (expected {_ZSTD_MAGIC!r})")
    if version != _ZSTD_VERSION or filt not in (_FILTER_NONE, _FILTER_UP) or dtype_code != _DTYPE_UINT8:
        raise ValueError(f"unsupported zstd image header: version {version}, filter {filt}, dtype {dtype_code}")
    shape = (h, w) if channels == 0 else (h, w, channels)
    size = h * w * max(channels, 1)
    raw = _decompressor().decompress(memoryview(data)[_ZSTD_HEADER.size :], max_output_size=size)
    if len(raw) != size:
        raise ValueError(f"corrupt zstd image data: {len(raw)} bytes after decompression, expected {size}")
    payload = np.frombuffer(raw, np.uint8).reshape(shape)
    if filt == _FILTER_NONE:
        return payload.copy()
    img = np.empty_like(payload)
    img[0] = payload[0]
    # A ufunc call per row keeps each add contiguous; np.cumsum along axis 0 is about 2x slower here.
    for y in range(1, h):
        np.add(img[y - 1], payload[y], out=img[y])
    return img


def _jsonable(obj):
    if isinstance(obj, dict):
        return {_json_key(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"meta holds a numpy array of dtype {obj.dtype}; only bool/int/float arrays are allowed")
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"meta holds a {type(obj).__name__}, which has no JSON form")


def _json_key(key):
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, (int, float, bool)) or key is None:
        return json.dumps(key)
    if not isinstance(key, str):
        raise TypeError(f"meta key {key!r} of type {type(key).__name__} is not a string")
    return key


# zstd contexts are not thread-safe and cost ~0.1 ms to build; keep one per thread (and per level).
_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = _local.__dict__.setdefault("compressors", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_local, "decompressor"):
        _local.decompressor = zstandard.ZstdDecompressor()
    return _local.decompressor
