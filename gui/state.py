"""The state handed over from the receiving threads to the GUI thread: the latest of everything.

Receivers write under one lock and overwrite: a new frame replaces the old one, a new prediction replaces
the last, sEMG goes into fixed-size rings. The GUI timer takes a `Snapshot` (short copies under the lock)
and draws it; nothing ever queues between the two, so a slow frame only drops intermediate states.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from myosight.realtime.messages import HealthMessage, PredictionMessage
from myosight.realtime.ring import SampleRing

TRACE_SECONDS = 10.0
SPECTROGRAM_CLIPS = 10
HISTORY = 12


@dataclass
class StreamView:
    """What the viewer's own inlet knows about a stream (the worker's view comes in its health messages)."""

    lost: bool = False
    rate_hz: float = 0.0
    samples: int = 0
    device: str | None = None  # what streams it, as the stream's description says (which armband)


@dataclass
class Snapshot:
    """Everything one frame draws; arrays are copies or never-mutated objects."""

    emg: dict[str, tuple[np.ndarray, np.ndarray]]
    emg_newest: float | None
    frame: np.ndarray | None
    frame_time: float | None
    frame_seq: int
    prediction: PredictionMessage | None
    prediction_seq: int
    history: list[tuple[str, str | None]]
    scored: int
    correct: int
    spectrograms: list[np.ndarray]  # all of the arms in `arms`
    arms: tuple[str, ...] | None  # the arms of the latest prediction's model (None before the first)
    health: HealthMessage | None
    health_seq: int
    health_age_s: float | None
    streams: dict[str, StreamView]
    replay: dict | None
    data_age_s: float | None  # how long the oldest not-yet-drawn data has waited


@dataclass
class GuiState:
    """Written by the receiver threads, read by the GUI timer; every access holds `lock`."""

    trace_seconds: float = TRACE_SECONDS
    ring_capacity: int = 4096
    lock: threading.Lock = field(default_factory=threading.Lock)
    emg: dict[str, SampleRing] = field(default_factory=dict)
    frame: np.ndarray | None = None
    frame_time: float | None = None
    frame_seq: int = 0
    prediction: PredictionMessage | None = None
    prediction_seq: int = 0
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    scored: int = 0
    correct: int = 0
    spectrograms: deque = field(default_factory=lambda: deque(maxlen=SPECTROGRAM_CLIPS))
    arms: tuple[str, ...] | None = None
    health: HealthMessage | None = None
    health_seq: int = 0
    health_arrival: float | None = None
    streams: dict[str, StreamView] = field(default_factory=dict)
    replay: dict | None = None
    _unseen_since: float | None = None

    # -- writers (receiver threads) -------------------------------------------------------------------
    def push_emg(self, stream: str, times: np.ndarray, values: np.ndarray) -> None:
        with self.lock:
            ring = self.emg.get(stream)
            if ring is None or ring.shape != values.shape[1:]:
                ring = self.emg[stream] = SampleRing(self.ring_capacity, values.shape[1:], np.float32)
            ring.push(times, values)
            self._mark_unseen()

    def set_frame(self, time_s: float, frame: np.ndarray) -> None:
        with self.lock:
            self.frame, self.frame_time = frame, time_s
            self.frame_seq += 1
            self._mark_unseen()

    def set_prediction(self, message: PredictionMessage) -> None:
        """The newest prediction (checked by the strict decoder: its fields are what the panels draw).

        A model of other arms (a worker restarted with another bundle) starts the spectrogram history again:
        its clips have other channels, and the panel lays itself out for the new arms."""
        with self.lock:
            arms = tuple(message.arms)
            if arms != self.arms:
                self.spectrograms.clear()
                self.arms = arms
            self.prediction = message
            self.prediction_seq += 1
            self.history.append((message.label, message.true_label))
            if message.true_label:
                self.scored += 1
                self.correct += int(message.label == message.true_label)
            if message.spectrogram is not None:
                self.spectrograms.append(message.spectrogram)
            self._mark_unseen()

    def set_health(self, message: HealthMessage) -> None:
        with self.lock:
            self.health = message
            self.health_seq += 1
            self.health_arrival = time.monotonic()

    def set_stream_view(self, stream: str, view: StreamView) -> None:
        with self.lock:
            self.streams[stream] = view

    def drop_stream_views(self) -> None:
        with self.lock:
            self.streams = {}
            self.emg = {}
            self.frame, self.frame_time = None, None

    def set_replay(self, status: dict | None) -> None:
        with self.lock:
            self.replay = status

    def reset_predictions(self) -> None:
        """Forget predictions, history and accuracy (a new model or a new source); the arms stay, so the panels
        keep their layout until a prediction says the model's arms are others."""
        with self.lock:
            self.prediction, self.health = None, None
            self.history.clear()
            self.spectrograms.clear()
            self.scored = self.correct = 0
            self.prediction_seq += 1
            self.health_seq += 1
            self.health_arrival = None

    def _mark_unseen(self) -> None:
        if self._unseen_since is None:
            self._unseen_since = time.monotonic()

    # -- readers (GUI thread) -------------------------------------------------------------------------
    def newest_emg_time(self) -> float | None:
        """Stamp of the newest sEMG sample received (the LSL clock of this host), None before any."""
        with self.lock:
            return max((key for ring in self.emg.values() if (key := ring.newest_key) is not None), default=None)

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self.lock:
            newest_keys = {name: key for name, ring in self.emg.items() if (key := ring.newest_key) is not None}
            emg = {name: _copies(self.emg[name].since(key - self.trace_seconds)) for name, key in newest_keys.items()}
            newest = max(newest_keys.values(), default=None)
            age = None if self._unseen_since is None else now - self._unseen_since
            self._unseen_since = None
            return Snapshot(
                emg=emg, emg_newest=newest, frame=self.frame, frame_time=self.frame_time,
                frame_seq=self.frame_seq, prediction=self.prediction, prediction_seq=self.prediction_seq,
                history=list(self.history), scored=self.scored, correct=self.correct,
                spectrograms=list(self.spectrograms), arms=self.arms, health=self.health,
                health_seq=self.health_seq,
                health_age_s=None if self.health_arrival is None else now - self.health_arrival,
                streams=dict(self.streams), replay=self.replay, data_age_s=age,
            )


def _copies(arrays: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Copies of a ring's samples: the snapshot outlives the lock, the ring's storage does not wait for it."""
    return np.array(arrays[0]), np.array(arrays[1])
