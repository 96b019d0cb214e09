"""Which streams a consumer takes: by role, from one program or several, found on the network.

A myosight source publishes up to four streams, one per **role** (EMG of each arm, video, labels), each with the
source id `myosight-<source>-<role>` (capture/streams.py). A consumer (the worker, `record`, the viewer) needs
streams by role, not by program: the armbands may stream from `myosight myo` (source "myo"), the camera from
`myosight camera` (source "camera"), on this machine or another, and the labels from the viewer.

A `StreamChoice` says, per role, which source gives it: a name, or None for "whichever myosight source streams
it". `pick_streams` applies a choice to the streams in reach: a role that several sources stream is refused with
their list (never a silent guess); two programs under one source name are refused when the inlets open.
`myosight streams` lists what is in reach, as `stream_rows` describes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pylsl

from myosight.capture.choice import ROLES, StreamChoice, parse_source_id
from myosight.capture.streams import stream_device
from myosight.errors import StreamError

log = logging.getLogger(__name__)


def _source_list(infos: Iterable[pylsl.StreamInfo]) -> str:
    return ", ".join(sorted({f"'{parse_source_id(i.source_id())[0]}' on {i.hostname()}"  # type: ignore[index]
                             for i in infos}))


_warned: set[str] = set()


def _warn_once(text: str) -> None:
    """A warning a consumer looking again and again (every resolve wave) gives once."""
    if text not in _warned:
        _warned.add(text)
        log.warning("%s", text)


def pick_streams(choice: StreamChoice, infos: Iterable[pylsl.StreamInfo],
                 roles: Sequence[str] = ROLES, optional: Sequence[str] = ()) -> dict[str, pylsl.StreamInfo]:
    """The stream of each role in `roles` that `choice` takes among `infos` (roles nobody streams are absent).

    StreamError when a role is ambiguous: the choice leaves it to the network and several sources stream it;
    a role in `optional` (one the consumer can do without, such as a worker's labels) is left out instead.
    (Two programs under one source id, two sources started under one name, are the inlets' check:
    `capture.inlets.refuse_shared_source`.)"""
    by_role: dict[str, dict[str, dict[str, pylsl.StreamInfo]]] = {}  # role -> source id -> uid -> info
    for info in infos:
        parsed = parse_source_id(info.source_id())
        if parsed is None or parsed[1] not in roles:
            continue
        source, role = parsed
        if choice.source_of(role) not in (None, source):
            continue
        by_role.setdefault(role, {}).setdefault(info.source_id(), {})[info.uid()] = info
    picked: dict[str, pylsl.StreamInfo] = {}
    for role in roles:
        candidates = by_role.get(role, {})
        if len(candidates) > 1 and role in optional:
            _warn_once(f"more than one source streams the {role} role "
                       f"({_source_list(i for streams in candidates.values() for i in streams.values())}); going "
                       "without it (name the one to take)")
            continue
        if len(candidates) > 1:
            option = {"emg-left": "--emg-left (or --emg)", "emg-right": "--emg-right (or --emg)"}.get(role, f"--{role}")
            every = [info for streams in candidates.values() for info in streams.values()]
            raise StreamError(f"more than one source streams the {role} role: {_source_list(every)}; name the one to "
                              f"use with {option} or --source (myosight streams lists them)")
        for streams in candidates.values():  # two programs under one source id: refuse_shared_source says so
            picked[role] = next(iter(streams.values()))
    return picked


def find_chosen_streams(choice: StreamChoice, roles: Sequence[str], first_timeout_s: float, *, grace_s: float = 1.0,
                        wave_s: float = 0.1, stop=None, optional: Sequence[str] = ()) -> dict[str, pylsl.StreamInfo]:
    """Wait up to `first_timeout_s` for a first stream the choice takes, then `grace_s` for the others (a source
    announces its streams together; separate programs may come up a moment apart); then pick them by role.
    Returns early once every role has a stream."""
    deadline = time.monotonic() + first_timeout_s
    found: dict[str, pylsl.StreamInfo] = {}  # uid -> info
    settle_at: float | None = None
    predicate = choice.predicate()
    while True:
        for info in pylsl.resolve_bypred(predicate, 0, wave_s):
            found.setdefault(info.uid(), info)
        picked = pick_streams(choice, found.values(), roles, optional)
        now = time.monotonic()
        if picked and settle_at is None:
            settle_at = now + grace_s
        if len(picked) == len(roles):
            return picked
        if (settle_at is not None and now >= settle_at) or now >= deadline or (stop is not None and stop.is_set()):
            return picked


@dataclass(frozen=True)
class StreamRow:
    """One stream in reach, as `myosight streams` lists it."""

    role: str  # a myosight role, or "-" for another program's stream
    source: str  # the myosight source name, or "-"
    name: str
    type: str
    rate_hz: float  # 0: irregular
    channels: int
    format: str
    host: str
    source_id: str
    device: str = "-"  # what streams an arm's EMG (the armband, the relayed stream), as its description says


FORMATS = {pylsl.cf_float32: "float32", pylsl.cf_double64: "double64", pylsl.cf_string: "string",
           pylsl.cf_int32: "int32", pylsl.cf_int16: "int16", pylsl.cf_int8: "int8", pylsl.cf_int64: "int64"}


def stream_rows(infos: Iterable[pylsl.StreamInfo], devices: dict[str, str] | None = None) -> list[StreamRow]:
    """The streams, myosight's first (by source, then role), then the others by name; `devices` by stream uid."""
    rows = []
    for info in infos:
        parsed = parse_source_id(info.source_id())
        source, role = parsed if parsed is not None else ("-", "-")
        rows.append(StreamRow(role, source, info.name(), info.type(), info.nominal_srate(), info.channel_count(),
                              FORMATS.get(info.channel_format(), str(info.channel_format())), info.hostname(),
                              info.source_id(), (devices or {}).get(info.uid(), "-")))
    return sorted(rows, key=lambda r: (r.role == "-", r.source, ROLES.index(r.role) if r.role in ROLES else 9,
                                       r.name, r.host))


def streams_in_reach(wait_s: float = 1.0) -> list[StreamRow]:
    """Every LSL stream that answers within `wait_s` (LabRecorder's list), with the device of each arm's EMG."""
    infos = pylsl.resolve_streams(wait_s)
    return stream_rows(infos, emg_devices(infos, wait_s))


def emg_devices(infos: Iterable[pylsl.StreamInfo], timeout_s: float) -> dict[str, str]:
    """The device of each myosight EMG stream, by uid. A resolved stream carries no description: it is asked of
    the stream itself (a stream that does not answer within `timeout_s` is left out)."""
    devices = {}
    for info in infos:
        parsed = parse_source_id(info.source_id())
        if parsed is None or not parsed[1].startswith("emg-"):
            continue
        inlet = pylsl.StreamInlet(info)
        try:
            device = stream_device(inlet.info(timeout_s))
        except RuntimeError:  # pylsl's TimeoutError (its module moved between versions) is a RuntimeError
            device = None
        finally:
            inlet.close_stream()
        if device:
            devices[info.uid()] = device
    return devices
