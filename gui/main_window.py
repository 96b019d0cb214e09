"""The main window: the panels, the frame timer that draws the latest state, and the controls' wiring.

All drawing happens in `_tick`, from a Qt timer in the GUI thread: it takes one snapshot of the shared state
and updates each panel from it (the heavy panels only when their part changed). Receiving happens in the
receiver threads and the processes; the window never waits for them.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from myosight.calibration.plan import CalibrationPlan
from myosight.calibration.top_up import TopUp, read_top_up
from myosight.capture.choice import StreamChoice
from myosight.capture.kinds import PickerFields, source_kind
from myosight.capture.launch import spec_of_kind
from myosight.errors import MyosightError
from myosight.gui.calibration import CalibrationRequest, WindowCalibration, bundle_summary, is_calibrated
from myosight.gui.controller import Controller, unique_source_name
from myosight.gui.qt import QtCore, QtGui, QtWidgets
from myosight.gui.receivers import ResultReceiver, StreamReceiver
from myosight.gui.state import GuiState, Snapshot
from myosight.gui.widgets.attention import AttentionTiles
from myosight.gui.widgets.calibration import CalibrationPanel
from myosight.gui.widgets.camera_view import CameraView
from myosight.gui.widgets.controls import ControlsPanel
from myosight.gui.widgets.emg_traces import EmgTraces, present_streams
from myosight.gui.widgets.health import Banner, BannerModel, HealthPanel
from myosight.gui.widgets.prediction import PredictionPanel
from myosight.gui.widgets.spectrograms import SpectrogramPanel
from myosight.gui.widgets.xdf_arms import ask_with_dialog, xdf_arms
from myosight.models.bundle_header import read_bundle_metadata

STYLE = """
QWidget { background: #101418; color: #dfe6ec; font-size: 10pt; }
QGroupBox { border: 1px solid #2a323a; border-radius: 4px; margin-top: 10px; padding-top: 4px; }
QGroupBox::title { subcontrol-origin: margin; left: 6px; color: #8fa3b5; }
QLabel#small { color: #8fa3b5; font-size: 9pt; }
QLabel#value { font-weight: bold; }
QLabel#predictionLabel { font-size: 24pt; font-weight: bold; color: #ffffff; }
QLabel#panelTitle { color: #8fa3b5; font-weight: bold; }
QPushButton, QComboBox, QLineEdit, QDoubleSpinBox { background: #1c232a; border: 1px solid #323c46;
  border-radius: 3px; padding: 2px 6px; }
QPushButton:checked { background: #8a2b2b; }
QPushButton:disabled, QComboBox:disabled { color: #56616b; }
QTableWidget { background: #141a1f; gridline-color: #2a323a; }
QHeaderView::section { background: #1c232a; color: #8fa3b5; border: none; padding: 2px; }
QLabel#liveModel { color: #9fd3ff; font-weight: bold; }
QMenuBar { background: #161c21; color: #dfe6ec; }
QMenuBar::item:selected, QMenu::item:selected { background: #2a3a4a; }
QMenu { background: #1c232a; border: 1px solid #323c46; }
QDockWidget { color: #8fa3b5; font-weight: bold; }
QDockWidget::title { background: #161c21; padding: 4px; }
"""
NOTICE_SECONDS = 8.0
CALIBRATION_WIDTH = 480  # the wizard's dock: room for the prompt in large type beside the live panels


class FrameClock:
    """Frame times of the last seconds: the frame rate, the slowest frame, and how long data waited."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.ticks: deque[float] = deque()
        self.ages: deque[tuple[float, float]] = deque()
        self.busy: deque[float] = deque(maxlen=300)  # seconds spent in the last ticks (painting excluded)
        self.frames = 0

    def tick(self, now: float, data_age_s: float | None) -> None:
        self.frames += 1
        self.ticks.append(now)
        if data_age_s is not None:
            self.ages.append((now, data_age_s))
        while self.ticks and now - self.ticks[0] > self.window_s:
            self.ticks.popleft()
        while self.ages and now - self.ages[0][0] > self.window_s:
            self.ages.popleft()

    def stats(self) -> dict:
        ticks = list(self.ticks)
        intervals = [b - a for a, b in itertools.pairwise(ticks)]
        span = ticks[-1] - ticks[0] if len(ticks) > 1 else 0.0
        return {"fps": (len(ticks) - 1) / span if span > 0 else 0.0,
                "slowest_frame_ms": 1e3 * max(intervals, default=0.0),
                "data_wait_ms": 1e3 * max((age for _, age in self.ages), default=0.0),
                "tick_p50_ms": 1e3 * float(np.median(self.busy)) if self.busy else 0.0,
                "tick_p95_ms": 1e3 * float(np.percentile(self.busy, 95)) if self.busy else 0.0,
                "frames": self.frames}


def _titled(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
    box = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(box)
    layout.setContentsMargins(2, 2, 2, 2)
    layout.setSpacing(1)
    label = QtWidgets.QLabel(title)
    label.setObjectName("panelTitle")
    layout.addWidget(label)
    layout.addWidget(widget, 1)
    return box


class MainWindow(QtWidgets.QMainWindow):
    """The viewer. `controller` is None when viewing a worker that runs elsewhere (`--connect`)."""

    closed = QtCore.Signal()

    def __init__(self, state: GuiState, controller: Controller | None, address: str, *,
                 kinetics_labels: list[str] | None = None, jsonl: Path | None = None, fps: float = 30.0,
                 banner: BannerModel | None = None) -> None:
        super().__init__()
        self.state, self.controller, self.address = state, controller, address
        self.setWindowTitle("myosight")
        self.setStyleSheet(STYLE)
        self.banner_model = banner or BannerModel()
        self.clock = FrameClock()
        self.notices: dict[str, tuple[str, str, float]] = {}
        self._seen = {"frame": -1, "prediction": -1}
        self._next_slow = 0.0
        self.classes: list[str] = []
        self.record_note = ""
        self.calibration: WindowCalibration | None = None
        self.base_bundle: str | None = None  # the model a calibration adapted, and the model it made
        self.calibrated_bundle: str | None = None
        self._autostart = self._switched = False
        self._summaries: dict[str, tuple[float, str]] = {}
        self._build(kinetics_labels)
        self.streams: StreamReceiver | None = None
        self.receiver = ResultReceiver(address, state, jsonl)
        self.receiver.start()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(int(1000 / fps))
        self._shortcuts()
        self._closed = False

    # -- layout ---------------------------------------------------------------------------------------
    def _build(self, kinetics_labels: list[str] | None) -> None:
        self.banner = Banner()
        self.traces = EmgTraces()
        self.spectrograms = SpectrogramPanel()
        self.camera = CameraView()
        self.prediction = PredictionPanel(kinetics_labels)
        self.attention = AttentionTiles()
        self.health = HealthPanel()
        self.controls = ControlsPanel()
        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        left.addWidget(self.traces)
        left.addWidget(self.spectrograms)
        left.setSizes([560, 300])
        top_right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        top_right.addWidget(_titled("Camera (model input)", self.camera))
        top_right.addWidget(_titled("Prediction", self.prediction))
        top_right.setSizes([330, 420])
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(top_right)
        right.addWidget(_titled("Clip attention (fig. 6)", self.attention))
        right.addWidget(_titled("Health", self.health))
        right.setSizes([440, 90, 250])
        main = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setSizes([820, 760])
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addLayout(self._model_line())
        layout.addWidget(main, 1)
        layout.addWidget(self.controls)
        self.setCentralWidget(central)
        self._calibration_dock()
        self.resize(1600, 960)
        self._wire_controls()

    def _model_line(self) -> QtWidgets.QHBoxLayout:
        """Which model is live, always in view, with the calibration's switches."""
        row = QtWidgets.QHBoxLayout()
        self.live_model = QtWidgets.QLabel("Live model: none chosen")
        self.live_model.setObjectName("liveModel")
        self.base_button = QtWidgets.QPushButton("Back to base model")
        self.base_button.clicked.connect(self.use_base_model)
        self.base_button.hide()
        self.calibrate_button = QtWidgets.QPushButton("Calibrate a person …")
        self.calibrate_button.clicked.connect(lambda: self.open_calibration())
        self.calibrate_button.setEnabled(self.controller is not None)
        row.addWidget(self.live_model, 1)
        row.addWidget(self.base_button)
        row.addWidget(self.calibrate_button)
        return row

    def _calibration_dock(self) -> None:
        """The wizard in a dock beside the live panels (hidden until opened), and its menu."""
        self.calibration_panel = panel = CalibrationPanel()
        self.calibration_dock = QtWidgets.QDockWidget("Calibration", self)
        self.calibration_dock.setObjectName("calibrationDock")
        features = QtWidgets.QDockWidget.DockWidgetFeature
        self.calibration_dock.setFeatures(features.DockWidgetClosable | features.DockWidgetMovable)
        self.calibration_dock.setWidget(panel)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.calibration_dock)
        self.calibration_dock.hide()
        panel.startRequested.connect(self.start_calibration)
        panel.pauseRequested.connect(lambda: self._calibration_key("toggle_pause"))
        panel.redoRequested.connect(lambda: self._calibration_key("redo"))
        panel.abortRequested.connect(lambda: self._calibration_key("abort"))
        panel.useRequested.connect(self.use_calibrated_model)
        panel.baseRequested.connect(self.use_base_model)
        panel.newRequested.connect(lambda: self.open_calibration())
        menu = self.menuBar().addMenu("&Calibration")
        self.calibrate_action = menu.addAction("New calibration …")
        self.calibrate_action.triggered.connect(lambda: self.open_calibration())
        self.calibrate_action.setEnabled(self.controller is not None)
        self.top_up_action = menu.addAction("Top up a calibration …")
        self.top_up_action.setToolTip("the armband put on again: one repetition of each activity, adapted on "
                                      "together with the calibration's recordings")
        self.top_up_action.triggered.connect(lambda: self.open_top_up())
        self.top_up_action.setEnabled(self.controller is not None)
        self.base_action = menu.addAction("Back to base model")
        self.base_action.triggered.connect(self.use_base_model)
        self.base_action.setEnabled(False)

    def _wire_controls(self) -> None:
        c = self.controls
        c.sourceRequested.connect(self._on_source)
        c.stopRequested.connect(self._on_stop)
        c.playRequested.connect(lambda play: self._replay("play" if play else "pause"))
        c.speedChanged.connect(lambda speed: self._replay("set_speed", speed))
        c.seekRequested.connect(lambda position: self._replay("seek", position))
        c.bundleChosen.connect(self.choose_bundle)
        c.emgOnlyToggled.connect(lambda on: self._call("set_emg_only", on))
        c.recordToggled.connect(self._on_record)
        c.labelToggled.connect(lambda activity, on: self._call("mark_label", activity, on))
        if self.controller is None:
            for group in c.findChildren(QtWidgets.QGroupBox):
                group.setEnabled(False)
                group.setToolTip("viewing a worker that runs elsewhere: nothing to control from here")
        else:
            c.emg_only.blockSignals(True)
            c.emg_only.setChecked(self.controller.worker.emg_only)
            c.emg_only.blockSignals(False)

    def _shortcuts(self) -> None:
        bindings: list[tuple[str, Callable[[], object]]] = [
            ("Space", self.controls.toggle_label), ("Ctrl+R", self.controls.record.click),
            ("P", self._pause_key), ("R", lambda: self._calibration_key("redo")),
            ("Escape", lambda: self._calibration_key("abort")), ("Q", lambda: self._calibration_key("abort"))]
        bindings += [(str(k), partial(self.controls.choose_label, k - 1)) for k in range(1, 10)]
        for key, slot in bindings:
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            shortcut.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)

    # -- actions --------------------------------------------------------------------------------------
    def notice(self, level: str, text: str) -> None:
        """A transient line in the banner (errors of the user's own requests)."""
        self.notices[text] = (level, text, time.monotonic() + NOTICE_SECONDS)

    def _call(self, method: str, *args: object) -> object:
        """A controller request; its error goes to the banner instead of ending the window."""
        if self.controller is None:
            return None
        try:
            return getattr(self.controller, method)(*args)
        except MyosightError as error:
            self.notice("error", str(error))
            return None

    def _replay(self, command: str, *args: float) -> None:
        if self.controller is not None and not self.controller.replay_command(command, *args):
            self.notice("warning", "this source has no replay control")

    def choose_bundle(self, path: str) -> None:
        classes = self._call("set_bundle", path)
        if isinstance(classes, list):  # None when the controller refused the bundle
            self.controls.add_bundle(path)
            self.set_classes(classes)

    def set_classes(self, classes: list[str]) -> None:
        self.classes = list(classes)
        self.controls.set_classes(classes)

    def _on_source(self, picked: PickerFields) -> None:
        if self.controller is None or not self._unless_calibrating():
            return
        kind = source_kind(picked.kind)
        if kind.file is not None and not (picked.session and Path(picked.session).is_file()):
            self.notice("error", f"{kind.name}: no file {picked.session or '(none given)'}")
            return
        if picked.session is not None and picked.session.lower().endswith(".xdf"):
            try:  # the file's EMG streams by arm: the fields, the file itself, or the user's answer
                arms = xdf_arms(picked.session, picked.left, picked.right, self.ask_xdf_arms)
            except MyosightError as error:
                self.notice("error", str(error))
                return
            if arms is None:
                return
            picked = replace(picked, left=arms[0], right=arms[1])
        try:
            spec = spec_of_kind(kind.name, source=unique_source_name(), **kind.settings_from_picker(picked))
        except MyosightError as error:
            self.notice("error", str(error))
            return
        self._call("start_source", spec)

    def ask_xdf_arms(self, streams: list, path: Path) -> dict | None:
        """Ask which of an XDF file's EMG streams is which arm (see gui/widgets/xdf_arms.py)."""
        return ask_with_dialog(self)(streams, path)

    def _on_stop(self) -> None:
        if self._unless_calibrating():
            self._call("stop_all")

    def _on_record(self, on: bool) -> None:
        if on:
            out = self._call("start_recording", self.classes or None)
            self.record_note = f"recording to {out}" if out is not None else ""
        else:
            self._call("stop_recording")

    # -- calibration ----------------------------------------------------------------------------------
    def open_calibration(self, plan: CalibrationPlan | None = None, out_dir: Path | None = None, *,
                         start: bool = False) -> None:
        """Show the wizard, its setup page filled from `plan` or the live model's activities; with `start`, the
        calibration starts by itself as soon as the source is up (`myosight calibrate`)."""
        if not self._show_wizard():
            return
        subject = self.controller.subject if self.controller is not None else "S00"
        self.calibration_panel.fill(self._model_classes(), plan, out_dir, subject)
        self._autostart = start

    def open_top_up(self, bundle: str | Path | None = None) -> TopUp | None:
        """Show the wizard's setup page for a top-up of a calibrated model (`bundle`, or the one the person picks);
        why that model cannot be topped up goes on a new calibration's setup page, as the wizard's other errors."""
        if self.controller is None:
            return None
        bundle = bundle or self.ask_top_up_bundle()
        if not bundle:
            return None  # the person cancelled the choice
        try:
            top_up = read_top_up(bundle)
        except (MyosightError, OSError) as error:  # OSError: its base model cannot be read
            self.open_calibration()
            if not self._calibration_running():
                self.calibration_panel.show_error(str(error))
            return None
        if not self._show_wizard():
            return None
        self.calibration_panel.fill_top_up(top_up)
        self._autostart = False
        return top_up

    def ask_top_up_bundle(self) -> str | None:
        """The calibrated model to top up, from a file dialog that starts at the live model when it is a calibrated
        one (tests replace this method, as `ask_xdf_arms`)."""
        live = self.controller.worker.bundle if self.controller is not None else None
        start = live if live is not None and is_calibrated(live) else self.calibrated_bundle or ""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Calibrated model to top up", start,
                                                        "Bundles (*.safetensors)")
        return path or None

    def _show_wizard(self) -> bool:
        """Show the wizard's dock; False while a calibration runs (one at a time: the dock shows that one)."""
        if self.calibration_dock.isHidden():
            self.calibration_dock.show()
            self.resizeDocks([self.calibration_dock], [CALIBRATION_WIDTH], QtCore.Qt.Orientation.Horizontal)
        self.calibration_dock.raise_()
        return not self._calibration_running()

    def _calibration_running(self) -> bool:
        return self.calibration is not None and not self.calibration.finished

    def start_calibration(self, request: CalibrationRequest) -> WindowCalibration | None:
        """Start the calibration on the setup page (why it cannot start goes on that page)."""
        if self.controller is None or self._calibration_running():
            return None
        if self.calibration is not None:
            self.calibration.shutdown()  # a finished one: its children are gone, this only tidies up
            self.calibration = None
        try:
            calibration = WindowCalibration(self.controller, request)
        except (MyosightError, OSError) as error:  # OSError: the folder cannot be made
            self.calibration_panel.show_error(str(error))
            return None
        self.calibration, self._switched = calibration, False
        self.base_bundle, self.calibrated_bundle = str(calibration.base), None
        self.calibration_panel.started(request)
        return calibration

    def use_calibrated_model(self) -> None:
        if self.calibrated_bundle is not None:
            self.choose_bundle(self.calibrated_bundle)

    def use_base_model(self) -> None:
        if self.base_bundle is not None:
            self.choose_bundle(self.base_bundle)

    def _model_classes(self) -> list[str]:
        bundle = self.controller.worker.bundle if self.controller is not None else None
        try:
            return list(read_bundle_metadata(bundle)["classes"]) if bundle else list(self.classes)
        except MyosightError:
            return list(self.classes)

    def _unless_calibrating(self) -> bool:
        """False (with a notice) while a calibration records: the source must stay as it is until it ends."""
        if self.calibration is not None and self.calibration.recording:
            self.notice("warning", "a calibration is recording this source: abort it first (Esc)")
            return False
        return True

    def _pause_key(self) -> None:
        """P pauses the calibration while one records, the replay otherwise."""
        if self.calibration is not None and self.calibration.recording:
            self.calibration.toggle_pause()
        else:
            self.controls.toggle_play()

    def _calibration_key(self, action: str) -> None:
        if self.calibration is not None and self.calibration.recording:
            getattr(self.calibration, action)()

    def _tick_calibration(self) -> None:
        """Start a requested calibration once the source is up; advance the one that runs; when it is done,
        switch the live worker to the calibrated model (once)."""
        if self._autostart and self.controller is not None and self.controller.source_ready:
            self._autostart = False
            self.calibration_panel.setup.start.click()
        calibration = self.calibration
        if calibration is None or (self._switched and calibration.finished):
            return
        status = calibration.tick()
        self.calibration_panel.show_status(status)
        if status.stage == "done" and status.bundle is not None and not self._switched:
            self._switched = True
            self.calibrated_bundle = str(status.bundle)
            self.choose_bundle(self.calibrated_bundle)
        elif status.stage in ("aborted", "failed") and calibration.finished:
            self._switched = True  # nothing to switch to; the page stays as it is

    def _show_live_model(self) -> None:
        """The live model's file (and person and accuracy for a calibrated one), and which switch applies."""
        bundle = self.controller.worker.bundle if self.controller is not None else None
        if self.controller is None:
            self.live_model.setText(f"Live model: the worker's at {self.address}")
        else:
            self.live_model.setText("Live model: " + (self._summary(bundle) if bundle else "none chosen"))
            self.live_model.setToolTip(str(bundle or ""))
        has_pair = self.base_bundle is not None and self.calibrated_bundle is not None
        calibrated_live = bundle == self.calibrated_bundle if self.calibrated_bundle is not None else None
        base_live = bundle == self.base_bundle if has_pair else None
        self.calibration_panel.result.set_models(calibrated_live, base_live)
        self.base_button.setVisible(base_live is False)
        self.base_action.setEnabled(base_live is False)

    def _summary(self, bundle: str) -> str:
        """`bundle_summary`, read again only when the file changes."""
        try:
            changed = Path(bundle).stat().st_mtime
        except OSError:
            changed = -1.0
        cached = self._summaries.get(bundle)
        if cached is None or cached[0] != changed:
            cached = self._summaries[bundle] = (changed, bundle_summary(bundle))
        return cached[1]

    # -- the frame timer ------------------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        snapshot = self.state.snapshot()
        streams = present_streams([*snapshot.emg, *snapshot.streams])
        self.traces.show_streams(streams, {name: view.device for name, view in snapshot.streams.items()})
        self.traces.update_traces(snapshot.emg, snapshot.emg_newest)
        self._tick_calibration()
        if snapshot.frame_seq != self._seen["frame"] or snapshot.prediction_seq != self._seen["prediction"]:
            self._draw_camera(snapshot)
        if snapshot.prediction_seq != self._seen["prediction"]:
            self._draw_prediction(snapshot)
        if now >= self._next_slow:
            self._next_slow = now + 0.2
            self._slow_parts(now, snapshot)
        self.clock.tick(now, snapshot.data_age_s)
        self.clock.busy.append(time.monotonic() - now)

    def _draw_camera(self, snapshot: Snapshot) -> None:
        if snapshot.frame_seq != self._seen["frame"]:
            self.camera.show_frame(snapshot.frame)
            self._seen["frame"] = snapshot.frame_seq
        prediction = snapshot.prediction
        if prediction is None:
            self.camera.strip.set_window([], None, snapshot.frame_time)
        else:
            self.camera.strip.set_window(prediction.clip_starts, prediction.window_end, snapshot.frame_time)

    def _draw_prediction(self, snapshot: Snapshot) -> None:
        self._seen["prediction"] = snapshot.prediction_seq
        self.prediction.show_prediction(snapshot.prediction, snapshot.history, snapshot.scored, snapshot.correct)
        self.attention.show_attention(snapshot.prediction)
        if snapshot.arms is not None:
            self.spectrograms.show_arms(snapshot.arms)
        self.spectrograms.update_clips(snapshot.spectrograms)
        if snapshot.prediction is not None and snapshot.prediction.classes != self.classes:
            self.set_classes(snapshot.prediction.classes)

    def _slow_parts(self, now: float, snapshot: Snapshot) -> None:
        """Health, banner, controller and controls: a few times a second is enough."""
        if self.controller is not None:
            self.controller.poll()
            recording = self.controller.recording
            can_record = self.controller.source_spec is not None
            self.controls.set_recording(recording, available=can_record, note=self.record_note if recording else "")
        self.controls.set_replay_status(snapshot.replay)
        self._show_live_model()
        self.health.show_health(snapshot)
        stats = self.clock.stats()
        self.health.show_display_rate(stats["fps"], stats["slowest_frame_ms"])
        self.notices = {k: v for k, v in self.notices.items() if v[2] > now}
        notices = [(level, text) for level, text, _ in self.notices.values()]
        if self.controller is not None:
            notices += list(self.controller.notices.values())
        expect_worker = self.controller is None or self.controller.processes.get("worker") is not None
        self.banner.show_line(self.banner_model.update(now, snapshot, notices, expect_worker))

    def show_streams(self, source: str | StreamChoice) -> None:
        """Show the LSL streams of a source that runs elsewhere, or of the sources a choice names by role (with a
        worker that runs elsewhere)."""
        if self.streams is not None:
            self.streams.stop()
        self.streams = StreamReceiver(source, self.state)
        self.streams.start()

    # -- screenshots and closing ----------------------------------------------------------------------
    def save_screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            raise MyosightError(f"{path}: could not write the screenshot (PNG)")
        return path

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()

    def shutdown(self) -> None:
        """Stop drawing, receiving and every process, in order; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.timer.stop()
        if self.calibration is not None:
            self.calibration.shutdown()  # before the source: see gui/calibration.py
        self.receiver.stop()
        if self.streams is not None:
            self.streams.stop()
        if self.controller is not None:
            self.controller.shutdown()
