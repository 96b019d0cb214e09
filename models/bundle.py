"""The model bundle: one safetensors file holding everything the live worker needs.

Tensors: the head's weights under `head.` and the sEMG CNN's under `emg_cnn.` (when the head reads sEMG
features). Metadata (safetensors' string map, key `myosight`): a JSON document with the format version,
the head's name and constructor arguments, the label list, the clip geometry, the sEMG pipeline
parameters and normalisation statistics, the I3D weights' sha256 (when the head reads RGB), the CNN's
constructor arguments and the training metrics. No pickle anywhere: loading a tampered file can only fail.

Loading checks every part and refuses a mismatch with a :class:`~myosight.errors.ConfigError` naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from myosight.errors import ConfigError
from myosight.models.clips import ClipGeometry
from myosight.models.emg_cnn import EmgSpectrogramCNN
from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig

BUNDLE_FORMAT = "myosight-bundle/1"
_REQUIRED = ("format", "head", "head_kwargs", "classes", "clip_geometry", "emg_pipeline", "emg_normalisation")


@dataclass
class Bundle:
    """A loaded, checked model bundle."""

    head_name: str
    head: torch.nn.Module
    classes: list[str]
    geometry: ClipGeometry
    emg_config: EmgPipelineConfig
    normalisation: EmgNormalisation
    emg_cnn: EmgSpectrogramCNN | None = None
    i3d_sha256: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(getattr(self.head, "modalities", ()))


def save_bundle(
    path: str | Path,
    *,
    head_name: str,
    head: torch.nn.Module,
    head_kwargs: dict,
    classes: list[str],
    geometry: ClipGeometry,
    emg_config: EmgPipelineConfig,
    normalisation: EmgNormalisation,
    emg_cnn: EmgSpectrogramCNN | None = None,
    emg_cnn_kwargs: dict | None = None,
    i3d_sha256: str | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write a bundle; the sEMG CNN is required when the head reads sEMG features, the I3D hash for RGB."""
    modalities = tuple(getattr(head, "modalities", ()))
    if "emg" in modalities and emg_cnn is None:
        raise ConfigError(f"head '{head_name}' reads sEMG features: the bundle needs the sEMG CNN")
    tensors = {f"head.{k}": v.detach().contiguous() for k, v in head.state_dict().items()}
    if emg_cnn is not None:
        tensors.update({f"emg_cnn.{k}": v.detach().contiguous() for k, v in emg_cnn.state_dict().items()})
    meta = {
        "format": BUNDLE_FORMAT,
        "head": head_name,
        "head_kwargs": head_kwargs,
        "modalities": list(modalities),
        "classes": list(classes),
        "clip_geometry": geometry.to_dict(),
        "emg_pipeline": emg_config.to_dict(),
        "emg_normalisation": normalisation.to_dict(),
        "emg_cnn_kwargs": emg_cnn_kwargs if emg_cnn is not None else None,
        "i3d_sha256": i3d_sha256,
        "metrics": metrics or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"myosight": json.dumps(meta)})
    return path


def read_bundle_metadata(path: str | Path) -> dict:
    """The bundle's JSON metadata, checked for the format version (reads no weights)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such model bundle")
    try:
        with safe_open(str(path), framework="pt") as handle:
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
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise ConfigError(f"{path}: bundle metadata lacks {', '.join(missing)}")
    if meta["format"] != BUNDLE_FORMAT:
        raise ConfigError(f"{path}: bundle format {meta['format']!r}; this myosight reads {BUNDLE_FORMAT!r}")
    return meta


def load_bundle(path: str | Path, *, i3d_sha256: str | None = None) -> Bundle:
    """Load and check a bundle. `i3d_sha256`, when given, must match the hash the heads were trained with."""
    from myosight.models.heads import build_head

    path = Path(path)
    meta = read_bundle_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{path}: cannot read bundle tensors ({error})") from error
    try:
        geometry = ClipGeometry.from_dict(meta["clip_geometry"])
        emg_config = EmgPipelineConfig.from_dict(meta["emg_pipeline"])
        normalisation = EmgNormalisation.from_dict(meta["emg_normalisation"])
        head = build_head(meta["head"], **meta["head_kwargs"])
    except (TypeError, KeyError, ValueError) as error:
        raise ConfigError(f"{path}: invalid bundle configuration ({error})") from error
    classes = list(meta["classes"])
    _load_part(path, "head", head, tensors)
    num_classes = getattr(head, "num_classes", len(classes))
    if num_classes != len(classes):
        raise ConfigError(f"{path}: head predicts {num_classes} classes but the label list has {len(classes)}")
    emg_cnn = None
    if meta.get("emg_cnn_kwargs"):
        try:
            emg_cnn = EmgSpectrogramCNN(**meta["emg_cnn_kwargs"])
        except TypeError as error:
            raise ConfigError(f"{path}: invalid sEMG CNN configuration ({error})") from error
        _load_part(path, "emg_cnn", emg_cnn, tensors)
        emg_cnn.eval()
    elif "emg" in meta.get("modalities", []):
        raise ConfigError(f"{path}: head reads sEMG features but the bundle holds no sEMG CNN")
    if len(normalisation.minimum) != 16:
        raise ConfigError(f"{path}: sEMG normalisation has {len(normalisation.minimum)} channels, expected 16")
    stored_hash = meta.get("i3d_sha256")
    if i3d_sha256 and stored_hash and i3d_sha256 != stored_hash:
        raise ConfigError(
            f"{path}: trained on I3D weights {stored_hash[:12]}..., but the loaded I3D weights are "
            f"{i3d_sha256[:12]}...; re-extract features and retrain, or fetch the matching weights"
        )
    head.eval()
    return Bundle(meta["head"], head, classes, geometry, emg_config, normalisation, emg_cnn, stored_hash, meta)


def _load_part(path: Path, prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(
            f"{path}: {prefix} weights do not match its configuration (missing: {missing[:5]}, "
            f"unexpected: {unexpected[:5]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ConfigError(
                f"{path}: {prefix}.{key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
            )
    module.load_state_dict(state)
