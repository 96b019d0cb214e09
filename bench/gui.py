"""`myosight bench gui`: what drawing costs, offscreen.

Two parts:
- the sEMG traces alone for 1-4 streams x 8-64 channels (10 s at 200 Hz each): the time to put a frame's new
  samples into the rings and take the snapshot ("buffer update"), the time to set the curves and paint
  ("paint"), and the frames per second that leaves; plus the one-curve-per-channel way for comparison;
- the whole window with everything moving (16 traces, 16 spectrograms, 224-px video at 30 fps, a prediction
  and a health report every second) on its own frame timer: frames per second, the slowest frame, and how
  long new data waited before a frame took it.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

RATE_HZ = 200.0
FPS = 30.0


def benchmark_gui(streams: tuple[int, ...] = (1, 2, 4), channels: tuple[int, ...] = (8, 16, 32, 64),
                  frames: int = 60, window_seconds: float = 8.0, progress: bool = True) -> list[dict]:
    """Figures as dicts with name, value, unit and, where the issue sets one, target."""
    from myosight.gui.qt import QtWidgets, application
    from myosight.interrupts import deferred_stops
    from myosight.progress import track

    if QtWidgets.QApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # figures of drawing, not of a desktop's compositor
    app = application([])
    quits = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)  # closing one case's widget must not end the next case's event loop
    cases = [(s, c, False) for s in streams for c in channels] + [(2, 8, True)]
    figures: list[dict] = []
    try:
        # Qt calls Python back from C++ and drops what a callback raises (a traceback on the terminal, and the
        # case goes on): a stop is held back while a case runs and raised between cases instead
        for count, width, naive in track(cases, "gui traces", enabled=progress):
            with deferred_stops():
                figures += _traces_case(app, count, width, frames, naive)
        if window_seconds > 0:
            with deferred_stops():
                figures += _window_case(app, window_seconds)
    finally:
        app.setQuitOnLastWindowClosed(quits)
    return figures


class _PaintCounter:
    """Counts paint events of a widget, so a figure can say that painting really happened."""

    def __init__(self, widget) -> None:
        from myosight.gui.qt import QtCore

        class Filter(QtCore.QObject):
            count = 0

            def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt override)
                if event.type() == QtCore.QEvent.Type.Paint:
                    Filter.count += 1
                return False

        self.filter = Filter()
        self.filter_class = Filter
        widget.viewport().installEventFilter(self.filter)

    @property
    def count(self) -> int:
        return self.filter_class.count


def _traces_case(app, streams: int, channels: int, frames: int, naive: bool) -> list[dict]:
    from myosight.gui.state import GuiState
    from myosight.gui.widgets.emg_traces import EmgTraces

    names = [f"s{i}" for i in range(streams)]
    widget = EmgTraces(names, channels=channels, naive=naive)
    widget.resize(900, 200 * streams + 100)
    widget.show()
    counter = _PaintCounter(widget)
    state = GuiState(ring_capacity=4096)
    rng = np.random.default_rng(0)
    clock = {"t": 0.0}

    def feed(seconds: float) -> None:
        n = max(1, round(seconds * RATE_HZ))
        times = clock["t"] + np.arange(1, n + 1) / RATE_HZ
        for name in names:
            state.push_emg(name, times, rng.normal(0, 30, (n, channels)).astype(np.float32))
        clock["t"] = float(times[-1])

    feed(10.0)
    app.processEvents()
    updates, paints = [], []
    started = time.perf_counter()
    for _ in range(frames):
        a = time.perf_counter()
        feed(1 / FPS)
        snapshot = state.snapshot()
        b = time.perf_counter()
        widget.update_traces(snapshot.emg, snapshot.emg_newest)
        app.processEvents()
        updates.append(b - a)
        paints.append(time.perf_counter() - b)
    elapsed = time.perf_counter() - started
    painted = counter.count
    widget.close()
    widget.deleteLater()
    app.processEvents()
    tag = f"gui.traces{'.naive' if naive else ''}.{streams}x{channels}"
    note = f"{painted} paints in {frames} frames"
    return [
        {"name": f"{tag}.buffer_update_ms", "value": 1e3 * float(np.median(updates)), "unit": "ms"},
        {"name": f"{tag}.paint_ms", "value": 1e3 * float(np.median(paints)), "unit": "ms", "note": note},
        {"name": f"{tag}.paint_p95_ms", "value": 1e3 * float(np.percentile(paints, 95)), "unit": "ms"},
        {"name": f"{tag}.fps", "value": frames / elapsed, "unit": "frames/s",
         **({"target": ">= 30"} if not naive else {})},
    ]


def _window_case(app, seconds: float) -> list[dict]:
    from myosight.gui.controller import free_tcp_address
    from myosight.gui.main_window import MainWindow
    from myosight.gui.qt import QtCore
    from myosight.gui.state import GuiState

    state = GuiState()
    window = MainWindow(state, None, free_tcp_address(), fps=FPS)
    window.show()
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_window, args=(state, stop), daemon=True)
    feeder.start()
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    window.clock.window_s = seconds
    loop.exec()
    stats = window.clock.stats()
    stop.set()
    feeder.join(5)
    window.close()
    window.deleteLater()
    app.processEvents()
    frame_ms = 1e3 / FPS
    return [
        {"name": "gui.window.fps", "value": stats["fps"], "unit": "frames/s", "target": ">= 30"},
        {"name": "gui.window.slowest_frame_ms", "value": stats["slowest_frame_ms"], "unit": "ms",
         "target": "< 100", "note": "longest gap between frames"},
        {"name": "gui.window.tick_p50_ms", "value": stats["tick_p50_ms"], "unit": "ms",
         "note": "snapshot and panel updates, before painting"},
        {"name": "gui.window.tick_p95_ms", "value": stats["tick_p95_ms"], "unit": "ms"},
        {"name": "gui.window.data_wait_frames", "value": stats["data_wait_ms"] / frame_ms, "unit": "frames",
         "target": "<= 2", "note": f"{stats['data_wait_ms']:.0f} ms: longest wait of new data for its frame"},
    ]


def _feed_window(state, stop: threading.Event) -> None:
    """What the receivers would write: 2 x 8 sEMG channels at 200 Hz, 224-px frames at 30 fps, a prediction
    and a health report every second."""
    rng = np.random.default_rng(1)
    t0 = time.monotonic()
    sent = {"emg": 0, "frames": 0, "seconds": 0}
    state.push_emg("emg-left", np.arange(-2000, 0) / RATE_HZ, rng.normal(0, 30, (2000, 8)).astype(np.float32))
    state.push_emg("emg-right", np.arange(-2000, 0) / RATE_HZ, rng.normal(0, 30, (2000, 8)).astype(np.float32))
    while not stop.wait(0.01):
        now = time.monotonic() - t0
        due = int(now * RATE_HZ)
        if due > sent["emg"]:
            times = np.arange(sent["emg"], due) / RATE_HZ
            for arm in ("emg-left", "emg-right"):
                state.push_emg(arm, times, rng.normal(0, 30, (len(times), 8)).astype(np.float32))
            sent["emg"] = due
        if int(now * FPS) > sent["frames"]:
            state.set_frame(now, rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
            sent["frames"] = int(now * FPS)
        if int(now) > sent["seconds"]:
            sent["seconds"] = int(now)
            prediction, health = _messages(now, sent["seconds"], rng)
            state.set_prediction(prediction)
            state.set_health(health)


def _messages(now: float, seq: int, rng: np.random.Generator):
    """A fusion prediction with everything a panel draws (clip attention, Kinetics top-3, spectrogram) and a
    health report, typed as the viewer receives them."""
    from myosight.data.activities import ACTIVITIES
    from myosight.realtime.messages import HealthMessage, KineticsTop, PredictionMessage, StreamStatus

    classes = list(ACTIVITIES)
    probs = rng.dirichlet(np.ones(len(classes))).astype(np.float32)
    index = int(np.argmax(probs))
    prediction = PredictionMessage(
        label=classes[index], label_index=index, classes=classes, probs=probs, window_end=now - 0.3,
        clip_starts=[now - 5.3 + k for k in range(5)], mode="fusion", latency_ms=420.0, compute_ms=380.0,
        rgb_reused=0, windows_skipped=0, arms=["left", "right"], emg_coverage=[1.0, 1.0],
        true_label=classes[seq % len(classes)],
        attention={"rgb": rng.dirichlet(np.ones(5)).astype(np.float32),
                   "emg": rng.dirichlet(np.ones(5)).astype(np.float32)},
        kinetics=KineticsTop(np.array([1, 2, 3], np.int32), np.array([0.5, 0.3, 0.2], np.float32)),
        spectrogram=rng.random((16, 10, 17)).astype(np.float32), seq=seq, time=time.time(),
    )
    stream = StreamStatus(lost=False, samples=200 * seq, rate_hz=200.0, clock_offset_ms=0.01, lost_events=0,
                          recovered_events=0, gaps=0, stuck_channels=[], nonfinite=0, backwards_dropped=0)
    health = HealthMessage(streams={"emg-left": stream, "emg-right": stream}, mode="fusion", video_lost=False,
                           windows_predicted=seq, windows_skipped=0, rgb_features=seq, emg_features=seq,
                           latency_p50_ms=400.0, latency_p95_ms=480.0, realtime_factor=0.4, seq=seq, time=time.time())
    return prediction, health
