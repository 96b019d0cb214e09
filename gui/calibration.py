"""A calibration started from the window: the source it needs, the run (calibration/run.py), and its ending.

The run records the source the window already shows. A synthetic person has to follow the prompts, so it is
restarted for the calibration with `prompts` (the run's label source) and `clock_origin` (the run's clock),
exactly as `myosight calibrate --headless` starts it; a camera with armbands (or any other source) is left
as it is: a real person follows the screen.

A top-up (calibration/top_up.py) runs the same way: the request carries the calibrated model's `TopUp`, and the
run repeats that calibration (its base model, window, arms and modalities, whatever model is live), records one
repetition of each activity into a new folder under the calibration's, and adapts into the calibration's folder.

Order of stopping matters in one place. The prompted person holds an inlet on the run's label outlet, and
the run's recorder holds inlets on the person's outlets, so the person stops between the two: after the
recorder (the run calls `on_recorded` then) and before the run lets its label outlet go. `on_recorded` runs
in the run's finishing thread; it waits while the window's timer replaces the prompted person by one who
performs the calibrated activities on its own (so the calibrated model has something to recognise), and
returns once the prompted one has exited.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from myosight.calibration.plan import CalibrationPlan, calibration_geometry
from myosight.calibration.run import CalibrationRun, CalibrationSetup, CalibrationStatus
from myosight.calibration.top_up import TopUp
from myosight.capture.clock import SourceClock
from myosight.capture.kinds import EXTERNAL_KIND, source_kind, spec_streams
from myosight.data.activities import ACTIVITIES
from myosight.errors import ConfigError
from myosight.gui.controller import Controller, unique_source_name
from myosight.models.bundle_header import read_bundle_geometry, read_bundle_metadata
from myosight.processes import Child, SourceSpec

#: How long the prompted synthetic person may take to start before the calibration gives up.
SOURCE_START_S = 90.0
#: How long the run's finishing thread waits for the window to stop the prompted person.
RELEASE_WAIT_S = 60.0
STAGES_RECORDING = ("starting", "recording")


@dataclass
class CalibrationRequest:
    """What the wizard's setup page asks for."""

    plan: CalibrationPlan
    out_dir: Path
    subject: str = "S00"
    speed: float = 1.0  # the synthetic person's clock (tests run it faster); a real person performs in real time
    top_up: TopUp | None = None  # a top-up of this calibrated model (adapted into its folder), not a new calibration


def top_up_request(top_up: TopUp, seconds: float, rest_s: float, lead_in_s: float,
                   speed: float = 1.0) -> CalibrationRequest:
    """A top-up as the wizard starts it: one repetition of each of the calibration's activities, for its person,
    recorded into a new folder of its own (so that the calibration's own recordings stay as they were)."""
    return CalibrationRequest(top_up.plan(seconds, rest_s, lead_in_s), top_up.recording_folder(),
                              top_up.subject or "S00", speed, top_up)


class WindowCalibration:
    """One calibration driven by the window's timer (`tick`); every method returns at once except
    `shutdown`. Raises ConfigError at construction when the calibration cannot start."""

    def __init__(self, controller: Controller, request: CalibrationRequest) -> None:
        spec = controller.source_spec
        if spec is None or not controller.source_ready:
            raise ConfigError("start a source first (Source, below): the calibration records it")
        bundle = controller.worker.bundle
        if request.top_up is None and not bundle:
            raise ConfigError("choose the model to adapt first (Model, below)")
        self.prompted = spec.kind != EXTERNAL_KIND and source_kind(spec).follows_prompts
        if request.speed != 1.0 and not self.prompted:
            raise ConfigError("only a synthetic person can perform faster than real time")
        self.controller, self.request = controller, request
        self.base = request.top_up.base if request.top_up is not None else Path(str(bundle))
        labels = unique_source_name("cal")
        clock = SourceClock.starting_now(request.speed)
        self.chosen_source = spec  # what the person runs again once the recording is done
        self.source = self._prompted_source(spec, labels, clock) if self.prompted else spec
        setup = self._setup(labels, clock)
        self.run = CalibrationRun(setup, on_recorded=self._on_recorded)  # its label outlet before the person
        if self.prompted:
            controller.start_source(self.source)
        self.status = CalibrationStatus("starting", message=self._waiting_message())
        self.first_active: float | None = None  # monotonic time the first prompt became active
        self._asked = time.monotonic()
        self._started = self._aborting = False
        self._failure: str | None = None
        self._recorded, self._released = threading.Event(), threading.Event()
        self._prompted_child: Child | None = None

    def _setup(self, labels: str, clock: SourceClock) -> CalibrationSetup:
        """The run: the live model adapted with the worker's settings, or, for a top-up, the calibration it tops
        up repeated (its base model, decision window, arms and modalities: the model it makes is that one again)."""
        request, worker = self.request, self.controller.worker
        setup = CalibrationSetup(out_dir=Path(request.out_dir), plan=request.plan, base=self.base,
                                 geometry=worker.geometry(), source=spec_streams(self.source), labels=labels,
                                 clock=clock, subject=request.subject, emg_only=worker.emg_only)
        top_up = request.top_up
        if top_up is None:
            return setup
        geometry = calibration_geometry(read_bundle_geometry(top_up.base), top_up.input_size, top_up.window_s)
        return replace(setup, geometry=geometry, emg_only=top_up.emg_only, fine_tune=top_up.fine_tune,
                       arms=top_up.arms, top_up=top_up)

    def _prompted_source(self, spec: SourceSpec, labels: str, clock: SourceClock) -> SourceSpec:
        plan = self.request.plan
        unknown = [name for name in plan.classes if name not in ACTIVITIES]
        if unknown:
            raise ConfigError(f"the synthetic person performs the 20 ActionSense activities only, not "
                              f"{', '.join(map(repr, unknown))}: record new activities with a camera and armbands")
        prompted = source_kind(spec).with_prompts(spec, labels=labels, clock_origin=clock.origin,
                                                  speed=self.request.speed, classes=plan.classes,
                                                  subject=self.request.subject)
        return replace(prompted, source=unique_source_name())

    def _waiting_message(self) -> str:
        if self.prompted:
            return "starting the synthetic person (it performs what the prompts ask)"
        return "starting the recorder"

    # -- the window's timer ----------------------------------------------------------------------------
    def tick(self) -> CalibrationStatus:
        """Advance (the run starts once the source to record is up) and say what to show."""
        if not self._started and not self._aborting and not self._source_up():
            return self.status
        status = self.run.tick()
        if self._failure is not None:
            status = CalibrationStatus("failed", status.prompt, self._failure)
        if self.first_active is None and status.prompt is not None and status.prompt.phase == "active":
            self.first_active = time.monotonic()
        self.status = status
        self._release_prompted_person()
        return status

    def _source_up(self) -> bool:
        """Start the run once the source to record is up (a prompted person listens to the prompts before it
        says so); give up when it does not come."""
        controller = self.controller
        spec = controller.source_spec
        if controller.source_ready and spec is not None and spec.source == self.source.source:
            self.run.start()
            self._started = True
            return True
        notice = controller.notices.get("source")
        if notice is not None and notice[0] == "error":
            self._fail(f"the source stopped before the calibration began: {notice[1]}")
        elif time.monotonic() - self._asked > SOURCE_START_S:
            self._fail(f"the source did not start within {SOURCE_START_S:.0f} s")
        return self._aborting

    def _fail(self, message: str) -> None:
        self._failure = message
        self.abort()

    def _on_recorded(self) -> None:
        """The run's finishing thread, once its recorder stopped: wait until the prompted person is gone."""
        self._recorded.set()
        if self.prompted:
            self._released.wait(RELEASE_WAIT_S)

    def _release_prompted_person(self) -> None:
        """Replace the prompted person (after the recording) and say when it has exited."""
        done_recording = self._recorded.is_set() or self.status.stage == "failed"
        if not self.prompted or self._released.is_set() or not done_recording:
            return
        controller = self.controller
        if self._prompted_child is None:
            if not self._prompted_person_asked():
                self._released.set()  # another source was chosen meanwhile: nothing of ours runs
                return
            launched = controller.source_spec is not None and controller.source_spec.source == self.source.source
            self._prompted_child = controller.processes.get("source") if launched else None
            controller.start_source(replace(self.chosen_source, source=unique_source_name()))
        if self._prompted_child is None or not self._prompted_child.alive:
            self._released.set()

    def _prompted_person_asked(self) -> bool:
        """Whether the controller's source (running or about to start) is still the prompted person."""
        requested = self.controller.source_request
        return requested is not None and requested.source == self.source.source

    # -- the person's keys ------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.status.stage in STAGES_RECORDING

    def toggle_pause(self) -> None:
        prompt = self.status.prompt
        if prompt is not None and prompt.phase == "paused":
            self.run.resume()
        else:
            self.run.pause()

    def redo(self) -> bool:
        return self.run.redo()

    def abort(self) -> None:
        self._aborting = True
        self.run.abort()

    # -- the end --------------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.run.finished

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """The window closes: abort what records (it is kept), stop the prompted person between the recorder
        and the label outlet, and end the run (an adaptation under way is waited for)."""
        if self.recording:
            self.abort()
            self.run.tick()
        deadline = time.monotonic() + timeout_s
        while self.run.status.stage == "finishing" and not self._recorded.is_set() and time.monotonic() < deadline:
            self._recorded.wait(0.05)
        if self.prompted and not self._released.is_set():
            if self._prompted_person_asked():
                self.controller.stop_all()
            self.controller.wait_stopped(timeout_s)  # a replacement asked for already stops it
        self._released.set()
        self.run.shutdown()
        status = self.run.status
        self.status = status if self._failure is None else CalibrationStatus("failed", status.prompt, self._failure)


def is_calibrated(path: str | Path | None) -> bool:
    """Whether `path` is a model a calibration made (one that can be topped up)."""
    if not path:
        return False
    try:
        provenance = read_bundle_metadata(path).get("provenance")
    except ConfigError:
        return False
    return isinstance(provenance, dict) and "calibrated_from" in provenance


def bundle_summary(path: str | Path) -> str:
    """One line about a bundle: its file, and for a calibrated one its person and held-out accuracy."""
    path = Path(path)
    name = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    try:
        meta = read_bundle_metadata(path)
    except ConfigError:
        return f"{name} (unreadable)"
    provenance = meta.get("provenance") or {}
    classes = len(meta.get("classes", []))
    if not provenance:
        return f"{name} · base model · {classes} activities"
    accuracy = provenance.get("held_out_top1")
    said = "no held-out repetition" if accuracy is None else f"held-out accuracy {100 * accuracy:.1f} %"
    return f"{name} · calibrated for {provenance.get('subject') or '?'} · {said} · {classes} activities"
