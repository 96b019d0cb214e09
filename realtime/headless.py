"""The terminal viewer: a live table of predictions and health, and a JSONL log of every prediction.

The log has one `PredictionMessage.to_json()` record per line (docs/messages.md describes its keys).

The table shows the armbands there are: the sEMG coverage of each arm of the model's (its prediction's
`arms`), and the streams of the worker's health report (which lists only the model's arms).

It only subscribes, so it survives the worker: when the worker stops, the table says how long it has been
silent; when a worker comes back on the same address, ZeroMQ reconnects by itself and the restart is
recognised by the message sequence starting again.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from myosight.data.activities import short_name
from myosight.realtime.messages import HealthMessage, PredictionMessage, Result, ResultSubscriber, StreamStatus


class HeadlessViewer:
    """Subscribes to the worker's results; keeps running accuracy against the replayed labels."""

    def __init__(self, address: str, jsonl: Path | None = None) -> None:
        self.subscriber = ResultSubscriber(address)
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
        self.log: IO[str] | None = jsonl.open("a", encoding="utf-8") if jsonl else None
        self.last_prediction: PredictionMessage | None = None
        self.last_health: HealthMessage | None = None
        self.history: deque[str] = deque(maxlen=8)
        self.scored = 0
        self.correct = 0
        self.predictions = 0
        self.worker_restarts = 0
        self.last_seq: int | None = None
        self.last_message_at: float | None = None  # time.monotonic()

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    def handle(self, message: Result) -> None:
        """Take one typed message (as the subscriber's strict decoders give them)."""
        if message.seq is not None:
            if self.last_seq is not None and message.seq <= self.last_seq:
                self.worker_restarts += 1  # a new publisher counts from 1 again
            self.last_seq = message.seq
        self.last_message_at = time.monotonic()
        if isinstance(message, HealthMessage):
            self.last_health = message
            return
        self.predictions += 1
        self.last_prediction = message
        self.history.append(message.label)
        if message.true_label:
            self.scored += 1
            self.correct += int(message.label == message.true_label)
        if self.log is not None:
            self.log.write(json.dumps(message.to_json()) + "\n")
            self.log.flush()

    def poll(self, timeout_ms: int = 100) -> None:
        message = self.subscriber.receive_result(timeout_ms)
        while message is not None:
            self.handle(message)
            message = self.subscriber.receive_result(0)

    def render(self):
        from rich.table import Table

        table = Table(title="myosight (headless)", show_header=False, expand=False)
        table.add_column(justify="right", style="bold")
        table.add_column()
        p = self.last_prediction
        if p is None:
            table.add_row("status", "waiting for the first prediction ...")
        else:
            table.add_row("prediction", f"{p.label}  ({100 * float(p.probs.max()):.0f} %)")
            table.add_row("true label", p.true_label or "-")
            accuracy = self.accuracy
            scored = f"{100 * accuracy:.1f} % of {self.scored}" if accuracy is not None else "-"
            table.add_row("running accuracy", scored)
            table.add_row("mode", p.mode)
            table.add_row("sEMG coverage", coverage_text(p))
            table.add_row("latency", f"{p.latency_ms:.1f} ms (compute {p.compute_ms:.1f})")
        if self.last_health is not None:
            self._health_rows(table, self.last_health)
        table.add_row("recent", " / ".join(short_name(label)[:16] for label in list(self.history)[-5:]))
        table.add_row("worker", self.worker_status())
        return table

    @staticmethod
    def _health_rows(table, h: HealthMessage) -> None:
        if h.latency_p50_ms is not None and h.latency_p95_ms is not None:
            table.add_row("latency p50 / p95", f"{h.latency_p50_ms:.1f} / {h.latency_p95_ms:.1f} ms")
        if h.realtime_factor is not None:
            table.add_row("real-time factor", f"{h.realtime_factor:.2f}")
        table.add_row("windows", f"{h.windows_predicted} predicted, {h.windows_skipped} skipped")
        if h.hop_s is not None:
            coarsened = f" (made coarser {h.hop_coarsened}x to keep up)" if h.hop_coarsened else ""
            table.add_row("decisions", f"every {h.hop_s:.2f} s{coarsened}")
        for name, stream in h.streams.items():
            if stream.missing:
                table.add_row(name, "MISSING")
                continue
            table.add_row(name, stream_text(stream))

    def worker_status(self, silent_after_s: float = 3.0) -> str:
        """'ok', or how long the worker has been silent; and how often it restarted."""
        if self.last_message_at is None:
            status = "no message yet"
        else:
            silent = time.monotonic() - self.last_message_at
            status = f"SILENT for {silent:.0f} s (stopped?)" if silent > silent_after_s else "ok"
        return status + (f", restarted {self.worker_restarts}x" if self.worker_restarts else "")

    def run(self, stop: threading.Event, duration_s: float | None = None, live: bool = True) -> None:
        started = time.monotonic()
        if not live:
            while not stop.is_set() and (duration_s is None or time.monotonic() - started < duration_s):
                self.poll()
            return
        from rich.live import Live

        with Live(self.render(), refresh_per_second=4) as view:
            while not stop.is_set() and (duration_s is None or time.monotonic() - started < duration_s):
                self.poll()
                view.update(self.render())

    def close(self) -> None:
        self.subscriber.close()
        if self.log is not None:
            self.log.close()


def coverage_text(prediction: PredictionMessage) -> str:
    """Each arm of the model with the share of the window its sEMG covered: 'right 75 %' for a one-armband
    model, 'left 100 % · right 50 %' for two (a low share says an armband stalled)."""
    return " · ".join(f"{arm} {100 * float(share):.0f} %"
                      for arm, share in zip(prediction.arms, prediction.emg_coverage, strict=True))


def stream_text(stream: StreamStatus) -> str:
    """A stream's state for its row, with its rate and gaps where measured; as in the desktop viewer, a stream
    that has had no data yet is waited for, not lost."""
    if stream.samples == 0:
        state = "waiting"
    elif stream.lost:
        state = "LOST"
    else:
        problem = stream.problem()
        state = problem.upper() if problem else "ok"  # shouted, as LOST is
    rate = f", {stream.rate_hz:.1f} Hz" if stream.rate_hz is not None else ""
    gaps = f", gaps {stream.gaps}" if stream.gaps is not None else ""
    held = f", {stream.nonfinite} non-finite held" if stream.nonfinite and not stream.stuck_channels else ""
    return state + rate + gaps + held
