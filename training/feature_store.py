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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from myosight.data.layout import in_memory_hdf5, save_in_memory_hdf5
from myosight.errors import ConfigError, SessionFormatError
from myosight.paths import not_a_file_reason, replaced_when_done

DATASET_FILE = "dataset.json"
SPLITS = ("train", "test")
#: The sEMG CNN of `myosight features emg`, trained on the split files: its weights and its metadata.
CNN_WEIGHTS = "emg_cnn.safetensors"
CNN_META = "emg_cnn.json"
#: The per-split progress side file of `myosight features rgb` (`DIR/train.rgb_partial.h5`).
RGB_PARTIAL_SUFFIX = ".rgb_partial.h5"
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


@contextmanager
def hdf5_written_whole(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file built in memory and written to `path` in one piece once the block completes, never if it
    fails (see `myosight.data.layout.in_memory_hdf5`: a full disk then ends in an error, not a crash)."""
    handle = in_memory_hdf5(path)
    try:
        yield handle
        save_in_memory_hdf5(handle, path)
    finally:
        handle.close()


def write_split(path: Path, data: SplitData, extra_fields: dict[str, np.ndarray] | None = None) -> None:
    """Write a split file; the previous file is replaced only once the new one is complete.

    `extra_fields`: further per-sample metadata (for example EPIC's stop times), stored beside `start_s`.
    """
    with hdf5_written_whole(path) as handle:
        for name, values in (extra_fields or {}).items():
            handle.create_dataset(name, data=values)
        handle.create_dataset("uid", data=encode_text(data.uids))
        handle.create_dataset("label", data=data.labels.astype(np.int64))
        handle.create_dataset("start_s", data=data.start_s.astype(np.float64))
        handle.create_dataset("session", data=encode_text(data.sessions))
        handle.create_dataset("video", data=encode_text(data.videos))
        for name, array in data.arrays.items():
            handle.create_dataset(f"arrays/{name}", data=array, compression="gzip", compression_opts=1)


def write_array(path: Path, name: str, array: np.ndarray, attrs: dict[str, str] | None = None, *,
                into: Path | None = None) -> None:
    """Add or replace one per-sample array (with its attributes) in a split file; `into`: write the result there
    instead (a temporary name of `replaced_together`).

    The file is rewritten under a temporary name and moved into place when complete: an HDF5 file opened for
    writing in place is left damaged by a crash or a full disk, and with it every array of the split.
    """
    key = f"arrays/{name}"
    with h5py.File(path, "r") as source, hdf5_written_whole(into or path) as target:
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
    with replaced_when_done(Path(directory) / DATASET_FILE) as temporary:
        write_manifest_file(temporary, manifest)


def write_manifest_file(path: Path, manifest: dict) -> None:
    """Write a manifest to exactly `path` (a temporary name that `replaced_together` moves into place)."""
    Path(path).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def dataset_files(directory: Path) -> list[Path]:
    """The files of a dataset directory that myosight made and that a new dataset replaces: the manifest, the
    split files, the sEMG CNN made from them and the RGB progress files. Anything else there is left alone."""
    names = [DATASET_FILE, *(f"{split}.h5" for split in SPLITS), CNN_WEIGHTS, CNN_META,
             *(f"{split}{RGB_PARTIAL_SUFFIX}" for split in SPLITS)]
    return [Path(directory) / name for name in names if (Path(directory) / name).exists()]


def remove_derived_files(directory: Path) -> None:
    """Remove what was made from a dataset's split files (its sEMG CNN, RGB progress): stale once they change."""
    for path in dataset_files(directory):
        if path.name not in (DATASET_FILE, *(f"{split}.h5" for split in SPLITS)):
            path.unlink()
