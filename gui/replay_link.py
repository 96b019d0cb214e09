"""Replay control from the window: play, pause, speed and seek, sent off the GUI thread.

The replay process answers on its control address (`capture/replay_control.py`). Requests can block for up
to the client's timeout, so they run in this thread; the user's commands are handled in order and the
replay's status (position, duration, speed, paused) is fetched twice a second into the shared state.
"""

from __future__ import annotations

import logging
import queue
import threading

from myosight.errors import MyosightError, StreamError
from myosight.gui.state import GuiState

log = logging.getLogger(__name__)


class ReplayLink(threading.Thread):
    """Owns the control client; `send("pause")`, `send("seek", 12.0)` ... never block the caller."""

    def __init__(self, address: str, state: GuiState, poll_s: float = 0.5) -> None:
        super().__init__(name="myosight-gui-replay", daemon=True)
        self.address, self.state, self.poll_s = address, state, poll_s
        self.commands: queue.Queue[tuple[str, tuple]] = queue.Queue(maxsize=64)
        self.error: str | None = None
        self._stop_event = threading.Event()

    def send(self, command: str, *args: float) -> None:
        if command not in ("play", "pause", "set_speed", "seek"):
            raise ValueError(f"unknown replay command {command!r}")
        try:
            self.commands.put_nowait((command, args))
        except queue.Full:
            log.warning("replay control is not keeping up; %s dropped", command)

    def run(self) -> None:
        from myosight.capture.replay_control import ReplayControlClient

        client = ReplayControlClient(self.address, timeout_ms=1000)
        try:
            while not self._stop_event.is_set():
                try:
                    command, args = self.commands.get(timeout=self.poll_s)
                    self._call(client, command, args)
                except queue.Empty:
                    pass
                self._call(client, "status", ())
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def _call(self, client, command: str, args: tuple) -> None:
        try:
            result = getattr(client, command)(*args)
        except StreamError as error:  # the replay does not answer: no transport until it does
            self.error = str(error)
            self.state.set_replay(None)
            return
        except MyosightError as error:  # a refused request (a seek past the end ...): say so, keep going
            self.error = str(error)
            return
        self.error = None
        if isinstance(result, dict):  # every answer carries the replay's status
            self.state.set_replay(result)

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)
