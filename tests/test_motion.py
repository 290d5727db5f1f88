"""Motion paths: published trajectory models, the rotational camera, object motion, recentring."""
import math

import numpy as np
import pytest

from blursynth.motion import (SHAKE_MODELS, Motion, bf_trajectory, gp_trajectory, line_trajectory, object_motion,
                              rotational_motion, shake_motion)


def arc(xy):
    return float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))


@pytest.mark.parametrize("seed", range(5))
def test_bf_trajectory_has_constant_speed_and_requested_length(seed):
    n = 2000
    path = bf_trajectory(seed, 37.0, n_steps=n, samples=n)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    np.testing.assert_allclose(steps, 37.0 / (n - 1), rtol=1e-9)
    assert arc(path) == pytest.approx(37.0)
    assert np.array_equal(path, bf_trajectory(seed, 37.0, n_steps=n, samples=n))
    assert not np.array_equal(path, bf_trajectory(seed + 100, 37.0, n_steps=n, samples=n))


def test_bf_trajectories_are_not_straight_lines():
    # the Gaussian and centripetal terms bend the path: chord shorter than arc for most draws
    ratios = [np.linalg.norm(p[-1] - p[0]) / arc(p) for p in (bf_trajectory(s, 30.0) for s in range(40))]
    assert np.median(ratios) < 0.98


def test_gp_trajectory_length_and_determinism():
    for seed in range(5):
        p = gp_trajectory(seed, 25.0)
        assert arc(p) == pytest.approx(25.0)
        assert np.array_equal(p, gp_trajectory(seed, 25.0))


def test_rotational_motion_is_k_r_kinv_with_orthonormal_r():
    w, h, fov = 320, 240, 60.0
    m = rotational_motion(11, (w, h), 12.0, fov, 3.0)
    f = (w / 2) / math.tan(math.radians(fov) / 2)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    R = np.linalg.inv(K) @ m.H @ K
    R /= np.cbrt(np.linalg.det(R))[:, None, None]
    np.testing.assert_allclose(R @ np.transpose(R, (0, 2, 1)), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    # the image centre travels about 12 px; a roll of 3 degrees adds r * angle at the corners
    centre = np.array([[(w - 1) / 2, (h - 1) / 2]])
    corner = np.array([[0.0, 0.0]])
    assert m.path_length_px(centre) == pytest.approx(12.0, rel=0.05)
    assert m.path_length_px(corner) > m.path_length_px(centre)


def test_object_motion_moves_centroid_along_arc_and_rotates_about_it():
    c = (40.0, 30.0)
    m = object_motion(c, speed_px=20.0, heading_rad=0.0, curvature_rad=0.0, rotation_deg=90.0, scale=2.0)
    path = m.trace(np.array([c]))[:, 0]
    np.testing.assert_allclose(path[-1], [60.0, 30.0], atol=1e-9)
    assert arc(path) == pytest.approx(20.0)
    # a point 1 px right of the centroid ends 2 px below the centroid's end (rotated 90 deg, scaled 2x)
    np.testing.assert_allclose(m.trace(np.array([[41.0, 30.0]]))[-1, 0], [60.0, 32.0], atol=1e-9)
    bent = object_motion(c, 20.0, 0.0, math.pi, 0.0, 1.0).trace(np.array([c]))[:, 0]
    assert arc(bent) == pytest.approx(20.0, rel=1e-3)
    # half a circle of length 20: chord = diameter = 40 / pi
    assert np.linalg.norm(bent[-1] - bent[0]) == pytest.approx(40.0 / math.pi, rel=1e-3)


@pytest.mark.parametrize("t_ref", [0.0, 0.5, 1.0, 0.3])
def test_recentered_motion_is_identity_at_reference_time(t_ref):
    m = rotational_motion(2, (100, 80), 9.0, 50.0, 2.0).then(Motion.from_translation(np.array([[0.0, 0], [5, 1]])))
    r = m.recentered(t_ref)
    # exact on the sample grid; between samples, interpolating renormalized projective matrices leaves < 1e-6 px
    np.testing.assert_allclose(r.at(t_ref)[0], np.eye(3), atol=1e-6)
    assert np.abs(r.trace(np.array([[50.0, 40.0]]), np.array([t_ref]))[0, 0] - [50.0, 40.0]).max() < 1e-5
    # relative motion between two times is unchanged
    a, b = m.at([0.1, 0.9])
    ra, rb = r.at([0.1, 0.9])
    rel, expect = rb @ np.linalg.inv(ra), b @ np.linalg.inv(a)
    np.testing.assert_allclose(rel / rel[2, 2], expect / expect[2, 2], atol=1e-6)


def test_motion_validation():
    with pytest.raises(ValueError, match=r"\(T, 3, 3\)"):
        Motion(np.eye(2)[None])
    with pytest.raises(ValueError, match=r"\(T, 2\)"):
        Motion.from_translation(np.zeros((3, 3)))
    assert Motion.from_translation(np.zeros((4, 2))).is_static
    assert not Motion.from_translation(np.array([[0.0, 0.0], [1.0, 0.0]])).is_static


# --- the shake-model table: every entry, as timm tests every registered model ---

SIZE = (160, 90)


def _params(model: str, seed: int = 7, length: float = 12.0) -> dict:
    return {"model": model, "length_px": length, "seed": seed, "fov_deg": 60.0, "roll_deg": 0.5}


@pytest.mark.parametrize("model", sorted(SHAKE_MODELS))
def test_every_shake_model_builds_a_replayable_motion_of_the_drawn_length(model):
    from blursynth.scene import camera_motion

    m = shake_motion(_params(model), SIZE)
    assert isinstance(m, Motion)
    # a pure function of the drawn parameters, and the image path's camera_motion is the same table
    assert np.array_equal(m.H, shake_motion(_params(model), SIZE).H)
    assert np.array_equal(m.H, camera_motion(_params(model), SIZE).H)
    centre = np.array([[(SIZE[0] - 1) / 2.0, (SIZE[1] - 1) / 2.0]])
    length = m.path_length_px(centre)
    if model == "none":
        assert m.is_static and length == 0.0
    else:
        # the path at the image centre is length_px long: exactly where the model scales its sampled path; the
        # B&F walk has its length over 2000 steps, and its 128 resampled points cut corners (never longer); the
        # rotational model reaches it through its pinhole to first order in the small angle
        if model == "bf":
            assert 0.8 * 12.0 <= length <= 12.0
        else:
            assert length == pytest.approx(12.0, rel=0.02 if SHAKE_MODELS[model].uses_view else 1e-9)
        assert not np.array_equal(m.H, shake_motion(_params(model, seed=8), SIZE).H)  # the seed matters


def test_line_model_is_a_straight_constant_velocity_path_in_a_seeded_direction():
    xy = line_trajectory(3, 20.0, samples=65)
    steps = np.diff(xy, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-12)  # constant velocity
    assert np.linalg.norm(xy[-1] - xy[0]) == pytest.approx(20.0, rel=1e-12)  # straight: chord = arc = length
    angle = 2 * math.pi * np.random.default_rng(3).random()
    np.testing.assert_allclose(xy[-1], 20.0 * np.array([math.cos(angle), math.sin(angle)]), rtol=1e-12)
    directions = {round(math.atan2(*line_trajectory(s, 1.0)[-1][::-1]), 6) for s in range(20)}
    assert len(directions) == 20  # the seed draws the direction


def test_the_shake_table_is_what_recipes_and_the_video_cli_accept():
    from blursynth.recipe import RecipeError, load_recipe
    from blursynth.commands.video import video
    from blursynth.video.recipe import load_video_recipe

    shake_option = next(p for p in video.params if p.name == "shake")
    assert list(shake_option.type.choices) == list(SHAKE_MODELS)
    for model in SHAKE_MODELS:
        assert load_recipe("default", {"shake.models": {model: 1.0}}).shake.models == {model: 1.0}
        assert load_video_recipe(None, {"shake.models": {model: 1.0}}).shake.models == {model: 1.0}
    with pytest.raises(RecipeError, match="shake.models.wobble.*known: bf, gp, line, none, rotational"):
        load_recipe("default", {"shake.models": {"wobble": 1.0}})
    with pytest.raises(ValueError, match="unknown camera shake model 'wobble'"):
        shake_motion(_params("wobble"), SIZE)
