"""The render-method and object-model tables (`render.RENDER_METHODS`, `motion.OBJECT_MODELS`): every entry
against an exact case, and the recipe reads the tables' keys and flags. A new entry is tested here without a
new test."""
import numpy as np
import pytest

from blursynth.camera import Response
from blursynth.motion import OBJECT_MODELS, Motion, shake_motion
from blursynth.recipe import RecipeError, load_recipe
from blursynth.render import RENDER_METHODS, render
from blursynth.scene import Layer, Scene, compose

H, W = 48, 96


def _dot_scene(length: float) -> Scene:
    """A bright 2x2 square on black, opaque background translating horizontally by `length` px at constant
    velocity, centred on mid-exposure."""
    rgb = np.zeros((H, W, 3), np.float32)
    rgb[23:25, 47:49] = 1.0
    xy = np.stack([np.linspace(-length / 2, length / 2, 65), np.zeros(65)], axis=1)
    return Scene([Layer(rgb, np.ones((H, W), np.float32), Motion.from_translation(xy), extend=True)])


@pytest.mark.parametrize("name", list(RENDER_METHODS))
def test_every_render_method_smears_a_dot_into_its_path_and_keeps_its_energy(name):
    # exact for any integrator of the exposure: the mean over the exposure of a translating square is a box of
    # the square's width plus the path length, with the square's total energy; the sharp frame is the square
    length = 20.0
    exp = render(_dot_scene(length), method=name)
    assert exp.method == name and exp.samples >= length
    np.testing.assert_allclose(exp.sharp[23:25, 47:49], 1.0)
    assert exp.blur.sum() == pytest.approx(exp.sharp.sum(), rel=1e-3)
    profile = exp.blur[23:25, :, 0].sum(axis=0) / 2.0
    lit = np.flatnonzero(profile > 1e-4)
    # the box spans the path plus the square's width (+ 1 px of bilinear / rasterization spread at either end)
    assert length + 2 <= lit[-1] - lit[0] + 1 <= length + 4
    assert (lit[0] + lit[-1]) / 2 == pytest.approx(47.5, abs=0.6)
    # flat in the middle: a column is covered 2 px / length of the exposure (the samples' ripple is a few %)
    assert profile[40:56] == pytest.approx(np.full(16, 2.0 / length), rel=0.06)
    # nothing moves vertically (filter2D leaves round-off of 1e-18 there)
    assert np.abs(exp.blur[:22]).max() < 1e-6 and np.abs(exp.blur[26:]).max() < 1e-6


def test_render_refuses_an_unknown_method_naming_the_table():
    with pytest.raises(ValueError, match="unknown render method 'magic' \\(use one of exact, layered, sbdd\\)"):
        render(_dot_scene(4.0), method="magic")


@pytest.mark.parametrize("name", list(RENDER_METHODS))
def test_the_recipe_reads_each_render_methods_flag_and_rules(name):
    method = RENDER_METHODS[name]
    # a recipe the method accepts: translation-only motion where it needs it, and its own rules met
    settings = [f"render.method={name}", "shake.models={bf: 1}", "scene.objects.rotation_deg=[0, 0]",
                "scene.objects.scale=[1, 1]", "shake.parallax_px=[0, 0]", "shake.length_px=[0, 20]",
                "scene.objects.speed_px=[0, 20]", "scene.objects.model=kernel"]
    assert load_recipe("default", settings).render.method == name
    rotating = settings + ["shake.models={rotational: 1}"]
    if method.translation_only:
        with pytest.raises(RecipeError, match=f"shake.models.rotational.*render.method={name}"):
            load_recipe("default", rotating)
    else:
        assert load_recipe("default", rotating).shake.models == {"rotational": 1}


def test_a_method_check_is_called_and_unknown_methods_are_refused():
    with pytest.raises(RecipeError, match="render.method: must be one of exact, layered, sbdd, got 'magic'"):
        load_recipe("default", ["render.method=magic"])
    assert RENDER_METHODS["sbdd"].check is not None
    with pytest.raises(RecipeError, match="render.kernel_size: must be odd"):
        load_recipe("sbdd", ["render.kernel_size=4"])


def _object_recipe(model: str, shake: str = "line"):
    return load_recipe("default", ["size=[96, 64]", "scene.objects.count=[1, 1]", "scene.objects.speed_px=[12, 12]",
                                   "scene.objects.max_area=0.5", f"shake.models={{{shake}: 1}}",
                                   "shake.length_px=[8, 8]", "shake.parallax_px=[0, 0]", "scene.highlight_boost=[0, 0]",
                                   "reference_width=null", f"scene.objects.model={model}"])


def _photo_and_mask():
    img = np.zeros((64, 96, 3), np.uint8)
    img[..., 1] = 180
    img[20:44, 30:60] = (220, 20, 20)
    mask = np.zeros((1, 64, 96), bool)
    mask[0, 20:44, 30:60] = True
    return img, mask


@pytest.mark.parametrize("name", list(OBJECT_MODELS))
def test_every_object_model_builds_the_layer_motion_its_entry_says(name):
    model = OBJECT_MODELS[name]
    img, mask = _photo_and_mask()
    recipe = _object_recipe(name)
    scene, params = compose(img, mask, ["thing"], recipe, np.random.default_rng(0), Response("srgb"))
    o = params["objects"][0]
    # the model's own parameters are drawn and stored beside the shared ones
    extra = set(model.draw(np.random.default_rng(0))) if model.draw is not None else set()
    assert extra <= set(o)
    own = model.motion(o)
    camera = shake_motion(params["camera"], (96, 64))
    assert not camera.is_static
    t_ref = recipe.render.reference_time
    expected = (own.then(camera) if model.with_camera else own).recentered(t_ref)
    np.testing.assert_allclose(scene.layers[1].motion.H, expected.H, atol=1e-9)
    # the drawn path is speed_px long at the centroid: the model turns the shared speed into its motion
    length = own.path_length_px(np.array([o["center"]]))
    assert (0.8 * 12.0 <= length <= 12.0 + 1e-6) if name == "kernel" else length == pytest.approx(12.0, rel=1e-3)
    # the same parameters give the same scene (a replay from the meta)
    again, _ = compose(img, mask, ["thing"], recipe, np.random.default_rng(0), Response("srgb"))
    np.testing.assert_array_equal(again.layers[1].motion.H, scene.layers[1].motion.H)


@pytest.mark.parametrize("name", list(OBJECT_MODELS))
def test_an_object_models_translation_flag_is_what_its_motion_is(name):
    model = OBJECT_MODELS[name]
    params = {"center": [40.0, 30.0], "speed_px": 10.0, "heading_rad": 0.3, "curvature_rad": 0.5,
              "rotation_deg": 6.0, "scale": 1.04, "seed": 5}
    if model.translation_only:
        assert model.motion(params).is_translation
    else:
        # it rotates or scales with such ranges, so a translation-only render method must fix them
        assert not model.motion(params).is_translation
        settings = ["render.method=layered", "shake.models={bf: 1}", f"scene.objects.model={name}"]
        with pytest.raises(RecipeError, match="scene.objects.rotation_deg"):
            load_recipe("default", settings)
    assert load_recipe("default", [f"scene.objects.model={name}"]).scene.objects.model == name


def test_an_unknown_object_model_is_refused_naming_the_table():
    with pytest.raises(RecipeError, match="scene.objects.model: must be one of affine, kernel, got 'bird'"):
        load_recipe("default", ["scene.objects.model=bird"])
