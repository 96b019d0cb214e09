"""Process orchestration: the specs of what runs, and child processes started and stopped together.

`myosight run`, `demo` and `soak`, the desktop viewer and the recorder start their parts (a source, the
worker, the recorder) as child processes through this module, so they share one lifecycle:

- start: with spawn, never fork (fork copies the parent's threads' locks and LSL's sockets, and does not
  exist on Windows). Every child runs `child_main`, which sets up what every child needs: Ctrl-C ignored
  (the parent decides when children stop), SIGTERM and SIGHUP stop it cleanly, logging, and a watch on the
  parent so that a child whose parent died stops by itself. It then calls the child's target with the spec,
  a stop event and a ready event. A child that fails with a `MyosightError` sends its one-line message to
  the parent (`Child.error`) and exits with code 1, without a traceback; the parent says what failed.
  Children are started with Ctrl-C ignored, so that a Ctrl-C while a child is still starting up does not
  interrupt it with a traceback either.
- stop: in the order the caller gives (the worker before the sources, so that every LSL inlet closes while
  its outlet still exists), each child asked to stop, waited for, and terminated if it does not.

This module is low in the layering (it imports no other part of myosight): the callers pass the targets
(`myosight.capture.launch.source_process`, `myosight.realtime.child.worker_process`,
`myosight.capture.recorder.recorder_process`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from myosight.constants import DEFAULT_ADDRESS
from myosight.errors import MyosightError

log = logging.getLogger(__name__)

#: `myosight run` exit codes: what failed.
EXIT_SOURCE_FAILED = 3
EXIT_WORKER_FAILED = 4
#: How long a child whose parent died gets to stop cleanly before it exits anyway.
ORPHAN_GRACE_S = 10.0

#: What a child runs: target(spec, stop, ready); it returns when `stop` is set (or its work is done) and
#: sets `ready` once it is up.
ChildTarget = Callable[[dict, threading.Event, Any], None]


@dataclass
class SourceSpec:
    """A source to start (a child process publishing LSL streams), as chosen on the command line or in the viewer.

    The fields here are those every kind has; `settings` are the kind's own (a replay's file and speed, a camera's
    device, armband addresses), declared and decoded strictly by the kind (`myosight.capture.kinds`)."""

    kind: str  # a kind of myosight.capture.kinds ("replay", "synthetic", ...); "lsl": streams that run elsewhere
    settings: dict = field(default_factory=dict)
    video: bool = True
    frame_size: int = 224  # published frames: centre crop of this size (see models.clips.resolve_geometry)
    source: str = "live"  # the LSL source name: stream source ids are myosight-<source>-<kind>
    arms: tuple[str, ...] = ("left", "right")  # the armbands worn, where the kind cannot tell by itself


@dataclass
class RunSpec:
    """The worker to start on a source, and how long the run lasts."""

    bundle: str
    sources: SourceSpec
    address: str = DEFAULT_ADDRESS
    emg_only: bool = False
    hop_s: float = 1.0
    input_size: int | None = None  # the user's override of the I3D input size; None: the bundle's
    geometry: dict | None = None  # the clip geometry resolved at start (models.clips.resolve_geometry)
    duration_s: float | None = None
    use_compile: bool = False
    device: str = "cpu"  # where the models run (checked by myosight.models.device before anything starts)
    precision: str = "float32"  # "int8": the quantised I3D (CPU only)
    resolve_timeout_s: float = 30.0  # the worker may start with its source: how long it waits for its streams
    allow_missing_arm: bool = False  # run a model on a source without one of its arms (zeros there)
    every_window: bool = False  # decide every window in order (replays faster than real time)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> RunSpec:
        """The spec a child received (dataclasses travel to spawned children as plain dicts)."""
        return cls(**{**values, "sources": SourceSpec(**values["sources"])})


#: The signals that ask a command to stop: Ctrl-C, `kill`/`timeout`/systemd/container stops, and a closed
#: terminal (the last two do not exist on Windows).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
#: The exit code of a command stopped by Ctrl-C (the shell's convention: 128 + SIGINT).
EXIT_INTERRUPTED = 130


def ignore_file_size_signal() -> None:
    """A write past the file-size limit (ulimit -f) then fails with EFBIG, which a recorder reports as a full
    file, instead of SIGXFSZ ending the process with a core dump. Windows has no such signal (nor limit)."""
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class SignalStop(threading.Event):
    """A stop event that remembers the first signal that set it (None: set otherwise)."""

    signum: int | None = None

    def set_by(self, signum: int) -> None:
        if not self.is_set():
            self.signum = signum
        self.set()

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C (SIGINT): the command then exits with `EXIT_INTERRUPTED`."""
        return self.signum == signal.SIGINT


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """An event set by SIGINT, SIGTERM or SIGHUP while the block runs, so that a command stops cleanly
    (children stopped in order, armbands told to sleep, outlets and files closed). Unless the caller passes
    its own event, it is a `SignalStop` that says which signal set it."""
    stop = stop or SignalStop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_signal(signum: int, _frame: object) -> None:
        if isinstance(stop, SignalStop):
            stop.set_by(signum)
        else:
            stop.set()

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- inside a child ----------------------------------------------------------------------------------------


def child_main(target: ChildTarget, spec: dict, stop: Any, ready: Any, errors: Any = None) -> None:
    """The entry point of every child: common set-up, then `target(spec, stop_thread, ready)`.

    A `MyosightError` (a user's mistake: a bad file, a port in use, a stream not found) goes to the parent as
    one line through `errors` and the child exits with code 1; any other exception is a bug and keeps its
    traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(processName)s %(levelname)s %(name)s: %(message)s")
    stop_thread = bridge(stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    for name in ("SIGTERM", "SIGHUP"):  # SIGHUP does not exist on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: stop_thread.set())
    watch_parent(stop_thread)
    if stop.is_set():  # stopped while it was starting up: nothing to do
        return
    try:
        target(spec, stop_thread, ready)
    except MyosightError as error:
        _send_error(errors, str(error))
        sys.exit(1)
    except Exception as error:
        _send_error(errors, f"{type(error).__name__}: {error}")
        raise


def _send_error(errors: Any, message: str) -> None:
    """Tell the parent why this child fails (it prints or shows the line); stderr when there is no parent pipe."""
    line = " ".join(message.split())
    if errors is None:
        print(f"myosight: error: {line}", file=sys.stderr)
        return
    with contextlib.suppress(OSError):
        errors.send(line)


def bridge(stop: Any) -> threading.Event:
    """A threading.Event mirroring a multiprocessing.Event (the loops wait on threading events).

    It polls rather than waits: a process that exits while one of its threads waits on a multiprocessing
    Event leaves the Event's condition expecting that waiter, and the parent's `set()` then blocks forever.
    """
    local = threading.Event()

    def follow() -> None:
        while not stop.is_set() and not local.is_set():
            time.sleep(0.05)
        local.set()

    threading.Thread(target=follow, name="myosight-stop-bridge", daemon=True).start()
    return local


def watch_parent(stop: threading.Event, grace_s: float = ORPHAN_GRACE_S) -> None:
    """Set `stop` when this process's parent dies (it was killed, or crashed); exit after `grace_s` if the
    child has not stopped by then. Nothing outlives the command that started it."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        log.warning("the parent process is gone; stopping")
        stop.set()
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="myosight-parent-watch", daemon=True).start()


# -- in the parent -----------------------------------------------------------------------------------------


@dataclass
class Child:
    """One child process with its stop and ready events."""

    role: str
    process: Any  # multiprocessing.Process (of the spawn context)
    stop: Any
    ready: Any
    stopping: bool = False
    reported: bool = False
    errors: Any = None  # the reading end of the pipe the child reports its error on
    _error: str | None = None

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    @property
    def error(self) -> str | None:
        """The one-line error the child failed with, once it has ended (None: it ended without one)."""
        if self._error is None and self.errors is not None and not self.alive:
            with contextlib.suppress(EOFError, OSError):
                if self.errors.poll():
                    self._error = self.errors.recv()
        return self._error

    def failure(self, what: str) -> str:
        """One line saying how the child named `what` ended badly (its own error when it sent one)."""
        if self.error:
            return f"{what} failed: {self.error}"
        return f"{what} stopped with exit code {self.exitcode}"


def _finish_path_changing_imports() -> None:
    """Import OpenCV before any child is spawned, and before the threads that read video start. OpenCV's loader
    puts its own folder on `sys.path` while it imports, and a spawned child starts from the parent's `sys.path`
    of that moment: a child spawned while another thread (a replay's video, a camera) imports OpenCV for the
    first time finds OpenCV's `typing` before the standard library's and dies on its first import. Done when
    this module is imported (by whatever will spawn, in its main thread, before its threads), and again, a
    no-op then, before each spawn."""
    with contextlib.suppress(ImportError):  # an install without OpenCV spawns nothing that reads video
        import cv2  # noqa: F401


_finish_path_changing_imports()


class ProcessGroup:
    """The children of one command or window, by role ("source", "worker", "recorder")."""

    def __init__(self, context: Any = None) -> None:
        self.context = context or mp.get_context("spawn")
        self.children: dict[str, Child] = {}

    def start(self, role: str, target: ChildTarget, spec: dict) -> Child:
        """Start `target` in a child process under `role` (a child of that role must not be running)."""
        if role in self.children and self.children[role].alive:
            raise RuntimeError(f"a {role} process is already running")
        stop, ready = self.context.Event(), self.context.Event()
        errors, error_writer = self.context.Pipe(duplex=False)
        _finish_path_changing_imports()
        process = self.context.Process(target=child_main, args=(target, spec, stop, ready, error_writer),
                                       name=f"myosight-{role}")
        with _ctrl_c_ignored():
            process.start()
        error_writer.close()  # the child has its own copy: the pipe ends when the child does
        child = self.children[role] = Child(role, process, stop, ready, errors=errors)
        return child

    def wait_ready(self, role: str, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Wait until the child says it is up; False at once when it dies first or `stop` is set, or after
        `timeout_s`."""
        child = self.children[role]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            if child.ready.wait(0.1):
                return True
            if not child.alive:
                return False
        return False

    def get(self, role: str) -> Child | None:
        return self.children.get(role)

    def take(self, roles: Iterable[str]) -> list[Child]:
        """Remove these children from the group (to stop them, maybe in another thread), in this order."""
        taken = [self.children.pop(role) for role in roles if role in self.children]
        for child in taken:
            child.stopping = True
        return taken

    def stop(self, roles: Iterable[str], timeout_s: float = 10.0) -> None:
        """Stop these children, one after the other, in this order; wait for each."""
        for child in self.take(roles):
            stop_child(child, timeout_s)

    def ended(self) -> list[Child]:
        """Children that ended by themselves (not asked to stop), each reported once."""
        ended = [c for c in self.children.values() if not c.alive and not c.stopping and not c.reported]
        for child in ended:
            child.reported = True
        return ended


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ctrl-C ignored while a child is started: the child inherits that until `child_main` sets it up, so a
    Ctrl-C during its start-up (importing torch takes seconds) does not print a traceback from it. Only the
    main thread can change signal handlers; elsewhere the child starts as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_child(child: Child, timeout_s: float = 10.0) -> None:
    """Ask a child to stop, wait, and terminate it if it does not."""
    child.stopping = True
    child.stop.set()
    if child.process.pid is None:
        return
    child.process.join(timeout_s)
    if child.process.is_alive():
        log.warning("%s did not stop within %.0f s; terminating it", child.role, timeout_s)
        child.process.terminate()
        child.process.join(5)
        if child.process.is_alive():
            with contextlib.suppress(AttributeError):  # kill() is not everywhere
                child.process.kill()
                child.process.join(5)
