"""RGB features of a calibration's repetitions, computed while the recording runs.

A child process (`feature_process`, started like the worker) subscribes to the source's video stream and
to the calibration's label markers. When a repetition ends ("<activity>|Stop", rated Good) and the frames
after it are in, it computes the I3D feature of every clip of the repetition's training windows (its
windows, `calibration.plan.window_starts` one clip apart) with the live worker's own code
(`LivePredictor.rgb_feature`: the frames chosen by the offline rule, the input made by the offline
function; a clip shared by two windows is computed once). By the time the last repetition ends the I3D work
is done, so training starts at once. A cancelled repetition ("|Stop|Bad") is not computed; a discarded one
("|Discard") is dropped.

The features are written after every repetition (atomically) to an npz file: `clip_starts` (M,) the LSL
time of each clip's start and `features` (M, 1024) float32. The adaptation finds a window's clips by time
(the recorder stores LSL time + one offset).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from myosight.calibration.plan import WINDOW_REACH_CLIPS, window_starts
from myosight.capture.choice import StreamChoice
from myosight.capture.discovery import find_chosen_streams
from myosight.capture.inlets import LiveInlet, resolve
from myosight.capture.streams import StreamNames, parse_marker
from myosight.errors import StreamError
from myosight.models.bundle import load_bundle
from myosight.models.clips import ClipGeometry, clip_segments
from myosight.paths import replaced_when_done
from myosight.realtime.live import EmgLiveBuffer, FrameRing, LivePredictor
from myosight.realtime.worker import load_live_i3d

log = logging.getLogger(__name__)

#: How long the child waits for the video stream (its source starts at the same moment, or already runs).
VIDEO_TIMEOUT_S = 10.0
#: After the last repetition: how long the child waits for the frames that complete it.
DRAIN_S = 10.0
#: Frames taken from the stream between two looks at the label markers and the stop request: a child that
#: has fallen behind works through its backlog in these steps.
FRAMES_PER_PULL = 64


@dataclass
class FeatureSpec:
    """What the feature child computes, from which streams, into which file."""

    streams: dict  # the streams recorded, by role (a StreamChoice's fields): the video is taken from them
    labels: str  # the LSL source of the calibration's label markers
    bundle: str  # the base bundle (its I3D weights' hash is checked)
    geometry: dict  # the clip geometry of the features (resolved from the base bundle and --input-size)
    out: str  # the npz file
    ring_seconds: float = 20.0  # frames kept: at least a repetition's length


@dataclass
class _Repetition:
    activity: str
    start_s: float
    stop_s: float
    clips: dict[float, np.ndarray] = field(default_factory=dict)  # clip start -> feature
    done: bool = False


class RepetitionFeatures:
    """Follows the label markers; computes the clips of every repetition's training windows.

    The clips of the repetition under way are computed one by one as their frames come in (on the grid its
    training windows use, from its Start moved by the earliest window shift), so the I3D work keeps pace
    with the recording and the frame ring never has to hold a whole repetition: under load, a burst of a
    repetition's clips at its end lost the oldest frames to the ring. When the repetition ends, its exact
    training clips are gathered (most from the predictor's feature cache) once their frames are all in."""

    def __init__(self, predictor: LivePredictor, geometry: ClipGeometry) -> None:
        self.predictor, self.geometry = predictor, geometry
        self.open: tuple[str, float] | None = None
        self.next_clip_s: float | None = None  # the next grid clip of the open repetition to compute
        self.repetitions: list[_Repetition] = []

    def marker(self, text: str, time_s: float) -> None:
        marker = parse_marker(text)
        if marker is None:
            return
        if marker.kind == "Start":
            self.open = (marker.activity, time_s)
            self.next_clip_s = time_s - WINDOW_REACH_CLIPS * self.geometry.clip_seconds
        elif marker.kind == "Stop":
            opened, self.open, self.next_clip_s = self.open, None, None
            if opened is not None and opened[0] == marker.activity and marker.validity == "Good":
                self.repetitions.append(_Repetition(marker.activity, opened[1], time_s))
        elif self.repetitions and self.repetitions[-1].activity == marker.activity:  # Discard
            self.repetitions.pop()

    def compute_ready(self, frames_until: float | None) -> bool:
        """Compute what the frames so far allow; True when a finished repetition's clips were gathered."""
        if frames_until is None:
            return False
        self._compute_open(frames_until)
        gathered = False
        for repetition in self.repetitions:
            if not repetition.done:
                gathered |= self._gather(repetition, frames_until)
        return gathered

    def _compute_open(self, frames_until: float) -> None:
        """The open repetition's grid clips whose frames are all in."""
        clip_s = self.geometry.clip_seconds
        while self.next_clip_s is not None and self.next_clip_s + clip_s <= frames_until:
            self.predictor.rgb_feature(np.array([self.next_clip_s, self.next_clip_s + clip_s]))
            self.next_clip_s += clip_s

    def _gather(self, repetition: _Repetition, frames_until: float) -> bool:
        """A finished repetition's training clips, once the frames of its last window are in."""
        starts = window_starts(repetition.start_s, repetition.stop_s, self.geometry, self.geometry.clip_seconds)
        if frames_until < max(starts) + self.geometry.sample_seconds:
            return False
        segments = {float(seg[0]): seg for start in starts for seg in clip_segments(start, self.geometry)}
        for clip_start, segment in sorted(segments.items()):
            feature = self.predictor.rgb_feature(segment)
            if feature is not None:
                repetition.clips[clip_start] = feature.numpy()
        if len(repetition.clips) < len(segments):
            log.warning("%s at %.2f: %d clips without their frames, left to offline extraction",
                        repetition.activity, repetition.start_s, len(segments) - len(repetition.clips))
        repetition.done = True
        return True

    @property
    def pending(self) -> int:
        return sum(not repetition.done for repetition in self.repetitions)

    def save(self, path: Path) -> None:
        """The computed clips, written to a temporary name and moved into place."""
        clips = {start: feature for r in self.repetitions if r.done for start, feature in r.clips.items()}
        starts = sorted(clips)
        with replaced_when_done(path) as temporary:
            np.savez(temporary, clip_starts=np.asarray(starts, np.float64),
                     features=np.stack([clips[s] for s in starts]).astype(np.float32) if starts
                     else np.zeros((0, 1024), np.float32))


class _Feed:
    """The video inlet's sink: each chunk of frames into the ring, then the clips it completes.

    Computing after every chunk rather than after a whole backlog matters after a stall (a busy CPU): the
    backlog then goes through the ring in pieces the I3D work keeps up with, instead of pushing the oldest
    frames out before their clips were computed."""

    def __init__(self, frames: FrameRing, work: RepetitionFeatures) -> None:
        self.frames, self.work = frames, work
        self.gathered = False  # a finished repetition's clips were gathered since the flag was cleared
        self.compute_until: float | None = None  # time.monotonic() after which frames are only taken in

    def __call__(self, times: np.ndarray, chunk: np.ndarray) -> None:
        self.frames.push(times, chunk)
        if self.compute_until is None or time.monotonic() < self.compute_until:
            self.gathered |= self.work.compute_ready(self.frames.latest_time)


def feature_precision(geometry: ClipGeometry) -> str:
    """int8 where this CPU runs it and its network is built (2-7x faster I3D: the child keeps up with a
    recording where float32 falls behind), float32 otherwise (a build takes minutes: never made here)."""
    from myosight.models.i3d_int8 import int8_ready

    precision = "int8" if int8_ready(geometry.input_side, geometry.frames_per_clip) else "float32"
    log.info("calibration features: I3D in %s at %d px", precision, geometry.input_side)
    return precision


def _video_stream(choice: StreamChoice) -> pylsl.StreamInfo:
    """The video stream the calibration records (StreamError naming where it looked when none appears)."""
    found = find_chosen_streams(choice, ["video"], VIDEO_TIMEOUT_S)
    if "video" not in found:
        raise StreamError(f"no video stream from {choice.describe(['video'])} within {VIDEO_TIMEOUT_S:g} s "
                          "(myosight streams lists what is on the network)")
    return found["video"]


def feature_process(fields: dict, stop: threading.Event, ready: Any) -> None:
    """Child target: the features of every finished repetition until `stop`, then the last ones."""
    spec = FeatureSpec(**fields)
    bundle = load_bundle(spec.bundle)
    geometry = ClipGeometry.from_dict(spec.geometry)
    labels_names = StreamNames(spec.labels)
    video = LiveInlet(_video_stream(StreamChoice(**spec.streams)), lost_after_s=2.0, max_chunk=64)
    labels = LiveInlet(resolve(labels_names.source_id("labels"), 10.0), lost_after_s=1e9)
    fps = video.nominal_rate or 30.0
    height, width, channels = video.sample_shape  # a video stream's: (height, width, 3)
    frames = FrameRing((height, width, channels), capacity=int(np.ceil(spec.ring_seconds * fps * 1.5)))
    i3d = load_live_i3d(bundle, geometry, precision=feature_precision(geometry))
    predictor = LivePredictor(bundle, EmgLiveBuffer(bundle, keep_s=1.0), frames, i3d, geometry)
    work = RepetitionFeatures(predictor, geometry)
    feed = _Feed(frames, work)
    out = Path(spec.out)
    ready.set()
    try:
        drain_until = None
        while drain_until is None or (work.pending and time.monotonic() < drain_until):
            if stop.is_set() and drain_until is None:
                drain_until = feed.compute_until = time.monotonic() + DRAIN_S
            stamps, markers = labels.pull_markers()  # first: the frames pulled next may already belong to them
            for time_s, sample in zip(stamps, markers, strict=True):
                work.marker(str(sample[0] if isinstance(sample, list | tuple) else sample), float(time_s))
            feed.gathered = False
            pulled = video.pull_into(feed, max_samples=FRAMES_PER_PULL)
            if feed.gathered:
                work.save(out)
            elif pulled < FRAMES_PER_PULL:  # caught up with the stream
                time.sleep(0.02)
        work.save(out)
        if work.pending:
            log.warning("%d repetition(s) without all their frames: left to offline extraction", work.pending)
    finally:
        labels.close()
        video.close()
