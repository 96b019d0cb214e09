"""A dataset directory: one HDF5 file per split holding every per-sample array, plus `dataset.json`.

    DIR/dataset.json      classes, split rule, sEMG pipeline config, clip geometry, normalisation
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


def write_split(path: Path, data: SplitData) -> None:
    """Write a split file (replacing it)."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset("uid", data=data.uids.astype("S"))
        handle.create_dataset("label", data=data.labels.astype(np.int64))
        handle.create_dataset("start_s", data=data.start_s.astype(np.float64))
        handle.create_dataset("session", data=data.sessions.astype("S"))
        handle.create_dataset("video", data=data.videos.astype("S"))
        for name, array in data.arrays.items():
            handle.create_dataset(f"arrays/{name}", data=array, compression="gzip", compression_opts=1)


def write_array(path: Path, name: str, array: np.ndarray) -> None:
    """Add or replace one per-sample array in an existing split file."""
    with h5py.File(path, "a") as handle:
        rows = handle["uid"].shape[0]
        if array.shape[0] != rows:
            raise ConfigError(f"{path}: array '{name}' has {array.shape[0]} rows, the split has {rows} samples")
        key = f"arrays/{name}"
        if key in handle:
            del handle[key]
        handle.create_dataset(key, data=array, compression="gzip", compression_opts=1)


def read_split(path: Path, arrays: tuple[str, ...] | None = None) -> SplitData:
    """Read a split file; `arrays` limits which arrays are loaded (None: all)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such split file (run `myosight dataset` first)")
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
                uids=handle["uid"][()].astype(str),
                labels=handle["label"][()],
                start_s=handle["start_s"][()],
                sessions=handle["session"][()].astype(str),
                videos=handle["video"][()].astype(str),
                arrays={name: handle[f"arrays/{name}"][()] for name in wanted},
            )
    except OSError as error:
        raise SessionFormatError(path, f"cannot read split file ({error})") from error


def array_names(path: Path) -> list[str]:
    with h5py.File(path, "r") as handle:
        return list(handle.get("arrays", {}).keys())


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / DATASET_FILE
    if not path.is_file():
        raise ConfigError(f"{directory}: not a myosight dataset (no {DATASET_FILE}); run `myosight dataset` first")
    return json.loads(path.read_text())


def write_manifest(directory: Path, manifest: dict) -> None:
    (Path(directory) / DATASET_FILE).write_text(json.dumps(manifest, indent=2))
