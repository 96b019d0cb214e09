"""A live synthetic person: the synthetic-session generator, published as LSL streams in real time.

It performs random activities from a class list (each for `action_seconds`, with short rests), or, when
it follows `prompts` (the label stream of a calibration), exactly the activity each "<activity>|Start"
marker asks for until its Stop. It publishes the sEMG of the armbands it wears (both, or one: the same
signals a two-armband person's arm would give), the first-person camera as model frames,
and what it performs as label markers, with the same code that writes synthetic session files. Its clock
(capture/clock.py) can run faster than real time for tests and benchmarks.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from myosight.arms import BOTH_ARMS, arm_layout
from myosight.capture.clock import SourceClock
from myosight.capture.streams import (
    OpenActivityAnnouncer,
    emg_stream_info,
    marker_stream_info,
    open_outlet,
    parse_marker,
    push_frame,
    video_stream_info,
    warn_if_source_name_taken,
)
from myosight.constants import I3D_CROP
from myosight.data.activities import ACTIVITIES
from myosight.data.synth import ActionMotion, SynthConfig, SyntheticEmg, render_frame
from myosight.errors import ConfigError
from myosight.models.i3d_input import model_frame


@dataclass
class SyntheticStats:
    emg_samples: int = 0
    frames: int = 0
    actions: list[str] = field(default_factory=list)


def camera_compression(frame_bgr: np.ndarray, quality: int = 60) -> np.ndarray:
    """The frame after JPEG compression, as a USB camera (MJPEG) or a recorded mp4 delivers it.

    Models trained on recorded (compressed) video see different statistics in perfectly clean renders.
    """
    import cv2

    ok, encoded = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
    return decoded if decoded is not None else frame_bgr


class SyntheticSource:
    """Publishes a synthetic subject live until stopped (or for `duration_s`)."""

    def __init__(self, *, classes: tuple[str, ...] = ACTIVITIES, subject: str = "S00", seed: int = 0,
                 action_seconds: float = 8.0, rest_seconds: float = 1.5, fps: float = 30.0, frame_size: int = I3D_CROP,
                 video: bool = True, source: str = "synthetic", prompts: str | None = None,
                 clock: SourceClock | None = None, arms: tuple[str, ...] = BOTH_ARMS) -> None:
        unknown = [c for c in classes if c not in ACTIVITIES]
        if unknown:
            raise ConfigError(f"the synthetic person cannot perform {', '.join(map(repr, unknown))}: it knows the "
                              "20 ActionSense activities only")
        self.config = SynthConfig(subjects=(subject,), classes=classes, seed=seed, fps=fps)
        self.subject, self.classes = subject, classes
        self.action_seconds, self.rest_seconds = action_seconds, rest_seconds
        self.fps, self.frame_size, self.video = fps, frame_size, video
        self.prompts, self.clock = prompts, clock
        self.rng = np.random.default_rng(seed)
        self.stats = SyntheticStats()
        warn_if_source_name_taken(source)
        self.arms = arm_layout(arms, what="the synthetic person's arms")
        self.outlets = {f"emg-{arm}": open_outlet(emg_stream_info(arm, source)) for arm in self.arms}
        self.outlets["labels"] = open_outlet(marker_stream_info(source))
        self.announcer = OpenActivityAnnouncer(self.outlets["labels"])  # a worker that connects late is told
        if video:
            self.outlets["video"] = open_outlet(video_stream_info(frame_size, fps, source))
        # listening before the source says it is ready: a prompt published in between would be lost, and the
        # person would rest through a repetition recorded as the activity
        self._prompted = _Prompted(prompts) if prompts else None

    def run(self, stop: threading.Event, duration_s: float | None = None) -> SyntheticStats:
        from myosight.data.synth_scene import SceneRenderer

        clock = self.clock or SourceClock.starting_now()
        # The person starts at the last whole second, the fraction before now sent at once: the worker's windows
        # end on whole seconds, so its first window's data is then complete 5 s from now, not up to 6 s.
        start = float(math.floor(clock.now()))
        emg = SyntheticEmg(self.config, self.subject, rng=self.rng, start_time_s=start)
        renderer = SceneRenderer(self.frame_size, self.frame_size, self.subject) if self.video else None
        performer = self._prompted or _RandomActivities(self, start)
        motion = None
        next_frame = start
        try:
            while not stop.is_set():
                now = clock.now()
                if duration_s is not None and now - start >= duration_s:
                    break
                for time_s, label in performer.changes(now):
                    motion = self._change(emg, label, time_s)
                self.announcer.check()
                self._publish(emg.generate_until(now))
                while renderer is not None and next_frame <= now:
                    frame = camera_compression(render_frame(renderer, motion, next_frame))
                    push_frame(self.outlets["video"], model_frame(frame, self.frame_size), next_frame)
                    self.stats.frames += 1
                    next_frame += 1.0 / self.fps
                stop.wait(0.01)
        finally:
            performer.close()
        return self.stats

    def _change(self, emg: SyntheticEmg, label: str | None, time_s: float) -> ActionMotion | None:
        """Start `label` (None: rest) at `time_s`, and say so on the label stream."""
        previous = emg.current.label if emg.current is not None else None
        if previous is not None:
            self._mark(f"{previous}|Stop", time_s)
        motion = emg.set_activity(label, time_s)
        if label is not None:
            self._mark(f"{label}|Start", time_s)
            self.stats.actions.append(label)
        return motion

    def _mark(self, text: str, time_s: float) -> None:
        self.announcer.push(text, time_s)

    def _publish(self, chunk) -> None:
        for arm, times in chunk.time_s.items():
            if len(times) and arm in self.arms:
                self.outlets[f"emg-{arm}"].push_chunk(chunk.data[arm].astype(np.float32), times.tolist())
                self.stats.emg_samples += len(times)


class _RandomActivities:
    """Random activities of `action_seconds` with rests of `rest_seconds` between them."""

    def __init__(self, source: SyntheticSource, start: float) -> None:
        self.source = source
        self.next_change, self.resting = start + source.rest_seconds, True

    def changes(self, now: float) -> list[tuple[float, str | None]]:
        changes: list[tuple[float, str | None]] = []
        while now >= self.next_change:
            if self.resting:
                changes.append((self.next_change, str(self.source.rng.choice(self.source.classes))))
                self.next_change += self.source.action_seconds
            else:
                changes.append((self.next_change, None))
                self.next_change += self.source.rest_seconds
            self.resting = not self.resting
        return changes

    def close(self) -> None:
        pass


class _Prompted:
    """The activities a calibration's label markers ask for: Start -> perform it, Stop -> rest."""

    def __init__(self, prompts: str, timeout_s: float = 10.0) -> None:
        from myosight.capture.inlets import LiveInlet, resolve
        from myosight.capture.streams import StreamNames

        self.inlet = LiveInlet(resolve(StreamNames(prompts).source_id("labels"), timeout_s), lost_after_s=1e9)

    def changes(self, now: float) -> list[tuple[float, str | None]]:
        stamps, samples = self.inlet.pull_markers()
        changes = []
        for time_s, sample in zip(stamps, samples, strict=True):
            marker = parse_marker(sample[0] if isinstance(sample, list | tuple) else sample)
            if marker is not None and marker.kind in ("Start", "Stop"):
                changes.append((float(time_s), marker.activity if marker.kind == "Start" else None))
        return changes

    def close(self) -> None:
        self.inlet.close()
