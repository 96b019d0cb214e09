"""Stop signals in batch commands (dataset, features, train, report, import, ...): they stop the command, every
partial output file is removed, and nothing is moved into place after a stop.

Python's own handling falls short in two ways. SIGTERM (`kill`, `timeout`, a container or systemd stop) and
SIGHUP (a closed terminal) end the process at once, so no `finally` runs and half-written files stay behind.
And Ctrl-C's KeyboardInterrupt can be swallowed: HDF5 calls back into Python from C, and an exception raised
there is printed as "Exception ignored" and dropped, after which the command went on, finished its write and
exited 0. So `stop_raises()` makes every stop signal raise in the main thread (`KeyboardInterrupt`, or its
subclass `Stopped` for SIGTERM and SIGHUP) *and* remembers it: `raise_if_stopped()`, called before a finished
file replaces the previous one (`myosight.paths.replaced_when_done`) and when the command returns, raises
again whatever swallowed the first exception.

Live commands (run, worker, record, replay, ...) install their own handlers for as long as they run
(`myosight.processes.stop_on_signals`): they stop in order, children first. A stop they handle is not
recorded here.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals that ask a command to stop (SIGTERM's and SIGHUP's names are missing on Windows).
STOP_SIGNAL_NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

_received: int | None = None
#: True while a `deferred_stops` block runs.
_deferring = False


class Stopped(KeyboardInterrupt):
    """A batch command stopped by SIGTERM or SIGHUP. A KeyboardInterrupt, so `except Exception` never takes it
    for an error to work around."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit status of a command ended by this stop: 128 + the signal's number (130 for Ctrl-C)."""
    return 128 + (interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT)


def raise_if_stopped() -> None:
    """Raise the stop again if one was received: a library may have swallowed the exception it raised."""
    if _received is None:
        return
    if _received == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(_received)


def _on_stop(signum: int, _frame: object) -> None:
    global _received
    if _received is None:
        _received = signum
    if not _deferring:
        raise_if_stopped()


@contextlib.contextmanager
def deferred_stops() -> Iterator[None]:
    """Hold a stop back while the block runs (a few renames that must all happen or none): a stop signal that
    comes meanwhile is remembered, and raised once the block is done."""
    global _deferring
    outer, _deferring = _deferring, True
    try:
        yield
    finally:
        _deferring = outer
    if not outer:
        raise_if_stopped()


@contextlib.contextmanager
def stop_raises() -> Iterator[None]:
    """While the block runs, a stop signal raises in the main thread and is remembered (see the module's note).
    Outside the main thread (a command run from a test's thread) handlers cannot be set and nothing changes."""
    global _received
    _received = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [getattr(signal, name) for name in STOP_SIGNAL_NAMES if hasattr(signal, name)]
    previous = {sig: signal.signal(sig, _on_stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received = None
