"""The event-noise table (events/noise.EFFECTS) and its presets (recipe.EVENT_NOISE_PRESETS): every effect alone,
every preset as a recipe value. The effects' numerics are checked against their rates in tests/test_events.py."""
import dataclasses

import numpy as np
import pytest

from blursynth.events import NoiseModel, simulate
from blursynth.events.noise import EFFECTS
from blursynth.recipe import EVENT_NOISE_PRESETS, EventNoiseRecipe, RecipeError, load_recipe

# One setting per effect that turns it on, strong enough to show on a short clip: a new entry of EFFECTS needs one
ON = {
    "threshold_mismatch": {"threshold_sigma": 0.05},
    "low_pass": {"cutoff_hz": 40.0},
    "leak": {"leak_rate_hz": 40.0, "leak_spread_decades": 0.3},
    "shot": {"shot_rate_hz": 50.0, "shot_intensity_factor": 2.0},
    "hot_pixels": {"hot_pixel_fraction": 0.1, "hot_pixel_rate_hz": 300.0},
}


def clip(n=16, h=12, w=20):
    """float32 (n, h, w) frames of a textured pattern moving right and brightening, times in s (n,)."""
    base = np.random.default_rng(5).random((h, w)).astype(np.float32)
    frames = np.stack([np.clip(np.roll(base, k, axis=1) * (0.5 + 0.03 * k), 0, 1) for k in range(n)])
    return frames.astype(np.float32), np.arange(n) * 0.003


def test_every_field_belongs_to_one_effect_and_the_recipe_has_the_same_fields():
    fields = [f.name for f in dataclasses.fields(NoiseModel)]
    assert [name for effect in EFFECTS.values() for name in effect.fields] == fields
    assert set(ON) == set(EFFECTS)
    assert EventNoiseRecipe().to_dict() == NoiseModel().to_dict()  # same names, order and defaults


@pytest.mark.parametrize("name", list(EFFECTS))
def test_each_effect_alone(name):
    """On with its setting and the others off; it changes the events; chunked streaming equals one call."""
    model = NoiseModel(**ON[name])
    assert [n for n, e in EFFECTS.items() if e.on(model)] == [name] and not model.is_ideal
    assert any(getattr(EFFECTS[name], step) is not None for step in ("draw", "comparator", "events"))
    frames, t_s = clip()
    ideal, _ = simulate(frames, t_s)
    noisy, _ = simulate(frames, t_s, noise=model, rng=np.random.default_rng(1))
    assert len(ideal) > 100 and noisy.tobytes() != ideal.tobytes()
    rng = np.random.default_rng(1)
    first, state = simulate(frames[:7], t_s[:7], noise=model, rng=rng)
    second, _ = simulate(frames[7:], t_s[7:], noise=model, rng=rng, state=state)
    assert np.concatenate([first, second]).tobytes() == noisy.tobytes()


@pytest.mark.parametrize("name", list(EFFECTS))
def test_the_others_without_one_effect(name):
    """Every effect but this one: the others are on, this one is off, and the events differ from the full model's."""
    model = NoiseModel(**{k: v for n, setting in ON.items() if n != name for k, v in setting.items()})
    full = NoiseModel(**{k: v for setting in ON.values() for k, v in setting.items()})
    assert [n for n, e in EFFECTS.items() if not e.on(model)] == [name]
    frames, t_s = clip()
    a, _ = simulate(frames, t_s, noise=model, rng=np.random.default_rng(3))
    b, _ = simulate(frames, t_s, noise=full, rng=np.random.default_rng(3))
    assert a.tobytes() != b.tobytes()


def test_an_ideal_model_draws_no_random_number():
    rng = np.random.default_rng(2)
    before = rng.bit_generator.state
    frames, t_s = clip()
    simulate(frames, t_s, noise=NoiseModel(), rng=rng)
    assert rng.bit_generator.state == before


@pytest.mark.parametrize("name", list(EVENT_NOISE_PRESETS))
def test_presets_are_recipe_values(name):
    preset = EVENT_NOISE_PRESETS[name]
    assert NoiseModel.preset(name).to_dict() == preset.to_dict()
    recipe = load_recipe("ev-reds", {"events.noise": name})
    assert recipe.events.noise == preset and recipe.events.noise is not preset  # a copy, not the table's entry


def test_preset_values_and_unknown_names():
    assert EVENT_NOISE_PRESETS["ideal"] == EventNoiseRecipe()
    assert EVENT_NOISE_PRESETS["v2e"].to_dict() == dict(
        threshold_sigma=0.03, cutoff_hz=300.0, leak_rate_hz=0.01, leak_spread_decades=0.1, shot_rate_hz=0.001,
        shot_intensity_factor=0.25, hot_pixel_fraction=0.0, hot_pixel_rate_hz=0.0)
    with pytest.raises(RecipeError, match="events.noise: unknown noise preset 'loud'"):
        load_recipe("default", {"events.noise": "loud"})
    with pytest.raises(ValueError, match="unknown noise preset"):
        NoiseModel.preset("loud")
