"""The calibration wizard: a setup page, the prompts while recording, and the adapted model at the end.

It sits in a dock of the main window, so the live traces and the camera stay in view while the person
records. Like the other panels it only emits what the user asked for; the window runs the calibration
(gui/calibration.py) and shows each `CalibrationStatus` with `show_status`.

The setup page also sets up a top-up of a calibrated model: its activities once each, for its person, into its
folder, so only the seconds and the rest are asked; the prompts and the result are the calibration's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

from myosight.calibration.plan import CalibrationPlan, PromptState
from myosight.calibration.run import PLAN_NAME, CalibrationStatus
from myosight.calibration.top_up import TOP_UPS, TopUp
from myosight.errors import ConfigError
from myosight.gui.calibration import CalibrationRequest, top_up_request
from myosight.gui.qt import QtCore, QtGui, QtWidgets

PAGES = ("setup", "prompt", "result")
CALIBRATION_INTRO = ("Each checked activity is asked for in turn; the person performs it while the prompt says NOW. "
                     "Then the model is adapted to them.")
TOP_UP_INTRO = ("The armband sits a little elsewhere each time it is put on. A top-up asks for each activity of the "
                "calibration once and adapts the model again on the earlier recordings and this one together, so "
                "that it knows both placements.")
STYLE = """
QLabel#wizardTitle { font-size: 15pt; font-weight: bold; color: #ffffff; }
QLabel#promptCaption { font-size: 16pt; font-weight: bold; letter-spacing: 2px; }
QLabel#promptActivity { font-size: 34pt; font-weight: bold; border-radius: 10px; padding: 18px 12px; }
QLabel#promptCountdown { font-size: 24pt; font-weight: bold; color: #ffffff; }
QLabel#promptNext { font-size: 14pt; color: #c4d0da; }
QLabel#promptCount { font-size: 17pt; font-weight: bold; color: #dfe6ec; }
QLabel#resultAccuracy { font-size: 22pt; font-weight: bold; color: #7ee081; }
QLabel#perClass { font-size: 10pt; color: #c4d0da; }
QLabel#wizardError { color: #ff8a80; font-weight: bold; }
QProgressBar { background: #1c232a; border: 1px solid #323c46; border-radius: 6px; text-align: center;
  font-size: 12pt; font-weight: bold; color: #ffffff; min-height: 30px; }
QProgressBar::chunk { background: #2f9e55; border-radius: 5px; }
QProgressBar#overall { min-height: 18px; max-height: 18px; font-size: 9pt; font-weight: normal; }
QProgressBar#overall::chunk { background: #3d6f99; }
QListWidget { background: #141a1f; border: 1px solid #2a323a; }
QSpinBox { background: #1c232a; border: 1px solid #323c46; border-radius: 3px; padding: 2px 6px; }
"""
#: (caption, caption colour, activity style) of each phase of a prompt.
PHASE_LOOK = {
    "active": ("NOW", "#7ee081", "background: #1f6b3a; color: #ffffff;"),
    "rest": ("GET READY FOR", "#ffcc66", "background: #3a3220; color: #ffd98a;"),
    "paused": ("PAUSED · P goes on", "#9fb3c4", "background: #2a323a; color: #c4d0da;"),
    "starting": ("GETTING READY", "#9fb3c4", "background: #1c232a; color: #c4d0da;"),
}


def _label(text: str = "", name: str | None = None, wrap: bool = True) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    if name:
        label.setObjectName(name)
    label.setWordWrap(wrap)
    return label


def default_out_dir(subject: str) -> Path:
    """A new folder per calibration: calibrations/<subject>-<date-time>."""
    return Path("calibrations") / f"{subject}-{time.strftime('%Y%m%d-%H%M%S')}"


def _within(path: Path, folder: Path) -> str:
    """`path` as seen from `folder` when it lies inside it (a calibration's recordings), else whole."""
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def top_up_note(top_up: TopUp) -> str:
    """What a top-up will do, for the setup page: what it adapts on, where it records, what it replaces."""
    earlier = ", ".join(_within(path, top_up.folder) for path in top_up.earlier)
    count = len(top_up.earlier)
    base = f"{top_up.base.parent.name}/{top_up.base.name}"
    return (f"Adapts the base model ({base}) again on the {count} earlier recording{'s' if count != 1 else ''} "
            f"({earlier}) and this one, recorded into {TOP_UPS}/ of the folder below. The new model replaces "
            f"{top_up.bundle.name} there; the one before is kept in history/.")


class SetupPage(QtWidgets.QWidget):
    """The activities (checkable; new names can be added), repetitions, seconds, rest, folder and person."""

    startRequested = QtCore.Signal()  # noqa: N815 (Qt naming)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.known: set[str] = set()  # the base model's activities
        self.lead_in_s, self.margin_s = 3.0, 0.5  # not asked: a plan from the command line keeps its own
        self._order: list[str] | None = None  # a prefilled plan's order of activities
        self._default_dir: str | None = None  # the folder proposed (it follows the subject until edited)
        self.top_up: TopUp | None = None  # set: the page sets up a top-up of this calibrated model
        self._calibration_only: list[QtWidgets.QWidget] = []  # hidden for a top-up: its activities are set
        layout = QtWidgets.QVBoxLayout(self)
        self.title = _label("New calibration", "wizardTitle")
        self.intro = _label(CALIBRATION_INTRO, "small")
        self.top_up_note = _label("", "small")
        self.top_up_note.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.top_up_note.hide()
        layout.addWidget(self.title)
        layout.addWidget(self.intro)
        layout.addWidget(self.top_up_note)
        self.activities = QtWidgets.QListWidget()
        self.activities.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.activities.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.activities.itemChanged.connect(self._update_summary)
        layout.addWidget(self.activities, 1)
        layout.addLayout(self._check_all_row())
        add_row = QtWidgets.QHBoxLayout()
        self.new_activity = QtWidgets.QLineEdit()
        self.new_activity.setPlaceholderText("another activity (new ones are learned from this recording)")
        self.new_activity.returnPressed.connect(self._add_typed)
        add = QtWidgets.QPushButton("Add")
        add.clicked.connect(self._add_typed)
        add_row.addWidget(self.new_activity, 1)
        add_row.addWidget(add)
        layout.addLayout(add_row)
        self._calibration_only.extend([self.new_activity, add])
        layout.addLayout(self._form())
        self.summary = _label("", "small")
        self.error = _label("", "wizardError")
        self.start = QtWidgets.QPushButton("Start calibration")
        self.start.setMinimumHeight(34)
        self.start.clicked.connect(self.startRequested.emit)
        layout.addWidget(self.summary)
        layout.addWidget(self.error)
        layout.addWidget(self.start)

    def _check_all_row(self) -> QtWidgets.QHBoxLayout:
        row = QtWidgets.QHBoxLayout()
        for title, checked in (("check all", True), ("check none", False)):
            button = QtWidgets.QPushButton(title)
            button.clicked.connect(lambda _=False, on=checked: self.set_checked(self.names() if on else []))
            row.addWidget(button)
            self._calibration_only.append(button)
        row.addStretch(1)
        return row

    def _form(self) -> QtWidgets.QFormLayout:
        form = QtWidgets.QFormLayout()
        self.repetitions = QtWidgets.QSpinBox()
        self.repetitions.setRange(1, 50)
        self.repetitions.setValue(2)
        self.seconds = self._seconds_box(2.0, 600.0, 6.0)
        self.rest = self._seconds_box(0.0, 600.0, 3.0)
        self.out_dir = QtWidgets.QLineEdit()
        browse = QtWidgets.QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        folder = QtWidgets.QHBoxLayout()
        folder.addWidget(self.out_dir, 1)
        folder.addWidget(browse)
        self.subject = QtWidgets.QLineEdit("S00")
        self.subject.setMaxLength(40)
        self.subject.textEdited.connect(self._follow_subject)
        self.repetitions.valueChanged.connect(self._update_summary)
        self.seconds.valueChanged.connect(self._update_summary)
        self.rest.valueChanged.connect(self._update_summary)
        form.addRow("repetitions of each", self.repetitions)
        form.addRow("seconds per repetition", self.seconds)
        form.addRow("rest between (s)", self.rest)
        form.addRow("folder", folder)
        form.addRow("person (subject id)", self.subject)
        self._set_by_top_up: list[QtWidgets.QWidget] = [self.repetitions, self.out_dir, browse, self.subject]
        return form

    @staticmethod
    def _seconds_box(low: float, high: float, value: float) -> QtWidgets.QDoubleSpinBox:
        box = QtWidgets.QDoubleSpinBox()
        box.setRange(low, high)
        box.setSingleStep(0.5)
        box.setDecimals(1)
        box.setValue(value)
        box.setSuffix(" s")
        return box

    # -- filling in --------------------------------------------------------------------------------------
    def fill(self, known: Sequence[str], plan: CalibrationPlan | None, out_dir: Path | None, subject: str) -> None:
        """The base model's activities (all checked, or those of `plan`) and the plan's numbers."""
        self.known = set(known)
        self.top_up = None
        chosen = list(plan.classes) if plan is not None else list(known)
        self.activities.blockSignals(True)
        self.activities.clear()
        for name in list(known) + [c for c in chosen if c not in self.known]:
            self._add_item(name, checked=name in chosen)
        self.activities.blockSignals(False)
        self._show_mode()
        if plan is not None:
            self.repetitions.setValue(plan.repetitions)
            self.seconds.setValue(plan.seconds)
            self.rest.setValue(plan.rest_s)
            self.lead_in_s, self.margin_s = plan.lead_in_s, plan.margin_s
        self._order = list(plan.classes) if plan is not None else None
        self.subject.setText(subject)
        self._default_dir = None if out_dir is not None else str(default_out_dir(subject))
        self.out_dir.setText(str(out_dir) if out_dir is not None else self._default_dir)
        self.error.setText("")
        self._update_summary()

    def fill_top_up(self, top_up: TopUp) -> None:
        """A top-up of a calibrated model: its activities once each, for its person, into its folder. Only the
        seconds and the rest are the person's to set; they start at the calibration's own where its plan says."""
        self.top_up, self.known = top_up, set(top_up.classes)
        self.activities.blockSignals(True)
        self.activities.clear()
        for name in top_up.classes:
            item = QtWidgets.QListWidgetItem(name)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, name)
            item.setToolTip(name)
            item.setFlags(QtCore.Qt.ItemFlag.ItemIsEnabled)  # shown, not chosen: the calibration's activities
            self.activities.addItem(item)
        self.activities.blockSignals(False)
        self._order = list(top_up.classes)
        self.repetitions.setValue(1)
        self._take_calibration_timing(top_up.folder / PLAN_NAME)
        self.subject.setText(top_up.subject or "S00")
        self._default_dir = None
        self.out_dir.setText(str(top_up.folder))  # the calibration's: the top-up records into its top-ups/
        self.top_up_note.setText(top_up_note(top_up))
        self.error.setText("")
        self._show_mode()
        self._update_summary()

    def _take_calibration_timing(self, path: Path) -> None:
        """The seconds, rest and lead-in of the calibration's plan, when its folder holds one (a calibration of
        recordings made before has none: the page's own numbers stay)."""
        try:
            plan = CalibrationPlan.load(path)
        except ConfigError:
            return
        self.seconds.setValue(plan.seconds)
        self.rest.setValue(plan.rest_s)
        self.lead_in_s = plan.lead_in_s

    def _show_mode(self) -> None:
        """A new calibration's page, or a top-up's: what the top-up takes from its calibration is shown, not asked."""
        top_up = self.top_up is not None
        self.title.setText("Top up a calibration" if top_up else "New calibration")
        self.intro.setText(TOP_UP_INTRO if top_up else CALIBRATION_INTRO)
        self.top_up_note.setVisible(top_up)
        for widget in self._calibration_only:
            widget.setVisible(not top_up)
        for widget in self._set_by_top_up:
            widget.setEnabled(not top_up)
        self.start.setText("Start top-up" if top_up else "Start calibration")

    def _follow_subject(self, subject: str) -> None:
        """Keep the default folder named after the person (a folder the user chose stays)."""
        if self._default_dir is not None and self.out_dir.text() == self._default_dir:
            self._default_dir = str(default_out_dir(subject.strip() or "S00"))
            self.out_dir.setText(self._default_dir)

    def _add_item(self, name: str, checked: bool) -> None:
        item = QtWidgets.QListWidgetItem(name if name in self.known else f"{name}   (new)")
        item.setData(QtCore.Qt.ItemDataRole.UserRole, name)
        item.setToolTip(name)
        item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked)
        if name not in self.known:
            item.setToolTip(f"{name}: not an activity of the base model; it is learned from this recording")
        self.activities.addItem(item)

    def add_activity(self, name: str) -> bool:
        """Add (and check) an activity by name; False (with a reason on the page) when it cannot be."""
        name = " ".join(name.split())
        if not name or "|" in name:
            self.error.setText("an activity needs a name without '|'")
            return False
        if name in self.names():
            self.error.setText(f"{name!r} is in the list already")
            return False
        self._add_item(name, checked=True)
        self.error.setText("")
        self._update_summary()
        return True

    def _add_typed(self) -> None:
        if self.add_activity(self.new_activity.text()):
            self.new_activity.clear()

    def _browse(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Calibration folder", self.out_dir.text())
        if path:
            self.out_dir.setText(path)

    def names(self) -> list[str]:
        return [self.activities.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(self.activities.count())]

    def checked(self) -> list[str]:
        """The checked activities, in the list's order (or in the prefilled plan's, to resume it); a top-up's:
        all of its calibration's."""
        if self.top_up is not None:
            return list(self.top_up.classes)
        checked = [self.activities.item(i).data(QtCore.Qt.ItemDataRole.UserRole)
                   for i in range(self.activities.count())
                   if self.activities.item(i).checkState() == QtCore.Qt.CheckState.Checked]
        if self._order is not None and set(self._order) == set(checked):
            return list(self._order)
        return checked

    def set_checked(self, names: Sequence[str]) -> None:
        for i in range(self.activities.count()):
            item = self.activities.item(i)
            on = item.data(QtCore.Qt.ItemDataRole.UserRole) in names
            item.setCheckState(QtCore.Qt.CheckState.Checked if on else QtCore.Qt.CheckState.Unchecked)

    def plan(self) -> CalibrationPlan:
        """The plan on the page (raises ConfigError when it is not one)."""
        if self.top_up is not None:
            return self.top_up.plan(self.seconds.value(), self.rest.value(), self.lead_in_s)
        return CalibrationPlan(tuple(self.checked()), repetitions=self.repetitions.value(),
                               seconds=self.seconds.value(), rest_s=self.rest.value(), lead_in_s=self.lead_in_s,
                               margin_s=self.margin_s)

    def _update_summary(self, *_: object) -> None:
        count = len(self.checked())
        prompts = count * self.repetitions.value()
        seconds = self.lead_in_s + prompts * (self.seconds.value() + self.rest.value())
        self.summary.setText(f"{count} activities × {self.repetitions.value()} = {prompts} prompts · "
                             f"about {seconds / 60:.1f} min of recording")


class PromptPage(QtWidgets.QWidget):
    """What the person reads while recording: the activity in large type, the countdown before it, a bar
    within it, what comes next and the count; the buttons repeat the keys."""

    pauseRequested = QtCore.Signal()  # noqa: N815 (Qt naming)
    redoRequested = QtCore.Signal()  # noqa: N815
    abortRequested = QtCore.Signal()  # noqa: N815

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._look: tuple[str, str] | None = None
        layout = QtWidgets.QVBoxLayout(self)
        layout.setSpacing(10)
        self.heading = _label("", "small")
        self.caption = _label("", "promptCaption")
        self.activity = _label("", "promptActivity")
        self.activity.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.activity.setMinimumHeight(190)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.countdown = _label("", "promptCountdown")
        self.countdown.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.following = _label("", "promptNext")
        self.count = _label("", "promptCount")
        self.overall = QtWidgets.QProgressBar()
        self.overall.setObjectName("overall")
        layout.addWidget(self.heading)
        layout.addStretch(1)
        for widget in (self.caption, self.activity, self.bar, self.countdown, self.following, self.count,
                       self.overall):
            layout.addWidget(widget)
        layout.addStretch(2)
        layout.addLayout(self._buttons())
        layout.addWidget(_label("keys: P pause / resume · R redo the last repetition · Esc abort (the "
                                "repetitions recorded are kept)", "small"))

    def _buttons(self) -> QtWidgets.QHBoxLayout:
        row = QtWidgets.QHBoxLayout()
        self.pause = QtWidgets.QPushButton("Pause (P)")
        self.redo = QtWidgets.QPushButton("Redo last (R)")
        self.abort = QtWidgets.QPushButton("Abort (Esc)")
        for button, signal in ((self.pause, self.pauseRequested), (self.redo, self.redoRequested),
                               (self.abort, self.abortRequested)):
            button.setMinimumHeight(32)
            button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # the keys stay with the window
            button.clicked.connect(signal.emit)
            row.addWidget(button)
        return row

    def show_prompt(self, status: CalibrationStatus, heading: str) -> None:
        self.heading.setText(heading)
        prompt = status.prompt
        if status.stage == "starting" or prompt is None or prompt.current is None:
            self._show_look("starting", "Get ready")
            self.bar.setValue(0)
            self.bar.setFormat("")
            self.countdown.setText("")
            self.following.setText(status.message)
            self.count.setText("")
            self.overall.setValue(0)
            self.overall.setFormat("")
            self.redo.setEnabled(False)
            return
        self._show_look(prompt.phase if prompt.phase in PHASE_LOOK else "paused", prompt.current.activity)
        self._show_time(prompt)
        self.following.setText(f"then: {prompt.next.activity}" if prompt.next is not None else "then: the end")
        self.count.setText(f"repetition {min(prompt.done + 1, prompt.total)} of {prompt.total}")
        self.overall.setRange(0, max(prompt.total, 1))
        self.overall.setValue(prompt.done)
        self.overall.setFormat(f"{prompt.done} of {prompt.total} recorded")
        self.pause.setText("Resume (P)" if prompt.phase == "paused" else "Pause (P)")
        self.redo.setEnabled(prompt.can_redo)

    def _show_look(self, phase: str, activity: str) -> None:
        """Caption and colours of the phase (style sheets are set only when the phase changes: they are slow)."""
        if (phase, activity) == self._look:
            return
        self._look = (phase, activity)
        caption, colour, style = PHASE_LOOK[phase]
        self.caption.setText(caption)
        self.caption.setStyleSheet(f"color: {colour};")
        self.activity.setText(activity)
        self.activity.setStyleSheet(style)

    def _show_time(self, prompt: PromptState) -> None:
        if prompt.phase == "active":
            self.bar.setValue(int(1000 * prompt.progress))
            self.bar.setFormat(f"{prompt.remaining_s:.0f} s left")
            self.countdown.setText("")
        elif prompt.phase == "rest":
            self.bar.setValue(0)
            self.bar.setFormat("")
            self.countdown.setText(f"starts in {math.ceil(prompt.remaining_s - 1e-6)}")
        else:
            self.bar.setFormat("paused")
            self.countdown.setText("")


class ResultPage(QtWidgets.QWidget):
    """After the recording: the adaptation's progress, then the held-out accuracy and the model."""

    useRequested = QtCore.Signal()  # noqa: N815 (Qt naming)
    baseRequested = QtCore.Signal()  # noqa: N815
    newRequested = QtCore.Signal()  # noqa: N815

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        self.title = _label("", "wizardTitle")
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)  # moving: the adaptation says what it does, not how far it is
        self.message = _label("")
        self.accuracy = _label("", "resultAccuracy")
        self.per_class = _label("", "perClass")
        self.confusion = QtWidgets.QLabel()
        self.confusion.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.files = _label("", "small")
        self.files.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        for widget in (self.title, self.busy, self.message, self.accuracy, self.per_class, self.confusion,
                       self.files):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.use = QtWidgets.QPushButton("Use this model")
        self.base = QtWidgets.QPushButton("Back to base model")
        self.new = QtWidgets.QPushButton("New calibration")
        row = QtWidgets.QHBoxLayout()
        for button, signal in ((self.use, self.useRequested), (self.base, self.baseRequested),
                               (self.new, self.newRequested)):
            button.setMinimumHeight(32)
            button.clicked.connect(signal.emit)
            row.addWidget(button)
        layout.addLayout(row)

    def show_result(self, status: CalibrationStatus, out_dir: Path, top_up: bool = False) -> None:
        """The stage's outcome; the report and the confusion matrix are read beside the bundle (a top-up
        records into a folder of its own and adapts into its calibration's)."""
        stage = status.stage
        what = "Top-up" if top_up else "Calibration"
        self.title.setText({"finishing": "Finishing the recording", "adapting": "Adapting the model",
                            "done": "Topped-up model ready" if top_up else "Calibrated model ready",
                            "aborted": f"{what} aborted", "failed": f"{what} failed"}.get(stage, stage))
        self.busy.setVisible(stage in ("finishing", "adapting"))
        report = status.report or {}
        self.message.setText(_held_out_note(report) if stage == "done" else status.message)
        accuracy = report.get("held_out_top1")
        if stage == "done":
            self.accuracy.setText("held-out accuracy: –" if accuracy is None
                                  else f"held-out accuracy {100 * accuracy:.1f} %")
        else:
            self.accuracy.setText("")
        per_class = report.get("per_class") or {}
        self.per_class.setText("\n".join(f"{100 * value:5.1f} %  {name}" for name, value in per_class.items()))
        folder = status.bundle.parent if status.bundle is not None else out_dir
        self._show_confusion(folder / "confusion.png" if stage == "done" else None)
        if status.bundle is not None:
            kept = " (the model before is kept in history/ beside it)" if top_up else ""
            self.files.setText(f"model: {status.bundle}{kept}\nreport: {folder / 'report.json'} (confusion.png "
                               "beside it)")
        else:
            self.files.setText(f"recordings: {out_dir / 'recordings'}")
        self.new.setEnabled(stage in ("done", "aborted", "failed"))

    def _show_confusion(self, path: Path | None) -> None:
        """The held-out confusion matrix the adaptation drew, scaled to the page."""
        pixmap = QtGui.QPixmap(str(path)) if path is not None and path.is_file() else QtGui.QPixmap()
        if not pixmap.isNull():
            pixmap = pixmap.scaledToWidth(min(pixmap.width(), max(200, self.width() - 24)),
                                          QtCore.Qt.TransformationMode.SmoothTransformation)
        self.confusion.setPixmap(pixmap)
        self.confusion.setVisible(not pixmap.isNull())

    def set_models(self, calibrated_live: bool | None, base_live: bool | None) -> None:
        """Enable the switches that change something (None: that model does not exist)."""
        self.use.setVisible(calibrated_live is not None)
        self.use.setEnabled(calibrated_live is False)
        self.use.setText("In use" if calibrated_live else "Use this model")
        self.base.setVisible(base_live is not None)
        self.base.setEnabled(base_live is False)


def _held_out_note(report: dict) -> str:
    """What the held-out accuracy measures."""
    if report.get("held_out_top1") is None:
        return "one repetition per activity: none could be held out to measure the model"
    return (f"each repetition round left out in turn and predicted by a model trained on the others "
            f"({report.get('samples', '?')} windows; sEMG CNN {report.get('sEMG_cnn', '?')})")


class CalibrationPanel(QtWidgets.QWidget):
    """The three pages and what they ask for."""

    startRequested = QtCore.Signal(object)  # noqa: N815 (Qt naming) (a CalibrationRequest)
    pauseRequested = QtCore.Signal()  # noqa: N815
    redoRequested = QtCore.Signal()  # noqa: N815
    abortRequested = QtCore.Signal()  # noqa: N815
    useRequested = QtCore.Signal()  # noqa: N815 (the calibrated model)
    baseRequested = QtCore.Signal()  # noqa: N815
    newRequested = QtCore.Signal()  # noqa: N815 (a setup page filled afresh for a new calibration)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(STYLE)
        self.speed = 1.0  # the synthetic person's clock: only tests change it
        self.setup, self.prompt, self.result = SetupPage(), PromptPage(), ResultPage()
        self.pages = QtWidgets.QStackedWidget()
        for page in (self.setup, self.prompt, self.result):
            self.pages.addWidget(page)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.pages)
        self.status: CalibrationStatus | None = None
        self.out_dir, self.heading = Path("."), ""
        self.top_up = False  # the calibration under way is a top-up
        self.setup.startRequested.connect(self._request_start)
        self.prompt.pauseRequested.connect(self.pauseRequested.emit)
        self.prompt.redoRequested.connect(self.redoRequested.emit)
        self.prompt.abortRequested.connect(self.abortRequested.emit)
        self.result.useRequested.connect(self.useRequested.emit)
        self.result.baseRequested.connect(self.baseRequested.emit)
        self.result.newRequested.connect(self.newRequested.emit)
        self.setMinimumWidth(440)

    @property
    def page(self) -> str:
        return PAGES[self.pages.currentIndex()]

    def show_page(self, name: str) -> None:
        self.pages.setCurrentIndex(PAGES.index(name))

    def fill(self, known: Sequence[str], plan: CalibrationPlan | None = None, out_dir: Path | None = None,
             subject: str = "S00") -> None:
        self.setup.fill(known, plan, out_dir, subject)
        self.show_page("setup")

    def fill_top_up(self, top_up: TopUp) -> None:
        self.setup.fill_top_up(top_up)
        self.show_page("setup")

    def request(self) -> CalibrationRequest:
        """The calibration on the setup page (raises ConfigError when the plan is not one)."""
        top_up = self.setup.top_up
        if top_up is not None:
            return top_up_request(top_up, self.setup.seconds.value(), self.setup.rest.value(), self.setup.lead_in_s,
                                  self.speed)
        subject = self.setup.subject.text().strip() or "S00"
        out = self.setup.out_dir.text().strip()
        return CalibrationRequest(self.setup.plan(), Path(out) if out else default_out_dir(subject), subject,
                                  self.speed)

    def _request_start(self) -> None:
        try:
            request = self.request()
        except ConfigError as error:
            self.show_error(str(error))
            return
        self.setup.error.setText("")
        self.startRequested.emit(request)

    def show_error(self, text: str) -> None:
        """Why the calibration did not start (on the setup page)."""
        self.show_page("setup")
        self.setup.error.setText(text)

    def started(self, request: CalibrationRequest) -> None:
        self.out_dir, self.top_up = Path(request.out_dir), request.top_up is not None
        count = len(request.plan.classes)
        if request.top_up is not None:
            self.heading = f"Topping up {request.subject} · {count} activities × 1 · {request.top_up.folder}"
        else:
            self.heading = f"Calibrating {request.subject} · {count} activities · {request.out_dir}"
        self.status = None
        self.show_page("prompt")

    def show_status(self, status: CalibrationStatus) -> None:
        self.status = status
        if status.stage in ("starting", "recording"):
            self.show_page("prompt")
            self.prompt.show_prompt(status, self.heading)
        else:
            self.show_page("result")
            self.result.show_result(status, self.out_dir, self.top_up)
