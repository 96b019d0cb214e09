"""The clock of a live synthetic session: LSL time, optionally running faster than the wall clock.

A synthetic person and the calibration prompts that drive it run on one clock so that, at `speed` 4, four
seconds of recording (stamps, prompts, rests) pass in one second of wall time: tests and benchmarks go
through a whole calibration quickly, and the worker and the recorder, which only read stamps, see an
ordinary recording. Every process computes the clock from the same `origin` (an LSL time on this host)
and `speed`, so they agree without talking to each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pylsl


@dataclass(frozen=True)
class SourceClock:
    """now() = origin + speed * (LSL time - origin): LSL time itself at speed 1."""

    origin: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"a clock's speed must be positive, got {self.speed}")

    @classmethod
    def starting_now(cls, speed: float = 1.0) -> SourceClock:
        return cls(pylsl.local_clock(), speed)

    def now(self) -> float:
        return self.origin + self.speed * (pylsl.local_clock() - self.origin)

    def wait_until(self, time_s: float, stop: threading.Event) -> bool:
        """Sleep until this clock reads `time_s` (or `stop` is set: then False)."""
        remaining = (time_s - self.now()) / self.speed
        return not stop.wait(remaining) if remaining > 0 else not stop.is_set()
