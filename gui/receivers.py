"""The viewer's two receiving threads; both only write the latest state into `GuiState`.

- `ResultReceiver`: the worker's predictions and health over ZeroMQ, as typed messages (optionally logged
  as JSONL, as the terminal viewer does).
- `StreamReceiver`: a source's LSL streams (both arms' sEMG, the model-size video) for the traces and the
  camera view. Streams are found by source id and may appear later; their inlets close when the thread
  stops, which the controller does before the source's outlets go away.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from myosight.capture.choice import StreamChoice
from myosight.errors import StreamError
from myosight.gui.state import GuiState, StreamView
from myosight.realtime.messages import HealthMessage, Result, ResultSubscriber

if TYPE_CHECKING:
    from myosight.realtime.headless import HeadlessViewer

log = logging.getLogger(__name__)

STREAM_KINDS = ("emg-left", "emg-right", "video")


class ResultReceiver(threading.Thread):
    """Subscribes to a worker's results; predictions and health go into the state, nothing queues.

    The subscriber's strict decoders check every message (`myosight.realtime.messages`): one that cannot be
    drawn is counted in `rejected` and logged, and the last good one stays on screen."""

    def __init__(self, address: str, state: GuiState, jsonl: Path | None = None) -> None:
        super().__init__(name="myosight-gui-results", daemon=True)
        self.address, self.state, self.jsonl = address, state, jsonl
        self.received = 0
        self.subscriber: ResultSubscriber | None = None
        self._stop_event = threading.Event()

    @property
    def rejected(self) -> int:
        """Messages refused so far (malformed envelopes and messages off the schema)."""
        return self.subscriber.rejected if self.subscriber is not None else 0

    def run(self) -> None:
        from myosight.realtime.headless import HeadlessViewer

        viewer = HeadlessViewer(self.address, self.jsonl)  # the socket lives in this thread only
        self.subscriber = viewer.subscriber
        try:
            while not self._stop_event.is_set():
                message = viewer.subscriber.receive_result(timeout_ms=100)
                if message is not None:
                    self._handle(message, viewer)
        finally:
            viewer.close()

    def _handle(self, message: Result, viewer: HeadlessViewer) -> None:
        if isinstance(message, HealthMessage):
            self.state.set_health(message)
        else:
            self.state.set_prediction(message)
            if viewer.log is not None:
                viewer.handle(message)
        self.received += 1

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)


class StreamReceiver(threading.Thread):
    """Pulls a source's sEMG and video streams into the state's rings (about 100 pulls a second)."""

    def __init__(self, source: str | StreamChoice, state: GuiState, *, lost_after_s: float = 1.0,
                 retry_s: float = 1.0) -> None:
        super().__init__(name="myosight-gui-streams", daemon=True)
        self.choice = StreamChoice.of(source)  # a source name, or a source per role (see capture.choice)
        self.source, self.state = self.choice.describe(), state
        self.lost_after_s, self.retry_s = lost_after_s, retry_s
        self._told = ""  # the last problem said, said once
        self.inlets: dict = {}
        self._stop_event = threading.Event()
        self._next_view = 0.0

    def run(self) -> None:
        next_try = 0.0
        try:
            while not self._stop_event.is_set():
                if len(self.inlets) < len(STREAM_KINDS) and time.monotonic() >= next_try:
                    self._connect_missing()
                    next_try = time.monotonic() + self.retry_s
                self._pull_all()
                self._stop_event.wait(0.01)
        finally:
            for kind in ("video", "emg-right", "emg-left"):
                inlet = self.inlets.pop(kind, None)
                if inlet is not None:
                    inlet.close()

    def _connect_missing(self) -> None:
        """Open the streams the choice takes that have appeared (one short look; the next try comes later)."""
        from myosight.capture.discovery import find_chosen_streams
        from myosight.capture.inlets import LiveInlet

        missing = [kind for kind in STREAM_KINDS if kind not in self.inlets]
        try:
            found = find_chosen_streams(self.choice, missing, 0.1, grace_s=0.0)
        except StreamError as error:  # a role streamed by several sources the choice does not tell apart
            if str(error) != self._told:
                log.warning("streams of %s: %s", self.source, error)
                self._told = str(error)
            return
        for kind, info in found.items():
            if self._stop_event.is_set():
                return
            try:
                channels = None if kind == "video" else 8
                self.inlets[kind] = LiveInlet(info, channels=channels, lost_after_s=self.lost_after_s,
                                              max_chunk=16 if kind == "video" else 1024)
            except StreamError as error:
                log.debug("stream %s of %s not open yet: %s", kind, self.source, error)

    def _pull_all(self) -> None:
        now = time.monotonic()
        publish_view = now >= self._next_view
        for kind, inlet in list(self.inlets.items()):
            stamps, samples = inlet.pull()
            if len(stamps) and kind == "video":
                self.state.set_frame(float(stamps[-1]), samples[-1].view(np.uint8).reshape(inlet.sample_shape))
            elif len(stamps):
                self.state.push_emg(kind, stamps, samples.astype(np.float32, copy=False))
            if publish_view:
                health = inlet.health
                lost = health.lost and health.samples > 0  # a stream that has not started is not lost
                self.state.set_stream_view(kind, StreamView(lost, health.arrival_rate_hz(), health.samples,
                                                            inlet.device))
        if publish_view:
            self._next_view = now + 0.2

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop pulling and close the inlets (call before the source's outlets go away)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)
