"""A session replayed over LSL into a live worker, with what a ZeroMQ subscriber receives (for the parity tests)."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from lsl_helpers import unique_source, wait_for

from myosight.capture.replay import SessionReplay
from myosight.models.bundle import load_bundle
from myosight.realtime.messages import ResultPublisher, ResultSubscriber
from myosight.realtime.worker import Worker, WorkerConfig


def run_replay_through_worker(session: Path, bundle_path: Path, *, speed: float, emg_only: bool = True,
                              max_seconds: float | None = None, resolve_timeout_s: float = 5.0, hop_s: float = 1.0,
                              allow_missing_arm: bool = False, every_window: bool = False):
    """Replay a session over LSL into a worker; collect what a ZeroMQ subscriber receives."""
    source = unique_source()
    replay = SessionReplay(session, speed=speed, source=source, include_video=not emg_only, max_seconds=max_seconds)
    replay.open()
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    subscriber = ResultSubscriber(publisher.address)
    worker = Worker(load_bundle(bundle_path), WorkerConfig(source=source, emg_only=emg_only, hop_s=hop_s,
                                                          resolve_timeout_s=resolve_timeout_s,
                                                          allow_missing_arm=allow_missing_arm,
                                                          every_window=every_window), publisher)
    # the subscription is live once a health message gets through
    assert wait_for(lambda: (publisher.send("health", {}), subscriber.receive(timeout_ms=20))[1] is not None, 10)
    stop = threading.Event()
    sender = threading.Thread(target=replay.run, args=(stop,), daemon=True)
    sender.start()
    received, predictions = [], []
    deadline = time.monotonic() + replay.duration_s / speed + 30
    try:
        while (sender.is_alive() or predictions_pending(worker)) and time.monotonic() < deadline:
            predictions += worker.step()
            message = subscriber.receive(timeout_ms=2)
            while message is not None:
                received.append(message)
                message = subscriber.receive(timeout_ms=0)
        for _ in range(50):
            message = subscriber.receive(timeout_ms=10)
            if message is not None:
                received.append(message)
    finally:
        stop.set()
        sender.join(timeout=5)
        worker.close()
        subscriber.close()
        publisher.close()
        # end the replay's streams now: its events hold them through a reference cycle until some later garbage
        # collection, and a stream left on the network makes a later test's "any source" ambiguous
        replay.playback = SimpleNamespace(shift=replay.playback.shift) if replay.playback is not None else None
        replay.outlets.clear()  # (what the tests read afterwards, the replay's clock shift and stats, stays)
        gc.collect()
    return replay, worker, predictions, [m for m in received if m.kind == "prediction"], received


def predictions_pending(worker: Worker) -> bool:
    before = worker.windows_predicted
    worker.step()
    return worker.windows_predicted > before
