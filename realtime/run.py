"""`myosight run`: sources, worker and viewer as separate processes, started and stopped together.

Each source is its own process (it owns its LSL outlets), the worker is a process (it owns the inlets,
the models and the ZeroMQ publisher), and the viewer runs in the main process. Ctrl-C, the end of a
replay, or the death of any child stops everything: the worker first (its inlets close while the
outlets still exist), then the sources. The exit code says what failed: 0 ok, 3 a source, 4 the worker.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from myosight.errors import ConfigError
from myosight.realtime.messages import DEFAULT_ADDRESS

log = logging.getLogger(__name__)

EXIT_SOURCE_FAILED = 3
EXIT_WORKER_FAILED = 4


@dataclass
class SourceSpec:
    kind: str  # "replay", "synthetic", "camera+myo", "camera+lsl-emg"
    session: str | None = None
    speed: float = 1.0
    loop: bool = False
    video: bool = True
    video_size: int = 224
    camera: str = "0"
    myo_left: str | None = None
    myo_right: str | None = None
    lsl_emg_left: str | None = None
    lsl_emg_right: str | None = None
    classes: tuple[str, ...] | None = None
    subject: str = "S00"
    source: str = "live"
    control_address: str | None = None  # replay: ZeroMQ address of its play/pause/seek control


@dataclass
class RunSpec:
    bundle: str
    sources: SourceSpec
    address: str = DEFAULT_ADDRESS
    emg_only: bool = False
    hop_s: float = 1.0
    video_size: int | None = None
    duration_s: float | None = None
    use_compile: bool = False
    extra: dict = field(default_factory=dict)


def source_process(spec: dict, stop: mp.Event, ready: mp.Event) -> None:
    """Child process: publish the chosen source until `stop` (a replay ends by itself)."""
    spec = SourceSpec(**spec)
    _quiet_child()
    stop_thread = _bridge(stop)
    if spec.kind == "replay":
        replay = _open_replay(spec)
        replay.open()
        ready.set()
        time.sleep(1.0)  # let the worker's inlets connect before the first sample
        replay.run(stop_thread)
    elif spec.kind == "synthetic":
        from myosight.capture.synthetic import SyntheticSource
        from myosight.data.activities import ACTIVITIES

        source = SyntheticSource(classes=spec.classes or ACTIVITIES, video=spec.video, video_size=spec.video_size,
                                 subject=spec.subject, source=spec.source)
        ready.set()
        source.run(stop_thread)
    elif spec.kind in ("camera+myo", "camera+lsl-emg"):
        _hardware_sources(spec, stop_thread, ready)
    else:
        raise ConfigError(f"unknown source kind {spec.kind!r}")


def _open_replay(spec: SourceSpec):
    """A LabRecorder replay for a .xdf file, a session replay otherwise."""
    if str(spec.session).lower().endswith(".xdf"):
        from myosight.capture.xdf_replay import XdfReplay

        return XdfReplay(spec.session, speed=spec.speed, loop=spec.loop, source=spec.source,
                         control_address=spec.control_address, include_video=spec.video)
    from myosight.capture.replay import SessionReplay

    return SessionReplay(spec.session, speed=spec.speed, loop=spec.loop, include_video=spec.video,
                         video_size=spec.video_size, source=spec.source, control_address=spec.control_address)


def _hardware_sources(spec: SourceSpec, stop: threading.Event, ready: mp.Event) -> None:
    """Camera and armbands in threads of this process. A camera that fails (unplugged, no frames) is logged and
    the armbands go on, so the worker continues with sEMG only; the source stops when an EMG thread ends or the
    camera's file ends, and an EMG failure is raised (the process's exit code then says the source failed)."""
    from myosight.capture.camera import CameraSource

    camera = CameraSource(int(spec.camera) if spec.camera.isdigit() else spec.camera, size=spec.video_size,
                          source=spec.source)
    failures: dict[str, BaseException] = {}
    camera_thread = _source_thread("camera", camera.run, stop, failures)
    emg_threads = []
    if spec.kind == "camera+myo":
        from myosight.capture.myo import MyoSource

        myo = MyoSource({"left": spec.myo_left, "right": spec.myo_right}, source=spec.source)
        emg_threads.append(_source_thread("myo", myo.run, stop, failures))
    else:
        from myosight.capture.lsl_emg import EmgRelay, find_emg_stream

        for arm, name in (("left", spec.lsl_emg_left), ("right", spec.lsl_emg_right)):
            if name:
                relay = EmgRelay(find_emg_stream(name=name), arm, source=spec.source)
                relay.open()
                emg_threads.append(_source_thread(f"emg-{arm}", relay.run, stop, failures))
    for thread in [camera_thread, *emg_threads]:
        thread.start()
    ready.set()
    while not stop.is_set() and all(t.is_alive() for t in emg_threads) and (camera_thread.is_alive()
                                                                            or "camera" in failures):
        stop.wait(0.2)
    stop.set()
    emg_failures = [error for name, error in failures.items() if name != "camera"]
    if emg_failures:
        raise emg_failures[0]


def _source_thread(name: str, run_source, stop: threading.Event, failures: dict) -> threading.Thread:
    """A thread running one source until `stop`; an exception is logged and kept in `failures[name]`."""

    def target() -> None:
        try:
            run_source(stop)
        except Exception as error:
            failures[name] = error
            then = "the worker goes on with sEMG only" if name == "camera" else "stopping the sources"
            log.error("%s stopped: %s; %s", name, error, then)

    return threading.Thread(target=target, name=f"source-{name}", daemon=True)


def worker_process(spec: dict, stop: mp.Event, ready: mp.Event) -> None:
    """Child process: the live worker until `stop`."""
    from myosight.models.bundle import load_bundle
    from myosight.realtime.messages import ResultPublisher
    from myosight.realtime.worker import Worker, WorkerConfig

    _quiet_child()
    run = RunSpec(**{**spec, "sources": SourceSpec(**spec["sources"])})
    publisher = ResultPublisher(run.address)
    worker = Worker(load_bundle(run.bundle), WorkerConfig(source=run.sources.source, hop_s=run.hop_s,
                                                          emg_only=run.emg_only, video_size=run.video_size,
                                                          use_compile=run.use_compile), publisher)
    ready.set()
    try:
        worker.run(_bridge(stop))
    finally:
        worker.close()
        publisher.close()


def run(spec: RunSpec, *, headless: bool = True, jsonl: Path | None = None, live_table: bool = True) -> int:
    """Start the processes, run the viewer until the end, stop everything in order; return the exit code."""
    if not headless:  # the desktop viewer starts and stops the same processes itself
        from myosight.gui.app import ViewerOptions, run_viewer

        return run_viewer(ViewerOptions.from_run(spec, jsonl))
    context = mp.get_context("spawn")
    stop_source, stop_worker = context.Event(), context.Event()
    source_ready, worker_ready = context.Event(), context.Event()
    source = context.Process(target=source_process, args=(asdict(spec.sources), stop_source, source_ready),
                             name="myosight-source")
    worker = context.Process(target=worker_process, args=(asdict(spec), stop_worker, worker_ready),
                             name="myosight-worker")
    source.start()
    if not source_ready.wait(30) or not source.is_alive():
        _stop(stop_worker, stop_source, worker, source)
        return EXIT_SOURCE_FAILED
    worker.start()
    viewer_stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: viewer_stop.set())
    code = 0
    try:
        from myosight.realtime.headless import HeadlessViewer

        viewer = HeadlessViewer(spec.address, jsonl)
        watcher = threading.Thread(target=_watch, args=(source, worker, viewer_stop, spec), daemon=True)
        watcher.start()
        viewer.run(viewer_stop, spec.duration_s, live=live_table)
        viewer.close()
        code = _exit_code(source, worker, spec)
        if viewer.accuracy is not None:
            print(f"running accuracy against the replayed labels: {100 * viewer.accuracy:.1f} % "
                  f"over {viewer.scored} predictions")
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop(stop_worker, stop_source, worker, source)
    return code


def _watch(source, worker, viewer_stop: threading.Event, spec: RunSpec) -> None:
    """Stop the viewer when a child ends (a finished replay included)."""
    while not viewer_stop.is_set():
        if not worker.is_alive() or not source.is_alive():
            time.sleep(2.0 if source.exitcode == 0 else 0.0)  # let the last predictions arrive
            viewer_stop.set()
            return
        time.sleep(0.1)


def _exit_code(source, worker, spec: RunSpec) -> int:
    if worker.exitcode not in (None, 0):
        print(f"myosight: the worker stopped with exit code {worker.exitcode}")
        return EXIT_WORKER_FAILED
    if source.exitcode not in (None, 0):
        print(f"myosight: the {spec.sources.kind} source stopped with exit code {source.exitcode}")
        return EXIT_SOURCE_FAILED
    return 0


def _stop(stop_worker, stop_source, worker, source) -> None:
    """Stop the worker first (its inlets close while the outlets still exist), then the sources."""
    for event, process in ((stop_worker, worker), (stop_source, source)):
        event.set()
        if process.pid is not None:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def _bridge(stop: mp.Event) -> threading.Event:
    """A threading.Event mirroring a multiprocessing.Event (the loops wait on threading events).

    It polls rather than waits: a process that exits while one of its threads waits on a multiprocessing
    Event leaves the Event's condition expecting that waiter, and the parent's `set()` then blocks forever.
    """
    local = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            time.sleep(0.05)
        local.set()

    threading.Thread(target=follow, daemon=True).start()
    return local


def _quiet_child() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    logging.basicConfig(level=logging.WARNING, format="%(processName)s %(levelname)s %(name)s: %(message)s")


def check_bundle(path: str) -> None:
    """Fail early, in the parent, with the bundle's own error message (before any process starts)."""
    from myosight.models.bundle import read_bundle_metadata

    read_bundle_metadata(path)
