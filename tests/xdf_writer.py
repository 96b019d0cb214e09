"""A small XDF 1.0 writer for tests, from the format's chunk specification.

A file is the magic "XDF:" followed by chunks: [NumLengthBytes: 1, 4 or 8][Length: that many bytes, little
endian, counting the tag and the content][Tag: uint16][Content]. Tags: 1 FileHeader (XML), 2 StreamHeader
([StreamId uint32] XML), 3 Samples ([StreamId][NumSamples as a variable-length integer] then per sample
[TimeStampBytes 0 or 8][TimeStamp double][values]; a string value is [NumLengthBytes][Length][bytes]),
4 ClockOffset ([StreamId][CollectionTime double][OffsetValue double]), 5 Boundary (16 bytes),
6 StreamFooter ([StreamId] XML).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

FORMATS = {"float32": "<f4", "double64": "<f8", "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8"}
BOUNDARY = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F, 0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])


@dataclass
class XdfStream:
    name: str
    type: str
    channel_format: str  # float32, double64, int8, int16, int32, int64, string
    time_stamps: np.ndarray  # (n,)
    samples: np.ndarray | list  # (n, channels) numbers, or n lists of strings
    nominal_srate: float = 0.0
    source_id: str = ""
    desc: dict[str, str] = field(default_factory=dict)
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)  # (collection time, offset)

    @property
    def channel_count(self) -> int:
        return len(self.samples[0]) if len(self.samples) else 1


def varlen(value: int) -> bytes:
    """The variable-length integer: 1, 4 or 8 bytes after a byte giving that length."""
    if value < 256:
        return bytes([1]) + struct.pack("<B", value)
    if value < 2**32:
        return bytes([4]) + struct.pack("<I", value)
    return bytes([8]) + struct.pack("<Q", value)


def chunk(tag: int, content: bytes) -> bytes:
    return varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _xml(root: str, fields: dict[str, str], desc: dict[str, str] | None = None) -> bytes:
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    if desc is not None:
        inner += "<desc>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in desc.items()) + "</desc>"
    return f'<?xml version="1.0"?><{root}>{inner}</{root}>'.encode()


def header_chunk(stream_id: int, stream: XdfStream) -> bytes:
    fields = {"name": stream.name, "type": stream.type, "channel_count": stream.channel_count,
              "nominal_srate": stream.nominal_srate, "channel_format": stream.channel_format,
              "source_id": stream.source_id, "version": "1.1", "created_at": "0"}
    return chunk(2, struct.pack("<I", stream_id) + _xml("info", fields, stream.desc))


def samples_chunk(stream_id: int, stream: XdfStream, lo: int, hi: int, omit_stamps: bool = False) -> bytes:
    body = [struct.pack("<I", stream_id), varlen(hi - lo)]
    for k in range(lo, hi):
        body.append(b"\x00" if omit_stamps and k > lo else b"\x08" + struct.pack("<d", stream.time_stamps[k]))
        if stream.channel_format == "string":
            for text in stream.samples[k]:
                raw = text.encode()
                body.append(varlen(len(raw)) + raw)
        else:
            body.append(np.asarray(stream.samples[k], FORMATS[stream.channel_format]).tobytes())
    return chunk(3, b"".join(body))


def footer_chunk(stream_id: int, stream: XdfStream) -> bytes:
    stamps = stream.time_stamps
    fields = {"first_timestamp": stamps[0] if len(stamps) else 0, "last_timestamp": stamps[-1] if len(stamps) else 0,
              "sample_count": len(stamps)}
    return chunk(6, struct.pack("<I", stream_id) + _xml("info", fields))


def write_xdf(path: str | Path, streams: list[XdfStream], chunk_seconds: float = 0.5,
              omit_stamps: bool = False) -> Path:
    """Write the streams as LabRecorder does: headers, samples interleaved in time, clock offsets, footers."""
    path = Path(path)
    parts = [b"XDF:", chunk(1, _xml("info", {"version": "1.0"}))]
    parts += [header_chunk(i + 1, s) for i, s in enumerate(streams)]
    starts = [float(s.time_stamps[0]) for s in streams if len(s.time_stamps)]
    stops = [float(s.time_stamps[-1]) for s in streams if len(s.time_stamps)]
    t, end = min(starts), max(stops)
    done = [0] * len(streams)
    while t <= end + chunk_seconds:
        t += chunk_seconds
        for i, stream in enumerate(streams):
            hi = int(np.searchsorted(stream.time_stamps, t, side="left"))
            if hi > done[i]:
                parts.append(samples_chunk(i + 1, stream, done[i], hi, omit_stamps))
                done[i] = hi
        parts.append(chunk(5, BOUNDARY))
    for i, stream in enumerate(streams):
        for collected, offset in stream.clock_offsets:
            parts.append(chunk(4, struct.pack("<Idd", i + 1, collected, offset)))
    parts += [footer_chunk(i + 1, s) for i, s in enumerate(streams)]
    path.write_bytes(b"".join(parts))
    return path
