"""The session recorder on loopback: a synthetic session replayed over LSL, recorded, read back with the project's
reader; labels from a separate marker stream; SIGKILL and a full disk keep everything up to the last flush."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import resource
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pylsl
import pytest
from lsl_helpers import unique_source, wait_for

from myosight.capture.recorder import RecorderSpec, SessionRecorder, recorder_process
from myosight.capture.replay import SessionReplay
from myosight.capture.session_video import JPEG_GROUP, partial_video_path
from myosight.capture.streams import emg_stream_info, marker_stream_info, open_outlet
from myosight.cli import main
from myosight.data.actionsense import ARMS, ActionSenseSession, TimeSeries
from myosight.data.synth import SynthConfig, write_sessions
from myosight.data.video import VideoFile
from myosight.errors import StreamError
from myosight.models.i3d_input import model_frame
from myosight.training.feature_store import read_manifest

CLASSES = ("Slice bread", "Clean a plate with a towel")
FRAME_SIZE = 64
OFFSET_ATTR = "LSL clock to epoch offset (s)"




@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two actions of 10.5 s (two 5-s sub-actions each), both arms, a 64-pixel video at 15 fps."""
    config = SynthConfig(subjects=("S06",), actions_per_class=1, seconds_per_action=(10.5, 10.5), classes=CLASSES,
                         seed=8, width=FRAME_SIZE, height=FRAME_SIZE, fps=15.0)
    return write_sessions(config, tmp_path_factory.mktemp("synthetic"), progress=False)[0].hdf5_path


class LoopingReplay:
    """The synthetic session replayed in a thread; remembers the first pass's time base."""

    def __init__(self, session: Path, speed: float, loop: bool) -> None:
        self.source = unique_source("rec")
        self.replay = SessionReplay(session, speed=speed, loop=loop, source=self.source, frame_size=FRAME_SIZE)
        self.replay.open()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.replay.run, args=(self.stop,), daemon=True)
        self.shift0: float | None = None

    def start(self) -> None:
        self.thread.start()
        assert wait_for(lambda: self.replay.playback is not None and self.replay.stats.emg_samples["left"] > 0, 20)
        self.shift0 = self.replay.playback.shift

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)

    def original_times(self, epoch: np.ndarray, lsl_to_epoch: float) -> np.ndarray:
        """Recorded epoch times -> the original session's times (undoing the recorder's mapping, the replay's
        whole-second shift and its loop passes)."""
        period = math.ceil(self.replay.duration_s) + 1.0
        stamps = epoch - lsl_to_epoch - self.shift0
        passes = np.floor((stamps - self.replay.first_s) / period)
        return stamps - passes * period


def assert_same_samples(recorded: TimeSeries, original: TimeSeries, original_times: np.ndarray) -> None:
    index = np.searchsorted(original.time_s, original_times - 1e-5)
    assert np.all(index < len(original))
    assert np.allclose(original.time_s[index], original_times, atol=1e-5)
    assert np.array_equal(original.data[index], recorded.data)


# -- a clean recording ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The synthetic session replayed once at 6x and recorded with its own labels as the activities."""
    replay = LoopingReplay(synthetic, speed=6.0, loop=False)
    out = tmp_path_factory.mktemp("recorded")
    recorder = SessionRecorder(RecorderSpec(out_dir=str(out), source=replay.source, label_source=None,
                                            subject="S06"))
    path = recorder.open()
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    replay.start()
    replay.thread.join(60)
    sent = replay.replay.stats

    def all_in() -> bool:
        rows = {track.role: track.written + track.pending.rows for track in recorder.tracks}
        return (rows.get("emg-left") == sent.emg_samples["left"] and rows.get("emg-right") == sent.emg_samples["right"]
                and rows.get("video") == sent.frames and rows.get("activities") == sent.markers)

    arrived = wait_for(all_in, 20)
    stop.set()
    thread.join(10)
    stats = recorder.close()
    replay.close()
    assert arrived, f"the recorder did not get everything the replay sent: {stats.rows} vs {sent}"
    return {"path": path, "stats": stats, "replay": replay}


def test_recording_matches_the_replayed_session(recorded: dict, synthetic: Path) -> None:
    replay: LoopingReplay = recorded["replay"]
    stats = recorded["stats"]
    assert stats.state == "finished" and stats.error is None and stats.flushes >= 2
    with ActionSenseSession(recorded["path"]) as copy, ActionSenseSession(synthetic) as original:
        offset = float(copy.attrs("/")[OFFSET_ATTR])
        assert copy.subject == "S06"
        shift = replay.shift0 + offset  # recorded epoch time - original time, for every sample and label
        for arm in ARMS:
            mine, theirs = copy.emg(arm), original.emg(arm)
            assert np.array_equal(mine.data, theirs.data)
            assert np.allclose(mine.time_s - theirs.time_s, shift, atol=1e-5)
        actions, truth = copy.activities(), original.activities()
        assert [a.label for a in actions] == [a.label for a in truth]
        assert np.allclose([a.start_s - b.start_s for a, b in zip(actions, truth, strict=True)], shift, atol=1e-5)
        assert np.allclose([a.stop_s - b.stop_s for a, b in zip(actions, truth, strict=True)], shift, atol=1e-5)
        frame_times = copy.video_frame_times()
        assert np.allclose(frame_times - original.video_frame_times(), shift, atol=1e-5)
        assert copy.video_path is not None and copy.video_path.name.startswith(recorded["path"].name[:19])
        with VideoFile(copy.video_path) as video, VideoFile(original.video_path) as source:
            assert video.frame_count == len(frame_times) == replay.replay.stats.frames
            for index in (0, len(frame_times) // 2, len(frame_times) - 1):
                expected = model_frame(source.read([index])[0], FRAME_SIZE)[:, :, ::-1]  # as replayed, in BGR
                got = video.read([index])[0]
                assert np.abs(got.astype(int) - expected.astype(int)).mean() < 12  # JPEG, then mp4
    assert not partial_video_path(recorded["path"]).exists()


def test_recorded_session_builds_a_dataset(recorded: dict, tmp_path: Path) -> None:
    """The project's own training path takes the recorded session as it takes any session."""
    assert main(["dataset", str(recorded["path"]), "--out", str(tmp_path / "data")]) == 0
    manifest = read_manifest(tmp_path / "data")
    assert sorted(manifest["classes"]) == sorted(CLASSES)
    assert manifest["split"]["train"] + manifest["split"]["test"] == 4  # two 5-s sub-actions per action


# -- labels from the GUI's marker stream ------------------------------------------------------------------
def test_label_markers_become_paired_activity_rows(tmp_path: Path) -> None:
    source, gui = unique_source("src"), unique_source("gui")
    emg = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
    source_labels = open_outlet(marker_stream_info(source))
    gui_labels = open_outlet(marker_stream_info(gui))
    recorder = SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source=source, label_source=gui,
                                            classes=list(CLASSES)))
    path = recorder.open()
    start = pylsl.local_clock()
    presses = ["Slice bread|Start", "not a label", "Clean a plate with a towel|Start",  # stops the bread first
               "Clean a plate with a towel|Stop", "Slice bread|Stop",  # nothing open: ignored
               "Slice bread|Start|Bad", "Slice bread|Stop|Bad|knife slipped"]
    for i, text in enumerate(presses):
        gui_labels.push_sample([text], start + i)
    source_labels.push_sample(["Slice bread|Start"], start)
    stamps = start + np.arange(800) / 160
    for outlet in emg.values():
        outlet.push_chunk(np.zeros((800, 8), np.float32), stamps.tolist())
    wanted = {"emg-left": 800, "emg-right": 800, "activities": 6, "labels": 1}
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    got = wait_for(lambda: {t.role: t.written + t.pending.rows for t in recorder.tracks} == wanted, 20)
    stop.set()
    thread.join(10)
    stats = recorder.close()
    assert got, stats.rows
    assert stats.ignored_markers == 2 and stats.video is None
    with ActionSenseSession(path) as session:
        offset = float(session.attrs("/")[OFFSET_ATTR])
        actions = session.activities()  # the Bad pair is dropped by the reader
        assert [a.label for a in actions] == ["Slice bread", "Clean a plate with a towel"]
        times = [(a.start_s - offset, a.stop_s - offset) for a in actions]
        assert np.allclose(times, [(start, start + 2), (start + 2, start + 3)], atol=1e-5)
        assert session.attrs("experiment-activities")["Activities"] == str(list(CLASSES))
    with h5py.File(path, "r") as file:
        rows = [[cell.decode() for cell in row] for row in file["experiment-activities/activities/data"][()]]
        assert [row[1:3] for row in rows] == [["Start", "Good"], ["Stop", "Good"], ["Start", "Good"],
                                              ["Stop", "Good"], ["Start", "Bad"], ["Stop", "Bad"]]
        assert rows[-1][3] == "knife slipped"
        assert file["myosight-recorder/source-labels/data"][0, 0] == b"Slice bread|Start"
    del emg, source_labels, gui_labels


def test_a_source_without_streams_is_a_clear_error(tmp_path: Path) -> None:
    recorder = SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source=unique_source("none"), resolve_timeout_s=0.3))
    with pytest.raises(StreamError, match=f"no LSL stream of source '{recorder.spec.source}'"):
        recorder.open()
    assert not list(tmp_path.glob("*.hdf5"))


def test_two_recorders_started_in_the_same_second_into_one_folder_get_two_sessions(tmp_path: Path) -> None:
    """Two recorders of one armband source, opened at the same moment into one folder: each claims its own file
    (an exclusive create), so neither recording is lost or shares the other's file."""
    source = unique_source("twin")
    emg = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
    recorders = [SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source=source, video=False))
                 for _ in range(2)]
    paths: list[Path] = []
    barrier = threading.Barrier(2)

    def start(recorder: SessionRecorder) -> None:
        barrier.wait()
        paths.append(recorder.open())

    threads = [threading.Thread(target=start, args=(recorder,)) for recorder in recorders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert len(paths) == 2 and paths[0] != paths[1]
    finally:
        for recorder in recorders:
            recorder.close()
    for path in paths:
        with ActionSenseSession(path) as session:
            assert session.arms == ("left", "right")
    del emg


def test_an_emg_stream_of_text_is_refused_by_the_recorder_and_the_worker(tmp_path: Path) -> None:
    """A stream under an arm's EMG id whose samples are strings (another program's mistake) is refused, naming
    it, by `record` and by the worker; neither reports it "lost" nor records zero rows as if all were well."""
    from myosight.realtime.sources import SourceInlets

    source = unique_source("text")
    info = pylsl.StreamInfo("myosight-emg-left", "EMG", 8, 160.0, pylsl.cf_string, f"myosight-{source}-emg-left")
    outlet = open_outlet(info)
    recorder = SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source=source, video=False))
    with pytest.raises(StreamError, match=rf"\(myosight-{source}-emg-left\) carries text, not numeric samples"):
        recorder.open()
    assert not list(tmp_path.glob("*.hdf5"))  # the claimed name is given back
    with pytest.raises(StreamError, match="carries text"):
        SourceInlets.open(source, video=False, arms=("left",), first_timeout_s=10.0)
    del outlet


def test_the_session_name_is_claimed_by_an_exclusive_create(tmp_path: Path) -> None:
    """The claim itself: a name another recorder created after the look is skipped, not shared."""
    from myosight.capture import recorder as recorder_module

    first = recorder_module._new_session_path(tmp_path, 1_700_000_000.0, "S01")
    assert first.exists() and first.stat().st_size == 0  # claimed, empty until the writer fills it
    second = recorder_module._new_session_path(tmp_path, 1_700_000_000.0, "S01")
    assert second != first and second.exists()


# -- faults -----------------------------------------------------------------------------------------------
def read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def assert_prefix_of_the_replay(path: Path, synthetic: Path, replay: LoopingReplay, status: dict) -> None:
    """The file opens with the reader and holds at least what the status said was flushed, all of it the
    replayed data at its place."""
    with ActionSenseSession(path) as copy, ActionSenseSession(synthetic) as original:
        offset = float(copy.attrs("/")[OFFSET_ATTR])
        streams = copy.streams()
        for arm in ARMS:
            mine = copy.emg(arm)
            assert len(mine) >= status["rows"][f"emg-{arm}"] > 0
            assert_same_samples(mine, original.emg(arm), replay.original_times(mine.time_s, offset))
        assert streams[JPEG_GROUP] == streams["eye-tracking-video-world/frame_timestamp"] >= status["rows"]["video"]
        copy.activities()  # the label rows read (an activity open at the end is dropped with a warning)


def test_sigkill_keeps_everything_up_to_the_last_flush(synthetic: Path, tmp_path: Path) -> None:
    replay = LoopingReplay(synthetic, speed=4.0, loop=True)
    replay.start()
    context = mp.get_context("spawn")
    stop, ready = context.Event(), context.Event()
    spec = RecorderSpec(out_dir=str(tmp_path), source=replay.source, label_source=None, flush_every_s=0.5)
    process = context.Process(target=recorder_process, args=(asdict(spec), stop, ready))
    process.start()
    status_path = tmp_path / "recorder-status.json"
    try:
        assert ready.wait(60), "the recorder process did not start"
        assert wait_for(lambda: (read_status(status_path) or {}).get("flushes", 0) >= 4
                        and (read_status(status_path) or {}).get("rows", {}).get("video", 0) > 0, 60)
        status = read_status(status_path)
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
    finally:
        replay.close()
        if process.is_alive():
            process.kill()
    assert process.exitcode == -signal.SIGKILL
    path = Path(status["session"])
    assert_prefix_of_the_replay(path, synthetic, replay, status)
    with ActionSenseSession(path) as session:
        assert session.video_path is None  # the mp4 cut short is under its partial name, never picked up
    assert partial_video_path(path).exists()
    assert main(["record", "--recover", str(tmp_path)]) == 0  # rebuilds the mp4 from the JPEG frames
    with ActionSenseSession(path) as session, VideoFile(session.video_path) as video:
        assert video.frame_count == len(session.video_frame_times())
    assert not partial_video_path(path).exists()


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_stops_with_a_clear_error_and_keeps_the_file(synthetic: Path, tmp_path: Path) -> None:
    replay = LoopingReplay(synthetic, speed=8.0, loop=True)
    replay.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "myosight", "record", "--source", replay.source, "--out", str(tmp_path),
             "--label-source", "none", "--duration", "90"],
            preexec_fn=_file_size_limit(4_000_000), capture_output=True, text=True, timeout=150)
    finally:
        replay.close()
    status = read_status(tmp_path / "recorder-status.json")
    path = Path(status["session"])
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"myosight: error: {path}" in result.stderr and "the disk is full or the file reached" in result.stderr
    assert status["state"] == "failed" and status["flushes"] >= 2
    assert_prefix_of_the_replay(path, synthetic, replay, status)
    with ActionSenseSession(path) as session:
        for arm in ARMS:
            assert len(session.emg(arm)) == status["rows"][f"emg-{arm}"]  # nothing after the refused write
        if session.video_path is not None:
            with VideoFile(session.video_path) as video:
                assert video.frame_count == len(session.video_frame_times())


def test_jpeg_rows_of_equal_length_are_written(tmp_path: Path) -> None:
    """Identical frames encode to JPEGs of one length; the variable-length rows must still append."""
    from myosight.capture.session_video import JPEG_DTYPE
    from myosight.data.layout import SessionWriter

    rows = np.empty(3, dtype=object)
    for i in range(3):
        rows[i] = np.full(823, i, np.uint8)
    with SessionWriter(tmp_path / "s.hdf5") as writer:
        writer.add_stream(JPEG_GROUP, (), JPEG_DTYPE)
        writer.append(JPEG_GROUP, rows, np.arange(3.0) + 1.7e9)
        writer.append(JPEG_GROUP, rows[:1], np.array([1.7e9 + 3]))
    with h5py.File(tmp_path / "s.hdf5") as f:
        data = f[JPEG_GROUP]["data"]
        assert len(data) == 4 and [int(data[i][0]) for i in range(4)] == [0, 1, 2, 0]
