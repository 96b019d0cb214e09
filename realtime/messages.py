"""The worker's result messages on ZeroMQ: versioned, self-describing, typed, and never pickled.

A message is a multipart ZeroMQ message:

    frame 0   topic, ASCII (the message kind: "prediction" or "health")
    frame 1   header, UTF-8 JSON: {"v": 4, "kind": ..., "seq": ..., "time": ..., "fields": {...},
              "arrays": [{"name": ..., "dtype": ..., "shape": [...]}, ...]}
    frame 2+  one raw little-endian buffer per entry of "arrays", in order

`encode` and `decode` handle this envelope for any kind. The two kinds the worker sends have a typed form,
:class:`PredictionMessage` and :class:`HealthMessage`: one encoder each (``.encode(seq)``) and one strict
decoder each (``.from_message(message)``, or :func:`decode_result` for either kind), which refuses a missing
or unknown field, a wrong type, a non-finite number, or an array of the wrong dtype, rank or length, with a
:class:`MessageError` that names the field. Receivers reject anything malformed and go on: a flood of bad
messages cannot stop a viewer. docs/messages.md describes the schema for programs that read it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import ClassVar, Literal, TypeGuard, overload

import numpy as np
import zmq

from myosight.arms import arm_layout, emg_channels
from myosight.constants import ARMS, CHANNELS_PER_ARM, DEFAULT_ADDRESS
from myosight.errors import ConfigError, MyosightError

#: Version 4: a prediction names the armbands its sEMG comes from (`arms`), and its coverage and spectrogram
#: follow them; receivers of an earlier version refuse it (docs/messages.md).
PROTOCOL_VERSION = 4
ALLOWED_DTYPES = ("uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
MAX_HEADER_BYTES = 1 << 20
MAX_ARRAYS = 64
#: The prediction modes: both modalities, or sEMG alone (an sEMG-only model, or a lost camera).
MODES = ("fusion", "emg")
#: The modalities a self-attention head weights its clips for (arrays `attention_<modality>`).
ATTENTION_MODALITIES = ("rgb", "emg")
#: The input streams a health message may report.
STREAM_NAMES = (*(f"emg-{arm}" for arm in ARMS), "video")
#: The keys of a prediction's JSONL record (`PredictionMessage.to_json`), in order.
JSONL_KEYS = ("seq", "time", "label", "label_index", "true_label", "probs", "window_end", "clip_starts", "mode",
              "latency_ms", "compute_ms", "rgb_reused", "windows_skipped", "arms", "emg_coverage", "attention",
              "kinetics")

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
            or isinstance(stamp, bool) or not _finite(stamp):
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


def _finite(number: int | float) -> bool:
    """Whether a JSON number is a finite float (an integer beyond float range is not)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} in a message header")


# -- typed messages -------------------------------------------------------------------------------------------
_ABSENT = object()
_PROBABILITY_SLACK = 1e-5  # float32 rounding around [0, 1]


def _show(value: object) -> str:
    """A short description of a received value for an error message (values may be huge or hostile)."""
    return "null" if value is None else f"{type(value).__name__} {repr(value)[:40]}"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Fields:
    """A header's fields taken one by one, each checked; `done` refuses what was not taken.

    Every error names the field by its path (`prefix` for nested objects, e.g. "streams.video.")."""

    def __init__(self, values: object, kind: str, prefix: str = "") -> None:
        self.kind, self.prefix = kind, prefix
        if not isinstance(values, dict):
            raise MessageError(f"{kind} field '{prefix.rstrip('.') or 'fields'}': expected an object, "
                               f"got {_show(values)}")
        self.values = dict(values)

    def error(self, name: str, problem: str) -> MessageError:
        return MessageError(f"{self.kind} field '{self.prefix}{name}': {problem}")

    def _take(self, name: str, optional: bool) -> object:
        if name in self.values:
            return self.values.pop(name)
        if optional:
            return _ABSENT
        raise self.error(name, "missing")

    # Each accessor returns None only for an absent optional field: the overloads say so to the type checker.
    @overload
    def text(self, name: str, *, optional: Literal[False] = ..., choices: Sequence[str] | None = None) -> str: ...
    @overload
    def text(self, name: str, *, optional: bool, choices: Sequence[str] | None = None) -> str | None: ...

    def text(self, name: str, *, optional: bool = False, choices: Sequence[str] | None = None) -> str | None:
        value = self._take(name, optional)
        if value is _ABSENT:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(name, f"expected non-empty text, got {_show(value)}")
        if choices is not None and value not in choices:
            raise self.error(name, f"{value[:40]!r} is not one of {list(choices)}")
        return value

    @overload
    def boolean(self, name: str, *, optional: Literal[False] = ...) -> bool: ...
    @overload
    def boolean(self, name: str, *, optional: bool) -> bool | None: ...

    def boolean(self, name: str, *, optional: bool = False) -> bool | None:
        value = self._take(name, optional)
        if value is _ABSENT:
            return None
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_show(value)}")
        return value

    @overload
    def integer(self, name: str, *, optional: Literal[False] = ...) -> int: ...
    @overload
    def integer(self, name: str, *, optional: bool) -> int | None: ...

    def integer(self, name: str, *, optional: bool = False) -> int | None:
        """A count: an integer >= 0 (a JSON number with a fraction or exponent is not one)."""
        value = self._take(name, optional)
        if value is _ABSENT:
            return None
        if not _is_int(value) or value < 0:
            raise self.error(name, f"expected an integer >= 0, got {_show(value)}")
        return value

    @overload
    def number(self, name: str, *, optional: Literal[False] = ..., minimum: float = ...,
               maximum: float = ...) -> float: ...
    @overload
    def number(self, name: str, *, optional: bool, minimum: float = ..., maximum: float = ...) -> float | None: ...

    def number(self, name: str, *, optional: bool = False, minimum: float = -math.inf,
               maximum: float = math.inf) -> float | None:
        value = self._take(name, optional)
        if value is _ABSENT:
            return None
        return self._real(name, value, minimum, maximum)

    def _real(self, name: str, value: object, minimum: float, maximum: float) -> float:
        if not _is_real(value):
            raise self.error(name, f"expected a number, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond float range
            raise self.error(name, "expected a finite number, got a huge integer") from None
        if not math.isfinite(number):
            raise self.error(name, f"expected a finite number, got {number}")
        if not minimum <= number <= maximum:
            raise self.error(name, f"{number} is outside [{minimum}, {maximum}]")
        return number

    def numbers(self, name: str, *, length: int | None = None, minimum: float = -math.inf,
                maximum: float = math.inf) -> list[float]:
        """A non-empty list of finite numbers (of `length` items when given)."""
        value = self._list(name, length)
        return [self._real(f"{name}[{i}]", item, minimum, maximum) for i, item in enumerate(value)]

    def integers(self, name: str, *, below: int) -> list[int]:
        """A list (possibly empty) of integers in [0, below)."""
        value = self._take(name, False)
        if not isinstance(value, list):
            raise self.error(name, f"expected a list, got {_show(value)}")
        for i, item in enumerate(value):
            if not _is_int(item) or not 0 <= item < below:
                raise self.error(f"{name}[{i}]", f"expected an integer in [0, {below}), got {_show(item)}")
        return list(value)

    def texts(self, name: str) -> list[str]:
        """A non-empty list of distinct non-empty texts."""
        value = self._list(name, None)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{name}[{i}]", f"expected non-empty text, got {_show(item)}")
        if len(set(value)) != len(value):
            raise self.error(name, "names repeat")
        return list(value)

    def _list(self, name: str, length: int | None) -> list:
        value = self._take(name, False)
        if not isinstance(value, list) or not value:
            raise self.error(name, f"expected a non-empty list, got {_show(value)}")
        if length is not None and len(value) != length:
            raise self.error(name, f"{len(value)} items, expected {length}")
        return value

    def mapping(self, name: str) -> dict:
        value = self._take(name, False)
        if not isinstance(value, dict):
            raise self.error(name, f"expected an object, got {_show(value)}")
        return value

    def done(self, problem: str = "unknown field") -> None:
        if self.values:
            raise self.error(sorted(self.values)[0], problem)


class _Arrays:
    """A message's arrays taken one by one, each checked for dtype, rank, length and finite values."""

    def __init__(self, arrays: Mapping[str, np.ndarray], kind: str) -> None:
        self.arrays, self.kind = dict(arrays), kind

    def error(self, name: str, problem: str) -> MessageError:
        return MessageError(f"{self.kind} array '{name}': {problem}")

    @overload
    def take(self, name: str, dtype: str, ndim: int, *, optional: Literal[False] = ..., length: int | None = None,
             per: str = "", probabilities: bool = False) -> np.ndarray: ...
    @overload
    def take(self, name: str, dtype: str, ndim: int, *, optional: bool, length: int | None = None,
             per: str = "", probabilities: bool = False) -> np.ndarray | None: ...

    def take(self, name: str, dtype: str, ndim: int, *, optional: bool = False, length: int | None = None,
             per: str = "", probabilities: bool = False) -> np.ndarray | None:
        """The array `name`: of `dtype`, `ndim`-D, `length` long (its first axis), finite where it is float,
        within [0, 1] when it holds `probabilities`."""
        array = self.arrays.pop(name, None)
        if array is None:
            if optional:
                return None
            raise self.error(name, "missing")
        if array.dtype.name != dtype:
            raise self.error(name, f"dtype {array.dtype.name}, expected {dtype}")
        if array.ndim != ndim:
            raise self.error(name, f"{array.ndim}-D, expected {ndim}-D")
        if length is not None and len(array) != length:
            raise self.error(name, f"{len(array)} values, expected {length}" + (f" ({per})" if per else ""))
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise self.error(name, "non-finite values")
        if probabilities and array.size and not (-_PROBABILITY_SLACK <= array.min() <= array.max()
                                                 <= 1 + _PROBABILITY_SLACK):
            raise self.error(name, "values outside [0, 1]")
        return array

    def done(self) -> None:
        if self.arrays:
            raise self.error(sorted(self.arrays)[0], "unknown array")


def _check_kind(message: Message, kind: str) -> None:
    if message.kind != kind:
        raise MessageError(f"expected a {kind} message, got kind {message.kind!r}")


def _same(a: object, b: object) -> bool:
    """Equality by value through dataclasses, dicts, lists and arrays (dtype and shape included)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b)))
    if is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                          for f in fields(a) if f.compare)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class _Typed:
    """Value equality for the typed messages (a generated dataclass `==` cannot compare arrays); the
    envelope's `seq` and `time` are not part of it."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and _same(self, other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class KineticsTop(_Typed):
    """What the frozen I3D sees in the newest clip: its top Kinetics-400 classes, most likely first."""

    indices: np.ndarray  # int32 (k,): Kinetics-400 class indices
    probs: np.ndarray  # float32 (k,): their softmax probabilities over all 400 classes


@dataclass(eq=False)
class PredictionMessage(_Typed):
    """One window's prediction. The optional parts are None when they do not apply, never filled in:
    `true_label` without a label stream, `attention` for a head without clip attention (or predicting from
    sEMG alone), `kinetics` and `spectrogram` when the newest clip has none."""

    KIND: ClassVar[str] = "prediction"

    label: str  # the predicted class, classes[label_index]
    label_index: int
    classes: list[str]  # the model's classes, in the order of `probs`
    probs: np.ndarray  # float32 (len(classes),)
    window_end: float  # seconds on the LSL clock of the worker's host
    clip_starts: list[float]  # start of each clip of the window, oldest first
    mode: str  # "fusion" or "emg"
    latency_ms: float  # from the window's data being ready to the prediction
    compute_ms: float  # computing the prediction
    rgb_reused: int  # clips that reused a neighbour's I3D feature
    windows_skipped: int  # windows skipped so far (inference slower than the data)
    arms: list[str]  # the armbands the model's sEMG comes from, in channel order ("left", "right" or both)
    emg_coverage: list[float]  # per arm of `arms`: the share of the window with sEMG samples
    true_label: str | None = None  # the replayed activity at the window's middle
    attention: dict[str, np.ndarray] | None = None  # modality -> float32 (clips,) weights
    kinetics: KineticsTop | None = None
    spectrogram: np.ndarray | None = None  # float32 (8 per arm, mels, frames) of the newest clip
    seq: int | None = field(default=None, compare=False)  # the envelope's, once received
    time: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.attention:
            self.attention = None  # no weights is no attention: never an empty panel drawn as measured

    def encode(self, seq: int, timestamp: float | None = None) -> list[bytes]:
        """The frames of this prediction: the envelope with the documented fields and arrays, the arrays in
        their schema dtypes, and the optional parts that are None left out."""
        values = {"label": self.label, "label_index": int(self.label_index), "classes": list(self.classes),
                  "window_end": float(self.window_end), "clip_starts": [float(t) for t in self.clip_starts],
                  "mode": self.mode, "latency_ms": float(self.latency_ms), "compute_ms": float(self.compute_ms),
                  "rgb_reused": int(self.rgb_reused), "windows_skipped": int(self.windows_skipped),
                  "arms": list(self.arms), "emg_coverage": [float(c) for c in self.emg_coverage]}
        if self.true_label is not None:
            values["true_label"] = self.true_label
        arrays = {"probs": np.asarray(self.probs, np.float32)}
        for modality, weights in (self.attention or {}).items():
            arrays[f"attention_{modality}"] = np.asarray(weights, np.float32)
        if self.kinetics is not None:
            arrays["kinetics_top"] = np.asarray(self.kinetics.indices, np.int32)
            arrays["kinetics_probs"] = np.asarray(self.kinetics.probs, np.float32)
        if self.spectrogram is not None:
            arrays["spectrogram"] = np.asarray(self.spectrogram, np.float32)
        return encode(self.KIND, seq, values, arrays, timestamp)

    @classmethod
    def from_message(cls, message: Message) -> PredictionMessage:
        """The prediction in a decoded envelope; a MessageError naming the field for anything off the schema."""
        _check_kind(message, cls.KIND)
        f, a = _Fields(message.fields, cls.KIND), _Arrays(message.arrays, cls.KIND)
        classes = f.texts("classes")
        label, label_index = f.text("label"), f.integer("label_index")
        if label not in classes:
            raise f.error("label", f"{label[:40]!r} is not one of the classes")
        if label_index >= len(classes) or classes[label_index] != label:
            raise f.error("label_index", f"{label_index} is not the index of label {label[:40]!r} in classes")
        clip_starts = f.numbers("clip_starts")
        arms = f.texts("arms")
        try:
            layout = arm_layout(arms)
        except ConfigError as error:
            raise f.error("arms", str(error)) from None
        if list(layout) != arms:
            raise f.error("arms", f"expected arms in the order {', '.join(ARMS)}, got {_show(arms)}")
        prediction = cls(
            label=label, label_index=label_index, classes=classes,
            probs=a.take("probs", "float32", 1, length=len(classes), per="one per class", probabilities=True),
            window_end=f.number("window_end"), clip_starts=clip_starts, mode=f.text("mode", choices=MODES),
            latency_ms=f.number("latency_ms", minimum=0.0), compute_ms=f.number("compute_ms", minimum=0.0),
            rgb_reused=f.integer("rgb_reused"), windows_skipped=f.integer("windows_skipped"),
            arms=arms, emg_coverage=f.numbers("emg_coverage", length=len(arms), minimum=0.0, maximum=1.0),
            true_label=f.text("true_label", optional=True), attention=_attention(a, len(clip_starts)),
            kinetics=_kinetics(a), spectrogram=a.take("spectrogram", "float32", 3, optional=True,
                                                      length=emg_channels(arms), per="one per sEMG channel"),
            seq=message.seq, time=message.time,
        )
        f.done()
        a.done()
        return prediction

    def to_json(self) -> dict:
        """The JSONL record of this prediction (docs/messages.md): the keys of `JSONL_KEYS`, always all of them
        (null where a part is absent); not `classes` (the same on every line) nor the spectrogram (large)."""
        kinetics = None if self.kinetics is None else {"indices": self.kinetics.indices.tolist(),
                                                       "probs": self.kinetics.probs.tolist()}
        attention = None if self.attention is None else {m: w.tolist() for m, w in self.attention.items()}
        return {"seq": self.seq, "time": self.time, "label": self.label, "label_index": self.label_index,
                "true_label": self.true_label, "probs": np.asarray(self.probs).tolist(),
                "window_end": self.window_end, "clip_starts": list(self.clip_starts), "mode": self.mode,
                "latency_ms": self.latency_ms, "compute_ms": self.compute_ms, "rgb_reused": self.rgb_reused,
                "windows_skipped": self.windows_skipped, "arms": list(self.arms),
                "emg_coverage": list(self.emg_coverage),
                "attention": attention, "kinetics": kinetics}


def _attention(arrays: _Arrays, clips: int) -> dict[str, np.ndarray] | None:
    """The clip weights a self-attention head sent (None when it sent none): one weight per clip."""
    weights = {m: arrays.take(f"attention_{m}", "float32", 1, optional=True, length=clips, per="one per clip",
                              probabilities=True) for m in ATTENTION_MODALITIES}
    return {m: w for m, w in weights.items() if w is not None} or None


def _kinetics(arrays: _Arrays) -> KineticsTop | None:
    """The Kinetics top classes: both arrays or neither, equally long, non-negative class indices."""
    top = arrays.take("kinetics_top", "int32", 1, optional=True)
    probs = arrays.take("kinetics_probs", "float32", 1, optional=True, probabilities=True,
                        length=None if top is None else len(top), per="one per kinetics_top index")
    if top is None and probs is None:
        return None
    if top is None or probs is None:
        raise arrays.error("kinetics_top" if top is None else "kinetics_probs",
                           "missing (kinetics_top and kinetics_probs come together)")
    if len(top) == 0 or top.min() < 0:
        raise arrays.error("kinetics_top", "expected at least one class index, none negative")
    return KineticsTop(top, probs)


def _channel_ranges(channels: Sequence[int]) -> str:
    """Channels (0-based) as a person counts them, runs joined: [0, 1, 2, 5] -> '1-3, 6'."""
    runs: list[list[int]] = []
    for channel in sorted(channels):
        if runs and channel == runs[-1][-1] + 1:
            runs[-1].append(channel)
        else:
            runs.append([channel])
    return ", ".join(f"{run[0] + 1}-{run[-1] + 1}" if len(run) > 1 else str(run[0] + 1) for run in runs)


@dataclass(eq=False)
class StreamStatus(_Typed):
    """What the worker knows about one of its input streams. A stream the worker never found is `missing`
    (and lost) and has nothing else; the sEMG-only figures (`gaps` ...) are None for the video stream."""

    lost: bool  # no data for longer than the worker waits
    missing: bool = False  # an arm of the model the source does not stream, run without as the user allowed
    samples: int | None = None  # samples received (frames, for the video stream)
    rate_hz: float | None = None  # measured rate (sEMG: settled samples per recorded second; video: arrivals)
    clock_offset_ms: float | None = None  # LSL clock offset of the sender's host
    lost_events: int | None = None  # times the stream was lost
    recovered_events: int | None = None  # times it came back
    gaps: int | None = None  # sEMG: silences longer than the pipeline bridges
    stuck_channels: list[int] | None = None  # sEMG: channels (0-7 of the arm) that repeat one value
    nonfinite: int | None = None  # sEMG: non-finite values received (replaced)
    backwards_dropped: int | None = None  # sEMG: samples dropped for a timestamp going backwards

    def problem(self) -> str | None:
        """What is wrong with a stream that delivers samples, in words, None when nothing is: channels stuck at
        one value (a loose or dead armband; an armband sending NaN looks so too, each value held at the last
        finite one)."""
        if not self.stuck_channels:
            return None
        nonfinite = f" ({self.nonfinite} non-finite)" if self.nonfinite else ""
        plural = "s" if len(self.stuck_channels) > 1 else ""
        return f"stuck: channel{plural} {_channel_ranges(self.stuck_channels)}{nonfinite}"

    def to_fields(self) -> dict:
        """The stream's object in a health message: what applies, nothing else."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values = {name: value for name, value in values.items() if value is not None}
        if not self.missing:
            del values["missing"]
        if self.stuck_channels is not None:
            values["stuck_channels"] = [int(c) for c in self.stuck_channels]
        return values

    @classmethod
    def from_fields(cls, values: object, name: str) -> StreamStatus:
        f = _Fields(values, HealthMessage.KIND, f"streams.{name}.")
        lost, missing = f.boolean("lost"), bool(f.boolean("missing", optional=True))
        if missing:
            if not lost:
                raise f.error("lost", "a missing stream is lost")
            f.done("not sent for a missing stream")
            return cls(lost=True, missing=True)
        emg = name.startswith("emg-")
        status = cls(
            lost=lost, samples=f.integer("samples"), rate_hz=f.number("rate_hz", minimum=0.0),
            clock_offset_ms=f.number("clock_offset_ms"), lost_events=f.integer("lost_events"),
            recovered_events=f.integer("recovered_events"), gaps=f.integer("gaps") if emg else None,
            stuck_channels=f.integers("stuck_channels", below=CHANNELS_PER_ARM) if emg else None,
            nonfinite=f.integer("nonfinite") if emg else None,
            backwards_dropped=f.integer("backwards_dropped") if emg else None,
        )
        f.done("unknown field" + ("" if emg else " (the sEMG figures are not sent for video)"))
        return status


@dataclass(eq=False)
class HealthMessage(_Typed):
    """The worker's health, about once a second. The latency and load figures are None until the first
    prediction (there is nothing to measure before it)."""

    KIND: ClassVar[str] = "health"

    streams: dict[str, StreamStatus]  # by stream name: "emg-left", "emg-right", "video"
    mode: str  # the mode of the next prediction: "fusion", or "emg" (sEMG-only model or camera lost)
    video_lost: bool
    windows_predicted: int
    windows_skipped: int
    rgb_features: int  # I3D clip features computed
    emg_features: int  # sEMG clip features computed
    latency_p50_ms: float | None = None  # over the last 200 predictions
    latency_p95_ms: float | None = None
    realtime_factor: float | None = None  # mean compute time / hop: above 1, the worker falls behind
    nonfinite_predictions: int = 0  # windows whose probabilities were NaN or infinite (withheld, not published)
    hop_s: float | None = None  # seconds between decisions now (coarser than asked when the models cannot keep up)
    hop_coarsened: int = 0  # times the worker made its hop coarser to keep up
    seq: int | None = field(default=None, compare=False)  # the envelope's, once received
    time: float | None = field(default=None, compare=False)

    def encode(self, seq: int, timestamp: float | None = None) -> list[bytes]:
        """The frames of this health report (no arrays; the figures that are None left out)."""
        values = {"streams": {name: status.to_fields() for name, status in self.streams.items()},
                  "mode": self.mode, "video_lost": bool(self.video_lost),
                  "windows_predicted": int(self.windows_predicted), "windows_skipped": int(self.windows_skipped),
                  "rgb_features": int(self.rgb_features), "emg_features": int(self.emg_features)}
        for name in ("latency_p50_ms", "latency_p95_ms", "realtime_factor", "hop_s"):
            if getattr(self, name) is not None:
                values[name] = float(getattr(self, name))
        for name in ("nonfinite_predictions", "hop_coarsened"):
            if getattr(self, name):
                values[name] = int(getattr(self, name))
        return encode(self.KIND, seq, values, timestamp=timestamp)

    @classmethod
    def from_message(cls, message: Message) -> HealthMessage:
        """The health report in a decoded envelope; a MessageError naming the field for anything off-schema."""
        _check_kind(message, cls.KIND)
        f, a = _Fields(message.fields, cls.KIND), _Arrays(message.arrays, cls.KIND)
        streams = {}
        for name, values in f.mapping("streams").items():
            if name not in STREAM_NAMES:
                raise f.error(f"streams.{name[:40]}", f"unknown stream (known: {list(STREAM_NAMES)})")
            streams[name] = StreamStatus.from_fields(values, name)
        health = cls(
            streams=streams, mode=f.text("mode", choices=MODES), video_lost=f.boolean("video_lost"),
            windows_predicted=f.integer("windows_predicted"), windows_skipped=f.integer("windows_skipped"),
            rgb_features=f.integer("rgb_features"), emg_features=f.integer("emg_features"),
            latency_p50_ms=f.number("latency_p50_ms", optional=True, minimum=0.0),
            latency_p95_ms=f.number("latency_p95_ms", optional=True, minimum=0.0),
            realtime_factor=f.number("realtime_factor", optional=True, minimum=0.0),
            nonfinite_predictions=f.integer("nonfinite_predictions", optional=True) or 0,
            hop_s=f.number("hop_s", optional=True, minimum=0.0),
            hop_coarsened=f.integer("hop_coarsened", optional=True) or 0,
            seq=message.seq, time=message.time,
        )
        f.done()
        a.done()
        return health


#: A typed message of either kind.
Result = PredictionMessage | HealthMessage
_TYPED: dict[str, type[PredictionMessage] | type[HealthMessage]] = {
    PredictionMessage.KIND: PredictionMessage, HealthMessage.KIND: HealthMessage,
}


def decode_result(message: Message) -> Result:
    """The typed message in a decoded envelope, by its kind; MessageError for an unknown kind or a bad field."""
    typed = _TYPED.get(message.kind)
    if typed is None:
        raise MessageError(f"unknown message kind {message.kind!r} (known: {sorted(_TYPED)})")
    return typed.from_message(message)


def address_error(option: str, address: str, action: str, error: zmq.ZMQError) -> ConfigError:
    """One line naming the option whose ZeroMQ address cannot be bound or connected, and why."""
    if error.errno == zmq.EADDRINUSE:
        why = "the port is in use (is another worker running on it?)"
    else:
        why = f"{error.strerror}; expected an address like tcp://127.0.0.1:5557"
    return ConfigError(f"{option} {address}: cannot {action} it: {why}")


def check_bindable(address: str, option: str) -> None:
    """Raise ConfigError naming `option` when a worker could not publish on `address` (malformed, or its port
    taken): checked before a command starts its children, which would otherwise start for nothing."""
    ResultPublisher(address, option=option).close()


def check_connectable(address: str, option: str) -> None:
    """Raise ConfigError naming `option` when a viewer could not subscribe to `address` (malformed)."""
    ResultSubscriber(address, option=option).close()


#: The longest subscription a publisher reads: a peer sending a longer one is disconnected.
MAX_SUBSCRIPTION_BYTES = 64


class ResultPublisher:
    """The worker's publishing socket; binds 127.0.0.1 unless told otherwise. An address it cannot bind is a
    ConfigError naming `option`, the option the user gave it with.

    Subscriptions are the publisher's to accept (ZeroMQ's XPUB in manual mode): only a prefix of a kind it
    publishes ("" for all) is taken, anything else is ignored, and a subscription longer than
    `MAX_SUBSCRIPTION_BYTES` disconnects its peer. So what a peer on the port sends cannot grow the worker's
    memory (a plain publisher keeps every topic any peer subscribes to)."""

    def __init__(self, address: str = DEFAULT_ADDRESS, context: zmq.Context | None = None, *,
                 option: str = "the result address") -> None:
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.XPUB_MANUAL, 1)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES + 1)  # the flag byte and the topic
        self.socket.setsockopt(zmq.SNDHWM, 100)  # a slow viewer loses old messages, the worker never blocks
        self.socket.setsockopt(zmq.LINGER, 0)
        self.kinds = {PredictionMessage.KIND, HealthMessage.KIND}  # the kinds a subscription may name a prefix of
        self.ignored_subscriptions = 0
        try:
            self.socket.bind(address)
        except zmq.ZMQError as error:
            self.socket.close(linger=0)
            raise address_error(option, address, "bind", error) from None
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seq = 0

    def send(self, kind: str, fields: Mapping | None = None, arrays: Mapping[str, np.ndarray] | None = None) -> None:
        """An untyped message of any kind (viewers refuse kinds and fields off the schema; see `publish`)."""
        self.kinds.add(kind)
        self.accept_subscriptions()
        self.seq += 1
        self.socket.send_multipart(encode(kind, self.seq, fields, arrays), copy=False)

    def publish(self, message: Result) -> None:
        """A typed prediction or health report, numbered in this publisher's sequence."""
        self.accept_subscriptions()
        self.seq += 1
        self.socket.send_multipart(message.encode(self.seq), copy=False)

    def accept_subscriptions(self) -> None:
        """Take the subscriptions that arrived since the last message (before it is sent: a viewer that
        subscribed while the worker was loading gets the first message)."""
        while self.socket.poll(0):
            frame = self.socket.recv()
            subscribe, topic = frame[:1] == b"\x01", frame[1:]
            if frame[:1] not in (b"\x00", b"\x01") or not any(kind.encode().startswith(topic) for kind in self.kinds):
                self.ignored_subscriptions += 1
                continue
            self.socket.setsockopt(zmq.SUBSCRIBE if subscribe else zmq.UNSUBSCRIBE, topic)

    def close(self) -> None:
        self.socket.close(linger=0)


class ResultSubscriber:
    """SUB socket of a viewer; malformed messages are counted (`rejected`) and logged, never raised."""

    def __init__(self, address: str = DEFAULT_ADDRESS, kinds: Sequence[str] = ("",),
                 context: zmq.Context | None = None, *, option: str = "the worker address") -> None:
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, 100)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, 64 << 20)
        for kind in kinds:
            self.socket.setsockopt(zmq.SUBSCRIBE, kind.encode())
        try:
            self.socket.connect(address)
        except zmq.ZMQError as error:
            self.socket.close(linger=0)
            raise address_error(option, address, "connect to", error) from None
        self.rejected = 0
        self.last_error: str | None = None

    def receive(self, timeout_ms: int = 100) -> Message | None:
        """The next valid envelope (of any kind), or None when none arrives within the timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            if not self.socket.poll(remaining):
                return None
            frames = self.socket.recv_multipart(copy=True)
            try:
                return decode(frames)
            except MessageError as error:
                self._reject(error)

    def receive_result(self, timeout_ms: int = 100) -> Result | None:
        """The next valid typed prediction or health report, or None when none arrives within the timeout.

        What the strict decoders refuse (an unknown kind, a missing or malformed field) is counted and logged
        like a malformed envelope, and skipped: a viewer only ever sees messages it can draw."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            message = self.receive(max(0, int((deadline - time.monotonic()) * 1000)))
            if message is None:
                return None
            try:
                return decode_result(message)
            except MessageError as error:
                self._reject(error, message)

    def _reject(self, error: MessageError, message: Message | None = None) -> None:
        self.rejected += 1
        self.last_error = str(error)
        where = f" ({message.kind} {message.seq})" if message is not None else ""
        log.warning("rejected a message%s: %s", where, error)

    def close(self) -> None:
        self.socket.close(linger=0)
