"""What counts as a video or an image on the command line, and how folders of them are searched.

One table for every command that takes files: `video` (clips), `adapt` (target videos and frame folders),
`events` (a video or a folder of frames), `evaluate` (folders of images) and the `folder:` source. A new
container or image format is one entry here; decoding stays with OpenCV (`video.decode`, `sources.io`).
"""
from __future__ import annotations

from pathlib import Path

# containers OpenCV's FFmpeg backend decodes
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                    ".mts", ".3gp", ".y4m")
# images cv2.imread decodes
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def videos_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The video files in `folder` (and below it with `recursive`), sorted by path."""
    return sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if is_video(p))


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in `folder` (and below it with `recursive`), sorted by path: a folder of frames is read
    in this (name) order."""
    return sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if is_image(p))


def listed(extensions: tuple[str, ...]) -> str:
    """The extensions for a message: '.mp4, .avi, ...'."""
    return ", ".join(extensions)
