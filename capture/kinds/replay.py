"""`--source replay FILE`: a recorded session (.hdf5) or a LabRecorder file (.xdf) played as live streams."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myosight.arms import arm_layout
from myosight.capture.kinds import PickerFields, SourceKind, SourceOption, register
from myosight.capture.kinds._options import LSL_EMG_LEFT, LSL_EMG_RIGHT, SPEED
from myosight.processes import SourceSpec

LOOP = SourceOption(("--loop",), "loop", {"action": "store_true", "help": "start again at the end"})


@dataclass(frozen=True)
class ReplaySettings:
    session: str
    speed: float = 1.0
    loop: bool = False
    lsl_emg_left: str | None = None  # .xdf: the file's stream of each arm, where the file does not say
    lsl_emg_right: str | None = None
    control_address: str | None = None  # ZeroMQ address of its play/pause/seek control
    consumer_wait_s: float = 1.0  # how long it waits for its worker's inlets before it starts


@register
class Replay(SourceKind):
    name = "replay"
    title = "Replay file"
    order = 0
    file = "session"
    publishes = ("emg", "video", "labels")
    options = (SPEED, LOOP, LSL_EMG_LEFT, LSL_EMG_RIGHT)
    settings_type = ReplaySettings
    faster_than_real_time = True
    controllable = True

    def settings_from_picker(self, picked: PickerFields) -> dict:
        return {"session": picked.session, "speed": picked.speed, "loop": picked.loop,
                "lsl_emg_left": picked.left, "lsl_emg_right": picked.right}

    def check(self, spec: SourceSpec) -> None:
        """Open the file here, so that a bad path (or, for XDF, arms it cannot tell) is one error line before any
        process starts."""
        path = self.settings(spec).session
        if _is_xdf(path) and not Path(path).is_file():
            from myosight.errors import SessionFormatError
            from myosight.paths import not_a_file_reason

            raise SessionFormatError(path, not_a_file_reason(path))
        self.arms(spec)  # reads the file: a session's arms, or the XDF streams of each arm

    def arms(self, spec: SourceSpec) -> tuple[str, ...] | None:
        settings = self.settings(spec)
        if _is_xdf(settings.session):
            from myosight.capture.xdf_replay import choose_arms, scan_streams

            chosen = choose_arms(scan_streams(settings.session).streams, Path(settings.session),
                                 left=settings.lsl_emg_left, right=settings.lsl_emg_right)
            return arm_layout(chosen)
        from myosight.data.actionsense import ActionSenseSession

        with ActionSenseSession(settings.session) as session:
            return session.arms

    def video_missing(self, spec: SourceSpec) -> str | None:
        path = self.settings(spec).session
        if _is_xdf(path):
            return None  # its streams tell
        from myosight.data.actionsense import ActionSenseSession

        with ActionSenseSession(path) as session:
            if session.video_path is not None:
                return None
        return (f"{path} has no world-camera video beside it (a file named like "
                "'<date>_<time>_<subject>_eye-tracking-video-world_frame.mp4')")

    def describe(self, spec: SourceSpec) -> str:
        return f"the replay of {self.settings(spec).session}"

    def run(self, spec: SourceSpec, stop: threading.Event, ready: Any) -> None:
        settings = self.settings(spec)
        replay = open_replay(spec, settings)
        replay.open()
        ready.set()
        replay.wait_for_consumers(settings.consumer_wait_s, stop)
        replay.run(stop)


def open_replay(spec: SourceSpec, settings: ReplaySettings):
    """A LabRecorder replay for a .xdf file, a session replay otherwise."""
    if _is_xdf(settings.session):
        from myosight.capture.xdf_replay import XdfReplay

        return XdfReplay(settings.session, speed=settings.speed, loop=settings.loop, source=spec.source,
                         control_address=settings.control_address, include_video=spec.video,
                         left=settings.lsl_emg_left, right=settings.lsl_emg_right)
    from myosight.capture.replay import SessionReplay

    return SessionReplay(settings.session, speed=settings.speed, loop=settings.loop, include_video=spec.video,
                         frame_size=spec.frame_size, source=spec.source, control_address=settings.control_address)


def _is_xdf(path: str | None) -> bool:
    return str(path).lower().endswith(".xdf")
