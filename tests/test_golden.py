"""Golden outputs: small stored results of the renderer, the camera and scene sampling, so that a change that
alters what blursynth produces is seen. These are regression checks, not correctness checks (those compare
against independent references in test_render.py and friends).

If a change is meant to alter results, regenerate with
    BLURSYNTH_REGEN_GOLDEN=1 python -m pytest -q tests/test_golden.py
and say in the commit why the outputs changed.

Only code that depends on blursynth and numpy is covered: OpenCV's segmentation and inpainting are left out
so an OpenCV upgrade does not look like a change of ours.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from blursynth.camera import CameraParams, Response, apply_camera
from blursynth.motion import Motion, object_motion, rotational_motion
from blursynth.recipe import load_recipe
from blursynth.render import render
from blursynth.scene import Layer, Scene, sample_scene

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("BLURSYNTH_REGEN_GOLDEN") == "1"


def synthetic_scene():
    """A 48x64 scene built from arithmetic only: textured background under a rotating camera, one rotating,
    translating square in front."""
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.stack([0.5 + 0.4 * np.sin(xx / 3.0), 0.5 + 0.4 * np.cos(yy / 4.0), (xx + yy) / (w + h)], axis=-1)
    fg = np.stack([np.full((h, w), 0.9), 0.3 + 0.3 * np.sin(xx * yy / 50.0), np.full((h, w), 0.1)], axis=-1)
    alpha = np.zeros((h, w), np.float32)
    alpha[14:34, 20:44] = 1.0
    cam = rotational_motion(7, (w, h), 5.0, 60.0, 3.0)
    obj = object_motion((32.0, 24.0), 9.0, 0.7, 0.5, 6.0, 1.03).then(cam)
    return Scene([Layer(bg.astype(np.float32), np.ones((h, w), np.float32), cam.recentered(0.5), extend=True),
                  Layer(fg.astype(np.float32), alpha, obj.recentered(0.5))])


def translation_scene():
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.stack([0.5 + 0.4 * np.sin(xx / 3.0), 0.5 + 0.4 * np.cos(yy / 4.0), (xx + yy) / (w + h)], axis=-1)
    alpha = np.zeros((h, w), np.float32)
    alpha[10:30, 15:40] = 1.0
    t = np.linspace(0, 1, 9)[:, None]
    path = np.concatenate([7 * (t - 0.5), 3 * np.sin(4 * t) - 3 * np.sin(2.0)], axis=1)
    return Scene([Layer(bg.astype(np.float32), np.ones((h, w), np.float32), Motion.identity(), extend=True),
                  Layer(np.full((h, w, 3), 0.8, np.float32), alpha, Motion.from_translation(path))])


def check(name: str, value: np.ndarray, atol: float):
    path = GOLDEN / f"{name}.npy"
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        np.save(path, value)
        return
    assert path.exists(), f"missing golden {path}; regenerate (see module docstring)"
    expected = np.load(path)
    assert value.shape == expected.shape and value.dtype == expected.dtype
    diff = np.abs(value.astype(np.float64) - expected.astype(np.float64))
    assert diff.max() <= atol, f"{name} changed: max |diff| {diff.max():.3g} > {atol} (see module docstring)"


def test_golden_exact_render():
    exp = render(synthetic_scene())
    check("exact_blur", exp.blur.astype(np.float16), 2e-3)
    check("exact_blur_map", exp.blur_map.astype(np.float16), 2e-2)


def test_golden_layered_render():
    check("layered_blur", render(translation_scene(), method="layered").blur.astype(np.float16), 2e-3)


def test_golden_camera():
    rng = np.random.default_rng(11)
    lin = (rng.random((24, 32, 3)) * 1.4).astype(np.float32)
    params = CameraParams(gain=1.1, response=Response("gamma", 2.1), shot=2e-3, read=3e-3)
    blur, sharp = apply_camera(lin, lin, params, np.random.default_rng(5))
    check("camera_blur", blur, 0)
    check("camera_sharp", sharp, 0)


def test_golden_scene_sampling():
    masks = np.zeros((4, 48, 64), bool)
    masks[0, 5:20, 5:25] = True
    masks[1, 25:45, 30:60] = True
    masks[2, 0:8, 50:64] = True
    masks[3, 30:40, 2:12] = True
    # the recipe's pixel ranges as stated (reference_width null): the golden predates reference_width
    recipe = load_recipe("default", ["size=[64, 48]", "scene.objects.count=[2, 3]", "reference_width=null"])
    params = sample_scene(masks, ["a", "b", "c", "d"], recipe.shake, recipe.scene, recipe.px_factor,
                          np.random.default_rng(3))
    text = json.dumps(params, sort_keys=True)
    path = GOLDEN / "scene_params.json"
    if REGEN:
        path.write_text(text)
        return
    golden = json.loads(path.read_text())
    assert json.loads(text) == golden, "scene sampling changed (see module docstring)"

    # the default reference_width (1280): the same draws, with the three pixel draws x 64 / 1280 exactly
    at_reference = load_recipe("default", ["size=[64, 48]", "scene.objects.count=[2, 3]"])
    scaled = sample_scene(masks, ["a", "b", "c", "d"], at_reference.shake, at_reference.scene,
                          at_reference.px_factor, np.random.default_rng(3))
    f = 64 / 1280
    pixel = {("camera", "length_px"), ("parallax", "px"), ("objects", "speed_px")}
    def same(got, want):
        return got == (pytest.approx(want, rel=1e-12, abs=0) if isinstance(want, float) else want)

    for part in ("camera", "parallax"):
        for key, value in golden[part].items():
            assert same(scaled[part][key], value * f if (part, key) in pixel else value), (part, key)
    assert len(scaled["objects"]) == len(golden["objects"]) >= 2
    for got, old in zip(scaled["objects"], golden["objects"]):
        assert got.keys() == old.keys()
        for key, value in old.items():
            assert same(got[key], value * f if ("objects", key) in pixel else value), key
    assert scaled["highlight_boost"] == golden["highlight_boost"]
