"""Synthetic sessions must look exactly like ActionSense recordings and carry the paper's structure."""

from __future__ import annotations

import argparse
import re

import cv2
import h5py
import numpy as np
import pytest

from myosight.data.layout import ACTIVITY_GROUP, EMG_GROUPS, VIDEO_TIMESTAMP_GROUP, session_filename
from myosight.data.synth import (
    SynthConfig,
    SyntheticEmg,
    SynthSession,
    add_synth_parser,
    pattern_for,
    resolve_classes,
    write_session,
)
from myosight.errors import ConfigError

PEEL_CUCUMBER, PEEL_POTATO = "Peel a cucumber", "Peel a potato"
SLICE_BREAD, PLATE_SPONGE = "Slice bread", "Clean a plate with a sponge"
CLASSES = (PEEL_CUCUMBER, PEEL_POTATO, SLICE_BREAD, PLATE_SPONGE)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthConfig, SynthSession]:
    config = SynthConfig(
        classes=CLASSES, actions_per_class=2, seconds_per_action=4.0, rest_seconds=1.5, seed=3,
        width=128, height=96, include_bad_labels=True,
    )
    return config, write_session(config, tmp_path_factory.mktemp("synth"), "S05", progress=False)


def _activity_rows(f: h5py.File) -> list[tuple[str, str, str, float]]:
    data = f[ACTIVITY_GROUP]["data"][:]
    times = f[ACTIVITY_GROUP]["time_s"][:, 0]
    return [(r[0].decode(), r[1].decode(), r[2].decode(), float(t)) for r, t in zip(data, times, strict=True)]


def _good_actions(rows: list[tuple[str, str, str, float]]) -> list[tuple[str, float, float]]:
    """What the official parsers do: drop Bad/Maybe and zero-time rows, pair each Start with the next Stop."""
    out, start = [], None
    for label, start_stop, validity, t in rows:
        if validity != "Good" or t == 0:
            continue
        if start_stop == "Start":
            start = (label, t)
        elif start is not None and start[0] == label:
            out.append((label, start[1], t))
            start = None
    return out


def test_hdf5_layout(session: tuple[SynthConfig, SynthSession]) -> None:
    config, s = session
    assert s.hdf5_path.name == session_filename(s.start_time_s, "actionNet-wearables_S05")
    pattern = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_streamLog_actionNet-wearables_S05\.hdf5"
    assert re.fullmatch(pattern, s.hdf5_path.name)
    with h5py.File(s.hdf5_path, "r") as f:
        for group in (*EMG_GROUPS.values(), ACTIVITY_GROUP, VIDEO_TIMESTAMP_GROUP):
            stream = f[group]
            n = stream["time_s"].shape[0]
            assert n > 0
            assert stream["time_s"].shape == (n, 1) and stream["time_s"].dtype == np.float64
            assert stream["time_str"].shape == (n, 1) and stream["time_str"].dtype == np.dtype("S26")
            assert stream["data"].shape[0] == n
            for name in ("data", "time_s", "time_str"):
                assert stream[name].chunks is not None, f"{group}/{name} not chunked"
                assert stream[name].maxshape[0] is None, f"{group}/{name} not resizable"
        for group in EMG_GROUPS.values():
            data = f[group]["data"][:]
            assert data.dtype == np.int32 and data.shape[1] == 8
            assert data.min() >= -128 and data.max() <= 127
            assert eval(f[group].attrs["Data headings"]) == [f"Channel {i}" for i in range(1, 9)]
        assert f[ACTIVITY_GROUP]["data"].dtype == np.dtype("S500")
        assert f["experiment-activities"].attrs["Activities"] == str(list(config.classes))
        time_str = f[EMG_GROUPS["left"]]["time_str"][0, 0].decode()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", time_str)

        attrs: list[object] = list(f.attrs.values())
        f.visititems(lambda _name, obj: attrs.extend(obj.attrs.values()))
        assert attrs and all(isinstance(v, str) for v in attrs)


def test_labels_match_ground_truth_and_bad_rows_are_droppable(
    session: tuple[SynthConfig, SynthSession],
) -> None:
    config, s = session
    with h5py.File(s.hdf5_path, "r") as f:
        rows = _activity_rows(f)
    assert len(s.actions) == len(config.classes) * config.actions_per_class
    assert sorted(a[0] for a in s.actions) == sorted(c for c in config.classes for _ in range(2))
    parsed = _good_actions(rows)
    assert [a[0] for a in parsed] == [a[0] for a in s.actions]
    np.testing.assert_allclose([a[1:] for a in parsed], [a[1:] for a in s.actions], atol=1e-6)
    assert {r[2] for r in rows} == {"Good", "Bad", "Maybe"}
    assert sum(r[3] == 0 for r in rows) == 1
    # Bad/Maybe presses fall in rest periods, outside every real action
    for label, _, validity, t in rows:
        if validity != "Good":
            assert label in config.classes
            assert not any(start <= t <= stop for _, start, stop in s.actions)
    # actions are in a shuffled order, each lasting 4 s +-20 %, separated by the rest
    durations = np.array([stop - start for _, start, stop in s.actions])
    assert np.all((durations >= 3.2) & (durations <= 4.8))
    gaps = np.array([b[1] - a[2] for a, b in zip(s.actions, s.actions[1:], strict=False)])
    np.testing.assert_allclose(gaps, 1.5, atol=1e-6)
    in_class_order = sorted((c for c in config.classes for _ in range(2)), key=CLASSES.index)
    assert [a[0] for a in s.actions] != in_class_order


def test_emg_rate_and_pair_timestamps(session: tuple[SynthConfig, SynthSession]) -> None:
    config, s = session
    starts = []
    with h5py.File(s.hdf5_path, "r") as f:
        for group in EMG_GROUPS.values():
            t = f[group]["time_s"][:, 0]
            rate = (len(t) - 1) / (t[-1] - t[0])
            assert abs(rate / config.emg_rate - 1) < 0.02
            assert np.all(np.diff(t) >= 0)
            # pairs: the later sample carries the arrival time; the earlier one sits at the midpoint of its
            # neighbours, so the spacing alternates around 1/rate with jitter of a few ms
            np.testing.assert_allclose(t[2:-1:2], 0.5 * (t[1:-2:2] + t[3::2]), atol=1e-6)
            arrivals = np.diff(t[1::2])
            assert abs(arrivals.mean() - 2 / config.emg_rate) < 1e-4
            assert 0.0005 < arrivals.std() < 0.005
            assert t[0] - s.start_time_s < 0.1 and s.stop_time_s - t[-1] < 0.05
            starts.append(t[0])
    assert starts[0] != starts[1]


def test_emg_is_low_at_rest_and_active_during_actions(session: tuple[SynthConfig, SynthSession]) -> None:
    _, s = session
    with h5py.File(s.hdf5_path, "r") as f:
        t = f[EMG_GROUPS["right"]]["time_s"][:, 0]
        x = f[EMG_GROUPS["right"]]["data"][:].astype(float)
    active = np.zeros(len(t), bool)
    for _, start, stop in s.actions:
        active |= (t > start + 0.5) & (t < stop - 0.5)
    rest = np.ones(len(t), bool)
    for _, start, stop in s.actions:
        rest &= (t < start - 0.1) | (t > stop + 0.5)
    assert x[active].std() > 4 * x[rest].std()
    assert x[rest].std() > 0.5  # rest is quiet but not silent


def test_video_matches_timestamps_and_size(session: tuple[SynthConfig, SynthSession]) -> None:
    config, s = session
    assert s.video_path is not None and s.video_path.parent == s.hdf5_path.parent
    with h5py.File(s.hdf5_path, "r") as f:
        ts = f[VIDEO_TIMESTAMP_GROUP]["time_s"][:, 0]
        np.testing.assert_array_equal(f[VIDEO_TIMESTAMP_GROUP]["data"][:, 0], ts)
    np.testing.assert_allclose(np.diff(ts), 1 / config.fps, atol=1e-6)
    cap = cv2.VideoCapture(str(s.video_path))
    try:
        assert cap.isOpened()
        assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 96
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    assert len(frames) == len(ts)
    assert frames[0].shape == (96, 128, 3)

    def mean_colour(label: str) -> np.ndarray:
        picks = [np.searchsorted(ts, 0.5 * (a + b)) for lab, a, b in s.actions if lab == label]
        return np.mean([frames[i].reshape(-1, 3).mean(0) for i in picks], axis=0)

    cucumber, potato = mean_colour(PEEL_CUCUMBER), mean_colour(PEEL_POTATO)
    assert np.abs(cucumber - potato).max() > 3.0
    assert cucumber[1] - cucumber[2] > potato[1] - potato[2]  # greener (BGR: green minus red)


def test_same_muscle_group_emg_is_indistinguishable_other_classes_differ() -> None:
    assert pattern_for(PEEL_CUCUMBER) is pattern_for(PEEL_POTATO)
    assert pattern_for("Slice a cucumber") is pattern_for("Slice a potato") is pattern_for(SLICE_BREAD)
    assert pattern_for(PEEL_CUCUMBER) is not pattern_for(SLICE_BREAD)

    config = SynthConfig(seed=11)
    emg = SyntheticEmg(config, "S00", start_time_s=0.0)
    labels = (PEEL_CUCUMBER, PEEL_POTATO, PLATE_SPONGE)
    profiles: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    t = 0.0
    for _ in range(24):
        for label in profiles:
            emg.generate_until(t)
            emg.set_activity(label, t)
            chunk = emg.generate_until(t + 4.0)
            x = np.hstack([chunk.data[a][: min(len(chunk.data["left"]), len(chunk.data["right"]))]
                           for a in ("left", "right")])
            profiles[label].append(np.log(np.sqrt(np.mean(x[80:].astype(float) ** 2, axis=0)) + 1e-9))
            emg.set_activity(None, t + 4.0)
            t += 5.0
    mean = {label: np.mean(p, axis=0) for label, p in profiles.items()}
    same = np.abs(mean[PEEL_CUCUMBER] - mean[PEEL_POTATO]).mean()
    other = np.abs(mean[PEEL_CUCUMBER] - mean[PLATE_SPONGE]).mean()
    assert same < 0.15
    assert other > 2.5 * same and other > 0.25


def test_emg_generator_does_not_depend_on_chunking() -> None:
    def run(step: float) -> tuple[np.ndarray, np.ndarray]:
        emg = SyntheticEmg(SynthConfig(), "S02", start_time_s=1000.0)
        data, times = [], []
        t = 1000.0
        for stop, label in ((1002.0, SLICE_BREAD), (1006.0, None), (1007.0, PLATE_SPONGE), (1010.0, None)):
            while t < stop:
                t = min(t + step, stop)
                chunk = emg.generate_until(t)
                data.append(chunk.data["left"])
                times.append(chunk.time_s["left"])
            emg.set_activity(label, t)
        return np.concatenate(data), np.concatenate(times)

    (a, ta), (b, tb) = run(5.0), run(0.033)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)


def test_sessions_are_deterministic_per_seed(tmp_path: pytest.TempPathFactory) -> None:
    config = SynthConfig(classes=CLASSES[:2], actions_per_class=1, seconds_per_action=(2.0, 3.0),
                         rest_seconds=0.5, write_video=False, emg_rate=200.0)
    a = write_session(config, tmp_path / "a", "S00", progress=False)
    b = write_session(config, tmp_path / "b", "S00", progress=False)
    other = SynthConfig(classes=CLASSES[:2], actions_per_class=1, seconds_per_action=(2.0, 3.0),
                        rest_seconds=0.5, write_video=False, emg_rate=200.0, seed=1)
    c = write_session(other, tmp_path / "c", "S00", progress=False)
    assert a.hdf5_path.name == b.hdf5_path.name != c.hdf5_path.name
    assert a.actions == b.actions != c.actions
    assert a.video_path is None
    with h5py.File(a.hdf5_path, "r") as fa, h5py.File(b.hdf5_path, "r") as fb, h5py.File(c.hdf5_path) as fc:
        np.testing.assert_array_equal(fa["myo-left/emg/data"][:], fb["myo-left/emg/data"][:])
        assert not np.array_equal(fa["myo-left/emg/data"][:100], fc["myo-left/emg/data"][:100])
        assert VIDEO_TIMESTAMP_GROUP not in fa
        t = fa["myo-right/emg/time_s"][:, 0]
        assert abs((len(t) - 1) / (t[-1] - t[0]) / 200.0 - 1) < 0.02


def test_config_validation_and_class_names() -> None:
    with pytest.raises(ConfigError):
        SynthConfig(classes=("Juggle knives",))
    with pytest.raises(ConfigError):
        SynthConfig(seconds_per_action=(5.0, 2.0))
    assert SynthConfig(seconds_per_action=(2.0, 5.0)).duration_range == (2.0, 5.0)
    assert SynthConfig(seconds_per_action=10.0).duration_range == pytest.approx((8.0, 12.0))
    assert resolve_classes(["peel a potato", "jelly", PEEL_POTATO]) == (
        PEEL_POTATO, "Spread jelly on a bread slice")
    with pytest.raises(ConfigError, match="ambiguous"):
        resolve_classes(["slice"])


def test_cli_writes_sessions(tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="myosight")
    add_synth_parser(parser.add_subparsers())
    args = parser.parse_args([
        "synth", "--out", str(tmp_path), "--subjects", "S01", "S02", "--num-classes", "2",
        "--actions-per-class", "1", "--seconds", "2,3", "--rest", "0.5", "--video-size", "64x48",
        "--no-video", "--quiet",
    ])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    files = sorted(tmp_path.glob("*.hdf5"))
    assert len(files) == 2 and all(str(p) in out for p in files)
    assert "2 session(s), 4 actions of 2 classes" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "--out", str(tmp_path), "--video-size", "big"])


def test_project_reader_reads_synthetic_session(session: tuple[SynthConfig, SynthSession]) -> None:
    actionsense = pytest.importorskip("myosight.data.actionsense")
    config, s = session
    with actionsense.ActionSenseSession(s.hdf5_path) as reader:
        assert reader.subject == "S05"
        assert reader.video_path == s.video_path
        got = [(a.label, a.start_s, a.stop_s) for a in reader.activities()]
        assert [g[0] for g in got] == [a[0] for a in s.actions]
        np.testing.assert_allclose([g[1:] for g in got], [a[1:] for a in s.actions], atol=1e-6)
        assert abs(reader.emg("left").measured_rate_hz() / config.emg_rate - 1) < 0.02


def test_subjects_get_distinct_start_times() -> None:
    from myosight.data.synth import session_start_time

    config = SynthConfig(subjects=("S00", "S07"), seed=2)
    starts = {subject: session_start_time(config, subject) for subject in ("S00", "S07", "P01", "P02")}
    assert len(set(starts.values())) == 4
    assert starts["S07"] - starts["S00"] == 7 * 86400
    assert session_start_time(SynthConfig(seed=0), "S00") + 120 == starts["S00"]
