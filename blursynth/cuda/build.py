"""The csrc/ extension: the module built at install (`blursynth.cuda._ext`), or compiled just in time into a cache
directory on first use (torch.utils.cpp_extension)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CSRC = Path(__file__).resolve().parent.parent / "csrc"
SOURCES = ("bindings.cpp", "render.cu", "events.cu")

_EXT = None
_EXT_ERROR: str | None = None


def cache_dir() -> Path:
    """Where just-in-time builds of the extension live."""
    import torch

    env = os.environ.get("BLURSYNTH_CUDA_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "blursynth" / f"cuda-{torch.__version__}-{torch.version.cuda}"


def extension():
    """The compiled extension module (RuntimeError with the reason when it cannot be had)."""
    global _EXT, _EXT_ERROR
    if _EXT is not None:
        return _EXT
    if _EXT_ERROR is not None:
        raise RuntimeError(_EXT_ERROR)
    import torch  # noqa: F401  (loads the libraries the extension links against)
    del torch

    try:
        from . import _ext as ext  # built by BLURSYNTH_CUDA=1 pip install
    except ImportError:
        try:
            ext = _build_jit()
        except Exception as exc:  # compiler errors, missing toolkit: remembered, reported once per process
            _EXT_ERROR = f"CUDA extension unavailable: {exc}"
            raise RuntimeError(_EXT_ERROR) from exc
    _EXT = ext
    return ext


def _build_jit():
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, load

    if torch.version.cuda is None:
        raise RuntimeError("this torch is a CPU-only build")
    if CUDA_HOME is None:
        raise RuntimeError("no CUDA toolkit (nvcc) found; set CUDA_HOME")
    missing = [s for s in SOURCES if not (CSRC / s).exists()]
    if missing:
        raise RuntimeError(f"sources {missing} not found under {CSRC} (they ship as package data): reinstall "
                           "blursynth")
    build = cache_dir()
    build.mkdir(parents=True, exist_ok=True)
    log.info("compiling the blursynth CUDA extension into %s (once)", build)
    return load(name="blursynth_cuda", sources=[str(CSRC / s) for s in SOURCES], extra_include_paths=[str(CSRC)],
                extra_cflags=["-O3"], extra_cuda_cflags=["-O3", "-std=c++17"], build_directory=str(build))
