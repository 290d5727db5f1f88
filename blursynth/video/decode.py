"""Decode a video into uint8 RGB frames with OpenCV, streaming (one frame in memory at a time).

The container's frame count is not trusted: `VideoReader.count` counts what actually decodes. The frame rate
comes from the stream and falls back to a default when the container reports 0 or NaN (some raw streams and
image sequences do).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


def read_frames(path: str | Path, resize: tuple[int, int] | None = None, default_fps: float = 30.0,
                crop: tuple[int, int, int, int] | None = None, max_frames: int | None = None) -> "VideoReader":
    """Open a video and check that it decodes to at least two frames.

    The checks run now, not on first iteration, so a caller can record the skip with its reason before it
    starts producing output for the clip.

    Args:
        path: any container/codec the OpenCV FFmpeg backend reads.
        resize: optional (width, height) in pixels; frames are resized with INTER_AREA (after the crop).
        default_fps: frame rate used when the stream reports none (0 or NaN).
        crop: optional (x, y, width, height) in pixels of the decoded frame, applied before the resize; it must
            lie inside the frame (ValueError naming the sizes otherwise).
        max_frames: stop after this many frames (None: the whole clip).
    Returns:
        a VideoReader: an iterator of uint8 (H, W, 3) RGB frames with `fps`, `size` (W, H) and `count`.
    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be decoded (not a video, zero bytes), or it has fewer than 2 frames.
    """
    return VideoReader(path, resize, default_fps, crop, max_frames)


class VideoReader:
    """Iterator over the decoded frames of one video. See `read_frames`.

    Attributes:
        path: the video's path.
        source_size: (width, height) of the decoded frames before crop and resize.
        fps: frames per second (from the stream, or the default when it reports none).
        size: (width, height) of the frames yielded, in pixels.
        count: frames yielded so far (after the clip is exhausted: the number that decoded).
        reported_count: the frame count the container claims (0 when unknown); for progress estimates only.
    """

    def __init__(self, path: str | Path, resize: tuple[int, int] | None = None, default_fps: float = 30.0,
                 crop: tuple[int, int, int, int] | None = None, max_frames: int | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"video not found: {self.path}")
        if self.path.is_dir():
            raise ValueError(f"cannot decode {self.path}: is a directory")
        if resize is not None and (len(resize) != 2 or min(resize) < 1):
            raise ValueError(f"resize must be (width, height) >= 1, got {resize!r}")
        if crop is not None and (len(crop) != 4 or min(crop) < 0 or min(crop[2:]) < 1):
            raise ValueError(f"crop must be (x, y, width, height) with x, y >= 0 and a size >= 1, got {crop!r}")
        self._resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self._crop = None if crop is None else tuple(int(v) for v in crop)
        self._raw_shape: tuple[int, int] | None = None
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self._max_frames = max_frames
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise ValueError(f"cannot decode {self.path}: OpenCV could not open it as a video")
        reported = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.reported_count = int(reported) if math.isfinite(reported) and reported > 0 else 0
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if math.isfinite(fps) and fps > 0 else float(default_fps)
        if self.fps != fps:
            log.info("%s reports frame rate %s; using %s", self.path, fps, self.fps)
        # decode two frames up front: a file that opens but yields nothing (or a single still) fails here
        self._pending = [f for f in (self._decode(), self._decode()) if f is not None]
        if not self._pending and self._raw_shape is not None and self._crop is not None:
            x, y, w, h = self._crop
            fh, fw = self._raw_shape
            self.close()
            raise ValueError(f"{self.path}: crop {w}x{h} at ({x}, {y}) does not fit the {fw}x{fh} frames")
        if not self._pending:
            self.close()
            raise ValueError(f"cannot decode {self.path}: no frame decodes")
        if len(self._pending) < 2:
            self.close()
            raise ValueError(f"{self.path}: needs at least 2 frames, 1 decodes")
        h, w = self._pending[0].shape[:2]
        self.size = (w, h)
        self.source_size = (self._raw_shape[1], self._raw_shape[0])
        self.count = 0

    def __iter__(self) -> "VideoReader":
        return self

    def __next__(self) -> np.ndarray:
        if self._max_frames is not None and self.count >= self._max_frames:
            self.close()
            raise StopIteration
        frame = self._pending.pop(0) if self._pending else self._decode()
        if frame is None:
            self.close()
            raise StopIteration
        self.count += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _decode(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        self._raw_shape = bgr.shape[:2]
        if self._crop is not None:
            x, y, w, h = self._crop
            if x + w > bgr.shape[1] or y + h > bgr.shape[0]:
                return None  # checked on the first frames; a later frame of another size ends the clip
            bgr = bgr[y:y + h, x:x + w]
        if self._resize is not None and (bgr.shape[1], bgr.shape[0]) != self._resize:
            bgr = cv2.resize(bgr, self._resize, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
