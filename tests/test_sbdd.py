"""The sbdd recipes against a direct implementation of SBDD's published formula."""
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage
from skimage import data
import cv2

from blursynth.commands import main
from blursynth.data import ShardDataset
from blursynth.motion import Motion, bf_trajectory, exposure_times, rasterize_psf
from blursynth.recipe import RecipeError, load_recipe
from blursynth.render import render
from blursynth.render.sbdd import integrate_sbdd
from blursynth.scene import Layer, Scene
from blursynth.store.manifest import Manifest


def small_scene():
    h, w = 40, 56
    S = (cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255) ** 2.2
    m1 = np.zeros((h, w), np.float32)
    m1[5:20, 8:30] = 1.0
    m2 = np.zeros((h, w), np.float32)
    m2[22:36, 30:50] = 1.0
    paths = [bf_trajectory(s, L) for s, L in ((1, 9.0), (2, 14.0), (3, 6.0))]
    motions = [Motion.from_translation(p).recentered(0.5) for p in paths]
    layers = [Layer(S, np.ones((h, w), np.float32), motions[0], extend=True),
              Layer(S, m1, motions[1]), Layer(S, m2, motions[2])]
    return Scene(layers), S, [np.clip(1 - m1 - m2, 0, 1), m1, m2], motions


def test_sbdd_blend_matches_the_published_formula():
    scene, S, masks, motions = small_scene()
    exp = render(scene, method="sbdd", kernel_size=33)
    times = exposure_times(exp.samples)
    # the formula, written directly with scipy's true convolution (no flipping needed)
    num = np.zeros(S.shape)
    den = np.zeros(S.shape[:2])
    for M, motion in zip(masks, motions):
        k = rasterize_psf(motion.at(times)[:, :2, 2], 16)
        Mk = ndimage.convolve(M.astype(np.float64), k, mode="constant", cval=0.0)
        Sk = np.stack([ndimage.convolve(S[..., c].astype(np.float64), k, mode="nearest") for c in range(3)], -1)
        num += Mk[..., None] * Sk
        den += Mk
    ref = num / (den[..., None] + 1e-6)
    np.testing.assert_allclose(exp.blur, ref, atol=2e-5)
    # the blend is not the exact exposure integral: occlusion boundaries differ
    assert np.abs(render(scene).blur - exp.blur).max() > 1e-3


def test_sbdd_with_zero_motion_is_the_photo():
    scene, S, _, _ = small_scene()
    still = Scene([Layer(l.rgb, l.alpha, Motion.identity(), extend=l.extend) for l in scene.layers])
    # straight through the integrator (render() short-cuts static scenes): delta kernels, weights summing to 1
    blur = integrate_sbdd(still, exposure_times(1), 33)
    np.testing.assert_allclose(blur, S, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name,gamma", [("sbdd", 1.0), ("sbdd-gamma", 2.2)])
def test_sbdd_recipes_generate(tmp_path, name, gamma):
    out = tmp_path / name
    r = CliRunner().invoke(main, ["generate", "--num", "3", "--out", str(out), "--recipe", name, "--size", "96x64",
                                  "--set", "shake.length_px=[4, 12]", "--set", "scene.objects.speed_px=[4, 12]",
                                  "--set", "render.kernel_size=17", "--workers", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    m = Manifest.load(out)
    assert m.recipe["render"]["method"] == "sbdd" and m.recipe["scene"]["inpaint"] is False
    for i in range(3):
        meta = ShardDataset(out)[i]["meta"]
        cam = meta["camera"]
        assert cam["response"] == {"kind": "gamma", "gamma": gamma}
        assert 0.5 <= cam["gain"] <= 1.5 and cam["shot"] == 0 and cam["read"] == 0 and cam["jpeg_quality"] is None
        assert all("seed" in o for o in meta["scene"]["objects"])


def test_sbdd_recipe_validation_names_the_field():
    with pytest.raises(RecipeError, match="shake.length_px.*33x33"):
        load_recipe("sbdd", ["shake.length_px=[4, 40]"])
    with pytest.raises(RecipeError, match="render.kernel_size"):
        load_recipe("sbdd", ["render.kernel_size=32"])
    with pytest.raises(RecipeError, match="scene.objects.model"):
        load_recipe("sbdd", ["scene.objects.model=affine"])
    assert load_recipe("sbdd", ["render.kernel_size=65", "shake.length_px=[4, 62]"]).render.kernel_size == 65
