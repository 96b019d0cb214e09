"""The worker's result messages on ZeroMQ: versioned, self-describing, and never pickled.

A message is a multipart ZeroMQ message:

    frame 0   topic, ASCII (the message kind: "prediction", "health", "spectrogram", ...)
    frame 1   header, UTF-8 JSON: {"v": 1, "kind": ..., "seq": ..., "time": ..., "fields": {...},
              "arrays": [{"name": ..., "dtype": ..., "shape": [...]}, ...]}
    frame 2+  one raw little-endian buffer per entry of "arrays", in order

Receivers reject anything else (unknown version, malformed JSON, a buffer that does not match its
declared dtype and shape) with a :class:`MessageError` and go on: a flood of bad messages cannot stop
a viewer.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import zmq

from myosight.errors import MyosightError

PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5557"
ALLOWED_DTYPES = ("uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
MAX_HEADER_BYTES = 1 << 20
MAX_ARRAYS = 64

log = logging.getLogger(__name__)


class MessageError(MyosightError):
    """A received message does not follow the protocol."""


@dataclass
class Message:
    kind: str
    seq: int
    time: float
    fields: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def encode(kind: str, seq: int, fields: Mapping | None = None, arrays: Mapping[str, np.ndarray] | None = None,
           timestamp: float | None = None) -> list[bytes]:
    """The frames of one message."""
    if not kind.isascii() or not kind.isidentifier():
        raise MessageError(f"message kind must be an ASCII identifier, got {kind!r}")
    specs, buffers = [], []
    for name, array in (arrays or {}).items():
        array = np.ascontiguousarray(array)
        if array.dtype.name not in ALLOWED_DTYPES:
            raise MessageError(f"array {name!r}: dtype {array.dtype} is not allowed")
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        specs.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape)})
        buffers.append(array.tobytes())
    header = {"v": PROTOCOL_VERSION, "kind": kind, "seq": int(seq),
              "time": float(time.time() if timestamp is None else timestamp),
              "fields": dict(fields or {}), "arrays": specs}
    return [kind.encode("ascii"), json.dumps(header, allow_nan=False, default=_json_default).encode(), *buffers]


def decode(frames: Sequence[bytes]) -> Message:
    """Parse and check the frames of one message; raises MessageError on anything malformed."""
    if len(frames) < 2:
        raise MessageError(f"expected at least 2 frames (topic, header), got {len(frames)}")
    topic, raw_header = bytes(frames[0]), bytes(frames[1])
    if len(raw_header) > MAX_HEADER_BYTES:
        raise MessageError(f"header of {len(raw_header)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise MessageError(f"header is not UTF-8 JSON ({error})") from error
    if not isinstance(header, dict):
        raise MessageError("header must be a JSON object")
    if header.get("v") != PROTOCOL_VERSION:
        raise MessageError(f"unknown protocol version {header.get('v')!r} (this receiver reads {PROTOCOL_VERSION})")
    kind, seq, stamp = header.get("kind"), header.get("seq"), header.get("time")
    if not isinstance(kind, str) or kind.encode() != topic:
        raise MessageError(f"header kind {kind!r} does not match topic {topic!r}")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(stamp, int | float) \
            or isinstance(stamp, bool) or not math.isfinite(stamp):
        raise MessageError("header needs an integer 'seq' and a finite number 'time'")
    fields, specs = header.get("fields", {}), header.get("arrays", [])
    if not isinstance(fields, dict) or not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise MessageError("header 'fields' must be an object and 'arrays' a list of at most 64 entries")
    if len(specs) != len(frames) - 2:
        raise MessageError(f"header declares {len(specs)} arrays but {len(frames) - 2} buffers follow")
    arrays = {}
    for spec, buffer in zip(specs, frames[2:], strict=True):
        name, array = _decode_array(spec, bytes(buffer))
        arrays[name] = array
    return Message(kind, seq, float(stamp), fields, arrays)


def _decode_array(spec: object, buffer: bytes) -> tuple[str, np.ndarray]:
    if not isinstance(spec, dict):
        raise MessageError("array spec must be an object")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or dtype not in ALLOWED_DTYPES:
        raise MessageError(f"array spec needs a name and a dtype in {ALLOWED_DTYPES}, got {name!r} {dtype!r}")
    if not isinstance(shape, list) or len(shape) > 8 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 31 for n in shape):
        raise MessageError(f"array {name!r}: invalid shape {shape!r}")
    item = np.dtype(dtype).newbyteorder("<")
    expected = math.prod(shape) * item.itemsize
    if expected != len(buffer):
        raise MessageError(f"array {name!r}: {len(buffer)} bytes for shape {shape} of {dtype} ({expected} expected)")
    return name, np.frombuffer(buffer, dtype=item).reshape(shape)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} in a message header")


class ResultPublisher:
    """PUB socket of the worker; binds 127.0.0.1 unless told otherwise."""

    def __init__(self, address: str = DEFAULT_ADDRESS, context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, 100)  # a slow viewer loses old messages, the worker never blocks
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seq = 0

    def send(self, kind: str, fields: Mapping | None = None, arrays: Mapping[str, np.ndarray] | None = None) -> None:
        self.seq += 1
        self.socket.send_multipart(encode(kind, self.seq, fields, arrays), copy=False)

    def close(self) -> None:
        self.socket.close(linger=0)


class ResultSubscriber:
    """SUB socket of a viewer; malformed messages are counted and logged, never raised."""

    def __init__(self, address: str = DEFAULT_ADDRESS, kinds: Sequence[str] = ("",),
                 context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, 100)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, 64 << 20)
        for kind in kinds:
            self.socket.setsockopt(zmq.SUBSCRIBE, kind.encode())
        self.socket.connect(address)
        self.rejected = 0
        self.last_error: str | None = None

    def receive(self, timeout_ms: int = 100) -> Message | None:
        """The next valid message, or None when none arrives within the timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            if not self.socket.poll(remaining):
                return None
            frames = self.socket.recv_multipart(copy=True)
            try:
                return decode(frames)
            except MessageError as error:
                self.rejected += 1
                self.last_error = str(error)
                log.warning("rejected a message: %s", error)

    def close(self) -> None:
        self.socket.close(linger=0)
