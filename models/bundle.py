"""The model bundle: one safetensors file holding everything the live worker needs.

Tensors: the head's weights under `head.` and the sEMG CNN's under `emg_cnn.` (when the head reads sEMG
features). Metadata (safetensors' string map, key `myosight`): a JSON document with the format version,
the head's name and constructor arguments, the label list, the clip geometry, the sEMG pipeline
parameters (among them the sEMG preset) and normalisation statistics, the I3D weights' sha256 (when the head
reads RGB), the CNN's constructor arguments and the training metrics. No pickle anywhere: loading a tampered
file can only fail.

Loading checks every part and refuses a mismatch with a :class:`~myosight.errors.ConfigError` naming it.
A bundle trained on an offline sEMG preset loads for offline evaluation; live use refuses it
(:func:`require_live_preset`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from myosight.arms import BOTH_ARMS, arm_layout, describe_arms, emg_channels
from myosight.errors import ConfigError
from myosight.models.bundle_header import BUNDLE_FORMAT, bundle_arms, read_bundle_metadata
from myosight.models.clips import SAMPLING_MODES, ClipGeometry
from myosight.models.emg_cnn import EmgSpectrogramCNN
from myosight.models.emg_pipeline import LIVE_PRESET, EmgNormalisation, EmgPipelineConfig
from myosight.paths import write_bytes_replacing

M = TypeVar("M", bound=torch.nn.Module)  # the module a bundle part builds
#: Settings a stored configuration may leave empty although their default is a number (the earlier behaviour).
NULLABLE_SETTINGS = ("log_floor",)


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
    path: Path | None = None  # the file it was loaded from (for messages)
    arms: tuple[str, ...] = BOTH_ARMS  # the armbands its sEMG channels come from, in channel order

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(getattr(self.head, "modalities", ()))

    def require_live(self) -> None:
        """Raise ConfigError unless this bundle can run live (see :func:`require_live_preset`)."""
        require_live_preset(self)


def require_live_preset(bundle: Bundle) -> None:
    """Refuse, for live use, a bundle whose sEMG features come from an offline preset, saying why and what to do.

    The offline presets (``paper``, ``paper-text``) filter each action forwards and backwards and scale it by its
    own minimum and maximum: a spectrogram needs the whole action, future included. A live stream cannot
    compute them, and live spectrograms of another shape and scale would feed the model nonsense.
    """
    preset = bundle.emg_config.preset
    if preset == LIVE_PRESET:
        return
    where = bundle.path or f"head '{bundle.head_name}'"
    raise ConfigError(
        f"{where}: trained on the offline sEMG preset {preset!r}, which needs each whole action in advance "
        f"(zero-phase filter, min-max per action), so it cannot run live. For live use build the dataset with "
        f"`myosight dataset ... --preset {LIVE_PRESET}` (the default) and train again"
    )


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
    provenance: dict | None = None,
    arms: Sequence[str] = BOTH_ARMS,
) -> Path:
    """Write a bundle; the sEMG CNN is required when the head reads sEMG features, the I3D hash for RGB.

    `arms` is the armband layout the sEMG parts were trained on (8 channels per arm, in layout order): the
    normalisation and the CNN's input must have its channel count, so a bundle that would not load is never
    written."""
    modalities = tuple(getattr(head, "modalities", ()))
    if "emg" in modalities and emg_cnn is None:
        raise ConfigError(f"head '{head_name}' reads sEMG features: the bundle needs the sEMG CNN")
    arms = arm_layout(arms, what=f"{path}: bundle arms")
    _check_channels(Path(path), arms, len(normalisation.minimum), emg_cnn_kwargs if emg_cnn is not None else None)
    tensors = {f"head.{k}": v.detach().contiguous() for k, v in head.state_dict().items()}
    if emg_cnn is not None:
        tensors.update({f"emg_cnn.{k}": v.detach().contiguous() for k, v in emg_cnn.state_dict().items()})
    _check_finite_tensors(Path(path), tensors)
    meta = {
        "format": BUNDLE_FORMAT,
        "arms": list(arms),
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
    if provenance:
        meta["provenance"] = provenance  # where an adapted model comes from (calibration)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # whole or not at all: a failed save (a full disk, a stop) leaves the previous bundle as it was
    write_bytes_replacing(path, save(tensors, metadata={"myosight": json.dumps(meta)}))
    return path


def load_bundle(path: str | Path, *, i3d_sha256: str | None = None) -> Bundle:
    """Load and check a bundle. `i3d_sha256`, when given, must match the hash the heads were trained with."""
    from myosight.models.heads import build_head

    path = Path(path)
    meta = read_bundle_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{path}: cannot read bundle tensors ({error})") from error
    _check_finite_tensors(path, tensors)
    geometry, emg_config, normalisation = _read_pipeline(path, meta)
    classes = meta["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise ConfigError(f"{path}: bundle 'classes' must be a list of class names")
    head = _build_checked(path, "head", lambda: build_head(meta["head"], **meta["head_kwargs"]), tensors,
                          "invalid bundle configuration")
    num_classes = getattr(head, "num_classes", len(classes))
    if num_classes != len(classes):
        raise ConfigError(f"{path}: head predicts {num_classes} classes but the label list has {len(classes)}")
    emg_cnn = None
    if meta.get("emg_cnn_kwargs"):
        kwargs = meta["emg_cnn_kwargs"]
        emg_cnn = _build_checked(path, "emg_cnn", lambda: EmgSpectrogramCNN(**kwargs), tensors,
                                 "invalid sEMG CNN configuration").eval()
    elif "emg" in getattr(head, "modalities", ()):
        raise ConfigError(f"{path}: head reads sEMG features but the bundle holds no sEMG CNN")
    arms = bundle_arms(path, meta)
    _check_channels(path, arms, len(normalisation.minimum), meta.get("emg_cnn_kwargs"))
    stored_hash = meta.get("i3d_sha256")
    if i3d_sha256 and stored_hash and i3d_sha256 != stored_hash:
        raise ConfigError(
            f"{path}: trained on I3D weights {str(stored_hash)[:12]}..., but the loaded I3D weights are "
            f"{i3d_sha256[:12]}...; re-extract features and retrain, or fetch the matching weights"
        )
    head.eval()
    return Bundle(meta["head"], head, classes, geometry, emg_config, normalisation, emg_cnn, stored_hash, meta, path,
                  arms)


def _check_channels(path: Path, arms: tuple[str, ...], normalised: int, cnn_kwargs: dict | None) -> None:
    """The normalisation and the sEMG CNN's input have the channels of the arm layout (8 per arm)."""
    channels = emg_channels(arms)
    if normalised != channels:
        raise ConfigError(f"{path}: sEMG normalisation has {normalised} channels, but {describe_arms(arms)} give "
                          f"{channels}")
    if cnn_kwargs is not None and cnn_kwargs.get("in_channels", 16) != channels:
        raise ConfigError(f"{path}: the sEMG CNN reads {cnn_kwargs.get('in_channels', 16)} channels, but "
                          f"{describe_arms(arms)} give {channels}")


def _check_finite_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse NaN or infinite weights: they make NaN probabilities that would still carry a label."""
    bad = [name for name, tensor in tensors.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise ConfigError(f"{path}: bundle weights hold NaN or infinite values ({', '.join(sorted(bad)[:5])}"
                          f"{' and more' if len(bad) > 5 else ''}); train the model again")


def _read_pipeline(path: Path, meta: dict) -> tuple[ClipGeometry, EmgPipelineConfig, EmgNormalisation]:
    """Clip geometry, sEMG pipeline and normalisation, each value checked."""
    try:
        geometry = ClipGeometry.from_dict(meta["clip_geometry"])
        emg_config = EmgPipelineConfig.from_dict(meta["emg_pipeline"])
        _check_numbers(geometry, "clip_geometry")
        _check_numbers(emg_config, "emg_pipeline")
        _ = emg_config.lowpass_sos  # a cut-off the rate cannot carry fails here, not in the live worker
        normalisation = EmgNormalisation.from_dict(meta["emg_normalisation"])
    except (TypeError, KeyError, ValueError, ConfigError) as error:
        raise ConfigError(f"{path}: invalid bundle configuration ({error})") from error
    return geometry, emg_config, normalisation


def _build_checked(path: Path, prefix: str, build: Callable[[], M], tensors: dict[str, torch.Tensor],
                   what: str) -> M:
    """Build a module on the meta device first and compare its shapes with the file's, so that tampered sizes
    are refused before any memory is allocated for them; then build it for real and load the weights."""
    try:
        with torch.device("meta"):
            probe = build()
    except (TypeError, ValueError, RuntimeError, ConfigError) as error:
        raise ConfigError(f"{path}: {what} ({error})") from error
    _check_part(path, prefix, {k: tuple(v.shape) for k, v in probe.state_dict().items()}, tensors)
    module = build()
    module.load_state_dict(_part(prefix, tensors))
    return module


def _check_numbers(config: ClipGeometry | EmgPipelineConfig, section: str) -> None:
    """Every numeric field finite and positive, of the type its default has (a tampered value fails here)."""
    for item in fields(config):
        value, default = getattr(config, item.name), item.default
        if value is None and (default is None or item.name in NULLABLE_SETTINGS):
            continue
        if isinstance(default, str):
            ok = isinstance(value, str) and (item.name != "sampling" or value in SAMPLING_MODES)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok:
            raise ValueError(f"{section}.{item.name} = {value!r} is not a valid value")


def _part(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _check_part(path: Path, prefix: str, expected: dict[str, tuple[int, ...]],
                tensors: dict[str, torch.Tensor]) -> None:
    state = _part(prefix, tensors)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(
            f"{path}: {prefix} weights do not match its configuration (missing: {missing[:5]}, "
            f"unexpected: {unexpected[:5]})"
        )
    for key, value in state.items():
        if tuple(value.shape) != expected[key]:
            raise ConfigError(f"{path}: {prefix}.{key} has shape {tuple(value.shape)}, expected {expected[key]}")
