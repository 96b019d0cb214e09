"""EPIC-Kitchens-55, domain D1 (kitchen P08): reading the annotations and the frames.

The paper's second benchmark is the D1 domain of the multi-modal domain-adaptation split of EPIC-Kitchens-55:
the action segments of participant P08 labelled with the 8 largest verb classes (1543 train, 435 test).
The split is distributed as `D1_train.pkl` / `D1_test.pkl`, each a pickled pandas DataFrame with the columns
uid, video_id, narration, start_timestamp, stop_timestamp, start_frame, stop_frame, participant_id, verb and
verb_class.

Annotation formats:

* CSV with the same columns: the safe primary format, read with the standard library.
* The pickles: a pickle names the callables it wants run, so it is never unpickled plainly. The restricted
  unpickler here resolves only the pandas and numpy reconstruction callables a DataFrame of numbers and
  strings needs (`ALLOWED_PICKLE_GLOBALS`) and refuses every other name before looking it up. Rebuilding
  a DataFrame needs pandas (the extra `epic`); `myosight epic convert D1_train.pkl --out D1_train.csv`
  does that once, after which only the CSV is needed.

Classes: `verb_class` is EPIC-Kitchens-55's verb class id. The 8 D1 classes are ids 0-7 of
EPIC_verb_classes.csv (epic-kitchens-55-annotations): take, put, open, close, wash, cut, mix, pour; the
MM-SADA split's own example row ("close fridge", verb_class 3) agrees.

Frames: EPIC-Kitchens' RGB frames were extracted at 60 fps as `frame_0000000001.jpg`, ... (1-based), and
`start_frame` / `stop_frame` count those frames, so frame n shows time (n - 1) / 60 s of the video. A
video is found as a frames folder `<root>/<participant>/<video_id>/` or `<root>/<video_id>/` (the layout of
the MM-SADA download once its tar files are unpacked), or as a video file `<video_id>.MP4` / `.mp4` in
either place; a video file's own timestamps are used, so its frame rate (59.94 fps for most EPIC videos)
does not matter.

`myosight.training.epic_dataset` turns annotations and frames into a myosight dataset directory.
"""

from __future__ import annotations

import csv
import importlib
import io
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from myosight.errors import ConfigError, MyosightError, SessionFormatError, install_hint

#: EPIC-Kitchens-55 verb classes 0..7, the classes of the D1 domain-adaptation split.
D1_VERBS: tuple[str, ...] = ("take", "put", "open", "close", "wash", "cut", "mix", "pour")
#: The rate at which EPIC-Kitchens-55's RGB frames were extracted; start/stop frames count these frames.
EPIC_FRAME_FPS = 60.0
REQUIRED_COLUMNS = ("uid", "participant_id", "video_id", "verb_class", "start_frame", "stop_frame")
OPTIONAL_COLUMNS = ("narration", "start_timestamp", "stop_timestamp", "verb")
FRAME_PATTERN = re.compile(r"^frame_(\d+)\.jpg$")
VIDEO_SUFFIXES = (".MP4", ".mp4", ".mkv", ".avi", ".mov")


# ---------------------------------------------------------------------------------------------------------
# Annotations


@dataclass(frozen=True)
class EpicSegment:
    """One labelled action segment; frames are 1-based and inclusive at `EPIC_FRAME_FPS`."""

    uid: str
    participant_id: str
    video_id: str
    verb_class: int
    start_frame: int
    stop_frame: int
    verb: str = ""
    narration: str = ""

    def start_s(self, fps: float = EPIC_FRAME_FPS) -> float:
        """When the first frame of the segment is shown."""
        return (self.start_frame - 1) / fps

    def stop_s(self, fps: float = EPIC_FRAME_FPS) -> float:
        """When the last frame of the segment stops being shown."""
        return self.stop_frame / fps


def _integer(value: Any, column: str, row: int, source: Path) -> int:
    try:
        number = float(value)
        if not np.isfinite(number) or number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise SessionFormatError(source, f"row {row}: {column} must be an integer, found {value!r}", column) from None


def segments_from_rows(rows: Sequence[dict[str, Any]], source: Path) -> list[EpicSegment]:
    """Validate annotation rows (dicts keyed by column) and turn them into segments."""
    if rows:
        missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
        if missing:
            raise SessionFormatError(
                source, f"missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}"
            )
    segments = []
    for i, row in enumerate(rows):
        start, stop = (_integer(row[c], c, i, source) for c in ("start_frame", "stop_frame"))
        if start < 1 or stop < start:
            raise SessionFormatError(source, f"row {i}: frames [{start}, {stop}] are not 1-based and increasing")
        segments.append(EpicSegment(
            uid=str(_integer(row["uid"], "uid", i, source)) if _is_number(row["uid"]) else str(row["uid"]),
            participant_id=str(row["participant_id"]), video_id=str(row["video_id"]),
            verb_class=_integer(row["verb_class"], "verb_class", i, source), start_frame=start, stop_frame=stop,
            verb=str(row.get("verb", "") or ""), narration=str(row.get("narration", "") or ""),
        ))
    uids = [s.uid for s in segments]
    if len(set(uids)) != len(uids):
        raise SessionFormatError(source, "uid values are not unique")
    return segments


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SessionFormatError(path, f"cannot read the annotation CSV: {error}") from error


def read_annotations(path: str | Path) -> list[EpicSegment]:
    """Segments from a CSV (primary) or a D1_*.pkl DataFrame pickle (restricted unpickling, needs pandas)."""
    path = Path(path)
    if not path.is_file():
        raise SessionFormatError(path, "annotation file not found")
    if path.suffix.lower() in (".pkl", ".pickle"):
        return segments_from_rows(read_pickle_rows(path), path)
    return segments_from_rows(read_csv_rows(path), path)


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write annotation rows as CSV (required columns first, then the rest in their order)."""
    path = Path(path)
    columns = list(REQUIRED_COLUMNS) + [c for c in (rows[0] if rows else {}) if c not in REQUIRED_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def convert_pickle_to_csv(pickle_path: str | Path, csv_path: str | Path) -> int:
    """Read a D1_*.pkl once with the restricted unpickler and write it as CSV; returns the row count."""
    pickle_path = Path(pickle_path)
    rows = read_pickle_rows(pickle_path)
    segments_from_rows(rows, pickle_path)  # refuse to write a CSV the dataset builder would reject
    write_csv(rows, csv_path)
    return len(rows)


# ---------------------------------------------------------------------------------------------------------
# Restricted unpickling of a pandas DataFrame


class UnsafePickleError(MyosightError):
    """An annotation pickle asked for something other than what rebuilding a DataFrame needs."""


class _PandasMissingError(Exception):
    """An allowed pandas callable was requested but pandas is not installed."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    # Taken from numpy's own reduce output so that numpy 1 (numpy.core) and numpy 2 (numpy._core) pickles
    # both resolve without importing deprecated module paths.
    reconstruct = np.empty(0).__reduce__()[0]
    frombuffer = np.empty(0).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core", "numpy._core"):
        table[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{module}.multiarray", "scalar")] = scalar
        table[(f"{module}.numeric", "_frombuffer")] = frombuffer
    return table


#: Names pickles of older pandas versions use for what now lives elsewhere (old -> current).
PANDAS_RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("pandas.core.frame", "DataFrame"): ("pandas", "DataFrame"),
    ("pandas.core.internals", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals.blocks", "new_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.index", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.index", "Index"): ("pandas", "Index"),
    ("pandas.core.indexes.base", "Index"): ("pandas", "Index"),
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas", "Index"),
    ("pandas.core.indexes.range", "RangeIndex"): ("pandas", "RangeIndex"),
    ("pandas.core.arrays.string_", "StringArray"): ("pandas.arrays", "StringArray"),
    ("pandas.core.arrays.string_", "StringDtype"): ("pandas", "StringDtype"),
    ("__builtin__", "slice"): ("builtins", "slice"),
}

#: Everything a pickled DataFrame of numbers and strings may ask for, and why:
#: DataFrame (the frame, rebuilt from its state), BlockManager and _unpickle_block (its column blocks),
#: _new_Index / Index / RangeIndex (row and column labels), __pyx_unpickle_NDArrayBacked / StringArray /
#: StringDtype (string columns of pandas >= 3), numpy's ndarray / dtype / _reconstruct / _frombuffer /
#: scalar (the arrays inside), _codecs.encode (bytes in protocol-2 pickles) and slice (block positions).
ALLOWED_PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("pandas", "DataFrame"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pandas.arrays", "StringArray"),
    ("pandas", "StringDtype"),
    ("_codecs", "encode"),
    ("builtins", "slice"),
    *_numpy_globals(),
})


class DataFrameUnpickler(pickle._Unpickler):
    """Unpickles a pandas DataFrame of numbers and strings and refuses every other callable.

    The pure-Python unpickler is used because every opcode that can run code goes through `find_class`
    (REDUCE, NEWOBJ, INST, OBJ and BUILD only ever reach objects it returned; extension codes are
    resolved through it too), and because it lets NEWOBJ give pandas' compiled BlockManager the
    constructor arguments that pickles of older pandas versions omit.
    """

    _NUMPY = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        key = PANDAS_RENAMED.get((module, name), (module, name))
        if key not in ALLOWED_PICKLE_GLOBALS:
            raise UnsafePickleError(
                f"refusing to unpickle {module}.{name}: an annotation pickle may only rebuild a pandas DataFrame "
                "of numbers and strings (see myosight.data.epic_kitchens.ALLOWED_PICKLE_GLOBALS)"
            )
        if key in self._NUMPY:
            return self._NUMPY[key]
        if key == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        if key == ("builtins", "slice"):
            return slice
        try:
            return getattr(importlib.import_module(key[0]), key[1])
        except ImportError as error:
            raise _PandasMissingError(str(error)) from error
        except AttributeError as error:
            raise UnsafePickleError(f"{module}.{name} does not exist in the installed pandas") from error

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a pickle with persistent references")

    dispatch: ClassVar[dict[int, Callable]] = pickle._Unpickler.dispatch.copy()

    def _load_newobj(self) -> None:
        args = self.stack.pop()  # type: ignore[attr-defined]
        cls = self.stack.pop()  # type: ignore[attr-defined]
        try:
            obj = cls.__new__(cls, *args)
        except TypeError:
            # Older pandas pickled its BlockManager with no constructor arguments and the blocks in the
            # state; the compiled class of current pandas needs (blocks, axes, verify) to be created.
            if args or cls.__name__ != "BlockManager" or not cls.__module__.startswith("pandas."):
                raise
            obj = cls.__new__(cls, (), [], False)
        self.append(obj)  # type: ignore[attr-defined]

    dispatch[pickle.NEWOBJ[0]] = _load_newobj


def restricted_load_dataframe(path: str | Path) -> Any:
    """Load a DataFrame pickle with `DataFrameUnpickler`; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SessionFormatError(path, f"cannot read the pickle: {error}") from error
    try:
        frame = DataFrameUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except _PandasMissingError as error:
        raise ConfigError(
            f"{path} is a pandas DataFrame pickle and reading it needs pandas ({error}); install the extra "
            f"({install_hint('epic')}) and convert it once with `myosight epic convert`, "
            "or give the same columns as a CSV"
        ) from None
    except Exception as error:  # a damaged or foreign pickle raises many types; report them alike
        raise SessionFormatError(path, f"cannot unpickle the annotations: {type(error).__name__}: {error}") from error
    if type(frame).__name__ != "DataFrame" or not type(frame).__module__.startswith("pandas"):
        raise SessionFormatError(path, f"the pickle holds a {type(frame).__name__}, not a pandas DataFrame")
    return frame


def read_pickle_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a D1_*.pkl as dicts of plain Python values (the uid index becomes a column)."""
    frame = restricted_load_dataframe(path)
    if "uid" not in frame.columns and frame.index.name == "uid":
        frame = frame.reset_index()
    columns = [str(c) for c in frame.columns]
    rows = []
    for values in frame.itertuples(index=False, name=None):
        rows.append({c: (v.item() if isinstance(v, np.generic) else v) for c, v in zip(columns, values, strict=True)})
    return rows


# ---------------------------------------------------------------------------------------------------------
# Frames


def frame_number(name: str) -> int | None:
    match = FRAME_PATTERN.match(name)
    return int(match.group(1)) if match else None


class FrameFolder:
    """A folder of numbered JPEG frames (`frame_0000000001.jpg`, 1-based) at a known rate, read by index.

    Index i is frame number i + 1 and has timestamp i / fps. Frames are BGR uint8 like `VideoFile.read`.
    """

    def __init__(self, path: str | Path, fps: float = EPIC_FRAME_FPS) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SessionFormatError(self.path, "frames folder not found")
        numbers = [n for n in (frame_number(p.name) for p in self.path.iterdir()) if n is not None]
        if not numbers:
            raise SessionFormatError(self.path, "no frame_##########.jpg files in the frames folder")
        self.fps = float(fps)
        self.frame_count = max(numbers)
        self.width = self.height = 0

    def timestamps(self) -> np.ndarray:
        return np.arange(self.frame_count, dtype=np.float64) / self.fps

    def frame_path(self, index: int) -> Path:
        return self.path / f"frame_{index + 1:010d}.jpg"

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at `indices` as (N, H, W, 3) BGR uint8; a missing or unreadable file is named."""
        import cv2

        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        frames: dict[int, np.ndarray] = {}
        for index in dict.fromkeys(wanted.tolist()):
            path = self.frame_path(index)
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR) if 0 <= index < self.frame_count else None
            if frame is None:
                raise SessionFormatError(path, "frame image missing or unreadable", field=f"frame {index + 1}")
            if not self.width:
                self.height, self.width = frame.shape[:2]
            elif frame.shape[:2] != (self.height, self.width):
                raise SessionFormatError(
                    path, f"frame size {frame.shape[1]}x{frame.shape[0]} differs from {self.width}x{self.height}"
                )
            frames[index] = frame
        if not len(wanted):
            return np.zeros((0, max(self.height, 1), max(self.width, 1), 3), np.uint8)
        return np.stack([frames[i] for i in wanted.tolist()])

    def close(self) -> None:
        """Nothing to release; present so a folder and a `VideoFile` can be used alike."""


def locate_video(root: str | Path, participant_id: str, video_id: str) -> Path:
    """The frames folder or video file of `video_id` under `root` (see the module docstring)."""
    root = Path(root)
    places = (root / participant_id, root)
    for place in places:
        folder = place / video_id
        if folder.is_dir():
            return folder
    for place in places:
        for suffix in VIDEO_SUFFIXES:
            if (place / f"{video_id}{suffix}").is_file():
                return place / f"{video_id}{suffix}"
    raise SessionFormatError(
        root, f"no frames folder or video for {video_id} (looked for {participant_id}/{video_id}/, {video_id}/ "
        f"and {video_id}.MP4 / .mp4 in both places)"
    )
