"""The ActionSense recorder's file layout, and a writer for it.

A session is one HDF5 file `<YYYY-mm-dd_HH-MM-SS>_streamLog_<tag>.hdf5` with groups `/<device>/<stream>/`
holding `data` (N, *sample_shape), `time_s` (N, 1) float64 epoch seconds and `time_str` (N, 1) `|S26`.
Every attribute is a string. The world-camera video lives beside it as an mp4 whose frame i has the
timestamp in row i of `/eye-tracking-video-world/frame_timestamp/time_s`.

The writer is what `myosight synth` and the GUI recorder use, so every file the project makes reads back
through the same reader as a real recording.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np

from myosight.constants import CHANNELS_PER_ARM
from myosight.paths import write_bytes_replacing

EMG_GROUPS: dict[str, str] = {"left": "myo-left/emg", "right": "myo-right/emg"}
ACTIVITY_GROUP = "experiment-activities/activities"
VIDEO_TIMESTAMP_GROUP = "eye-tracking-video-world/frame_timestamp"
TIME_STR_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
ACTIVITY_HEADINGS = ["Activity", "Start/Stop", "Valid", "Notes"]


def session_filename(start_time_s: float, tag: str) -> str:
    """The recorder's file name for a session that started at `start_time_s` (epoch seconds, local time)."""
    stamp = datetime.fromtimestamp(start_time_s).strftime("%Y-%m-%d_%H-%M-%S")
    return f"{stamp}_streamLog_{tag}.hdf5"


def video_filename(start_time_s: float, subject: str) -> str:
    """The released world-camera file name, e.g. `2022-06-07_18-10-55_S00_eye-tracking-video-world_frame.mp4`."""
    stamp = datetime.fromtimestamp(start_time_s).strftime("%Y-%m-%d_%H-%M-%S")
    return f"{stamp}_{subject}_eye-tracking-video-world_frame.mp4"


def time_strings(time_s: np.ndarray) -> np.ndarray:
    """Format epoch seconds as the recorder's 26-byte local-time strings."""
    return np.array(
        [datetime.fromtimestamp(float(t)).strftime(TIME_STR_FORMAT).encode() for t in np.ravel(time_s)],
        dtype="S26",
    ).reshape(-1, 1)


class SessionWriter:
    """Append-only writer of an ActionSense-layout HDF5 file.

    Datasets are chunked and resizable so a live recorder can append and `flush()` every few seconds. A
    live recorder passes `libver="earliest"`: a file of the latest format left open by a killed process is
    marked "open for write" and refused by readers, while the earliest format opens with everything up to
    the last flush.
    """

    def __init__(self, path: str | Path, *, file_attrs: Mapping[str, str] | None = None,
                 libver: str = "latest", whole: bool = False) -> None:
        """`whole`: build the file in memory and write it in one piece when closed after success (a generated or
        imported session: see `in_memory_hdf5`); a live recorder writes as it goes instead."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.whole = whole
        self._file = in_memory_hdf5(self.path, libver=libver) if whole else h5py.File(self.path, "w", libver=libver)
        for key, value in (file_attrs or {}).items():
            self._file.attrs[key] = str(value)

    # -- streams -----------------------------------------------------------------------------------
    def add_stream(
        self,
        group: str,
        sample_shape: tuple[int, ...],
        dtype: np.dtype | str,
        *,
        attrs: Mapping[str, str] | None = None,
        device_attrs: Mapping[str, str] | None = None,
        chunk_rows: int = 1024,
    ) -> None:
        """Create `/<device>/<stream>` with empty resizable `data`, `time_s` and `time_str` datasets."""
        stream = self._file.require_group(group)
        device = stream.parent
        for key, value in (device_attrs or {}).items():
            device.attrs[key] = str(value)
        for key, value in (attrs or {}).items():
            stream.attrs[key] = str(value)
        stream.create_dataset(
            "data", shape=(0, *sample_shape), maxshape=(None, *sample_shape), dtype=dtype,
            chunks=(chunk_rows, *sample_shape),
        )
        stream.create_dataset("time_s", shape=(0, 1), maxshape=(None, 1), dtype="f8", chunks=(chunk_rows, 1))
        stream.create_dataset("time_str", shape=(0, 1), maxshape=(None, 1), dtype="S26", chunks=(chunk_rows, 1))

    def add_emg_stream(self, arm: str) -> None:
        """Create a Myo EMG stream (`myo-left/emg` or `myo-right/emg`) as the recorder does."""
        headings = [f"Channel {i + 1}" for i in range(CHANNELS_PER_ARM)]
        self.add_stream(
            EMG_GROUPS[arm], (CHANNELS_PER_ARM,), "int32",
            attrs={"Data headings": str(headings), "Range": "[-128, 127]", "Units": "Normalized"},
            device_attrs={"SensorStreamer class name": "MyoStreamer"},
        )

    def add_activity_stream(self, activities: list[str]) -> None:
        """Create the `experiment-activities/activities` label stream."""
        self.add_stream(
            ACTIVITY_GROUP, (4,), "S500",
            attrs={"Data headings": str(ACTIVITY_HEADINGS), "Description": "The activity being performed."},
            device_attrs={"Activities": str(list(activities)),
                          "SensorStreamer class name": "ExperimentControlStreamer"},
            chunk_rows=64,
        )

    def add_video_timestamp_stream(self) -> None:
        """Create the world-camera frame-timestamp stream (row i = frame i of the mp4)."""
        self.add_stream(
            VIDEO_TIMESTAMP_GROUP, (1,), "f8",
            attrs={"Data headings": str(["frame_timestamp"])},
            device_attrs={"SensorStreamer class name": "PupilStreamer"},
        )

    # -- appending ---------------------------------------------------------------------------------
    def append(self, group: str, data: np.ndarray, time_s: np.ndarray) -> None:
        """Append rows to a stream; `time_s` has one epoch time per row."""
        stream = self._file[group]
        data = np.asarray(data)
        time_s = np.asarray(time_s, dtype="f8").reshape(-1, 1)
        if len(data) != len(time_s):
            raise ValueError(f"{group}: {len(data)} rows of data but {len(time_s)} timestamps")
        start = stream["time_s"].shape[0]
        stop = start + len(time_s)
        for name, rows in (("data", data), ("time_s", time_s), ("time_str", time_strings(time_s))):
            dataset = stream[name]
            dataset.resize(stop, axis=0)
            if h5py.check_vlen_dtype(dataset.dtype) is not None:
                # row by row: a slice assignment reads equal-length rows as one 2-D array and fails
                for index, row in enumerate(rows, start):
                    dataset[index] = row
            else:
                dataset[start:stop] = rows

    def rewrite_rows(self, group: str, first: int, data: np.ndarray) -> None:
        """Overwrite the data of rows `first`, `first` + 1, ... of a stream (their times stay)."""
        dataset = self._file[group]["data"]
        data = np.asarray(data)
        if first < 0 or first + len(data) > dataset.shape[0]:
            raise ValueError(f"{group}: rows {first}..{first + len(data) - 1} do not exist "
                             f"({dataset.shape[0]} rows)")
        dataset[first:first + len(data)] = data

    def append_activity(
        self, activity: str, start_stop: str, time_s: float, validity: str = "Good", notes: str = ""
    ) -> None:
        """Append one label button press: `[activity, Start|Stop, Good|Maybe|Bad, notes]`."""
        row = np.array([[activity.encode(), start_stop.encode(), validity.encode(), notes.encode()]], "S500")
        self.append(ACTIVITY_GROUP, row, np.array([time_s]))

    def flush(self) -> None:
        self._file.flush()

    def size_bytes(self) -> int:
        """The file's size as HDF5 knows it (space reserved beyond it by the caller is not counted)."""
        return int(self._file.id.get_filesize())

    def close(self, *, keep: bool = True) -> None:
        """Close the file; a `whole` file is then written to its path, unless `keep` is False (a failed write)."""
        if not self._file.id.valid:
            return
        try:
            if self.whole and keep:
                save_in_memory_hdf5(self._file, self.path)
        finally:
            self._file.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.close(keep=kind is None)


def in_memory_hdf5(path: Path, **options: str) -> h5py.File:
    """A new HDF5 file held in memory until `save_in_memory_hdf5` writes it to `path` whole.

    HDF5 writing into a file on a full disk fails inside the library, leaves a damaged file and has crashed the
    process outright; built in memory, the library never meets the disk. The finished image is written by
    Python, whose failures are ordinary errors, under a temporary name that replaces `path` only when complete.
    """
    return h5py.File(Path(path).name, "w", driver="core", backing_store=False, **options)


def save_in_memory_hdf5(handle: h5py.File, path: Path) -> None:
    """Write an `in_memory_hdf5` file to `path` in one piece (the handle stays open: the caller closes it)."""
    handle.flush()
    write_bytes_replacing(path, handle.id.get_file_image())
