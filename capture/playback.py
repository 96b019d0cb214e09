"""The timing shared by every replay (ActionSense/synthetic sessions, XDF files): events sent at their recorded
spacing, with pause, seek, speed and loop, under remote control.

A replay turns its recording into time-ordered events (an EMG chunk, a frame, a label marker), each with
its recorded time. The LSL stamp of a sample is `recorded time + shift`, where `shift` is a whole number of
seconds and only ever changes by whole seconds: the model's sample grid (k / rate) and the clip boundaries
then fall on the same recorded instants live as offline, so live and offline features are identical.
`speed` only changes how fast events are sent.

The start is timed for the worker's first window, which ends on a whole second of the LSL clock: the
recording's first whole second (recorded) is stamped with the last whole second of the LSL clock before the
start and sent at once, together with the fraction of a second recorded before it. The first window's data
is then complete 5 s after the start instead of up to 6 s, and no stamp lies in the future.

Stamps never go back, whatever the user does:
- pause: nothing is sent; on play the stamps go on from where they stopped (no gap: the data is continuous);
- seek: the shift grows (never shrinks) so that the new position is stamped at least `SEEK_GAP_S` after the
  last stamp sent (the worker sees a gap there and restarts its filters). The activity open before the seek is closed
  in the gap and the one in progress at the new position is announced again, so a viewer's or a
  recorder's label track stays paired;
- loop: each pass is shifted by the recording's length rounded up, plus one second.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pylsl

from myosight.capture.replay_control import ControlCommand, ReplayControlServer
from myosight.capture.streams import OpenActivityAnnouncer, parse_marker
from myosight.constants import ARMS
from myosight.errors import ConfigError

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.02  # EMG is sent in 20-ms chunks (the Myo itself delivers about every 10 ms)
SEEK_GAP_S = 1.0
IDLE_S = 0.05  # longest wait between looks at the stop event and the control socket


@dataclass
class ReplayStats:
    emg_samples: dict[str, int] = field(default_factory=lambda: {arm: 0 for arm in ARMS})
    frames: int = 0
    markers: int = 0
    passes: int = 0


@dataclass
class Event:
    time_s: float  # recorded time; the event sends data stamped up to `time_s + shift`
    send: Callable[[float], None]  # called with the current shift


def emg_chunk_events(outlet: pylsl.StreamOutlet, time_s: np.ndarray, data: np.ndarray,
                     on_sent: Callable[[int], None]) -> list[Event]:
    """One event per `CHUNK_SECONDS` of samples, sent when its last sample is due."""
    if len(time_s) == 0:
        return []
    chunk_ids = np.floor((time_s - time_s[0]) / CHUNK_SECONDS).astype(np.int64)
    bounds = [0, *(np.flatnonzero(np.diff(chunk_ids)) + 1).tolist(), len(time_s)]

    def sender(lo: int, hi: int) -> Callable[[float], None]:
        def send(shift: float) -> None:
            outlet.push_chunk(np.asarray(data[lo:hi], np.float32), (time_s[lo:hi] + shift).tolist())
            on_sent(hi - lo)

        return send

    return [Event(float(time_s[hi - 1]), sender(lo, hi)) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def activity_at(labels: Sequence[tuple[float, str]], time_s: float) -> str | None:
    """The activity started strictly before `time_s` and not stopped by then, from time-ordered markers."""
    current = None
    for when, text in labels:
        if when >= time_s:
            break
        marker = parse_marker(text)
        if marker is not None and marker.kind == "Start":
            current = marker.activity
        elif marker is not None and marker.kind == "Stop":
            current = None
    return current


class Playback:
    """Sends events at their recorded spacing until the end (or forever with `loop`) or `stop`."""

    def __init__(self, events: list[Event], first_s: float, last_s: float, *, speed: float, loop: bool,
                 stats: ReplayStats, labels: Sequence[tuple[float, str]] = (),
                 label_outlet: pylsl.StreamOutlet | None = None, control: ReplayControlServer | None = None,
                 source: str = "") -> None:
        check_speed(speed)
        self.first_s, self.last_s, self.speed, self.loop = first_s, last_s, speed, loop
        self.stats, self.control, self.source = stats, control, source
        self.labels = sorted(labels, key=lambda item: item[0])
        self.label_outlet = label_outlet
        if self.labels and label_outlet is None:
            raise ConfigError("label markers need a label outlet")
        # a worker connects after the replay started: it is told the activity in progress
        self.announcer = OpenActivityAnnouncer(label_outlet) if label_outlet is not None else None
        events = events + [Event(when, self._marker_sender(text, when)) for when, text in self.labels]
        events.sort(key=lambda e: e.time_s)  # stable: at one instant EMG, then frames, then labels
        self.events, self._times = events, [e.time_s for e in events]
        self.shift = 0.0
        self.index = 0
        self.paused = False
        self.last_stamp: float | None = None
        self.open_activity: str | None = None  # as sent, so a seek can close it
        self._anchor_wall, self._anchor_s = 0.0, first_s
        self._paused_at = first_s

    @property
    def duration_s(self) -> float:
        return self.last_s - self.first_s

    # -- the loop --------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, start_lsl: float | None = None) -> None:
        t0 = pylsl.local_clock() if start_lsl is None else start_lsl
        first_whole_s = min(float(math.ceil(self.first_s)), self.last_s)
        self.shift = float(math.floor(t0 - first_whole_s))
        self._anchor(first_whole_s)  # what was recorded before it is sent at once (less than a second)
        while not stop.is_set():
            if self.control is not None:
                self.control.serve(self.handle)
            if self.announcer is not None:
                self.announcer.check()
            if self.paused:
                self._idle(IDLE_S, stop)
            elif self.index >= len(self.events):
                self.stats.passes += 1
                if not self.loop:
                    return
                self.shift += math.ceil(self.duration_s) + 1.0
                self.index = 0
                self._anchor(self.first_s)
            else:
                self._step(stop)

    def _step(self, stop: threading.Event) -> None:
        event = self.events[self.index]
        remaining = self._anchor_wall + (event.time_s - self._anchor_s) / self.speed - time.perf_counter()
        if remaining > 0:
            self._idle(min(remaining, IDLE_S), stop)
            return
        event.send(self.shift)
        self.last_stamp = event.time_s + self.shift
        self.index += 1

    def _idle(self, seconds: float, stop: threading.Event) -> None:
        if self.control is not None:
            self.control.wait(seconds)  # returns at once when a request comes in
        else:
            stop.wait(seconds)

    def _anchor(self, recorded_s: float) -> None:
        self._anchor_wall, self._anchor_s = time.perf_counter(), recorded_s

    # -- control ---------------------------------------------------------------------------------------
    def position(self) -> float:
        """The recorded time reached, in seconds from the first."""
        playing = self._anchor_s + (time.perf_counter() - self._anchor_wall) * self.speed
        reached = self._paused_at if self.paused else playing
        return min(max(reached, self.first_s), self.last_s) - self.first_s

    def status(self) -> dict:
        return {"position_s": self.position(), "duration_s": self.duration_s, "speed": float(self.speed),
                "paused": self.paused, "passes": self.stats.passes, "source": self.source}

    def handle(self, command: ControlCommand) -> dict:
        """Apply one control command; returns the status after it."""
        if command.name == "pause" and not self.paused:
            self._paused_at = self.first_s + self.position()
            self.paused = True
        elif command.name == "play" and self.paused:
            self.paused = False
            self._anchor(self._paused_at)
        elif command.name == "set_speed" and command.value is not None:  # parse_request gives these a value
            self.set_speed(command.value)
        elif command.name == "seek" and command.value is not None:
            self.seek(command.value)
        return self.status()

    def set_speed(self, speed: float) -> None:
        check_speed(speed)
        if not self.paused:
            self._anchor(self.first_s + self.position())
        self.speed = speed

    def seek(self, position_s: float) -> None:
        """Go on from `position_s` seconds after the first recorded time (clamped to the recording)."""
        target = self.first_s + min(max(position_s, 0.0), self.duration_s)
        if self.last_stamp is not None:
            gap_stamp = self.last_stamp + SEEK_GAP_S / 2
            self.shift = max(self.shift, float(math.ceil(self.last_stamp + SEEK_GAP_S - target)))
            if self.open_activity is not None:
                self._send_marker(f"{self.open_activity}|Stop", gap_stamp)
        self.index = bisect.bisect_left(self._times, target)
        resumed = activity_at(self.labels, target)
        if resumed is not None:
            self._send_marker(f"{resumed}|Start", target + self.shift)
        self._paused_at = target
        self._anchor(target)

    # -- labels ----------------------------------------------------------------------------------------
    def _marker_sender(self, text: str, recorded_s: float) -> Callable[[float], None]:
        def send(shift: float) -> None:
            self._send_marker(text, recorded_s + shift)

        return send

    def _send_marker(self, text: str, stamp: float) -> None:
        assert self.announcer is not None  # markers come only with a label outlet (checked when made)
        self.announcer.push(text, stamp)
        self.stats.markers += 1
        marker = parse_marker(text)
        if marker is not None and marker.kind == "Start":
            self.open_activity = marker.activity
        elif marker is not None and marker.kind == "Stop":
            self.open_activity = None


def check_speed(speed: float) -> None:
    if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
        raise ConfigError(f"replay speed must be a positive number, got {speed}")


class Replay:
    """What the replays share: the label outlet, the control socket, and running the events through Playback.

    A subclass sets `first_s`, `last_s` and `labels` ((recorded time, marker text), ...) and implements
    `_open_outlets()` and `_events()`.
    """

    first_s: float
    last_s: float
    labels: list[tuple[float, str]]

    def __init__(self, *, speed: float, loop: bool, source: str, control_address: str | None) -> None:
        check_speed(speed)
        self.speed, self.loop, self.source, self.control_address = speed, loop, source, control_address
        self.stats = ReplayStats()
        self.outlets: dict[str, pylsl.StreamOutlet] = {}
        self.control: ReplayControlServer | None = None
        self.playback: Playback | None = None

    @property
    def duration_s(self) -> float:
        return self.last_s - self.first_s

    @property
    def _t0(self) -> float:
        """The LSL stamp of the first recorded instant in the current pass (0 before `run`)."""
        return self.first_s + self.playback.shift if self.playback is not None else 0.0

    def open(self) -> None:
        """Create the outlets and bind the control socket (call before `run`, so inlets can find them)."""
        from myosight.capture.streams import marker_stream_info, open_outlet, warn_if_source_name_taken

        if not self.outlets:
            warn_if_source_name_taken(self.source)
        self._open_outlets()
        self.outlets["labels"] = open_outlet(marker_stream_info(self.source))
        if self.control_address and self.control is None:
            self.control = ReplayControlServer(self.control_address)
            self.control_address = self.control.address  # the port chosen, when the address said 0

    def wait_for_consumers(self, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Wait until every data outlet (not the labels) has a consumer, at most `timeout_s`: a replay then
        starts as soon as its worker listens, and loses none of its first seconds to inlets still connecting.
        True when they all have one."""
        outlets = [outlet for kind, outlet in self.outlets.items() if kind != "labels"]
        deadline = time.monotonic() + timeout_s
        while not all(outlet.have_consumers() for outlet in outlets):
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return False
            time.sleep(0.01)
        return True

    def run(self, stop: threading.Event | None = None, start_lsl: float | None = None) -> ReplayStats:
        """Send everything (forever with `loop`) until `stop` is set; the control socket closes at the end."""
        stop = stop or threading.Event()
        if not self.outlets:
            self.open()
        self.playback = Playback(self._events(), self.first_s, self.last_s, speed=self.speed, loop=self.loop,
                                 stats=self.stats, labels=self.labels, label_outlet=self.outlets["labels"],
                                 control=self.control, source=self.source)
        try:
            self.playback.run(stop, start_lsl)
        finally:
            self.close()
        return self.stats

    def close(self) -> None:
        """Release the control socket and what the events hold open (outlets stay until the object goes)."""
        if self.control is not None:
            self.control.close()
            self.control = None

    def _counter(self, arm: str) -> Callable[[int], None]:
        """A callback that adds the EMG samples an event sent to the arm's count."""

        def count(n: int) -> None:
            self.stats.emg_samples[arm] += n

        return count

    def _open_outlets(self) -> None:
        raise NotImplementedError

    def _events(self) -> list[Event]:
        raise NotImplementedError
