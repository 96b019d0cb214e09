"""LSL inlets of the worker: found by source id, pulled in chunks, clock-corrected, watched for loss.

An inlet is resolved by its stable `source_id` (see capture/streams.py), so when a source dies and comes
back, liblsl's recovery reconnects it. Timestamps are moved to this host's clock by LSL's clock-offset
estimate (`time_correction`), rounded to whole milliseconds: on one host the estimate is zero up to tens
of microseconds of noise, which rounding removes, so live timestamps equal the recorded ones of a replay
and live features equal offline ones exactly; across hosts a millisecond is far below the Myo's own
delivery jitter. No dejittering, for the same reason. Loss is declared when no sample arrived for
`lost_after_s` seconds.

liblsl can abort if an inlet is destroyed while it recovers: inlets are closed explicitly, in the order
they were opened, before their outlets go away (see Worker.close).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pylsl

from myosight.capture.streams import VIDEO_TYPE, frame_shape, stream_device
from myosight.errors import StreamError

log = logging.getLogger(__name__)

_FORMATS: dict[int, type[np.generic]] = {
    pylsl.cf_float32: np.float32, pylsl.cf_double64: np.float64, pylsl.cf_int8: np.int8,
    pylsl.cf_int16: np.int16, pylsl.cf_int32: np.int32, pylsl.cf_int64: np.int64}


@dataclass
class InletHealth:
    name: str
    samples: int = 0
    chunks: int = 0
    lost: bool = False
    lost_events: int = 0
    recovered_events: int = 0
    last_arrival: float | None = None  # time.monotonic()
    clock_offset_s: float = 0.0
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, samples), last 5 s

    def arrival_rate_hz(self) -> float:
        if len(self.arrivals) < 2:
            return 0.0
        span = self.arrivals[-1][0] - self.arrivals[0][0]
        return sum(n for _, n in self.arrivals[1:]) / span if span > 0 else 0.0


def resolve(source_id: str, timeout_s: float) -> pylsl.StreamInfo:
    """Find the stream with this source id on the network, or raise StreamError."""
    found = pylsl.resolve_bypred(f"source_id='{source_id}'", 1, timeout_s)
    if not found:
        raise StreamError(f"no LSL stream with source_id '{source_id}' found within {timeout_s:g} s")
    return found[0]


def refuse_shared_source(source_ids: list[str], timeout_s: float = 0.5) -> None:
    """Raise StreamError when more than one stream on the network has one of these source ids: two sources
    publish under one name (two replays started with the same --source, say), and a worker would take one arm
    from each session. Waits `timeout_s` to hear from every stream."""
    if not source_ids:
        return
    predicate = " or ".join(f"source_id='{source_id}'" for source_id in source_ids)
    found = pylsl.resolve_bypred(predicate, 0, timeout_s)
    streams: dict[str, dict[str, str]] = {}  # source id -> uid -> host
    for info in found:
        if info.source_id() in source_ids:
            streams.setdefault(info.source_id(), {})[info.uid()] = info.hostname()
    shared = {source_id: uids for source_id, uids in streams.items() if len(uids) > 1}
    if shared:
        described = "; ".join(f"{source_id} from {len(uids)} streams ({_where(uids)})"
                              for source_id, uids in sorted(shared.items()))
        raise StreamError(f"more than one source publishes under one name: {described}; the worker would mix their "
                          "sessions. Stop one, or give each source its own name (--source)")


def _where(uids: dict[str, str]) -> str:
    return ", ".join(f"uid {uid} on {host}" for uid, host in sorted(uids.items()))


class LiveInlet:
    """One stream, pulled without blocking into numpy arrays.

    The inlet reads its shape from the stream's info: `channels`, and `sample_shape`, the shape of one
    sample ((height, width, 3) for a video stream, from its description; (channels,) otherwise, and with
    `frames=False`, for a stream taken as it comes).
    """

    def __init__(self, info: pylsl.StreamInfo, *, channels: int | None = None, max_buffer_s: int = 30,
                 max_chunk: int = 1024, lost_after_s: float = 1.0, frames: bool = True) -> None:
        self.name = info.name()
        self.source_id = info.source_id()
        if channels is not None and info.channel_count() != channels:
            raise StreamError(
                f"stream '{self.name}' ({self.source_id}) has {info.channel_count()} channels, expected {channels}"
            )
        self.is_text = info.channel_format() == pylsl.cf_string
        if self.is_text and channels is not None:  # a caller that counts channels wants numbers (EMG)
            raise StreamError(f"stream '{self.name}' ({self.source_id}) carries text, not numeric samples: it is "
                              "not an EMG stream")
        dtype = np.int8 if self.is_text else _FORMATS.get(info.channel_format())
        if dtype is None:
            raise StreamError(f"stream '{self.name}': unsupported channel format {info.channel_format()}")
        self.dtype: type[np.generic] = dtype
        self.channels = info.channel_count()
        self.nominal_rate = info.nominal_srate()
        self.lost_after_s = lost_after_s
        self._inlet = pylsl.StreamInlet(info, max_buflen=max_buffer_s, recover=True)
        self._inlet.open_stream(timeout=5.0)
        # The full info (a resolved one lacks the description); fetched now also because a first pull after the
        # outlet closed can otherwise hang in recovery.
        full_info = self._inlet.info(timeout=5.0)
        self.info_xml = full_info.as_xml()  # the stream's full header, as a recording file keeps it
        self.device = stream_device(full_info)  # which armband (or relayed stream) it is, where it says
        try:
            is_video = frames and full_info.type() == VIDEO_TYPE
            self.sample_shape: tuple[int, ...] = frame_shape(full_info) if is_video else (self.channels,)
        except StreamError:
            self.close()
            raise
        self._buffer = np.empty((0 if self.is_text else max_chunk, self.channels), dtype=dtype)
        self._stamps = np.empty(max_chunk, dtype=np.float64)
        self.health = InletHealth(self.name)
        self._opened = time.monotonic()
        self._next_offset_check = 0.0
        #: every clock-offset measurement as (this host's LSL time, offset): an XDF file keeps them all
        self.offset_measurements: list[tuple[float, float]] = []
        #: the offset added to the stamps of the last pull (an XDF file stores the stamps without it)
        self.applied_offset_s = 0.0
        self._measure_offset(2.0)
        self._next_offset_check = time.monotonic() + 5.0

    def _measure_offset(self, timeout_s: float) -> None:
        with contextlib.suppress(RuntimeError):  # pylsl's TimeoutError is a RuntimeError
            offset = float(self._inlet.time_correction(timeout=timeout_s))
            self.health.clock_offset_s = offset
            self.offset_measurements.append((pylsl.local_clock(), offset))
            del self.offset_measurements[:-1000]  # a reader takes them every flush; never unbounded

    def pull(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything that arrived since the last pull: (timestamps (n,), samples (n, channels))."""
        parts_t, parts_x = [], []
        while True:
            _, stamps = self._inlet.pull_chunk(timeout=0.0, max_samples=len(self._buffer), dest_obj=self._buffer)
            n = len(stamps)
            if n == 0:
                break
            parts_t.append(np.asarray(stamps, dtype=np.float64))
            parts_x.append(self._buffer[:n].copy())
            if n < len(self._buffer):
                break
        now = time.monotonic()
        self._update_health(now, sum(len(t) for t in parts_t))
        self.applied_offset_s = self.offset_s
        if not parts_t:
            return np.zeros(0), np.zeros((0, self.channels), self._buffer.dtype)
        return np.concatenate(parts_t) + self.applied_offset_s, np.concatenate(parts_x)

    def pull_into(self, sink: Callable[[np.ndarray, np.ndarray], None], max_samples: int | None = None) -> int:
        """Hand everything that arrived since the last pull (or the first `max_samples` of it, rounded up to
        whole chunks) to `sink(timestamps, samples)`, chunk by chunk, without copying: `samples` is a view of
        the inlet's buffer, valid only during the call (a ring buffer's push copies it into place). Returns
        the number of samples."""
        total = 0
        while max_samples is None or total < max_samples:
            _, stamps = self._inlet.pull_chunk(timeout=0.0, max_samples=len(self._buffer), dest_obj=self._buffer)
            n = len(stamps)
            if n == 0:
                break
            sink(np.asarray(stamps, dtype=np.float64) + self.offset_s, self._buffer[:n])
            total += n
            if n < len(self._buffer):
                break
        self._update_health(time.monotonic(), total)
        return total

    @property
    def offset_s(self) -> float:
        """The clock offset applied to this stream's timestamps (LSL's estimate, whole milliseconds)."""
        return round(self.health.clock_offset_s, 3)

    def pull_markers(self) -> tuple[np.ndarray, list]:
        """Everything that arrived on a text (marker) stream: (timestamps, [[text], ...])."""
        samples, stamps = self._inlet.pull_chunk(timeout=0.0)
        self._update_health(time.monotonic(), len(stamps))
        self.applied_offset_s = self.offset_s
        return np.asarray(stamps, dtype=np.float64) + self.applied_offset_s, list(samples)

    def _update_health(self, now: float, n: int) -> None:
        health = self.health
        if n:
            health.samples += n
            health.chunks += 1
            health.last_arrival = now
            health.arrivals.append((now, n))
            if health.lost:
                health.lost = False
                health.recovered_events += 1
                log.info("stream '%s' is back", self.name)
        cutoff = now - 5.0
        while health.arrivals and health.arrivals[0][0] < cutoff:
            health.arrivals.pop(0)
        reference = health.last_arrival if health.last_arrival is not None else self._opened
        if not health.lost and now - reference > self.lost_after_s:
            health.lost = True
            health.lost_events += 1
            log.warning("stream '%s' lost: no data for %.1f s", self.name, now - reference)
        if now >= self._next_offset_check:
            self._next_offset_check = now + 5.0
            self._measure_offset(0.2)

    def close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            del self._inlet
            self._inlet = None
