"""The worker's child process, ordered for a fast first prediction.

A first window needs five seconds of data that arrived after the worker's inlets opened (LSL hands an inlet
only what is sent after it connects). So the child first finds and opens the source's inlets, with nothing
heavier than pylsl imported, and only then imports torch, loads the bundle and I3D and warms I3D up, while
the inlets buffer those first seconds. (Loading in a second thread meanwhile was measured slower: on two
cores the imports take the CPU from the source that is starting at the same moment.)
The child may start at the same moment as its source: it waits for the source's first stream. This module
stays light on purpose: the parent imports it to name the child's target, and that import must not pull
torch into every command.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from myosight.processes import RunSpec

log = logging.getLogger(__name__)


def worker_process(spec: dict, stop: threading.Event, ready: Any) -> None:
    """Child target (see `myosight.processes`): the live worker on the spec's source until `stop`."""
    from myosight.capture.kinds import spec_streams
    from myosight.models.bundle_header import bundle_arms
    from myosight.realtime.sources import SourceInlets
    from myosight.realtime.worker import EVERY_WINDOW_BUFFER_S

    started = time.monotonic()
    run = RunSpec.from_dict(spec)
    inlets = SourceInlets.open(spec_streams(run.sources), video=not run.emg_only, arms=bundle_arms(run.bundle),
                               allow_missing_arm=run.allow_missing_arm, first_timeout_s=run.resolve_timeout_s,
                               stop=stop, emg_buffer_s=EVERY_WINDOW_BUFFER_S if run.every_window else None)
    log.info("worker: the source's streams are open %.1f s after the worker started", time.monotonic() - started)
    try:
        if stop.is_set():
            return
        from myosight.models.bundle import load_bundle
        from myosight.models.clips import ClipGeometry
        from myosight.realtime.messages import ResultPublisher
        from myosight.realtime.worker import Worker, WorkerConfig

        publisher = ResultPublisher(run.address)
        try:
            config = WorkerConfig(source=spec_streams(run.sources), hop_s=run.hop_s, emg_only=run.emg_only,
                                  input_size=run.input_size, use_compile=run.use_compile, device=run.device,
                                  precision=run.precision, allow_missing_arm=run.allow_missing_arm,
                                  every_window=run.every_window,
                                  geometry=ClipGeometry.from_dict(run.geometry) if run.geometry else None)
            worker = Worker(load_bundle(run.bundle), config, publisher, inlets)
            log.info("worker: models ready %.1f s after the worker started", time.monotonic() - started)
            ready.set()
            worker.run(stop)
        finally:
            publisher.close()
    finally:
        inlets.close()

