"""blursynth.inputs: one table of video and image extensions, and the folder searches every command uses."""
from __future__ import annotations

import ast
from pathlib import Path

import blursynth
from blursynth.adapt.inputs import discover
from blursynth.inputs import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, images_in, videos_in
from blursynth.commands.video_run import plan_clips
from blursynth.sources.folder import FolderSource


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_folder_searches_sort_filter_and_recurse_only_when_asked(tmp_path):
    _touch(tmp_path, "b.MP4", "a.3gp", "notes.txt", "c.png", "sub/d.mkv", "sub/e.PPM")
    (tmp_path / "dir.mp4").mkdir()  # a folder with a video's name is not a video
    assert [p.name for p in videos_in(tmp_path)] == ["a.3gp", "b.MP4"]
    assert [p.relative_to(tmp_path).as_posix() for p in videos_in(tmp_path, recursive=True)] == \
        ["a.3gp", "b.MP4", "sub/d.mkv"]
    assert [p.name for p in images_in(tmp_path)] == ["c.png"]
    assert [p.name for p in images_in(tmp_path, recursive=True)] == ["c.png", "e.PPM"]


def test_video_and_adapt_find_the_same_videos_in_a_folder(tmp_path):
    # adapt once lacked .3gp, which video took: both read the one table now
    names = [f"clip{i}{ext}" for i, ext in enumerate(VIDEO_EXTENSIONS)]
    _touch(tmp_path, *names, "readme.txt")
    targets, skipped = discover([tmp_path])
    assert skipped == []
    assert sorted(t.path.name for t in targets) == sorted(c.name + Path(c.path).suffix
                                                          for c in plan_clips([tmp_path])) == sorted(names)


def test_every_listed_image_format_reads_and_the_folder_source_takes_it(tmp_path):
    import cv2
    import numpy as np

    from blursynth.sources.io import read_image

    rgb = np.full((16, 16, 3), 128, np.uint8)
    for i, ext in enumerate(IMAGE_EXTENSIONS):
        path = tmp_path / f"im{i}{ext}"
        assert cv2.imwrite(str(path), rgb[..., 0] if ext == ".pgm" else rgb), ext  # .pgm holds gray only
        assert read_image(path).shape == (16, 16, 3), ext  # what every command reads frames and photos with
    assert len(FolderSource(tmp_path, (16, 16)).files) == len(IMAGE_EXTENSIONS)


def test_no_other_module_keeps_its_own_extension_list():
    """A tuple or set of 3 or more '.ext' strings outside inputs.py is a second table (ADE20K's fixed file layout
    is the one exception: it names the dataset's own files, not what a user may pass)."""
    root = Path(blursynth.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "inputs.py" and path.parent == root or path.name == "ade20k.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.Set, ast.List)):
                exts = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                        and e.value.startswith(".") and 2 <= len(e.value) <= 5]
                if len(exts) >= 3:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {exts[:3]}")
    assert found == []
