"""What the recorder makes of each LSL stream: rows for the ActionSense-layout session, held until the next flush.

A track pulls its inlet, converts LSL stamps (already moved to this host's clock by the inlet) to epoch
seconds with the recorder's one mapping, and keeps the rows in memory until the recorder writes them all
at once (see capture/recorder.py for why). Each track also says how many bytes its pending rows can add
to the file, so the recorder can make sure the disk has room before it writes anything.

A track recorded into an XDF file too hands what it pulled, as it came, to its XDF stream (`xdf`): one
inlet feeds both files. `RawTrack` records any other LSL stream (an IMU, another program's markers, a second
camera) as it came, into its own HDF5 group and/or the XDF file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from myosight.capture.inlets import LiveInlet
from myosight.capture.session_video import JPEG_DTYPE, JPEG_GROUP, LiveVideo, encode_jpeg
from myosight.capture.streams import parse_marker
from myosight.data.layout import EMG_GROUPS, VIDEO_TIMESTAMP_GROUP, SessionWriter

if TYPE_CHECKING:
    from myosight.capture.recorder_xdf import XdfStreamOut

log = logging.getLogger(__name__)

SOURCE_LABEL_GROUP = "myosight-recorder/source-labels"
CHUNK_ROWS = 1024  # SessionWriter's chunk length: n new rows take at most n rows + one chunk more
METADATA_MARGIN = 256 << 10  # object headers, B-tree nodes, heaps touched by one flush: far less than this


@dataclass
class Pending:
    """Rows of one group waiting for the next flush."""

    times: list[np.ndarray] = field(default_factory=list)
    data: list[np.ndarray] = field(default_factory=list)

    def take(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.times:
            return None
        times, data = np.concatenate(self.times), np.concatenate(self.data)
        self.times, self.data = [], []
        return times, data

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.times)


class Track:
    """One stream: its inlet, its groups in the file, and its rows not yet written."""

    role = ""  # the recorder's name for it: emg-left, emg-right, video, labels, activities; a stream's own name
    key = ""  # the stream's source id (its uid when it has none)

    def __init__(self, inlet: LiveInlet, lsl_to_epoch_s: float) -> None:
        self.inlet, self.lsl_to_epoch_s = inlet, lsl_to_epoch_s
        self.created = False
        self.written = 0
        self.last_epoch: float | None = None
        self.xdf: XdfStreamOut | None = None  # the stream of the XDF file, when one is recorded

    def _tap(self, stamps: np.ndarray, samples: np.ndarray | list) -> None:
        """Hand what was pulled to the XDF file, as it came."""
        if self.xdf is not None:
            self.xdf.add(stamps, samples)

    def _epoch(self, stamps: np.ndarray) -> np.ndarray:
        times = np.asarray(stamps, np.float64) + self.lsl_to_epoch_s
        if len(times):
            self.last_epoch = float(times[-1])
        return times

    def pull(self) -> int:
        raise NotImplementedError

    def pending_bytes(self) -> int:
        raise NotImplementedError

    def write(self, writer: SessionWriter) -> None:
        raise NotImplementedError

    @property
    def source_id(self) -> str:
        return self.inlet.source_id


class EmgTrack(Track):
    """Myo EMG as `myo-<arm>/emg` (int32 in the Myo's -128..127 units, as the ActionSense recorder stores it)."""


    def __init__(self, inlet: LiveInlet, lsl_to_epoch_s: float, arm: str) -> None:
        super().__init__(inlet, lsl_to_epoch_s)
        self.arm, self.group = arm, EMG_GROUPS[arm]
        self.pending = Pending()
        self.rounded = 0  # values that were not whole Myo units

    def pull(self) -> int:
        stamps, samples = self.inlet.pull()
        self._tap(stamps, samples)
        if len(stamps):
            whole = np.rint(samples)
            self.rounded += int(np.count_nonzero(whole != samples))
            self.pending.times.append(self._epoch(stamps))
            self.pending.data.append(whole.astype(np.int32))
        return len(stamps)

    def pending_bytes(self) -> int:
        return (self.pending.rows + CHUNK_ROWS) * (8 * 4 + 8 + 26)

    def write(self, writer: SessionWriter) -> None:
        if not self.created:
            writer.add_emg_stream(self.arm)
            self.created = True
        rows = self.pending.take()
        if rows is not None:
            writer.append(self.group, rows[1], rows[0])
            self.written += len(rows[0])


class VideoTrack(Track):
    """Frames as JPEG rows of `eye-tracking-video-world/frame_jpeg` plus their times in the frame-timestamp
    stream (row i = frame i), and into the live mp4 that a clean stop renames into place."""


    def __init__(self, inlet: LiveInlet, lsl_to_epoch_s: float, live: LiveVideo, width: int, height: int) -> None:
        super().__init__(inlet, lsl_to_epoch_s)
        self.live, self.width, self.height = live, width, height
        self.pending = Pending()
        self.jpeg_bytes = 0

    def pull(self) -> int:
        stamps, frames = self.inlet.pull()
        self._tap(stamps, frames)
        if not len(stamps):
            return 0
        encoded = np.empty(len(stamps), dtype=object)
        for i, flat in enumerate(frames):
            bgr = np.ascontiguousarray(flat.view(np.uint8).reshape(self.height, self.width, 3)[:, :, ::-1])
            encoded[i] = encode_jpeg(bgr)
            self.jpeg_bytes += len(encoded[i])
            self.live.write(bgr)
        self.pending.times.append(self._epoch(stamps))
        self.pending.data.append(encoded)
        return len(stamps)

    def pending_bytes(self) -> int:
        payload = self.jpeg_bytes
        return 2 * payload + (self.pending.rows + CHUNK_ROWS) * (16 + 2 * (8 + 8 + 26))

    def write(self, writer: SessionWriter) -> None:
        if not self.created:
            writer.add_video_timestamp_stream()
            writer.add_stream(JPEG_GROUP, (), JPEG_DTYPE, attrs={
                "Description": "Each world-camera frame as a JPEG file (row i = frame i); the mp4 beside the "
                "session is made from these", "Pixel layout": "BGR", "Width": str(self.width),
                "Height": str(self.height)})
            self.created = True
        rows = self.pending.take()
        if rows is not None:
            times, jpegs = rows
            writer.append(VIDEO_TIMESTAMP_GROUP, times.reshape(-1, 1), times)
            writer.append(JPEG_GROUP, jpegs, times)
            self.written += len(times)
        self.jpeg_bytes = 0


class LabelTrack(Track):
    """Label markers: the activity rows (`as_activities`) or, for a source's own labels while another stream
    gives the activities, the marker texts as they came."""

    def __init__(self, inlet: LiveInlet, lsl_to_epoch_s: float, *, as_activities: bool,
                 classes: list[str]) -> None:
        super().__init__(inlet, lsl_to_epoch_s)
        self.as_activities, self.classes = as_activities, classes
        self.rows = ActivityRows() if as_activities else None
        self.pending = Pending()
        self.ignored = 0
        self.discards: list[int] = []  # rows (counted over the whole stream) to rewrite as Bad at the next write

    def pull(self) -> int:
        stamps, markers = self.inlet.pull_markers()
        self._tap(stamps, markers)
        for epoch, marker in zip(self._epoch(stamps), markers, strict=True):
            text = str(marker[0] if isinstance(marker, list | tuple) else marker)
            if self.rows is None:
                self.pending.times.append(np.array([epoch]))
                self.pending.data.append(np.array([[text.encode()[:500]]], dtype="S500"))
                continue
            rows = self.rows.push(text, float(epoch))
            self.ignored += rows is None
            self._queue(rows or [])
        return len(stamps)

    def close_open(self, epoch: float) -> None:
        """End the activity still open when the recording stops (its Stop is the last data time)."""
        if self.rows is not None:
            self._queue(self.rows.close_open(epoch))

    def _queue(self, rows: Sequence[tuple[float, list[str]] | int]) -> None:
        for row in rows:
            if isinstance(row, int):  # a row already queued or written, to be marked Bad
                self.discards.append(row)
                continue
            epoch, cells = row
            self.pending.times.append(np.array([epoch]))
            self.pending.data.append(np.array([[cell.encode()[:500] for cell in cells]], dtype="S500"))

    def pending_bytes(self) -> int:
        return (self.pending.rows + 64) * (4 * 500 + 8 + 26)

    def write(self, writer: SessionWriter) -> None:
        if not self.created:
            if self.as_activities:
                writer.add_activity_stream(self.classes)
            else:
                writer.add_stream(SOURCE_LABEL_GROUP, (1,), "S500", chunk_rows=64, attrs={
                    "Description": f"label markers of {self.source_id} as they came"})
            self.created = True
        group = "experiment-activities/activities" if self.as_activities else SOURCE_LABEL_GROUP
        rows = self.pending.take()
        if rows is not None:
            writer.append(group, rows[1], rows[0])
            self.written += len(rows[0])
        for row in self.discards:  # after the append: the pair may have arrived in this very flush
            assert self.rows is not None  # discards come from the activity rows
            writer.rewrite_rows(group, row, np.array([self.rows.discarded(row)], dtype="S500"))
        self.discards = []


class RawTrack(Track):
    """Any stream as it came: its samples (numbers, or strings of at most 500 bytes) as the rows of `group`
    of the HDF5 file (None, the default: XDF only), with the stream's LSL header as an attribute."""

    def __init__(self, inlet: LiveInlet, lsl_to_epoch_s: float, lsl_type: str = "") -> None:
        super().__init__(inlet, lsl_to_epoch_s)
        self.lsl_type = lsl_type
        self.group: str | None = None
        self.pending = Pending()
        self.dtype = np.dtype("S500" if inlet.is_text else inlet.dtype)
        self.row_bytes = inlet.channels * self.dtype.itemsize
        self.chunk_rows = int(np.clip((1 << 20) // max(self.row_bytes, 1), 1, CHUNK_ROWS))  # chunks near 1 MiB

    def pull(self) -> int:
        samples: np.ndarray | list
        if self.inlet.is_text:
            stamps, samples = self.inlet.pull_markers()
        else:
            stamps, samples = self.inlet.pull()
        self._tap(stamps, samples)
        epochs = self._epoch(stamps)
        if self.group is not None and len(stamps):
            self.pending.times.append(epochs)
            rows = np.array([[str(v).encode()[:500] for v in s] for s in samples], "S500").reshape(
                len(stamps), -1) if self.inlet.is_text else np.asarray(samples)
            self.pending.data.append(rows)
        return len(stamps)

    def pending_bytes(self) -> int:
        if self.group is None:
            return 0
        return (self.pending.rows + self.chunk_rows) * (self.row_bytes + 8 + 26)

    def write(self, writer: SessionWriter) -> None:
        if self.group is None:
            return
        if not self.created:
            writer.add_stream(self.group, (self.inlet.channels,), self.dtype, chunk_rows=self.chunk_rows, attrs={
                "Description": f"the LSL stream '{self.inlet.name}' ({self.source_id or 'no source id'}) as it came",
                "LSL stream header": self.inlet.info_xml})
            self.created = True
        rows = self.pending.take()
        if rows is not None:
            writer.append(self.group, rows[1], rows[0])
            self.written += len(rows[0])


def raw_group(name: str, kind: str, taken: set[str]) -> str:
    """The HDF5 group of another LSL stream, `lsl-<name>/<type>` in the ActionSense `<device>/<stream>` form,
    made of safe characters and unique in the file (`taken` is updated)."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "stream"

    base = f"lsl-{safe(name)}/{safe(kind or 'data')}"
    group, n = base, 1
    while group in taken:
        n += 1
        group = f"{base}-{n}"
    taken.add(group)
    return group


class ActivityRows:
    """Turns label markers (capture.streams.parse_marker) into the recorder's label rows, keeping them paired
    as the reader requires: a Start while another activity is open stops that one first; a Stop of nothing
    open is ignored. A Discard of the last finished activity makes both its rows Bad (the reader then drops
    the pair; the data stays in the file): `push` returns their row numbers to rewrite."""

    def __init__(self) -> None:
        self.open: str | None = None
        self.count = 0  # rows made so far
        self.cells: dict[int, list[str]] = {}  # the last finished pair's rows, by row number
        self.last_pair: tuple[str, int] | None = None  # (activity, row number of its Start)

    def push(self, text: str, epoch: float) -> list[tuple[float, list[str]]] | list[int] | None:
        marker = parse_marker(text)
        if marker is None:
            log.warning("ignoring label marker %r: expected '<activity>|Start', '|Stop' or '|Discard'", text)
            return None
        if marker.kind == "Discard":
            return self._discard(marker.activity)
        if marker.kind == "Stop":
            if self.open != marker.activity:
                log.warning("ignoring 'Stop' of %r: %s", marker.activity,
                            f"'{self.open}' is open" if self.open else "no activity is open")
                return None
            return self._stop(epoch, marker.validity, marker.notes)
        rows = self.close_open(epoch, notes="stopped by the next Start")
        self.open = marker.activity
        return [*rows, self._row(epoch, [marker.activity, "Start", marker.validity, marker.notes])]

    def close_open(self, epoch: float, notes: str = "stopped by the end of the recording") -> list:
        return self._stop(epoch, "Good", notes) if self.open is not None else []

    def discarded(self, row: int) -> list[bytes]:
        """The cells of a row of the discarded pair, rated Bad."""
        activity, kind, _validity, _notes = self.cells[row]
        return [cell.encode()[:500] for cell in (activity, kind, "Bad", "discarded: repeated")]

    def _stop(self, epoch: float, validity: str, notes: str) -> list:
        activity, self.open = self.open, None
        assert activity is not None  # called only while an activity is open
        row = self._row(epoch, [activity, "Stop", validity, notes])
        start = self.count - 2
        self.last_pair = (activity, start)
        return [row]

    def _row(self, epoch: float, cells: list[str]) -> tuple[float, list[str]]:
        self.cells = {k: v for k, v in self.cells.items() if k >= self.count - 2}  # the last pair is enough
        self.cells[self.count] = cells
        self.count += 1
        return epoch, cells

    def _discard(self, activity: str) -> list[int] | None:
        if self.open is not None or self.last_pair is None or self.last_pair[0] != activity:
            log.warning("ignoring 'Discard' of %r: it is not the last finished activity", activity)
            return None
        start = self.last_pair[1]
        self.last_pair = None
        return [start, start + 1]
