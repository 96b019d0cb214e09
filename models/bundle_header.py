"""What a model bundle says about itself, read without loading a weight or importing torch.

The commands that start a live run need the bundle's clip geometry (the sources publish its frames) and
classes before anything starts; reading them here keeps torch (seconds to import) out of the parent process,
so the children start sooner. `myosight.models.bundle` loads the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from myosight.arms import BOTH_ARMS, arm_layout
from myosight.errors import ConfigError
from myosight.models.clips import ClipGeometry
from myosight.paths import not_a_file_reason

BUNDLE_FORMAT = "myosight-bundle/1"
REQUIRED_METADATA = ("format", "head", "head_kwargs", "classes", "clip_geometry", "emg_pipeline",
                     "emg_normalisation")


def read_bundle_metadata(path: str | Path) -> dict:
    """The bundle's JSON metadata, checked for the format version (reads no weights)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {not_a_file_reason(path)} (expected a model bundle)")
    try:
        with safe_open(str(path), framework="numpy") as handle:  # numpy: the header alone, no torch
            raw = (handle.metadata() or {}).get("myosight")
    except (SafetensorError, OSError, ValueError) as error:
        raise ConfigError(f"{path}: not a myosight model bundle ({error})") from error
    if raw is None:
        raise ConfigError(f"{path}: safetensors file without myosight metadata; not a model bundle")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: bundle metadata is not valid JSON ({error})") from error
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: bundle metadata must be a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise ConfigError(f"{path}: bundle metadata lacks {', '.join(missing)}")
    if meta["format"] != BUNDLE_FORMAT:
        raise ConfigError(f"{path}: bundle format {meta['format']!r}; this myosight reads {BUNDLE_FORMAT!r}")
    return meta


def read_bundle_geometry(path: str | Path) -> ClipGeometry:
    """The clip geometry a bundle was trained with, from its metadata (reads no weights)."""
    try:
        return ClipGeometry.from_dict(read_bundle_metadata(path)["clip_geometry"])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path}: invalid bundle clip geometry ({error})") from error


def bundle_reads_video(path: str | Path) -> bool:
    """Whether a bundle's head reads RGB features (so its worker needs a video stream)."""
    modalities = read_bundle_metadata(path).get("modalities", [])
    return isinstance(modalities, list) and "rgb" in modalities


def bundle_arms(path: str | Path, meta: dict | None = None) -> tuple[str, ...]:
    """The armbands a bundle reads, in channel order (a bundle written before arms were recorded: both)."""
    meta = read_bundle_metadata(path) if meta is None else meta
    stored = meta.get("arms", list(BOTH_ARMS))
    if not isinstance(stored, list) or not all(isinstance(arm, str) for arm in stored):
        raise ConfigError(f"{path}: bundle 'arms' must be a list of arm names")
    return arm_layout(stored, what=f"{path}: bundle arms")
