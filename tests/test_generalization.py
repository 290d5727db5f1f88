"""The generalization benchmark's instruments: real-blur targets against direct numpy references, the ablation
arms changing only what they name, and the throughput guard firing on a deliberately slowed run."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import generalization as G  # noqa: E402
import realblur  # noqa: E402

SHIFT = 2  # px per frame, content moving left
WIDTH, HEIGHT = 96, 48


def _srgb_to_linear(code: np.ndarray) -> np.ndarray:
    c = code.astype(np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb_u8(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(c * 255.0).astype(np.uint8)


def _texture(width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((HEIGHT, width, 3)).astype(np.float32), (0, 0), 2.0)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.round(40 + 170 * noise).astype(np.uint8)


def _sliding_clip(n: int, cut_at: int | None = None) -> list[np.ndarray]:
    """Frame i = texture columns [SHIFT i, SHIFT i + WIDTH): a known, pure translation of SHIFT px per frame;
    from ``cut_at`` on, a window of an unrelated texture (a scene cut)."""
    tex = _texture(WIDTH + SHIFT * n + 8)
    other = _texture(WIDTH + SHIFT * n + 8, seed=1)
    return [np.ascontiguousarray((other if cut_at is not None and i >= cut_at else tex)[:, SHIFT * i : SHIFT * i + WIDTH])
            for i in range(n)]


def test_gopro_average_is_the_linear_mean_of_the_frames():
    frames = _sliding_clip(40)
    pairs = realblur.gopro_pairs(frames, "synthetic", 5, [(20, 39)], stride=5)
    assert [p.frames for p in pairs] == [(20, 24), (25, 29), (30, 34), (35, 39)]
    for p in pairs:
        a, b = p.frames
        ref = _linear_to_srgb_u8(np.mean([_srgb_to_linear(f) for f in frames[a : b + 1]], axis=0))
        assert np.abs(p.blur.astype(int) - ref).max() <= 1  # float32 LUT vs float64 formula at a rounding edge
        assert np.mean(p.blur != ref) < 0.01
        assert np.array_equal(p.sharp, frames[a + 2])


def _reds_reference(texture_lin: np.ndarray, centre: int) -> np.ndarray:
    """The exposure REDS-style pairs integrate, from the known motion: 2K + 1 = 33 equally spaced times over
    duty 0.8 x 5 intervals around ``centre`` (K = ceil(4 x 8 / 2)); the latent frame at time t is the texture
    read at columns SHIFT t + x, linearly interpolated in linear light."""
    half = realblur.REDS_DUTY * realblur.REDS_STEP / 2
    k = math.ceil(realblur.REDS_DUTY * realblur.REDS_STEP * realblur.REDS_LATENT / 2)
    times = centre + half * np.arange(-k, k + 1) / k
    cols = np.arange(texture_lin.shape[1], dtype=np.float64)
    acc = np.zeros((HEIGHT, WIDTH, 3))
    for t in times:
        x = SHIFT * t + np.arange(WIDTH)
        for c in range(3):
            acc[..., c] += np.stack([np.interp(x, cols, row) for row in texture_lin[..., c]])
    return acc / len(times)


def test_reds_exposure_matches_the_known_motion():
    n = 40
    frames = _sliding_clip(n)
    tex_lin = _srgb_to_linear(_texture(WIDTH + SHIFT * n + 8))
    pairs = realblur.reds_pairs(frames, "synthetic", [(20, 39)], stride=realblur.REDS_STEP)
    assert [p.frames for p in pairs] == [(23, 27), (28, 32), (33, 37)]  # centres 25, 30, 35, non-overlapping
    for p in pairs:
        centre = (p.frames[0] + p.frames[1]) // 2
        assert np.array_equal(p.sharp, frames[centre])
        ref = _linear_to_srgb_u8(_reds_reference(tex_lin, centre))
        # away from the borders (where pixels enter and leave the frame); inside, DIS finds the 2 px shift and
        # the two agree to the 8-bit rounding (measured: 1e-4 codes on average, 1 at most; a reference with 3 px
        # per frame instead is 15-17 codes off)
        inner = (slice(6, -6), slice(12, -12))
        diff = np.abs(p.blur[inner].astype(float) - ref[inner])
        assert diff.mean() < 0.01 and diff.max() <= 1, (diff.mean(), diff.max())
        # and it is a blur: far from the sharp frame
        assert np.abs(p.blur[inner].astype(float) - p.sharp[inner]).mean() > 3 * diff.mean()


def test_splits_are_disjoint_cut_free_and_skip_static_windows():
    frames = _sliding_clip(80, cut_at=66)  # a cut inside the second test block (60-79)
    static = [frames[0]] * 40
    clips = {"moving": frames, "static": static}
    test = realblur.build("test", clips=("moving", "static"), frames_of=clips.__getitem__)
    train = realblur.build("train", clips=("moving", "static"), frames_of=clips.__getitem__)
    assert test and train
    assert not realblur.frames_used(test) & realblur.frames_used(train)
    assert all(p.clip == "moving" for p in test + train)  # the static clip has no blur to learn or score
    for p in test + train:
        a, b = p.frames
        assert a // realblur.BLOCK == b // realblur.BLOCK  # inside one block
        assert not (a < 66 <= b)  # never across the cut
        assert all(realblur.split_of(f) == realblur.split_of(a) for f in range(a, b + 1))
    for kind in realblur.KINDS:  # test windows of one kind never share a frame
        used = [f for p in test if p.kind == kind for f in range(p.frames[0], p.frames[1] + 1)]
        assert len(used) == len(set(used))
    assert {p.kind for p in test} == set(realblur.KINDS)


def _flat(d, prefix=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.update(_flat(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = d
    return out


# outcomes of the draws (measured blur, sample counts), not draws
OUTCOMES = ("blur_px.", "render.samples", "light_px")
# what each ablation may change, and what it must then hold
NAMED = {
    "no-noise": (("camera.shot", "camera.read"), lambda k, v: v == 0.0),
    "no-saturation": (("camera.gain", "scene.highlight_boost"),
                      lambda k, v: v == 0.0 if k.endswith("highlight_boost") else 0.8 <= v <= 1.0),
    "no-linear": (("camera.response.",), lambda k, v: v == {"camera.response.kind": "gamma"}.get(k, 1.0)),
    "no-object-motion": (("scene.objects.",), None),
    "no-rotation-parallax": (("scene.camera.model", "scene.parallax.px"),
                             lambda k, v: v != "rotational" if k.endswith("model") else v == 0.0),
}
OBJECT_MOTION = {"speed_px": 0.0, "rotation_deg": 0.0, "scale": 1.0, "curvature_rad": 0.0}


def _metas(run: Path) -> list[dict]:
    from blursynth.data import ShardDataset

    data = ShardDataset(run)
    return [_flat({k: v for k, v in data[i]["meta"].items()}) for i in range(len(data))]


def test_each_ablation_changes_only_what_it_names(tmp_path):
    budget = dict(G.CPU_BUDGET, pairs=16, size=[64, 48])
    metas = {name: _metas(G.make_data(name, budget, 3, tmp_path)) for name in ["default", *G.ABLATIONS]}
    base = metas["default"]
    assert any(m["scene.camera.model"] == "rotational" for m in base)
    assert any(m.get("camera.shot", 0) > 0 for m in base)
    assert any(k.startswith("scene.objects.0.") for m in base for k in m)
    for name, (prefixes, holds) in NAMED.items():
        changed = 0
        for a, b in zip(base, metas[name]):
            a = {k: v for k, v in a.items() if not k.startswith(OUTCOMES)}
            b = {k: v for k, v in b.items() if not k.startswith(OUTCOMES)}
            assert a.keys() == b.keys(), name
            for key in a:
                if a[key] == b[key]:
                    continue
                assert key.startswith(prefixes), f"{name} changed {key}: {a[key]!r} -> {b[key]!r}"
                if name == "no-object-motion":
                    field = key.rsplit(".", 1)[1]
                    assert field in OBJECT_MOTION and b[key] == OBJECT_MOTION[field], (key, b[key])
                else:
                    assert holds(key, b[key]), (name, key, b[key])
                changed += 1
        assert changed, f"{name} changed nothing"


def test_guard_rules():
    assert G.guard(5.0, 5.5, 0.3, 2.3, 2) == []  # our own threads at the end are not a shared machine
    assert len(G.guard(3.0, 5.0, 0.3, 0.3, 2)) == 1  # 0.6x
    assert len(G.guard(5.0, 5.0, 2.5, 0.3, 2)) == 1  # loaded at the start
    assert len(G.guard(5.0, 5.0, 0.3, 2.5, 2, others=0.9)) == 1  # others used 0.9 cores during the run


def test_other_processes_cpu_is_measured_without_our_own():
    """A real process burning a core beside us shows as about one core of others; our own busy loop does not."""
    start = G.cpu_seconds()
    t = time.time()
    while time.time() - t < 1.0:
        pass
    alone = G.other_cores(start, G.cpu_seconds())
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        time.sleep(0.5)
        start = G.cpu_seconds()
        time.sleep(2.0)
        shared = G.other_cores(start, G.cpu_seconds())
    finally:
        burner.wait()
    assert alone < 0.5
    assert shared > alone + 0.6


def test_guard_fires_on_a_deliberately_slowed_run(tmp_path):
    out = tmp_path / "g.json"
    cmd = [sys.executable, str(BENCH / "generalization.py"), "--arms", "default", "--seeds", "1", "--iters", "30",
           "--cli-iters", "40", "--pairs", "16", "--size", "64x48", "--crop", "32", "--preset", "tiny",
           "--max-test", "2", "--slow-ms", "60", "--work", str(tmp_path / "work"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert not report["guard"]["ok"]
    assert any("blursynth train at" in w for w in report["guard"]["warnings"])
    assert "WARNING" in proc.stdout
    # and the report has the promised shape
    arm = report["arms"]["default"]
    assert len(arm["gain_psnr_db"]) == len(arm["gain_ssim"]) == 1
    assert set(arm["per_target"]) == set(realblur.KINDS)
    assert report["train_it_s"] < 0.8 * report["train_it_s_cli"]
    assert out.with_suffix(".png").is_file()


def test_the_docs_show_the_committed_result():
    """README.md and benchmarks/README.md hold the table of results/generalization.json (--write-docs)."""
    report = json.loads((BENCH / "results" / "generalization.json").read_text())
    for doc in G.DOCS:
        assert G.doc_table(doc.read_text()) == G.markdown(report), f"{doc}: rerun generalization.py --write-docs"


def test_oracle_curve_quick_mode_writes_one_row_per_budget(tmp_path):
    """benchmarks/oracle_curve.py (the curve the CPU budget is chosen from) runs end to end in CI-sized time:
    one row per grid entry, with its budget, gains per target kind and the load around it."""
    out = tmp_path / "curve.json"
    cmd = [sys.executable, str(BENCH / "oracle_curve.py"), "--grid", "tiny:4:4e-3:3,tiny:2:2e-3:2", "--max-test", "1",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(r["preset"], r["batch_size"], r["lr"], r["iters"]) for r in report["rows"]] == \
        [("tiny", 4, 4e-3, 3), ("tiny", 2, 2e-3, 2)]
    for row in report["rows"]:
        assert set(row["per_target"]) == set(realblur.KINDS)
        assert math.isfinite(row["gain_psnr_db"]) and row["train_it_s"] > 0
        assert {"load_1min_before", "load_1min_after"} <= set(row)
    assert report["test_pairs"] == len(realblur.KINDS) and report["machine"]["cpu_count"] >= 1
