"""MPEG-4 videos of one clip: OUT/NAME_blurry.mp4, OUT/NAME_sharp.mp4, OUT/NAME_flow.mp4 (cv2.VideoWriter, MPEG-4
part 2 'mp4v', at the output frame rate; the flow drawn with the HSV colour wheel of `video.flow.flow_to_color`),
like Wieschollek et al.'s synthblur. Written in OUT/.tmp-NAME/ and moved to OUT when complete (a killed run leaves
at most the temporary folder, removed by the next run with --resume).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..video.flow import flow_to_color
from .base import Pair


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

    def put(self, pair: Pair) -> None:
        """Append one output frame: uint8 (H, W, 3) RGB blur and sharp, and pair.extra["flow"]."""
        if not self._writers:
            h, w = pair.blur.shape[:2]
            for suffix in self.SUFFIXES:
                writer = cv2.VideoWriter(str(self.tmp / f"{self.name}_{suffix}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                         self.fps, (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"OpenCV cannot write MPEG-4 video {self.name}_{suffix}.mp4 (no 'mp4v' encoder)")
                self._writers.append(writer)
        flow = flow_to_color(pair.extra["flow"], max_px=self.flow_max_px)
        for writer, img in zip(self._writers, (pair.blur, pair.sharp, flow)):
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
