"""Import the MyoArmbandDataset (Côté-Allard et al.) as ActionSense-layout sessions, one per person and round.

The dataset is real Myo EMG of 40 people: one armband on the right forearm, 8 channels at 200 Hz, 7 hand
and wrist gestures held about 5 s each, 4 cycles of the 7 gestures per round (28 recordings, `classe_0` to
`classe_27`: gesture I % 7, cycle I // 7). It is published as a folder tree of raw `.dat` files
(`ROOT/<split>/<person>/<round>/classe_<I>.dat`, little-endian int16, 8 channels interleaved) and exists
repacked as one npz archive (keys `<split>/<person>/<round>/classe_<I>`, (n, 8) int8). Both forms import to
the same sessions.

Each session holds the right arm's EMG only (no video) and one Good-rated activity per recording, named by
its gesture. The recordings of a round follow each other without a rest, so their samples are laid end to
end at 200 Hz. The files carry no clock, so every round starts at a fixed time (2019-01-01 10:00:00 UTC, plus
15 minutes per round: training0, Test0, Test1, the order they were recorded in on one day): importing twice
gives identical files. Different people may share times; their sessions live in their own folders.

Everything is read and checked before the first file is written, so a damaged input leaves the output
folder untouched; each session file is written whole or not at all.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myosight.constants import CHANNELS_PER_ARM
from myosight.data.import_libemg import ImportedSession, Recording, check_myo_values, write_recordings
from myosight.errors import ConfigError, SessionFormatError
from myosight.paths import file_name_problem, write_text_replacing

log = logging.getLogger(__name__)

#: The gestures in class order (gesture index = file index % 7).
GESTURES: tuple[str, ...] = ("Neutral", "Radial deviation", "Wrist flexion", "Ulnar deviation",
                             "Wrist extension", "Hand close", "Hand open")
SPLITS: tuple[str, ...] = ("EvaluationDataset", "PreTrainingDataset")
#: Short names the CLI's --split accepts.
SPLIT_ALIASES: dict[str, str] = {"evaluation": "EvaluationDataset", "pretraining": "PreTrainingDataset"}
#: The rounds in recording order (each person's rounds were recorded on one day, in this order).
ROUNDS: tuple[str, ...] = ("training0", "Test0", "Test1")
FILES_PER_ROUND = 28
RATE_HZ = 200.0
ARM = "right"
#: 2019-01-01 10:00:00 UTC, the start of every person's first round.
BASE_START_S = 1546336800.0
ROUND_SPACING_S = 15 * 60.0
SOURCE = "MyoArmbandDataset (Côté-Allard et al.)"
INDEX_NAME = "index.json"

_KEY = re.compile(r"^([^/]+)/([^/]+)/([^/]+)/classe_(\d+)$")
_DAT = re.compile(r"^classe_(\d+)\.dat$")


@dataclass(frozen=True)
class RoundSource:
    """Where one round of one person lives: an npz archive (keys) or a folder of `.dat` files."""

    split: str
    person: str
    round: str
    files: dict[int, str]  # file index -> npz key or .dat path
    origin: Path  # the npz archive or the round's folder, for messages


def round_start_time(round_name: str) -> float:
    """The fixed epoch start of a round: the base time plus 15 minutes per earlier round."""
    return BASE_START_S + ROUNDS.index(round_name) * ROUND_SPACING_S


def gesture_of(index: int) -> str:
    """The gesture of file `classe_<index>`: the 7 gestures repeat in order, 4 cycles per round."""
    return GESTURES[index % len(GESTURES)]


# -- finding the rounds ---------------------------------------------------------------------------------


def _person_order(name: str) -> tuple[str, int, str]:
    """Female2 before Female10: the name's letters, then its number."""
    match = re.match(r"^(\D*)(\d+)$", name)
    return (match.group(1), int(match.group(2)), name) if match else (name, -1, name)


def _round_order(source: RoundSource) -> tuple[int, tuple[str, int, str], int]:
    return SPLITS.index(source.split), _person_order(source.person), ROUNDS.index(source.round)


def _keep_known(found: Iterable[RoundSource]) -> list[RoundSource]:
    """Rounds of the known splits and rounds, in import order; anything else is reported and skipped."""
    kept = []
    for source in found:
        problem = file_name_problem(source.person)
        if problem:  # the name becomes a folder of the output: no '..', no separators
            raise SessionFormatError(source.origin, f"person {source.person!r} cannot name a folder: {problem}")
        if source.split in SPLITS and source.round in ROUNDS:
            kept.append(source)
        else:
            log.warning("%s: skipping %s/%s/%s (not a split and round of the dataset)",
                        source.origin, source.split, source.person, source.round)
    return sorted(kept, key=_round_order)


def npz_rounds(path: Path) -> list[RoundSource]:
    """The rounds in an npz archive, from its key names alone (no array is read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name.removesuffix(".npy") for name in archive.namelist()]
    except (zipfile.BadZipFile, OSError) as error:
        raise SessionFormatError(path, f"not an npz archive ({error})") from error
    grouped: dict[tuple[str, str, str], dict[int, str]] = {}
    for name in names:
        match = _KEY.match(name)
        if match:
            split, person, round_, index = match.groups()
            grouped.setdefault((split, person, round_), {})[int(index)] = name
    if not grouped:
        raise SessionFormatError(path, "no key of the form SPLIT/PERSON/ROUND/classe_I (e.g. "
                                       "EvaluationDataset/Male0/training0/classe_0): not the MyoArmbandDataset")
    return _keep_known(RoundSource(split, person, round_, files, path)
                       for (split, person, round_), files in grouped.items())


def folder_rounds(root: Path) -> list[RoundSource]:
    """The rounds under ROOT (holding one or both split folders) or under a split folder itself."""
    split_dirs = [root] if root.name in SPLITS else [root / split for split in SPLITS if (root / split).is_dir()]
    if not split_dirs:
        raise SessionFormatError(root, f"expected a folder holding {' and/or '.join(SPLITS)}, or one of them")
    found = []
    for split_dir in split_dirs:
        for person_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for round_dir in sorted(p for p in person_dir.iterdir() if p.is_dir()):
                files = {int(m.group(1)): str(p) for p in round_dir.iterdir() if (m := _DAT.match(p.name))}
                if files:
                    found.append(RoundSource(split_dir.name, person_dir.name, round_dir.name, files, round_dir))
    if not found:
        raise SessionFormatError(root, "no round folder with classe_<I>.dat files found "
                                       "(expected SPLIT/PERSON/ROUND/classe_0.dat ...)")
    return _keep_known(found)


def find_rounds(source: str | Path) -> list[RoundSource]:
    """Every round of the dataset at `source` (an npz archive or the original folder tree)."""
    path = Path(source)
    if not path.exists():
        raise SessionFormatError(path, "no such file or folder")
    return folder_rounds(path) if path.is_dir() else npz_rounds(path)


def select_rounds(
    rounds: Sequence[RoundSource],
    splits: Sequence[str] | None = None,
    people: Sequence[str] | None = None,
    round_names: Sequence[str] | None = None,
) -> list[RoundSource]:
    """The rounds the user asked for; a split, person or round that is not in the data is a ConfigError."""
    wanted_splits = _canonical_splits(splits)
    for name in round_names or ():
        if name not in ROUNDS:
            raise ConfigError(f"round {name!r} is not a round of the dataset (rounds: {', '.join(ROUNDS)})")
    in_splits = [r for r in rounds if r.split in wanted_splits]
    if not in_splits:
        raise ConfigError(f"the input holds no round of {' or '.join(wanted_splits)}")
    known_people = {r.person for r in in_splits}
    unknown = [name for name in people or () if name not in known_people]
    if unknown:
        listed = ", ".join(sorted(known_people, key=_person_order))
        raise ConfigError(f"person {unknown[0]!r} is not in {' or '.join(wanted_splits)} (people: {listed})")
    chosen = [r for r in in_splits if (not people or r.person in people)
              and (not round_names or r.round in round_names)]
    if not chosen:
        raise ConfigError(f"nothing to import: no round {', '.join(round_names or ROUNDS)} of "
                          f"{', '.join(people or ['anyone'])} in {' or '.join(wanted_splits)}")
    return chosen


def _canonical_splits(splits: Sequence[str] | None) -> list[str]:
    if not splits:
        return list(SPLITS)
    out = []
    for name in splits:
        canonical = SPLIT_ALIASES.get(name.lower(), name)
        if canonical not in SPLITS:
            raise ConfigError(f"split {name!r} is not a split of the dataset "
                              f"(splits: {', '.join(SPLITS)}, or evaluation / pretraining)")
        out.append(canonical)
    return out


# -- reading one round ----------------------------------------------------------------------------------


def read_dat(path: str | Path) -> np.ndarray:
    """One `.dat` recording as (n, 8) int8: little-endian int16, 8 channels interleaved, Myo-range values."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise SessionFormatError(path, "empty recording (0 bytes)")
    row_bytes = 2 * CHANNELS_PER_ARM
    if size % row_bytes:
        raise SessionFormatError(path, f"{size} bytes is not a whole number of samples ({row_bytes} bytes each: "
                                       f"{CHANNELS_PER_ARM} little-endian int16 channels); truncated file?")
    values = np.fromfile(path, dtype="<i2").reshape(-1, CHANNELS_PER_ARM)
    check_myo_values(values, path)
    return values.astype(np.int8)


def _check_array(values: np.ndarray, origin: Path, key: str) -> np.ndarray:
    """An archive's recording must be (n >= 1, 8) integers in the Myo range."""
    if values.dtype.kind not in "iu" or values.ndim != 2 or values.shape[1] != CHANNELS_PER_ARM:
        raise SessionFormatError(origin, f"expected (n, {CHANNELS_PER_ARM}) integer samples, found "
                                         f"{values.dtype} {values.shape}", key)
    if len(values) == 0:
        raise SessionFormatError(origin, "empty recording (no samples)", key)
    check_myo_values(values, origin, f"{key}: ")
    return values.astype(np.int8)


def _check_complete(source: RoundSource) -> None:
    missing = [i for i in range(FILES_PER_ROUND) if i not in source.files]
    if missing:
        first = f"classe_{missing[0]}"
        if source.origin.is_dir():
            raise SessionFormatError(source.origin / f"{first}.dat", f"missing ({len(missing)} of the round's "
                                     f"{FILES_PER_ROUND} files classe_0 ... classe_{FILES_PER_ROUND - 1} are missing)")
        raise SessionFormatError(source.origin, f"{source.split}/{source.person}/{source.round}/{first} is missing "
                                 f"({len(missing)} of the round's {FILES_PER_ROUND} recordings are missing)")
    extra = sorted(set(source.files) - set(range(FILES_PER_ROUND)))
    if extra:
        log.warning("%s: ignoring classe_%s (a round has classe_0 ... classe_%d)",
                    source.origin, extra[0], FILES_PER_ROUND - 1)


def read_round(source: RoundSource, archive: Mapping[str, np.ndarray] | None = None) -> list[Recording]:
    """The 28 recordings of a round, checked, in file order; `archive` is the open npz for npz rounds."""
    _check_complete(source)
    recordings = []
    for index in range(FILES_PER_ROUND):
        where = source.files[index]
        values = read_dat(where) if archive is None else _check_array(archive[where], source.origin, where)
        recordings.append(Recording(gesture_of(index), values, where))
    return recordings


# -- the import -----------------------------------------------------------------------------------------


def _session_path(out_dir: Path, source: RoundSource) -> Path:
    from myosight.data.layout import session_filename

    name = session_filename(round_start_time(source.round), f"{source.person}-{source.round}")
    return out_dir / source.split / source.person / name


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SessionFormatError(out_dir, "is a file, not an output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise SessionFormatError(out_dir, "output folder exists and is not empty (pass force / --force to "
                                          "write into it, replacing the sessions of the same names)")


def _read_all(chosen: Sequence[RoundSource], source: Path) -> list[list[Recording]]:
    """Read and check every chosen round before anything is written."""
    if source.is_dir():
        return [read_round(r) for r in chosen]
    with np.load(source) as archive:
        return [read_round(r, archive) for r in chosen]


def _write_round(out_dir: Path, source: RoundSource, recordings: list[Recording]) -> ImportedSession:
    path = _session_path(out_dir, source)
    start_s = round_start_time(source.round)
    attrs = {"Subject": source.person, "Source": SOURCE, "Split": source.split, "Round": source.round}
    samples = write_recordings(path, recordings, arm=ARM, rate_hz=RATE_HZ, start_s=start_s, gap_s=0.0,
                               activities=GESTURES, file_attrs=attrs)
    return ImportedSession(path, source.person, len(recordings), samples, start_s, attrs)


def index_entry(session: ImportedSession, out_dir: Path) -> dict:
    """One session's line in OUT/index.json."""
    return {"split": session.attrs["Split"], "person": session.subject, "round": session.attrs["Round"],
            "path": session.path.relative_to(out_dir).as_posix(), "arms": [ARM], "rate_hz": RATE_HZ,
            "gestures": list(GESTURES), "recordings": session.recordings, "samples": session.samples}


def import_myoarmband(
    source: str | Path,
    out_dir: str | Path,
    *,
    splits: Sequence[str] | None = None,
    people: Sequence[str] | None = None,
    rounds: Sequence[str] | None = None,
    force: bool = False,
) -> list[ImportedSession]:
    """Write one session per chosen person and round under `out_dir`, and `out_dir`/index.json listing them.

    `source` is the npz archive or the original folder tree; `splits` (EvaluationDataset, PreTrainingDataset,
    or evaluation / pretraining), `people` and `rounds` narrow the import (default: everything). A non-empty
    `out_dir` is refused unless `force`.
    """
    source, out_dir = Path(source), Path(out_dir)
    chosen = select_rounds(find_rounds(source), splits, people, rounds)
    _check_out_dir(out_dir, force)
    data = _read_all(chosen, source)
    written = [_write_round(out_dir, r, recordings) for r, recordings in zip(chosen, data, strict=True)]
    index = {"source": SOURCE, "sessions": [index_entry(session, out_dir) for session in written]}
    write_text_replacing(out_dir / INDEX_NAME, json.dumps(index, indent=2) + "\n")
    return written
