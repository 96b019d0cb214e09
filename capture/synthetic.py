"""A live synthetic person: the synthetic-session generator, published as LSL streams in real time.

It performs random activities from a class list (each for `action_seconds`, with short rests), and
publishes both armbands' sEMG, the first-person camera at the model's frame size, and the activity
labels as markers, with the same code that writes synthetic session files.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pylsl

from myosight.capture.streams import emg_stream_info, marker_stream_info, open_outlet, push_frame, video_stream_info
from myosight.constants import ARMS, I3D_CROP
from myosight.data.activities import ACTIVITIES
from myosight.data.synth import SynthConfig, SyntheticEmg, render_frame
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
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else frame_bgr


class SyntheticSource:
    """Publishes a synthetic subject live until stopped (or for `duration_s`)."""

    def __init__(self, *, classes: tuple[str, ...] = ACTIVITIES, subject: str = "S00", seed: int = 0,
                 action_seconds: float = 8.0, rest_seconds: float = 1.5, fps: float = 30.0, frame_size: int = I3D_CROP,
                 video: bool = True, source: str = "synthetic") -> None:
        self.config = SynthConfig(subjects=(subject,), classes=classes, seed=seed, fps=fps)
        self.subject, self.classes = subject, classes
        self.action_seconds, self.rest_seconds = action_seconds, rest_seconds
        self.fps, self.frame_size, self.video = fps, frame_size, video
        self.rng = np.random.default_rng(seed)
        self.stats = SyntheticStats()
        self.outlets = {f"emg-{arm}": open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
        self.outlets["labels"] = open_outlet(marker_stream_info(source))
        if video:
            self.outlets["video"] = open_outlet(video_stream_info(frame_size, fps, source))

    def run(self, stop: threading.Event, duration_s: float | None = None) -> SyntheticStats:
        from myosight.data.synth_scene import SceneRenderer

        start = pylsl.local_clock()
        emg = SyntheticEmg(self.config, self.subject, rng=self.rng, start_time_s=start)
        renderer = SceneRenderer(self.frame_size, self.frame_size, self.subject) if self.video else None
        motion, label, next_change, resting = None, None, start + self.rest_seconds, True
        next_frame = start
        while not stop.is_set():
            now = pylsl.local_clock()
            if duration_s is not None and now - start >= duration_s:
                break
            if now >= next_change:
                if resting:
                    label = str(self.rng.choice(self.classes))
                    motion = emg.set_activity(label, next_change)
                    self.outlets["labels"].push_sample([f"{label}|Start"], next_change)
                    self.stats.actions.append(label)
                    next_change += self.action_seconds
                else:
                    emg.set_activity(None, next_change)
                    self.outlets["labels"].push_sample([f"{label}|Stop"], next_change)
                    motion = None
                    next_change += self.rest_seconds
                resting = not resting
            chunk = emg.generate_until(now)
            for arm, times in chunk.time_s.items():
                if len(times):
                    self.outlets[f"emg-{arm}"].push_chunk(chunk.data[arm].astype(np.float32), times.tolist())
                    self.stats.emg_samples += len(times)
            while renderer is not None and next_frame <= now:
                frame = camera_compression(render_frame(renderer, motion, next_frame))
                push_frame(self.outlets["video"], model_frame(frame, self.frame_size), next_frame)
                self.stats.frames += 1
                next_frame += 1.0 / self.fps
            stop.wait(0.01)
        return self.stats
