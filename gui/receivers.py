"""The viewer's two receiving threads; both only write the latest state into `GuiState`.

- `ResultReceiver`: the worker's predictions and health over ZeroMQ (optionally logged as JSONL, as the
  terminal viewer does).
- `StreamReceiver`: a source's LSL streams (both arms' sEMG, the model-size video) for the traces and the
  camera view. Streams are found by source id and may appear later; their inlets close when the thread
  stops, which the controller does before the source's outlets go away.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

import numpy as np

from myosight.capture.streams import StreamNames
from myosight.errors import StreamError
from myosight.gui.state import GuiState, StreamView
from myosight.realtime.messages import Message

log = logging.getLogger(__name__)

STREAM_KINDS = ("emg-left", "emg-right", "video")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def prediction_problem(message: Message) -> str | None:
    """Why a prediction message cannot be drawn (None when it can): the viewer never trusts a sender."""
    fields, arrays = message.fields, message.arrays
    probs, classes = arrays.get("probs"), fields.get("classes")
    if probs is None or probs.ndim != 1:
        return "no 1-D 'probs' array"
    if not isinstance(classes, list) or len(classes) != len(probs) or not all(isinstance(c, str) for c in classes):
        return "'classes' missing, not names, or not as long as 'probs'"
    if not isinstance(fields.get("label"), str) or not isinstance(fields.get("true_label"), str | None):
        return "'label' (or 'true_label') is not text"
    starts = fields.get("clip_starts", [])
    if not isinstance(starts, list) or not all(_is_number(s) for s in starts):
        return "'clip_starts' is not a list of numbers"
    for key in ("window_end", "latency_ms", "compute_ms"):
        if key in fields and not _is_number(fields[key]):
            return f"'{key}' is not a number"
    for key in ("attention_rgb", "attention_emg", "kinetics_top", "kinetics_probs"):
        if key in arrays and arrays[key].ndim != 1:
            return f"'{key}' is not 1-D"
    return None


def health_problem(message: Message) -> str | None:
    streams = message.fields.get("streams", {})
    if not isinstance(streams, dict) or not all(isinstance(v, dict) for v in streams.values()):
        return "'streams' is not an object of stream objects"
    return None


class ResultReceiver(threading.Thread):
    """Subscribes to a worker's results; predictions and health go into the state, nothing queues."""

    def __init__(self, address: str, state: GuiState, jsonl: Path | None = None) -> None:
        super().__init__(name="myosight-gui-results", daemon=True)
        self.address, self.state, self.jsonl = address, state, jsonl
        self.received = 0
        self.rejected = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        from myosight.realtime.headless import HeadlessViewer

        viewer = HeadlessViewer(self.address, self.jsonl)  # the socket lives in this thread only
        try:
            while not self._stop_event.is_set():
                message = viewer.subscriber.receive(timeout_ms=100)
                if message is not None:
                    self._handle(message, viewer)
        finally:
            viewer.close()

    def _handle(self, message: Message, viewer) -> None:
        check = {"health": health_problem, "prediction": prediction_problem}.get(message.kind)
        if check is None:
            return
        problem = check(message)
        if problem is not None:
            self.rejected += 1
            log.warning("%s message %d from %s ignored: %s", message.kind, message.seq, self.address, problem)
            return
        if message.kind == "health":
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

    def __init__(self, source: str, state: GuiState, *, lost_after_s: float = 1.0, retry_s: float = 1.0) -> None:
        super().__init__(name="myosight-gui-streams", daemon=True)
        self.source, self.state = source, state
        self.lost_after_s, self.retry_s = lost_after_s, retry_s
        self.names = StreamNames(source)
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
        from myosight.realtime.inlets import LiveInlet, resolve

        for kind in STREAM_KINDS:
            if kind in self.inlets or self._stop_event.is_set():
                continue
            try:
                info = resolve(self.names.source_id(kind), 0.1)
                channels = None if kind == "video" else 8
                self.inlets[kind] = LiveInlet(info, channels=channels, lost_after_s=self.lost_after_s,
                                              max_chunk=16 if kind == "video" else 1024)
            except StreamError as error:
                log.debug("stream %s of source '%s' not there yet: %s", kind, self.source, error)

    def _pull_all(self) -> None:
        now = time.monotonic()
        publish_view = now >= self._next_view
        for kind, inlet in list(self.inlets.items()):
            stamps, samples = inlet.pull()
            if len(stamps) and kind == "video":
                side = math.isqrt(inlet.channels // 3)
                self.state.set_frame(float(stamps[-1]), samples[-1].view(np.uint8).reshape(side, side, 3))
            elif len(stamps):
                self.state.push_emg(kind, stamps, samples.astype(np.float32, copy=False))
            if publish_view:
                health = inlet.health
                lost = health.lost and health.samples > 0  # a stream that has not started is not lost
                self.state.set_stream_view(kind, StreamView(lost, health.arrival_rate_hz(), health.samples))
        if publish_view:
            self._next_view = now + 0.2

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop pulling and close the inlets (call before the source's outlets go away)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)
