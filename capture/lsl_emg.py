"""EMG from another program's LSL stream (another Myo driver, a different armband, a replay tool).

Design: relay, not subscription by predicate. `relay_emg_stream` republishes the found stream as
`myosight-emg-<arm>` (source "lsl"), so the worker has one way to find EMG whatever produced it, and the
checks (channel count, numeric format) happen once, here, with an error naming the stream. The relay keeps
each sample's own time stamp, mapped to this host's `pylsl.local_clock()` by LSL's clock-offset estimate,
so a stream from another computer lines up with the local camera. It costs one extra hop on loopback.

Streams published by a relay (source ids `myosight-lsl-...`) are never picked up again by
`find_emg_stream`, so an unfiltered search cannot relay a relay into itself.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import pylsl

try:  # pylsl >= 1.17 keeps its exceptions in pylsl.util; earlier releases export them from pylsl itself
    from pylsl.util import LostError
    from pylsl.util import TimeoutError as LslTimeoutError
except ImportError:  # pragma: no cover
    from pylsl import LostError
    from pylsl import TimeoutError as LslTimeoutError

from myosight.capture.streams import EMG_TYPE, emg_stream_info, open_outlet
from myosight.constants import CHANNELS_PER_ARM, MYO_NOMINAL_RATE_HZ
from myosight.errors import StreamError

log = logging.getLogger(__name__)

SOURCE = "lsl"
RELAY_PREFIX = "myosight-lsl-"


def _quote(value: str) -> str:
    """An XPath string literal for `value` (LSL predicates are XPath 1.0, which has no escapes)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise StreamError(f"stream property {value!r} contains both quote characters and cannot be searched for")


def emg_predicate(name: str | None = None, type: str | None = EMG_TYPE, source_id: str | None = None) -> str:
    """The LSL XPath predicate for the given properties, excluding myosight's own relays."""
    parts = [f"{key}={_quote(value)}" for key, value in (("name", name), ("type", type), ("source_id", source_id))
             if value is not None]
    parts.append(f"not(starts-with(source_id,'{RELAY_PREFIX}'))")
    return " and ".join(parts)


def describe(info: pylsl.StreamInfo) -> str:
    """How errors and logs name a stream: name, type, source id and host."""
    return (f"LSL stream {info.name()!r} (type {info.type()!r}, source_id {info.source_id()!r}, "
            f"host {info.hostname()!r})")


def find_emg_stream(name: str | None = None, type: str | None = EMG_TYPE, source_id: str | None = None,
                    channels: int = CHANNELS_PER_ARM, timeout: float = 5.0) -> pylsl.StreamInfo:
    """Resolve exactly one EMG stream by name / type / source id and check it has `channels` numeric channels.

    Raises StreamError when none is found within `timeout` seconds, when several match (name them: one
    arm per stream), or when the match has the wrong channel count or a string format.
    """
    predicate = emg_predicate(name, type, source_id)
    found = pylsl.resolve_bypred(predicate, 1, timeout)
    if not found:
        raise StreamError(f"no LSL stream matching [{predicate}] found within {timeout:g} s "
                          "(is the other program running, on this network?)")
    if len(found) > 1:
        listed = "; ".join(describe(info) for info in found)
        raise StreamError(f"{len(found)} LSL streams match [{predicate}]: {listed}; "
                          "pass --name or --source-id to choose one")
    info = found[0]
    if info.channel_count() != channels:
        raise StreamError(f"{describe(info)} has {info.channel_count()} channels, expected {channels} "
                          "(one armband per stream)")
    if info.channel_format() == pylsl.cf_string:
        raise StreamError(f"{describe(info)} carries strings, not EMG samples")
    return info


@dataclass
class RelayStats:
    chunks: int = 0
    samples: int = 0


class EmgRelay:
    """Republishes one found EMG stream under the project's conventions for `arm`.

    `open()` connects the inlet and creates the outlet (so a caller can subscribe before data flows);
    `run(stop_event)` forwards until the event is set. `source` changes only the source id (tests use it to
    stay apart from a real relay on the same network).
    """

    def __init__(self, info: pylsl.StreamInfo, arm: str, source: str = SOURCE, open_timeout: float = 5.0) -> None:
        self.info = info
        self.arm = arm
        self.source = source
        self.open_timeout = open_timeout
        self.stats = RelayStats()
        self.inlet: pylsl.StreamInlet | None = None
        self.outlet: pylsl.StreamOutlet | None = None

    def open(self) -> None:
        if self.outlet is not None:
            return
        rate = self.info.nominal_srate() or MYO_NOMINAL_RATE_HZ
        # Clock sync only: each sample keeps its own stamp (no dejitter), moved onto this host's clock.
        self.inlet = pylsl.StreamInlet(self.info, max_buflen=10, processing_flags=pylsl.proc_clocksync)
        try:
            self.inlet.open_stream(self.open_timeout)
            # Cache the full stream info now: liblsl's first pull would otherwise fetch it without a time
            # limit and hang (ignoring the stop event) if the other program had quit meanwhile.
            self.inlet.info(self.open_timeout)
        except LslTimeoutError as error:
            raise StreamError(f"{describe(self.info)} did not accept a connection within {self.open_timeout:g} s") \
                from error
        relayed = f"LSL {self.info.name()} on {self.info.hostname()}"
        self.outlet = open_outlet(emg_stream_info(self.arm, self.source, rate, device=relayed))
        log.info("relaying %s as myosight-emg-%s", describe(self.info), self.arm)

    def run(self, stop_event: threading.Event, poll_s: float = 0.1) -> RelayStats:
        """Forward chunks until `stop_event` is set; returns the counts."""
        self.open()
        assert self.inlet is not None and self.outlet is not None
        try:
            while not stop_event.is_set():
                try:
                    # Block for the first sample (returns as soon as one is there), then take what else has
                    # arrived: low latency with calls every pylsl >= 1.16 has.
                    first, first_stamp = self.inlet.pull_sample(timeout=poll_s)
                    if first is None:
                        continue
                    rest, rest_stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=512)
                except LostError as error:
                    raise StreamError(f"{describe(self.info)} was lost and cannot be recovered "
                                      "(it has no source_id)") from error
                samples = np.asarray([first, *rest], dtype=np.float32)
                stamps = [first_stamp, *rest_stamps]
                self.outlet.push_chunk(samples, stamps)
                self.stats.chunks += 1
                self.stats.samples += len(stamps)
        finally:
            self.inlet.close_stream()
        return self.stats


def relay_emg_stream(info: pylsl.StreamInfo, arm: str, stop_event: threading.Event) -> RelayStats:
    """Republish `info` as `myosight-emg-<arm>` until `stop_event` is set."""
    return EmgRelay(info, arm).run(stop_event)
