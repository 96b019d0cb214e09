"""Import a folder of per-repetition CSV recordings (`R_<rep>_C_<class>.csv`) as one ActionSense-layout session.

Many public and home-made Myo recordings are kept as one CSV file per repetition and class: each row one
sample, 8 comma-separated channels, no header. myosight reads sessions only (one HDF5 file with timestamped
EMG and Start/Stop labels), so this importer lays the files end to end in a session: rep 0 class 0, rep 0
class 1, ..., rep 1 class 0, ..., each file one Good-rated activity from its first to its last sample,
separated by `gap_s` seconds without samples (a true rest: the sEMG pipeline does not interpolate across gaps
longer than 0.1 s). Timestamps are evenly spaced at the rate the user gives, since the files carry none.

The importer is strict about values: the session stores Myo samples (int32 in [-128, 127]), so a file with
fractional or out-of-range values is refused rather than silently rounded or clipped.

`write_recordings` is the part shared with the other importers: consecutive recordings of one arm written
as one session, whole or not at all.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myosight.constants import ARMS, CHANNELS_PER_ARM
from myosight.errors import ConfigError, SessionFormatError
from myosight.paths import file_name_problem

log = logging.getLogger(__name__)

#: Myo EMG values: what a session's int32 EMG stream holds.
MYO_MIN, MYO_MAX = -128, 127
#: The Myo armband's EMG rate, the default for files that do not say theirs.
DEFAULT_RATE_HZ = 200.0
#: Seconds without samples between two consecutive recordings (a rest the pipeline does not bridge).
DEFAULT_GAP_S = 1.0
#: 2020-01-01 10:00:00 UTC: a fixed start, so importing the same folder twice gives the same file.
DEFAULT_START_S = 1577872800.0
#: The file names the importer reads.
CSV_PATTERN = re.compile(r"^R_(\d+)_C_(\d+)\.csv$")
SOURCE = "LibEMG-style CSV folder"


# -- the writer shared by the importers -------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One recording to lay into a session: its activity name and its (n, 8) integer samples."""

    label: str
    data: np.ndarray
    source: str  # the file or archive key it came from, for messages


@dataclass(frozen=True)
class ImportedSession:
    """What an importer wrote: the session file and the facts an index or a summary line needs."""

    path: Path
    subject: str
    recordings: int
    samples: int
    start_s: float
    attrs: Mapping[str, str]


def recording_times(lengths: Sequence[int], *, rate_hz: float, start_s: float, gap_s: float) -> list[np.ndarray]:
    """Evenly spaced timestamps for consecutive recordings, `gap_s` of silence between one and the next.

    Each recording's times are computed from the session start (not accumulated step by step), so a long
    session has no drift from rounding.
    """
    times: list[np.ndarray] = []
    before = 0  # samples of the recordings already laid out
    for index, length in enumerate(lengths):
        times.append(start_s + (before + np.arange(length)) / rate_hz + index * gap_s)
        before += length
    return times


def write_recordings(
    path: str | Path,
    recordings: Sequence[Recording],
    *,
    arm: str,
    rate_hz: float,
    start_s: float,
    gap_s: float,
    activities: Sequence[str],
    file_attrs: Mapping[str, str],
) -> int:
    """Write consecutive recordings of one arm as a session file; return the number of samples written.

    The file appears only when complete (written under a temporary name, then moved into place), so an
    interrupted import never leaves a session the reader would half-read.
    """
    from myosight.data.layout import EMG_GROUPS, SessionWriter

    times = recording_times([len(r.data) for r in recordings], rate_hz=rate_hz, start_s=start_s, gap_s=gap_s)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with SessionWriter(path, file_attrs=file_attrs, whole=True) as writer:
        writer.add_emg_stream(arm)
        writer.add_activity_stream(list(activities))
        data = np.concatenate([np.asarray(r.data, dtype=np.int32) for r in recordings])
        writer.append(EMG_GROUPS[arm], data, np.concatenate(times))
        for recording, stamps in zip(recordings, times, strict=True):
            writer.append_activity(recording.label, "Start", float(stamps[0]), "Good")
            writer.append_activity(recording.label, "Stop", float(stamps[-1]), "Good")
    return len(data)


def check_myo_values(values: np.ndarray, path: str | Path, where: str = "") -> None:
    """Refuse samples outside the Myo range [-128, 127], naming the first one (and its row)."""
    bad = np.argwhere((values < MYO_MIN) | (values > MYO_MAX))
    if len(bad):
        row, column = (int(i) for i in bad[0])
        raise SessionFormatError(
            path, f"{where}value {values[row, column]} at row {row}, channel {column + 1} is outside the Myo "
            f"range [{MYO_MIN}, {MYO_MAX}] ({len(bad)} such values)"
        )


# -- reading the CSV folder -------------------------------------------------------------------------------


def find_recordings(folder: str | Path) -> list[tuple[int, int, Path]]:
    """The folder's `R_<rep>_C_<class>.csv` files as (rep, class, path), in session order (rep, then class)."""
    folder = Path(folder)
    if not folder.is_dir():
        reason = "is a file, not a folder" if folder.exists() else "no such folder"
        raise SessionFormatError(folder, reason)
    found: dict[tuple[int, int], Path] = {}
    for path in sorted(folder.iterdir()):
        match = CSV_PATTERN.match(path.name)
        if not match or not path.is_file():
            continue
        key = (int(match.group(1)), int(match.group(2)))
        if key in found:
            raise SessionFormatError(path, f"rep {key[0]} class {key[1]} is also in {found[key].name}")
        found[key] = path
    if not found:
        raise SessionFormatError(folder, "no recordings found: expected files named R_<rep>_C_<class>.csv "
                                         "(e.g. R_0_C_0.csv)")
    _warn_missing(folder, set(found))
    return [(rep, cls, found[rep, cls]) for rep, cls in sorted(found)]


def _warn_missing(folder: Path, found: set[tuple[int, int]]) -> None:
    """Log the rep/class combinations absent from the grid the file names span (allowed, but worth a look)."""
    reps = range(max(rep for rep, _ in found) + 1)
    classes = range(max(cls for _, cls in found) + 1)
    missing = [f"R_{rep}_C_{cls}" for rep in reps for cls in classes if (rep, cls) not in found]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        log.warning("%s: %d recordings missing from reps 0-%d x classes 0-%d: %s",
                    folder, len(missing), reps[-1], classes[-1], shown)


def read_csv_recording(path: str | Path) -> np.ndarray:
    """One CSV recording as (n, 8) int32 Myo samples; any other content is refused naming file and line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if lines and not lines[-1].strip():
        lines = lines[:-1]  # a blank last line (trailing newline written twice)
    if not lines:
        raise SessionFormatError(path, "empty recording (no samples)")
    rows = [_parse_line(path, number, line) for number, line in enumerate(lines, start=1)]
    values = np.array(rows, dtype=np.float64)
    _check_integral(path, values)
    return values.astype(np.int32)


def _parse_line(path: Path, number: int, line: str) -> list[float]:
    if not line.strip():
        raise SessionFormatError(path, f"line {number} is empty (every line must be one sample)")
    parts = line.split(",")
    if len(parts) != CHANNELS_PER_ARM:
        raise SessionFormatError(path, f"line {number}: {len(parts)} columns, expected {CHANNELS_PER_ARM} "
                                       "(one per Myo channel)")
    try:
        return [float(part) for part in parts]
    except ValueError:
        if number == 1:
            raise SessionFormatError(path, f"line 1 is not numbers ({line.strip()[:40]!r}); a header row is not "
                                           "allowed, every line must be one sample") from None
        raise SessionFormatError(path, f"line {number}: not numbers ({line.strip()[:40]!r})") from None


def _check_integral(path: Path, values: np.ndarray) -> None:
    """Myo samples are integers in [-128, 127]; anything else means the file holds other data."""
    not_integral = ~np.isfinite(values) | (values != np.round(values))
    out_of_range = (values < MYO_MIN) | (values > MYO_MAX)
    bad = np.argwhere(not_integral | out_of_range)
    if len(bad):
        row, column = (int(i) for i in bad[0])
        raise SessionFormatError(
            path, f"line {row + 1}, column {column + 1}: value {values[row, column]:g} is not a Myo sample; the "
            f"importer expects integer samples in [{MYO_MIN}, {MYO_MAX}] (raw Myo EMG), not scaled or filtered data"
        )


# -- the import -------------------------------------------------------------------------------------------


def class_names(classes: Sequence[str] | None, indices: Sequence[int]) -> list[str]:
    """Names for class indices 0..K-1: the user's (which must cover every index found) or `class <i>`."""
    count = max(indices) + 1
    if classes is None:
        return [f"class {i}" for i in range(count)]
    names = [str(name).strip() for name in classes]
    if len(names) < count:
        raise ConfigError(f"classes: {len(names)} names given but the files use class indices 0-{count - 1} "
                          f"(give {count} names, in class order)")
    if any(not name for name in names):
        raise ConfigError("classes: a class name is empty")
    if len(set(names)) != len(names):
        raise ConfigError(f"classes: a name is given twice ({', '.join(names)})")
    return names


def _check_options(arm: str, rate_hz: float, gap_s: float, start_s: float) -> None:
    if arm not in ARMS:
        raise ConfigError(f"arm must be one of {', '.join(ARMS)}, not {arm!r}")
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ConfigError(f"rate_hz must be a positive number, not {rate_hz!r}")
    if not (math.isfinite(gap_s) and gap_s >= 0):
        raise ConfigError(f"gap_s must be a number of seconds from 0, not {gap_s!r}")
    if not (math.isfinite(start_s) and start_s > 0):
        raise ConfigError(f"start_s must be positive epoch seconds, not {start_s!r}")


def import_libemg_csv(
    folder: str | Path,
    out_dir: str | Path,
    *,
    rate_hz: float = DEFAULT_RATE_HZ,
    arm: str = "right",
    classes: Sequence[str] | None = None,
    subject: str | None = None,
    gap_s: float = DEFAULT_GAP_S,
    start_s: float | None = None,
    force: bool = False,
) -> ImportedSession:
    """Write the folder's CSV recordings as one session in `out_dir` and return what was written.

    Every file is read and checked before anything is written, so a bad file leaves `out_dir` untouched.
    An existing session file of the same name is refused unless `force`.
    """
    from myosight.data.layout import session_filename

    folder = Path(folder)
    start_s = DEFAULT_START_S if start_s is None else float(start_s)
    _check_options(arm, float(rate_hz), float(gap_s), start_s)
    subject = subject if subject is not None else folder.resolve().name
    problem = file_name_problem(subject)
    if problem:
        raise ConfigError(f"subject {subject!r} cannot be part of a file name: {problem}")
    found = find_recordings(folder)
    names = class_names(classes, [cls for _, cls, _ in found])
    recordings = [Recording(names[cls], read_csv_recording(path), str(path)) for _, cls, path in found]
    path = Path(out_dir) / session_filename(start_s, f"{subject}-libemg")
    if path.exists() and not force:
        raise SessionFormatError(path, "already exists (pass force / --force to replace it)")
    attrs = {"Subject": subject, "Source": SOURCE, "Source folder": str(folder.resolve()),
             "Rate (Hz)": f"{float(rate_hz):g}", "Gap (s)": f"{float(gap_s):g}"}
    samples = write_recordings(path, recordings, arm=arm, rate_hz=float(rate_hz), start_s=start_s,
                               gap_s=float(gap_s), activities=names, file_attrs=attrs)
    return ImportedSession(path, subject, len(recordings), samples, start_s, attrs)
