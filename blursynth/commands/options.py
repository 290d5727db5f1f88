"""Option helpers shared by every command: counts (1k, 100k, 1M), sizes (WIDTHxHEIGHT), `--set` lists from
options, and the `--device` check. The command modules import these from here, never from the group in
`commands/__init__.py`, so no command module imports the group that registers it (the old `blursynth/cli.py` and
the stage packages' `cli.py` files imported each other: a five-file import cycle)."""
from __future__ import annotations

import re
import shlex
import sys

import click

_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_count(text: str | int) -> int:
    """'1000', '1k', '100k', '1M', '2.5k' -> int. Raises click.BadParameter otherwise."""
    if isinstance(text, int):
        return text
    match = _COUNT.match(str(text))
    if not match:
        raise click.BadParameter(f"{text!r} is not a count (examples: 1000, 1k, 100k, 1M)")
    value = float(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    if value != int(value):
        raise click.BadParameter(f"{text!r} is not a whole number of samples")
    return int(value)


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match:
        raise click.BadParameter(f"{text!r} is not a size WIDTHxHEIGHT (e.g. 1280x720)")
    return int(match.group(1)), int(match.group(2))


def option_sets(pairs) -> list[str]:
    """`--set` overrides for the options a command was given: "KEY=VALUE" for each (key, value) in `pairs` whose
    value is not None, in order; booleans spelled true/false, as the recipe YAML has them."""
    return [f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in pairs
            if value is not None]


class Count(click.ParamType):
    name = "count"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().startswith("-"):
            self.fail(f"{value!r}: a count must not be negative", param, ctx)
        try:
            return parse_count(value)
        except click.BadParameter as exc:
            self.fail(str(exc), param, ctx)


def resolve_device_option(device: str, method: str = "exact") -> str:
    """--device of generate, events and video, checked before any work: "cpu", "cuda" or "cuda:N" (auto
    resolved). A device that cannot run here is a usage error (exit code 2) naming the reason."""
    from ..cuda import resolve_device

    try:
        return resolve_device(device.strip().lower(), method)
    except (ValueError, RuntimeError) as exc:
        raise click.UsageError(f"--device {device}: {exc}") from exc


def command_line() -> str:
    """The command as the user typed it (recorded in the run's manifest and summaries)."""
    return "blursynth " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def echo_settings(settings) -> None:
    """--dry-run: the resolved recipe or settings as YAML."""
    import yaml

    click.echo(yaml.safe_dump(settings.to_dict(), sort_keys=False), nl=False)
