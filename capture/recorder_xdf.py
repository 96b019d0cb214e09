"""The recorder's XDF output: the LSL streams as LabRecorder writes them, for pyxdf, MNE, EEGLAB and
`myosight replay`.

What the file holds, and why:
- a FileHeader (version 1.0, the start time, and a `myosight` element: subject, recorded source, the source
  id of the stream whose markers are the activity labels, the LSL-to-epoch offset), so a replay knows which
  marker stream holds the labels;
- each stream's full LSL header (`StreamInfo.as_xml()`: name, type, channels, rate, format, source id and
  the description, e.g. an armband's `arm`), written when the stream is first seen (also mid-recording);
- the samples with the stamps as the sender made them, and ClockOffset chunks (every clock-offset
  measurement of the inlet, about every 5 s, collection time in the sender's clock, as LabRecorder does):
  pyxdf's clock synchronisation moves the stamps onto the recorder's clock, as the recorder's HDF5 output
  does when it records;
- a Boundary chunk every 10 s (a reader's resync point) and, at the end, a StreamFooter per stream (first
  and last stamp, sample count, all clock offsets).

Crash and full disk: the file is written under a partial name (`.xdf.partial`) and renamed at the end. Each
flush appends whole chunks; a write that fails (full disk, file-size limit) is cut off again, so the file
ends on the last whole flush, and the footers are written if there is room for them. A file left partial
(a crash, or no room for the footers) is made whole by `repair_xdf` (`myosight record --recover`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from xml.etree.ElementTree import fromstring
from xml.sax.saxutils import escape

import numpy as np

from myosight.capture.inlets import LiveInlet
from myosight.capture.xdf_format import (
    BOUNDARY,
    MAGIC,
    chunk,
    clock_offset_chunk,
    footer_chunk,
    repair_xdf,
    samples_chunk,
)
from myosight.errors import MyosightError
from myosight.paths import FULL_ERRNOS

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
BOUNDARY_EVERY_S = 10.0
ROOM_MARGIN = 1 << 20  # kept free on the disk beyond a flush: the footers, the status file


class XdfWriteError(MyosightError):
    """The XDF file cannot take more (full disk, file-size limit, I/O error); it ends on the last whole flush."""


def partial_xdf_path(path: Path) -> Path:
    """Where a recording is written until it ends cleanly."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


class XdfStreamOut:
    """One stream of the file: its id, the samples and clock offsets not yet written, what was written."""

    def __init__(self, stream_id: int, inlet: LiveInlet) -> None:
        self.stream_id, self.inlet = stream_id, inlet
        header = fromstring(inlet.info_xml)
        self.channel_format = (header.findtext("channel_format") or "").strip()
        self.name = (header.findtext("name") or "").strip()
        self.stamps: list[np.ndarray] = []
        self.values: list = []
        self.written = 0
        self.first: float | None = None
        self.last: float | None = None
        self.offsets: list[tuple[float, float]] = []  # (collection time in the stream's clock, offset)
        self._offsets_taken_until = -np.inf
        self._pending_count = 0  # samples in the chunks of the last take_chunks, and their first and last stamps
        self._pending_span = (0.0, 0.0)

    def add(self, stamps: np.ndarray, samples: np.ndarray | list) -> None:
        """Samples as the inlet pulled them: their stamps are moved back to the sender's clock (the file keeps
        the clock offsets beside them instead)."""
        if len(stamps):
            self.stamps.append(np.asarray(stamps, np.float64) - self.inlet.applied_offset_s)
            self.values.append(samples)

    def take_chunks(self) -> list[bytes]:
        """The pending samples and new clock offsets as chunks (forgotten here: the caller writes them)."""
        chunks = []
        new = [(t, v) for t, v in self.inlet.offset_measurements if t > self._offsets_taken_until]
        for local, offset in new:
            self.offsets.append((local - offset, offset))
            chunks.append(clock_offset_chunk(self.stream_id, local - offset, offset))
        if new:
            self._offsets_taken_until = new[-1][0]
        if self.stamps:
            stamps = np.concatenate(self.stamps)
            values: np.ndarray | list
            if self.channel_format == "string":
                values = [sample for part in self.values for sample in part]
            else:
                values = np.concatenate(self.values)
            chunks.append(samples_chunk(self.stream_id, self.channel_format, stamps, values))
            self._pending_count = len(stamps)
            self._pending_span = (float(stamps[0]), float(stamps[-1]))
        self.stamps, self.values = [], []
        return chunks

    def written_ok(self) -> None:
        """The chunks of the last `take_chunks` are on disk."""
        count = self._pending_count
        if count:
            first, last = self._pending_span
            self.first = first if self.first is None else self.first
            self.last = last
            self.written += count
        self._pending_count = 0

    def footer(self) -> bytes:
        return footer_chunk(self.stream_id, self.written, self.first, self.last, self.offsets)


class XdfRecording:
    """The XDF file of one recording (see the module docstring)."""

    def __init__(self, path: Path, myosight_fields: dict[str, str]) -> None:
        self.path, self.partial = path, partial_xdf_path(path)
        self.streams: list[XdfStreamOut] = []
        self._pending: list[bytes] = []
        self._next_boundary = time.monotonic() + BOUNDARY_EVERY_S
        self.failed = False
        try:
            self._file = open(self.partial, "xb", buffering=0)  # noqa: SIM115 (held open for the recording)
        except OSError as error:
            raise XdfWriteError(f"{self.partial}: cannot create the XDF file ({error})") from error
        self.size = 0
        extra = "".join(f"<{key}>{escape(str(value))}</{key}>" for key, value in myosight_fields.items())
        header = (f'<?xml version="1.0"?><info><version>1.0</version><datetime>'
                  f"{datetime.now().astimezone().isoformat()}</datetime><myosight>{extra}</myosight></info>")
        try:
            self._write(MAGIC + chunk(1, header.encode()))
        except XdfWriteError:
            self._file.close()
            self.partial.unlink(missing_ok=True)  # nothing recorded yet: no file to recover later
            raise

    def add_stream(self, inlet: LiveInlet) -> XdfStreamOut:
        """A new stream of the file (its header goes out with the next flush)."""
        stream = XdfStreamOut(len(self.streams) + 1, inlet)
        self.streams.append(stream)
        self._pending.append(chunk(2, inlet.info_xml.encode(), stream.stream_id))
        return stream

    def flush(self) -> None:
        """Write every stream's pending samples and clock offsets (and a Boundary every 10 s). Raises
        XdfWriteError when the disk cannot take them; the file then ends where it ended before."""
        if self.failed:
            return
        chunks, self._pending = self._pending, []
        for stream in self.streams:
            chunks += stream.take_chunks()
        if time.monotonic() >= self._next_boundary:
            chunks.append(chunk(5, BOUNDARY))
            self._next_boundary = time.monotonic() + BOUNDARY_EVERY_S
        if not chunks:
            return
        blob = b"".join(chunks)
        self._check_room(len(blob))
        self._write(blob)
        for stream in self.streams:
            stream.written_ok()

    def close(self) -> Path:
        """Write the footers and put the file in place; the path of the file as it is left (the partial name
        when even the footers found no room: `myosight record --recover` finishes it)."""
        if self._file.closed:
            return self.path if self.path.exists() else self.partial
        self.failed = False  # the footers are worth a try even after a refused flush: they are small
        try:
            self._write(b"".join(stream.footer() for stream in self.streams))
        except XdfWriteError as error:
            log.error("%s; run `myosight record --recover %s` when there is room", error, self.partial)
            self._file.close()
            return self.partial
        self._file.close()
        try:
            os.replace(self.partial, self.path)
        except OSError as error:  # e.g. another program holds the name open (Windows)
            log.error("%s: cannot rename it to %s (%s); the recording is whole under its partial name",
                      self.partial, self.path.name, error)
            return self.partial
        return self.path

    def _check_room(self, size: int) -> None:
        free = shutil.disk_usage(self.partial.parent).free
        if free < size + ROOM_MARGIN:
            self.failed = True
            raise XdfWriteError(f"{self.path}: the disk is full ({free} bytes free, {size} to write); recording "
                                "stopped, the file keeps everything up to the last flush")

    def _write(self, data: bytes) -> None:
        """Append `data` whole, or cut the file back to where it was and raise XdfWriteError."""
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += self._file.write(view[done:]) or 0
        except OSError as error:
            self.failed = True
            try:
                os.ftruncate(self._file.fileno(), self.size)
                self._file.seek(self.size)
            except OSError as cut:
                log.error("%s: cannot cut the torn write off (%s)", self.partial, cut)
            why = "the disk is full or the file reached its size limit" if _is_full(error) else "writing failed"
            raise XdfWriteError(f"{self.path}: {why} ({os.strerror(error.errno or 0)}); recording stopped, the file "
                                "keeps everything up to the last flush") from None
        self.size += len(data)


def _is_full(error: OSError) -> bool:
    return error.errno in FULL_ERRNOS


def unfinished_xdf(folder: Path) -> list[Path]:
    """Recordings in `folder` left under their partial name."""
    return sorted(folder.glob(f"*.xdf{PARTIAL_SUFFIX}"))


def recover_xdf(path: Path) -> tuple[Path, dict[int, int], bool]:
    """Finish a recording left partial: cut a torn last chunk, write the missing footers, rename it into place.
    Returns the finished file, {stream id: samples kept} and whether anything had to be done."""
    path = Path(path)
    counts, repaired = repair_xdf(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        final = path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
        os.replace(path, final)
        path, repaired = final, True
    return path, counts, repaired
