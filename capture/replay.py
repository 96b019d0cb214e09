"""Replay of a recorded session as LSL streams: EMG left and right, world video, activity labels.

Samples keep their recorded spacing: the timestamp of a sample is `t0 + (t_recorded - first_recorded)`,
with `t0` the LSL clock when replay started (rounded so that the shift is a whole number of seconds), so
the worker sees the real rate and the real gaps, and cuts the same clips as the offline pass. `speed`
only changes how fast samples are sent (above 1: faster than real time); the stamps of a fast replay run
ahead of the wall clock, which the worker does not mind because it works on stamps, not arrival order.
With `loop`, each pass is shifted by the session's length so time keeps increasing. With a
`control_address`, a viewer can pause, seek and change the speed (see capture/playback.py for how the
stamps stay increasing through all of that).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from myosight.capture.playback import CHUNK_SECONDS, Event, Replay, ReplayStats, emg_chunk_events
from myosight.capture.streams import emg_stream_info, open_outlet, push_frame, video_stream_info
from myosight.constants import ARMS, I3D_CROP
from myosight.data.actionsense import ActionSenseSession
from myosight.errors import ConfigError
from myosight.models.i3d_input import model_frame

if TYPE_CHECKING:
    from myosight.data.video import VideoFile

__all__ = ["CHUNK_SECONDS", "ReplayStats", "SessionReplay"]

log = logging.getLogger(__name__)


class SessionReplay(Replay):
    """Publishes a session's streams with their recorded relative timing."""

    def __init__(self, session_path: str | Path, *, video: str | Path | None = None, speed: float = 1.0,
                 loop: bool = False, frame_size: int = I3D_CROP, include_video: bool = True,
                 source: str = "replay", start_offset_s: float = 0.0, max_seconds: float | None = None,
                 control_address: str | None = None) -> None:
        if speed <= 0:
            raise ConfigError(f"replay speed must be positive, got {speed}")
        super().__init__(speed=speed, loop=loop, source=source, control_address=control_address)
        self.frame_size = frame_size
        with ActionSenseSession(session_path, video=video) as session:
            self.path = session.path
            pair = session.emg_pair(allow_missing=True)
            self.emg = {arm: getattr(pair, arm) for arm in ARMS if getattr(pair, arm) is not None}
            self.actions = session.activities() if "experiment-activities/activities" in session.streams() else []
            self.video_path = session.video_path if include_video else None
            if include_video and self.video_path is None:
                log.warning("%s: no world-camera video beside it (a file named like "
                            "'<date>_<time>_<subject>_eye-tracking-video-world_frame.mp4'); replaying its EMG and "
                            "labels only", session.path)
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
        self._first_frame = 0
        self._crop_to(self.first_s, self.last_s)
        self.labels = [(when, f"{a.label}|{kind}") for a in self.actions
                       for when, kind in ((a.start_s, "Start"), (a.stop_s, "Stop"))]
        self._video: VideoFile | None = None

    def _crop_to(self, first_s: float, last_s: float) -> None:
        """Keep only what lies in [first_s, last_s] (the --from / --duration options)."""
        for arm, series in list(self.emg.items()):
            keep = (series.time_s >= first_s) & (series.time_s <= last_s)
            self.emg[arm] = type(series)(series.time_s[keep], series.data[keep], series.source)
        self.actions = [a for a in self.actions if a.stop_s >= first_s and a.start_s <= last_s]
        if self.frame_times is not None:
            self._first_frame = int(np.searchsorted(self.frame_times, first_s))
            self.frame_times = self.frame_times[(self.frame_times >= first_s) & (self.frame_times <= last_s)]

    def _open_outlets(self) -> None:
        for arm in self.emg:
            self.outlets[f"emg-{arm}"] = open_outlet(emg_stream_info(arm, self.source))
        if self.video_path is not None and self.frame_times is not None:  # set together
            fps = 1.0 / float(np.median(np.diff(self.frame_times))) if len(self.frame_times) > 1 else 30.0
            self.outlets["video"] = open_outlet(video_stream_info(self.frame_size, fps, self.source))

    def _events(self) -> list[Event]:
        events: list[Event] = []
        for arm, series in self.emg.items():
            events += emg_chunk_events(self.outlets[f"emg-{arm}"], series.time_s, series.data,
                                       self._counter(arm))
        if self.video_path is not None and self.frame_times is not None:
            outlet = self.outlets["video"]
            events += [Event(float(t), self._frame_sender(outlet, self._first_frame + i))
                       for i, t in enumerate(self.frame_times)]
        return events

    def _frame_sender(self, outlet, index: int) -> Callable[[float], None]:
        assert self.frame_times is not None  # frames are sent only from a session with video
        recorded = float(self.frame_times[index - self._first_frame])

        def send(shift: float) -> None:
            frame = self._frame(index)
            if frame is None:
                return
            push_frame(outlet, frame, recorded + shift)
            self.stats.frames += 1

        return send

    def _frame(self, index: int) -> np.ndarray | None:
        """Frame `index` of the video at the published size; None past the video's end. Reads forward
        through the file and seeks only after a seek of the replay."""
        from myosight.data.video import VideoFile

        if self._video is None:
            assert self.video_path is not None  # as in _frame_sender
            self._video = VideoFile(self.video_path)
        if index >= self._video.frame_count:
            return None
        return model_frame(self._video.read([index])[0], self.frame_size)

    def close(self) -> None:
        super().close()
        if self._video is not None:
            self._video.close()
            self._video = None
