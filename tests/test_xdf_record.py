"""Recording XDF on loopback: a synthetic session replayed over LSL plus two streams of "another program" (an IMU,
stimulus markers), recorded as HDF5 and XDF at once, read back with pyxdf, replayed with `myosight replay`; a
recording cut short (a crash, a full disk) is finished by `myosight record --recover`."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import h5py
import numpy as np
import pylsl
import pytest
import pyxdf
from lsl_helpers import unique_source, wait_for

from myosight.capture import xdf_replay
from myosight.capture.recorder import RecorderSpec, RecordingError, SessionRecorder, parse_stream_query
from myosight.capture.recorder_xdf import partial_xdf_path
from myosight.capture.replay import SessionReplay
from myosight.capture.streams import emg_stream_info, marker_stream_info, open_outlet
from myosight.capture.xdf_format import check_xdf
from myosight.capture.xdf_replay import XdfReplay
from myosight.cli import main
from myosight.data.actionsense import ARMS, ActionSenseSession
from myosight.data.synth import SynthConfig, write_sessions
from myosight.errors import ConfigError, SessionFormatError

CLASSES = ("Slice bread", "Clean a plate with a towel")
FRAME_SIZE = 32
OFFSET_ATTR = "LSL clock to epoch offset (s)"
IMU_RATE = 100.0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two actions of 6 s, both arms, a 32-pixel video at 10 fps."""
    config = SynthConfig(subjects=("S03",), actions_per_class=1, seconds_per_action=(6.0, 6.0), classes=CLASSES,
                         seed=3, width=FRAME_SIZE, height=FRAME_SIZE, fps=10.0)
    return write_sessions(config, tmp_path_factory.mktemp("synthetic"), progress=False)[0].hdf5_path


class OtherProgram:
    """What another program publishes on the network: an IMU (6 float channels, 100 Hz) and stimulus markers."""

    def __init__(self) -> None:
        tag = unique_source("other")
        self.imu_name, self.marker_name = f"IMU {tag}", f"Stimulus {tag}"
        info = pylsl.StreamInfo(self.imu_name, "IMU", 6, IMU_RATE, pylsl.cf_float32, f"{tag}-imu")
        info.desc().append_child_value("manufacturer", "test bench")
        self.imu = pylsl.StreamOutlet(info)
        self.markers = pylsl.StreamOutlet(pylsl.StreamInfo(self.marker_name, "Markers", 1, 0, pylsl.cf_string,
                                                           f"{tag}-markers"))
        self.imu_sent = np.zeros((0, 6), np.float32)
        self.imu_stamps = np.zeros(0)
        self.markers_sent: list[tuple[float, str]] = []

    def send(self, start: float, samples: int) -> None:
        rng = np.random.default_rng(len(self.imu_sent))
        data = rng.normal(0, 1, (samples, 6)).astype(np.float32)
        stamps = start + np.arange(samples) / IMU_RATE
        self.imu.push_chunk(data, stamps.tolist())
        self.imu_sent = np.concatenate([self.imu_sent, data])
        self.imu_stamps = np.concatenate([self.imu_stamps, stamps])
        text = f"trial {len(self.markers_sent) + 1}"
        self.markers.push_sample([text], start)
        self.markers_sent.append((start, text))


# -- a clean recording in both formats ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The synthetic session replayed once at 6x, its labels as the activities, the other program's two
    streams beside it; recorded as HDF5 and XDF by the command line's code path."""
    source = unique_source("xrec")
    replay = SessionReplay(synthetic, speed=6.0, source=source, frame_size=FRAME_SIZE)
    replay.open()
    other = OtherProgram()
    out = tmp_path_factory.mktemp("recorded")
    recorder = SessionRecorder(RecorderSpec(
        out_dir=str(out), source=source, label_source=None, subject="S03", flush_every_s=0.5,
        formats=["hdf5", "xdf"], extra_streams=[other.marker_name, "type=IMU"], resolve_timeout_s=3.0))
    recorder.open()
    stop, replay_stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    assert wait_for(lambda: {t.role for t in recorder.tracks} >= {other.imu_name, other.marker_name}, 10)
    player = threading.Thread(target=replay.run, args=(replay_stop,), daemon=True)
    player.start()
    now = pylsl.local_clock()
    for k in range(3):
        other.send(now + 1.5 * k, 150)
    player.join(60)
    sent = replay.stats
    wanted = {"emg-left": sent.emg_samples["left"], "emg-right": sent.emg_samples["right"], "video": sent.frames,
              "activities": sent.markers, other.imu_name: len(other.imu_sent),
              other.marker_name: len(other.markers_sent)}

    def all_in() -> bool:
        return {t.role: t.written + t.pending.rows for t in recorder.tracks} == wanted

    arrived = wait_for(all_in, 20)
    stop.set()
    thread.join(10)
    stats = recorder.close()
    replay.close()
    assert arrived, f"the recorder did not get everything: {stats.rows} vs {wanted}"
    return {"stats": stats, "replay": replay, "other": other, "source": source}


def _by_name(streams: list[dict]) -> dict[str, dict]:
    return {s["info"]["name"][0]: s for s in streams}


def test_pyxdf_reads_the_recording_with_labrecorders_headers_and_clock_offsets(recorded: dict,
                                                                                synthetic: Path) -> None:
    stats, replay, other = recorded["stats"], recorded["replay"], recorded["other"]
    path = Path(stats.xdf)
    assert path.suffix == ".xdf" and path.exists() and not partial_xdf_path(path).exists()
    assert Path(stats.session).with_suffix(".xdf") == path
    counts = check_xdf(path)  # the structural walk: every chunk whole, every stream with its footer
    raw, header = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    mine = header["info"]["myosight"][0]
    assert header["info"]["version"] == ["1.0"] and mine["subject"] == ["S03"]
    assert mine["activity_labels"] == [f"myosight-{recorded['source']}-labels"]
    streams = _by_name(raw)
    assert set(streams) == {"myosight-emg-left", "myosight-emg-right", "myosight-video", "myosight-labels",
                            other.imu_name, other.marker_name}
    for stream in streams.values():
        info, footer = stream["info"], stream["footer"]["info"]
        assert info["hostname"][0] and info["uid"][0] and info["created_at"][0]  # the full LSL header
        assert int(footer["sample_count"][0]) == len(stream["time_stamps"]) == counts[int(info["stream_id"])]
        assert float(footer["first_timestamp"][0]) == pytest.approx(stream["time_stamps"][0], abs=1e-9)
        assert len(footer["clock_offsets"][0]["offset"]) == len(stream["clock_times"]) >= 1
    with ActionSenseSession(synthetic) as original:
        for arm in ARMS:
            got = streams[f"myosight-emg-{arm}"]
            assert got["info"]["desc"][0]["arm"] == [arm]
            theirs = original.emg(arm)
            assert np.array_equal(got["time_series"], theirs.data.astype(np.float32))
            # stamps as the sender made them: the session's times moved by the replay's whole-second shift
            assert np.allclose(got["time_stamps"] - theirs.time_s, replay.playback.shift, atol=1e-6)
    video = streams["myosight-video"]
    assert video["time_series"].shape == (replay.stats.frames, FRAME_SIZE * FRAME_SIZE * 3)
    imu = streams[other.imu_name]
    assert np.array_equal(imu["time_series"], other.imu_sent)
    assert np.allclose(imu["time_stamps"], other.imu_stamps, atol=1e-9)
    assert imu["info"]["desc"][0]["manufacturer"] == ["test bench"]
    assert streams[other.marker_name]["time_series"] == [[text] for _, text in other.markers_sent]


def test_clock_synchronised_stamps_match_the_hdf5_recording(recorded: dict) -> None:
    """pyxdf's clock synchronisation and the recorder's own correction put every sample at the same time."""
    stats, other = recorded["stats"], recorded["other"]
    synced = _by_name(pyxdf.load_xdf(stats.xdf, dejitter_timestamps=False)[0])
    with ActionSenseSession(stats.session) as session:
        offset = float(session.attrs("/")[OFFSET_ATTR])
        for arm in ARMS:
            emg = session.emg(arm)
            assert np.allclose(synced[f"myosight-emg-{arm}"]["time_stamps"], emg.time_s - offset, atol=1e-3)
        group = f"lsl-IMU_{other.imu_name.split()[1]}/IMU"
        assert session.streams()[group] == len(other.imu_sent)
    with h5py.File(stats.session, "r") as file:
        assert np.array_equal(file[group]["data"][()], other.imu_sent)
        assert other.imu_name in file[group].attrs["LSL stream header"]
    assert main(["info", stats.session]) == 0  # the extra groups do not disturb the project's reader


def test_myosight_replays_the_recording(recorded: dict, capsys: pytest.CaptureFixture) -> None:
    """`myosight replay` publishes the XDF recording's arms, video and activity labels (not the other program's
    markers), having read only those streams from the file."""
    stats, replay = recorded["stats"], recorded["replay"]
    selected: list = []
    load = pyxdf.load_xdf

    def spy(*args, **kwargs):
        selected.append(kwargs.get("select_streams"))
        return load(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pyxdf, "load_xdf", spy)
        back = XdfReplay(stats.xdf, source=unique_source("back"))
    names = {s["info"]["stream_id"]: s["info"]["name"][0] for s in pyxdf.load_xdf(stats.xdf)[0]}
    assert sorted(names[i] for i in selected[0]) == ["myosight-emg-left", "myosight-emg-right", "myosight-labels",
                                                     "myosight-video"]
    assert back.frame_size == FRAME_SIZE and [text for _, text in back.labels] == [
        text for _, text in replay.labels]
    assert main(["replay", stats.xdf, "--speed", "50", "--source", unique_source("cli")]) == 0
    sent = replay.stats
    out = capsys.readouterr().out
    assert (f"sent {sent.emg_samples} EMG samples, {sent.frames} frames, {sent.markers} labels") in out


def test_stream_queries_are_checked() -> None:
    assert parse_stream_query("Stimulus") == ("", "Stimulus")
    assert parse_stream_query("type=IMU") == ("type", "IMU")
    for bad in ("colour=red", "name='x'", "", "type="):
        with pytest.raises(ConfigError, match="--stream"):
            parse_stream_query(bad)
    with pytest.raises(ConfigError, match="formats"):
        SessionRecorder(RecorderSpec(out_dir=".", source="x", formats=["csv"]))


# -- cut short ---------------------------------------------------------------------------------------------
def _record_emg(tmp_path: Path, seconds: int, **spec) -> tuple[SessionRecorder, dict]:
    """An XDF-only recorder on two EMG outlets that get `seconds` of 200-Hz samples, one flush per second."""
    source = unique_source("cut")
    outlets = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
    labels = open_outlet(marker_stream_info(source))
    recorder = SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source=source, label_source=None,
                                            formats=["xdf"], video=False, **spec))
    recorder.open()
    start = pylsl.local_clock()
    labels.push_sample(["Slice bread|Start"], start)
    for second in range(seconds):
        stamps = start + second + np.arange(200) / 200
        for arm, outlet in outlets.items():
            outlet.push_chunk(np.full((200, 8), second + (arm == "right"), np.float32), stamps.tolist())
        assert wait_for(lambda s=second: recorder.pull() >= 0 and all(
            t.xdf.written + sum(len(x) for x in t.xdf.stamps) >= 200 * (s + 1)
            for t in recorder.tracks if t.role.startswith("emg")), 10)
        recorder.flush()
    return recorder, {"outlets": outlets, "labels": labels}


def test_a_crash_leaves_a_partial_file_that_recover_finishes(tmp_path: Path) -> None:
    recorder, _keep = _record_emg(tmp_path, 3)
    partial = partial_xdf_path(Path(recorder.stats.xdf))
    recorder.xdf._file.write(b"\x04\x00\x10\x00\x00\x03")  # a torn chunk: the process died inside a write
    recorder.xdf._file.close()  # ... and nothing else of the recorder ran
    with pytest.raises(SessionFormatError, match=r"incomplete|damaged"):
        check_xdf(partial)
    assert main(["record", "--recover", str(tmp_path)]) == 0
    final = Path(recorder.stats.xdf)
    assert final.exists() and not partial.exists()
    streams = _by_name(pyxdf.load_xdf(str(final), dejitter_timestamps=False)[0])
    for arm in ARMS:
        got = streams[f"myosight-emg-{arm}"]
        assert len(got["time_series"]) == 600 == int(got["footer"]["info"]["sample_count"][0])
        assert sorted(set(got["time_series"][:, 0])) == [k + (arm == "right") for k in range(3)]
    assert streams["myosight-labels"]["time_series"] == [["Slice bread|Start"]]
    for track in recorder.tracks:
        track.inlet.close()


class FillingDisk:
    """A file whose disk fills after `room` more bytes (the write that crosses it lands partly, then fails)."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        done = self.file.write(bytes(data[:self.room]))
        self.room -= done
        return done

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def test_a_full_disk_keeps_every_whole_flush_and_recover_finishes_the_file(tmp_path: Path) -> None:
    recorder, keep = _record_emg(tmp_path, 2)
    partial = partial_xdf_path(Path(recorder.stats.xdf))
    kept = partial.stat().st_size
    recorder.xdf._file = FillingDisk(recorder.xdf._file, 3000)  # less than a second of two armbands
    stamps = pylsl.local_clock() + np.arange(200) / 200
    for outlet in keep["outlets"].values():
        outlet.push_chunk(np.zeros((200, 8), np.float32), stamps.tolist())
    assert wait_for(lambda: recorder.pull() >= 0 and sum(len(x) for t in recorder.tracks if t.xdf
                                                         for x in t.xdf.stamps) >= 400, 10)
    with pytest.raises(RecordingError, match=r"the disk is full .* keeps everything up to the last flush"):
        recorder.flush()
    assert partial.stat().st_size == kept  # the torn write was cut off again
    stats = recorder.close()  # no room for the footers either: the file stays partial
    assert stats.state == "failed" and stats.xdf == str(partial)
    assert main(["record", "--recover", str(partial)]) == 0
    streams = _by_name(pyxdf.load_xdf(str(partial.with_suffix("")), dejitter_timestamps=False)[0])
    assert [len(streams[f"myosight-emg-{arm}"]["time_stamps"]) for arm in ARMS] == [400, 400]


def test_replay_reads_arms_from_the_header_scan(tmp_path: Path) -> None:
    """The arms are chosen from the stream headers alone (no samples read): the viewer asks from these."""
    recorder, _keep = _record_emg(tmp_path, 1)
    recorder.close()
    contents = xdf_replay.scan_streams(recorder.stats.xdf)
    arms = xdf_replay.choose_arms(contents.streams, Path(recorder.stats.xdf))
    assert {arm: s.name for arm, s in arms.items()} == {arm: f"myosight-emg-{arm}" for arm in ARMS}
    assert contents.counts[arms["left"].stream_id] == 200


# -- the viewer's replay picker ----------------------------------------------------------------------------
def _anonymous_arms(path: Path) -> Path:
    """A file of another program: two EMG streams that do not say which arm they are."""
    from xdf_writer import XdfStream, write_xdf

    stamps = 100.0 + np.arange(400) / 200
    emg = [XdfStream(f"EMG {k}", "EMG", "float32", stamps, np.full((400, 8), k, np.float32), 200.0, f"amp-{k}")
           for k in (1, 2)]
    return write_xdf(path, emg)


def test_the_picker_asks_which_stream_is_which_arm_only_when_the_file_does_not_say(tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    from myosight.gui.widgets.xdf_arms import xdf_arms

    path = _anonymous_arms(tmp_path / "other.xdf")
    asked: list = []

    def ask(streams, where):
        asked.append(([s.name for s in streams], where))
        return {"left": str(streams[1].stream_id), "right": str(streams[0].stream_id)}

    assert xdf_arms(path, None, None, ask) == ("2", "1") and asked == [(["EMG 1", "EMG 2"], path)]
    asked.clear()
    assert xdf_arms(path, "EMG 1", "EMG 2", ask) == ("EMG 1", "EMG 2") and asked == []  # the fields settle it
    assert xdf_arms(path, None, None, lambda *_: None) is None  # cancelled
    replay = XdfReplay(path, left="2", right="1", source=unique_source("picked"))
    assert replay.emg["left"][1][0, 0] == 2 and replay.emg["right"][1][0, 0] == 1
    (tmp_path / "renamed.xdf").write_bytes(b"\x89HDF\r\n")  # not what its name says
    with pytest.raises(SessionFormatError, match="not an XDF file"):
        xdf_arms(tmp_path / "renamed.xdf", None, None, ask)


def test_the_arm_dialog_wants_one_stream_per_arm(tmp_path: Path, qtbot) -> None:
    pytest.importorskip("PySide6")
    from myosight.capture.xdf_replay import emg_streams, scan_streams
    from myosight.gui.widgets.xdf_arms import XdfArmsDialog

    path = _anonymous_arms(tmp_path / "other.xdf")
    streams = emg_streams(scan_streams(path).streams)
    dialog = XdfArmsDialog(streams, path)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert dialog.answer() == {"left": "1", "right": "2"} and ok.isEnabled()
    dialog.boxes["right"].setCurrentIndex(1)  # EMG 1 for both arms
    assert not ok.isEnabled() and "both arms" in dialog.problem.text()
    dialog.boxes["left"].setCurrentIndex(0)  # none for the left arm, EMG 1 for the right
    assert ok.isEnabled() and dialog.answer() == {"left": None, "right": "1"}
    dialog.boxes["right"].setCurrentIndex(0)
    assert not ok.isEnabled() and "at least one arm" in dialog.problem.text()


def test_a_file_that_cannot_be_recovered_is_named_and_does_not_stop_a_new_recording(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "2026-01-01_00-00-00_streamLog_myosight_S00.xdf.partial"
    junk.write_bytes(b"XD")  # cut inside the magic bytes
    assert main(["record", "--recover", str(junk)]) == 1
    assert capsys.readouterr().err.strip() == f"myosight: error: {junk}: not an XDF file (shorter than its magic bytes)"
    source = unique_source("after")
    outlet = open_outlet(emg_stream_info("left", source))
    assert main(["record", "--source", source, "--out", str(tmp_path), "--format", "xdf", "--label-source", "none",
                 "--duration", "1"]) == 0
    out = capsys.readouterr().out
    assert f"myosight: warning: cannot recover {junk}" in out and junk.exists()
    assert len(list(tmp_path.glob("*.xdf"))) == 1
    assert list(tmp_path.glob("*.xdf.partial")) == [junk]  # run() after open() opened no second file
    del outlet
