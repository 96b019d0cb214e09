"""The viewer's entry point: the Qt application, the window, and what it starts or connects to.

Qt aborts the process when its platform plugin cannot load (on Linux desktops most often because the
system library libxcb-cursor0 is missing), with no chance to explain. So on a display platform the viewer
first opens a QApplication in a throw-away child process and, when that fails, stops with a hint instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from myosight.capture.choice import StreamChoice
from myosight.errors import MyosightError, install_hint
from myosight.gui.controller import WorkerSettings
from myosight.processes import EXIT_INTERRUPTED, STOP_SIGNALS, RunSpec, SourceSpec

log = logging.getLogger(__name__)

HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc")
PLATFORM_HINT = (
    "the desktop viewer cannot start: Qt could not load its platform plugin{platform}. On Linux desktops "
    "Qt 6.5 and later need the system library libxcb-cursor0 (Debian/Ubuntu: sudo apt install "
    "libxcb-cursor0). Without a display, use the terminal viewer (`myosight run ... --headless`, "
    "`myosight demo --headless`) or set QT_QPA_PLATFORM=offscreen.{detail}"
)


class GuiUnavailableError(MyosightError):
    """Qt cannot open a window here."""


@dataclass
class ViewerOptions:
    """What the window starts or connects to, and how long it stays."""

    source: SourceSpec | None = None  # start this source (and a worker on it when there is a model)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    address: str | None = None  # where a worker started by the window publishes (default: a free port)
    connect: str | None = None  # view the worker publishing here; nothing is started
    streams: StreamChoice | None = None  # with `connect`: the LSL streams to show, by role
    duration_s: float | None = None
    screenshot: Path | None = None
    after_s: float = 10.0  # the screenshot is taken this long after the first prediction (calibration: prompt)
    jsonl: Path | None = None
    record_dir: Path = Path("recordings")
    subject: str = "S00"
    calibration: tuple | None = None  # (CalibrationPlan, DIR): open the calibration wizard with this plan

    @classmethod
    def from_run(cls, spec: RunSpec, jsonl: Path | None = None) -> ViewerOptions:
        """The window for `myosight run` / `myosight demo` without --headless."""
        worker = WorkerSettings(bundle=spec.bundle, emg_only=spec.emg_only, hop_s=spec.hop_s,
                                input_size=spec.input_size, use_compile=spec.use_compile, device=spec.device,
                                precision=spec.precision)
        return cls(source=spec.sources, worker=worker, address=spec.address, duration_s=spec.duration_s,
                   jsonl=jsonl)


def check_platform(timeout_s: float = 30.0) -> None:
    """Raise GuiUnavailableError with a hint when the gui extra is missing or Qt cannot open a window here."""
    missing = [name for name in ("PySide6", "pyqtgraph") if importlib.util.find_spec(name) is None]
    if missing:
        raise GuiUnavailableError(f"the desktop viewer needs {' and '.join(missing)} ({install_hint('gui')}); "
                                  "or use the terminal viewer (--headless)")
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in HEADLESS_PLATFORMS or not sys.platform.startswith("linux"):
        return
    probe = "from PySide6.QtWidgets import QApplication; QApplication([])"
    try:
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return  # slow, not broken: let the real start decide
    if result.returncode != 0:
        said = " ".join(line.strip() for line in result.stderr.strip().splitlines()[-3:])
        raise GuiUnavailableError(PLATFORM_HINT.format(
            platform=f" ('{platform}')" if platform else "", detail=f" Qt said: {said}" if said else ""))


def kinetics_labels() -> list[str] | None:
    """The Kinetics-400 names for the I3D top-3, when the weights are fetched."""
    try:
        from myosight.models.i3d_weights import load_labels

        return load_labels()
    except MyosightError:
        return None


def run_viewer(options: ViewerOptions) -> int:
    """Open the window, run until it closes (or the duration ends); the exit code is `myosight run`'s."""
    check_platform()
    from myosight.gui.qt import application

    app = application(sys.argv[:1])
    app.setApplicationName("myosight")
    window = build_window(options)
    quits = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)  # one way out (a second quit would end the next event loop at once)
    window.closed.connect(app.quit)
    window.show()
    # Ctrl-C, `kill`, a closed terminal: the window closes and stops what it started (the frame timer lets
    # Python see the signal)
    signals: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        signals.append(signum)
        window.close()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    finisher = _Finisher(window, options)
    window.timer.timeout.connect(finisher.check)
    try:
        app.exec()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        app.setQuitOnLastWindowClosed(quits)
        window.shutdown()
    if finisher.saved is not None:
        print(f"screenshot saved to {finisher.saved}")
    if window.calibration is not None:
        print(f"calibration: {window.calibration.status.message or window.calibration.status.stage}")
    code = window.controller.exit_code() if window.controller is not None else 0
    for failure in window.controller.failures if window.controller is not None else []:
        print(f"myosight: error: {failure}", file=sys.stderr)  # the window is gone: its notices too
    return EXIT_INTERRUPTED if code == 0 and signals[:1] == [signal.SIGINT] else code


def build_window(options: ViewerOptions):
    """The window with its state, controller (unless connecting) and the processes it should start."""
    from myosight.gui.controller import Controller, free_tcp_address
    from myosight.gui.main_window import MainWindow
    from myosight.gui.state import GuiState

    state = GuiState()
    if options.connect:
        window = MainWindow(state, None, options.connect, kinetics_labels=kinetics_labels(), jsonl=options.jsonl)
        if options.streams is not None:
            window.show_streams(options.streams)
        return window
    address = options.address or free_tcp_address()
    controller = Controller(state, address, options.worker, record_dir=options.record_dir, subject=options.subject)
    window = MainWindow(state, controller, address, kinetics_labels=kinetics_labels(), jsonl=options.jsonl)
    if options.worker.bundle:
        window.choose_bundle(str(options.worker.bundle))
    if options.source is not None:
        _show_source(window, options.source)
        controller.start_source(options.source)
    if options.calibration is not None:
        plan, out_dir = options.calibration
        window.open_calibration(plan, Path(out_dir), start=True)
    return window


def _show_source(window, spec) -> None:
    """Make the source controls show the source that was started from the command line."""
    controls = window.controls
    index = controls.kind.findData(spec.kind)
    if index >= 0:
        controls.kind.setCurrentIndex(index)
    controls.path.setText(spec.settings.get("session") or "")
    controls.speed.setValue(spec.settings.get("speed", 1.0))
    controls.loop.setChecked(spec.settings.get("loop", True))


class _Finisher:
    """Closes the window at the end of `duration_s`, or after the screenshot is saved: `after_s` after the first
    prediction, or with a calibration, `after_s` into its prompts while one is active."""

    def __init__(self, window, options: ViewerOptions) -> None:
        self.window, self.options = window, options
        self.opened = time.monotonic()
        self.first_prediction: float | None = None
        self.saved: Path | None = None

    def check(self) -> None:
        now = time.monotonic()
        if self.options.duration_s is not None and now - self.opened >= self.options.duration_s:
            self._finish()
            return
        if self.options.screenshot is None or self.saved is not None:
            return
        if self.options.calibration is not None:
            self._shoot_prompt(now)
            return
        if self.first_prediction is None and self.window.state.prediction is not None:
            self.first_prediction = now
        waiting_for_model = self.window.controller is None or bool(self.window.controller.worker.bundle)
        start = self.first_prediction if waiting_for_model else self.opened
        give_up = now - self.opened > self.options.after_s + 180
        if (start is not None and now - start >= self.options.after_s) or give_up:
            if give_up:
                log.warning("no prediction arrived; saving the screenshot anyway")
            self.saved = self.window.save_screenshot(self.options.screenshot)
            self._finish()

    def _shoot_prompt(self, now: float) -> None:
        calibration = self.window.calibration
        prompt = calibration.status.prompt if calibration is not None else None
        active = prompt is not None and prompt.phase == "active" and calibration.first_active is not None
        if active and now - calibration.first_active >= self.options.after_s:
            self.saved = self.window.save_screenshot(self.options.screenshot)
            self._finish()
        elif now - self.opened > self.options.after_s + 300:
            log.warning("no calibration prompt was shown; saving the screenshot anyway")
            self.saved = self.window.save_screenshot(self.options.screenshot)
            self._finish()

    def _finish(self) -> None:
        self.window.close()
