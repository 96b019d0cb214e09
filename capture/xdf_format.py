"""XDF, the file format of LabRecorder (read by pyxdf, MNE, EEGLAB): a structural check, a header scan, the
chunks a recorder writes, and the repair of a recording that did not end cleanly.

The check runs before pyxdf reads a file, so a truncated or damaged file ends in a clear SessionFormatError
rather than in whatever pyxdf makes of it (it skips what it cannot parse, and a damaged sample count can
make it allocate far more than the file holds).

The check walks every chunk and every sample without keeping any data: each length must stay inside its
chunk and the file, each stream header must parse and declare a known format, each sample chunk must end
exactly where its samples end, and every stream must have its footer (LabRecorder writes the footers last,
so a truncated recording lacks them). It returns the sample count of each stream, for comparing with what
pyxdf returns. `scan_xdf` gives the same walk's stream headers as well, so a reader can choose the streams
it needs before loading any data.

The format: the magic "XDF:", then chunks [NumLengthBytes: 1, 4 or 8][Length, little endian, counting the
tag and the content][Tag: uint16][Content]. Tags: 1 FileHeader (XML), 2 StreamHeader ([StreamId uint32]
XML), 3 Samples ([StreamId][NumSamples, variable length] then per sample [TimeStampBytes 0 or 8][TimeStamp
double][values]; a string is [NumLengthBytes][Length][bytes]), 4 ClockOffset ([StreamId][CollectionTime
double, the stream's clock][OffsetValue double: stream time + offset = recorder time]), 5 Boundary (16
fixed bytes, a resync point), 6 StreamFooter ([StreamId] XML).
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, fromstring
from xml.sax.saxutils import escape

import numpy as np

from myosight.errors import SessionFormatError

MAGIC = b"XDF:"
VALUE_BYTES = {"float32": 4, "double64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "string": 0}
MAX_CHANNELS = 1 << 24
TAGS = {1: "FileHeader", 2: "StreamHeader", 3: "Samples", 4: "ClockOffset", 5: "Boundary", 6: "StreamFooter"}
BOUNDARY = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F, 0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])
NUMPY_FORMATS = {"float32": "<f4", "double64": "<f8", "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8"}


@dataclass
class StreamScan:
    """What the walk learnt of one stream: its header, and what its chunks hold."""

    header: Element
    channels: int
    value_bytes: int  # 0 for strings
    samples: int = 0
    first_stamp: float | None = None
    last_stamp: float | None = None
    offsets: list[tuple[float, float]] = field(default_factory=list)  # (collection time, offset value)
    footer: bool = False


@dataclass
class XdfScan:
    """The walk of a whole file (or, for a damaged one, of its intact beginning: `end` bytes)."""

    file_header: Element
    streams: dict[int, StreamScan]
    end: int


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
    return {stream_id: stream.samples for stream_id, stream in scan_xdf(path).streams.items()}


def scan_xdf(path: Path, *, intact_part: bool = False) -> XdfScan:
    """Walk the file without keeping any data. Strict (the default): anything wrong, or a stream without its
    footer, is a SessionFormatError. `intact_part`: stop at the first damaged or incomplete chunk and return
    what lies before it (for repairing a recording cut short)."""
    size = path.stat().st_size
    if size < len(MAGIC):
        raise SessionFormatError(path, "not an XDF file (shorter than its magic bytes)")
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != MAGIC:
            raise SessionFormatError(path, "not an XDF file (it does not start with 'XDF:')")
        return _walk(_Reader(data, path), size, intact_part)


def _walk(reader: _Reader, size: int, intact_part: bool) -> XdfScan:
    scan = XdfScan(Element("info"), {}, len(MAGIC))
    pos, first = len(MAGIC), True
    while pos < size:
        try:
            end = _walk_chunk(reader, pos, size, first, scan)
        except SessionFormatError:
            if intact_part and not first:
                return scan
            raise
        pos = scan.end = end
        first = False
    missing = sorted(stream_id for stream_id, stream in scan.streams.items() if not stream.footer)
    if missing and not intact_part:
        raise SessionFormatError(reader.path, f"no StreamFooter for stream(s) {missing}: the recording is "
                                 "incomplete (truncated file?)")
    return scan


def _walk_chunk(reader: _Reader, pos: int, size: int, first: bool, scan: XdfScan) -> int:
    """Check the chunk at `pos` and note what it holds; returns where the next chunk starts."""
    length, body = reader.varlen(pos, size, "chunk length")
    if length < 2 or body + length > size:
        raise reader.fail(f"a chunk of {length} bytes where {size - body} remain", pos)
    end = body + length
    tag = struct.unpack("<H", reader.data[body:body + 2])[0]
    if tag not in TAGS or (first and tag != 1):
        raise reader.fail(f"chunk tag {tag} ({'the file must start with a FileHeader' if first else 'unknown'})",
                          body)
    _check_chunk(reader, tag, body + 2, end, scan)
    return end


def _check_chunk(reader: _Reader, tag: int, pos: int, end: int, scan: XdfScan) -> None:
    if tag == 1:
        scan.file_header = _xml(reader, pos, end, "FileHeader")
        return
    if tag == 5:
        return
    raw, pos = reader.take(pos, 4, end, f"{TAGS[tag]} stream id")
    stream_id = struct.unpack("<I", raw)[0]
    streams = scan.streams
    if tag != 2 and stream_id not in streams:
        raise reader.fail(f"{TAGS[tag]} of stream {stream_id}, which has no StreamHeader before it", pos - 4)
    if tag == 2:
        if stream_id in streams:
            raise reader.fail(f"a second StreamHeader for stream {stream_id}", pos - 4)
        header = _xml(reader, pos, end, "StreamHeader")
        streams[stream_id] = StreamScan(header, *_stream_header(reader, header, pos))
    elif tag == 3:
        _check_samples(reader, pos, end, streams[stream_id])
    elif tag == 4:
        values = struct.unpack("<dd", reader.data[pos:end]) if end - pos == 16 else ()
        if len(values) != 2 or not all(math.isfinite(v) for v in values):
            raise reader.fail(f"a ClockOffset of stream {stream_id} that is not two finite doubles", pos)
        streams[stream_id].offsets.append(values)
    else:
        _xml(reader, pos, end, f"StreamFooter of stream {stream_id}")
        streams[stream_id].footer = True


def _xml(reader: _Reader, pos: int, end: int, what: str) -> Element:
    try:
        return fromstring(bytes(reader.data[pos:end]).decode("utf-8"))
    except (ParseError, UnicodeDecodeError) as error:
        raise reader.fail(f"{what}: unreadable XML ({error})", pos) from None


def _stream_header(reader: _Reader, info: Element, pos: int) -> tuple[int, int]:
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


def _check_samples(reader: _Reader, pos: int, end: int, stream: StreamScan) -> None:
    channels, value_bytes = stream.channels, stream.value_bytes
    count, pos = reader.varlen(pos, end, "sample count")
    least = 1 + (channels * value_bytes if value_bytes else 2 * channels)
    first_stamp = last_stamp = None
    if count * least > end - pos:
        raise reader.fail(f"{count} samples cannot fit in {end - pos} bytes", pos)
    for _ in range(count):
        stamp, pos = reader.take(pos, 1, end, "time-stamp flag")
        if stamp[0] not in (0, 8):
            raise reader.fail(f"a time stamp of {stamp[0]} bytes (XDF allows 0 or 8)", pos - 1)
        if stamp[0] == 8:
            raw, pos = reader.take(pos, 8, end, "time stamp")
            stamp_s = struct.unpack("<d", raw)[0]
            if not math.isfinite(stamp_s):
                raise reader.fail("a time stamp that is not a finite number", pos - 8)
            first_stamp = stamp_s if first_stamp is None else first_stamp
            last_stamp = stamp_s
        if value_bytes:
            _, pos = reader.take(pos, channels * value_bytes, end, "sample values")
        else:
            for _ in range(channels):
                length, pos = reader.varlen(pos, end, "string length")
                _, pos = reader.take(pos, length, end, "string value")
    if pos != end:
        raise reader.fail(f"a Samples chunk with {end - pos} bytes after its {count} samples", pos)
    stream.samples += count  # noted only once the whole chunk is sound
    if last_stamp is not None:
        stream.first_stamp = first_stamp if stream.first_stamp is None else stream.first_stamp
        stream.last_stamp = last_stamp


# -- writing -----------------------------------------------------------------------------------------------
def varlen(value: int) -> bytes:
    """XDF's variable-length integer: a byte giving the width (1, 4 or 8), then the value."""
    if value < 1 << 8:
        return b"\x01" + struct.pack("<B", value)
    if value < 1 << 32:
        return b"\x04" + struct.pack("<I", value)
    return b"\x08" + struct.pack("<Q", value)


def chunk(tag: int, content: bytes, stream_id: int | None = None) -> bytes:
    """One whole chunk: its length, its tag, the stream id (for stream chunks) and the content."""
    if stream_id is not None:
        content = struct.pack("<I", stream_id) + content
    return varlen(len(content) + 2) + struct.pack("<H", tag) + content


def xml_text(root: str, fields: dict[str, object]) -> bytes:
    """A flat XML document `<root><key>value</key>...</root>` (values escaped), as UTF-8."""
    inner = "".join(f"<{key}>{escape(str(value))}</{key}>" for key, value in fields.items())
    return f'<?xml version="1.0"?><{root}>{inner}</{root}>'.encode()


def samples_chunk(stream_id: int, channel_format: str, stamps: np.ndarray, values: np.ndarray | list) -> bytes:
    """A Samples chunk with every sample's own time stamp. Numeric samples are packed in one go (a structured
    array: stamp flag, stamp, values), so a chunk of video frames costs a copy, not a loop over bytes."""
    count = len(stamps)
    if channel_format == "string":
        parts = [varlen(count)]
        for stamp, sample in zip(stamps, values, strict=True):
            parts.append(b"\x08" + struct.pack("<d", stamp))
            for text in sample:
                raw = str(text).encode()
                parts.append(varlen(len(raw)) + raw)
        return chunk(3, b"".join(parts), stream_id)
    values = np.asarray(values)
    layout = np.dtype([("flag", "u1"), ("stamp", "<f8"), ("values", NUMPY_FORMATS[channel_format], values.shape[1:])])
    packed = np.empty(count, layout)
    packed["flag"], packed["stamp"], packed["values"] = 8, stamps, values
    return chunk(3, varlen(count) + packed.tobytes(), stream_id)


def clock_offset_chunk(stream_id: int, collection_time: float, offset: float) -> bytes:
    """A ClockOffset chunk; `collection_time` is in the stream's clock (the recorder's time minus the offset)."""
    return chunk(4, struct.pack("<dd", collection_time, offset), stream_id)


def footer_chunk(stream_id: int, samples: int, first: float | None, last: float | None,
                 offsets: list[tuple[float, float]]) -> bytes:
    """The StreamFooter LabRecorder writes: first and last stamps, the sample count and every clock offset."""
    clock = "".join(f"<offset><time>{time!r}</time><value>{value!r}</value></offset>" for time, value in offsets)
    body = xml_text("info", {"first_timestamp": repr(first or 0.0), "last_timestamp": repr(last or 0.0),
                             "sample_count": samples})
    return chunk(6, body.replace(b"</info>", f"<clock_offsets>{clock}</clock_offsets></info>".encode()), stream_id)


def repair_xdf(path: Path) -> tuple[dict[int, int], bool]:
    """Make a recording that did not end cleanly (a crash, a full disk) whole: cut a torn last chunk off and
    write the footers of the streams that lack one. Returns {stream id: samples kept} and whether anything
    was repaired (a file that is already whole is left as it is)."""
    scan = scan_xdf(path, intact_part=True)
    missing = {sid: stream for sid, stream in scan.streams.items() if not stream.footer}
    if scan.end == path.stat().st_size and not missing:
        return {sid: stream.samples for sid, stream in scan.streams.items()}, False
    os.truncate(path, scan.end)
    with path.open("ab") as file:
        for sid, stream in missing.items():
            file.write(footer_chunk(sid, stream.samples, stream.first_stamp, stream.last_stamp, stream.offsets))
    return {sid: stream.samples for sid, stream in scan.streams.items()}, True
