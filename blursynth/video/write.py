"""Writers of the video path's outputs, one per clip; each writes under a temporary name and makes its output
visible only in `close` (a killed run leaves at most temporary names, removed by the next run with --resume).

- `Mp4Writer`: OUT/NAME_blurry.mp4, OUT/NAME_sharp.mp4, OUT/NAME_flow.mp4 (cv2.VideoWriter, MPEG-4 part 2
  'mp4v', at the output frame rate; the flow drawn with the HSV colour wheel of `flow.flow_to_color`), like
  Wieschollek et al.'s synthblur.
- `GoproWriter`: OUT/NAME/blur/JJJJJJ.png and OUT/NAME/sharp/JJJJJJ.png, paired by file name (JJJJJJ the
  output frame index, zero-padded to 6 digits), GoPro's layout.
- `WindowShardWriter`: one LMDB shard per clip (`store.ShardWriter`) of records that each hold a window of W
  consecutive output frames; see `WindowShardWriter` for the record layout.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..store.codec import encode_image, encode_meta, encode_png
from ..store.shard import ShardWriter
from .flow import flow_to_color


class Mp4Writer:
    """NAME_blurry.mp4, NAME_sharp.mp4 and NAME_flow.mp4 in `out_dir`, written in OUT/.tmp-NAME/ first."""

    SUFFIXES = ("blurry", "sharp", "flow")

    def __init__(self, out_dir: str | os.PathLike, name: str, fps: float, flow_max_px: float):
        self.out_dir = Path(out_dir)
        self.name = name
        self.fps = float(fps)
        self.flow_max_px = flow_max_px
        self.tmp = self.out_dir / f".tmp-{name}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self._writers: list[cv2.VideoWriter] = []
        self.count = 0

    def add(self, exp, blur: np.ndarray, sharp: np.ndarray, meta: dict) -> None:
        """Append one output frame: uint8 (H, W, 3) RGB blur and sharp; exp.flow must be set (keep_flow)."""
        if not self._writers:
            h, w = blur.shape[:2]
            for suffix in self.SUFFIXES:
                writer = cv2.VideoWriter(str(self.tmp / f"{self.name}_{suffix}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                         self.fps, (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"OpenCV cannot write MPEG-4 video {self.name}_{suffix}.mp4 (no 'mp4v' encoder)")
                self._writers.append(writer)
        flow = flow_to_color(exp.flow, max_px=self.flow_max_px)
        for writer, img in zip(self._writers, (blur, sharp, flow)):
            writer.write(np.ascontiguousarray(img[..., ::-1]))
        self.count += 1

    def skip(self, index: int) -> None:
        pass

    def close(self) -> dict:
        for writer in self._writers:
            writer.release()
        files = []
        for suffix in self.SUFFIXES if self._writers else ():
            name = f"{self.name}_{suffix}.mp4"
            os.replace(self.tmp / name, self.out_dir / name)
            files.append(name)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return {"files": files, "frames": self.count}

    def abort(self) -> None:
        for writer in self._writers:
            writer.release()
        shutil.rmtree(self.tmp, ignore_errors=True)


class GoproWriter:
    """OUT/NAME/{blur,sharp}/JJJJJJ.png (PNG, zlib level 1), written in OUT/NAME.tmp/ and renamed when complete."""

    def __init__(self, out_dir: str | os.PathLike, name: str):
        self.out_dir = Path(out_dir)
        self.final = self.out_dir / name
        self.tmp = self.out_dir / f"{name}.tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)
        for sub in ("blur", "sharp"):
            (self.tmp / sub).mkdir(parents=True)
        self.count = 0

    def add(self, exp, blur: np.ndarray, sharp: np.ndarray, meta: dict) -> None:
        name = f"{exp.index:06d}.png"
        (self.tmp / "blur" / name).write_bytes(encode_png(blur))
        (self.tmp / "sharp" / name).write_bytes(encode_png(sharp))
        self.count += 1

    def skip(self, index: int) -> None:
        pass

    def close(self) -> dict:
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        return {"files": [self.final.name], "frames": self.count}

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


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
        from .recipe import WINDOWS_PER_CLIP

        self.window = window
        self.stride = stride
        self.codec = codec
        self.base_meta = base_meta
        self.first_index = clip_ordinal * WINDOWS_PER_CLIP
        self.max_windows = WINDOWS_PER_CLIP
        self.events = events  # callable(first exposure, last exposure) -> bytes, or None
        self._shard = ShardWriter(Path(out_dir), shard_index)
        self._run: list[tuple] = []
        self._ignore = 0
        self.windows = 0
        self.count = 0

    def add(self, exp, blur: np.ndarray, sharp: np.ndarray, meta: dict) -> None:
        if self._ignore:
            self._ignore -= 1
            return
        self._run.append((exp, encode_image(blur, self.codec), encode_image(sharp, self.codec), meta))
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
