"""The desktop viewer, offscreen: real LSL streams, real worker processes, real ZeroMQ, real Qt widgets."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pylsl
import pytest

pytest.importorskip("PySide6", reason="the gui extra (PySide6, pyqtgraph) is not installed")

from lsl_helpers import inlet_for, unique_source

from myosight.capture.launch import spec_of_kind
from myosight.capture.streams import emg_stream_info, open_outlet, video_stream_info
from myosight.data.activities import short_name
from myosight.gui.controller import (
    Controller,
    WorkerSettings,
    free_tcp_address,
)
from myosight.gui.main_window import MainWindow
from myosight.gui.qt import QtCore, QtGui, pg
from myosight.gui.state import GuiState, StreamView
from myosight.gui.widgets.attention import NO_ATTENTION, AttentionTiles
from myosight.gui.widgets.emg_traces import peak_decimate
from myosight.gui.widgets.health import BannerModel
from myosight.realtime.messages import (
    HealthMessage,
    KineticsTop,
    PredictionMessage,
    ResultPublisher,
    StreamStatus,
    decode,
    decode_result,
)

ARMS = ("left", "right")



class PacedSource:
    """Both arms' sEMG (160 Hz, 20-ms chunks) and optionally 112-px video (10 fps), sent at the pace of the
    wall clock from a thread; `paused` stops the data (the outlets stay), as a stalled armband would;
    `nan_arm` sends NaN on that arm, as a broken armband or relay would."""

    def __init__(self, source: str, video: bool = False, nan_arm: str | None = None) -> None:
        self.source, self.nan_arm = source, nan_arm
        self.outlets = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
        self.video = open_outlet(video_stream_info(112, 10, source)) if video else None
        self.paused = threading.Event()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = np.random.default_rng(7)
        t = pylsl.local_clock()
        next_frame = t
        while not self._stop.wait(0.02):
            now = pylsl.local_clock()
            if self.paused.is_set():
                t = next_frame = now
                continue
            n = int((now - t) * 160)
            if n > 0:
                stamps = (t + np.arange(1, n + 1) / 160).tolist()
                for arm, outlet in self.outlets.items():
                    values = rng.normal(0, 25, (n, 8)).astype(np.float32)
                    outlet.push_chunk(np.full_like(values, np.nan) if arm == self.nan_arm else values, stamps)
                t = stamps[-1]
                self.sent += n
            if self.video is not None and now >= next_frame:
                frame = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
                self.video.push_sample(frame.reshape(-1).view(np.int8), now)
                next_frame = now + 0.1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_peak_decimation_keeps_extremes_and_the_whole_span() -> None:
    times = np.arange(2001) / 200.0
    values = np.zeros((2001, 2))
    values[1234, 0], values[77, 1] = 100.0, -50.0
    out_t, out_v = peak_decimate(times, values, 400)
    assert len(out_t) <= 400 and out_v.shape == (len(out_t), 2)
    assert out_v[:, 0].max() == 100.0 and out_v[:, 1].min() == -50.0
    assert out_t[0] == times[0] and out_t[-1] == times[-1]
    same_t, _ = peak_decimate(times[:300], values[:300], 400)
    assert len(same_t) == 300


def _drawn_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _wait_for_prediction(qtbot, state: GuiState, timeout_s: float = 90.0) -> None:
    qtbot.waitUntil(lambda: state.prediction is not None and state.health is not None, timeout=int(timeout_s * 1000))


def test_window_with_a_replay_and_a_worker(qtbot, synthetic_emg_model: dict, tmp_path: Path) -> None:
    """The window starts a replay and a worker, shows their data, restarts the worker, and stops both."""
    bundle = str(synthetic_emg_model["bundle"])
    state = GuiState()
    controller = Controller(state, free_tcp_address(), WorkerSettings(bundle=bundle))
    window = MainWindow(state, controller, controller.address)
    qtbot.addWidget(window)
    window.show()
    window.choose_bundle(bundle)
    session = synthetic_emg_model["sessions"][0].hdf5_path
    spec = spec_of_kind("replay", session=str(session), speed=3.0, loop=True, source=unique_source("guitest"))
    controller.start_source(spec)
    try:
        _wait_for_prediction(qtbot, state)
        qtbot.waitUntil(lambda: window.prediction.shown is not None, timeout=3000)
        shown = window.prediction.shown  # widgets change only in the frame timer, which waits while this runs
        classes = shown.classes
        assert shown.label in classes
        assert window.prediction.label.text() == short_name(shown.label)
        probs = shown.probs
        bars = window.prediction.bars.values()
        assert len(bars) == min(5, len(classes))
        for name, p in bars.items():
            assert p == pytest.approx(float(probs[classes.index(name)]), abs=1e-6)
        assert max(bars.values()) == pytest.approx(float(probs.max()), abs=1e-6)
        # a labelled replay: true labels and a running accuracy
        qtbot.waitUntil(lambda: window.prediction.accuracy.text().startswith("running accuracy"), timeout=30000)
        assert window.prediction.truth.text().startswith("true: ")
        assert window.prediction.history.items
        # health numbers from the worker
        # the worker's own figures (the rate on the replayed time stamps), not the viewer's arrival rate that the
        # table shows until the worker's first health report is drawn (at 3x speed that is three times higher)
        qtbot.waitUntil(lambda: _drawn_number(window.health.worker_values["latency_p50_ms"].text())
                        and window.health.cell("emg-left", "rate (Hz)") not in (None, "–", "0.0"), timeout=10000)
        assert 100 < float(window.health.cell("emg-left", "rate (Hz)")) < 200
        assert window.health.cell("emg-right", "state") == "ok"
        assert float(window.health.worker_values["latency_p50_ms"].text()) >= 0
        assert int(window.health.worker_values["windows_predicted"].text()) >= 1
        assert window.health.worker_values["mode"].text() == "emg"
        # traces, camera (the replay publishes the model frames of the bundle's geometry), spectrograms,
        # attention of a head without any
        assert window.traces.curve_points("emg-left") > 100 and window.traces.curve_points("emg-right") > 100
        qtbot.waitUntil(lambda: window.camera.frames_shown > 0, timeout=10000)
        assert spec.frame_size == controller.worker.geometry().crop_size == 224
        assert window.camera.frame.image.width() == 224
        assert window.camera.strip.clip_starts and len(window.camera.strip.clip_starts) == 5
        assert window.spectrograms.clips_shown >= 1
        assert window.attention.weights == {} and shown.attention is None  # a linear sEMG head has none
        assert window.attention.note.startswith(NO_ATTENTION)
        assert "sEMG only" in window.prediction.kinetics.text()
        assert window.clock.frames > 10
        # the sEMG-only switch restarts the worker; predictions come back
        first_worker = controller.processes.children["worker"].process.pid
        window.controls.emg_only.setChecked(True)
        qtbot.waitUntil(lambda: controller.worker_generation == 2 and state.prediction is not None, timeout=90000)
        assert controller.processes.children["worker"].process.pid != first_worker
        assert controller.worker.emg_only
        _replay_transport(qtbot, window, state)
        shot = window.save_screenshot(tmp_path / "main_window.png")
        image = QtGui.QImage(str(shot))
        assert image.width() == window.width() and image.height() == window.height()
        pixels = [image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 41)]
        assert len(np.unique(pixels)) > 20  # a drawn window, not a blank one
    finally:
        processes = [child.process for child in controller.processes.children.values()]
        window.close()
    assert processes and all(p.exitcode is not None for p in processes)


def _replay_transport(qtbot, window: MainWindow, state: GuiState) -> None:
    """Pause, play, speed and seek through the replay's control, as the buttons send them."""
    controls = window.controls
    assert window.controller.replay is not None
    qtbot.waitUntil(lambda: state.replay is not None and controls.play.isEnabled(), timeout=10000)
    qtbot.mouseClick(controls.play, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: state.replay is not None and state.replay.get("paused") is True, timeout=10000)
    qtbot.waitUntil(lambda: "Replay paused" in window.banner.text() and controls.play.text() == "Play", timeout=3000)
    # a paused replay sends nothing, which is not a lost stream
    qtbot.waitUntil(lambda: state.streams.get("emg-left") is not None and state.streams["emg-left"].lost,
                    timeout=10000)
    assert "Stream lost" not in window.banner.text()
    qtbot.mouseClick(controls.play, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: state.replay is not None and state.replay.get("paused") is False, timeout=10000)
    controls.speed.setValue(2.0)
    controls.speed.editingFinished.emit()
    qtbot.waitUntil(lambda: state.replay is not None and state.replay.get("speed") == 2.0, timeout=10000)
    controls.seek.setValue(int(10 * (state.replay["duration_s"] - 6.0)))
    controls.seek.sliderReleased.emit()
    qtbot.waitUntil(lambda: state.replay is not None and state.replay["position_s"] > state.replay["duration_s"] - 7,
                    timeout=10000)


@contextlib.contextmanager
def worker_of(source: PacedSource, bundle: Path, **config: object) -> Iterator[str]:
    """A worker of the sEMG-only `bundle` on `source`, in a thread, publishing on a free port (its address
    yielded); stopped, with the source, on the way out."""
    import torch

    from myosight.models.bundle import load_bundle
    from myosight.realtime.worker import Worker, WorkerConfig

    torch.set_num_threads(1)
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    worker = Worker(load_bundle(bundle), WorkerConfig(source=source.source, emg_only=True, **config), publisher)
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    runner.start()
    try:
        yield publisher.address
    finally:
        stop.set()
        runner.join(10)
        worker.close()
        publisher.close()
        source.stop()


def test_a_lost_stream_shows_a_banner_until_it_is_back(qtbot, synthetic_emg_model: dict) -> None:
    """The armbands stop sending: the banner says which streams are lost; when data returns it says they are
    back, then clears."""
    source = PacedSource(unique_source("guitest"))
    with worker_of(source, synthetic_emg_model["bundle"], lost_after_s=0.3, health_every_s=0.2) as address:
        state = GuiState()
        window = MainWindow(state, None, address, banner=BannerModel(back_visible_s=1.0))
        qtbot.addWidget(window)
        window.show()
        window.show_streams(source.source)
        try:
            qtbot.waitUntil(lambda: window.health.cell("emg-left", "state") == "ok", timeout=15000)
            assert not window.banner.isVisible()
            source.paused.set()
            # Each stream is declared lost when its own last sample is older than the limit, so the two arms are
            # listed one after the other (tens of milliseconds apart): wait for the state where both are.
            both_lost = ("emg-left", "emg-right")
            qtbot.waitUntil(lambda: window.banner.isVisible() and _lists_lost(window.banner.text(), *both_lost),
                            timeout=10000)
            assert window.banner.level == "error"
            qtbot.waitUntil(lambda: window.health.cell("emg-left", "state") == "lost", timeout=5000)
            source.paused.clear()
            qtbot.waitUntil(lambda: "Stream back" in window.banner.text() and window.banner.level == "ok",
                            timeout=10000)
            qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=10000)
            assert window.health.cell("emg-left", "state") == "ok"
            health = state.health.streams["emg-left"]
            assert health.lost_events >= 1 and health.recovered_events >= 1
            assert window.health.cell("emg-left", "dropouts").startswith(str(health.lost_events))
        finally:
            window.close()


def test_an_armband_sending_nan_is_shown_stuck_not_ok(qtbot, synthetic_emg_model: dict) -> None:
    """An arm whose every value is NaN delivers samples (so it is not lost), each held at the last finite value:
    the health table and the banner say its channels are stuck, and the other arm stays ok."""
    source = PacedSource(unique_source("guitest"), nan_arm="left")
    with worker_of(source, synthetic_emg_model["bundle"], health_every_s=0.2) as address:
        window = MainWindow(GuiState(), None, address)
        qtbot.addWidget(window)
        window.show()
        try:
            stuck = "stuck: channels 1-8 ("
            qtbot.waitUntil(lambda: (window.health.cell("emg-left", "state") or "").startswith(stuck),
                            timeout=20000)
            assert window.health.cell("emg-left", "state").endswith(" non-finite)")
            assert window.health.cell("emg-right", "state") == "ok"
            qtbot.waitUntil(lambda: window.banner.isVisible() and f"emg-left {stuck}" in window.banner.text(),
                            timeout=5000)
            assert window.banner.level == "warning"
        finally:
            window.close()


def _lists_lost(text: str, *streams: str) -> bool:
    """Whether a banner line says that every one of these streams is lost."""
    lost = next((part for part in text.split(" · ") if part.startswith("Stream lost: ")), "")
    return all(stream in lost for stream in streams)


def _prediction(label: str, true_label: str | None, classes: list[str], seq: int, **changes) -> PredictionMessage:
    """A fusion prediction of a self-attention head with every optional part (`changes` replace fields)."""
    probs = np.full(len(classes), 0.1 / (len(classes) - 1), np.float32)
    probs[classes.index(label)] = 0.9
    values = dict(
        label=label, label_index=classes.index(label), classes=classes, probs=probs, window_end=100.0 + seq,
        clip_starts=[95.0 + seq + k for k in range(5)], mode="fusion", true_label=true_label, latency_ms=12.5,
        compute_ms=10.0, rgb_reused=0, windows_skipped=0, arms=["left", "right"], emg_coverage=[1.0, 1.0],
        attention={"rgb": np.array([0.1, 0.15, 0.2, 0.25, 0.3], np.float32),
                   "emg": np.array([0.3, 0.25, 0.2, 0.15, 0.1], np.float32)},
        kinetics=KineticsTop(np.array([3, 1, 399], np.int32), np.array([0.7, 0.2, 0.1], np.float32)),
        spectrogram=np.random.default_rng(seq).random((16, 10, 17)).astype(np.float32),
    )
    return PredictionMessage(**(values | changes))


def _health(streams: dict[str, StreamStatus] | None = None, **changes) -> HealthMessage:
    values = dict(streams=streams or {}, mode="fusion", video_lost=False, windows_predicted=0, windows_skipped=0,
                  rgb_features=0, emg_features=0)
    return HealthMessage(**(values | changes))


def test_a_worker_elsewhere_attention_kinetics_accuracy_and_bad_messages(qtbot) -> None:
    """`--connect`: predictions of a fusion model from a publisher the window did not start."""
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    state = GuiState()
    kinetics = [f"kinetics-{i}" for i in range(400)]
    window = MainWindow(state, None, publisher.address, kinetics_labels=kinetics)
    qtbot.addWidget(window)
    window.show()
    classes = ["Slice bread", "Peel a potato", "Clean a pan with a towel"]
    try:
        # the subscription is live once a health message gets through
        qtbot.waitUntil(lambda: (publisher.publish(_health()), state.health is not None)[1], timeout=10000)
        for seq, (label, true) in enumerate([("Slice bread", "Slice bread"), ("Peel a potato", "Slice bread"),
                                             ("Peel a potato", "Peel a potato"), ("Slice bread", "Slice bread")]):
            publisher.publish(_prediction(label, true, classes, seq))
        qtbot.waitUntil(lambda: "of 4" in window.prediction.accuracy.text(), timeout=5000)
        assert window.prediction.accuracy.text() == "running accuracy 75.0 % of 4"
        assert window.prediction.label.text() == "Slice bread"
        assert window.prediction.bars.values()["Slice bread"] == pytest.approx(0.9)
        assert [true for _, true in window.prediction.history.items] == ["Slice bread", "Slice bread",
                                                                          "Peel a potato", "Slice bread"]
        assert window.attention.tile_text("rgb") == ["0.10", "0.15", "0.20", "0.25", "0.30"]
        assert window.attention.tile_text("emg") == ["0.30", "0.25", "0.20", "0.15", "0.10"]
        assert window.attention.note is None
        assert window.prediction.kinetics.text() == ("I3D (Kinetics-400) sees: kinetics-3 0.70 · kinetics-1 0.20 · "
                                                     "kinetics-399 0.10")
        assert window.spectrograms.clips_shown == 4
        assert window.camera.strip.clip_starts == [98.0, 99.0, 100.0, 101.0, 102.0]
        assert not window.controls.start.isEnabled()  # nothing to start when viewing a worker elsewhere
        # a prediction that cannot be drawn is counted and ignored; the last good one stays on screen
        bad = decode(_prediction("Slice bread", None, classes, 9).encode(1))
        bad.fields["classes"] = classes[:2]
        publisher.send("prediction", bad.fields, bad.arrays)
        qtbot.waitUntil(lambda: window.receiver.rejected == 1, timeout=5000)
        assert window.prediction.accuracy.text() == "running accuracy 75.0 % of 4"
        publisher.send("health", {"streams": ["emg-left"]})
        qtbot.waitUntil(lambda: window.receiver.rejected == 2, timeout=5000)
        # a lost stream reported by the worker
        video = StreamStatus(lost=True, samples=40, rate_hz=0.0, clock_offset_ms=0.0, lost_events=1,
                             recovered_events=0)
        publisher.publish(_health({"video": video}, latency_p50_ms=7.25, latency_p95_ms=9.0, windows_predicted=4))
        qtbot.waitUntil(lambda: "Stream lost: video" in window.banner.text(), timeout=5000)
        assert window.health.worker_values["latency_p50_ms"].text() == "7.2"
        assert window.health.worker_values["realtime_factor"].text() == "–"  # absent, not 0
        # a Late Fusion (PAR) prediction: no clip attention, said in words rather than drawn as 0.20 tiles
        publisher.publish(_prediction("Peel a potato", None, classes, 10, attention=None))
        qtbot.waitUntil(lambda: window.prediction.label.text() == "Peel a potato", timeout=5000)
        assert window.attention.weights == {} and window.attention.note == NO_ATTENTION
        assert window.attention.tile_text("rgb") == []
    finally:
        window.close()
        publisher.close()


def _plot_titles(widget: pg.GraphicsLayoutWidget) -> list[str]:
    """The titles of the plots in a widget's scene (plots that were laid out again must be gone from it)."""
    plots = [item for item in widget.scene().items() if isinstance(item, pg.PlotItem)]
    return sorted(plot.titleLabel.text for plot in plots)


def _one_arm(seq: int, classes: list[str]) -> PredictionMessage:
    """A prediction of a model of the right armband alone: one coverage, eight spectrogram channels."""
    spectrogram = np.random.default_rng(seq).random((8, 10, 17)).astype(np.float32)
    return _prediction(classes[0], None, classes, seq, arms=["right"], emg_coverage=[1.0], spectrogram=spectrogram)


def test_the_panels_show_just_the_arms_there_are(qtbot) -> None:
    """One armband: one trace plot (the stream the viewer receives) and one spectrogram plot (the model's arm),
    built by the frame timer's path; a model of both arms lays the spectrograms out again for two."""
    state = GuiState()
    window = MainWindow(state, None, free_tcp_address())
    qtbot.addWidget(window)
    window.show()
    classes = ["Slice bread", "Peel a potato"]
    try:
        window._tick()  # before any stream: both arms, empty, so that the window does not look broken
        assert window.traces.streams == ["emg-left", "emg-right"] and len(window.traces.plots) == 2
        times = 100.0 + np.arange(800) / 160
        state.push_emg("emg-right", times, np.random.default_rng(1).normal(0, 25, (800, 8)).astype(np.float32))
        state.set_stream_view("emg-right", StreamView(lost=False, rate_hz=160.0, samples=800))
        for seq in range(3):
            state.set_prediction(_one_arm(seq, classes))
        window._tick()
        assert window.traces.streams == ["emg-right"] and list(window.traces.plots) == ["emg-right"]
        assert _plot_titles(window.traces) == ["sEMG · right arm"]
        assert window.traces.curve_points("emg-right") > 100
        spectrograms = window.spectrograms
        assert spectrograms.arms == ("right",) and list(spectrograms.images) == ["right"]
        assert _plot_titles(spectrograms) == ["Mel spectrograms · right arm"]
        image = spectrograms.images["right"].image
        assert image.shape == (8 * 11 - 1, 10 * 17) and spectrograms.clips_shown == 3
        assert np.isfinite(image).sum() == 3 * 8 * 10 * 17  # three clips of eight channels, nothing else
        np.testing.assert_array_equal(image[7 * 11:7 * 11 + 10, -17:], _one_arm(2, classes).spectrogram[0])
        # a lost stream stays drawn (the health panel says it is lost); a clip of another layout is not drawn
        state.set_stream_view("emg-right", StreamView(lost=True, rate_hz=0.0, samples=800))
        window._tick()
        assert window.traces.streams == ["emg-right"]
        spectrograms.update_clips([np.ones((16, 10, 17), np.float32)])
        assert spectrograms.clips_shown == 0 and np.array_equal(spectrograms.images["right"].image, image,
                                                                 equal_nan=True)
        # a worker restarted with a model of both arms: two plots, the one-arm clips forgotten
        state.set_prediction(_prediction(classes[1], None, classes, 7))
        window._tick()
        assert spectrograms.arms == ("left", "right") and list(spectrograms.images) == ["left", "right"]
        assert _plot_titles(spectrograms) == ["Mel spectrograms · left arm", "Mel spectrograms · right arm"]
        assert spectrograms.clips_shown == 1
        for arm in ("left", "right"):
            assert np.isfinite(spectrograms.images[arm].image).sum() == 8 * 10 * 17
    finally:
        window.close()


def test_attention_panel_says_when_a_model_has_no_clip_attention(qtbot) -> None:
    """A head without clip attention sends none; the decoded prediction has none, and the panel says so instead
    of drawing tiles (a uniform 0.20 would look like a measurement)."""
    classes = ["Slice bread", "Peel a potato"]
    tiles = AttentionTiles()
    qtbot.addWidget(tiles)
    tiles.resize(400, 80)
    tiles.show()
    assert tiles.note.startswith("clip attention: waiting")
    par = decode_result(decode(_prediction("Slice bread", None, classes, 1, attention=None).encode(1)))
    assert par.attention is None
    tiles.show_attention(par)
    assert tiles.weights == {} and tiles.note == "this model has no clip attention"
    assert tiles.tile_text("rgb") == [] and tiles.tile_text("emg") == []
    tiles.grab()  # paints the note
    fallback = decode_result(decode(_prediction("Slice bread", None, classes, 2, attention=None, mode="emg",
                                                kinetics=None).encode(2)))
    tiles.show_attention(fallback)
    assert tiles.note == "this model has no clip attention while it predicts from sEMG alone"
    tiles.show_attention(decode_result(decode(_prediction("Slice bread", None, classes, 3).encode(3))))
    assert tiles.note is None and tiles.tile_text("rgb") == ["0.10", "0.15", "0.20", "0.25", "0.30"]
    tiles.grab()  # paints the tiles


def test_record_a_labelled_session_from_the_window(qtbot, tmp_path: Path) -> None:
    """Record an armband source with labels entered by hotkey; the session reads back with the reader."""
    from myosight.data.actionsense import ActionSenseSession

    source = PacedSource(unique_source("guitest"), video=True)
    state = GuiState()
    controller = Controller(state, free_tcp_address(), record_dir=tmp_path / "recordings")
    window = MainWindow(state, controller, controller.address)
    qtbot.addWidget(window)
    window.show()
    window.set_classes(["Slice bread", "Peel a potato"])
    controller.attach(source.source)
    try:
        qtbot.waitUntil(lambda: window.traces.curve_points("emg-left") > 50, timeout=15000)
        qtbot.waitUntil(lambda: window.controls.record.isEnabled(), timeout=5000)
        qtbot.keyClick(window, QtCore.Qt.Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: controller.recording and controller.processes.children["recorder"].ready.is_set(),
                        timeout=30000)
        qtbot.waitUntil(lambda: window.controls.label_button.isEnabled(), timeout=3000)
        qtbot.keyClick(window, QtCore.Qt.Key.Key_2)
        assert window.controls.labels.currentData() == "Peel a potato"
        sent = source.sent
        qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
        assert controller.open_label == "Peel a potato"
        qtbot.waitUntil(lambda: source.sent - sent > 2 * 160, timeout=10000)  # two seconds labelled
        qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
        assert controller.open_label is None
        qtbot.waitUntil(lambda: source.sent - sent > 3 * 160, timeout=10000)
        recorder = controller.processes.children["recorder"].process
        qtbot.keyClick(window, QtCore.Qt.Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: recorder.exitcode is not None, timeout=30000)
        assert recorder.exitcode == 0
    finally:
        window.close()
        source.stop()
    sessions = sorted((tmp_path / "recordings").rglob("*.hdf5"))
    assert len(sessions) == 1
    with ActionSenseSession(sessions[0]) as session:
        actions = session.activities()
        left = session.emg("left")
    assert [a.label for a in actions] == ["Peel a potato"]
    assert 1.5 < actions[0].duration_s < 4.0
    assert len(left) > 3 * 160 * 0.8


def test_the_viewer_labels_a_recording_made_by_myosight_record(qtbot, tmp_path: Path) -> None:
    """The viewer's label presses go out on its label stream whether or not it records itself, so
    `myosight record --labels gui` in a terminal beside it records them as the session's activities."""
    from myosight.data.actionsense import ActionSenseSession

    source = PacedSource(unique_source("labelled"))
    state = GuiState()
    controller = Controller(state, free_tcp_address())
    window = MainWindow(state, controller, controller.address)
    qtbot.addWidget(window)
    window.show()
    window.set_classes(["Slice bread", "Peel a potato"])
    controller.attach(source.source)
    recorder = None
    try:
        qtbot.waitUntil(lambda: window.controls.label_button.isEnabled(), timeout=15000)  # not recording
        assert not controller.recording
        labels = controller.open_label_stream()
        assert controller.label_source == "gui" or controller.label_source.startswith("gui")
        out = tmp_path / "sessions"
        recorder = subprocess.Popen([sys.executable, "-m", "myosight", "record", "--source", source.source, "--labels",
                                     controller.label_source, "--out", str(out), "--wait", "30"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        qtbot.waitUntil(lambda: labels.have_consumers(), timeout=60000)  # the recorder listens
        sent = source.sent
        qtbot.keyClick(window, QtCore.Qt.Key.Key_2)
        qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: source.sent - sent > 2 * 160, timeout=10000)
        qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: source.sent - sent > 3 * 160, timeout=10000)
        recorder.send_signal(signal.SIGINT)
        output = recorder.communicate(timeout=60)[0]
        assert recorder.returncode == 0, output
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        window.close()
        source.stop()
    sessions = sorted(out.rglob("*.hdf5"))
    assert len(sessions) == 1, output
    with ActionSenseSession(sessions[0]) as session:
        actions = session.activities()
    assert [a.label for a in actions] == ["Peel a potato"] and 1.5 < actions[0].duration_s < 4.0


def test_labels_are_stamped_with_the_data_on_screen(qapp) -> None:
    """A label press belongs to the sEMG shown, not the clock: replays run ahead of or behind the clock."""
    from myosight.capture.streams import marker_stream_info, open_outlet

    state = GuiState()
    controller = Controller(state, free_tcp_address())
    controller.label_outlet = open_outlet(marker_stream_info(unique_source("guilabel")))
    inlet = inlet_for(controller.label_outlet)
    ahead = pylsl.local_clock() + 100.0  # a replay at 4x, a while after its start
    state.push_emg("emg-left", np.array([ahead - 0.01, ahead]), np.zeros((2, 8), np.float32))
    controller.mark_label("Slice bread", start=True)
    text, stamp = inlet.pull_sample(timeout=10.0)
    assert text == ["Slice bread|Start"]
    assert stamp == pytest.approx(ahead, abs=1e-6)
    inlet.close_stream()


def test_run_and_gui_commands_open_the_window(synthetic_emg_model: dict, tmp_path: Path, qapp) -> None:
    """`myosight gui --screenshot` (how the documentation's screenshot is made) and `myosight run` without
    --headless open the window, start and stop the processes, and log predictions."""
    from myosight.cli import main

    session = str(synthetic_emg_model["sessions"][1].hdf5_path)
    bundle = str(synthetic_emg_model["bundle"])
    shot, log = tmp_path / "gui.png", tmp_path / "predictions.jsonl"
    code = main(["gui", "--model", bundle, "--source", "replay", session, "--speed", "4", "--loop", "--emg-only",
                 "--screenshot", str(shot), "--after", "1", "--jsonl", str(log)])
    assert code == 0
    image = QtGui.QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 600
    assert log.read_text().count("\n") >= 1
    code = main(["run", "--model", bundle, "--source", "replay", session, "--emg-only", "--duration", "3",
                 "--address", free_tcp_address()])
    assert code == 0


def test_without_a_display_the_viewer_explains_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    result = subprocess.run([sys.executable, "-m", "myosight", "gui"], capture_output=True, text=True, env=env,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert "libxcb-cursor0" in result.stderr and "--headless" in result.stderr


def test_gui_benchmark_reports_every_case(qapp) -> None:
    """`benchmark_gui` (for `myosight bench gui`): every case's figures, with painting really done."""
    from myosight.bench.gui import benchmark_gui

    figures = benchmark_gui(streams=(1, 2), channels=(8,), frames=4, window_seconds=1.0, progress=False)
    names = {f["name"] for f in figures}
    for case in ("1x8", "2x8", "naive.2x8"):
        assert {f"gui.traces.{case}.{k}" for k in ("buffer_update_ms", "paint_ms", "paint_p95_ms", "fps")} <= names
    assert {"gui.window.fps", "gui.window.slowest_frame_ms", "gui.window.data_wait_frames"} <= names
    assert all(isinstance(f["value"], float) and f["value"] >= 0 and f["unit"] for f in figures)
    painted = [int(f["note"].split()[0]) for f in figures if f["name"].endswith(".paint_ms")]
    assert painted and all(count >= 4 for count in painted)
    assert next(f for f in figures if f["name"] == "gui.window.fps")["value"] > 0


def test_qt_calls_cannot_use_up_the_none_singleton() -> None:
    """PySide6 6.12.0 on Python 3.11 drops a reference to None per void call: the project excludes that
    release, and the viewer's guard (gui/qt.py) keeps a long session alive if it is installed anyway."""
    from myosight.gui.qt import QtCore

    probe = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(20_000):  # more than None's whole count at start without the guard (about 5000)
        probe.setObjectName("probe")
    assert sys.getrefcount(None) > min(before, 20_000) // 2  # far from the zero that aborts the interpreter


def test_the_streams_a_viewer_of_a_worker_elsewhere_shows_are_chosen_by_role() -> None:
    """`gui --connect ADDR --streams [SOURCE] [--emg S] [--video S]`: one source, a source per role, or whichever
    myosight source streams each role; the role options need --streams, and --streams needs --connect."""
    from myosight.capture.choice import StreamChoice, streams_from_args
    from myosight.cli import build_parser
    from myosight.errors import ConfigError
    from myosight.gui.commands import _check

    def choice(*words: str) -> StreamChoice | None:
        args = build_parser().parse_args(["gui", "--connect", "tcp://127.0.0.1:5999", *words])
        _check(args)
        return streams_from_args(args)

    assert choice() is None
    assert choice("--streams", "run12") == StreamChoice.of("run12")
    assert choice("--streams") == StreamChoice.of(None)
    assert choice("--streams", "--emg", "myo", "--video", "camera") == StreamChoice(
        emg_left="myo", emg_right="myo", video="camera", labels=None)
    with pytest.raises(ConfigError, match="add --streams"):
        choice("--emg", "myo")
    with pytest.raises(ConfigError, match="--streams goes with --connect"):
        _check(build_parser().parse_args(["gui", "--streams", "x"]))
