"""What a calibration asks of the person, and the prompter that runs it on a clock.

A plan is a list of activities, each performed `repetitions` times for `seconds`, with `rest_s` after
each repetition (a countdown shows the next activity) and a lead-in before the first. The rests are part
of the recording: the adaptation also trains on windows that reach into them, as live windows do. The repetitions go
round by round (every activity once, then every activity again), so that leaving one round out of
training leaves one repetition of every activity to test on.

The prompter turns the plan into what the screen shows (`PromptState`) and into label markers on an LSL
stream, published at the prompt's boundaries with a margin inside each end: "<activity>|Start" at
`margin_s` after the prompt appears and "<activity>|Stop" `margin_s` before it ends, so the labelled span
leaves out the moments the person reacts to the prompt. The recorder writes them as the session's activity
rows; a synthetic person follows them. Pausing (or aborting) during a repetition cancels it ("|Stop|Bad",
which readers drop) and it is asked again after the pause; redo, during the rest after a repetition,
discards that repetition ("|Discard": the recorder rates its labels Bad) and asks it again next.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from myosight.capture.streams import Marker
from myosight.errors import ConfigError
from myosight.models.clips import ClipGeometry, resolve_geometry

PHASES = ("rest", "active", "paused", "done", "aborted")
#: A repetition's training windows reach this many clips before its start and after its last whole window:
#: live windows reach into the rests before and after an activity, so the model learns them too.
WINDOW_REACH_CLIPS = 2
#: The step between the training windows of an sEMG-only calibration (seconds). Its features are cheap, so it
#: trains on nearly every window a live worker at its finest hop would see; with video a window must start on
#: the grid of clips whose I3D features were computed while recording, one clip apart.
EMG_WINDOW_STEP_S = 0.1


def calibration_geometry(base: ClipGeometry, input_size: int | None, window: float | None) -> ClipGeometry:
    """The base model's geometry with the user's I3D input size and decision window (a whole number of the
    base's clips: the clip is what the sEMG CNN and I3D were trained on)."""
    geometry = resolve_geometry(base, input_size)
    if window is None:
        return geometry
    clips = round(window / geometry.clip_seconds)
    if clips < 1 or abs(clips * geometry.clip_seconds - window) > 1e-6:
        raise ConfigError(f"--window {window:g}: the base model's clips are {geometry.clip_seconds:g} s, so the window "
                          f"must be a whole number of them")
    return replace(geometry, clips_per_sample=clips, sample_seconds=clips * geometry.clip_seconds)


def window_step(geometry: ClipGeometry, emg_only: bool) -> float:
    """The step between a repetition's training windows: `EMG_WINDOW_STEP_S` without video, one clip with it."""
    return min(EMG_WINDOW_STEP_S, geometry.clip_seconds) if emg_only else geometry.clip_seconds


def window_starts(start_s: float, stop_s: float, geometry: ClipGeometry, step_s: float) -> list[float]:
    """The starts of a repetition's candidate training windows, every `step_s` from `WINDOW_REACH_CLIPS` clips
    before its start to as many after the start of its last whole window (a repetition shorter than one window
    has one, at its start). Which of them train is the adaptation's choice (it keeps a window inside the data
    and clear of other activities)."""
    reach = WINDOW_REACH_CLIPS * geometry.clip_seconds
    last = start_s + max(0.0, math.floor((stop_s - start_s) / geometry.sample_seconds + 1e-9) - 1) \
        * geometry.sample_seconds
    count = math.floor((last - start_s + 2 * reach) / step_s + 1e-9) + 1
    return [start_s - reach + k * step_s for k in range(count)]


@dataclass(frozen=True)
class CalibrationPlan:
    """The activities to record, how often, how long, and the pauses between them (seconds)."""

    classes: tuple[str, ...]
    repetitions: int = 2
    seconds: float = 6.0
    rest_s: float = 3.0
    lead_in_s: float = 3.0
    margin_s: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ConfigError("a calibration needs at least one activity")
        for name in self.classes:
            if not isinstance(name, str) or not name.strip() or "|" in name or len(name) > 200:
                raise ConfigError(f"activity name {name!r}: it must be non-empty text without '|'")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError("the calibration's activities repeat: " + ", ".join(self.classes))
        if isinstance(self.repetitions, bool) or not isinstance(self.repetitions, int) or self.repetitions < 1:
            raise ConfigError(f"repetitions must be a whole number >= 1, got {self.repetitions!r}")
        for name in ("seconds", "rest_s", "lead_in_s", "margin_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 3600:
                raise ConfigError(f"{name} must be a number of seconds in [0, 3600), got {value!r}")
        if self.seconds - 2 * self.margin_s < 1.0:
            raise ConfigError(f"a repetition of {self.seconds:g} s leaves less than 1 s between its margins of "
                              f"{self.margin_s:g} s")

    def order(self) -> list[Repetition]:
        """Every repetition, round by round."""
        return [Repetition(activity, rep) for rep in range(self.repetitions) for activity in self.classes]

    @property
    def labelled_seconds(self) -> float:
        return self.seconds - 2 * self.margin_s

    @property
    def recording_seconds(self) -> float:
        """The recording's length when nothing is paused or redone."""
        count = len(self.classes) * self.repetitions
        return self.lead_in_s + count * (self.seconds + self.rest_s)

    def to_dict(self) -> dict:
        return {**asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, values: dict) -> CalibrationPlan:
        return cls(**values)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> CalibrationPlan:
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"{path}: not a calibration plan ({error})") from error


@dataclass(frozen=True)
class Repetition:
    activity: str
    index: int  # 0-based: the how-manieth time this activity is performed


@dataclass(frozen=True)
class PromptState:
    """What the screen shows now."""

    phase: str  # rest (counting down to `current`), active (performing `current`), paused, done, aborted
    current: Repetition | None
    next: Repetition | None
    remaining_s: float  # of the phase
    progress: float  # 0..1 within an active repetition
    done: int
    total: int
    can_redo: bool


@dataclass
class _Scheduled:
    time_s: float
    marker: Marker


@dataclass
class Prompter:
    """Runs `plan` on `clock` (a function returning the session's time, e.g. SourceClock.now); `publish` sends
    a label marker text with its time stamp. `done` are repetitions recorded before (a resumed calibration):
    they are not asked again."""

    plan: CalibrationPlan
    clock: Callable[[], float]
    publish: Callable[[str, float], None]
    done: Sequence[Repetition] = ()
    queue: list[Repetition] = field(init=False)
    finished: list[Repetition] = field(init=False)
    phase: str = field(init=False, default="rest")
    phase_start: float = field(init=False)
    phase_end: float = field(init=False)
    paused_from: str | None = field(init=False, default=None)
    _scheduled: list[_Scheduled] = field(init=False, default_factory=list)
    _started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        remaining = list(self.plan.order())
        for repetition in self.done:
            if repetition in remaining:
                remaining.remove(repetition)
        self.queue, self.finished = remaining, list(self.done)
        now = self.clock()
        self.phase_start, self.phase_end = now, now + self.plan.lead_in_s
        if not self.queue:
            self.phase = "done"

    # -- the screen's view -------------------------------------------------------------------------------
    def tick(self) -> PromptState:
        """Advance to the clock's time (publishing the markers that fell due) and say what to show."""
        now = self.clock()
        while self.phase in ("rest", "active") and now >= self.phase_end:
            self._end_phase()
        self._publish_due(now)
        current = self.queue[0] if self.queue else None
        following = self.queue[1] if len(self.queue) > 1 else None
        remaining = max(0.0, self.phase_end - now) if self.phase in ("rest", "active") else 0.0
        progress = 0.0
        if self.phase == "active":
            progress = min(1.0, max(0.0, (now - self.phase_start) / max(self.plan.seconds, 1e-9)))
        return PromptState(self.phase, current, following, remaining, progress, len(self.finished),
                           len(self.finished) + len(self.queue), self.can_redo)

    @property
    def can_redo(self) -> bool:
        return bool(self.finished) and self.phase in ("rest", "paused") and self._redoable

    # -- the person's keys -------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop the clock of the plan; a repetition under way is cancelled and asked again after the pause."""
        if self.phase not in ("rest", "active"):
            return
        now = self.clock()
        self._cancel_active(now, "cancelled: paused")
        self.paused_from, self.phase = self.phase, "paused"

    def resume(self) -> None:
        """Go on after a pause, with the lead-in countdown before the next repetition."""
        if self.phase != "paused":
            return
        now = self.clock()
        self.phase, self.phase_start, self.phase_end = "rest", now, now + self.plan.lead_in_s
        self.paused_from = None

    def redo(self) -> bool:
        """Discard the last finished repetition and ask it again next (during the rest after it, or paused)."""
        if not self.can_redo:
            return False
        now = self.clock()
        last = self.finished.pop()
        self._scheduled.append(_Scheduled(now, Marker(last.activity, "Discard", notes="redone")))
        self._publish_due(now)
        self.queue.insert(0, last)
        self._redoable = False
        if self.phase == "rest":
            self.phase_start, self.phase_end = now, now + max(self.plan.lead_in_s, self.phase_end - now)
        return True

    def abort(self) -> None:
        """End the calibration now; the repetitions finished so far are kept."""
        if self.phase in ("done", "aborted"):
            return
        self._cancel_active(self.clock(), "cancelled: aborted")
        self.phase = "aborted"

    # -- internals ---------------------------------------------------------------------------------------
    _redoable: bool = field(init=False, default=False)

    def _end_phase(self) -> None:
        end = self.phase_end
        if self.phase == "rest" and not self.queue:  # the rest after the last repetition is recorded too
            self.phase = "done"
            return
        if self.phase == "rest":
            repetition = self.queue[0]
            self.phase, self.phase_start, self.phase_end = "active", end, end + self.plan.seconds
            margin = self.plan.margin_s
            self._scheduled += [_Scheduled(end + margin, Marker(repetition.activity, "Start")),
                                _Scheduled(self.phase_end - margin, Marker(repetition.activity, "Stop"))]
            self._redoable = False
            return
        repetition = self.queue.pop(0)
        self.finished.append(repetition)
        self._redoable = True
        self.phase, self.phase_start, self.phase_end = "rest", end, end + self.plan.rest_s

    def _cancel_active(self, now: float, why: str) -> None:
        if self.phase != "active":
            return
        activity = self.queue[0].activity
        started = not any(item.marker.kind == "Start" for item in self._scheduled)
        self._scheduled = [item for item in self._scheduled if item.marker.activity != activity]
        if started:  # its Start is out: close the pair as Bad, which readers drop
            self._scheduled.append(_Scheduled(now, Marker(activity, "Stop", "Bad", why)))
        self._publish_due(now)

    def _publish_due(self, now: float) -> None:
        due = [item for item in self._scheduled if item.time_s <= now]
        self._scheduled = [item for item in self._scheduled if item.time_s > now]
        for item in sorted(due, key=lambda item: item.time_s):
            self.publish(item.marker.text, item.time_s)


def finished_repetitions(labels: Iterable[str], plan: CalibrationPlan) -> list[Repetition]:
    """The repetitions of the plan already recorded, from the labels of good actions in recording order."""
    counts: dict[str, int] = {}
    done = []
    for label in labels:
        if label in plan.classes:
            index = counts.get(label, 0)
            counts[label] = index + 1
            if index < plan.repetitions:
                done.append(Repetition(label, index))
    return done
