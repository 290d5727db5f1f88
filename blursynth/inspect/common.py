"""What the summary, the verification and the preview share: opening a run's manifest, and how sizes and errors
read in their lines."""
from __future__ import annotations

from pathlib import Path

from ..store.manifest import MANIFEST_NAME, Manifest


def _load_manifest(run_dir: Path) -> Manifest:
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a directory, so not a blursynth run")
    if not (run_dir / MANIFEST_NAME).is_file():
        raise FileNotFoundError(f"{run_dir} is not a blursynth run: it has no {MANIFEST_NAME}")
    return Manifest.load(run_dir)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
