"""The session recorder: a source's LSL streams into an ActionSense-layout session (HDF5 + world video), an XDF
file (LabRecorder's format: capture/recorder_xdf.py), or both from the same inlets.

What is recorded: the streams of source S that exist (myosight-S-emg-left/right, -video, -labels, found by
source id, also when they appear later) plus the markers of `label_source` (the GUI publishes the user's
presses on myosight-<label_source>-labels as "<activity>|Start" / "<activity>|Stop"), which become the
session's activity rows. With `label_source` None (or S), S's own labels are the activity rows; otherwise
S's labels are kept as they came in `myosight-recorder/source-labels`. The result reads back with the
project's reader and trains with the project's commands, like any session. Further LSL streams the user
names (`extra_streams`: another program's markers, an IMU, a second camera) are recorded beside them as
they came: into the XDF file, and into the HDF5 file as `lsl-<name>/<type>` groups.

Timestamps: an LSL stamp, moved to this host's clock by the inlet's clock offset, becomes epoch seconds by
adding `time.time() - pylsl.local_clock()` measured once at the start; that number is stored in the file's
attribute "LSL clock to epoch offset (s)".

Why the file survives a crash and a full disk:
- The HDF5 file uses the earliest format: a latest-format file left open by a killed process is marked
  "open for write" and every reader refuses it.
- Rows are held in memory and written all at once every `flush_every_s`, then flushed. Between two
  flushes the file on disk is exactly what the last flush left, so a SIGKILL loses at most that interval.
  (HDF5 keeps no journal: a kill inside the few milliseconds of a write itself can still damage the file.)
- Video frames are JPEG rows of the file, flushed with everything else; the mp4 is written beside it under
  a partial name and renamed at a clean stop, or rebuilt from the JPEG rows by `recover_session`
  (`myosight record --recover FILE`, and automatically for unfinished sessions when `myosight record`
  starts in their folder). See capture/session_video.py.
- Before each write the recorder asks the file system for the room the pending rows can take (the file is
  extended with posix_fallocate past its end where the system has it; elsewhere, Windows and macOS, the
  free space of the disk is compared with what the flush needs). A full disk or a file-size limit says no
  (ENOSPC, EFBIG) before HDF5 writes a byte, so the recorder stops with a RecordingError naming the file
  and the file keeps everything up to the last flush. (When a write fails halfway inside HDF5, no reader
  can open the file.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pylsl

from myosight.capture.choice import SOURCE_ID_PREFIX, StreamChoice, parse_source_id
from myosight.capture.discovery import find_chosen_streams
from myosight.capture.inlets import LiveInlet
from myosight.capture.recorder_tracks import (
    METADATA_MARGIN,
    EmgTrack,
    LabelTrack,
    RawTrack,
    Track,
    VideoTrack,
    raw_group,
)
from myosight.capture.recorder_xdf import XdfRecording, XdfWriteError, partial_xdf_path
from myosight.capture.session_video import LiveVideo, finish_video, partial_video_path, world_video_path
from myosight.constants import ARMS
from myosight.data.activities import ACTIVITIES
from myosight.data.layout import SessionWriter, session_filename
from myosight.errors import ConfigError, MyosightError, StreamError
from myosight.paths import FULL_ERRNOS, file_name_problem, reserve_room
from myosight.processes import ignore_file_size_signal

log = logging.getLogger(__name__)

DISCOVERY_EVERY_S = 1.0
FORMATS = ("hdf5", "xdf")
#: The fields a named extra stream can be matched on (`--stream type=IMU`); a bare value is a name or source id.
STREAM_FIELDS = ("name", "type", "source_id", "hostname")


class RecordingError(MyosightError):
    """The session file cannot be written on (a full disk, a file-size limit, an I/O error)."""


@dataclass
class RecorderSpec:
    out_dir: str
    source: str | None = None  # every stream of this source; None: as `streams` chooses
    label_source: str | None = None  # the source of the activity labels, over `source`/`streams`
    subject: str = "S00"
    flush_every_s: float = 1.0
    classes: list[str] | None = None
    status_path: str | None = None  # JSON status after each flush; default <out_dir>/recorder-status.json
    resolve_timeout_s: float = 2.0
    video: bool = True  # False: the source publishes no video (no waiting for one at the start)
    formats: list[str] = field(default_factory=lambda: ["hdf5"])  # "hdf5" and/or "xdf"
    extra_streams: list[str] = field(default_factory=list)  # further LSL streams: NAME / SOURCE_ID or FIELD=VALUE
    streams: dict[str, str | None] | None = None  # a StreamChoice per role (its to_dict), over `source`

    def choice(self) -> StreamChoice:
        """The streams to record by role: `streams`, else every role of `source` (None: whichever myosight source
        streams it), with the activity labels from `label_source` where it is given."""
        choice = StreamChoice(**self.streams) if self.streams else StreamChoice.of(self.source)
        return replace(choice, labels=self.label_source) if self.label_source is not None else choice


@dataclass
class RecorderStats:
    state: str = "starting"  # recording, finished, failed
    session: str | None = None
    video: str | None = None
    xdf: str | None = None
    streams: list[str] = field(default_factory=list)  # source ids being recorded (a uid for a stream without one)
    rows: dict[str, int] = field(default_factory=dict)  # rows written per stream kind (emg-left, video, ...)
    ignored_markers: int = 0
    flushes: int = 0
    started_epoch: float = 0.0
    last_data_epoch: float | None = None
    lsl_to_epoch_s: float = 0.0
    error: str | None = None


class SessionRecorder:
    """open() finds the streams and creates the file, run(stop) records until `stop`, close() finishes the file
    and the video. `stats` says what is in the file so far."""

    def __init__(self, spec: RecorderSpec) -> None:
        if spec.flush_every_s <= 0:
            raise ConfigError(f"flush_every_s must be positive, got {spec.flush_every_s}")
        if not spec.formats or set(spec.formats) - set(FORMATS):
            raise ConfigError(f"recording formats must be among {', '.join(FORMATS)}, got {spec.formats}")
        problem = file_name_problem(spec.subject)
        if problem:  # the subject is part of the file names: they must be valid on every system
            raise ConfigError(f"subject {spec.subject!r} cannot be part of a file name: {problem}")
        self._extra = [parse_stream_query(query) for query in spec.extra_streams]
        self.spec = spec
        self.stats = RecorderStats()
        self.tracks: list[Track] = []
        self.writer: SessionWriter | None = None
        self.xdf: XdfRecording | None = None
        self.path: Path | None = None  # the HDF5 session's name (also when only the XDF file is recorded)
        self.on_flush: Callable[[RecorderStats], None] | None = None  # e.g. a progress display
        self._roles = _wanted_roles(spec)
        self._resolver: pylsl.ContinuousResolver | None = None
        self._failed = False
        self._write_failed = False  # HDF5 itself failed halfway: the file is left exactly as it is
        self._closed = False
        self._refused: set[str] = set()  # streams that appeared later but cannot be recorded
        self._groups: set[str] = set()  # HDF5 groups of the extra streams

    @property
    def hdf5(self) -> bool:
        return "hdf5" in self.spec.formats

    @property
    def status_path(self) -> Path:
        return Path(self.spec.status_path or Path(self.spec.out_dir) / "recorder-status.json")

    def _session_path(self) -> Path:
        """The session's path, which open() chooses; what needs it before then is a bug in the caller."""
        if self.path is None:
            raise RuntimeError("the recorder is not open: call open() first")
        return self.path

    # -- start -----------------------------------------------------------------------------------------
    def open(self) -> Path:
        """Find the streams (StreamError when the source has none) and create the session file."""
        choice = self.spec.choice()
        if not choice.explicit:  # the roles left to the network: found now, then followed by source id
            self._roles = _wanted_roles(self.spec, find_chosen_streams(
                choice, _recorded_roles(self.spec), self.spec.resolve_timeout_s))
        infos = self._wanted(_resolve(self._predicate(), len(self._roles) + len(self._extra),
                                      self.spec.resolve_timeout_s))
        source_ids = set(self._roles)
        if not any(info.source_id() in source_ids for info in infos):
            looked = ", ".join(sorted(source_ids)) or "any myosight stream"
            raise StreamError(f"no LSL stream of {choice.describe()} found within {self.spec.resolve_timeout_s:g} s "
                              f"(looked for {looked}; `myosight streams` lists what is on the network; --wait gives "
                              "a source that is starting more time)")
        for query in self._extra:
            if not any(_matches(info, query) for info in infos):
                log.warning("no LSL stream %s yet; it is recorded when it appears", _describe(query))
        self.stats.lsl_to_epoch_s = lsl_to_epoch_offset()
        self.stats.started_epoch = time.time()
        claimed = (lambda p: p) if self.hdf5 else (lambda p: p.with_suffix(".xdf"))
        path = self.path = _new_session_path(Path(self.spec.out_dir), self.stats.started_epoch, self.spec.subject,
                                             claimed)
        try:
            for track in self._make_tracks(infos):
                self._keep(track)
            self._create_files(path)
        except BaseException:  # a refused stream or an unwritable file: no empty session is left behind
            with contextlib.suppress(OSError):
                if claimed(path).stat().st_size == 0:
                    claimed(path).unlink()
            raise
        self._resolver = pylsl.ContinuousResolver(pred=self._predicate())
        self.stats.state = "recording"
        self._write_status()
        log.info("recording %s into %s", ", ".join(self.stats.streams), path)
        return path

    def _create_files(self, path: Path) -> None:
        """The HDF5 session and/or the XDF file at `path`; the tracks opened so far are recorded into both."""
        try:
            if self.hdf5:
                self.writer = SessionWriter(path, libver="earliest", file_attrs=self._file_attrs())
            if "xdf" in self.spec.formats:
                xdf_path = path.with_suffix(".xdf")
                self.xdf = XdfRecording(xdf_path, {
                    "recorder": "myosight record", "subject": self.spec.subject,
                    "lsl_source": self._recorded_source(), "activity_labels": self._activity_labels(),
                    "lsl_clock_to_epoch_offset_s": repr(self.stats.lsl_to_epoch_s)})
                self.stats.xdf = str(xdf_path)
        except (OSError, XdfWriteError) as error:
            self._close_inlets()
            if self.writer is not None:
                self.writer.close()
            raise RecordingError(f"{path}: cannot create the session file ({error})") from error
        for track in self.tracks:
            self._attach_xdf(track)
        self.stats.session = str(path if self.hdf5 else self.stats.xdf)

    def _attach_xdf(self, track: Track) -> None:
        if self.xdf is not None:
            track.xdf = self.xdf.add_stream(track.inlet)

    def _file_attrs(self) -> dict[str, str]:
        return {"Subject": self.spec.subject, "Recorder": "myosight record",
                "LSL source": self._recorded_source(), "Label source": self._activity_labels(),
                "LSL clock to epoch offset (s)": repr(self.stats.lsl_to_epoch_s),
                "Recording started": datetime.fromtimestamp(self.stats.started_epoch).isoformat()}

    def _recorded_source(self) -> str:
        """The source of the recorded video (else of the EMG): what a replay of the XDF file looks for."""
        by_role = {role: sid for sid, role in self._roles.items()}
        source_id = by_role.get("video") or by_role.get("emg-right") or by_role.get("emg-left")
        parsed = parse_source_id(source_id) if source_id else None
        return parsed[0] if parsed else "-"

    def _activity_labels(self) -> str:
        """The source id whose markers are the activity rows ('-' when none was chosen or found)."""
        return next((sid for sid, role in self._roles.items() if role == "activities"), "-")

    def _make_tracks(self, infos: list[pylsl.StreamInfo]) -> list[Track]:
        """One track per stream, opened side by side (an inlet takes ~0.6 s to measure its clock offset)."""
        with ThreadPoolExecutor(max_workers=len(infos)) as pool:
            futures = [pool.submit(self._make_track, info) for info in infos]
        made = [f.result() for f in futures if f.exception() is None]
        failed = [error for f in futures if (error := f.exception()) is not None]
        if failed:
            for track in made:
                track.inlet.close()
            raise failed[0]
        return made

    def _make_track(self, info: pylsl.StreamInfo) -> Track:
        role = self._roles.get(info.source_id(), "extra")
        offset = self.stats.lsl_to_epoch_s
        track: Track
        if role == "extra" or not self.hdf5:
            track = self._raw_track(info, role)
        elif role.startswith("emg-"):
            track = EmgTrack(LiveInlet(info, channels=8), offset, role[4:])
        elif role == "video":
            inlet = LiveInlet(info, max_chunk=16)  # its frame shape comes from the stream's description
            height, width, _ = inlet.sample_shape
            live = LiveVideo(partial_video_path(self._session_path()), info.nominal_srate())
            track = VideoTrack(inlet, offset, live, width, height)
        else:
            track = LabelTrack(LiveInlet(info, lost_after_s=1e9), offset, as_activities=role == "activities",
                               classes=list(self.spec.classes or ACTIVITIES))
        track.role = role  # an extra stream's role is its name, given when it is kept
        track.key = _key(info)
        return track

    def _raw_track(self, info: pylsl.StreamInfo, role: str) -> RawTrack:
        """A stream as it came: an extra stream, or every stream when only the XDF file is recorded."""
        row_bytes = max(1, info.channel_count()) * (8 if info.channel_format() == pylsl.cf_string else 4)
        inlet = LiveInlet(info, channels=8 if role.startswith("emg-") else None, frames=False,
                          max_chunk=int(min(1024, max(1, (4 << 20) // row_bytes))),
                          lost_after_s=1e9 if info.channel_format() == pylsl.cf_string else 5.0)
        return RawTrack(inlet, self.stats.lsl_to_epoch_s, info.type())

    def _unique_role(self, name: str) -> str:
        roles = {track.role for track in self.tracks}
        role, n = name or "stream", 1
        while role in roles or role in self._roles.values():
            n += 1
            role = f"{name}-{n}"
        return role

    def _keep(self, track: Track) -> None:
        if track.role == "extra":
            track.role = self._unique_role(track.inlet.name)
            if self.hdf5 and isinstance(track, RawTrack):  # an extra stream always is one (_make_track)
                track.group = raw_group(track.inlet.name, track.lsl_type, self._groups)
        self.tracks.append(track)
        self.stats.streams.append(track.key)

    def _predicate(self) -> str:
        return " or ".join([_predicate(self._roles), *(_query_predicate(q) for q in self._extra)])

    def _wanted(self, infos: list[pylsl.StreamInfo]) -> list[pylsl.StreamInfo]:
        """The streams to record among those found: the source's by source id, the extra ones by their query;
        each once."""
        unique: dict[str, pylsl.StreamInfo] = {}
        for info in infos:
            if info.source_id() in self._roles or any(_matches(info, q) for q in self._extra):
                unique.setdefault(_key(info), info)
        return list(unique.values())

    def _discover(self) -> None:
        """Open streams that appeared since the start (an armband that connected late, the GUI's labels, an
        extra stream started later)."""
        if self._resolver is None:
            raise RuntimeError("the recorder is not open: call open() first")
        have = set(self.stats.streams)
        for info in self._wanted(self._resolver.results()):
            key = _key(info)
            if key not in have | self._refused:
                try:
                    track = self._make_track(info)
                    self._attach_xdf(track)
                    self._keep(track)
                    log.info("stream %s appeared; recording it too", key)
                except StreamError as error:
                    self._refused.add(key)
                    log.error("not recording %s: %s", key, error)

    # -- recording -------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> RecorderStats:
        """Record until `stop` is set; raises RecordingError when the file cannot take more (see close())."""
        if self._resolver is None:  # not open yet (the writer is no sign of it: an XDF-only recording has none)
            self.open()
        next_flush = time.monotonic() + self.spec.flush_every_s
        next_look = time.monotonic() + DISCOVERY_EVERY_S
        while not stop.is_set():
            pulled = self.pull()
            now = time.monotonic()
            if now >= next_flush:
                self.flush()
                next_flush = now + self.spec.flush_every_s
            if now >= next_look:
                self._discover()
                next_look = now + DISCOVERY_EVERY_S
            if not pulled:
                stop.wait(0.01)
        return self.stats

    def pull(self) -> int:
        """Pull every stream once; returns the number of samples that came."""
        return sum(track.pull() for track in self.tracks)

    def flush(self) -> None:
        """Write the pending rows and flush the files (after making sure the disk has room for them)."""
        if self._failed or (self.writer is None and self.xdf is None):
            return
        if self.writer is not None:
            self._flush_hdf5(self.writer, self._session_path())
        if self.xdf is not None:
            try:
                self.xdf.flush()
            except XdfWriteError as error:
                self._fail(str(error))
                raise RecordingError(str(error)) from None
        self._update_stats()
        self._write_status()
        if self.on_flush is not None:
            self.on_flush(self.stats)

    def _flush_hdf5(self, writer: SessionWriter, path: Path) -> None:
        needed = sum(track.pending_bytes() for track in self.tracks) + METADATA_MARGIN
        try:
            before = writer.size_bytes()
            reserve_space(path, before + needed)
            for track in self.tracks:
                track.write(writer)
            writer.flush()
            if writer.size_bytes() - before > needed:  # the estimate is meant to stay well above
                log.warning("%s: a flush took %d bytes, %d were reserved", path, writer.size_bytes() - before,
                            needed)
        except RecordingError as error:
            self._fail(str(error))
            raise
        except (OSError, RuntimeError) as error:
            self._write_failed = True
            self._fail(f"{path}: writing failed ({error}); the file holds what the previous flush wrote")
            raise RecordingError(self.stats.error) from error

    def _fail(self, message: str) -> None:
        self._failed = True
        self.stats.state, self.stats.error = "failed", message
        log.error("%s", message)
        self._write_status()

    def _update_stats(self) -> None:
        self.stats.flushes += 1
        for track in self.tracks:
            self.stats.rows[track.role] = _rows_written(track, hdf5=self.writer is not None)
            if track.last_epoch is not None:
                self.stats.last_data_epoch = max(self.stats.last_data_epoch or 0.0, track.last_epoch)
        self.stats.ignored_markers = sum(getattr(t, "ignored", 0) for t in self.tracks)

    # -- end -------------------------------------------------------------------------------------------
    def close(self) -> RecorderStats:
        """Write what is left, close the file and put the video in place. After a RecordingError nothing more
        is written: the file stays as the last flush left it."""
        if self._closed or (self.writer is None and self.xdf is None):
            return self.stats
        self._closed = True
        error: MyosightError | None = None
        try:
            if not self._failed:
                self.pull()
                last = max((t.last_epoch for t in self.tracks if t.last_epoch is not None), default=time.time())
                for track in self.tracks:
                    if isinstance(track, LabelTrack):
                        track.close_open(last)
                self.flush()
        except RecordingError as failure:
            error = failure
        finally:
            self._close_inlets()
            if self.writer is not None:
                self._close_file(self.writer, self._session_path())
            if self.xdf is not None:
                self.stats.xdf = str(self.xdf.close())
                self.stats.session = self.stats.session if self.hdf5 else self.stats.xdf
        self._finish_video()
        if self.stats.state != "failed":
            self.stats.state = "finished"
        self._write_status()
        if error is not None:
            raise error
        return self.stats

    def _close_inlets(self) -> None:
        order = {"labels": 0, "activities": 0, "video": 1}
        for track in sorted(self.tracks, key=lambda t: order.get(t.role, 2)):
            track.inlet.close()

    def _close_file(self, writer: SessionWriter, path: Path) -> None:
        """Close the file and give back the room reserved past its end."""
        try:
            size = writer.size_bytes()  # HDF5's end of the file: what it allocated or wrote, whichever is more
            writer.close()
        except (OSError, RuntimeError) as failure:
            log.error("%s: closing failed (%s)", path, failure)
            return
        if not self._write_failed and path.stat().st_size > size:
            os.truncate(path, size)

    def _finish_video(self) -> None:
        video = next((t for t in self.tracks if isinstance(t, VideoTrack)), None)
        if video is None:
            return
        try:
            path = finish_video(self._session_path(), video.live, video.written, self.spec.subject)
            self.stats.video = str(path) if path else None
        except MyosightError as failure:
            video.live.close()
            log.error("%s", failure)
            self.stats.error = self.stats.error or str(failure)

    def _write_status(self) -> None:
        """The stats as JSON beside the recording (replaced atomically), for a viewer in another process."""
        try:
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.status_path.with_name(self.status_path.name + ".tmp")
            partial.write_text(json.dumps({**asdict(self.stats), "pid": os.getpid()}, indent=1))
            os.replace(partial, self.status_path)
        except OSError as failure:
            log.debug("cannot write the recorder status %s: %s", self.status_path, failure)


# -- helpers -------------------------------------------------------------------------------------------
def _recorded_roles(spec: RecorderSpec) -> list[str]:
    return [f"emg-{arm}" for arm in ARMS] + (["video"] if spec.video else []) + ["labels"]


def _wanted_roles(spec: RecorderSpec, found: dict[str, pylsl.StreamInfo] | None = None) -> dict[str, str]:
    """Source id -> role ("emg-left", "emg-right", "video", "activities": the labels that become the activity rows,
    "labels": the EMG source's own labels kept as they came, when the activity labels come from elsewhere). The
    roles the choice names by source are followed by source id; those it leaves to the network, by the stream
    `found` for them."""
    choice = spec.choice()
    roles: dict[str, str] = {}
    for role in _recorded_roles(spec):
        source_id = choice.source_id(role) or (found[role].source_id() if found and role in found else None)
        if source_id is not None:
            roles[source_id] = "activities" if role == "labels" else role
    emg_source = next((parse_source_id(sid)[0] for sid, role in roles.items()  # type: ignore[index]
                       if role.startswith("emg-")), None)
    own_labels = f"{SOURCE_ID_PREFIX}{emg_source}-labels" if emg_source else None
    if own_labels is not None and own_labels not in roles:
        roles[own_labels] = "labels"
    return roles


def _rows_written(track: Track, *, hdf5: bool) -> int:
    """The rows of a track that are in the file: the HDF5 file's when there is one, else the XDF file's."""
    if hdf5:
        return track.written
    return track.xdf.written if track.xdf is not None else 0


def _predicate(roles: dict[str, str]) -> str:
    return " or ".join(f"source_id='{source_id}'" for source_id in roles)


def _resolve(predicate: str, count: int, timeout_s: float) -> list[pylsl.StreamInfo]:
    """The streams that match now; waits until `count` are there or `timeout_s` passed."""
    return list(pylsl.resolve_bypred(predicate, count, timeout_s))


def _key(info: pylsl.StreamInfo) -> str:
    """What tells a stream apart: its source id (it survives a restart of the sender), else its uid."""
    return info.source_id() or info.uid()


def parse_stream_query(query: str) -> tuple[str, str]:
    """A named extra stream as (field, value): "NAME" (a name or a source id) or "FIELD=VALUE" with FIELD one of
    STREAM_FIELDS. ConfigError for anything else (the value goes into an LSL query: no quotes)."""
    field_name, sep, value = query.partition("=")
    if not sep:
        field_name, value = "", query
    value = value.strip()
    if sep and field_name.strip() not in STREAM_FIELDS:
        raise ConfigError(f"--stream {query!r}: the field must be one of {', '.join(STREAM_FIELDS)} (or give a name)")
    if not value or "'" in value or '"' in value:
        raise ConfigError(f"--stream {query!r}: give a stream name, source id or FIELD=VALUE without quotes")
    return field_name.strip(), value


def _query_predicate(query: tuple[str, str]) -> str:
    field_name, value = query
    if not field_name:
        return f"name='{value}' or source_id='{value}'"
    return f"{field_name}='{value}'"


def _matches(info: pylsl.StreamInfo, query: tuple[str, str]) -> bool:
    field_name, value = query
    if not field_name:
        return value in (info.name(), info.source_id())
    return getattr(info, field_name)() == value


def _describe(query: tuple[str, str]) -> str:
    return f"named '{query[1]}'" if not query[0] else f"with {query[0]} '{query[1]}'"


def lsl_to_epoch_offset() -> float:
    """Epoch seconds minus the LSL clock, from the tightest of a few bracketed readings."""
    readings = []  # (the width of the bracket, the offset it gives)
    for _ in range(5):
        before = pylsl.local_clock()
        epoch = time.time()
        after = pylsl.local_clock()
        readings.append((after - before, epoch - (before + after) / 2))
    return min(readings, key=lambda reading: reading[0])[1]


def _new_session_path(out_dir: Path, start_epoch: float, subject: str,
                      claimed: Callable[[Path], Path] = lambda path: path) -> Path:
    """The recorder's file name; a second recording started within the same second gets the next second's.

    The name is claimed by creating the file `claimed(path)` (empty; the writer then fills it) exclusively, so
    two recorders started at the same moment into one folder get two names, never one file between them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for second in range(3600):
        path = out_dir / session_filename(start_epoch + second, f"myosight_{subject}")
        taken = (path, world_video_path(path, subject), path.with_suffix(".xdf"),
                 partial_xdf_path(path.with_suffix(".xdf")))
        if any(name.exists() for name in taken):
            continue
        try:
            with claimed(path).open("xb"):
                return path
        except FileExistsError:  # another recorder took it between the look and the claim
            continue
    raise ConfigError(f"{out_dir}: no free session file name near {datetime.fromtimestamp(start_epoch)}")


def reserve_space(path: Path, size: int) -> None:
    """Make sure `path` can grow to `size` bytes, or raise RecordingError naming it (full disk, size limit)."""
    try:
        reserve_room(path, size)
    except OSError as error:
        why = "the disk is full or the file reached its size limit" if error.errno in FULL_ERRNOS else \
            "the file cannot grow"
        raise RecordingError(f"{path}: {why} ({os.strerror(error.errno or 0)}); recording stopped, the file keeps "
                             "everything up to the last flush") from None


# -- the GUI's child process ---------------------------------------------------------------------------
def recorder_process(spec: dict, stop: threading.Event, ready: Any) -> None:
    """Child target (see `myosight.processes`): record until `stop`; exit code 1 on an error."""
    ignore_file_size_signal()
    recorder = SessionRecorder(RecorderSpec(**spec))
    failed = False
    try:
        recorder.open()
        ready.set()
        recorder.run(stop)
    except MyosightError as error:
        log.error("recorder: %s", error)
        failed = True
    finally:
        with contextlib.suppress(MyosightError):
            recorder.close()
    if failed or recorder.stats.state == "failed":
        raise SystemExit(1)
