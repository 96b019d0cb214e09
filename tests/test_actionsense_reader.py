"""The ActionSense reader on the real shared files and on constructed bad inputs."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import myo_timestamps

from myosight.data.actionsense import ActionSenseSession
from myosight.data.layout import EMG_GROUPS, SessionWriter
from myosight.errors import MissingStreamError, SessionFormatError

T0 = 1_655_159_743.0


# -- real Myo sessions --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "arms", "n_actions", "n_classes"),
    [("S01_1", ("left", "right"), 3, 2), ("S02_1", ("left", "right"), 5, 5), ("S02_2", ("left", "right"), 25, 9),
     ("S06_1", ("left",), 17, 5)],
)
def test_real_sessions_read(real_dir: Path, name: str, arms: tuple, n_actions: int, n_classes: int) -> None:
    with ActionSenseSession(real_dir / f"{name}_myo.hdf5") as session:
        assert session.arms == arms
        assert session.subject == name[:3]
        actions = session.activities()
        assert len(actions) == n_actions
        assert len({a.label for a in actions}) == n_classes
        assert all(a.stop_s > a.start_s for a in actions)
        for arm in arms:
            emg = session.emg(arm)
            assert emg.data.shape[1] == 8 and emg.data.dtype == np.int32
            assert emg.data.min() >= -128 and emg.data.max() <= 127
            # the effective Myo rate is about 160 Hz, measured from the timestamps
            assert 150 < emg.measured_rate_hz() < 170
            # only labelled actions are stored: EMG has gaps between actions
            gaps = np.diff(emg.time_s) > 1.0
            assert gaps.sum() >= min(n_actions - 1, 1)


def test_real_old_spellings_are_mapped(real_dir: Path) -> None:
    with ActionSenseSession(real_dir / "S01_1_myo.hdf5") as session:
        labels = [a.label for a in session.activities()]
    assert labels[0] == "Get/replace items from refrigerator/cabinets/drawers"
    with ActionSenseSession(real_dir / "S02_2_myo.hdf5") as session:
        assert "Open/close a jar of almond butter" in {a.label for a in session.activities()}


def test_real_myo_pairs_are_visible(real_dir: Path) -> None:
    with ActionSenseSession(real_dir / "S01_1_myo.hdf5") as session:
        steps = np.diff(session.emg("left").time_s)
    short = (steps > 0.003) & (steps < 0.005)  # the two samples of a pair, 4 ms apart
    assert short.mean() > 0.3


def test_one_arm_session_is_refused_or_marked(real_dir: Path) -> None:
    path = real_dir / "S06_1_myo.hdf5"
    with ActionSenseSession(path) as session:
        with pytest.raises(MissingStreamError) as caught:
            session.emg_pair()
        assert "myo-right/emg" in str(caught.value) and path.name in str(caught.value)
        pair = session.emg_pair(allow_missing=True)
        assert pair.missing == ("right",) and pair.left is not None and len(pair.left) == 111_484


def test_lazy_time_range_read(real_dir: Path) -> None:
    with ActionSenseSession(real_dir / "S02_1_myo.hdf5") as session:
        full = session.emg("left")
        start, stop = full.time_s[1000], full.time_s[3000]
        part = session.emg("left", start, stop)
    assert len(part) == 2000
    np.testing.assert_array_equal(part.data, full.data[1000:3000])


# -- the real recorder files without Myo ----------------------------------------------------------------
def test_recorder_files_without_myo(shared_dir: Path) -> None:
    files = sorted((shared_dir / "actionsense").glob("*_streamLog_*.hdf5"))
    assert len(files) == 3
    rows = []
    for path in files:
        with ActionSenseSession(path) as session:
            streams = session.streams()
            assert "EMGLeft-cognionics/emgleft-values" in streams
            assert session.arms == ()
            assert session.activities() == []
            assert session.attrs("experiment-activities")["Activities"].startswith("[")
            with pytest.raises(MissingStreamError) as caught:
                session.emg("left")
            assert path.name in str(caught.value) and "myo-left/emg" in str(caught.value)
            with pytest.raises(MissingStreamError):
                session.emg_pair()
            cognionics = session.read_stream("EMGLeft-cognionics/emgleft-values")
            rows.append(len(cognionics))
    assert sorted(rows) == [0, 56, 20003]


# -- constructed files -----------------------------------------------------------------------------
def write_session(path: Path, *, channels: int = 8, times: np.ndarray | None = None,
                  labels: list[tuple[str, str, str, float]] | None = None) -> Path:
    """A small session with both arms (the given timestamps) and the given label rows."""
    rng = np.random.default_rng(1)
    times = myo_timestamps(400, 160.0, T0, rng) if times is None else times
    with SessionWriter(path) as writer:
        for arm in ("left", "right"):
            if channels == 8:
                writer.add_emg_stream(arm)
            else:
                writer.add_stream(EMG_GROUPS[arm], (channels,), "int32")
            writer.append(EMG_GROUPS[arm], rng.integers(-128, 128, (len(times), channels)), times)
        writer.add_activity_stream(["Slice bread"])
        for activity, kind, validity, t in labels or [("Slice bread", "Start", "Good", T0 + 0.5),
                                                      ("Slice bread", "Stop", "Good", T0 + 4.0)]:
            writer.append_activity(activity, kind, t, validity)
    return path


def test_constructed_session_round_trip(tmp_path: Path) -> None:
    path = write_session(tmp_path / "s.hdf5")
    with h5py.File(path) as raw:
        assert raw["myo-left/emg/time_str"].dtype == np.dtype("S26")
        assert raw["myo-left/emg/data"].maxshape == (None, 8)
        assert all(isinstance(v, str) for v in raw["myo-left/emg"].attrs.values())
    with ActionSenseSession(path) as session:
        assert session.arms == ("left", "right")
        [action] = session.activities()
        assert action.label == "Slice bread" and action.duration_s == pytest.approx(3.5)


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "notes.hdf5"
    path.write_text("this is not a session")
    with pytest.raises(SessionFormatError, match="not an HDF5 file") as caught:
        ActionSenseSession(path)
    assert "notes.hdf5" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SessionFormatError, match="no such file"):
        ActionSenseSession(tmp_path / "absent.hdf5")


def test_truncated_file(real_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.hdf5"
    shutil.copy(real_dir / "S01_1_myo.hdf5", path)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    with pytest.raises(SessionFormatError) as caught, ActionSenseSession(path) as session:
        session.emg("left")
        session.emg("right")
    assert "truncated.hdf5" in str(caught.value)


def test_wrong_channel_count(tmp_path: Path) -> None:
    path = write_session(tmp_path / "s.hdf5", channels=7)
    with ActionSenseSession(path) as session, pytest.raises(SessionFormatError) as caught:
        session.emg("left")
    assert "myo-left/emg/data" in str(caught.value) and "8 EMG channels" in str(caught.value)


def test_non_monotonic_timestamps(tmp_path: Path) -> None:
    times = T0 + np.arange(200) / 160.0
    times[120] = times[100]
    path = write_session(tmp_path / "s.hdf5", times=times)
    with ActionSenseSession(path) as session, pytest.raises(SessionFormatError) as caught:
        session.emg("left")
    assert "backwards at row 120" in str(caught.value) and "myo-left/emg/time_s" in str(caught.value)


def test_zero_timestamps(tmp_path: Path) -> None:
    times = T0 + np.arange(200) / 160.0
    times[50] = 0.0
    path = write_session(tmp_path / "a.hdf5", times=times)
    with ActionSenseSession(path) as session, pytest.raises(SessionFormatError, match="row 50 is zero"):
        session.emg("left")
    times = T0 + np.arange(200) / 160.0
    times[-5:] = 0.0  # an unfinished log: the trailing rows are trimmed, the rest is kept
    with ActionSenseSession(write_session(tmp_path / "b.hdf5", times=times)) as session:
        assert len(session.emg("left")) == 195


def test_label_rules(tmp_path: Path) -> None:
    labels = [
        ("Open a jar of almond butter", "Start", "Good", T0 + 0.1),  # old spelling
        ("Open a jar of almond butter", "Stop", "Good", T0 + 1.0),
        ("Slice bread", "Start", "Good", T0 + 1.1),
        ("Slice bread", "Stop", "Bad", T0 + 1.5),  # dropped
        ("Slice bread", "Start", "Maybe", T0 + 1.6),
        ("Slice bread", "Stop", "Good", T0 + 1.9),  # dropped
        ("Slice bread", "Start", "Good", 0.0),  # unfinished row, ignored
        ("Slice bread", "Start", "Good", T0 + 2.0),
        ("Slice bread", "Stop", "Good", T0 + 2.4),
    ]
    with ActionSenseSession(write_session(tmp_path / "s.hdf5", labels=labels)) as session:
        actions = session.activities()
    assert [a.label for a in actions] == ["Open/close a jar of almond butter", "Slice bread"]
    assert actions[1].start_s == pytest.approx(T0 + 2.0)


def test_stop_without_start(tmp_path: Path) -> None:
    labels = [("Slice bread", "Stop", "Good", T0 + 1.0)]
    path = write_session(tmp_path / "s.hdf5", labels=labels)
    with ActionSenseSession(path) as session, pytest.raises(SessionFormatError, match="without a Start") as caught:
        session.activities()
    assert "experiment-activities/activities" in str(caught.value)


def test_reading_one_stream_does_not_load_the_session(tmp_path: Path) -> None:
    """A large stream beside the EMG is never read when only the EMG is asked for."""
    path = write_session(tmp_path / "big.hdf5")
    with h5py.File(path, "a") as raw:
        big = raw.create_dataset("eye-tracking-video-world/frames/data", (150, 480, 640, 3), "u1",
                                 chunks=(1, 480, 640, 3))
        frame = np.full((480, 640, 3), 7, np.uint8)
        for i in range(len(big)):
            big[i] = frame
        raw.create_dataset("eye-tracking-video-world/frames/time_s", data=np.zeros((150, 1)))
    assert path.stat().st_size > 100e6
    tracemalloc.start()
    with ActionSenseSession(path) as session:
        session.emg("left")
        session.activities()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5e6
