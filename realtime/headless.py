"""The terminal viewer: a live table of predictions and health, and a JSONL log of every prediction.

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
from myosight.realtime.messages import Message, ResultSubscriber


class HeadlessViewer:
    """Subscribes to the worker's results; keeps running accuracy against the replayed labels."""

    def __init__(self, address: str, jsonl: Path | None = None) -> None:
        self.subscriber = ResultSubscriber(address)
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
        self.log: IO[str] | None = jsonl.open("a", encoding="utf-8") if jsonl else None
        self.last_prediction: Message | None = None
        self.last_health: Message | None = None
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

    def handle(self, message: Message) -> None:
        if self.last_seq is not None and message.seq <= self.last_seq:
            self.worker_restarts += 1  # a new publisher counts from 1 again
        self.last_seq, self.last_message_at = message.seq, time.monotonic()
        if message.kind == "health":
            self.last_health = message
            return
        if message.kind != "prediction":
            return
        self.predictions += 1
        self.last_prediction = message
        fields = message.fields
        self.history.append(fields.get("label", "?"))
        if fields.get("true_label"):
            self.scored += 1
            self.correct += int(fields["label"] == fields["true_label"])
        if self.log is not None:
            record = {**fields, "probs": message.arrays["probs"].tolist(), "seq": message.seq, "time": message.time}
            record.pop("classes", None)
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()

    def poll(self, timeout_ms: int = 100) -> None:
        message = self.subscriber.receive(timeout_ms)
        while message is not None:
            self.handle(message)
            message = self.subscriber.receive(0)

    def render(self):
        from rich.table import Table

        table = Table(title="myosight (headless)", show_header=False, expand=False)
        table.add_column(justify="right", style="bold")
        table.add_column()
        p = self.last_prediction
        if p is None:
            table.add_row("status", "waiting for the first prediction ...")
        else:
            probs = p.arrays["probs"]
            table.add_row("prediction", f"{p.fields['label']}  ({100 * float(probs.max()):.0f} %)")
            table.add_row("true label", str(p.fields.get("true_label") or "-"))
            accuracy = self.accuracy
            scored = f"{100 * accuracy:.1f} % of {self.scored}" if accuracy is not None else "-"
            table.add_row("running accuracy", scored)
            table.add_row("mode", p.fields.get("mode", "?"))
            latency, compute = p.fields.get("latency_ms", 0), p.fields.get("compute_ms", 0)
            table.add_row("latency", f"{latency:.1f} ms (compute {compute:.1f})")
        if self.last_health is not None:
            h = self.last_health.fields
            p50, p95 = h.get("latency_p50_ms", 0), h.get("latency_p95_ms", 0)
            table.add_row("latency p50 / p95", f"{p50:.1f} / {p95:.1f} ms")
            table.add_row("real-time factor", f"{h.get('realtime_factor', 0):.2f}")
            predicted, skipped = h.get("windows_predicted", 0), h.get("windows_skipped", 0)
            table.add_row("windows", f"{predicted} predicted, {skipped} skipped")
            for name, stream in h.get("streams", {}).items():
                state = "MISSING" if stream.get("missing") else ("LOST" if stream.get("lost") else "ok")
                rate = stream.get("rate_hz", "-")
                table.add_row(name, f"{state}, {rate} Hz, gaps {stream.get('gaps', 0)}")
        table.add_row("recent", " / ".join(short_name(label)[:16] for label in list(self.history)[-5:]))
        table.add_row("worker", self.worker_status())
        return table

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
