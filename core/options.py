"""Argument types for myosight's command-line options: numbers checked where they are typed.

A duration of 0, a negative speed, `nan` epochs or a 100000-pixel frame would otherwise reach the code that
uses them and fail there (a division by zero, an OpenCV error, a huge allocation) or, worse, run and print
nonsense. Each type here refuses such a value with an `argparse.ArgumentTypeError` that says what is allowed,
so argparse reports `myosight CMD: error: argument --OPTION: expected ..., got '...'` before anything starts.
This module imports no part of myosight: every command module can use it.
"""

from __future__ import annotations

import argparse
import math

#: The longest duration an option accepts (30 days): longer is a typo, and timers refuse huge timeouts.
MAX_SECONDS = 30 * 24 * 3600.0
#: Square frame and I3D input sizes in pixels: I3D needs 32 or more; 1024 x 1024 x 3 per frame is plenty.
MIN_PIXELS, MAX_PIXELS = 32, 1024
#: Video frame sides (WIDTHxHEIGHT) in pixels.
MIN_VIDEO_SIDE, MAX_VIDEO_SIDE = 16, 4096
#: The slowest and fastest replay (a slower one looks frozen, a faster one floods the CPU), and the highest
#: frame rate an option accepts.
MIN_SPEED, MAX_SPEED = 0.01, 1000.0
MAX_FPS = 1000.0
#: Seeds of numpy's and torch's generators (unsigned 32 bits).
MAX_SEED = 2**32 - 1
#: The largest count an unbounded count option accepts.
MAX_COUNT = 1_000_000_000


def _shown(text: str) -> str:
    """The user's text, quoted, short and on one line (repr escapes newlines)."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _number(value: float) -> str:
    """2592000 rather than 2.592e+06, 0.5 rather than 0.500000."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class NumberType:
    """An argparse type: a finite int or float within bounds (each end open or closed)."""

    def __init__(self, kind: type, minimum: float, maximum: float, *, open_min: bool = False,
                 open_max: bool = False, name: str = "number") -> None:
        self.kind, self.minimum, self.maximum = kind, minimum, maximum
        self.open_min, self.open_max = open_min, open_max
        self.__name__ = name  # argparse names a type by it in its own messages

    def __repr__(self) -> str:
        return f"<option type {self.__name__}: {self.allowed}>"

    @property
    def allowed(self) -> str:
        """What the type accepts, in words, e.g. 'a number above 0 and at most 1000'."""
        what = "a whole number" if self.kind is int else "a number"
        if self.kind is int:
            first, last = self.minimum + self.open_min, self.maximum - self.open_max
            return f"{what} from {first} to {last}"
        low = f"above {_number(self.minimum)}" if self.open_min else f"at least {_number(self.minimum)}"
        if math.isinf(self.maximum):
            return f"a finite number {low}"
        high = f"below {_number(self.maximum)}" if self.open_max else f"at most {_number(self.maximum)}"
        return f"{what} {low} and {high}"

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not self._within(value):
            raise argparse.ArgumentTypeError(f"expected {self.allowed}, got {_shown(text)}")
        return value

    def _within(self, value: float) -> bool:
        above = value > self.minimum if self.open_min else value >= self.minimum
        below = value < self.maximum if self.open_max else value <= self.maximum
        return above and below


def int_range(minimum: int, maximum: int, name: str = "count") -> NumberType:
    """An argparse type: a whole number from `minimum` to `maximum`, both included."""
    return NumberType(int, minimum, maximum, name=name)


def float_range(minimum: float, maximum: float, *, open_min: bool = True, open_max: bool = False,
                name: str = "number") -> NumberType:
    """An argparse type: a finite number above `minimum` (or at least it: open_min=False), at most `maximum`."""
    return NumberType(float, minimum, maximum, open_min=open_min, open_max=open_max, name=name)


#: Counts: at least 1 (repetitions, epochs, batch sizes, top-k, ...).
positive_int = int_range(1, MAX_COUNT, "positive_int")
#: Counts and indices where 0 means something (a sample index, "0 = all").
non_negative_int = int_range(0, MAX_COUNT, "non_negative_int")
#: Any positive finite number.
positive_float = float_range(0.0, math.inf, name="positive_float")
#: Any finite number from 0.
non_negative_float = float_range(0.0, math.inf, open_min=False, name="non_negative_float")
#: Durations and intervals in seconds, above 0.
seconds = float_range(0.0, MAX_SECONDS, name="seconds")
#: Offsets, rests and countdowns in seconds, 0 included.
non_negative_seconds = float_range(0.0, MAX_SECONDS, open_min=False, name="non_negative_seconds")
#: Replay speeds (1: real time).
speed = float_range(MIN_SPEED, MAX_SPEED, open_min=False, name="speed")
#: Frame rates in frames per second.
fps = float_range(0.0, MAX_FPS, name="fps")
#: Fractions strictly between 0 and 1 (a train split, ...).
fraction = float_range(0.0, 1.0, open_max=True, name="fraction")
#: Square frame or I3D input sizes in pixels.
pixels = int_range(MIN_PIXELS, MAX_PIXELS, "pixels")
#: Random seeds.
seed = int_range(0, MAX_SEED, "seed")


_VIDEO_SIDE = int_range(MIN_VIDEO_SIDE, MAX_VIDEO_SIDE, "video_side")


def video_size(text: str) -> tuple[int, int]:
    """An argparse type: WIDTHxHEIGHT in pixels, each side from MIN_VIDEO_SIDE to MAX_VIDEO_SIDE."""
    parts = text.lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        width, height = int(_VIDEO_SIDE(parts[0])), int(_VIDEO_SIDE(parts[1]))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, each side from {MIN_VIDEO_SIDE} to "
                                         f"{MAX_VIDEO_SIDE} pixels, got {_shown(text)}") from None
    return width, height


def device(text: str) -> str:
    """An argparse type: a torch device name, `cpu`, `cuda`, `cuda:N` or `mps` (its spelling only; whether
    this machine has it is checked when the command starts, see `myosight.models.device`)."""
    name = text.strip().lower()
    kind, colon, index = name.partition(":")
    if name in ("cpu", "mps", "cuda") or (kind == "cuda" and colon and index.isdigit()):
        return name
    raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {_shown(text)}")
