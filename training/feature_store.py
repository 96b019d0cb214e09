"""A dataset directory: one HDF5 file per split holding every per-sample array, plus `dataset.json`.

    DIR/dataset.json      classes, split rule, sEMG preset and pipeline config, clip geometry, normalisation
    DIR/train.h5          uid, label, session, start_s + arrays (N, clips, ...)
    DIR/test.h5

Arrays are added as they are computed: `spectrograms` and `emg_raw` by `myosight dataset`, `emg` (sEMG
CNN features) by `myosight features emg`, `rgb` (I3D features) by `myosight features rgb`. Every array's
first axis follows the split's sample order, so any head can be trained from any subset of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from myosight.errors import ConfigError, SessionFormatError
from myosight.paths import not_a_file_reason, replaced_when_done, write_text_replacing

DATASET_FILE = "dataset.json"
SPLITS = ("train", "test")
META_FIELDS = ("uid", "session", "video")


@dataclass
class SplitData:
    """One split in memory: sample metadata, integer labels and the named arrays."""

    uids: np.ndarray
    labels: np.ndarray
    start_s: np.ndarray
    sessions: np.ndarray
    videos: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.uids)

    def subset(self, index: np.ndarray) -> SplitData:
        return SplitData(
            self.uids[index], self.labels[index], self.start_s[index], self.sessions[index], self.videos[index],
            {name: array[index] for name, array in self.arrays.items()},
        )


def encode_text(values: np.ndarray) -> np.ndarray:
    """Strings as UTF-8 bytes for HDF5 (paths may hold any character; numpy's "S" type takes ASCII only)."""
    return np.char.encode(np.asarray(values, dtype=str), "utf-8")


def read_text(handle: h5py.File, name: str) -> np.ndarray:
    """A text field of a split file as str (UTF-8; files written before UTF-8 hold ASCII, a subset)."""
    return np.char.decode(handle[name][()], "utf-8")


def write_split(path: Path, data: SplitData, extra_fields: dict[str, np.ndarray] | None = None) -> None:
    """Write a split file; the previous file is replaced only once the new one is complete.

    `extra_fields`: further per-sample metadata (for example EPIC's stop times), stored beside `start_s`.
    """
    with replaced_when_done(path) as temporary, h5py.File(temporary, "w") as handle:
        for name, values in (extra_fields or {}).items():
            handle.create_dataset(name, data=values)
        handle.create_dataset("uid", data=encode_text(data.uids))
        handle.create_dataset("label", data=data.labels.astype(np.int64))
        handle.create_dataset("start_s", data=data.start_s.astype(np.float64))
        handle.create_dataset("session", data=encode_text(data.sessions))
        handle.create_dataset("video", data=encode_text(data.videos))
        for name, array in data.arrays.items():
            handle.create_dataset(f"arrays/{name}", data=array, compression="gzip", compression_opts=1)


def write_array(path: Path, name: str, array: np.ndarray, attrs: dict[str, str] | None = None) -> None:
    """Add or replace one per-sample array (with its attributes) in a split file.

    The file is rewritten under a temporary name and moved into place when complete: an HDF5 file opened for
    writing in place is left damaged by a crash or a full disk, and with it every array of the split.
    """
    key = f"arrays/{name}"
    with replaced_when_done(path) as temporary, h5py.File(path, "r") as source, h5py.File(temporary, "w") as target:
        rows = source["uid"].shape[0]
        if array.shape[0] != rows:
            raise ConfigError(f"{path}: array '{name}' has {array.shape[0]} rows, the split has {rows} samples")
        _copy_except(source, target, key)
        target.create_dataset(key, data=array, compression="gzip", compression_opts=1)
        target[key].attrs.update(attrs or {})


def _copy_except(source: h5py.Group, target: h5py.Group, skipped: str) -> None:
    """Copy every dataset and group of `source` (with attributes) except the one at path `skipped`."""
    target.attrs.update(source.attrs)
    for name, node in source.items():
        if node.name.lstrip("/") == skipped:
            continue
        if isinstance(node, h5py.Group):
            _copy_except(node, target.require_group(name), skipped)
        else:
            source.copy(node, target, name=name)


def read_split(path: Path, arrays: tuple[str, ...] | None = None) -> SplitData:
    """Read a split file; `arrays` limits which arrays are loaded (None: all)."""
    if not path.is_file():
        raise ConfigError(f"{path}: {not_a_file_reason(path)} (a split file; run `myosight dataset` first)")
    try:
        with h5py.File(path, "r") as handle:
            names = list(handle.get("arrays", {}).keys())
            wanted = names if arrays is None else list(arrays)
            missing = [name for name in wanted if name not in names]
            if missing:
                raise ConfigError(
                    f"{path}: missing array(s) {', '.join(missing)} (present: {', '.join(names) or 'none'}); "
                    "run `myosight features emg` / `myosight features rgb` on the dataset first"
                )
            return SplitData(
                uids=read_text(handle, "uid"),
                labels=handle["label"][()],
                start_s=handle["start_s"][()],
                sessions=read_text(handle, "session"),
                videos=read_text(handle, "video"),
                arrays={name: handle[f"arrays/{name}"][()] for name in wanted},
            )
    except OSError as error:
        raise SessionFormatError(path, f"cannot read split file ({error})") from error


def array_names(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"{path}: {not_a_file_reason(path)} (a split file; run `myosight dataset` first)")
    try:
        with h5py.File(path, "r") as handle:
            return list(handle.get("arrays", {}).keys())
    except OSError as error:
        raise SessionFormatError(path, f"cannot read split file ({error})") from error


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / DATASET_FILE
    if Path(directory).exists() and not Path(directory).is_dir():
        raise ConfigError(f"{directory}: is a file, not a dataset directory (made by `myosight dataset`)")
    if not path.is_file():
        raise ConfigError(f"{directory}: not a myosight dataset (no {DATASET_FILE}); run `myosight dataset` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: damaged dataset manifest ({error}); run `myosight dataset` again") from error
    if not isinstance(manifest, dict):
        raise ConfigError(f"{path}: damaged dataset manifest (not a JSON object); run `myosight dataset` again")
    return manifest


def write_manifest(directory: Path, manifest: dict) -> None:
    write_text_replacing(Path(directory) / DATASET_FILE, json.dumps(manifest, indent=2, ensure_ascii=False))
