"""Remote control of a running replay (play, pause, speed, seek, status) over ZeroMQ.

The replay binds a REP socket (127.0.0.1 by default) and answers between the events it sends, without
ever blocking on it; a viewer (the GUI, a script) connects a `ReplayControlClient`. The protocol is one
JSON object per request and per reply, no pickle:

    request  {"command": "play"}  {"command": "pause"}  {"command": "status"}
             {"command": "set_speed", "speed": 2.0}     {"command": "seek", "position_s": 30.0}
    reply    {"protocol": 1, "ok": true, "status": {"position_s", "duration_s", "speed", "paused", "passes", ...}}
             {"protocol": 1, "ok": false, "error": "why the request was refused"}

A request is decoded strictly: one frame of at most `MAX_REQUEST_BYTES` (a peer sending more is disconnected),
UTF-8 JSON, an object with the command's fields and no others, numbers finite and in range (a speed as
`--speed` takes it). Anything else (nested or enormous values included) gets an error reply; the replay
goes on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from myosight import options
from myosight.constants import DEFAULT_CONTROL_ADDRESS
from myosight.errors import ConfigError, StreamError

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 4096
#: Each command and the number it carries (None: none).
COMMAND_FIELDS: dict[str, str | None] = {"play": None, "pause": None, "status": None, "set_speed": "speed",
                                         "seek": "position_s"}
COMMANDS = tuple(COMMAND_FIELDS)


@dataclass(frozen=True)
class ControlCommand:
    """A validated request: `value` is the speed of set_speed and the position of seek."""

    name: str
    value: float | None = None


def parse_request(frames: list[bytes]) -> ControlCommand:
    """Validate one request; raises ConfigError with the reason for anything malformed."""
    if len(frames) != 1 or len(frames[0]) > MAX_REQUEST_BYTES:
        raise ConfigError(f"a request is one message frame of at most {MAX_REQUEST_BYTES} bytes")
    try:
        request = json.loads(frames[0].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: JSON, or an int too long
        raise ConfigError(f"a request must be a UTF-8 JSON object ({type(error).__name__})") from None
    if not isinstance(request, dict):
        raise ConfigError(f"a request must be a JSON object, got {type(request).__name__}")
    name = request.get("command")
    if not isinstance(name, str) or name not in COMMAND_FIELDS:
        raise ConfigError(f"unknown command {_shown(name)}; one of {', '.join(COMMANDS)}")
    number = COMMAND_FIELDS[name]
    unknown = sorted(set(request) - {"command", number})
    if unknown:
        raise ConfigError(f"{name}: unknown field {_shown(unknown[0])}")
    if number is None:
        return ControlCommand(name)
    value = _number(request, number)
    if number == "speed" and not options.MIN_SPEED <= value <= options.MAX_SPEED:
        raise ConfigError(f"speed must be from {options.MIN_SPEED:g} to {options.MAX_SPEED:g}, got {value:g}")
    return ControlCommand(name, value)


def _number(request: dict, key: str) -> float:
    value = request.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"'{key}' must be a finite number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"'{key}' must be a finite number")
    return number


def _shown(value: object) -> str:
    """A peer's value in an error reply, cut short (a reply never echoes a whole request back)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class ReplayControlServer:
    """The replay's side: answers pending requests when polled, never blocks the replay."""

    def __init__(self, address: str = DEFAULT_CONTROL_ADDRESS, context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)  # a peer sending more is disconnected
        try:
            self.socket.bind(address)
        except zmq.ZMQError as error:
            self.socket.close(linger=0)
            raise ConfigError(f"replay control: cannot bind {address} ({error})") from None
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.rejected = 0

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for a request; True when one is pending."""
        return bool(self.socket.poll(max(0, int(timeout_s * 1000))))

    def serve(self, handle: Callable[[ControlCommand], dict], max_requests: int = 16) -> int:
        """Answer the requests already waiting (at most `max_requests`); returns how many were answered."""
        answered = 0
        while answered < max_requests and self.socket.poll(0):
            frames = self.socket.recv_multipart()
            try:
                reply: dict[str, Any] = {"ok": True, "status": handle(parse_request(frames))}
            except ConfigError as error:
                self.rejected += 1
                reply = {"ok": False, "error": str(error)}
            self.socket.send_string(json.dumps({"protocol": PROTOCOL_VERSION, **reply}))
            answered += 1
        return answered

    def close(self) -> None:
        self.socket.close(linger=0)


class ReplayControlClient:
    """The viewer's side. Each call waits at most `timeout_ms` and raises StreamError when the replay does
    not answer (then the socket is made anew, so the next call starts clean). Use from one thread."""

    def __init__(self, address: str = DEFAULT_CONTROL_ADDRESS, timeout_ms: int = 1000,
                 context: zmq.Context | None = None) -> None:
        self.address, self.timeout_ms = address, int(timeout_ms)
        self.context = context or zmq.Context.instance()
        self.socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = self.context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        socket.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        socket.connect(self.address)
        return socket

    def play(self) -> dict:
        """Resume sending; returns the status."""
        return self.request({"command": "play"})

    def pause(self) -> dict:
        """Stop sending until play(); returns the status."""
        return self.request({"command": "pause"})

    def set_speed(self, speed: float) -> dict:
        """Replay at `speed` times real time from now on; returns the status."""
        return self.request({"command": "set_speed", "speed": float(speed)})

    def seek(self, position_s: float) -> dict:
        """Jump to `position_s` seconds from the recording's start (clamped to it); returns the status."""
        return self.request({"command": "seek", "position_s": float(position_s)})

    def status(self) -> dict:
        """position_s, duration_s, speed, paused, passes (and source)."""
        return self.request({"command": "status"})

    def request(self, message: dict) -> dict:
        """Send one request; the status of an accepted one, ConfigError with the reason for a refused one."""
        try:
            self.socket.send_string(json.dumps(message))
            reply = json.loads(self.socket.recv().decode("utf-8"))
        except zmq.Again:
            self.socket.close(linger=0)
            self.socket = self._connect()  # a REQ socket that missed its reply cannot send again
            raise StreamError(f"replay control at {self.address} did not answer within {self.timeout_ms} ms "
                              "(is the replay running with this control address?)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StreamError(f"replay control at {self.address} sent a malformed reply ({error})") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            raise StreamError(f"replay control at {self.address} sent an unexpected reply: {reply!r}")
        if not reply["ok"]:
            raise ConfigError(f"replay control at {self.address} refused {message.get('command')!r}: "
                              f"{reply.get('error')}")
        return dict(reply["status"])

    def close(self) -> None:
        self.socket.close(linger=0)

    def __enter__(self) -> ReplayControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
