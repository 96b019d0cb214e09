"""Replay of a LabRecorder XDF file as myosight's LSL streams (`myosight replay FILE.xdf`).

What is published, with the recorded relative timing (the scheduling, pause/seek/speed control and loop are
the session replay's, capture/playback.py):
- EMG: streams of type "EMG" with 8 numeric channels become myosight-emg-left/right. The arm comes from the
  `left`/`right` options (a stream's name, source id or XDF stream id), else from the stream's description
  (an `arm` field, as myosight's own streams have), else from the word "left"/"right" in its name. Any
  doubt is an error that names the streams, never a guess.
- Video: a stream in myosight's video format (type "Video", int8, size x size x 3 channels), if present:
  the recorded source's (the file header names it), else the first myosight one, else the first one.
- Labels on myosight-labels: the marker stream the file header names as the activity labels (a file
  `myosight record --format xdf` wrote), else the myosight label streams (source id myosight-*-labels),
  else every single-channel string stream (markers), merged in time.

The file is checked chunk by chunk first (capture/xdf_format.py), which also gives every stream's header:
the streams to replay are chosen from those, and only they are read with pyxdf (its `select_streams`: the
other streams' samples, a raw camera say, are skipped, never held in memory), with its clock
synchronisation (ClockOffset chunks) and without dejittering (the recorded stamps are kept, as for
sessions). Every problem with the file is a SessionFormatError naming it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from myosight.capture.playback import Event, Replay, emg_chunk_events
from myosight.capture.streams import emg_stream_info, open_outlet, push_frame, video_stream_info
from myosight.capture.xdf_format import scan_xdf
from myosight.constants import ARMS
from myosight.errors import ConfigError, SessionFormatError, install_hint

log = logging.getLogger(__name__)

_ARM_WORD = {arm: re.compile(rf"(?<![a-z]){arm}(?![a-z])", re.IGNORECASE) for arm in ARMS}
_MYOSIGHT_LABELS = re.compile(r"^myosight-.+-labels$")


@dataclass
class XdfStreamInfo:
    """One stream of the file as its header describes it (`desc` in pyxdf's form: each field a list)."""

    stream_id: int
    name: str
    type: str
    source_id: str
    channel_format: str
    channels: int
    nominal_srate: float
    desc: dict

    def label(self) -> str:
        return f"'{self.name}' (id {self.stream_id}, type {self.type or '-'}, {self.channels} channels)"


@dataclass
class XdfStream(XdfStreamInfo):
    """One stream of the file with its samples, as pyxdf gives them."""

    time_s: np.ndarray
    data: np.ndarray | list


@dataclass
class XdfContents:
    """What the structural walk tells of a file: its streams, which holds the activity labels (when the file
    header says), and each stream's sample count."""

    streams: list[XdfStreamInfo]
    activity_labels: str | None
    counts: dict[int, int]
    lsl_source: str | None = None  # the myosight source the recorder recorded


def scan_streams(path: str | Path) -> XdfContents:
    """Check the file and describe its streams without reading any samples; SessionFormatError for anything
    wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise SessionFormatError(path, "no such file")
    scan = scan_xdf(path)
    infos = [_info(path, stream_id, stream.header) for stream_id, stream in scan.streams.items()]
    labels = (scan.file_header.findtext("myosight/activity_labels") or "").strip() or None
    source = (scan.file_header.findtext("myosight/lsl_source") or "").strip() or None
    return XdfContents(infos, labels, {stream_id: stream.samples for stream_id, stream in scan.streams.items()},
                       source)


def _info(path: Path, stream_id: int, header: Element) -> XdfStreamInfo:
    def field(name: str) -> str:
        return (header.findtext(name) or "").strip()

    desc = header.find("desc")
    try:
        return XdfStreamInfo(stream_id, field("name"), field("type"), field("source_id"), field("channel_format"),
                             int(field("channel_count")), float(field("nominal_srate")),
                             _as_dict(desc) if desc is not None else {})
    except ValueError as error:  # the walk checked these; kept for a header it let through
        raise SessionFormatError(path, f"stream {stream_id}: unreadable header ({error})") from None


def _as_dict(element: Element) -> dict:
    """An XML element as pyxdf gives it: {tag: [text or nested dict, ...]}."""
    fields: dict[str, list] = {}
    for child in element:
        fields.setdefault(child.tag, []).append(_as_dict(child) if len(child) else (child.text or ""))
    return fields


def read_xdf(path: str | Path, select: list[int] | None = None, contents: XdfContents | None = None
             ) -> list[XdfStream]:
    """Check an XDF file and read its streams (those whose ids are in `select`; None: all) with pyxdf; the
    others' samples are skipped, never loaded. SessionFormatError for anything wrong with the file."""
    path = Path(path)
    contents = contents or scan_streams(path)
    counts = contents.counts
    try:
        import pyxdf
    except ImportError:
        raise ConfigError(f"XDF replay needs pyxdf: {install_hint('xdf')}") from None
    if select is not None and not select:
        return []
    try:
        with np.errstate(all="ignore"):  # damaged clock offsets overflow its fit; the result is checked below
            loaded, _ = pyxdf.load_xdf(str(path), select_streams=select, synchronize_clocks=True,
                                       dejitter_timestamps=False)
    except Exception as error:  # pyxdf signals a bad file with any exception type; all mean the same here
        raise SessionFormatError(path, f"pyxdf cannot read it ({type(error).__name__}: {error})") from error
    streams = [_stream(path, raw) for raw in loaded]
    for stream in streams:
        if len(stream.time_s) != counts.get(stream.stream_id):
            raise SessionFormatError(path, f"stream {stream.label()}: {len(stream.time_s)} samples read, "
                                     f"{counts.get(stream.stream_id)} in the file")
    return streams


def _stream(path: Path, raw: dict) -> XdfStream:
    info = raw["info"]

    def field(name: str) -> str:
        value = info.get(name) or [""]
        return str(value[0] or "").strip()

    desc = info.get("desc") or [None]
    stream = XdfStream(
        stream_id=int(info["stream_id"]), name=field("name"), type=field("type"), source_id=field("source_id"),
        channel_format=field("channel_format"), channels=int(field("channel_count")),
        nominal_srate=float(field("nominal_srate")), desc=desc[0] if isinstance(desc[0], dict) else {},
        time_s=np.asarray(raw["time_stamps"], np.float64), data=raw["time_series"])
    if not np.all(np.isfinite(stream.time_s)):
        raise SessionFormatError(path, f"stream {stream.label()}: time stamps that are not finite after clock "
                                 "synchronisation")
    return stream


class XdfReplay(Replay):
    """Publishes an XDF file's EMG, video and markers with their recorded relative timing."""

    def __init__(self, path: str | Path, *, speed: float = 1.0, loop: bool = False, source: str = "replay",
                 control_address: str | None = None, left: str | None = None, right: str | None = None,
                 include_video: bool = True, start_offset_s: float = 0.0, max_seconds: float | None = None) -> None:
        super().__init__(speed=speed, loop=loop, source=source, control_address=control_address)
        self.path = Path(path)
        contents = scan_streams(self.path)
        arms = choose_arms(contents.streams, self.path, left=left, right=right)
        video_info = _video_stream(contents.streams, contents.lsl_source) if include_video else None
        label_infos = label_streams(contents)
        wanted = [s.stream_id for s in [*arms.values(), *([video_info] if video_info else []), *label_infos]]
        loaded = {s.stream_id: s for s in read_xdf(self.path, sorted(set(wanted)), contents)}
        self.emg = {arm: (loaded[s.stream_id].time_s, np.asarray(loaded[s.stream_id].data, np.float32))
                    for arm, s in arms.items()}
        video = loaded[video_info.stream_id] if video_info is not None else None
        self.video = (video.time_s, np.asarray(video.data, np.int8)) if video is not None else None
        self.frame_size = (_frame_size(video) or 0) if video is not None else 0  # known: _video_stream checked
        self.video_rate = video.nominal_srate if video is not None else 0.0
        self.labels = _markers([loaded[s.stream_id] for s in label_infos])
        for name, (times, _) in [*self.emg.items(), *([("video", self.video)] if self.video else [])]:
            if np.any(np.diff(times) < 0):
                raise SessionFormatError(self.path, f"the {name} stream's time stamps go backwards")
        self._span(start_offset_s, max_seconds)

    def _span(self, start_offset_s: float, max_seconds: float | None) -> None:
        series = [times for times, _ in self.emg.values()] + ([self.video[0]] if self.video else [])
        series = [times for times in series if len(times)]
        if not series:
            raise SessionFormatError(self.path, "nothing to replay: no EMG samples and no video frames")
        self.first_s = min(float(t[0]) for t in series) + start_offset_s
        self.last_s = max(float(t[-1]) for t in series)
        if max_seconds is not None:
            self.last_s = min(self.last_s, self.first_s + max_seconds)
        self.emg = {arm: self._crop(times, data) for arm, (times, data) in self.emg.items()}
        if self.video:
            self.video = self._crop(*self.video)
        self.labels = [(t, text) for t, text in self.labels if t <= self.last_s]

    def _crop(self, times: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = (times >= self.first_s) & (times <= self.last_s)
        return times[keep], data[keep]

    def _open_outlets(self) -> None:
        for arm in self.emg:
            self.outlets[f"emg-{arm}"] = open_outlet(emg_stream_info(arm, self.source))
        if self.video is not None:
            fps = self.video_rate or 30.0
            self.outlets["video"] = open_outlet(video_stream_info(self.frame_size, fps, self.source))

    def _events(self) -> list[Event]:
        events: list[Event] = []
        for arm, (times, data) in self.emg.items():
            events += emg_chunk_events(self.outlets[f"emg-{arm}"], times, data, self._counter(arm))
        if self.video is not None:
            outlet = self.outlets["video"]
            events += [Event(float(t), self._frame_sender(outlet, i)) for i, t in enumerate(self.video[0])]
        return events

    def _frame_sender(self, outlet, index: int) -> Callable[[float], None]:
        assert self.video is not None  # frames are sent only from a file with video
        times, frames = self.video

        def send(shift: float) -> None:
            push_frame(outlet, frames[index], float(times[index]) + shift)
            self.stats.frames += 1

        return send


def choose_arms(streams: list[XdfStreamInfo], path: Path, *, left: str | None = None,
                right: str | None = None) -> dict[str, XdfStreamInfo]:
    """The EMG stream of each arm present (see the module docstring for the rules)."""
    emg = emg_streams(streams)
    chosen: dict[str, XdfStreamInfo] = {}
    for arm, wanted in (("left", left), ("right", right)):
        if wanted is not None:
            chosen[arm] = _by_name(streams, wanted, path, arm)
    for stream in emg:
        if any(stream is s for s in chosen.values()):
            continue
        arms = _arms_of(stream)
        if len(arms) != 1 or arms[0] in chosen:
            raise ConfigError(f"{path}: cannot tell which arm the EMG stream {stream.label()} is; name the streams "
                              "with --left-stream/--right-stream (myosight replay; run and gui: --lsl-emg-left/"
                              f"--lsl-emg-right) (EMG streams: {', '.join(s.label() for s in emg)})")
        chosen[arms[0]] = stream
    if not chosen:
        found = ", ".join(s.label() for s in streams) or "none"
        raise SessionFormatError(path, f"no EMG stream (type EMG, 8 numeric channels); streams: {found}")
    return chosen


def _by_name(streams: list[XdfStreamInfo], wanted: str, path: Path, arm: str) -> XdfStreamInfo:
    hits = [s for s in streams if wanted in (s.name, s.source_id, str(s.stream_id))]
    if len(hits) != 1:
        raise ConfigError(f"{path}: {len(hits)} streams match the {arm} arm's {wanted!r} (by name, source id or "
                          f"stream id); streams: {', '.join(s.label() for s in streams)}")
    stream = hits[0]
    if stream.channels != 8 or stream.channel_format == "string":
        raise ConfigError(f"{path}: the {arm} arm's stream {stream.label()} is not 8 numeric EMG channels")
    return stream


def emg_streams(streams: list[XdfStreamInfo]) -> list[XdfStreamInfo]:
    """The streams that can be an arm: type EMG, 8 numeric channels."""
    return [s for s in streams if s.type.lower() == "emg" and s.channels == 8 and s.channel_format != "string"]


def _arms_of(stream: XdfStreamInfo) -> list[str]:
    """The arm a stream's description names, else the arms its name mentions."""
    described = stream.desc.get("arm") or [None]
    if isinstance(described[0], str) and described[0].strip().lower() in ARMS:
        return [described[0].strip().lower()]
    return [arm for arm in ARMS if _ARM_WORD[arm].search(stream.name)]


def _frame_size(stream: XdfStreamInfo) -> int | None:
    """The side of a video stream's square frames, from its description (None when it does not say, or when
    the frames are not square or do not fill its channels)."""
    try:
        width, height = (int(str((stream.desc.get(key) or [""])[0]).strip()) for key in ("width", "height"))
    except ValueError:
        return None
    return width if width == height and width * height * 3 == stream.channels else None


def _video_stream(streams: list[XdfStreamInfo], source: str | None = None) -> XdfStreamInfo | None:
    """The video stream to replay, of myosight's layout (int8 channels holding square RGB frames): the recorded
    source's, else the first of a myosight source, else the first."""
    videos = [s for s in streams if s.type.lower() == "video" and s.channel_format == "int8" and _frame_size(s)]
    ours = [s for s in videos if s.source_id == f"myosight-{source}-video"]
    myosight = [s for s in videos if s.source_id.startswith("myosight-")]
    candidates = ours or myosight or videos
    return candidates[0] if candidates else None


def label_streams(contents: XdfContents) -> list[XdfStreamInfo]:
    """The marker streams replayed as labels (see the module docstring for the order of preference)."""
    markers = [s for s in contents.streams if s.channel_format == "string" and s.channels == 1]
    named = [s for s in markers if contents.activity_labels and s.source_id == contents.activity_labels]
    ours = [s for s in markers if _MYOSIGHT_LABELS.match(s.source_id)]
    return named or ours or markers


def _markers(streams: list[XdfStream]) -> list[tuple[float, str]]:
    markers = [(float(t), str(sample[0])) for s in streams if s.channel_format == "string" and s.channels == 1
               for t, sample in zip(s.time_s, s.data, strict=True)]
    return sorted(markers, key=lambda item: item[0])
