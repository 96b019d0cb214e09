"""One calibration from the first prompt to the adapted bundle, driven by whoever shows it (terminal or window).

`CalibrationRun` owns what the calibration adds to a running source: the label markers (its prompter's
outlet), the recorder and the feature child (child processes of its own `ProcessGroup`), then the
adaptation (a child process too, so that the desktop viewer never does model work). The caller stops the
run (`shutdown`) before it stops the source, so that every inlet closes while its outlet exists. Every method returns
at once: the caller calls `tick()` a few times a second and shows the `CalibrationStatus` it returns.

    DIR/plan.json            the plan (activities, repetitions, seconds, rest)
    DIR/recordings/          the ActionSense session(s): one per run of the calibration
    DIR/features/            the live RGB features of each run (calibration/features.py)
    DIR/bundle.safetensors   the adapted model, DIR/report.json, DIR/confusion.png (calibration/adapt.py)

A calibration that was aborted, or whose program crashed, keeps every repetition finished so far (the
recorder flushes every second and stops cleanly when its parent dies); running it again into the same
DIR asks only the repetitions still missing (read back from the recordings) and adapts on all of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from myosight.calibration.adapt import REPORT_NAME, AdaptOptions
from myosight.calibration.features import FeatureSpec, feature_process
from myosight.calibration.plan import CalibrationPlan, Prompter, PromptState, Repetition, finished_repetitions
from myosight.calibration.top_up import TopUp
from myosight.capture.choice import StreamChoice
from myosight.capture.clock import SourceClock
from myosight.capture.recorder import RecorderSpec, recorder_process
from myosight.capture.streams import marker_stream_info, open_outlet
from myosight.data.actionsense import ActionSenseSession
from myosight.errors import ConfigError, MyosightError, SessionFormatError
from myosight.models.clips import ClipGeometry
from myosight.processes import Child, ProcessGroup, stop_child

log = logging.getLogger(__name__)

PLAN_NAME = "plan.json"
STATUS_NAME = "adapt-status.json"
READY_TIMEOUT_S = 120.0


@dataclass
class CalibrationSetup:
    out_dir: Path
    plan: CalibrationPlan
    base: Path  # the base bundle
    geometry: ClipGeometry  # resolved from the base bundle and --input-size
    source: str | StreamChoice  # the streams recorded: one source's, or chosen by role (other programs')
    labels: str  # the LSL source name of the calibration's label markers
    clock: SourceClock
    subject: str = "S00"
    emg_only: bool = False
    source_video: bool = True  # False: the source publishes no video (the recorder waits for none)
    fine_tune: str = "auto"
    arms: tuple[str, ...] | None = None  # the armbands to adapt on (default: the recording's)
    top_up: TopUp | None = None  # a top-up: adapt on the calibration's earlier recordings too, into its folder


@dataclass
class CalibrationStatus:
    """What to show: the stage, the prompt while recording, and the outcome."""

    stage: str  # starting, recording, finishing, adapting, done, aborted, failed
    prompt: PromptState | None = None
    message: str = ""
    bundle: Path | None = None
    report: dict | None = None
    timings: dict = field(default_factory=dict)


def recorded_sessions(out_dir: Path) -> list[Path]:
    """The finished sessions of a calibration folder (unfinished ones are recovered by the recorder)."""
    return sorted((Path(out_dir) / "recordings").glob("*.hdf5"))


def done_repetitions(out_dir: Path, plan: CalibrationPlan) -> list[Repetition]:
    """The repetitions already recorded into `out_dir` (a resumed calibration does not ask them again)."""
    labels = []
    for path in recorded_sessions(out_dir):
        try:
            with ActionSenseSession(path) as session:
                labels += [action.label for action in session.activities()]
        except SessionFormatError as error:
            log.warning("%s: not read back (%s); its repetitions are asked again", path, error)
    return finished_repetitions(labels, plan)


def require_own_folder(out_dir: Path, subject: str) -> None:
    """A calibration folder belongs to one person: ConfigError when it holds another's recordings or model
    (resuming would adapt on their recordings; adapting there would replace their model with this person's)."""
    others = recorded_subjects(out_dir)
    report = Path(out_dir) / REPORT_NAME
    if report.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            others.add(str(json.loads(report.read_text(encoding="utf-8")).get("subject") or ""))
    others -= {subject, ""}
    if others:
        raise ConfigError(f"{out_dir} holds the calibration of {', '.join(sorted(others))}, not {subject}: use a "
                          "folder of its own for each person (--out)")


def recorded_subjects(out_dir: Path) -> set[str]:
    """The people whose recordings a calibration folder holds (a session that does not read back says nothing)."""
    subjects = set()
    for path in recorded_sessions(out_dir):
        try:
            with ActionSenseSession(path) as session:
                subjects.add(session.subject or "")
        except SessionFormatError:
            continue
    return subjects - {""}


def _live_feature_files(out_dir: Path) -> list[Path]:
    """The feature files of every run of the calibration, without a temporary one a crash left half-written."""
    return sorted(p for p in (out_dir / "features").glob("*.npz") if not p.name.startswith("."))


def adapt_process(spec: dict, stop: threading.Event, ready: Any) -> None:
    """Child target: adapt the base bundle to the recordings; progress lines go to DIR/adapt-status.json."""
    from myosight.calibration.adapt import adapt

    options = AdaptOptions(**{**spec["options"], "base": Path(spec["options"]["base"]),
                              "out_dir": Path(spec["options"]["out_dir"]),
                              "features": [Path(p) for p in spec["options"]["features"]]})
    status = Path(options.out_dir) / STATUS_NAME
    ready.set()

    def say(text: str) -> None:
        status.write_text(json.dumps({"message": text, "time": time.time()}), encoding="utf-8")

    adapt([Path(p) for p in spec["sessions"]], options, progress=say)


class CalibrationRun:
    """See the module docstring."""

    def __init__(self, setup: CalibrationSetup, on_recorded: Callable[[], None] | None = None) -> None:
        self.setup, self.processes = setup, ProcessGroup()
        self.on_recorded = on_recorded  # called once the recording is complete (e.g. to stop the source)
        self.out = Path(setup.out_dir)
        (self.out / "recordings").mkdir(parents=True, exist_ok=True)
        (self.out / "features").mkdir(exist_ok=True)
        require_own_folder(self.out, setup.subject)
        self._check_plan()
        self.done = done_repetitions(self.out, setup.plan)
        self.outlet = open_outlet(marker_stream_info(source=setup.labels))
        self.status = CalibrationStatus("starting", message="starting the recorder and the feature worker")
        self.prompter: Prompter | None = None
        self._finisher: threading.Thread | None = None
        self._features = self.out / "features" / f"features-{int(time.time() * 1000)}.npz"
        self._abort_requested = False

    def _check_plan(self) -> None:
        path = self.out / PLAN_NAME
        if path.exists():
            stored = CalibrationPlan.load(path)
            if stored != self.setup.plan:
                raise ConfigError(f"{self.out} holds a calibration with another plan ({path}); use a new folder, or "
                                  "the same activities, repetitions and seconds to resume it")
        else:
            self.setup.plan.save(path)

    # -- start -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the recorder (and, with video, the feature child); the prompts begin when both are up."""
        setup = self.setup
        streams = StreamChoice.of(setup.source).to_dict()
        recorder = RecorderSpec(out_dir=str(self.out / "recordings"), streams=streams, label_source=setup.labels,
                                subject=setup.subject, classes=list(setup.plan.classes), resolve_timeout_s=10.0,
                                video=setup.source_video)
        self.processes.start("recorder", recorder_process, asdict(recorder))
        if not setup.emg_only:
            features = FeatureSpec(streams=streams, labels=setup.labels, bundle=str(setup.base),
                                   geometry=setup.geometry.to_dict(), out=str(self._features),
                                   ring_seconds=setup.plan.seconds + 10.0)
            self.processes.start("features", feature_process, asdict(features))
        self._started_at = time.monotonic()

    def _children(self) -> list[str]:
        return ["recorder"] + ([] if self.setup.emg_only else ["features"])

    # -- the caller's timer ------------------------------------------------------------------------------
    def tick(self) -> CalibrationStatus:
        stage = self.status.stage
        if stage == "starting":
            self._tick_starting()
        elif stage == "recording":
            self._tick_recording()
        if self._finisher is not None and not self._finisher.is_alive():
            self._finisher = None
        return self.status

    def _tick_starting(self) -> None:
        children = [self.processes.get(role) for role in self._children()]
        dead = [child for child in children if child is not None and not child.alive]
        if dead:
            self._fail(f"the {dead[0].role} stopped at start ({_why(dead[0])})")
            return
        if self._abort_requested:
            self._finish(adapt=False)
            return
        if all(child is not None and child.ready.is_set() for child in children):
            self.prompter = Prompter(self.setup.plan, self.setup.clock.now, self._publish, done=self.done)
            self.status = CalibrationStatus("recording", self.prompter.tick())
        elif time.monotonic() - self._started_at > READY_TIMEOUT_S:
            self._fail("the recorder or the feature worker did not start")

    def _tick_recording(self) -> None:
        prompter = self.prompter
        assert prompter is not None  # made when the recording phase began
        recorder = self.processes.get("recorder")
        if recorder is not None and not recorder.alive:
            prompter.abort()
            self._fail(f"the recorder stopped ({_why(recorder)}); the repetitions finished so far are kept")
            return
        prompt = prompter.tick()
        self.status = CalibrationStatus("recording", prompt)
        if prompt.phase == "done":
            self._finish(adapt=True)
        elif prompt.phase == "aborted":
            self._finish(adapt=False)

    # -- the person's keys -------------------------------------------------------------------------------
    def pause(self) -> None:
        if self.prompter is not None:
            self.prompter.pause()

    def resume(self) -> None:
        if self.prompter is not None:
            self.prompter.resume()

    def redo(self) -> bool:
        return self.prompter.redo() if self.prompter is not None else False

    def abort(self) -> None:
        """Stop asking, or stop the adaptation under way; keep what was recorded (the same command into the same
        folder adapts it later)."""
        self._abort_requested = True
        if self.prompter is not None:
            self.prompter.abort()

    # -- the end -----------------------------------------------------------------------------------------
    def _publish(self, text: str, stamp: float) -> None:
        self.outlet.push_sample([text], stamp)

    def _finish(self, *, adapt: bool) -> None:
        """Stop the recorder and the feature child (in this order) and adapt, in a background thread."""
        self.status = CalibrationStatus("finishing", self.status.prompt, "finishing the recording")
        ended_wall = time.monotonic()

        def finish() -> None:
            try:
                for role in self._children():
                    child = self.processes.get(role)
                    if child is not None:
                        self.processes.take([role])
                        stop_child(child, timeout_s=30.0)
                if self.on_recorded is not None:
                    self.on_recorded()
                sessions = recorded_sessions(self.out)
                if not adapt or self._abort_requested:
                    self.status = CalibrationStatus("aborted", self.status.prompt, "calibration aborted: the "
                                                    f"recorded repetitions are kept in {self.out / 'recordings'}")
                    return
                self._adapt(sessions, ended_wall)
            except MyosightError as error:
                self._fail(str(error))
            finally:
                self.outlet = None  # the marker outlet goes last: every inlet on it is closed by now

        self._finisher = threading.Thread(target=finish, name="myosight-calibration-finish", daemon=True)
        self._finisher.start()

    def adapt_options(self) -> AdaptOptions:
        """The adaptation this run ends with: of its own recording, or, for a top-up, of the calibration's."""
        setup = self.setup
        features = _live_feature_files(self.out)
        if setup.top_up is not None:
            earlier = [f for folder in setup.top_up.feature_folders() if folder != self.out
                       for f in _live_feature_files(folder)]
            return replace(setup.top_up.options(setup.base), features=features + earlier)
        return AdaptOptions(base=setup.base, out_dir=self.out, classes=list(setup.plan.classes),
                            emg_only=setup.emg_only, input_size=setup.geometry.input_size, features=features,
                            subject=setup.subject, fine_tune=setup.fine_tune, arms=setup.arms,
                            window=setup.geometry.sample_seconds)

    def _adapt(self, sessions: list[Path], ended_wall: float) -> None:
        setup = self.setup
        self.status = CalibrationStatus("adapting", self.status.prompt, "adapting the model")
        options = self.adapt_options()
        if setup.top_up is not None:
            sessions = [*setup.top_up.earlier, *sessions]
        spec = {"sessions": [str(p) for p in sessions],
                "options": {**asdict(options), "base": str(options.base), "out_dir": str(options.out_dir),
                            "features": [str(p) for p in options.features]}}
        child = self.processes.start("adapt", adapt_process, spec)
        while child.alive and not self._abort_requested:
            self._read_progress(Path(options.out_dir))
            time.sleep(0.2)
        self.processes.take(["adapt"])
        if self._abort_requested:
            stop_child(child)
            self.status = CalibrationStatus("aborted", self.status.prompt, "adaptation stopped: the recording is kept "
                                            f"in {self.out / 'recordings'}; run the same command again to adapt it")
            return
        if child.exitcode != 0:
            self._fail(f"the adaptation failed ({_why(child)})")
            return
        report = json.loads((Path(options.out_dir) / REPORT_NAME).read_text(encoding="utf-8"))
        seconds = time.monotonic() - ended_wall
        accuracy = report.get("held_out_top1")
        said = f"held-out accuracy {100 * accuracy:.1f} %" if accuracy is not None else "no held-out repetition"
        self.status = CalibrationStatus("done", self.status.prompt, f"calibrated model ready ({said})",
                                        bundle=Path(options.out_dir) / "bundle.safetensors", report=report,
                                        timings={"adapt_wall_s": seconds})

    def _read_progress(self, folder: Path) -> None:
        try:
            message = json.loads((folder / STATUS_NAME).read_text(encoding="utf-8"))["message"]
        except (OSError, ValueError, KeyError):
            return
        self.status = CalibrationStatus("adapting", self.status.prompt, f"adapting the model: {message}")

    @property
    def finished(self) -> bool:
        return self.status.stage in ("done", "aborted", "failed") and self._finisher is None

    def shutdown(self, timeout_s: float = 120.0) -> None:
        """End the run now: abort what records (the recording is kept), wait for the finishing (and an
        adaptation under way), stop every child it started."""
        if self.status.stage in ("starting", "recording"):
            self.abort()
            self.tick()
        if self._finisher is not None:
            self._finisher.join(timeout_s)
        self.processes.stop(list(self.processes.children))
        self.outlet = None

    def _fail(self, message: str) -> None:
        log.error("calibration: %s", message)
        self.status = CalibrationStatus("failed", self.status.prompt, message)


def _why(child: Child) -> str:
    """Why a child ended: its own one-line error, or its exit code when it sent none (then the terminal says)."""
    return child.error or f"exit code {child.exitcode}; see the terminal"
