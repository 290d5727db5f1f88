"""The target videos `blursynth adapt` reads: video files and folders of frames.

A path on the command line is
- a video file (any container OpenCV's FFmpeg backend decodes);
- a BSD-style sequence folder `SEQ/` holding `Blur/RGB/*.png` (the blurry frames; `Sharp/` is ignored);
- a folder of frames (`*.png`, `*.jpg`, ... sorted by name);
- a folder holding any of those below it: every `*/Blur/RGB` sequence, and every video file directly inside.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inputs import images_in, videos_in
from ..sources.io import SourceError, read_image
from ..video.decode import read_frames


class InputError(Exception):
    """A target that cannot be used; the message names it and says why."""


@dataclass
class Target:
    """One target video.

    Attributes:
        id: short unique name (file stem or sequence folder name), used in meta and file names.
        path: the video file or the sequence folder.
        frames: the frame files of a folder, sorted; None for a video file.
    """

    id: str
    path: Path
    frames: list[Path] | None = None

    def count_hint(self) -> int:
        """Frames expected (exact for folders; the container's claim, or 0, for a video)."""
        if self.frames is not None:
            return len(self.frames)
        try:
            with read_frames(self.path) as reader:
                return reader.reported_count
        except (OSError, ValueError):
            return 0

    def open(self) -> Iterator[np.ndarray]:
        """Iterate the frames as uint8 (H, W, 3) RGB. InputError for fewer than 2 frames, an undecodable file or
        frame, or frames of different sizes."""
        if self.frames is None:
            return self._video()
        if len(self.frames) < 2:
            raise InputError(f"{self.path}: needs at least 2 frames, has {len(self.frames)}")
        return self._folder()

    def _video(self) -> Iterator[np.ndarray]:
        try:
            reader = read_frames(self.path)
        except (OSError, ValueError) as exc:
            raise InputError(str(exc)) from exc
        return _same_size(reader, self.path)

    def _folder(self) -> Iterator[np.ndarray]:
        def frames():
            for f in self.frames:
                try:
                    yield read_image(f)
                except SourceError as exc:
                    raise InputError(f"{self.path}: frame {exc}") from exc
        return _same_size(frames(), self.path)


def _same_size(frames, path: Path) -> Iterator[np.ndarray]:
    shape = None
    for k, frame in enumerate(frames):
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise InputError(f"{path}: frame {k} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the first is {shape[1]}x{shape[0]}")
        yield frame


def discover(paths) -> tuple[list[Target], list[dict]]:
    """The targets named by command-line paths.

    Returns:
        (targets, skipped): skipped holds {"input": path, "reason": ...} for paths with nothing usable (missing,
        a folder without frames). Ids are unique (a repeated name gets -2, -3, ...).
    """
    targets: list[Target] = []
    skipped: list[dict] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            skipped.append({"input": str(raw), "reason": "not found"})
            continue
        found = _targets_in(path) if path.is_dir() else [Target(path.stem, path)]
        if not found:
            skipped.append({"input": str(raw), "reason": "folder without frames (no *.png/*.jpg frames, no Blur/RGB "
                                                         "sequence, no video file)"})
        targets += found
    seen: dict[str, int] = {}
    for t in targets:
        n = seen.get(t.id, 0) + 1
        seen[t.id] = n
        if n > 1:
            t.id = f"{t.id}-{n}"
    return targets, skipped


def _targets_in(folder: Path) -> list[Target]:
    bsd = folder / "Blur" / "RGB"
    if bsd.is_dir():
        frames = _images(bsd)
        return [Target(folder.name, folder, frames)] if frames else []
    images = _images(folder)
    if images:
        return [Target(folder.name, folder, images)]
    found = []
    for rgb in sorted(folder.rglob("Blur/RGB")):
        if rgb.is_dir() and _images(rgb):
            seq = rgb.parent.parent
            found.append(Target("_".join(seq.relative_to(folder).parts) or seq.name, seq, _images(rgb)))
    found += [Target(p.stem, p) for p in videos_in(folder)]
    return found


def _images(folder: Path) -> list[Path]:
    return images_in(folder)
