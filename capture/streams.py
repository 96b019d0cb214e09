"""The LSL stream conventions every myosight source follows, and the outlets that publish them.

- sEMG: one stream per arm, type "EMG", 8 float32 channels (Myo units, -128..127), nominal rate 200 Hz
  (the Myo's nominal rate; the worker measures the real one), name `myosight-emg-<arm>`.
- Video: type "Video", one sample per frame: the frame as the model sees it (RGB, `size` x `size`, uint8
  bytes carried in an int8 channel array, row-major H x W x 3), nominal rate = the camera's fps, name
  `myosight-video`. The description carries width, height and the pixel layout.
- Labels: type "Markers", one string channel, irregular rate, name `myosight-labels`; each sample is a
  marker (`parse_marker`): "<activity>|Start" or "<activity>|Stop", optionally followed by "|<validity>"
  (Good, Maybe or Bad, as the ActionSense recorder rates a press; default Good) and "|<notes>"; or
  "<activity>|Discard[|<notes>]": the last finished repetition of that activity was redone, so its
  labels become Bad (the calibration's redo).

Timestamps are `pylsl.local_clock()` seconds of the publishing host; the worker corrects clock offsets.
Every stream has a stable `source_id` (`myosight-<source>-<kind>`) so an inlet can find it again when the
source restarts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pylsl

from myosight.constants import ARMS, CHANNELS_PER_ARM, MYO_NOMINAL_RATE_HZ
from myosight.errors import StreamError

log = logging.getLogger(__name__)

EMG_TYPE = "EMG"
VIDEO_TYPE = "Video"
MARKER_TYPE = "Markers"
VIDEO_LAYOUT = "HWC-RGB-uint8"


MARKER_KINDS = ("Start", "Stop", "Discard")
VALIDITIES = ("Good", "Maybe", "Bad")


@dataclass(frozen=True)
class Marker:
    """One label marker: what happened to which activity, how good the press was, and free notes."""

    activity: str
    kind: Literal["Start", "Stop", "Discard"]
    validity: str = "Good"
    notes: str = ""

    @property
    def text(self) -> str:
        if self.kind == "Discard":
            return "|".join([self.activity, self.kind, *([self.notes] if self.notes else [])])
        tail = [self.validity, self.notes] if self.notes else [self.validity] if self.validity != "Good" else []
        return "|".join([self.activity, self.kind, *tail])


def parse_marker(text: str) -> Marker | None:
    """The marker a label sample holds (see the module docstring), or None when it is not one."""
    parts = str(text).split("|")
    if len(parts) < 2 or not parts[0] or parts[1] not in MARKER_KINDS:
        return None
    if parts[1] == "Discard":
        return Marker(parts[0], "Discard", "Bad", "|".join(parts[2:])) if len(parts) <= 3 else None
    if len(parts) > 4:
        return None
    validity = parts[2] if len(parts) > 2 and parts[2] else "Good"
    if validity not in VALIDITIES:
        return None
    return Marker(parts[0], parts[1], validity, parts[3] if len(parts) > 3 else "")  # type: ignore[arg-type]


@dataclass(frozen=True)
class StreamNames:
    """Names and source ids of one source's streams."""

    source: str  # e.g. "synthetic", "replay", "myo", "camera"

    def source_id(self, kind: str) -> str:
        return f"myosight-{self.source}-{kind}"


def emg_stream_info(arm: str, source: str, rate_hz: float = MYO_NOMINAL_RATE_HZ, *,
                    device: str | None = None) -> pylsl.StreamInfo:
    """An arm's EMG stream; `device` says in words what streams it (which armband, which relayed stream), so
    that every consumer can show which is which."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, not {arm!r}")
    info = pylsl.StreamInfo(f"myosight-emg-{arm}", EMG_TYPE, CHANNELS_PER_ARM, rate_hz, pylsl.cf_float32,
                            StreamNames(source).source_id(f"emg-{arm}"))
    desc = info.desc()
    desc.append_child_value("arm", arm)
    if device:
        desc.append_child_value("device", device)
    desc.append_child_value("units", "myo")
    channels = desc.append_child("channels")
    for index in range(CHANNELS_PER_ARM):
        channel = channels.append_child("channel")
        channel.append_child_value("label", f"{arm}-{index + 1}")
        channel.append_child_value("type", "EMG")
    return info


def stream_device(info: pylsl.StreamInfo) -> str | None:
    """What a stream's description says streams it (see `emg_stream_info`), None where it does not say."""
    return info.desc().child_value("device") or None


def video_stream_info(size: int, fps: float, source: str) -> pylsl.StreamInfo:
    info = pylsl.StreamInfo("myosight-video", VIDEO_TYPE, size * size * 3, fps, pylsl.cf_int8,
                            StreamNames(source).source_id("video"))
    desc = info.desc()
    desc.append_child_value("width", str(size))
    desc.append_child_value("height", str(size))
    desc.append_child_value("layout", VIDEO_LAYOUT)
    return info


def frame_shape(info: pylsl.StreamInfo) -> tuple[int, int, int]:
    """(height, width, 3) of a video stream's frames, from its description (width, height), checked against
    its channel count; raises StreamError naming the stream when the description does not say or disagrees."""
    desc = info.desc()
    try:
        width, height = int(desc.child_value("width")), int(desc.child_value("height"))
    except ValueError:
        raise StreamError(f"video stream '{info.name()}' ({info.source_id()}) does not give its frame width and "
                          "height in its description (myosight video streams do)") from None
    if width <= 0 or height <= 0 or width * height * 3 != info.channel_count():
        raise StreamError(f"video stream '{info.name()}' ({info.source_id()}): {width} x {height} RGB frames do not "
                          f"fill its {info.channel_count()} channels")
    return height, width, 3


def marker_stream_info(source: str) -> pylsl.StreamInfo:
    return pylsl.StreamInfo("myosight-labels", MARKER_TYPE, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                            StreamNames(source).source_id("labels"))


def push_frame(outlet: pylsl.StreamOutlet, frame: np.ndarray, stamp: float) -> None:
    """Publish one video frame (any uint8/int8 array of the stream's size) with its timestamp.

    Sent as a one-row chunk: pylsl's `push_sample` copies a large sample element by element (about 18 ms
    for a 224 x 224 x 3 frame, half a core at 30 fps), its chunk path hands the buffer over (0.05 ms).
    """
    outlet.push_chunk(np.ascontiguousarray(frame).reshape(1, -1).view(np.int8), stamp)


def open_outlet(info: pylsl.StreamInfo, chunk_size: int = 0, max_buffered_s: int = 10) -> pylsl.StreamOutlet:
    """An outlet that buffers at most `max_buffered_s` seconds for a slow inlet (memory stays bounded)."""
    return pylsl.StreamOutlet(info, chunk_size, max_buffered_s)


SOURCE_STREAM_KINDS = ("emg-left", "emg-right", "video", "labels")


def source_predicate(source: str) -> str:
    """The LSL query for every stream a myosight source named `source` publishes (exact source ids, so that
    a source named `a` does not match one named `a-b`)."""
    names = StreamNames(source)
    return " or ".join(f"source_id='{names.source_id(kind)}'" for kind in SOURCE_STREAM_KINDS)


def warn_if_source_name_taken(source: str, timeout_s: float = 0.5) -> list[str]:
    """Warn when streams of a source named `source` are already on the network, before publishing under that
    name: a worker would mix the two sessions (and refuses to start on them). Returns the source ids found.
    Costs `timeout_s` when the name is free."""
    found = pylsl.resolve_bypred(source_predicate(source), 1, timeout_s)
    taken = sorted({info.source_id() for info in found})
    if taken:
        hosts = sorted({info.hostname() for info in found})
        log.warning("the source name '%s' is already used on the network (%s, on %s): a worker on it would mix "
                    "two sessions; give this source its own name (--source)", source, ", ".join(taken),
                    ", ".join(hosts))
    return taken


class OpenActivityAnnouncer:
    """Tells a label consumer that connects after an activity started which activity is in progress.

    LSL delivers a marker only to the inlets connected when it is pushed: a worker that connects seconds after
    its source started (it loads its model first) would miss the first Start, and every prediction until the
    next action would carry no true label. So when the outlet goes from no consumer to one, the Start marker
    of the open activity is pushed again with its own stamp. LSL says whether an outlet has consumers, not how
    many: a consumer that connects while another is connected is not told.
    """

    CHECK_EVERY_S = 0.05

    def __init__(self, outlet: pylsl.StreamOutlet) -> None:
        self.outlet = outlet
        self.open: tuple[str, float] | None = None  # the Start marker of the activity in progress, its stamp
        self._had_consumers = False
        self._next_check = 0.0

    def push(self, text: str, stamp: float) -> None:
        """Push a marker on the outlet, and follow the activity it opens or closes. A consumer connected now
        receives it, so it is not told again."""
        self._had_consumers = self._had_consumers or self.outlet.have_consumers()
        self.outlet.push_sample([text], stamp)
        marker = parse_marker(text)
        if marker is not None and marker.kind == "Start":
            self.open = (text, stamp)
        elif marker is not None and marker.kind == "Stop":
            self.open = None

    def check(self) -> bool:
        """Announce the open activity again if a first consumer connected since the last check (at most every
        `CHECK_EVERY_S`); True when it did."""
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.CHECK_EVERY_S
        had, self._had_consumers = self._had_consumers, self.outlet.have_consumers()
        if not self._had_consumers or had or self.open is None:
            return False
        text, stamp = self.open
        self.outlet.push_sample([text], stamp)
        return True
