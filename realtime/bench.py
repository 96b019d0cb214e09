"""`myosight bench realtime`: the live worker on LSL loopback, fed a synthetic session in real time.

Latency is measured from the moment the window's data is in the worker (the newest sample past the
window's end has arrived) to the moment its prediction is published; compute time is the part spent in
the models. The clip span (how much time the video of one clip covers) is reported beside them, since a
prediction can never be fresher than its newest clip.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np


def _session(root: Path, seconds: float) -> Path:
    from myosight.data.synth import SynthConfig, write_session

    classes = ("Slice bread", "Pour water from a pitcher into a glass", "Clean a pan with a sponge")
    config = SynthConfig(subjects=("S09",), actions_per_class=max(1, int(seconds // 30)),
                         seconds_per_action=(8.0, 9.0), classes=classes, seed=5)
    return write_session(config, root, "S09", progress=False).hdf5_path


def _measure(bundle_path: Path, session: Path, seconds: float, *, emg_only: bool, hop_s: float,
             video_size: int | None) -> dict:
    from myosight.capture.replay import SessionReplay
    from myosight.models.bundle import load_bundle
    from myosight.realtime.messages import ResultPublisher
    from myosight.realtime.worker import Worker, WorkerConfig

    source = f"bench{uuid.uuid4().hex[:6]}"
    replay = SessionReplay(session, speed=1.0, source=source, include_video=not emg_only, max_seconds=seconds)
    replay.open()
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    worker = Worker(load_bundle(bundle_path), WorkerConfig(source=source, emg_only=emg_only, hop_s=hop_s,
                                                          video_size=video_size), publisher)
    stop = threading.Event()
    sender = threading.Thread(target=replay.run, args=(stop,), daemon=True)
    sender.start()
    started = time.monotonic()
    latencies, computes = [], []
    try:
        while sender.is_alive():
            before = len(worker.latencies)
            predictions = worker.step()
            if predictions:
                latencies.append(worker.latencies[-1])
                computes.append(predictions[-1].compute_s)
            elif len(worker.latencies) == before:
                time.sleep(0.001)
    finally:
        stop.set()
        sender.join(timeout=5)
        worker.close()
        publisher.close()
    elapsed = time.monotonic() - started
    warm = slice(min(5, len(latencies) // 5), None)  # the first windows include model warm-up (compiling)
    lat, comp = np.array(latencies[warm]) * 1e3, np.array(computes[warm]) * 1e3
    return {
        "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p95_ms": float(np.percentile(lat, 95)),
        "latency_p99_ms": float(np.percentile(lat, 99)), "compute_p50_ms": float(np.percentile(comp, 50)),
        "decisions_per_s": worker.windows_predicted / elapsed, "skipped": worker.windows_skipped,
        "predicted": worker.windows_predicted, "realtime_factor": float(np.mean(comp) / 1e3 / hop_s),
    }


def benchmark_realtime(seconds: float = 30.0, bundle: Path | None = None) -> list[dict]:
    """Figures for `myosight bench realtime` (uses the demo model unless a bundle is given)."""
    from myosight.models.bundle import load_bundle
    from myosight.training.demo_model import demo_bundle

    bundle = Path(bundle) if bundle else demo_bundle()
    fusion = "rgb" in load_bundle(bundle).modalities
    figures: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        session = _session(Path(tmp), seconds + 10)
        modes = [("emg_only.hop50ms", True, 0.05, None)]
        if fusion:
            modes += [("fusion.112px", False, 1.0, 112), ("fusion.224px", False, 1.0, 224)]
        for name, emg_only, hop, size in modes:
            result = _measure(bundle, session, seconds, emg_only=emg_only, hop_s=hop, video_size=size)
            target = {"emg_only.hop50ms": ("< 5 ms", "< 10 ms"), "fusion.112px": ("", "< 1500 ms")}.get(name)
            figures += [
                {"name": f"realtime.{name}.latency_p50", "value": result["latency_p50_ms"], "unit": "ms",
                 "target": target[0] if target else ""},
                {"name": f"realtime.{name}.latency_p95", "value": result["latency_p95_ms"], "unit": "ms",
                 "target": target[1] if target and name != "emg_only.hop50ms" else ""},
                {"name": f"realtime.{name}.latency_p99", "value": result["latency_p99_ms"], "unit": "ms",
                 "target": target[1] if target and name == "emg_only.hop50ms" else ""},
                {"name": f"realtime.{name}.compute_p50", "value": result["compute_p50_ms"], "unit": "ms"},
                {"name": f"realtime.{name}.decisions_per_s", "value": result["decisions_per_s"], "unit": "1/s"},
                {"name": f"realtime.{name}.realtime_factor", "value": result["realtime_factor"], "unit": "x"},
                {"name": f"realtime.{name}.windows_skipped", "value": result["skipped"], "unit": "windows"},
            ]
    figures.append({"name": "realtime.clip_span_16_frames_at_25fps", "value": 640.0, "unit": "ms",
                    "note": "a 16-frame clip spans 640 ms at the model's 25 fps (533 ms at 30 fps)"})
    return figures
