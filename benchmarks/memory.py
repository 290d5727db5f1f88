"""Memory of one generating process, by what it holds: imports, compiled kernels, the built-in photos' cache,
and one 1280x720 sample's transient arrays (tracemalloc, which numpy reports its buffers to).

    python benchmarks/memory.py [--out benchmarks/results/memory.json]

Run with one thread, as a Ray worker runs. A Ray worker adds its core-worker runtime on top (see scaling.py
for whole-worker peaks).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tracemalloc
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def rss_mb() -> float:
    return int(open(f"/proc/{os.getpid()}/statm").read().split()[1]) * resource.getpagesize() / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "memory.json"))
    args = ap.parse_args()
    steps = {"python": rss_mb()}
    import cv2  # noqa: F401
    import numpy  # noqa: F401

    steps["numpy + cv2 imported"] = rss_mb()
    import numba  # noqa: F401

    steps["numba imported"] = rss_mb()
    from blursynth.generate import encode_sample, make_sample
    from blursynth.recipe import load_recipe
    from blursynth.sources import open_source
    from blursynth.sources.builtin import PHOTOS

    steps["blursynth imported"] = rss_mb()
    recipe = load_recipe("default", ["scene.objects.count=[5, 5]"])
    source = open_source("builtin", recipe.size)
    encode_sample(make_sample(recipe, source, 0, 0), recipe)
    steps["after one sample (kernels loaded)"] = rss_mb()
    for i in range(3 * len(PHOTOS)):
        make_sample(recipe, source, 0, 100 + i)
    steps["after every built-in photo segmented"] = rss_mb()
    tracemalloc.start()
    encode_sample(make_sample(recipe, source, 0, 7), recipe)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    from common import machine_info

    names = list(steps)
    deltas = {names[i]: steps[names[i]] - (steps[names[i - 1]] if i else 0.0) for i in range(len(names))}
    result = {"machine": machine_info(), "rss_mb": steps, "rss_added_mb": deltas,
              "sample_transient_peak_mb": peak / 2**20,
              "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(args.out).write_text(json.dumps(result, indent=2))
    for name, value in deltas.items():
        print(f"{name:40s} +{value:6.0f} MB (RSS {steps[name]:.0f} MB)")
    print(f"one 720p sample's transient arrays at peak: {result['sample_transient_peak_mb']:.0f} MB; "
          f"max RSS {result['max_rss_mb']:.0f} MB")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
