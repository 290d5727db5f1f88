"""LMDB windows of one clip: one shard per clip (`store.ShardWriter`) of records that each hold a window of W
consecutive output frames; see `WindowShardWriter` for the record layout.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..store.codec import encode_image, encode_meta
from ..store.shard import ShardWriter
from .base import Pair

WINDOWS_PER_CLIP = 100_000  # record index = clip ordinal * WINDOWS_PER_CLIP + window number (9 digits in all)


class WindowShardWriter:
    """One clip's windows of W consecutive output frames into LMDB shard `shard_index`.

    Record layout (sample index = clip ordinal * 100000 + window number w, keys `{index:09d}/{field}`):

    - `blur_0` .. `blur_{W-1}`: the blurred output frames of the window in time order, images in `codec`
      (uint8 RGB (H, W, 3); `store.codec.decode_image(bytes, manifest.codec)`);
    - `sharp_0` .. `sharp_{W-1}`: their sharp frames, same codec;
    - `meta`: JSON (`store.codec.decode_meta`) with the per-frame lists `frames` (output frame indices j),
      `source_frames` ([first, last] real frames entering each exposure), `center` (window centre in input
      frame units), `exposure_s` ([start, end] in seconds from the clip's first frame), `latent`, `samples`,
      `max_disp_px`, `shake`, and the window's `clip`, `source`, `window`, `index`, `seed`, `fps_in`, `fps_out`,
      `duty_cycle`, `camera`, `size` ([W, H]), `num_frames` (W), `keys` ({"blur": [...], "sharp": [...]});
    - `events` (only with events): the events of the whole window, from the start of the first exposure to the
      end of the last, gaps included (`events.formats.decode_events`), timestamps in microseconds from the clip's
      first frame.

    Windows hold consecutive output frames that all passed the filters: a skipped frame ends the current run,
    and its partial window is dropped. Consecutive windows start `stride` output frames apart.
    """

    def __init__(self, out_dir: str | os.PathLike, shard_index: int, clip_ordinal: int, window: int, stride: int,
                 codec: str, base_meta: dict, events=None):
        self.window = window
        self.stride = stride
        self.codec = codec
        self.base_meta = base_meta
        self.first_index = clip_ordinal * WINDOWS_PER_CLIP
        self.max_windows = WINDOWS_PER_CLIP
        self.events = events  # callable(first j, last j) -> bytes, or None
        self._shard = ShardWriter(Path(out_dir), shard_index)
        self._run: list[tuple] = []
        self._ignore = 0
        self.windows = 0
        self.count = 0

    def put(self, pair: Pair) -> None:
        if self._ignore:
            self._ignore -= 1
            return
        self._run.append((pair.index, encode_image(pair.blur, self.codec), encode_image(pair.sharp, self.codec),
                          pair.meta))
        if len(self._run) == self.window:
            self._put()
            drop = min(self.stride, self.window)
            self._run = self._run[drop:]
            self._ignore = max(0, self.stride - self.window)

    def skip(self, index: int) -> None:
        self._run = []
        self._ignore = 0

    def _put(self) -> None:
        if self.windows >= self.max_windows:
            raise ValueError(f"clip {self.base_meta.get('clip')} holds more than {self.max_windows} windows")
        index = self.first_index + self.windows
        record = {}
        for k, (_, blur, sharp, _) in enumerate(self._run):
            record[f"blur_{k}"] = blur
            record[f"sharp_{k}"] = sharp
        frames = [m for *_, m in self._run]
        meta = dict(self.base_meta, window=self.windows, index=index, num_frames=self.window,
                    keys={"blur": [f"blur_{k}" for k in range(self.window)],
                          "sharp": [f"sharp_{k}" for k in range(self.window)]})
        for key in frames[0]:
            meta[key] = [m[key] for m in frames]
        if self.events is not None:
            record["events"] = self.events(self._run[0][0], self._run[-1][0])
        record["meta"] = encode_meta(meta)
        self._shard.put(index, record)
        self.windows += 1
        self.count += self.window

    def close(self) -> dict:
        info = self._shard.close()
        return {"files": [info.name], "frames": self.count, "windows": self.windows, "shard": info.to_dict()}

    def abort(self) -> None:
        self._shard.abort()
