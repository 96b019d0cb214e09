"""Sessions whose layout is sound but whose content is absurd, through every command that learns from or draws a
session's labelled EMG: each is refused in one line naming the file and what is wrong (never a hang, a traceback
or a model trained on zeros), or, where the data is usable, used with a warning.

The sessions are written by the project's own writer (data/layout.py), as a recorder or an importer writes them,
then one thing is made wrong in each.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from myosight.cli import main
from myosight.data.layout import EMG_GROUPS, SessionWriter

T0 = 1_655_159_743.0
RATE_HZ = 160.0
CLASSES = ("Slice bread", "Peel a potato")


def _labels_of(pairs: list[tuple[str, float, float]]) -> list[tuple[str, str, float]]:
    return [row for label, start, stop in pairs for row in ((label, "Start", start), (label, "Stop", stop))]


def _rounds(repetitions: int = 3) -> list[tuple[str, float, float]]:
    """Every class `repetitions` times, 5 s each, a second apart, from 1 s into the EMG."""
    return [(label, T0 + 1 + 6 * (2 * r + i), T0 + 6 + 6 * (2 * r + i)) for r in range(repetitions)
            for i, label in enumerate(CLASSES)]


def write(path: Path, *, seconds: float = 40.0, emg: Callable[[int], np.ndarray] | None = None,
          labels: list[tuple[str, str, float]] | None = None) -> Path:
    """A two-arm session: `seconds` of EMG (random int8-range values unless `emg` makes them) and labels."""
    count = int(seconds * RATE_HZ)
    data = np.random.default_rng(1).integers(-128, 128, (count, 8)) if emg is None else emg(count)
    labels = _labels_of(_rounds()) if labels is None else labels
    with SessionWriter(path) as writer:
        for arm in EMG_GROUPS:
            writer.add_emg_stream(arm)
            if count:
                writer.append(EMG_GROUPS[arm], data, T0 + np.arange(count) / RATE_HZ)
        writer.add_activity_stream(sorted({label for label, _, _ in labels}))
        for label, kind, time_s in labels:
            writer.append_activity(label, kind, time_s, "Good")
    return path


def as_float_emg(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> Path:
    """The session with its EMG stored as float32 (as the recorder stores a live stream's), changed."""
    with h5py.File(path, "r+") as raw:
        for group in EMG_GROUPS.values():
            values = raw[f"{group}/data"][()].astype(np.float32)
            del raw[f"{group}/data"]
            raw[group].create_dataset("data", data=change(values), maxshape=(None, 8))
    return path


#: name -> (how the session is made wrong, what the one-line refusal says)
HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a Stop typed a billion seconds late": (
        lambda p: write(p, labels=_labels_of([*_rounds(1), ("Slice bread", T0 + 20, T0 + 1e9)])),
        "lasts 1e+09 s, more than 3600 s: a label time is wrong"),
    "labels a thousand seconds after the EMG": (
        lambda p: write(p, labels=_labels_of([(label, s + 1000, e + 1000) for label, s, e in _rounds()])),
        "lies outside the EMG"),
    "no EMG at all": (lambda p: write(p, seconds=0), "EMG holds 0 samples"),
    "one EMG sample": (lambda p: write(p, seconds=1 / RATE_HZ), "EMG holds 1 samples"),
    "EMG all NaN": (lambda p: as_float_emg(write(p), lambda v: np.full_like(v, np.nan)),
                    "channel 1 has no finite value"),
    "EMG at the int32 limit": (lambda p: write(p, emg=lambda n: np.full((n, 8), np.iinfo(np.int32).min)),
                               "beyond any EMG device's range"),
    "EMG of 1e30": (lambda p: as_float_emg(write(p), lambda v: np.full_like(v, 1e30)), "beyond any EMG device's range"),
    "an activity without a name": (lambda p: write(p, labels=_labels_of([("", T0 + 1, T0 + 6), *_rounds()])),
                                   "the activity has no name"),
}

#: Each command that takes a session's labelled EMG; SESSION, OUT and BUNDLE are filled in.
COMMANDS: dict[str, list[str]] = {
    "dataset": ["dataset", "SESSION", "--out", "OUT/data"],
    "emg spectrograms": ["emg", "spectrograms", "SESSION", "--out", "OUT/spectrograms.png"],
    "subactions": ["subactions", "SESSION"],
    "calibrate --from": ["calibrate", "--from", "SESSION", "--emg-only", "--base", "BUNDLE", "--headless", "--out",
                         "OUT/me"],
}


def _run(command: str, session: Path, out: Path, bundle: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    argv = [word.replace("SESSION", str(session)).replace("OUT", str(out)).replace("BUNDLE", str(bundle))
            for word in COMMANDS[command]]
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(HOSTILE))
def test_an_absurd_session_is_refused_in_one_line(case: str, command: str, tmp_path: Path,
                                                  synthetic_emg_model: dict, capsys: pytest.CaptureFixture) -> None:
    make, reason = HOSTILE[case]
    session = make(tmp_path / "session.hdf5")
    out = tmp_path / "out"
    out.mkdir()
    code, err = _run(command, session, out, synthetic_emg_model["bundle"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"myosight: error: {session}") and reason in lines[0], lines[0]
    assert list(out.iterdir()) == []  # nothing written


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_session_with_some_nan_values_is_used_with_a_warning(command: str, tmp_path: Path,
                                                               synthetic_emg_model: dict,
                                                               capsys: pytest.CaptureFixture,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Every 50th EMG row NaN (a dropped packet, say): usable, since the sEMG pipeline holds each channel at its
    last finite value; the user is told how many values that was."""
    session = as_float_emg(write(tmp_path / "session.hdf5"),
                           lambda v: np.where(np.arange(len(v))[:, None] % 50 == 0, np.nan, v))
    out = tmp_path / "out"
    out.mkdir()
    code, err = _run(command, session, out, synthetic_emg_model["bundle"], capsys)
    assert code == 0, err[-3000:]
    said = [r.getMessage() for r in caplog.records if "not finite" in r.getMessage()]
    assert said and "1024 of the left arm's 51200 EMG values are not finite" in said[0]


def test_one_action_is_too_few_for_a_dataset_or_a_calibration(tmp_path: Path, synthetic_emg_model: dict,
                                                             capsys: pytest.CaptureFixture) -> None:
    """A session with a single action: the dataset's split would leave its test part empty, and a calibration
    would make a model of one activity (it tells nothing apart); both say so in one line."""
    session = write(tmp_path / "session.hdf5", labels=_labels_of(_rounds(1)[:1]))
    out = tmp_path / "out"
    out.mkdir()
    code, err = _run("dataset", session, out, synthetic_emg_model["bundle"], capsys)
    assert code == 1 and "leave the test part of the split empty" in err, err[-2000:]
    code, err = _run("calibrate --from", session, out, synthetic_emg_model["bundle"], capsys)
    assert code == 1 and "holds 1 activity (Slice bread): a model tells at least two apart" in err, err[-2000:]
    assert list(out.iterdir()) == []


def test_a_copy_of_a_sound_session_passes_every_command(tmp_path: Path, synthetic_emg_model: dict,
                                                       capsys: pytest.CaptureFixture) -> None:
    """The sessions above differ from this one in one thing each: it passes, so each refusal is that thing's."""
    session = write(tmp_path / "session.hdf5")
    shutil.copy(session, tmp_path / "copy.hdf5")
    for command in COMMANDS:
        out = tmp_path / command.replace(" ", "_")
        out.mkdir()
        code, err = _run(command, tmp_path / "copy.hdf5", out, synthetic_emg_model["bundle"], capsys)
        assert code == 0, (command, err[-2000:])


def test_a_replay_without_its_video_is_refused_for_a_model_that_reads_video(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """A session copied without its world video: `run` of a model that reads video says so in one line before
    anything starts (not a worker that waits for frames and is blamed); with --emg-only the check does not apply."""
    from myosight.models.bundle import save_bundle
    from myosight.models.clips import ClipGeometry
    from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
    from myosight.models.heads import build_head

    bundle = save_bundle(tmp_path / "rgb.safetensors", head_name="linear_rgb",
                         head=build_head("linear_rgb", num_classes=2, feature_dim=1024),
                         head_kwargs={"feature_dim": 1024}, classes=list(CLASSES), geometry=ClipGeometry(),
                         emg_config=EmgPipelineConfig(), normalisation=EmgNormalisation.full_scale())
    session = write(tmp_path / "2022-06-17_10-11-00_streamLog_S04.hdf5")
    capsys.readouterr()
    code = main(["run", "--model", str(bundle), "--source", "replay", str(session), "--headless", "--duration", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(f"myosight: error: {bundle} reads video, but {session} has no world-camera "
                                        "video beside it") and err.endswith("put the video back, or add --emg-only")
    from myosight.capture.launch import require_model_video, spec_of_kind

    require_model_video(False, spec_of_kind("replay", source="r", session=str(session)))  # --emg-only: no refusal
