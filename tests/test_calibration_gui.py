"""The calibration wizard in the desktop viewer, offscreen: a synthetic person that follows the prompts, the
real recorder and adaptation children, the real worker switched between the base and the calibrated model."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

pytest.importorskip("PySide6", reason="the gui extra (PySide6, pyqtgraph) is not installed")

from lsl_helpers import unique_source

from myosight.calibration.adapt import AdaptOptions, adapt
from myosight.calibration.plan import CalibrationPlan
from myosight.calibration.run import recorded_sessions
from myosight.calibration.top_up import TOP_UPS
from myosight.capture.launch import spec_of_kind
from myosight.data.actionsense import ActionSenseSession
from myosight.data.layout import ACTIVITY_GROUP
from myosight.data.synth import SynthConfig, write_sessions
from myosight.gui.app import ViewerOptions, build_window
from myosight.gui.calibration import is_calibrated
from myosight.gui.controller import Controller, WorkerSettings, free_tcp_address
from myosight.gui.main_window import MainWindow
from myosight.gui.qt import QtCore, QtGui
from myosight.gui.state import GuiState
from myosight.models.bundle_header import read_bundle_metadata
from myosight.paths import sha256_file
from myosight.processes import SourceSpec

LEFT = QtCore.Qt.MouseButton.LeftButton
SOURCE_LABELS = "myosight-recorder/source-labels"  # the recorded source's own labels: what it performed
#: Wall-clock limits of whole stages (process starts, a recording, an adaptation): generous, because a busy
#: machine is slow, never because something races.
START_MS, RECORDING_MS, ADAPT_MS = 90_000, 120_000, 180_000


def _synthetic(subject: str) -> SourceSpec:
    """A synthetic person with its camera (without one, a recorder waits 10 s for a video stream)."""
    return spec_of_kind("synthetic", video=True, subject=subject, source=unique_source("caltest"))


def _window(qtbot, bundle: Path, subject: str = "S09") -> MainWindow:
    state = GuiState()
    controller = Controller(state, free_tcp_address(), WorkerSettings(bundle=str(bundle), emg_only=True),
                            subject=subject)
    window = MainWindow(state, controller, controller.address)
    qtbot.addWidget(window)
    window.show()
    window.choose_bundle(str(bundle))
    return window


class ShownStatuses:
    """Every status the wizard was asked to show (wraps the panel's `show_status`)."""

    def __init__(self, panel) -> None:
        self.statuses = []
        self._show = panel.show_status
        panel.show_status = self._record

    def _record(self, status) -> None:
        self.statuses.append(status)
        self._show(status)

    def active_segments(self) -> list[str]:
        """The activity of each stretch of consecutive 'active' prompts, in order."""
        segments, previous = [], None
        for status in self.statuses:
            prompt = status.prompt
            phase = prompt.phase if prompt is not None and status.stage == "recording" else None
            if phase == "active" and previous != "active":
                segments.append(prompt.current.activity)
            previous = phase
        return segments


def _labels_read_back(out_dir: Path) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """The one recorded session's good activities, its label rows rated Bad, and what the synthetic person
    performed (its own label stream, kept as it came)."""
    sessions = recorded_sessions(out_dir)
    assert len(sessions) == 1, sessions
    with ActionSenseSession(sessions[0]) as session:
        good = [action.label for action in session.activities()]
    with h5py.File(sessions[0], "r") as handle:
        rows = [[_text(cell) for cell in row] for row in handle[ACTIVITY_GROUP]["data"][()]]
        performed = [_text(row[0]) for row in handle[SOURCE_LABELS]["data"][()]]
    bad = [(row[0], row[1]) for row in rows if row[2].strip() == "Bad"]
    return good, bad, [text.split("|")[0] for text in performed if text.endswith("|Start")]


def _text(cell: object) -> str:
    return cell.decode() if isinstance(cell, bytes) else str(cell)


def _source_pid(window: MainWindow) -> int:
    return window.controller.processes.get("source").process.pid


def test_setup_page_fills_from_the_model_and_refuses_what_cannot_start(qtbot, synthetic_emg_model: dict,
                                                                       tmp_path: Path) -> None:
    """The setup page lists the base model's activities (checked), takes new names, checks the plan, and says
    why a calibration cannot start instead of starting it."""
    bundle = synthetic_emg_model["bundle"]
    classes = list(read_bundle_metadata(bundle)["classes"])
    window = _window(qtbot, bundle)
    try:
        assert window.calibration_dock.isHidden()
        qtbot.mouseClick(window.calibrate_button, LEFT)
        panel = window.calibration_panel
        assert window.calibration_dock.isVisible() and panel.page == "setup"
        setup = panel.setup
        assert setup.names() == classes and setup.checked() == classes
        assert setup.subject.text() == "S09" and setup.out_dir.text().startswith("calibrations")
        qtbot.keyClicks(setup.new_activity, "Whisk eggs")
        qtbot.keyClick(setup.new_activity, QtCore.Qt.Key.Key_Return)
        assert setup.names()[-1] == "Whisk eggs" and "(new)" in setup.activities.item(len(classes)).text()
        assert not setup.add_activity("Whisk eggs") and "already" in setup.error.text()
        assert not setup.add_activity("a|b")
        setup.set_checked(["Whisk eggs", classes[0]])
        setup.repetitions.setValue(3)
        plan = setup.plan()
        assert plan.classes == (classes[0], "Whisk eggs") and plan.repetitions == 3
        assert setup.summary.text().startswith("2 activities × 3 = 6 prompts")
        setup.out_dir.setText(str(tmp_path / "cal"))
        qtbot.mouseClick(setup.start, LEFT)  # no source runs
        assert window.calibration is None and "start a source first" in setup.error.text()
        setup.set_checked([])
        qtbot.mouseClick(setup.start, LEFT)
        assert window.calibration is None and "at least one activity" in setup.error.text()
        assert not (tmp_path / "cal").exists()
        base_said = f"Live model: {bundle.parent.name}/bundle.safetensors · base model · {len(classes)} activities"
        qtbot.waitUntil(lambda: window.live_model.text() == base_said, timeout=5000)
        assert window.base_button.isHidden()
    finally:
        window.close()


def test_wizard_prompts_redoes_adapts_and_switches_models(qtbot, synthetic_emg_model: dict, tmp_path: Path) -> None:
    """A whole calibration from the window: the synthetic person follows the prompts, R redoes the last
    repetition, the session reads back with the plan's labels, the worker switches to the calibrated model
    by itself, and back to the base model and again to the calibrated one without restarting the source."""
    bundle = synthetic_emg_model["bundle"]
    window = _window(qtbot, bundle)
    controller, panel = window.controller, window.calibration_panel
    out = tmp_path / "S09"
    try:
        controller.start_source(_synthetic("S09"))
        qtbot.waitUntil(lambda: controller.source_ready, timeout=START_MS)
        window.open_calibration()
        setup = panel.setup
        setup.set_checked(["Peel a cucumber"])
        assert setup.add_activity("Slice bread")  # not an activity of the base model
        assert setup.add_activity("Whisk eggs")  # not one the synthetic person can perform
        setup.repetitions.setValue(2)
        setup.seconds.setValue(4.0)
        setup.rest.setValue(2.0)
        setup.out_dir.setText(str(out))
        panel.speed = 2.0
        qtbot.mouseClick(setup.start, LEFT)
        assert window.calibration is None and "synthetic person" in setup.error.text()
        setup.set_checked(["Peel a cucumber", "Slice bread"])
        plan = setup.plan()
        shown = ShownStatuses(panel)
        qtbot.mouseClick(setup.start, LEFT)
        calibration = window.calibration
        assert calibration is not None and panel.page == "prompt" and setup.error.text() == ""
        order = [repetition.activity for repetition in plan.order()]
        assert order == ["Peel a cucumber", "Slice bread", "Peel a cucumber", "Slice bread"]

        redone = _redo_in_a_rest(qtbot, window, calibration)
        qtbot.mouseClick(window.controls.stop, LEFT)  # the source stays while a calibration records
        assert controller.source_request.settings.get("prompts") is not None and any("abort it first" in text
                                                                     for text in window.notices)
        qtbot.waitUntil(lambda: calibration.status.stage == "done" or calibration.finished, timeout=ADAPT_MS)
        assert calibration.status.stage == "done", calibration.status.message
        assert shown.active_segments() == order[:redone + 1] + order[redone:]

        good, bad, performed = _labels_read_back(out)
        assert good == order
        assert bad == [(order[redone], "Start"), (order[redone], "Stop")]
        assert performed == shown.active_segments()  # the synthetic person followed the prompts

        calibrated = str(out / "bundle.safetensors")
        qtbot.waitUntil(lambda: controller.worker.bundle == calibrated and panel.page == "result", timeout=5000)
        qtbot.waitUntil(lambda: "calibrated for S09" in window.live_model.text(), timeout=5000)
        assert "held-out accuracy" in window.live_model.text() and "held-out accuracy" in panel.result.accuracy.text()
        assert window.live_model.text().startswith("Live model: S09/bundle.safetensors")
        assert window.base_button.isVisible() and panel.result.base.isEnabled()
        assert not panel.result.use.isEnabled()  # it is the live one
        _switch_models(qtbot, window, str(bundle), calibrated)
    finally:
        window.close()


def _redo_in_a_rest(qtbot, window: MainWindow, calibration) -> int:
    """Press R in a rest after a repetition; return the index (in the plan's order) of the one redone.

    The prompter moves only when the window's timer ticks it, so a key pressed right after the wizard shows
    a rest acts in that rest, however busy the machine."""
    in_rest = lambda: (calibration.status.stage == "recording" and calibration.status.prompt.phase == "rest"  # noqa: E731
                       and calibration.status.prompt.done >= 1)
    qtbot.waitUntil(in_rest, timeout=RECORDING_MS)
    done = calibration.status.prompt.done
    assert window.calibration_panel.prompt.count.text() == f"repetition {min(done + 1, 4)} of 4"
    assert window.calibration_panel.prompt.redo.isEnabled()
    qtbot.keyClick(window, QtCore.Qt.Key.Key_R)
    qtbot.waitUntil(lambda: calibration.status.prompt.done == done - 1, timeout=5000)
    assert window.calibration_panel.prompt.count.text() == f"repetition {done} of 4"
    assert not window.calibration_panel.prompt.redo.isEnabled()  # only the last one can be redone
    return done - 1


def _switch_models(qtbot, window: MainWindow, base: str, calibrated: str) -> None:
    """Back to the base model and to the calibrated one: the worker restarts, the source keeps running."""
    controller, panel = window.controller, window.calibration_panel
    qtbot.waitUntil(lambda: controller.source_spec.settings.get("prompts") is None and controller.source_ready,
                    timeout=START_MS)
    source = _source_pid(window)
    _switch(qtbot, window, window.base_button, base, "base model")
    qtbot.waitUntil(lambda: window.state.prediction is not None and len(window.state.prediction.classes) == 5,
                    timeout=START_MS)  # the base model's, from the restarted worker on the same source
    assert window.base_button.isHidden() and panel.result.use.isEnabled() and not panel.result.base.isEnabled()
    _switch(qtbot, window, panel.result.use, calibrated, "calibrated for S09")
    assert window.base_button.isVisible() and not panel.result.use.isEnabled()
    assert _source_pid(window) == source


def _switch(qtbot, window: MainWindow, button, bundle: str, said: str) -> None:
    """Click a model switch: the worker restarts with that model and the live-model line says so."""
    controller = window.controller
    generation = controller.worker_generation
    qtbot.mouseClick(button, LEFT)
    assert controller.worker.bundle == bundle
    qtbot.waitUntil(lambda: controller.worker_generation > generation, timeout=START_MS)
    qtbot.waitUntil(lambda: said in window.live_model.text(), timeout=5000)


def test_calibrate_command_opens_the_wizard_and_abort_keeps_the_recording(qtbot, synthetic_emg_model: dict,
                                                                        tmp_path: Path) -> None:
    """`myosight calibrate` without --headless: the window opens with the wizard filled from the plan and starts
    it once the source is up; Esc aborts, the repetitions finished are kept, and the live model stays."""
    bundle = str(synthetic_emg_model["bundle"])
    plan = CalibrationPlan(("Slice bread", "Peel a cucumber"), repetitions=2, seconds=3.0, rest_s=1.0,
                           lead_in_s=1.0)
    out = tmp_path / "S10"
    options = ViewerOptions(source=_synthetic("S10"), worker=WorkerSettings(bundle=bundle, emg_only=True),
                            subject="S10", calibration=(plan, out))
    window = build_window(options)
    qtbot.addWidget(window)
    window.calibration_panel.speed = 2.0
    window.show()
    panel = window.calibration_panel
    try:
        assert window.calibration_dock.isVisible() and panel.setup.checked() == list(plan.classes)
        assert panel.setup.subject.text() == "S10" and panel.setup.out_dir.text() == str(out)
        assert panel.setup.plan() == plan
        qtbot.waitUntil(lambda: window.calibration is not None, timeout=START_MS)
        calibration = window.calibration
        qtbot.waitUntil(lambda: calibration.status.stage == "recording", timeout=START_MS)
        _pause_and_resume(qtbot, window, calibration)
        qtbot.waitUntil(lambda: calibration.status.stage == "recording" and calibration.status.prompt.done >= 1,
                        timeout=RECORDING_MS)
        done = calibration.status.prompt.done
        qtbot.keyClick(window, QtCore.Qt.Key.Key_Escape)
        qtbot.waitUntil(lambda: calibration.finished, timeout=RECORDING_MS)
        assert calibration.status.stage == "aborted"
        assert panel.page == "result" and panel.result.title.text() == "Calibration aborted"
        assert "kept" in panel.result.message.text()
        assert window.controller.worker.bundle == bundle and window.calibrated_bundle is None
        assert window.base_button.isHidden()
    finally:
        window.close()
    good, _, performed = _labels_read_back(out)
    assert good == [r.activity for r in plan.order()][:done]
    assert len(performed) >= done and set(performed) <= set(plan.classes)  # a paused one was begun too
    assert not (out / "bundle.safetensors").exists()
    assert CalibrationPlan.load(out / "plan.json") == plan


def _pause_and_resume(qtbot, window: MainWindow, calibration) -> None:
    """P pauses the prompts (not the source's replay control) and P goes on, after a countdown."""
    prompt_page = window.calibration_panel.prompt
    qtbot.keyClick(window, QtCore.Qt.Key.Key_P)
    qtbot.waitUntil(lambda: calibration.status.prompt.phase == "paused", timeout=5000)
    assert prompt_page.caption.text().startswith("PAUSED") and prompt_page.pause.text() == "Resume (P)"
    qtbot.keyClick(window, QtCore.Qt.Key.Key_P)
    qtbot.waitUntil(lambda: calibration.status.prompt.phase != "paused", timeout=5000)
    assert prompt_page.pause.text() == "Pause (P)"


def test_calibrate_command_saves_a_screenshot_mid_prompt(synthetic_emg_model: dict, tmp_path: Path, qapp,
                                                         capsys) -> None:
    """`myosight calibrate --screenshot` (how docs/calibration-wizard.png is made): the window, with a prompt
    active, saved as PNG; then it closes and the recording is kept."""
    from myosight.cli import main

    shot, out = tmp_path / "wizard.png", tmp_path / "S11"
    code = main(["calibrate", "--source", "synthetic", "--subject", "S11", "--base", str(synthetic_emg_model["bundle"]),
                 "--emg-only", "--classes", "Slice bread", "Peel a cucumber", "--reps", "1", "--seconds", "3",
                 "--rest", "1", "--lead-in", "1", "--out", str(out), "--screenshot", str(shot), "--after", "1"])
    assert code == 0
    image = QtGui.QImage(str(shot))
    assert image.width() >= 1200 and image.height() >= 700
    printed = capsys.readouterr().out
    assert f"screenshot saved to {shot}" in printed and "calibration aborted" in printed
    assert (out / "plan.json").is_file() and len(recorded_sessions(out)) == 1


TOP_UP_CLASSES = ("Peel a cucumber", "Clean a plate with a towel")


def _calibrated_yesterday(base: Path, folder: Path) -> Path:
    """A small sEMG-only calibration of S09 made the way `myosight calibrate` makes one (two repetitions of two
    activities, synthetic, without video), to be topped up."""
    config = SynthConfig(subjects=("S09",), actions_per_class=2, seconds_per_action=(4.0, 5.0), rest_seconds=2.0,
                         classes=TOP_UP_CLASSES, seed=11, write_video=False)
    sessions = [s.hdf5_path for s in write_sessions(config, folder / "recordings", progress=False)]
    options = AdaptOptions(base=base, out_dir=folder, classes=list(TOP_UP_CLASSES), emg_only=True, fine_tune="no",
                           subject="S09")
    return adapt(sessions, options).bundle


def test_top_up_records_one_repetition_each_and_replaces_the_calibrated_model(qtbot, synthetic_emg_model: dict,
                                                                              tmp_path: Path) -> None:
    """Calibration > Top up a calibration: the setup page shows what the top-up does, the synthetic person
    performs each activity once, the model is adapted again on yesterday's recording and today's into the
    calibration's folder (the old model kept in history/), and the worker switches to it."""
    base = synthetic_emg_model["bundle"]
    folder = tmp_path / "S09"
    calibrated = _calibrated_yesterday(base, folder)
    earlier = read_bundle_metadata(calibrated)["provenance"]["sessions"]
    before = sha256_file(calibrated)
    window = _window(qtbot, base)
    controller, panel = window.controller, window.calibration_panel
    try:
        controller.start_source(_synthetic("S09"))
        qtbot.waitUntil(lambda: controller.source_ready, timeout=START_MS)
        window.ask_top_up_bundle = lambda: str(calibrated)  # the file dialog's answer
        window.top_up_action.trigger()
        setup = _check_top_up_page(window, folder)
        setup.seconds.setValue(4.0)
        setup.rest.setValue(2.0)
        setup.lead_in_s = 1.0
        panel.speed = 2.0
        qtbot.mouseClick(setup.start, LEFT)
        calibration = window.calibration
        assert calibration is not None and panel.page == "prompt" and setup.error.text() == ""
        assert calibration.run.setup.top_up is not None and calibration.base == base
        qtbot.waitUntil(lambda: calibration.status.stage == "done" or calibration.finished, timeout=ADAPT_MS)
        assert calibration.status.stage == "done", calibration.status.message
        assert calibration.status.bundle == calibrated
        qtbot.waitUntil(lambda: controller.worker.bundle == str(calibrated) and panel.page == "result", timeout=5000)
        qtbot.waitUntil(lambda: window.live_model.text().startswith("Live model: S09/bundle.safetensors · "
                                                                    "calibrated for S09"), timeout=5000)
        assert panel.result.title.text() == "Topped-up model ready"
    finally:
        window.close()
    recordings = list((folder / TOP_UPS).iterdir())
    assert len(recordings) == 1
    good, bad, performed = _labels_read_back(recordings[0])
    assert good == list(TOP_UP_CLASSES) and bad == [] and performed == list(TOP_UP_CLASSES)
    new = [str(p.resolve()) for p in recorded_sessions(recordings[0])]
    assert read_bundle_metadata(calibrated)["provenance"]["sessions"] == earlier + new
    history = list((folder / "history").glob("*.safetensors"))
    assert len(history) == 1 and sha256_file(history[0]) == before != sha256_file(calibrated)


def _check_top_up_page(window: MainWindow, folder: Path):
    """The setup page shows the top-up: the calibration's activities once each, its person and folder, and
    the recording it adds to; only the seconds and the rest can be changed."""
    setup = window.calibration_panel.setup
    assert window.calibration_dock.isVisible() and window.calibration_panel.page == "setup"
    assert setup.title.text() == "Top up a calibration" and setup.start.text() == "Start top-up"
    assert setup.names() == list(TOP_UP_CLASSES) and setup.checked() == list(TOP_UP_CLASSES)
    assert setup.repetitions.value() == 1 and not setup.repetitions.isEnabled()
    assert not setup.subject.isEnabled() and setup.subject.text() == "S09"
    assert not setup.out_dir.isEnabled() and setup.out_dir.text() == str(folder)
    assert setup.seconds.isEnabled() and setup.rest.isEnabled() and setup.new_activity.isHidden()
    note = setup.top_up_note.text()
    assert "again on the 1 earlier recording (recordings/" in note and "history/" in note
    assert setup.summary.text().startswith("2 activities × 1 = 2 prompts")
    return setup


def test_top_up_of_a_model_that_is_not_calibrated_says_why_and_starts_nothing(qtbot, synthetic_emg_model: dict
                                                                              ) -> None:
    """A base model cannot be topped up: the one-line reason shows on the wizard's page, nothing starts, and
    the file dialog would not start at it."""
    base = synthetic_emg_model["bundle"]
    window = _window(qtbot, base)
    try:
        asked = []
        window.ask_top_up_bundle = lambda: asked.append(True) or str(base)
        window.top_up_action.trigger()
        setup = window.calibration_panel.setup
        assert asked and window.calibration is None and window.calibration_dock.isVisible()
        assert window.calibration_panel.page == "setup" and setup.title.text() == "New calibration"
        said = setup.error.text()
        assert said.startswith(f"{base}: not a calibrated model") and "\n" not in said
        assert window.calibration_panel.setup.top_up is None and not is_calibrated(base)
        window.ask_top_up_bundle = lambda: None  # the dialog cancelled: nothing changes
        assert window.open_top_up() is None and window.calibration is None
    finally:
        window.close()
