"""Replay of a recorded session as LSL streams: EMG left and right, world video, activity labels.

Samples keep their recorded spacing: the timestamp of a sample is `t0 + (t_recorded - first_recorded)`,
with `t0` the LSL clock when replay started (rounded so that the shift is a whole number of seconds), so
the worker sees the real rate and the real gaps, and cuts the same clips as the offline pass. `speed`
only changes how fast samples are sent (above 1: faster than real time); the stamps of a fast replay run
ahead of the wall clock, which the worker does not mind because it works on stamps, not arrival order.
With `loop`, each pass is shifted by the session's length so time keeps increasing.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl

from myosight.capture.streams import emg_stream_info, marker_stream_info, open_outlet, video_stream_info
from myosight.data.actionsense import ARMS, ActionSenseSession
from myosight.errors import ConfigError

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.02  # EMG is sent in 20-ms chunks (the Myo itself delivers about every 10 ms)


@dataclass
class ReplayStats:
    emg_samples: dict[str, int] = field(default_factory=lambda: {arm: 0 for arm in ARMS})
    frames: int = 0
    markers: int = 0
    passes: int = 0


@dataclass
class _Event:
    time_s: float  # recorded time
    send: Callable[[], None]


class SessionReplay:
    """Publishes a session's streams with their recorded relative timing."""

    def __init__(self, session_path: str | Path, *, video: str | Path | None = None, speed: float = 1.0,
                 loop: bool = False, video_size: int = 224, include_video: bool = True,
                 source: str = "replay", start_offset_s: float = 0.0, max_seconds: float | None = None) -> None:
        if speed <= 0:
            raise ConfigError(f"replay speed must be positive, got {speed}")
        self.speed, self.loop, self.video_size, self.source = speed, loop, video_size, source
        self.stats = ReplayStats()
        with ActionSenseSession(session_path, video=video) as session:
            self.path = session.path
            pair = session.emg_pair(allow_missing=True)
            self.emg = {arm: getattr(pair, arm) for arm in ARMS if getattr(pair, arm) is not None}
            self.actions = session.activities() if "experiment-activities/activities" in session.streams() else []
            self.video_path = session.video_path if include_video else None
            self.frame_times = session.video_frame_times() if self.video_path else None
        starts = [s.time_s[0] for s in self.emg.values() if len(s)]
        stops = [s.time_s[-1] for s in self.emg.values() if len(s)]
        if self.frame_times is not None and len(self.frame_times):
            starts.append(self.frame_times[0])
            stops.append(self.frame_times[-1])
        if not starts:
            raise ConfigError(f"{self.path}: nothing to replay (no EMG and no video)")
        self.first_s, self.last_s = min(starts) + start_offset_s, max(stops)
        if max_seconds is not None:
            self.last_s = min(self.last_s, self.first_s + max_seconds)
        self._crop_to(self.first_s, self.last_s)
        self.outlets: dict[str, pylsl.StreamOutlet] = {}
        self._t0 = 0.0
        self._first_frame = 0

    def _crop_to(self, first_s: float, last_s: float) -> None:
        """Keep only what lies in [first_s, last_s] (the --from / --duration options)."""
        for arm, series in list(self.emg.items()):
            keep = (series.time_s >= first_s) & (series.time_s <= last_s)
            self.emg[arm] = type(series)(series.time_s[keep], series.data[keep], series.source)
        self.actions = [a for a in self.actions if a.stop_s >= first_s and a.start_s <= last_s]
        if self.frame_times is not None:
            self._first_frame = int(np.searchsorted(self.frame_times, first_s))
            self.frame_times = self.frame_times[(self.frame_times >= first_s) & (self.frame_times <= last_s)]

    @property
    def duration_s(self) -> float:
        return self.last_s - self.first_s

    def open(self) -> None:
        """Create the outlets (call before `run`, so inlets can find them)."""
        for arm in self.emg:
            self.outlets[f"emg-{arm}"] = open_outlet(emg_stream_info(arm, self.source))
        if self.video_path is not None:
            fps = 1.0 / float(np.median(np.diff(self.frame_times))) if len(self.frame_times) > 1 else 30.0
            self.outlets["video"] = open_outlet(video_stream_info(self.video_size, fps, self.source))
        self.outlets["labels"] = open_outlet(marker_stream_info(self.source))

    def run(self, stop: threading.Event | None = None, start_lsl: float | None = None) -> ReplayStats:
        """Send everything (forever with `loop`) until `stop` is set."""
        stop = stop or threading.Event()
        if not self.outlets:
            self.open()
        t0_lsl = pylsl.local_clock() if start_lsl is None else start_lsl
        # Shift by a whole number of seconds: the model's sample grid (k / rate) and the clip boundaries
        # then fall on the same recorded instants live as offline, so both give identical features.
        t0_lsl = self.first_s + round(t0_lsl - self.first_s)
        offset = 0.0
        while not stop.is_set():
            self._t0 = t0_lsl + offset
            self._one_pass(stop)
            self.stats.passes += 1
            if not self.loop:
                break
            offset += math.ceil(self.duration_s) + 1.0
        return self.stats

    def _one_pass(self, stop: threading.Event) -> None:
        wall0 = time.perf_counter()
        frames = self._frames() if self.video_path is not None else None
        for event in self._events(frames):
            due = wall0 + (event.time_s - self.first_s) / self.speed
            while not stop.is_set():
                remaining = due - time.perf_counter()
                if remaining <= 0:
                    break
                stop.wait(min(remaining, 0.05))
            if stop.is_set():
                return
            event.send()

    def _events(self, frames: Iterator[np.ndarray] | None) -> list[_Event]:
        events: list[_Event] = []
        for arm, series in self.emg.items():
            outlet = self.outlets[f"emg-{arm}"]
            chunk_ids = np.floor((series.time_s - series.time_s[0]) / CHUNK_SECONDS).astype(np.int64)
            bounds = [0, *(np.flatnonzero(np.diff(chunk_ids)) + 1).tolist(), len(series)]
            for lo, hi in itertools.pairwise(bounds):
                if hi > lo:
                    events.append(_Event(float(series.time_s[hi - 1]), self._emg_sender(outlet, arm, series, lo, hi)))
        if frames is not None:
            outlet = self.outlets["video"]
            for t in self.frame_times:
                events.append(_Event(float(t), self._frame_sender(outlet, frames, float(t))))
        labels = self.outlets["labels"]
        for action in self.actions:
            for when, kind in ((action.start_s, "Start"), (action.stop_s, "Stop")):
                events.append(_Event(when, self._marker_sender(labels, f"{action.label}|{kind}", when)))
        events.sort(key=lambda e: e.time_s)
        return events

    def _emg_sender(self, outlet, arm, series, lo, hi) -> Callable[[], None]:
        def send() -> None:
            stamps = self._stamp(series.time_s[lo:hi])
            outlet.push_chunk(np.asarray(series.data[lo:hi], np.float32), stamps.tolist())
            self.stats.emg_samples[arm] += hi - lo

        return send

    def _frame_sender(self, outlet, frames: Iterator[np.ndarray], recorded: float) -> Callable[[], None]:
        def send() -> None:
            frame = next(frames, None)
            if frame is None:
                return
            outlet.push_sample(frame.reshape(-1).view(np.int8), float(self._stamp(np.array([recorded]))[0]))
            self.stats.frames += 1

        return send

    def _marker_sender(self, outlet, text: str, recorded: float) -> Callable[[], None]:
        def send() -> None:
            outlet.push_sample([text], float(self._stamp(np.array([recorded]))[0]))
            self.stats.markers += 1

        return send

    def _stamp(self, recorded: np.ndarray) -> np.ndarray:
        return self._t0 + (recorded - self.first_s)

    def _frames(self) -> Iterator[np.ndarray]:
        from myosight.data.video import VideoFile
        from myosight.models.i3d_input import model_frame

        with VideoFile(self.video_path) as video:
            last = min(video.frame_count, self._first_frame + len(self.frame_times))
            for index in range(self._first_frame, last):
                yield model_frame(video.read([index])[0], self.video_size)
