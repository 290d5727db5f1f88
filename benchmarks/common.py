"""What every benchmark records about the machine it ran on, the load it ran under and the code it ran."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# the 1 / 5 / 15-minute load average when the benchmark started (every script imports this module first)
LOAD_AT_START = os.getloadavg()


def git_describe() -> str | None:
    """`git describe --always --dirty` of the checkout the benchmarks run from, or None outside git."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info() -> dict:
    """The machine, the library versions, the commit, and the load average at the script's start and now (a
    result is written at its end): a result that ran beside other work says so."""
    import cv2
    import lmdb
    import numba
    import numpy

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "cv2": cv2.__version__,
        "lmdb": lmdb.__version__,
        "commit": git_describe(),
        "load_average_1_5_15": {"start": list(LOAD_AT_START), "end": list(os.getloadavg())},
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def read_clip(path, width: int, even_height: bool = False) -> list:
    """Every frame of a video decoded by OpenCV, resized (INTER_AREA) to `width` px wide with the height in
    proportion (rounded to an even number with even_height), as uint8 RGB (h, width, 3) arrays."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        height = int(round(h * width / w / 2)) * 2 if even_height else int(round(h * width / w))
        frames.append(cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
