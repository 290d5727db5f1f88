"""Event wiring end to end: `blursynth generate --events` on the builtin source, `blursynth events` on a run, a
video the test writes and a folder of frames; the latent frames of a sample against the events it stores."""
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from _util import write_video

from blursynth.commands import main
from blursynth.events import decode_events, simulate, to_gray
from blursynth.events.exposure import gap_scene, scene_events
from blursynth.events.formats import read_gem_npz, read_h5, read_npz
from blursynth.generate import make_scene
from blursynth.recipe import load_recipe
from blursynth.render import latent_frames, render
from blursynth.seeding import stage_rng
from blursynth.sources import open_source
from blursynth.store.manifest import Manifest
from blursynth.store.shard import ShardReader

SMALL = ["--size", "96x64", "--no-progress", "--workers", "0"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def stored(run: Path) -> dict:
    """{index: (events, meta dict)} of every sample of a run."""
    out = {}
    for info in Manifest.load(run).shards:
        reader = ShardReader(run / info.name)
        for i in reader.indices():
            out[i] = (decode_events(reader.get(i, "events")), json.loads(reader.get(i, "meta")))
        reader.close()
    return out


def test_generate_events_round_trip_and_events_cli_rederives_them(tmp_path):
    r = cli("generate", "--num", 3, "--out", tmp_path / "run", "--events", "--set", "events.gap_s=0.004", *SMALL)
    assert r.exit_code == 0, r.output
    samples = stored(tmp_path / "run")
    assert sorted(samples) == [0, 1, 2]
    for i, (ev, meta) in samples.items():
        m = meta["events"]
        assert m["count"] == len(ev) and m["width"] == 96 and m["height"] == 64
        assert m["exposure_us"] == [0, 10000] and m["end_us"] == 14000
        if len(ev):
            assert ev["t"].min() > 0 and ev["t"].max() <= 14000 and np.all(np.diff(ev["t"]) >= 0)
            assert ev["x"].max() < 96 and ev["y"].max() < 64
    assert sum(len(ev) for ev, _ in samples.values()) > 1000
    # the same run without --events: same images and meta except the events entry, no events record
    r = cli("generate", "--num", 3, "--out", tmp_path / "plain", *SMALL)
    assert r.exit_code == 0, r.output
    with_ev = ShardReader(next(p for p in (tmp_path / "run").iterdir() if p.is_dir()))
    without = ShardReader(next(p for p in (tmp_path / "plain").iterdir() if p.is_dir()))
    assert "events" not in without.fields()
    for i in range(3):
        assert with_ev.get(i, "blur") == without.get(i, "blur")
        assert with_ev.get(i, "sharp") == without.get(i, "sharp")
        meta = json.loads(with_ev.get(i, "meta"))
        del meta["events"]
        assert meta == json.loads(without.get(i, "meta"))
    # blursynth events on the run re-derives exactly the stored streams, in every format
    for fmt in ("h5", "npz", "gem"):
        r = cli("events", tmp_path / "run", "--out", tmp_path / fmt, "--format", fmt, "--no-progress")
        assert r.exit_code == 0, r.output
        assert "3 stream(s)" in r.output
        for i, (ev, _) in samples.items():
            path = tmp_path / fmt / f"{i:08d}.{'h5' if fmt == 'h5' else 'npz'}"
            back = read_h5(path)[0] if fmt == "h5" else read_npz(path) if fmt == "npz" else read_gem_npz(path)["events"]
            assert back.tobytes() == ev.tobytes()
    gem = read_gem_npz(tmp_path / "gem" / "00000001.npz")
    assert gem["blur1"].shape == (3, 64, 96) and int(gem["exp_end1"]) == 10000 and int(gem["scale_factor"]) == 1


def test_static_scene_gives_no_events_and_noise_gives_some(tmp_path):
    static = ["--set", "shake.models={none: 1.0}", "--set", "scene.objects.count=[0, 0]",
              "--set", "shake.parallax_px=[0, 0]"]
    r = cli("generate", "--num", 2, "--out", tmp_path / "s", "--events", *static, *SMALL)
    assert r.exit_code == 0, r.output
    assert all(len(ev) == 0 for ev, _ in stored(tmp_path / "s").values())
    r = cli("generate", "--num", 1, "--out", tmp_path / "n", "--events", *static,
            "--set", "events.noise.shot_rate_hz=20", *SMALL)
    assert r.exit_code == 0, r.output
    (ev, meta), = stored(tmp_path / "n").values()
    # 96 x 64 pixels x 10 ms x 20 Hz = 1229 events at black, a quarter of that at white
    assert 1229 / 4 - 5 * 18 < len(ev) < 1229 + 5 * 35


def test_sample_events_are_those_of_its_latent_frames():
    # consistent with the blur by construction: the blur is the mean of latent_frames (render's own test); here
    # the stored stream equals a plain simulate over those same frames, gap included, and a 1/2 scale run equals
    # simulate over the 2x2-averaged frames.
    rec = load_recipe("default", ["size=[64, 48]", "events.enabled=true", "events.samples=9", "events.gap_s=0.005",
                                  "shake.models={bf: 1.0}", "shake.length_px=[8, 8]"])
    source = open_source("builtin", rec.size)
    _, _, scene, _ = make_scene(rec, source, 0, 2)
    ev, meta = scene_events(scene, rec.events, stage_rng(0, 2, "events"))
    n, m = meta["latent_exposure"], meta["latent_gap"]
    assert (n, m) == (9, 4)  # the gap sampled as densely as the exposure: 8 steps per 10 ms
    frames = np.concatenate([latent_frames(scene, np.linspace(0, 1, 9)),
                             latent_frames(gap_scene(scene, 0.5), np.arange(1, 5) / 4)])
    t_s = np.concatenate([np.linspace(0, 0.01, 9), 0.01 + np.arange(1, 5) / 4 * 0.005])
    expected, _ = simulate(to_gray(frames), t_s)
    assert len(ev) > 100 and ev.tobytes() == expected.tobytes()
    blur = render(scene, samples=64).blur
    assert np.abs(latent_frames(scene, (np.arange(64) + 0.5) / 64).mean(axis=0) - blur).max() < 1e-4
    rec2 = load_recipe("default", ["size=[64, 48]", "events.enabled=true", "events.samples=9", "events.scale=2",
                                   "shake.models={bf: 1.0}", "shake.length_px=[8, 8]"])
    ev2, meta2 = scene_events(scene, rec2.events, stage_rng(0, 2, "events"))
    g = to_gray(frames[:9])
    small = g.reshape(9, 24, 2, 32, 2).mean(axis=(2, 4), dtype=np.float64).astype(np.float32)
    assert (meta2["width"], meta2["height"], meta2["scale"]) == (32, 24, 2)
    assert ev2.tobytes() == simulate(small, np.linspace(0, 0.01, 9))[0].tobytes()


def test_gap_scene_continues_at_the_end_velocity():
    rec = load_recipe("default", ["size=[64, 48]", "shake.models={gp: 1.0}"])
    _, _, scene, _ = make_scene(rec, open_source("builtin", rec.size), 0, 0)
    gap = gap_scene(scene, 0.5)
    for layer, cont in zip(scene.layers, gap.layers):
        H = layer.motion.H
        if len(H) == 1:
            continue
        end_velocity = (H[-1] - H[-2]) * (len(H) - 1)
        np.testing.assert_allclose(cont.motion.at(0.0)[0], H[-1] / H[-1][2, 2])
        expected = H[-1] + 0.5 * 0.4 * end_velocity  # u = 0.4 of a gap of 0.5 exposures
        np.testing.assert_allclose(cont.motion.at(0.4)[0], expected / expected[2, 2], atol=1e-9)


def test_events_cli_on_a_video_and_a_folder(tmp_path):
    photo = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    frames = [np.ascontiguousarray(photo[20:84, 10 + 2 * k:106 + 2 * k]) for k in range(6)]  # 2 px / frame pan
    video = write_video(tmp_path / "pan.mkv", frames)
    r = cli("events", video, "--out", tmp_path / "v", "--scale", 2, "--no-progress")
    assert r.exit_code == 0, r.output
    ev, attrs = read_h5(tmp_path / "v" / "events.h5")
    with h5py.File(tmp_path / "v" / "events.h5") as f:
        assert f["events/x"][:].max() < 48 and f["events/y"][:].max() < 32
    assert attrs["scale"] == 2 and attrs["width"] == 48 and len(ev) > 500
    assert ev["t"].min() > 0 and ev["t"].max() <= 5 / 25 * 1e6 + 1 and np.all(np.diff(ev["t"]) >= 0)

    static = write_video(tmp_path / "static.mkv", [frames[0]] * 4)
    r = cli("events", static, "--out", tmp_path / "s", "--format", "npz", "--no-progress")
    assert r.exit_code == 0, r.output
    assert len(read_npz(tmp_path / "s" / "events.npz")) == 0

    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    r = cli("events", folder, "--out", tmp_path / "f", "--no-progress")
    assert r.exit_code != 0 and "timestamps" in r.output
    (folder / "timestamps.txt").write_text("\n".join(str(0.01 * k) for k in range(6)) + "\n")
    r = cli("events", folder, "--out", tmp_path / "f", "--format", "npz", "--no-progress")
    assert r.exit_code == 0, r.output
    got = read_npz(tmp_path / "f" / "events.npz")
    from blursynth.camera import Response
    from blursynth.video import linearize
    gray = np.stack([to_gray(linearize(f, Response())) for f in frames])
    assert got.tobytes() == simulate(gray, 0.01 * np.arange(6))[0].tobytes()


@pytest.mark.parametrize("case", ["not_video", "few_timestamps", "gem_video"])
def test_events_cli_bad_inputs_name_the_file(tmp_path, case):
    if case == "not_video":
        bad = tmp_path / "clip.mp4"
        bad.write_bytes(b"not a video at all")
        r = cli("events", bad, "--out", tmp_path / "o", "--no-progress")
        assert r.exit_code != 0 and "clip.mp4" in r.output
    elif case == "few_timestamps":
        for k in range(3):
            cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((8, 8, 3), 40 * k, np.uint8))
        (tmp_path / "timestamps.txt").write_text("0.0\n0.1\n")
        r = cli("events", tmp_path, "--out", tmp_path / "o", "--no-progress")
        assert r.exit_code != 0 and "timestamps.txt" in r.output and "2 timestamps for 3 frames" in r.output
    else:
        video = write_video(tmp_path / "v.mkv", [np.zeros((16, 16, 3), np.uint8)] * 3)
        r = cli("events", video, "--out", tmp_path / "o", "--format", "gem", "--no-progress")
        assert r.exit_code != 0 and "generated run" in r.output
