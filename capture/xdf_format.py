"""A structural check of an XDF file before pyxdf reads it, so a truncated or damaged file ends in a clear
SessionFormatError rather than in whatever pyxdf makes of it (it skips what it cannot parse, and a damaged
sample count can make it allocate far more than the file holds).

The check walks every chunk and every sample without keeping any data: each length must stay inside its
chunk and the file, each stream header must parse and declare a known format, each sample chunk must end
exactly where its samples end, and every stream must have its footer (LabRecorder writes the footers last,
so a truncated recording lacks them). It returns the sample count of each stream, for comparing with what
pyxdf returns.
"""

from __future__ import annotations

import math
import mmap
import struct
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, fromstring

from myosight.errors import SessionFormatError

MAGIC = b"XDF:"
VALUE_BYTES = {"float32": 4, "double64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "string": 0}
MAX_CHANNELS = 1 << 24
TAGS = {1: "FileHeader", 2: "StreamHeader", 3: "Samples", 4: "ClockOffset", 5: "Boundary", 6: "StreamFooter"}


class _Reader:
    """Bounded little-endian reads from a byte buffer; running past `end` is a format error."""

    def __init__(self, data: bytes | mmap.mmap, path: Path) -> None:
        self.data, self.path = data, path

    def fail(self, message: str, at: int) -> SessionFormatError:
        return SessionFormatError(self.path, f"{message} (at byte {at}; truncated or damaged XDF file)")

    def take(self, pos: int, count: int, end: int, what: str) -> tuple[bytes, int]:
        if count < 0 or pos + count > end:
            raise self.fail(f"{what} runs past the end of its chunk", pos)
        return self.data[pos:pos + count], pos + count

    def varlen(self, pos: int, end: int, what: str) -> tuple[int, int]:
        size, pos = self.take(pos, 1, end, what)
        width = size[0]
        if width not in (1, 4, 8):
            raise self.fail(f"{what}: a variable-length integer of {width} bytes (XDF allows 1, 4, 8)", pos - 1)
        raw, pos = self.take(pos, width, end, what)
        return int.from_bytes(raw, "little"), pos


def check_xdf(path: Path) -> dict[int, int]:
    """Walk the file; returns {stream id: samples}. Raises SessionFormatError naming the file and the byte."""
    size = path.stat().st_size
    if size < len(MAGIC):
        raise SessionFormatError(path, "not an XDF file (shorter than its magic bytes)")
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != MAGIC:
            raise SessionFormatError(path, "not an XDF file (it does not start with 'XDF:')")
        return _walk(_Reader(data, path), size)


def _walk(reader: _Reader, size: int) -> dict[int, int]:
    streams: dict[int, tuple[int, int]] = {}  # id -> (channels, bytes per value; 0 for strings)
    counts: dict[int, int] = {}
    footers: set[int] = set()
    pos, first = len(MAGIC), True
    while pos < size:
        length, body = reader.varlen(pos, size, "chunk length")
        if length < 2 or body + length > size:
            raise reader.fail(f"a chunk of {length} bytes where {size - body} remain", pos)
        end = body + length
        tag = struct.unpack("<H", reader.data[body:body + 2])[0]
        if tag not in TAGS or (first and tag != 1):
            raise reader.fail(f"chunk tag {tag} ({'the file must start with a FileHeader' if first else 'unknown'})",
                              body)
        _check_chunk(reader, tag, body + 2, end, streams, counts, footers)
        pos, first = end, False
    missing = sorted(set(streams) - footers)
    if missing:
        raise SessionFormatError(reader.path, f"no StreamFooter for stream(s) {missing}: the recording is "
                                 "incomplete (truncated file?)")
    return counts


def _check_chunk(reader: _Reader, tag: int, pos: int, end: int, streams: dict, counts: dict, footers: set) -> None:
    if tag == 1:
        _xml(reader, pos, end, "FileHeader")
        return
    if tag == 5:
        return
    raw, pos = reader.take(pos, 4, end, f"{TAGS[tag]} stream id")
    stream_id = struct.unpack("<I", raw)[0]
    if tag != 2 and stream_id not in streams:
        raise reader.fail(f"{TAGS[tag]} of stream {stream_id}, which has no StreamHeader before it", pos - 4)
    if tag == 2:
        if stream_id in streams:
            raise reader.fail(f"a second StreamHeader for stream {stream_id}", pos - 4)
        streams[stream_id] = _stream_header(reader, pos, end)
        counts[stream_id] = 0
    elif tag == 3:
        counts[stream_id] += _check_samples(reader, pos, end, *streams[stream_id])
    elif tag == 4:
        if end - pos != 16 or not all(math.isfinite(v) for v in struct.unpack("<dd", reader.data[pos:end])):
            raise reader.fail(f"a ClockOffset of stream {stream_id} that is not two finite doubles", pos)
    else:
        _xml(reader, pos, end, f"StreamFooter of stream {stream_id}")
        footers.add(stream_id)


def _xml(reader: _Reader, pos: int, end: int, what: str) -> Element:
    try:
        return fromstring(bytes(reader.data[pos:end]).decode("utf-8"))
    except (ParseError, UnicodeDecodeError) as error:
        raise reader.fail(f"{what}: unreadable XML ({error})", pos) from None


def _stream_header(reader: _Reader, pos: int, end: int) -> tuple[int, int]:
    info = _xml(reader, pos, end, "StreamHeader")
    fields = {name: (info.findtext(name) or "").strip() for name in ("channel_count", "channel_format",
                                                                       "nominal_srate", "name")}
    try:
        channels, rate = int(fields["channel_count"]), float(fields["nominal_srate"])
    except ValueError:
        raise reader.fail(f"stream '{fields['name']}': channel_count {fields['channel_count']!r} or nominal_srate "
                          f"{fields['nominal_srate']!r} is not a number", pos) from None
    if not 1 <= channels <= MAX_CHANNELS or not (math.isfinite(rate) and rate >= 0):
        raise reader.fail(f"stream '{fields['name']}': {channels} channels at {rate} Hz", pos)
    if fields["channel_format"] not in VALUE_BYTES:
        raise reader.fail(f"stream '{fields['name']}': unknown channel_format {fields['channel_format']!r}", pos)
    return channels, VALUE_BYTES[fields["channel_format"]]


def _check_samples(reader: _Reader, pos: int, end: int, channels: int, value_bytes: int) -> int:
    count, pos = reader.varlen(pos, end, "sample count")
    least = 1 + (channels * value_bytes if value_bytes else 2 * channels)
    if count * least > end - pos:
        raise reader.fail(f"{count} samples cannot fit in {end - pos} bytes", pos)
    for _ in range(count):
        stamp, pos = reader.take(pos, 1, end, "time-stamp flag")
        if stamp[0] not in (0, 8):
            raise reader.fail(f"a time stamp of {stamp[0]} bytes (XDF allows 0 or 8)", pos - 1)
        if stamp[0] == 8:
            raw, pos = reader.take(pos, 8, end, "time stamp")
            if not math.isfinite(struct.unpack("<d", raw)[0]):
                raise reader.fail("a time stamp that is not a finite number", pos - 8)
        if value_bytes:
            _, pos = reader.take(pos, channels * value_bytes, end, "sample values")
        else:
            for _ in range(channels):
                length, pos = reader.varlen(pos, end, "string length")
                _, pos = reader.take(pos, length, end, "string value")
    if pos != end:
        raise reader.fail(f"a Samples chunk with {end - pos} bytes after its {count} samples", pos)
    return count
