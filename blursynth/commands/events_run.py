"""The `blursynth events` run, without click: read an input (video, folder of frames, generated run), make
latent frames, simulate, write h5 / npz / GEM npz and a summary (events.json). See commands/events.py."""
from __future__ import annotations

import dataclasses
import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..jit import kernels_may_overlap
from ..store.rundir import disk_full_is_clear, lock_out
from ..events.formats import H5EventWriter, write_gem_npz, write_h5, write_npz
from ..events.frames import downscale, to_gray
from ..events.noise import NoiseModel
from ..events.simulate import concatenate_events

log = logging.getLogger(__name__)

CHUNK_FRAMES = 16


class InputError(ValueError):
    """An input that cannot be simulated; the message names the file and the reason."""


@dataclass
class EventOptions:
    """Simulator settings from the command line; None keeps the default (or, for a run, the recipe's value)."""

    threshold_pos: float | None = None
    threshold_neg: float | None = None
    refractory_s: float | None = None
    scale: int | None = None
    noise: str | None = None  # NoiseModel preset name
    random_reference: bool | None = None
    seed: int = 0

    def simulate_kwargs(self) -> dict:
        noise = NoiseModel.preset(self.noise or "ideal")
        return {"threshold_pos": self.threshold_pos or 0.2, "threshold_neg": self.threshold_neg or 0.2,
                "refractory_s": self.refractory_s or 0.0, "noise": noise,
                "random_reference": bool(self.random_reference),
                "rng": np.random.default_rng(self.seed)}


def run_events(input_path: Path, out: Path, fmt: str, opts: EventOptions, latent="auto", timestamps=None,
               num: int | None = None, progress: bool = True, device: str = "cpu", command: str = "") -> dict:
    """Simulate INPUT into `out`; returns the summary dict (also written to out/events.json).

    device: "cpu", "cuda" or "cuda:N" (checked before anything is written; blursynth.cuda.resolve_device). On a
    GPU the simulator runs there with its state kept there between chunks (cuda.simulate_frames: the same
    events, in the same order); for a generated run the latent frames are rendered there too
    (cuda.scene_events). A noise model other than ideal has no CUDA kernel and runs on the CPU.
    command: what runs, named to a second writer of `out`.

    `out` is locked (store.lock.RunLock) before anything is read or written, until the end.
    Raises InputError for an input that cannot be simulated; store.rundir.RunError for an `out` that cannot be
    created; RunLockedError while another process writes to `out`; DiskFullError when its disk fills up.
    """
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    from ..backend import backend_for
    from ..cuda import check_device

    try:
        check_device(device)
    except (RuntimeError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    backend = backend_for(device)
    out = Path(out)
    with lock_out(out, command), disk_full_is_clear(out, lambda: f"the files written so far are in {out}",
                                                    then=_AGAIN):
        summary = _simulate(input_path, out, fmt, opts, latent, timestamps, num, progress, backend)
        (out / "events.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# events has no --resume: a second run writes every file again
_AGAIN = "run the same command again (it writes every file again)"


def _simulate(input_path: Path, out: Path, fmt: str, opts: EventOptions, latent, timestamps, num: int | None,
              progress: bool, backend) -> dict:
    """run_events' work once `out` is locked: the summary, less events.json. backend: backend.Backend."""
    if input_path.is_dir() and (input_path / "manifest.json").is_file():
        summary = _run_dir(input_path, out, fmt, opts, num, progress, backend)
    else:
        if fmt == "gem":
            raise InputError("--format gem writes per-sample npz with blurred frames: it needs a generated run "
                             "(use h5 or npz for videos and folders)")
        if input_path.is_dir():
            frames, n = _folder_frames(input_path, timestamps)
            kind = "folder"
        else:
            frames, n = _video_frames(input_path, latent)
            kind = "video"
        summary = _simulate_stream(frames, n, out, fmt, opts, kind, progress, backend)
    summary["options"] = dataclasses.asdict(opts)
    summary["device"] = backend.name
    return summary


def _simulate_stream(frames, n_hint, out, fmt, opts, kind, progress, backend) -> dict:
    """Simulate one stream of gray linear frames and write it as one file.

    frames: an iterable of (full-size frame chunk (k, H, W), times (k,) in seconds), one input frame per frame,
    downscaled here by opts.scale (a folder); or a callable scale -> iterable of (chunk already at 1 / scale,
    times, input frames the chunk advances), for a video whose latent frames are made at the event resolution
    (`_video_frames`). n_hint: input frames in all, the progress bar's total (None: unknown).
    """
    from tqdm import tqdm

    scale = opts.scale or 1
    if callable(frames):
        chunks = frames(scale)
    else:
        chunks = ((downscale(chunk, scale), t_s, len(chunk)) for chunk, t_s in frames)
    n_frames, size = 0, None
    sink = _Sink(backend, opts.simulate_kwargs(), out / "events", fmt)
    try:
        # the bar counts input frames (a video's latent frames are many more and vary per interval), so its
        # total and ETA hold
        with tqdm(total=n_hint, unit="frame", desc="events", disable=not progress, leave=False) as bar:
            for small, t_s, advance in chunks:
                sink.put(small, t_s)
                n_frames += len(small)
                size = small.shape[1:]
                bar.update(advance)
        path = sink.close(size, scale)
    except BaseException:
        sink.abort()
        raise
    return {"kind": kind, "streams": 1, "events": sink.count, "frames": n_frames, "files": [path.name],
            "width": int(size[1]), "height": int(size[0]), "scale": scale}


class _Sink:
    """Simulates a stream's chunks in order and writes their events as they come (h5: `H5EventWriter`; npz:
    kept, written at the end), one chunk behind the caller: in a thread of its own once numba's threading layer
    lets two threads run kernels at once (`jit.kernels_may_overlap`), so that the simulator and the h5
    compression run while the next chunk's latent frames are made (on a 2-core machine they were 2 of the 9 s
    of `events bikes.mp4 --scale 4`, on one core, the last 0.7 s of them after every frame was made). The
    events and their order are those of simulating the chunks one after the other: one thread does it."""

    def __init__(self, backend, simulate_kwargs: dict, stem: Path, fmt: str):
        self._backend = backend
        self._kw = simulate_kwargs
        self._state = None
        self.count = 0
        self._parts: list[np.ndarray] | None = None
        self._stem = stem
        if fmt == "h5":
            self._writer = H5EventWriter(stem.with_suffix(".h5"))
        else:
            self._writer, self._parts = None, []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def put(self, frames, t_s) -> None:
        """Simulate a chunk (its frames at the event resolution, times in seconds) after the ones before it."""
        self._wait()
        if self._pool is None and kernels_may_overlap():
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blursynth-events")
        if self._pool is None:
            self._step(frames, t_s)
        else:
            self._pending = self._pool.submit(self._step, frames, t_s)

    def close(self, size, scale: int) -> Path:
        """Wait for the last chunk, finish the file; returns its path."""
        self._wait()
        self._shutdown()
        if self._writer is not None:
            h, w = size
            return self._writer.close(height=h, width=w, attrs={"scale": int(scale)})
        return _write(self._stem, "npz", concatenate_events(self._parts), size, scale)

    def abort(self) -> None:
        """After a failure: let a running chunk finish, drop the rest, delete the partial file."""
        if self._pending is not None:
            self._pending.cancel()
            try:
                self._pending.exception()
            except BaseException:  # noqa: BLE001 (cancelled or interrupted: nothing more to wait for)
                pass
            self._pending = None
        self._shutdown()
        if self._writer is not None:
            self._writer.abort()

    def _step(self, frames, t_s) -> None:
        events, self._state = self._backend.simulate(frames, t_s, state=self._state, **self._kw)
        self.count += len(events)
        if self._writer is not None:
            self._writer.append(events)
        else:
            self._parts.append(events)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _write(stem: Path, fmt: str, events, size, scale) -> Path:
    h, w = size
    if fmt == "h5":
        return write_h5(stem.with_suffix(".h5"), events, height=h, width=w, attrs={"scale": int(scale)})
    return write_npz(stem.with_suffix(".npz"), events, height=h, width=w, scale=scale)


def _video_frames(path: Path, latent):
    """A video's gray linear frames at the event resolution: callable scale -> chunks (frames (k, H / scale,
    W / scale), times (k,) in seconds, 1), first real frame 0, then per interval the flow-interpolated latent
    frames up to and including the next real frame (video.latent.gray_latents: made at 1 / scale directly); frame
    j at j / fps. Also returns the clip's reported frame count (None when unknown)."""
    from ..video import read_frames
    from ..video.latent import gray_latents

    try:
        reader = read_frames(path)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from exc

    def chunks(scale):
        for gray, t in gray_latents(reader, latent if latent == "auto" else int(latent), scale):
            yield gray, t / reader.fps, 1

    return chunks, reader.reported_count or None


def _folder_frames(folder: Path, timestamps):
    """Chunks of gray linear frames of a folder of images (sorted by name) with their timestamps."""
    from ..camera import Response
    from ..inputs import IMAGE_EXTENSIONS, images_in, listed
    from ..sources.base import SourceError
    from ..sources.io import read_image
    from ..video import linearize

    files = images_in(folder)
    if len(files) < 2:
        raise InputError(f"{folder}: needs at least 2 image files ({listed(IMAGE_EXTENSIONS)}), "
                         f"found {len(files)}")
    ts_path = Path(timestamps) if timestamps else folder / "timestamps.txt"
    if not ts_path.is_file():
        raise InputError(f"{folder}: no timestamps file (expected {ts_path.name} in the folder, or --timestamps)")
    try:
        t_s = np.loadtxt(ts_path, dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise InputError(f"{ts_path}: not one number (seconds) per line: {exc}") from exc
    if t_s.ndim != 1 or len(t_s) != len(files):
        raise InputError(f"{ts_path}: {t_s.size} timestamps for {len(files)} frames")
    if np.any(np.diff(t_s) <= 0):
        raise InputError(f"{ts_path}: timestamps must be strictly increasing")
    response = Response()

    def chunks():
        shape = None
        for a in range(0, len(files), CHUNK_FRAMES):
            gray = []
            for f in files[a:a + CHUNK_FRAMES]:
                try:
                    img = read_image(f)
                except SourceError as exc:
                    raise InputError(f"{f}: {exc}") from exc
                if shape is not None and img.shape != shape:
                    raise InputError(f"{f}: size {img.shape[1]}x{img.shape[0]} differs from the first frame's "
                                     f"{shape[1]}x{shape[0]}")
                shape = img.shape
                gray.append(to_gray(linearize(img, response)))
            yield np.stack(gray), t_s[a:a + len(gray)]

    return chunks(), len(files)


def _run_dir(run: Path, out: Path, fmt: str, opts: EventOptions, num: int | None, progress: bool,
             backend) -> dict:
    """Per-sample event files for a generated run, re-derived from its recipe, seed and indices."""
    from tqdm import tqdm

    from ..generate import Skip, make_scene
    from ..recipe import RecipeError, recipe_from_dict
    from ..seeding import stage_rng
    from ..sources import open_source
    from ..store.codec import decode_image
    from ..store.manifest import Manifest
    from ..store.shard import ShardReader

    manifest = Manifest.load(run)
    data = json.loads(json.dumps(manifest.recipe))
    ev = data.setdefault("events", {})
    for key, value in (("threshold_pos", opts.threshold_pos), ("threshold_neg", opts.threshold_neg),
                       ("refractory_s", opts.refractory_s), ("scale", opts.scale),
                       ("random_reference", opts.random_reference)):
        if value is not None:
            ev[key] = value
    if opts.noise is not None:
        ev["noise"] = NoiseModel.preset(opts.noise).to_dict()
    try:
        recipe = recipe_from_dict(data)
    except RecipeError as exc:
        raise InputError(f"{run}: {exc}") from exc
    spec = manifest.extra.get("source")
    if not spec:
        raise InputError(f"{run}/manifest.json records no source; cannot re-derive its scenes")
    source = open_source(spec, tuple(recipe.size), manifest.extra.get("sam"))
    todo = [(s.name, i) for s in manifest.shards for i in s.indices]
    todo = sorted(todo, key=lambda t: t[1])[:num]
    total, n_frames, files, skipped = 0, 0, [], []
    readers = {}
    with tqdm(total=len(todo), unit="sample", desc="events", disable=not progress, leave=False) as bar:
        for shard, index in todo:
            made = make_scene(recipe, source, manifest.seed, index)
            if isinstance(made, Skip):
                skipped.append(made.to_dict())
                bar.update(1)
                continue
            events, meta = backend.scene_events(made[2], recipe.events, stage_rng(manifest.seed, index, "events"))
            stem = out / f"{index:08d}"
            if fmt == "gem":
                reader = readers.setdefault(shard, ShardReader(run / shard))
                blur = decode_image(reader.get(index, "blur"), manifest.codec)
                sharp = decode_image(reader.get(index, "sharp"), manifest.codec)
                t_ref = int(round(recipe.render.reference_time * meta["exposure_us"][1]))
                path = write_gem_npz(stem.with_suffix(".npz"), blur1=blur.transpose(2, 0, 1),
                                     exp_start1=meta["exposure_us"][0], exp_end1=meta["exposure_us"][1],
                                     events=events, sharp_imgs=sharp.transpose(2, 0, 1)[None],
                                     sharp_timestamps=[t_ref], scale_factor=recipe.events.scale)
            else:
                path = _write(stem, fmt, events, (meta["height"], meta["width"]), recipe.events.scale)
            files.append(path.name)
            total += len(events)
            n_frames += meta["latent_exposure"] + meta["latent_gap"]
            bar.update(1)
    for reader in readers.values():
        reader.close()
    return {"kind": "run", "streams": len(files), "events": int(total), "frames": n_frames, "files": files,
            "skipped": skipped, "scale": recipe.events.scale, "recipe_events": recipe.to_dict()["events"],
            "seed": manifest.seed}

