"""Training, metrics and evaluation: metrics against skimage, ECC on a known shift, a real tiny training run
(loss goes down, resume gives the same weights as an uninterrupted run; one set of DataLoader workers for a run of
several epochs gives the batches of --workers 0), evaluate's CSV and saved PNGs, the malloc thresholds."""
import csv
import dataclasses
import json
import os
import platform
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from blursynth.commands import main
from blursynth.data import ShardDataset
from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.train.evaluate import folder_pairs
from blursynth.train.loop import EpochBatches, RunBatches, TrainConfig, amp_dtype, load_model, restore, to_uint8, train
from blursynth.train.memory import KEEP_BYTES, malloc_settings
from blursynth.train.metrics import align_ecc, psnr, ssim
from blursynth.train.model import PRESETS, NAFNet, build_model, count_parameters


def _photo_pair(shape=(72, 96), seed=0):
    img = cv2.resize(skdata.astronaut(), shape[::-1], interpolation=cv2.INTER_AREA)
    noisy = np.clip(img + np.random.default_rng(seed).normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return img, noisy


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("gaussian", [True, False])
def test_ssim_and_psnr_match_skimage(gray, gaussian):
    a, b = _photo_pair()
    if gray:
        a, b = a[..., 1], b[..., 1]
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False} if gaussian else {}
    ref = structural_similarity(a, b, data_range=255, channel_axis=None if gray else -1, **kw)
    assert ssim(a, b, data_range=255, gaussian=gaussian) == pytest.approx(ref, abs=1e-9)
    af, bf = a / 255.0, b / 255.0
    ref = structural_similarity(af, bf, data_range=1.0, channel_axis=None if gray else -1, **kw)
    assert ssim(af, bf, gaussian=gaussian) == pytest.approx(ref, abs=1e-9)
    assert psnr(a, b, 255) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
    assert psnr(a, a, 255) == float("inf")


def test_masked_psnr_counts_only_the_mask():
    a, b = _photo_pair()
    a, b = a / 255.0, b / 255.0
    mask = np.zeros(a.shape[:2])
    mask[10:40, 20:60] = 1
    direct = 10 * np.log10(1.0 / np.mean((a[10:40, 20:60] - b[10:40, 20:60]) ** 2))
    assert psnr(a, b, mask=mask) == pytest.approx(direct, abs=1e-9)


def test_ecc_alignment_recovers_a_known_shift():
    sharp = skdata.astronaut()[128:384, 128:384].astype(np.float32) / 255
    dx, dy = 2.5, -1.5
    moved = cv2.warpAffine(sharp, np.float32([[1, 0, dx], [0, 1, dy]]), (256, 256), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    al = align_ecc(np.clip(moved, 0, 1), sharp)
    assert al.converged
    # the inverse map sends reference pixel (x, y) to (x + dx, y + dy) in the shifted image
    np.testing.assert_allclose(al.warp[:2, 2], [dx, dy], atol=0.05)
    np.testing.assert_allclose(al.warp[:2, :2], np.eye(2), atol=2e-3)
    before = psnr(np.clip(moved, 0, 1), sharp)
    after = psnr(al.image, al.reference, mask=al.mask)
    assert after > before + 10
    # reference pixels whose source lies outside the shifted image (right columns, top row) are masked out
    assert al.mask[:, -1].sum() == 0 and al.mask[0].sum() == 0 and al.mask[2:-3, :-3].min() == 1


def test_model_presets_shapes_and_identity_start():
    assert 1.0e6 < count_parameters(build_model("small")) < 1.2e6
    model = build_model("tiny")
    x = torch.rand(2, 3, 37, 50)
    y = model(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)  # a fresh network is the identity (its last conv starts at zero)
    assert NAFNet(PRESETS["tiny"]).config == PRESETS["tiny"]
    with pytest.raises(ValueError, match="preset"):
        build_model("huge")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs") / "run"
    # the 720p blur lengths at 64 px (reference_width None): at 1/20 of them there would be little to learn
    recipe = dataclasses.replace(load_recipe("default"), size=(64, 64), reference_width=None).validate()
    run_generate(recipe, "builtin", 8, out, seed=1, shard_size=5, progress=False)
    return out


def _cfg(run_dir, out, **kw):
    base = dict(data=str(run_dir), val=str(run_dir), out=str(out), iters=16, preset="tiny", batch_size=4, crop=48,
                loss="l1", lr=2e-3, workers=0, seed=3, val_every=8, ckpt_every=100, log_every=4, val_max=8)
    base.update(kw)
    return TrainConfig(**base)


def test_training_reduces_loss_and_resume_gives_the_same_weights(run_dir, tmp_path):
    full = train(_cfg(run_dir, tmp_path / "full"), progress=False)
    assert full.step == 16 and full.resumed_from == 0
    # the network starts as the identity, so the input's PSNR is where it started
    last = full.val[-1]
    assert last["psnr"] > last["psnr_input"] + 0.05
    rows = list(csv.DictReader(open(tmp_path / "full" / "train.csv")))
    assert [int(r["step"]) for r in rows] == [4, 8, 12, 16]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert (tmp_path / "full" / "val.png").is_file() and cv2.imread(str(tmp_path / "full" / "val.png")) is not None

    part = train(_cfg(run_dir, tmp_path / "part"), progress=False, stop_at=6)
    assert part.step == 6
    again = train(_cfg(run_dir, tmp_path / "part", workers=2), progress=False)  # auto-resume from last.pt
    assert again.resumed_from == 6 and again.step == 16
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 16
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    resumed_rows = list(csv.DictReader(open(tmp_path / "part" / "val.csv")))
    assert [int(r["step"]) for r in resumed_rows] == [8, 16]
    assert float(resumed_rows[-1]["psnr"]) == pytest.approx(float(last["psnr"]), abs=1e-4)


class _Reads:
    """The training crops of ``ShardDataset`` (as ``train`` makes them by default), each read appended to ``log``
    as "pid epoch position" by the process that reads it; with ``drop_epoch``, that epoch's items read as None
    (dropped as corrupt)."""

    def __init__(self, run_dir, cfg: TrainConfig, log, drop_epoch: int | None = None):
        self.dataset = ShardDataset(run_dir, crop=cfg.crop, augment=True, seed=cfg.seed)
        self.log, self.drop_epoch = log, drop_epoch

    def __len__(self):
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __getitem__(self, i):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {self.dataset.epoch} {i}\n")
        return None if self.dataset.epoch == self.drop_epoch else self.dataset[i]


def _read_log(path) -> tuple[set[int], list[tuple[int, int]]]:
    rows = [tuple(map(int, line.split())) for line in open(path)]
    return {r[0] for r in rows}, sorted((r[1], r[2]) for r in rows)


def _weights(out):
    return torch.load(out / "last.pt", weights_only=False)["model"]


def test_one_set_of_workers_serves_every_epoch_with_the_batches_of_workers_0(run_dir, tmp_path):
    # 8 pairs in batches of 2: an epoch is 4 steps, so 14 steps span 4 epochs (the last one half); the resumed
    # run stops mid-epoch, after batch 1 of epoch 1 (step 6), and continues with a fresh set of workers
    runs = {"w0": (0, [None]), "w2": (2, [None]), "resumed": (2, [6, None])}
    reads = {}
    for name, (workers, stops) in runs.items():
        cfg = _cfg(run_dir, tmp_path / name, iters=14, batch_size=2, crop=32, val=None, workers=workers)
        for call, stop in enumerate(stops):
            log = tmp_path / f"{name}.{call}.log"
            result = train(cfg, _Reads(run_dir, cfg, log), progress=False, stop_at=stop)
            assert result.step == (stop or 14)
            reads[name, call] = _read_log(log)
    w0 = _weights(tmp_path / "w0")
    for name in ("w2", "resumed"):
        w = _weights(tmp_path / name)
        assert all(torch.equal(w0[k], w[k]) for k in w0), name
    # --workers 0 reads in the main process, step by step: epoch e's permutation, batch by batch
    pids, items = reads["w0", 0]
    assert pids == {os.getpid()}
    steps = [(s // 4, list(EpochBatches(8, 2, 3, s // 4))[s % 4]) for s in range(14)]
    assert items == sorted((e, i) for e, batch in steps for i in batch)
    # 2 workers read the same items (in them, the dataset is at each item's epoch), started once for the whole run
    pids, w2_items = reads["w2", 0]
    assert len(pids) == 2 and os.getpid() not in pids
    assert w2_items == items
    first, second = reads["resumed", 0], reads["resumed", 1]
    assert len(first[0]) == 2 and len(second[0]) == 2
    assert sorted(first[1] + second[1]) == items and {e for e, _ in second[1]} == {1, 2, 3}


def test_run_batches_span_epochs_and_any_start_continues_the_same_sequence():
    n, b, seed = 11, 3, 7  # 3 full batches an epoch; position 9 or 10 never makes one
    whole = list(RunBatches(n, b, seed, 0, 10))
    assert len(whole) == 10 and len(RunBatches(n, b, seed, 4, 10)) == 6
    expected = [[(s // 3, i) for i in list(EpochBatches(n, b, seed, s // 3))[s % 3]] for s in range(10)]
    assert whole == expected
    order = [[i for batch in whole[e * 3:(e + 1) * 3] for _, i in batch] for e in range(3)]
    assert order[0] != order[1] != order[2]  # a new permutation every epoch
    for start in (1, 3, 5, 9):
        assert list(RunBatches(n, b, seed, start, 10)) == whole[start:]
    assert list(RunBatches(n, b, seed, 10, 10)) == []
    with pytest.raises(ValueError, match="fewer than one batch"):
        RunBatches(2, 3, seed, 0, 1)


def test_dropped_epoch_gives_empty_steps_and_the_same_weights_with_workers(run_dir, tmp_path):
    """Every item of epoch 1 reads as dropped (None): its 4 steps pass without an update, counted, and 2 workers
    (which learn each item's epoch only through it) give the run of --workers 0."""
    results = {}
    for workers in (0, 2):
        cfg = _cfg(run_dir, tmp_path / f"w{workers}", iters=10, batch_size=2, crop=32, val=None, workers=workers)
        results[workers] = train(cfg, _Reads(run_dir, cfg, tmp_path / f"w{workers}.log", drop_epoch=1),
                                 progress=False)
        assert results[workers].empty_batches == 4 and results[workers].skipped_corrupt == 8
    w0, w2 = _weights(tmp_path / "w0"), _weights(tmp_path / "w2")
    assert all(torch.equal(w0[k], w2[k]) for k in w0)


def test_amp_modes_select_the_autocast_dtype():
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    assert amp_dtype("bf16", cpu) is torch.bfloat16 and amp_dtype("fp16", cpu) is torch.float16
    assert amp_dtype("off", torch.device("cuda")) is None
    assert TrainConfig(amp=True).amp == "auto" and TrainConfig(amp=False).amp == "off"  # older configs
    with pytest.raises(ValueError, match="amp must be one of"):
        TrainConfig(amp="fp8")


def test_fp16_amp_with_loss_scaling_trains_and_resumes_exactly(run_dir, tmp_path):
    """The AMP path of a CUDA run (float16 autocast, dynamic loss scale, scaler state in the checkpoint), run on
    the CPU: it learns, and a run stopped and resumed ends with the same weights and loss scale as one that was
    not (the scale decides which steps are skipped, so a scaler not restored would diverge)."""
    short = dict(iters=8, val_every=8, val_max=4)
    full = train(_cfg(run_dir, tmp_path / "full", amp="fp16", **short), progress=False)
    assert full.val[-1]["psnr"] > full.val[-1]["psnr_input"] + 0.02  # starts as the identity
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    assert a["train_config"]["amp"] == "fp16" and a["scaler"]["scale"] > 0  # a disabled scaler saves {}
    train(_cfg(run_dir, tmp_path / "part", amp="fp16", **short), progress=False, stop_at=4)
    part = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    part["scaler"]["scale"] = 3.0  # a wrong scale in the checkpoint must show up in the resumed run
    torch.save(part, tmp_path / "part_bad.pt")
    train(_cfg(run_dir, tmp_path / "part", amp="fp16", **short), progress=False)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    assert b["scaler"] == a["scaler"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    bad = train(_cfg(run_dir, tmp_path / "bad", amp="fp16", **short), progress=False, resume=tmp_path / "part_bad.pt")
    c = torch.load(tmp_path / "bad" / "last.pt", weights_only=False)
    assert bad.resumed_from == 4 and c["scaler"]["scale"] != a["scaler"]["scale"]
    # a full-precision run of the same config differs: autocast was really on
    fp32 = torch.load(train(_cfg(run_dir, tmp_path / "fp32", amp="off", **short), progress=False).out / "last.pt",
                      weights_only=False)
    assert fp32["scaler"] == {} and any(not torch.equal(a["model"][k], fp32["model"][k]) for k in a["model"])


def test_init_fine_tunes_from_weights_with_a_fresh_schedule(run_dir, tmp_path):
    base = train(_cfg(run_dir, tmp_path / "base", iters=4, val=None), progress=False)
    weights = torch.load(tmp_path / "base" / "last.pt", weights_only=False)["model"]
    # a vanishing learning rate: the weights come through (to 1e-20), and the step count restarts at 0
    tuned = train(_cfg(run_dir, tmp_path / "tuned", iters=3, val=None, lr=1e-30, min_lr=0.0, weight_decay=0.0),
                  progress=False, init=tmp_path / "base" / "last.pt")
    assert base.step == 4 and tuned.resumed_from == 0 and tuned.step == 3
    state = torch.load(tmp_path / "tuned" / "last.pt", weights_only=False)
    assert state["step"] == 3
    assert all(torch.allclose(state["model"][k], weights[k], rtol=0, atol=1e-20) for k in weights)
    assert any(not torch.equal(weights[k], v) for k, v in build_model("tiny").state_dict().items())
    with pytest.raises(ValueError, match="not both"):
        train(_cfg(run_dir, tmp_path / "x", iters=1), progress=False, init=tmp_path / "base" / "last.pt",
              resume=tmp_path / "base" / "last.pt")
    with pytest.raises(ValueError, match="model of shape"):
        train(_cfg(run_dir, tmp_path / "y", iters=1, preset="small", val=None), progress=False,
              init=tmp_path / "base" / "last.pt")


def test_train_cli_and_evaluate_save_by_index(run_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--data", str(run_dir), "--out", str(tmp_path / "run"), "--iters", "3",
                               "--preset", "tiny", "--batch-size", "4", "--crop", "32", "--workers", "0",
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "step 3" in res.output
    save = tmp_path / "restored"
    res = runner.invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", str(run_dir),
                               "--save", str(save), "--align", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "mean gain" in res.output
    ds = ShardDataset(run_dir)
    rows = list(csv.DictReader(open(save / "metrics.csv")))
    assert len(rows) == len(ds) + 1 and rows[-1]["name"] == "mean"
    assert sorted(p.name for p in save.glob("*.png")) == [f"{i:06d}.png" for i in range(len(ds))]
    model, _ = load_model(tmp_path / "run")
    for i in range(len(ds)):
        s = ds[i]
        saved = cv2.cvtColor(cv2.imread(str(save / f"{i:06d}.png")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(saved, to_uint8(restore(model, s["blur"])))
        sharp = to_uint8(s["sharp"]).astype(np.float64) / 255
        blur = to_uint8(s["blur"]).astype(np.float64) / 255
        direct = 10 * np.log10(1.0 / np.mean((saved / 255.0 - sharp) ** 2))
        assert rows[i]["name"] == str(s["index"])
        assert float(rows[i]["psnr"]) == pytest.approx(direct, abs=1e-5)
        assert float(rows[i]["psnr_input"]) == pytest.approx(10 * np.log10(1 / np.mean((blur - sharp) ** 2)), abs=1e-5)
        assert float(rows[i]["psnr_aligned"]) > 0


def test_folder_pairs_gopro_and_realblur_layouts(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    for seq in ("GOPR0001", "GOPR0002"):
        for kind in ("blur", "blur_gamma", "sharp"):
            (tmp_path / "gopro" / seq / kind).mkdir(parents=True)
            for n in ("000001", "000002"):
                cv2.imwrite(str(tmp_path / "gopro" / seq / kind / f"{n}.png"), img)
    pairs = folder_pairs(tmp_path / "gopro", tmp_path / "gopro")
    assert [p[0] for p in pairs] == [f"GOPR000{s}/blur/00000{n}.png" for s in (1, 2) for n in (1, 2)]
    assert all(p[2].parent.name == "sharp" and p[1].name == p[2].name for p in pairs)
    for kind, prefix in (("blur", "blur"), ("gt", "gt")):
        (tmp_path / "realblur" / "scene001" / kind).mkdir(parents=True)
        for n in (1, 2):
            cv2.imwrite(str(tmp_path / "realblur" / "scene001" / kind / f"{prefix}_{n}.png"), img)
    pairs = folder_pairs(tmp_path / "realblur", tmp_path / "realblur")
    assert [(p[1].name, p[2].name) for p in pairs] == [("blur_1.png", "gt_1.png"), ("blur_2.png", "gt_2.png")]
    (tmp_path / "realblur" / "scene001" / "blur" / "blur_3.png").write_bytes(b"")
    with pytest.raises(ValueError, match="blur_3.png"):
        folder_pairs(tmp_path / "realblur", tmp_path / "realblur")


def test_psnr_losses_match_skimage_per_image_and_per_batch():
    from blursynth.train.loop import LOSSES

    rng = np.random.default_rng(0)
    target = rng.random((3, 3, 16, 16)).astype(np.float32)
    # one nearly exact image and two poor ones: the per-image mean of dB and the batch's dB differ
    pred = np.clip(target + rng.normal(0, [[[[0.003]]], [[[0.1]]], [[[0.2]]]], target.shape), 0, 1).astype(np.float32)
    per_image = -np.mean([peak_signal_noise_ratio(t, p, data_range=1.0) for t, p in zip(target, pred)])
    batch = -peak_signal_noise_ratio(target, pred, data_range=1.0)
    got = {k: float(LOSSES[k](torch.from_numpy(pred), torch.from_numpy(target))) for k in ("psnr", "psnr-batch")}
    assert got["psnr"] == pytest.approx(per_image, abs=5e-3)  # both add 1e-8 to the MSE inside the log
    assert got["psnr-batch"] == pytest.approx(batch, abs=1e-3)
    assert abs(per_image - batch) > 5


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc on Linux only")
def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    """In a fresh process: a 100 MB malloc is a mapping of its own before, and a block of the heap after (which
    keeps it once freed); the thresholds returned are those set."""
    code = textwrap.dedent("""
        import ctypes, json
        from blursynth.train.memory import keep_freed_memory
        libc = ctypes.CDLL(None)
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]

        def heap():
            for line in open("/proc/self/maps"):
                if line.rstrip().endswith("[heap]"):
                    return tuple(int(x, 16) for x in line.split()[0].split("-"))
            return 0, 0

        def malloc_free(n):
            p = libc.malloc(n)
            lo, hi = heap()
            libc.free(p)
            return lo <= p < hi

        n = 100 << 20
        before = malloc_free(n)
        done = keep_freed_memory()
        after = malloc_free(n)
        lo, hi = heap()
        print(json.dumps({"before": before, "after": after, "done": done, "heap": hi - lo}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["done"] == {"mmap_threshold": KEEP_BYTES, "trim_threshold": KEEP_BYTES}
    assert not got["before"] and got["after"] and got["heap"] >= 100 << 20


def test_malloc_settings_only_on_glibc_and_not_over_the_users():
    both = {"mmap_threshold": KEEP_BYTES, "trim_threshold": KEEP_BYTES}
    assert malloc_settings("glibc 2.36", {}) == both
    assert malloc_settings(None, {}) == {} and malloc_settings("musl", {}) == {}
    assert malloc_settings("glibc 2.36", {"MALLOC_MMAP_THRESHOLD_": "65536"}) == {"trim_threshold": KEEP_BYTES}
    assert malloc_settings("glibc 2.36", {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) == \
        {"mmap_threshold": KEEP_BYTES}
