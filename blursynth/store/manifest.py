"""``manifest.json``: what a run was asked to do, what it wrote, and what it skipped.

The manifest is rewritten atomically (temp file, fsync, rename) after every finished shard, so a reader
sees either the previous or the next version, never a torn one. Only shards listed in it are part of the
dataset.
"""
from __future__ import annotations

import json
import logging
import os
import platform
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .batch import disk_full_raised
from .codec import decode_meta, encode_meta
from .errors import DiskFullError
from .shard import ShardInfo, _fsync_dir

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

# Distribution names, looked up without importing (importing torch alone takes seconds).
_DISTRIBUTIONS = {
    "blursynth": ("blursynth",),
    "numpy": ("numpy",),
    "numba": ("numba",),
    "cv2": ("opencv-contrib-python-headless", "opencv-python-headless", "opencv-contrib-python", "opencv-python"),
    "lmdb": ("lmdb",),
    "zstandard": ("zstandard",),
    "qoi": ("qoi",),
    "torch": ("torch",),
}


def library_versions() -> dict[str, str]:
    """Versions of python and of the libraries that can change the bytes written; absent ones are left out."""
    versions = {"python": platform.python_version()}
    for name, dists in _DISTRIBUTIONS.items():
        for dist in dists:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Manifest:
    """Contents of ``manifest.json``.

    Attributes:
        recipe: the recipe as resolved (every default filled in), JSON-compatible.
        seed: global seed.
        num_requested: samples asked for (written + skipped + not yet done).
        image_size: [W, H] in pixels.
        codec: image codec of ``blur`` / ``sharp`` (one of ``codec.IMAGE_CODECS``).
        command: the command line that made the run.
        created: ISO-8601 UTC time of creation.
        versions: ``library_versions()`` of the writing process.
        shards: finished shards, sorted by name.
        skipped: ``{"index": int, "source_id": str, "reason": str}`` per sample that was not written.
        extra: fields for future use; unknown top-level keys of a loaded manifest also land here.
        format_version: layout version of the output directory.
    """

    recipe: dict
    seed: int
    num_requested: int
    image_size: list[int]
    codec: str
    command: str = ""
    created: str = field(default_factory=_utc_now)
    versions: dict = field(default_factory=library_versions)
    shards: list[ShardInfo] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    library_versions = staticmethod(library_versions)

    @property
    def num_written(self) -> int:
        return sum(s.count for s in self.shards)

    def skipped_by_reason(self) -> dict[str, int]:
        """Number of skipped samples per reason, sorted by reason."""
        return dict(sorted(Counter(s["reason"] for s in self.skipped).items()))

    def identity(self) -> dict:
        """The fields that define "the same run", normalized through JSON so tuples, lists and numpy values
        compare equal to what a loaded manifest holds."""
        return decode_meta(encode_meta({
            "recipe": self.recipe,
            "seed": self.seed,
            "num_requested": self.num_requested,
            "image_size": list(self.image_size),
            "codec": self.codec,
            "source": self.extra.get("source"),
            # shard s holds indices [s K, (s + 1) K): a resume must plan with the same K
            "shard_size": self.extra.get("shard_size"),
            "sam": self.extra.get("sam"),
            # cpu or cuda: the bytes differ within csrc/README.md's tolerances (runs before it were all cpu)
            "device": self.extra.get("device", "cpu"),
        }))

    def add_shard(self, info: ShardInfo) -> None:
        """Record a finished shard, replacing an earlier entry of the same name (a redone shard)."""
        self.shards = sorted([s for s in self.shards if s.name != info.name] + [info], key=lambda s: s.name)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["shards"] = [s.to_dict() for s in self.shards]
        d["image_size"] = list(self.image_size)
        return decode_meta(encode_meta(d))

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write ``out_dir/manifest.json`` atomically; returns its path.

        Raises:
            DiskFullError: the disk is full; the previous manifest, if any, is left as it was.
        """
        out_dir = Path(out_dir)
        path = out_dir / MANIFEST_NAME
        tmp = out_dir / (MANIFEST_NAME + ".tmp")
        text = _dumps(self.to_dict())
        try:
            with disk_full_raised(out_dir):
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
        except DiskFullError:
            tmp.unlink(missing_ok=True)  # what it holds is cut short
            raise
        _fsync_dir(out_dir)
        return path

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> "Manifest":
        """Read ``out_dir/manifest.json`` (``out_dir`` may also be the file itself).

        Raises:
            FileNotFoundError: no manifest there.
            ValueError: not valid JSON, unknown format_version, or required fields missing.
        """
        path = Path(out_dir)
        if path.is_dir() or not path.name.endswith(".json"):
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: not a blursynth output directory, or no shard of its run has finished yet"
            )
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is corrupt: {exc}") from exc
        if not isinstance(d, dict):
            raise ValueError(f"{path} is corrupt: expected a JSON object, got {type(d).__name__}")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{path} has format_version {version!r}; this blursynth reads format_version {FORMAT_VERSION}"
            )
        names = {f.name for f in fields(cls)}
        required = ("recipe", "seed", "num_requested", "image_size", "codec")
        missing = [n for n in required if n not in d]
        if missing:
            raise ValueError(f"{path} lacks required field(s): {', '.join(missing)}")
        unknown = {k: v for k, v in d.items() if k not in names}
        if unknown:
            log.warning("%s: unknown field(s) %s kept under 'extra'", path, ", ".join(sorted(unknown)))
        kwargs = {k: v for k, v in d.items() if k in names}
        try:
            kwargs["shards"] = [ShardInfo.from_dict(s) for s in d.get("shards", [])]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: bad shard entry: {exc}") from exc
        kwargs["extra"] = {**d.get("extra", {}), **unknown}
        return cls(**kwargs)


def _dumps(d: dict) -> str:
    # One top-level key per line and one shard / skipped entry per line: readable with less or grep,
    # without putting each of a million sample indices on its own line.
    def dump(v):
        return json.dumps(v, sort_keys=True, ensure_ascii=False)

    lines = []
    for key in sorted(d):
        value = d[key]
        if key in ("shards", "skipped") and value:
            body = ",\n".join(f"    {dump(v)}" for v in value)
            lines.append(f"  {dump(key)}: [\n{body}\n  ]")
        else:
            lines.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
