"""`myosight bench realtime`: the live worker on LSL loopback, fed a synthetic session in real time.

The session is replayed by a source process, as `myosight run` does, and the worker runs in this process,
so this process's CPU time is the worker's own (its loop, its inlets' threads and I3D's threads). Reported
per mode (sEMG only at a 50-ms hop; fusion at 112 and 224 px, each at a 1-s and a 0.2-s hop):

- latency: from the moment the window's data is in the worker (the newest sample past the window's end
  has arrived) to the moment its prediction is published; compute: the part spent in the models;
- CPU share: the worker's CPU seconds per wall second over the measured span (1.0 = one core), and I3D's
  own share (CPU seconds inside I3D calls), with their ratio: how much the live core costs beyond I3D;
- decisions per second, windows skipped, and how often the worker made its hop coarser to keep up.

Beside them, the cost of one push into a full ring: a 224-px frame into the worker's 450-frame ring
(target <= 0.1 ms), against the whole-ring copy a push used to cost, and a 20-ms sEMG chunk into an arm's
30-s envelope ring. The clip span (how much time the video of one clip covers) is reported too, since a
prediction can never be fresher than its newest clip. Last, the time from typing `myosight run` (a replay
at 112 px) or `myosight demo` to the first fused prediction, cold and warm.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np

#: Windows at the start of a run that are not measured (the inlets catch up, I3D's buffers warm up).
WARM_UP_WINDOWS = 5
#: Extra seconds of session beyond the measured span: the worker starts while the replay already runs.
SESSION_MARGIN_S = 20.0


def _session(root: Path, seconds: float) -> Path:
    from myosight.data.synth import SynthConfig, write_session

    classes = ("Slice bread", "Pour water from a pitcher into a glass", "Clean a pan with a sponge")
    config = SynthConfig(subjects=("S09",), actions_per_class=max(1, int(seconds // 30)),
                         seconds_per_action=(8.0, 9.0), classes=classes, seed=5)
    return write_session(config, root, "S09", progress=False).hdf5_path


def _measure(bundle_path: Path, session: Path, seconds: float, *, emg_only: bool, hop_s: float,
             input_size: int | None, device: str = "cpu", precision: str = "float32") -> dict:
    """Replay `session` from a source process into a worker here; measure `seconds` after the warm-up."""
    from myosight.capture.launch import source_process, spec_of_kind
    from myosight.models.bundle import load_bundle
    from myosight.models.clips import resolve_geometry
    from myosight.processes import ProcessGroup
    from myosight.realtime.messages import ResultPublisher
    from myosight.realtime.worker import Worker, WorkerConfig

    bundle = load_bundle(bundle_path)
    geometry = resolve_geometry(bundle.geometry, input_size)
    name = f"bench{uuid.uuid4().hex[:6]}"
    spec = spec_of_kind("replay", session=str(session), video=not emg_only, frame_size=geometry.crop_size,
                        source=name)
    group = ProcessGroup()
    group.start("source", source_process, asdict(spec))
    publisher = worker = None
    try:
        if not group.wait_ready("source", 60):
            raise RuntimeError("the benchmark's replay process did not start")
        publisher = ResultPublisher("tcp://127.0.0.1:0")
        worker = Worker(bundle, WorkerConfig(source=name, emg_only=emg_only, hop_s=hop_s, geometry=geometry,
                                             device=device, precision=precision), publisher)
        return _stream(worker, group, seconds, hop_s)
    finally:
        if worker is not None:
            worker.close()  # inlets first, while the outlets exist
        if publisher is not None:
            publisher.close()
        group.stop(["source"])


def _stream(worker, group, seconds: float, hop_s: float) -> dict:
    """Step the worker; after the warm-up windows, measure for `seconds` (or until the replay ends)."""
    latencies, computes = [], []
    started: float | None = None
    cpu_started = i3d_started = 0.0
    predicted_started = skipped_started = coarsened_started = 0
    source = group.get("source")
    while source.alive:
        before = len(worker.latencies)
        predictions = worker.step()
        if not predictions:
            if len(worker.latencies) == before:
                time.sleep(0.001)
            continue
        if started is None:
            if worker.windows_predicted < WARM_UP_WINDOWS:
                continue
            clock = worker.predictor.i3d_clock
            started, cpu_started, i3d_started = time.monotonic(), time.process_time(), clock.cpu_s
            predicted_started, skipped_started = worker.windows_predicted, worker.windows_skipped
            coarsened_started = worker.hops.coarsened
            continue
        latencies.append(worker.latencies[-1])
        computes.append(predictions[-1].compute_s)
        if time.monotonic() - started >= seconds:
            break
    if started is None or not latencies:
        raise RuntimeError("the worker made too few predictions to measure (is the session long enough?)")
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu_started
    i3d_cpu = worker.predictor.i3d_clock.cpu_s - i3d_started
    lat, comp = np.array(latencies) * 1e3, np.array(computes) * 1e3
    return {
        "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p95_ms": float(np.percentile(lat, 95)),
        "latency_p99_ms": float(np.percentile(lat, 99)), "compute_p50_ms": float(np.percentile(comp, 50)),
        "decisions_per_s": (worker.windows_predicted - predicted_started) / wall,
        "skipped": worker.windows_skipped - skipped_started, "predicted": worker.windows_predicted - predicted_started,
        "realtime_factor": float(np.mean(comp) / 1e3 / hop_s), "wall_s": wall,
        "hop_coarsened": worker.hops.coarsened - coarsened_started, "final_hop_s": worker.hops.hop_s,
        "cpu_share": cpu / wall, "i3d_cpu_share": i3d_cpu / wall,
    }


def _timed(push, repeats: int) -> np.ndarray:
    times = np.empty(repeats)
    for index in range(repeats):
        started = time.perf_counter()
        push()
        times[index] = time.perf_counter() - started
    return times


def ring_push_figures(repeats: int = 2000) -> list[dict]:
    """The cost of one push into a full ring: a 224-px frame, and a 20-ms chunk of one arm's envelope."""
    from myosight.constants import CHANNELS_PER_ARM
    from myosight.realtime.live import FRAME_RING_CAPACITY, FrameRing
    from myosight.realtime.ring import SampleRing

    frames = FrameRing((224, 224, 3))
    frame = np.random.default_rng(0).integers(0, 256, (1, 224 * 224 * 3), dtype=np.uint8).view(np.int8)
    for k in range(FRAME_RING_CAPACITY):
        frames.push(np.array([k / 30]), frame)
    clock = {"t": FRAME_RING_CAPACITY / 30}

    def push_frame() -> None:
        clock["t"] += 1 / 30
        frames.push(np.array([clock["t"]]), frame)

    frame_push = _timed(push_frame, repeats) * 1e3
    whole = np.zeros((FRAME_RING_CAPACITY, 224, 224, 3), np.uint8)
    concatenate = _timed(lambda: np.concatenate([whole, frame.view(np.uint8).reshape(1, 224, 224, 3)])[-450:],
                         max(5, repeats // 200)) * 1e3
    envelope = SampleRing(30 * 160, (CHANNELS_PER_ARM,), np.float64, np.int64)
    chunk = np.random.default_rng(1).random((4, CHANNELS_PER_ARM))
    grid = {"k": 0}

    def push_chunk() -> None:
        envelope.push(grid["k"] + np.arange(4), chunk)
        grid["k"] += 4

    for _ in range(envelope.capacity // 4 + 1):
        push_chunk()
    emg_push = _timed(push_chunk, repeats) * 1e3
    note = f"{repeats} pushes into a full ring"
    return [
        {"name": "realtime.ring_push.frame_224px.p50", "value": float(np.median(frame_push)), "unit": "ms",
         "target": "<= 0.1 ms", "note": f"{note} of {FRAME_RING_CAPACITY} frames"},
        {"name": "realtime.ring_push.frame_224px.p95", "value": float(np.percentile(frame_push, 95)), "unit": "ms",
         "note": note},
        {"name": "realtime.ring_push.frame_224px.whole_ring_copy.p50", "value": float(np.median(concatenate)),
         "unit": "ms", "note": "what a push cost when it concatenated the whole ring (before the in-place ring)"},
        {"name": "realtime.ring_push.emg_20ms_chunk.p50", "value": float(np.median(emg_push)), "unit": "ms",
         "note": f"{note} of 30 s of one arm's envelope"},
    ]


#: The live modes measured: (figure name, sEMG only, hop in seconds, I3D input size, I3D precision).
MODES: tuple[tuple[str, bool, float, int | None, str], ...] = (
    ("emg_only.hop50ms", True, 0.05, None, "float32"),
    ("fusion.112px", False, 1.0, 112, "float32"), ("fusion.224px", False, 1.0, 224, "float32"),
    ("fusion.112px.hop200ms", False, 0.2, 112, "float32"),
    ("fusion.112px.int8.hop200ms", False, 0.2, 112, "int8"), ("fusion.224px.int8.hop200ms", False, 0.2, 224, "int8"),
)
#: Targets per mode: (latency p50, latency p95 (p99 for sEMG only), decisions per second).
TARGETS = {"emg_only.hop50ms": ("< 5 ms", "< 10 ms", ""), "fusion.112px": ("", "< 1500 ms", ""),
           "fusion.112px.hop200ms": ("", "<= 150 ms", ">= 5 /s"),
           "fusion.112px.int8.hop200ms": ("", "<= 150 ms", ">= 5 /s")}


def benchmark_realtime(seconds: float = 60.0, bundle: Path | None = None, device: str = "cpu",
                       start_runs: int = 3, modes: tuple[str, ...] | None = None) -> list[dict]:
    """Figures for `myosight bench realtime` (uses the demo model unless a bundle is given): the ring pushes,
    every live mode for `seconds`, and the time from the command to the first fused prediction."""
    from myosight.models.bundle import load_bundle
    from myosight.training.demo_model import demo_bundle

    bundle = Path(bundle) if bundle else demo_bundle()
    fusion = "rgb" in load_bundle(bundle).modalities
    figures: list[dict] = ring_push_figures()
    with tempfile.TemporaryDirectory() as tmp:
        session = _session(Path(tmp), seconds + SESSION_MARGIN_S)
        for name, emg_only, hop, size, precision in MODES:
            if modes is not None and name not in modes:
                continue
            if precision == "int8" and (why_not := _int8_reason(device)) is not None:
                figures.append({"name": f"realtime.{name}", "value": None, "unit": "",
                                "note": f"not measured: {why_not}"})
                continue
            if emg_only or fusion:
                result = _measure(bundle, session, seconds, emg_only=emg_only, hop_s=hop, input_size=size,
                                  device=device, precision=precision)
                figures += _mode_figures(name, result)
        if fusion and start_runs > 0 and (modes is None or "start" in modes):
            figures += start_figures(bundle, session, Path(tmp), runs=start_runs, device=device)
    figures.append({"name": "realtime.clip_span_16_frames_at_25fps", "value": 640.0, "unit": "ms",
                    "note": "a 16-frame clip spans 640 ms at the model's 25 fps (533 ms at 30 fps)"})
    return figures


def _int8_reason(device: str) -> str | None:
    """Why the int8 modes cannot run here (None when they can)."""
    if device != "cpu":
        return "int8 runs on the CPU only"
    from myosight.models.i3d_int8 import int8_available

    return int8_available()


def start_figures(bundle: Path, session: Path, work: Path, *, runs: int = 3, device: str = "cpu") -> list[dict]:
    """Seconds from the command to its first fused prediction, as a user starts it: `myosight run` replaying
    `session` at 112 px (no compiling), and `myosight demo`. The first `run` is the cold start (the first in
    this process tree since the bench began: files may still be off the page cache); the others are warm."""
    run = [sys.executable, "-m", "myosight", "run", "--model", str(bundle), "--source", "replay", str(session),
           "--input-size", "112", "--device", device]
    demo = [sys.executable, "-m", "myosight", "demo", "--device", device]
    times = {"run": [time_to_first_fused(run, work / f"run{k}.jsonl") for k in range(runs)],
             "demo": [time_to_first_fused(demo, work / f"demo{k}.jsonl") for k in range(max(1, runs - 1))]}
    warm_run = float(np.median(times["run"][1:])) if runs > 1 else times["run"][0]
    note = "from starting the command to the first fusion line of its --jsonl log"
    return [
        {"name": "realtime.start.run_replay_112px.cold", "value": times["run"][0], "unit": "s", "note": note},
        {"name": "realtime.start.run_replay_112px.warm", "value": warm_run, "unit": "s", "target": "<= 8 s",
         "baseline": "realtime.start.data_needed", "ratio": warm_run / 5.0,
         "note": f"median of {runs - 1} warm starts; " + note},
        {"name": "realtime.start.demo.warm", "value": float(np.median(times["demo"])), "unit": "s",
         "target": "<= 8 s", "note": "the demo model (112 px) on its held-out session; " + note},
        {"name": "realtime.start.data_needed", "value": 5.0, "unit": "s",
         "note": "a first window needs 5 s of data received after the worker's inlets opened"},
    ]


def time_to_first_fused(command: list[str], jsonl: Path, timeout_s: float = 60.0) -> float:
    """Run `command --headless --jsonl FILE` until the log has a fused prediction; the seconds it took."""
    import signal
    import subprocess

    jsonl.unlink(missing_ok=True)  # a log left by an earlier run would read as an instant start
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    process = subprocess.Popen([*command, "--headless", "--jsonl", str(jsonl), "--duration", str(timeout_s),
                                *(["--address", address] if command[3] == "run" else [])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while process.poll() is None:
            if _has_fused_line(jsonl):
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError(f"`{' '.join(command[2:5])} ...` ended without a fused prediction: "
                           f"{(process.stderr.read() if process.stderr else '')[-500:]}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _has_fused_line(jsonl: Path) -> bool:
    if not jsonl.exists():
        return False
    with jsonl.open(encoding="utf-8") as lines:
        return any('"mode": "fusion"' in line for line in lines if line.endswith("\n"))


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _mode_figures(name: str, result: dict) -> list[dict]:
    target = TARGETS.get(name)
    figures = [
        {"name": f"realtime.{name}.latency_p50", "value": result["latency_p50_ms"], "unit": "ms",
         "target": target[0] if target else ""},
        {"name": f"realtime.{name}.latency_p95", "value": result["latency_p95_ms"], "unit": "ms",
         "target": target[1] if target and name != "emg_only.hop50ms" else ""},
        {"name": f"realtime.{name}.latency_p99", "value": result["latency_p99_ms"], "unit": "ms",
         "target": target[1] if target and name == "emg_only.hop50ms" else ""},
        {"name": f"realtime.{name}.compute_p50", "value": result["compute_p50_ms"], "unit": "ms"},
        {"name": f"realtime.{name}.decisions_per_s", "value": result["decisions_per_s"], "unit": "1/s",
         "target": target[2] if target else ""},
        {"name": f"realtime.{name}.realtime_factor", "value": result["realtime_factor"], "unit": "x"},
        {"name": f"realtime.{name}.windows_skipped", "value": result["skipped"], "unit": "windows",
         "target": "0" if name.endswith("hop200ms") else ""},
        {"name": f"realtime.{name}.hop_coarsened", "value": result["hop_coarsened"], "unit": "times",
         "note": f"the worker made its hop coarser to keep up; hop at the end {result['final_hop_s']:g} s"},
        {"name": f"realtime.{name}.worker_cpu_share", "value": result["cpu_share"], "unit": "cores",
         "note": f"CPU seconds of the worker process per wall second over {result['wall_s']:.0f} s"},
    ]
    if result["i3d_cpu_share"] > 0:
        figures.append({"name": f"realtime.{name}.i3d_cpu_share", "value": result["i3d_cpu_share"], "unit": "cores",
                        "note": "CPU seconds inside I3D calls per wall second"})
        figures[-2].update(baseline=f"realtime.{name}.i3d_cpu_share",
                           ratio=result["cpu_share"] / result["i3d_cpu_share"], target="close to I3D's own share")
    return figures
