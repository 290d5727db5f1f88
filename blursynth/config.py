"""The config engine: typed dataclasses read from YAML with dotted overrides, every field checked before any work,
every error naming its field. One engine serves the generate recipe (`recipe.Recipe`), the video recipe
(`video.recipe.VideoRecipe`) and the adapt settings (`adapt.settings.AdaptSettings`).

A config is a dataclass that derives from `Config` and sets three class attributes: KIND (how errors name it),
FILES (the glob of its named files in `pipelines/`) and DEFAULT (the name `load` reads when given none; None: the
class defaults). Its sections are dataclasses too, nested to any depth; a section class with a PRESETS table
(name -> instance) may also be written as one of the names (``events.noise: v2e``). `check` holds the rules
that span fields; `load(name_or_path, overrides)` reads, overrides, builds and checks:

    recipe = Recipe.load("sbdd", ["camera.gain=[1, 1]"])    # pipelines/sbdd.yaml, one field overridden
    Recipe.from_dict(manifest["recipe"])                    # the resolved recipe a run recorded

Field types the engine reads: float, int, bool, str, Any (taken as written), tuples of them (a YAML list of that
length), dict[str, float], X | None, and nested dataclasses. A YAML int is a float where a float is asked; a bool
is never a number.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

import yaml

PIPELINES_DIR = Path(__file__).resolve().parent / "pipelines"


class RecipeError(ValueError):
    """A config field is missing, unknown, of the wrong type or out of range; the message names the field."""


class Config:
    """Base of a config dataclass: `load`, `from_dict`, `to_dict`, `validate` (runs `check`)."""

    KIND: ClassVar[str] = "recipe"
    FILES: ClassVar[str] = "*.yaml"
    DEFAULT: ClassVar[str | None] = None

    @classmethod
    def load(cls, name_or_path: str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None):
        """Read the YAML file `name_or_path` (a name in pipelines/, a path, or None for DEFAULT), apply the
        overrides ({"camera.gain": [1, 1]} or ["camera.gain=[1, 1]", ...], values parsed as YAML), build and
        check. Raises RecipeError naming the file or the field."""
        return cls.from_dict(load_data(cls.DEFAULT if name_or_path is None else name_or_path, overrides,
                                       kind=cls.KIND, pattern=cls.FILES))

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a plain mapping (a YAML file's, or a `to_dict`) and check."""
        return build_dataclass(cls, data, "").validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists and scalars, as a run's manifest records it (`from_dict` reads it back)."""
        return to_plain(dataclasses.asdict(self))

    def validate(self):
        self.check()
        return self

    def check(self) -> None:
        """The rules a field's type does not say (ranges, choices, fields that depend on each other); raises
        RecipeError through `check_field`."""


def load_data(name_or_path: str | Path | None, overrides: dict[str, Any] | list[str] | None = None,
              kind: str = "recipe", pattern: str = "*.yaml") -> dict[str, Any]:
    """The YAML mapping of a config file (by name in pipelines/ or by path; None: empty) with the overrides
    applied; `name` defaults to the file's stem. Raises RecipeError, naming `kind`, for a missing file or bad
    YAML, listing the pipelines/ files matching `pattern` as the known names."""
    data: dict[str, Any] = {}
    if name_or_path is not None:
        path = Path(name_or_path)
        if not path.suffix:
            path = PIPELINES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PIPELINES_DIR.glob(pattern))
            raise RecipeError(f"{kind} {str(name_or_path)!r} not found (known: {', '.join(known)}; "
                              "or give a path to a YAML file)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RecipeError(f"{kind} {path}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise RecipeError(f"{kind} {path}: top level must be a mapping")
        data.setdefault("name", path.stem)
    for key, value in parse_overrides(overrides).items():
        _set_dotted(data, key, value)
    return data


def parse_overrides(overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """{"a.b": value} from a dict (copied) or from ["a.b=VALUE", ...] (VALUE parsed as YAML)."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    parsed = {}
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r} must look like field.path=value")
        key, raw = item.split("=", 1)
        try:
            parsed[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise RecipeError(f"override {key}: cannot parse value {raw!r}: {exc}") from exc
    return parsed


def build_dataclass(cls, data: Any, prefix: str):
    """A `cls` dataclass from a YAML mapping, nested dataclasses included; an unknown or mistyped field is a
    RecipeError naming it under `prefix`. Fields left out keep the class defaults."""
    if not isinstance(data, dict):
        raise RecipeError(f"{prefix or 'recipe'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RecipeError(f"unknown recipe field {_join(prefix, unknown[0])!r} (valid here: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, _join(prefix, name))
    return cls(**kwargs)


def check_field(ok: bool, name: str, message: str, kind: str = "recipe field") -> None:
    """RecipeError("KIND NAME: MESSAGE") unless `ok`."""
    if not ok:
        raise RecipeError(f"{kind} {name}: {message}")


def check_range(name: str, value, lo: float | None = None) -> None:
    """A [low, high] field: low <= high, and low >= `lo` when given, or a RecipeError naming `name`."""
    check_field(value[0] <= value[1], name, f"range must be [low, high] with low <= high, got {list(value)}")
    if lo is not None:
        check_field(value[0] >= lo, name, f"must be >= {lo}, got {list(value)}")


def to_plain(obj):
    """Dicts, lists and scalars only (tuples become lists), as YAML and JSON write them."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"override {key}: {part} is not a section")
    node[parts[-1]] = value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _coerce(hint, value, name: str):
    if dataclasses.is_dataclass(hint):
        presets = getattr(hint, "PRESETS", None)
        if presets is not None and isinstance(value, str):
            if value not in presets:
                kind = getattr(hint, "PRESET_KIND", "preset")
                raise RecipeError(f"{name}: unknown {kind} {value!r} (known: {', '.join(presets)})")
            return dataclasses.replace(presets[value])
        return build_dataclass(hint, value, name)
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise RecipeError(f"{name}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{name}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        key_t, val_t = typing.get_args(hint)
        if not isinstance(value, dict):
            raise RecipeError(f"{name}: expected a mapping, got {value!r}")
        return {_coerce(key_t, k, name): _coerce(val_t, v, f"{name}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        return _coerce(hint, value, name)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{name}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{name}: expected a string, got {value!r}")
        return value
    return value
