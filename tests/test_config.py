"""The config engine (blursynth/config.py), one suite over the three configs built on it: the generate recipe,
the video recipe and the adapt settings."""
from __future__ import annotations

import dataclasses

import pytest

from blursynth.adapt.settings import AdaptSettings
from blursynth.config import PIPELINES_DIR, Config, RecipeError, parse_overrides
from blursynth.recipe import EVENT_NOISE_PRESETS, Recipe, ShakeRanges
from blursynth.video.recipe import VideoRecipe

CONFIGS = [Recipe, VideoRecipe, AdaptSettings]


def _named(cls) -> list[str]:
    return sorted(p.stem for p in PIPELINES_DIR.glob(cls.FILES)
                  if cls is not Recipe or not (p.stem.endswith("-video") or p.stem.startswith("adapt")))


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_named_file_loads_and_round_trips(cls):
    names = _named(cls)
    assert names
    for name in names:
        got = cls.load(name)
        assert isinstance(got, cls) and isinstance(got, Config)
        # what a run's manifest records reads back as the same config
        assert cls.from_dict(got.to_dict()) == got
        assert got.to_dict()["name"] == name


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_the_default_file_equals_the_dataclass_defaults(cls):
    # one source of truth: the class defaults and the file `load()` reads without a name agree field by field
    assert cls.load().to_dict() == cls().validate().to_dict()


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_errors_name_the_field(cls):
    section = next(f.name for f in dataclasses.fields(cls) if dataclasses.is_dataclass(f.type) or
                   dataclasses.is_dataclass(getattr(cls(), f.name)))
    with pytest.raises(RecipeError, match=rf"unknown recipe field '{section}\.bogus'"):
        cls.load(None, [f"{section}.bogus=1"])
    with pytest.raises(RecipeError, match="name: expected a string"):
        cls.load(None, ["name=3"])
    with pytest.raises(RecipeError, match=f"{cls.KIND} 'no-such-file' not found"):
        cls.load("no-such-file")


def test_overrides_are_yaml_and_dotted():
    assert parse_overrides(["a.b=[1, 2]", "c= true ", "d=x"]) == {"a.b": [1, 2], "c": True, "d": "x"}
    with pytest.raises(RecipeError, match="must look like field.path=value"):
        parse_overrides(["nothing"])
    r = Recipe.load("default", ["camera.gain=[1, 1]", "size=[64, 48]"])
    assert r.camera.gain == (1.0, 1.0) and r.size == (64, 48)
    with pytest.raises(RecipeError, match=r"camera.gain\[0\]: expected a number, got True"):
        Recipe.load("default", ["camera.gain=[true, 1]"])


def test_a_section_with_presets_takes_a_name():
    r = Recipe.load("default", ["events.noise=v2e"])
    assert r.events.noise == EVENT_NOISE_PRESETS["v2e"] and r.events.noise is not EVENT_NOISE_PRESETS["v2e"]
    with pytest.raises(RecipeError, match="events.noise: unknown noise preset 'loud'"):
        Recipe.load("default", ["events.noise=loud"])


@pytest.mark.parametrize("cls", [Recipe, VideoRecipe], ids=lambda c: c.__name__)
def test_the_shared_shake_section_is_checked_alike(cls):
    assert issubclass(type(cls().shake), ShakeRanges)
    for bad, message in ((["shake.models={bogus: 1.0}"], "shake.models.bogus: unknown shake model"),
                         (["shake.models={none: 0.0}"], "shake.models: probabilities must not all be 0"),
                         (["shake.fov_deg=[0.0, 10.0]"], r"shake.fov_deg: must lie in \(0, 170\)"),
                         (["shake.length_px=[3.0, 1.0]"], "shake.length_px: range must be")):
        with pytest.raises(RecipeError, match=message):
            cls.load(cls.DEFAULT, bad)
