"""A camera and armbands in threads of one process: what the camera+EMG kinds share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from myosight.processes import SourceSpec

log = logging.getLogger(__name__)

#: How long each source thread gets to close its outlet once stopped.
THREAD_STOP_S = 5.0

#: One EMG part of a source: its name in messages and what publishes it until `stop`.
EmgPart = tuple[str, Callable[[threading.Event], object]]


def run_camera_and_emg(spec: SourceSpec, camera_device: str, emg_parts: list[EmgPart], stop: threading.Event,
                       ready: Any) -> None:
    """Camera and EMG in threads (the kind has checked its source name is free before its first outlet). A camera
    that fails (unplugged, no frames) is logged and the armbands go on, so the worker continues with sEMG only;
    the source stops when an EMG thread ends or the camera's file ends, and an EMG failure is raised (the
    process's exit code then says the source failed)."""
    from myosight.capture.camera import CameraSource, parse_device

    camera = CameraSource(parse_device(camera_device), size=spec.frame_size, source=spec.source)
    failures: dict[str, BaseException] = {}
    camera_thread = _source_thread("camera", camera.run, stop, failures)
    emg_threads = [_source_thread(name, run, stop, failures) for name, run in emg_parts]
    for thread in [camera_thread, *emg_threads]:
        thread.start()
    ready.set()
    while not stop.is_set() and all(t.is_alive() for t in emg_threads) and (camera_thread.is_alive()
                                                                            or "camera" in failures):
        stop.wait(0.2)
    stop.set()
    for thread in [camera_thread, *emg_threads]:  # their outlets close in their own threads, not at the exit
        thread.join(THREAD_STOP_S)              # (liblsl aborts the process when one goes while in use)
    emg_failures = [error for name, error in failures.items() if name != "camera"]
    if emg_failures:
        raise emg_failures[0]


def _source_thread(name: str, run_source: Callable[[threading.Event], object], stop: threading.Event,
                   failures: dict) -> threading.Thread:
    """A thread running one source until `stop`; an exception is logged and kept in `failures[name]`."""

    def target() -> None:
        try:
            run_source(stop)
        except Exception as error:
            failures[name] = error
            then = "the worker goes on with sEMG only" if name == "camera" else "stopping the sources"
            log.error("%s stopped: %s; %s", name, error, then)

    return threading.Thread(target=target, name=f"source-{name}", daemon=True)
