"""A wheel or an sdist install behaves as the editable one: the named recipes (blursynth/pipelines/*.yaml) and
every file blursynth.cuda's just-in-time build reads (blursynth/csrc: cuda.SOURCES and the headers they include)
lie inside the package and ship in both (setup.py package_data, MANIFEST.in).

The builds run on a copy of the checkout (without .git, build/ and *.egg-info), so they leave the shared tree
alone and a file that is only in git but not declared to setuptools cannot slip in. `.ci/wheel-check` goes
further: it installs the wheel in a fresh venv and runs every named recipe from an empty directory.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import blursynth
from blursynth import cuda, recipe

ROOT = Path(__file__).resolve().parent.parent
PKG = Path(blursynth.__file__).resolve().parent
_IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "*.so", "venv",
                                 "runs", ".pytest_cache")


def jit_files() -> list[str]:
    """Paths, relative to the package, of what cuda._build_jit compiles: cuda.SOURCES and, transitively, the
    headers they include with quotes (found in cuda.CSRC, the include path it passes)."""
    todo, seen = list(cuda.SOURCES), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = cuda.CSRC / name
        assert path.is_file(), f"{path} (read by the CUDA just-in-time build) is missing"
        todo += re.findall(r'^\s*#\s*include\s+"([^"]+)"', path.read_text(), re.M)
    return sorted(f"{cuda.CSRC.relative_to(PKG).as_posix()}/{n}" for n in seen)


def expected_files() -> list[str]:
    recipes = sorted(f"pipelines/{p.name}" for p in recipe.PIPELINES_DIR.glob("*.yaml"))
    assert "pipelines/default.yaml" in recipes
    return recipes + jit_files()


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


def _build_wheel(src: Path, out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(out), "."], cwd=src)
    (wheel,) = out.glob("blursynth-*.whl")
    return wheel


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the checkout to build from."""
    dst = tmp_path_factory.mktemp("checkout") / "blursynth"
    shutil.copytree(ROOT, dst, ignore=_IGNORE)
    return dst


@pytest.fixture(scope="module")
def wheel(tree, tmp_path_factory) -> Path:
    return _build_wheel(tree, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def sdist(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    try:
        import build  # noqa: F401  (python -m build, where installed; it needs no network with --no-isolation)
        cmd = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), "."]
    except ImportError:
        cmd = [sys.executable, "setup.py", "-q", "sdist", "-d", str(out)]
    _run(cmd, cwd=tree)
    (tgz,) = out.glob("blursynth-*.tar.gz")
    return tgz


def test_data_dirs_are_inside_the_package():
    for d in (recipe.PIPELINES_DIR, cuda.CSRC):
        assert d.is_dir(), d
        assert d.resolve().parent == PKG, f"{d} is not a folder of the blursynth package ({PKG})"


def test_named_recipes_load_by_name():
    from blursynth.adapt.settings import load_settings
    from blursynth.video.recipe import load_video_recipe

    names = sorted(p.stem for p in recipe.PIPELINES_DIR.glob("*.yaml"))
    assert {"default", "sbdd", "gopro-video", "adapt"} <= set(names)
    for name in names:
        if name.endswith("-video"):
            load_video_recipe(name)
        elif name.startswith("adapt"):
            load_settings(name)
        else:
            assert recipe.load_recipe(name).name == name


def test_wheel_holds_recipes_and_cuda_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in expected_files() if f"blursynth/{f}" not in names]
    assert not missing, f"{wheel.name} lacks {missing} (setup.py package_data)"
    assert "blursynth/cuda/build.py" in names and "blursynth/recipe.py" in names


def test_sdist_holds_recipes_and_cuda_sources(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [f for f in expected_files() if f"blursynth/{f}" not in names]
    missing += [f for f in ("setup.py", "README.md", "MANIFEST.in") if f not in names]
    assert not missing, f"{sdist.name} lacks {missing} (MANIFEST.in)"


def test_wheel_built_from_the_sdist_holds_them(sdist, tmp_path):
    """What `pip install blursynth-*.tar.gz` installs: the sdist unpacked, its own setup.py building the wheel."""
    with tarfile.open(sdist) as tar:
        kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
        tar.extractall(tmp_path / "src", **kw)
    (src,) = (tmp_path / "src").iterdir()
    names = set(zipfile.ZipFile(_build_wheel(src, tmp_path / "wheel")).namelist())
    missing = [f for f in expected_files() if f"blursynth/{f}" not in names]
    assert not missing, f"the wheel built from {sdist.name} lacks {missing}"
