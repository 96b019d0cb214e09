"""Reader for ActionSense session files (the recorder's HDF5 layout, plus the world-camera video).

The reader is lazy: opening a session reads only the file's structure, and each accessor reads just the
datasets it needs, so one stream of a 4 GB session costs the memory of that stream. Every problem with a
file raises :class:`~myosight.errors.SessionFormatError` naming the file and the field at fault.

Decisions (see docs/data-formats.md):
- Myo EMG must have 8 channels per arm; timestamps must not decrease. Rows with time 0 at the end of a
  stream are an unfinished log and are trimmed with a warning; a zero time elsewhere is an error.
- Labels: rows with time 0 are ignored; each Start is paired with the next Stop; a pair is kept only
  when both presses are rated Good; old activity spellings are mapped to the current ones. A Stop without
  a Start, or a Stop of another activity than the open one, is an error.
- A session with one arm only is usable: `arms` lists what is present and `emg_pair(allow_missing=True)`
  marks the absent arm as missing; by default a missing arm is refused with a message naming it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from myosight.constants import ARMS, CHANNELS_PER_ARM
from myosight.data.activities import canonical_activity
from myosight.data.layout import ACTIVITY_GROUP, EMG_GROUPS, VIDEO_TIMESTAMP_GROUP
from myosight.errors import MissingStreamError, SessionFormatError
from myosight.paths import not_a_file_reason

log = logging.getLogger(__name__)

_SUBJECT_PATTERN = re.compile(r"\b(S\d{2})(?:_|\b)")


@dataclass(frozen=True)
class TimeSeries:
    """Samples of one stream with their epoch timestamps (seconds)."""

    time_s: np.ndarray  # (N,) float64, non-decreasing
    data: np.ndarray  # (N, ...) as stored
    source: str  # "<file>:<group>", for messages

    def __len__(self) -> int:
        return len(self.time_s)

    def measured_rate_hz(self, max_gap_s: float = 0.5) -> float:
        """Samples per second over the recorded spans, ignoring gaps longer than `max_gap_s`."""
        return measured_rate_hz(self.time_s, max_gap_s)


@dataclass(frozen=True)
class Action:
    """One labelled action: a Good Start/Stop pair."""

    label: str  # current spelling
    start_s: float
    stop_s: float
    index: int  # position among the session's kept actions

    @property
    def duration_s(self) -> float:
        return self.stop_s - self.start_s


@dataclass(frozen=True)
class EmgPair:
    """Both arms' EMG of a session; an absent arm is None and listed in `missing`."""

    left: TimeSeries | None
    right: TimeSeries | None

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(arm for arm in ARMS if getattr(self, arm) is None)


def _damaged_file_errors(method: Callable) -> Callable:
    """Report what h5py raises on a damaged structure (OSError, RuntimeError) as a SessionFormatError."""

    @functools.wraps(method)
    def guarded(self: ActionSenseSession, *args: object, **kwargs: object) -> object:
        try:
            return method(self, *args, **kwargs)
        except (OSError, RuntimeError) as error:
            raise SessionFormatError(self.path, f"damaged HDF5 file ({type(error).__name__}: {error})") from error

    return guarded


def measured_rate_hz(time_s: np.ndarray, max_gap_s: float = 0.5) -> float:
    """Rate measured from timestamps: samples per second of recorded time, gaps excluded."""
    if len(time_s) < 2:
        return 0.0
    steps = np.diff(np.asarray(time_s, dtype=np.float64))
    recorded = steps[steps <= max_gap_s]
    duration = float(recorded.sum())
    return len(recorded) / duration if duration > 0 else 0.0


class ActionSenseSession:
    """One recorded session, opened lazily. Use as a context manager or call `close()`."""

    def __init__(self, path: str | Path, video: str | Path | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SessionFormatError(self.path, not_a_file_reason(self.path))
        if video is not None and not Path(video).is_file():
            raise SessionFormatError(video, f"world video: {not_a_file_reason(video)}")
        if not h5py.is_hdf5(self.path):
            raise SessionFormatError(self.path, "not an HDF5 file (expected an ActionSense .hdf5 session)")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise SessionFormatError(self.path, f"cannot open HDF5 file, truncated or damaged ({error})") from error
        self.video_path = Path(video) if video is not None else find_world_video(self.path)

    # -- context management ------------------------------------------------------------------------
    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> ActionSenseSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- structure ---------------------------------------------------------------------------------
    @property
    @_damaged_file_errors
    def subject(self) -> str | None:
        """Subject id from the file's `Subject` attribute, else from an `Sxx` in the path."""
        if "Subject" in self._file.attrs:
            return _as_str(self._file.attrs["Subject"])
        for part in reversed(self.path.parts):
            match = _SUBJECT_PATTERN.search(part)
            if match:
                return match.group(1)
        return None

    @_damaged_file_errors
    def streams(self) -> dict[str, int]:
        """Every `<device>/<stream>` group holding a `time_s` dataset, with its number of rows."""
        found: dict[str, int] = {}

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Group) and isinstance(obj.get("time_s"), h5py.Dataset):
                shape = obj["time_s"].shape
                found[name] = int(shape[0]) if shape else 1  # a scalar is one timestamp

        try:
            self._file.visititems(visit)
        except (OSError, RuntimeError, KeyError) as error:
            raise SessionFormatError(self.path, f"damaged HDF5 structure ({error})") from error
        return found

    @_damaged_file_errors
    def attrs(self, group: str) -> dict[str, str]:
        """A group's attributes as strings (the recorder stores every attribute as a string)."""
        return {key: _as_str(value) for key, value in self._group(group).attrs.items()}

    @property
    @_damaged_file_errors
    def arms(self) -> tuple[str, ...]:
        """The arms whose Myo EMG stream is present, in ('left', 'right') order."""
        return tuple(arm for arm in ARMS if EMG_GROUPS[arm] in self._file)

    # -- streams -----------------------------------------------------------------------------------
    @_damaged_file_errors
    def read_stream(self, group: str, start_s: float | None = None, stop_s: float | None = None) -> TimeSeries:
        """Read any stream, optionally only rows with `start_s <= time < stop_s` (reads just that slice)."""
        stream = self._group(group)
        time_s = self._read_times(group, stream)
        data_ds = self._dataset(stream, group, "data")
        if data_ds.ndim == 0:
            raise SessionFormatError(self.path, "expected one row per timestamp, found a scalar", f"{group}/data")
        if data_ds.shape[0] < len(time_s):
            raise SessionFormatError(
                self.path, f"{data_ds.shape[0]} data rows but {len(time_s)} timestamps", f"{group}/data"
            )
        lo = 0 if start_s is None else int(np.searchsorted(time_s, start_s, side="left"))
        hi = len(time_s) if stop_s is None else int(np.searchsorted(time_s, stop_s, side="left"))
        hi = max(lo, hi)
        try:
            data = data_ds[lo:hi]
        except OSError as error:
            raise SessionFormatError(self.path, f"cannot read rows {lo}:{hi} ({error})", f"{group}/data") from error
        return TimeSeries(time_s=time_s[lo:hi], data=data, source=f"{self.path}:{group}")

    @_damaged_file_errors
    def emg(self, arm: str, start_s: float | None = None, stop_s: float | None = None) -> TimeSeries:
        """One arm's Myo EMG: (N, 8) int samples with their timestamps."""
        if arm not in EMG_GROUPS:
            raise ValueError(f"arm must be one of {ARMS}, not {arm!r}")
        group = EMG_GROUPS[arm]
        if group not in self._file:
            present = ", ".join(self.arms) or "none"
            raise MissingStreamError(
                self.path, f"no Myo EMG for the {arm} arm (Myo arms present: {present})", group
            )
        series = self.read_stream(group, start_s, stop_s)
        dtype = series.data.dtype
        if dtype.kind not in "iuf":
            raise SessionFormatError(self.path, f"EMG samples must be numbers, found dtype {dtype}", f"{group}/data")
        if series.data.ndim != 2 or series.data.shape[1] != CHANNELS_PER_ARM:
            raise SessionFormatError(
                self.path,
                f"expected {CHANNELS_PER_ARM} EMG channels per arm, found shape {series.data.shape[1:]}",
                f"{group}/data",
            )
        return series

    @_damaged_file_errors
    def emg_pair(
        self, start_s: float | None = None, stop_s: float | None = None, *, allow_missing: bool = False
    ) -> EmgPair:
        """Both arms' EMG. A missing arm is an error unless `allow_missing`, then it is None."""
        if not self.arms:
            raise MissingStreamError(
                self.path, "no Myo EMG stream (expected groups myo-left/emg and myo-right/emg)", "myo-left/emg"
            )
        series: dict[str, TimeSeries | None] = {}
        for arm in ARMS:
            if arm in self.arms:
                series[arm] = self.emg(arm, start_s, stop_s)
            elif allow_missing:
                series[arm] = None
            else:
                raise MissingStreamError(
                    self.path,
                    f"the {arm} arm's Myo EMG is missing; this session has one arm only "
                    "(pass allow_missing / --allow-missing-arm to use it with the arm marked missing)",
                    EMG_GROUPS[arm],
                )
        return EmgPair(left=series["left"], right=series["right"])

    @_damaged_file_errors
    def video_frame_times(self) -> np.ndarray:
        """Epoch time of every world-camera frame (row i = frame i of the video file)."""
        if VIDEO_TIMESTAMP_GROUP not in self._file:
            raise MissingStreamError(self.path, "no world-camera frame timestamps", VIDEO_TIMESTAMP_GROUP)
        return self._read_times(VIDEO_TIMESTAMP_GROUP, self._file[VIDEO_TIMESTAMP_GROUP])

    # -- labels ------------------------------------------------------------------------------------
    @_damaged_file_errors
    def activities(self) -> list[Action]:
        """The labelled actions, in time order (see the module docstring for the pairing rules)."""
        if ACTIVITY_GROUP not in self._file:
            raise MissingStreamError(self.path, "no activity labels", ACTIVITY_GROUP)
        group = self._file[ACTIVITY_GROUP]
        rows = np.asarray(self._dataset(group, ACTIVITY_GROUP, "data")[()])
        times = self._numbers(self._dataset(group, ACTIVITY_GROUP, "time_s"), f"{ACTIVITY_GROUP}/time_s").reshape(-1)
        if not np.all(np.isfinite(times)):
            raise SessionFormatError(self.path, "label times must be finite numbers", f"{ACTIVITY_GROUP}/time_s")
        if rows.ndim != 2 or rows.shape[1] < 3 or len(rows) != len(times):
            raise SessionFormatError(
                self.path, f"label rows must be (N, 4) with N timestamps, found {rows.shape}",
                f"{ACTIVITY_GROUP}/data",
            )
        return pair_activity_rows(
            [[_as_str(cell) for cell in row] for row in rows], times, source=f"{self.path}"
        )

    # -- helpers -----------------------------------------------------------------------------------
    def _group(self, group: str) -> h5py.Group:
        try:
            node = self._file[group]
        except KeyError:
            raise MissingStreamError(self.path, "no such group", group) from None
        if not isinstance(node, h5py.Group):
            raise SessionFormatError(self.path, "expected a group with data/time_s datasets", group)
        return node

    def _dataset(self, stream: h5py.Group, group: str, name: str) -> h5py.Dataset:
        node = stream.get(name)
        if not isinstance(node, h5py.Dataset):
            raise SessionFormatError(self.path, f"missing dataset '{name}'", f"{group}/{name}")
        return node

    def _numbers(self, dataset: h5py.Dataset, field: str) -> np.ndarray:
        """A dataset's values as float64; strings, records or a damaged dataset name the field."""
        if dataset.dtype.kind not in "iuf":
            raise SessionFormatError(self.path, f"expected numbers, found dtype {dataset.dtype}", field)
        try:
            return np.asarray(dataset[()], dtype=np.float64)
        except OSError as error:
            raise SessionFormatError(self.path, f"cannot read the values ({error})", field) from error

    def _read_times(self, group: str, stream: h5py.Group) -> np.ndarray:
        field = f"{group}/time_s"
        time_s = self._numbers(self._dataset(stream, group, "time_s"), field)
        if time_s.ndim > 2 or (time_s.ndim == 2 and time_s.shape[1] == 0):
            raise SessionFormatError(self.path, f"timestamps must be (N,) or (N, 1), found {time_s.shape}", field)
        time_s = time_s[:, 0] if time_s.ndim == 2 else time_s.reshape(-1)
        return check_timestamps(time_s, self.path, field)


def check_timestamps(time_s: np.ndarray, path: str | Path, field: str) -> np.ndarray:
    """Validate a stream's timestamps; trim the trailing zero rows of an unfinished log."""
    if not np.all(np.isfinite(time_s)):
        bad = int(np.flatnonzero(~np.isfinite(time_s))[0])
        raise SessionFormatError(path, f"timestamp of row {bad} is not finite", field)
    zeros = np.flatnonzero(time_s == 0)
    if len(zeros):
        nonzero = np.flatnonzero(time_s != 0)
        last_valid = int(nonzero[-1]) if len(nonzero) else -1
        if np.any(zeros < last_valid):
            raise SessionFormatError(path, f"timestamp of row {int(zeros[0])} is zero (inside the recording)", field)
        log.warning("%s [%s]: trimming %d trailing rows with time 0 (unfinished log)", path, field, len(zeros))
        time_s = time_s[: last_valid + 1]
    backwards = np.flatnonzero(np.diff(time_s) < 0)
    if len(backwards):
        row = int(backwards[0]) + 1
        raise SessionFormatError(
            path,
            f"timestamps go backwards at row {row} ({time_s[row - 1]:.6f} -> {time_s[row]:.6f})",
            field,
        )
    return time_s


def pair_activity_rows(rows: list[list[str]], times: np.ndarray, source: str = "labels") -> list[Action]:
    """Pair Start/Stop label rows into actions; keep a pair only when both presses are rated Good."""
    order = np.argsort(times, kind="stable")
    open_row: tuple[str, float, str] | None = None
    actions: list[Action] = []
    for i in order:
        if times[i] == 0:
            continue  # unfinished log
        label, kind, validity = canonical_activity(rows[i][0]), rows[i][1].strip(), rows[i][2].strip()
        if not label.strip():
            raise SessionFormatError(source, f"label row {i}: the activity has no name", ACTIVITY_GROUP)
        if kind == "Start":
            if open_row is not None:
                log.warning("%s: '%s' started at %.3f was never stopped; discarding it", source, *open_row[:2])
            open_row = (label, float(times[i]), validity)
        elif kind == "Stop":
            if open_row is None:
                raise SessionFormatError(source, f"label row {i}: Stop of '{label}' without a Start", ACTIVITY_GROUP)
            if open_row[0] != label:
                raise SessionFormatError(
                    source, f"label row {i}: Stop of '{label}' while '{open_row[0]}' is open", ACTIVITY_GROUP
                )
            if open_row[2] == "Good" and validity == "Good":
                actions.append(Action(label, open_row[1], float(times[i]), index=len(actions)))
            open_row = None
        else:
            raise SessionFormatError(source, f"label row {i}: expected Start or Stop, found '{kind}'", ACTIVITY_GROUP)
    return actions


def find_world_video(hdf5_path: Path) -> Path | None:
    """The world-camera mp4 beside a session, matched by the session's date-time prefix."""
    prefix = hdf5_path.name[:19]  # YYYY-mm-dd_HH-MM-SS
    candidates = sorted(hdf5_path.parent.glob(f"{prefix}*eye-tracking-video-world*.mp4"))
    return candidates[0] if candidates else None


def _as_str(value: object) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return str(value)
