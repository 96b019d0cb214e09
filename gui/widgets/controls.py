"""The controls: source, replay transport, model, sEMG-only, and recording with activity labels.

The panel only emits what the user asked for; the window turns requests into controller calls and reports
back (`set_replay_status`, `set_recording`, `set_classes`), so the widgets always show what is true.
"""

from __future__ import annotations

from collections.abc import Sequence

from myosight.capture.kinds import PickerFields, source_kinds
from myosight.data.activities import short_name
from myosight.gui.qt import QtCore, QtWidgets


def _group(title: str) -> tuple[QtWidgets.QGroupBox, QtWidgets.QGridLayout]:
    box = QtWidgets.QGroupBox(title)
    layout = QtWidgets.QGridLayout(box)
    layout.setContentsMargins(6, 4, 6, 4)
    layout.setHorizontalSpacing(4)
    layout.setVerticalSpacing(2)
    return box, layout


def _compact(box: QtWidgets.QComboBox, characters: int) -> None:
    """A combo box as wide as `characters`, not as its longest entry (long model paths and activity names
    would otherwise widen the whole window)."""
    box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(characters)


class ControlsPanel(QtWidgets.QWidget):
    sourceRequested = QtCore.Signal(object)  # noqa: N815 (Qt naming; a PickerFields)
    stopRequested = QtCore.Signal()  # noqa: N815
    playRequested = QtCore.Signal(bool)  # noqa: N815 (True: play, False: pause)
    speedChanged = QtCore.Signal(float)  # noqa: N815
    seekRequested = QtCore.Signal(float)  # noqa: N815
    bundleChosen = QtCore.Signal(str)  # noqa: N815
    emgOnlyToggled = QtCore.Signal(bool)  # noqa: N815
    recordToggled = QtCore.Signal(bool)  # noqa: N815
    labelToggled = QtCore.Signal(str, bool)  # noqa: N815 (activity, True: start)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(2, 2, 2, 2)
        row.addWidget(self._source_group(), 3)
        row.addWidget(self._replay_group(), 2)
        row.addWidget(self._model_group(), 2)
        row.addWidget(self._record_group(), 3)
        self.paused = False
        self.duration_s = 0.0
        self.set_replay_status(None)
        self.set_recording(False, available=False, note="")

    # -- groups ---------------------------------------------------------------------------------------
    def _source_group(self) -> QtWidgets.QGroupBox:
        box, grid = _group("Source")
        self.kind = QtWidgets.QComboBox()
        for kind in source_kinds():
            self.kind.addItem(kind.title, kind.name)
        self.path = QtWidgets.QLineEdit()
        self.path.setPlaceholderText("session .hdf5 or LabRecorder .xdf (replay)")
        browse = QtWidgets.QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse_session)
        self.camera = QtWidgets.QLineEdit("0")
        self.camera.setToolTip("camera index or video file")
        self.camera.setFixedWidth(60)
        self.left = QtWidgets.QLineEdit()
        self.left.setPlaceholderText("left: Myo address / LSL EMG name / XDF stream")
        self.right = QtWidgets.QLineEdit()
        self.right.setPlaceholderText("right: Myo address / LSL EMG name / XDF stream")
        self.start = QtWidgets.QPushButton("Start")
        self.stop = QtWidgets.QPushButton("Stop")
        self.start.clicked.connect(self._request_source)
        self.stop.clicked.connect(self.stopRequested.emit)
        grid.addWidget(self.kind, 0, 0, 1, 2)
        grid.addWidget(self.path, 0, 2, 1, 2)
        grid.addWidget(browse, 0, 4)
        grid.addWidget(QtWidgets.QLabel("camera"), 1, 0)
        grid.addWidget(self.camera, 1, 1)
        grid.addWidget(self.left, 1, 2)
        grid.addWidget(self.right, 1, 3, 1, 2)
        grid.addWidget(self.start, 2, 0, 1, 2)
        grid.addWidget(self.stop, 2, 2)
        return box

    def _replay_group(self) -> QtWidgets.QGroupBox:
        box, grid = _group("Replay")
        self.play = QtWidgets.QPushButton("Pause")
        self.play.setToolTip("play / pause the replay (P)")
        self.play.clicked.connect(self.toggle_play)
        self.speed = QtWidgets.QDoubleSpinBox()
        self.speed.setRange(0.25, 16.0)
        self.speed.setSingleStep(0.25)
        self.speed.setValue(1.0)
        self.speed.setSuffix(" x")
        self.speed.editingFinished.connect(lambda: self.speedChanged.emit(self.speed.value()))
        self.loop = QtWidgets.QCheckBox("loop")
        self.loop.setChecked(True)
        self.seek = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.seek.setRange(0, 0)
        self.seek.sliderReleased.connect(lambda: self.seekRequested.emit(self.seek.value() / 10))
        self.position = QtWidgets.QLabel("–")
        grid.addWidget(self.play, 0, 0)
        grid.addWidget(self.speed, 0, 1)
        grid.addWidget(self.loop, 0, 2)
        grid.addWidget(self.seek, 1, 0, 1, 3)
        grid.addWidget(self.position, 2, 0, 1, 3)
        return box

    def _model_group(self) -> QtWidgets.QGroupBox:
        box, grid = _group("Model")
        self.bundle = QtWidgets.QComboBox()
        self.bundle.setEditable(True)
        self.bundle.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        self.bundle.setToolTip("model bundle (.safetensors); the worker restarts with it")
        _compact(self.bundle, 16)
        self.bundle.activated.connect(lambda _: self.bundleChosen.emit(self.bundle.currentText()))
        browse = QtWidgets.QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse_bundle)
        self.emg_only = QtWidgets.QCheckBox("sEMG only (no video, no I3D)")
        self.emg_only.toggled.connect(self.emgOnlyToggled.emit)
        grid.addWidget(self.bundle, 0, 0)
        grid.addWidget(browse, 0, 1)
        grid.addWidget(self.emg_only, 1, 0, 1, 2)
        return box

    def _record_group(self) -> QtWidgets.QGroupBox:
        box, grid = _group("Recording")
        self.record = QtWidgets.QPushButton("Record")
        self.record.setCheckable(True)
        self.record.setToolTip("record the source's streams and your labels to a session (Ctrl+R)")
        self.record.toggled.connect(self.recordToggled.emit)
        self.labels = QtWidgets.QComboBox()
        self.labels.setToolTip("activity to label (keys 1-9 choose)")
        _compact(self.labels, 16)
        self.label_button = QtWidgets.QPushButton("Start label")
        self.label_button.setCheckable(True)
        self.label_button.setToolTip("start / stop the chosen activity (Space)")
        self.label_button.toggled.connect(self._label_toggled)
        self.record_note = QtWidgets.QLabel("")
        self.record_note.setObjectName("small")
        grid.addWidget(self.record, 0, 0)
        grid.addWidget(self.labels, 0, 1, 1, 2)
        grid.addWidget(self.label_button, 1, 0)
        grid.addWidget(self.record_note, 1, 1, 1, 2)
        return box

    # -- user actions ---------------------------------------------------------------------------------
    def _request_source(self) -> None:
        self.sourceRequested.emit(PickerFields(
            kind=self.kind.currentData(), session=self.path.text().strip() or None,
            camera=self.camera.text().strip() or "0", left=self.left.text().strip() or None,
            right=self.right.text().strip() or None, speed=self.speed.value(), loop=self.loop.isChecked()))

    def _browse_session(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Session to replay", "", "Sessions and XDF files (*.hdf5 *.h5 *.xdf);;Sessions (*.hdf5 *.h5);;"
            "XDF files (*.xdf)")
        if path:
            self.path.setText(path)
            self.kind.setCurrentIndex(0)

    def _browse_bundle(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Model bundle", "", "Bundles (*.safetensors)")
        if path:
            self.add_bundle(path)
            self.bundleChosen.emit(path)

    def toggle_play(self) -> None:
        self.playRequested.emit(self.paused)

    def toggle_label(self) -> None:
        if self.label_button.isEnabled():
            self.label_button.toggle()

    def choose_label(self, index: int) -> None:
        if 0 <= index < self.labels.count() and not self.label_button.isChecked():
            self.labels.setCurrentIndex(index)

    def _label_toggled(self, on: bool) -> None:
        self.label_button.setText("Stop label" if on else "Start label")
        self.labels.setEnabled(not on)
        self.labelToggled.emit(self.labels.currentData() or "", on)

    # -- what is true now -----------------------------------------------------------------------------
    def add_bundle(self, path: str) -> None:
        if self.bundle.findText(path) < 0:
            self.bundle.addItem(path)
        self.bundle.setCurrentIndex(self.bundle.findText(path))

    def set_classes(self, classes: Sequence[str]) -> None:
        current = self.labels.currentData()
        self.labels.clear()
        for index, name in enumerate(classes):
            prefix = f"{index + 1}  " if index < 9 else ""
            self.labels.addItem(prefix + short_name(name), name)
        if current in classes:
            self.labels.setCurrentIndex(list(classes).index(current))

    def set_replay_status(self, status: dict | None) -> None:
        """Enable the transport for a replay that answers, and show its position."""
        for widget in (self.play, self.speed, self.seek):
            widget.setEnabled(status is not None)
        if status is None:
            self.position.setText("no replay control")
            return
        self.paused = bool(status.get("paused"))
        self.play.setText("Play" if self.paused else "Pause")
        self.duration_s = float(status.get("duration_s") or 0.0)
        position = float(status.get("position_s") or 0.0)
        if not self.seek.isSliderDown():
            self.seek.setRange(0, int(self.duration_s * 10))
            self.seek.setValue(int(position * 10))
        if not self.speed.hasFocus():
            self.speed.setValue(float(status.get("speed") or 1.0))
        self.position.setText(f"{position:.0f} / {self.duration_s:.0f} s · pass {status.get('passes', 0)}")

    def set_recording(self, on: bool, *, available: bool, note: str) -> None:
        self.record.setEnabled(available)
        if self.record.isChecked() != on:
            self.record.blockSignals(True)
            self.record.setChecked(on)
            self.record.blockSignals(False)
        self.record.setText("Stop recording" if on else "Record")
        self.label_button.setEnabled(available)  # presses go to the viewer's label stream, recorded or not
        if not available and self.label_button.isChecked():
            self.label_button.blockSignals(True)
            self.label_button.setChecked(False)
            self.label_button.blockSignals(False)
            self.label_button.setText("Start label")
            self.labels.setEnabled(True)
        self.record_note.setText(note)
