"""`myosight run` and `demo`: a source and the worker as child processes, and a viewer in this process.

The viewer is chosen here: the desktop window (which starts and stops the same processes itself) or the
terminal table. With the terminal table, the source and the worker start together (the worker opens the
source's streams as soon as they appear and loads its models meanwhile, see `myosight.realtime.child`).
Ctrl-C, SIGTERM, SIGHUP, the end of a replay, the duration, or the death of either child stops everything,
the worker first. The exit code says what failed: 0 ok, 3 the source, 4 the worker (with the child's own
one-line error), 130 stopped by Ctrl-C.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from myosight.capture.launch import source_process
from myosight.processes import (
    EXIT_INTERRUPTED,
    EXIT_SOURCE_FAILED,
    EXIT_WORKER_FAILED,
    ProcessGroup,
    RunSpec,
    SignalStop,
    stop_on_signals,
)
from myosight.realtime.child import worker_process

#: How long a source may take to say it is up (a replay opens its file, a camera its device).
SOURCE_READY_TIMEOUT_S = 30.0
#: After a replay ends: how long the viewer waits for the worker's last predictions.
DRAIN_S = 2.0


def run_live(spec: RunSpec, *, headless: bool, jsonl: Path | None = None, live_table: bool = True) -> int:
    """Run `spec` with the desktop viewer, or with the terminal viewer when `headless`; return the exit code."""
    if not headless:
        from myosight.gui.app import ViewerOptions, run_viewer

        announce_source(spec)
        return run_viewer(ViewerOptions.from_run(spec, jsonl))
    return run_headless(spec, jsonl=jsonl, live_table=live_table)


def announce_source(spec: RunSpec) -> None:
    """Say under which LSL source name the run's sources publish: a recorder or a second worker beside the run
    takes them by that name."""
    name = spec.sources.source
    print(f"the sources publish as the LSL source '{name}' (`myosight streams` lists them; `myosight record "
          f"--source {name}` records them)", flush=True)


def run_headless(spec: RunSpec, *, jsonl: Path | None = None, live_table: bool = True) -> int:
    """Source and worker as children, the terminal viewer here, until the end; stop everything in order."""
    from myosight.realtime.headless import HeadlessViewer

    group = ProcessGroup()
    with stop_on_signals() as stop:
        try:
            # Both at once: the worker loads its models while the source starts, and waits for its streams.
            group.start("source", source_process, asdict(spec.sources))
            group.start("worker", worker_process, asdict(spec))
            if not group.wait_ready("source", SOURCE_READY_TIMEOUT_S, stop):
                return exit_code(group, spec, stop) if stop.is_set() else _source_not_started(group, spec)
            announce_source(spec)
            viewer = HeadlessViewer(spec.address, jsonl)
            watcher = threading.Thread(target=_stop_when_a_child_ends, args=(group, stop, spec.every_window),
                                       daemon=True)
            watcher.start()
            try:
                viewer.run(stop, spec.duration_s, live=live_table)
            finally:
                viewer.close()
            code = exit_code(group, spec, stop)
            if viewer.accuracy is not None:
                print(f"running accuracy against the replayed labels: {100 * viewer.accuracy:.1f} % "
                      f"over {viewer.scored} predictions")
        finally:
            group.stop(["worker", "source"])
    return code


def _source_not_started(group: ProcessGroup, spec: RunSpec) -> int:
    """The source died before it was up (its own error says why), or did not say it is up in time."""
    source = group.get("source")
    what = f"the {spec.sources.kind} source"
    if source is not None and not source.alive:
        print(f"myosight: error: {source.failure(what)}", file=sys.stderr)
    else:
        print(f"myosight: error: {what} did not start within {SOURCE_READY_TIMEOUT_S:.0f} s", file=sys.stderr)
    return EXIT_SOURCE_FAILED


def _stop_when_a_child_ends(group: ProcessGroup, stop: threading.Event, every_window: bool = False) -> None:
    """Stop the viewer when a child ends (a finished replay included). A worker that decides every window goes
    on after its replay ended cleanly, until it has decided them all and ends by itself."""
    while not stop.is_set():
        source, worker = group.get("source"), group.get("worker")
        ended = [child for child in (source, worker) if child is not None and not child.alive]
        if every_window and ended == [source] and source is not None and source.exitcode == 0:
            ended = []
        if ended:
            clean = all(child.exitcode == 0 for child in ended)
            time.sleep(DRAIN_S if clean else 0.0)  # let the last predictions arrive
            stop.set()
            return
        time.sleep(0.1)


def exit_code(group: ProcessGroup, spec: RunSpec, stop: threading.Event | None = None) -> int:
    """0, or what failed: the worker (4) or the source (3), said in one line; 130 after Ctrl-C.

    A child killed by the signal that stops the command (`timeout` and Ctrl-C signal the whole process group,
    and reach a child before it has set up its handlers) did not fail."""
    signalled = isinstance(stop, SignalStop) and stop.signum is not None
    for role, what, code in (("worker", "the worker", EXIT_WORKER_FAILED),
                             ("source", f"the {spec.sources.kind} source", EXIT_SOURCE_FAILED)):
        child = group.get(role)
        if child is None or child.exitcode in (None, 0) or (signalled and child.exitcode < 0):
            continue
        print(f"myosight: error: {child.failure(what)}", file=sys.stderr)
        return code
    return EXIT_INTERRUPTED if isinstance(stop, SignalStop) and stop.interrupted else 0
