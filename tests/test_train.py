"""Training, metrics and evaluation: metrics against skimage, ECC on a known shift, a real tiny training run
(loss goes down, resume gives the same weights as an uninterrupted run), evaluate's CSV and saved PNGs."""
import csv
import dataclasses

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from blursynth.cli import main
from blursynth.data import ShardDataset
from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.train.evaluate import folder_pairs
from blursynth.train.loop import TrainConfig, amp_dtype, load_model, restore, to_uint8, train
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
    recipe = dataclasses.replace(load_recipe("default"), size=(64, 64)).validate()
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
