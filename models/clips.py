"""Clip geometry shared by training and the live worker, and the one resolver of it.

A sample is a time span (5 s in ActionSense) cut into `clips_per_sample` equal segments. Clip i of the
sample covers segment i: the RGB frames of the clip are sampled inside it and the sEMG window of the clip
is the whole segment, so both modalities of a clip describe the same moment. The geometry is stored in
the model bundle so that training and live inference can never disagree.

Frames have two sizes. The *frame* (`crop_size`) is a camera frame with its shorter side resized to
`short_side` and centre-cropped to a square: what sources publish, the viewer shows and offline extraction
prepares. The *input* (`input_size`) is what I3D reads: the frame itself, or the frame area-downscaled
for the reduced-resolution mode (112 px: 4x less I3D compute). `resolve_geometry` decides both once, from
the model's geometry and the user's override, for the sources, the worker and offline extraction alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from myosight.constants import (
    CLIPS_PER_SAMPLE,
    FRAMES_PER_CLIP,
    I3D_CROP,
    I3D_FPS,
    I3D_SHORT_SIDE,
    SAMPLE_SECONDS,
)
from myosight.errors import ConfigError

#: The smallest I3D input that still gives one feature step per clip.
MIN_INPUT_SIZE = 32
SAMPLING_MODES = ("dense", "uniform")
def short_side_for(crop_size: int) -> int:
    """The resize target of a frame's shorter side for a centre crop of `crop_size`: I3D's 256 -> 224 ratio."""
    return round(crop_size * I3D_SHORT_SIDE / I3D_CROP)


@dataclass(frozen=True)
class ClipGeometry:
    """How a sample is cut into clips and how each clip's frames are prepared for I3D."""

    clips_per_sample: int = CLIPS_PER_SAMPLE
    sample_seconds: float = SAMPLE_SECONDS
    frames_per_clip: int = FRAMES_PER_CLIP
    fps: float = I3D_FPS  # the frame rate I3D was trained at; video is resampled to it by timestamps
    short_side: int | None = None  # the frame: shorter side resized to this (None: at I3D's 256/224 ratio) ...
    crop_size: int = I3D_CROP  # ... then centre-cropped to crop_size x crop_size
    sampling: str = "dense"  # "dense": consecutive frames; "uniform": spread over the segment
    input_size: int | None = None  # I3D's input (None: crop_size): the frame, area-downscaled when smaller

    def __post_init__(self) -> None:
        """Fill in the derived sizes (a frozen dataclass: set once, here) and check them."""
        if self.short_side is None:
            object.__setattr__(self, "short_side", short_side_for(self.crop_size))
        if self.input_size is None:
            object.__setattr__(self, "input_size", self.crop_size)
        if self.short_side != short_side_for(self.crop_size):
            raise ValueError(f"short_side {self.short_side} does not keep I3D's 256/224 ratio for crop_size "
                             f"{self.crop_size} (expected {short_side_for(self.crop_size)})")
        if not MIN_INPUT_SIZE <= self.input_side <= self.crop_size:
            raise ValueError(f"input_size {self.input_size} must be between {MIN_INPUT_SIZE} and crop_size "
                             f"{self.crop_size}")

    @property
    def input_side(self) -> int:
        """I3D's input in pixels: `input_size` as filled in when the geometry was made (never None)."""
        assert self.input_size is not None  # __post_init__ sets it
        return self.input_size

    @property
    def clip_seconds(self) -> float:
        return self.sample_seconds / self.clips_per_sample

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ClipGeometry:
        """From a stored geometry (one stored before `input_size` existed read its frames at crop_size)."""
        unknown = sorted(set(values) - {item.name for item in fields(cls)})
        if unknown:
            raise ValueError(f"unknown clip geometry field(s) {', '.join(unknown)}")
        return cls(**values)


def resolve_geometry(geometry: ClipGeometry | None = None, input_size: int | None = None,
                     sampling: str | None = None) -> ClipGeometry:
    """The geometry a run uses: the model's (its bundle's or dataset's; default: I3D's own) merged with the
    user's override of the I3D input size (and, offline, of the sampling mode).

    An input no larger than the model's frame is read from that frame; a larger one needs a larger frame,
    which is cropped at I3D's ratio. Raises ConfigError for a size or sampling mode that cannot work.
    """
    geometry = geometry or ClipGeometry()
    if sampling is not None and sampling not in SAMPLING_MODES:
        raise ConfigError(f"unknown sampling {sampling!r}; expected one of {', '.join(SAMPLING_MODES)}")
    if input_size is not None:
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < MIN_INPUT_SIZE:
            raise ConfigError(f"input size {input_size!r} is too small for I3D (use 112 or more; 224 is what it "
                              "was trained on)")
        crop = max(geometry.crop_size, input_size)
        geometry = replace(geometry, crop_size=crop, short_side=short_side_for(crop), input_size=input_size)
    return replace(geometry, sampling=sampling or geometry.sampling)


def clip_segments(start_s: float, geometry: ClipGeometry) -> np.ndarray:
    """Return the (clips_per_sample, 2) [start, stop) times of the clips of a sample starting at `start_s`."""
    edges = start_s + geometry.clip_seconds * np.arange(geometry.clips_per_sample + 1)
    return np.stack([edges[:-1], edges[1:]], axis=1)


# -- frame sampling --------------------------------------------------------------------------------------
#
# Every frame path (offline feature extraction, the live worker) chooses a clip's frames here, by time: the
# wanted instants of a clip are computed from its segment, and each instant takes the latest video frame
# not after it. Choosing by timestamps converts any camera rate (about 30 fps, with jitter and drops) to the
# model's rate, and "latest not after" is what a live camera buffer can answer without seeing the future,
# so offline features and live features come from the same frames.


def sample_bounds(start_s: float, geometry: ClipGeometry, stop_s: float | None = None) -> np.ndarray:
    """The (clips_per_sample, 2) [start, stop) segments of a sample.

    Without `stop_s` the sample lasts `geometry.sample_seconds` (ActionSense sub-actions, the live
    window); with it the sample is [start_s, stop_s) cut into equal parts (variable-length action segments
    such as EPIC-Kitchens').
    """
    if stop_s is None:
        return clip_segments(start_s, geometry)
    if not stop_s > start_s:
        raise ValueError(f"a sample must end after it starts, got [{start_s}, {stop_s})")
    edges = np.linspace(start_s, stop_s, geometry.clips_per_sample + 1)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def clip_frame_times(
    segment_start: float,
    segment_stop: float,
    geometry: ClipGeometry,
    mode: str | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The (frames_per_clip,) instants whose frames make up the clip of one segment.

    Each instant opens one frame period and the periods tile the span the clip looks at:

    * dense: `frames_per_clip` consecutive periods of 1 / `geometry.fps` (16 frames at 25 fps = 0.64 s),
      centred in the segment; with `rng` (training augmentation) the span starts at a random point that
      keeps it inside the segment. A segment shorter than the span gets the centred span, which then
      reaches into its neighbours.
    * uniform: the segment cut into `frames_per_clip` equal periods; with `rng`, a random instant inside
      each period instead of its start.

    `mode` defaults to `geometry.sampling`.
    """
    mode = mode or geometry.sampling
    count = geometry.frames_per_clip
    length = float(segment_stop) - float(segment_start)
    if length <= 0:
        raise ValueError(f"empty clip segment [{segment_start}, {segment_stop})")
    if mode == "dense":
        period = 1.0 / geometry.fps
        span = count * period
        slack = length - span
        offset = slack / 2 if rng is None or slack <= 0 else float(rng.uniform(0.0, slack))
        return segment_start + offset + period * np.arange(count, dtype=np.float64)
    if mode == "uniform":
        period = length / count
        jitter = np.zeros(count) if rng is None else rng.uniform(0.0, 1.0, count)
        return segment_start + period * (np.arange(count, dtype=np.float64) + jitter)
    raise ValueError(f"unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")


def sample_frame_times(
    start_s: float,
    geometry: ClipGeometry,
    rng: np.random.Generator | None = None,
    stop_s: float | None = None,
) -> np.ndarray:
    """The (clips_per_sample, frames_per_clip) frame instants of a sample (see `clip_frame_times`)."""
    segments = sample_bounds(start_s, geometry, stop_s)
    return np.stack([clip_frame_times(a, b, geometry, rng=rng) for a, b in segments])


def latest_not_after(frame_times: np.ndarray, wanted_times: np.ndarray) -> np.ndarray:
    """For each wanted instant, the index of the latest frame whose timestamp is not after it.

    The one frame-choosing rule of myosight (offline extraction, `myosight i3d classify` and the live
    worker's frame ring all use it): causal, so a live buffer that cannot see future frames picks exactly
    what offline extraction picks. `frame_times` are non-decreasing, on the clock of `wanted_times`; the
    result has the shape of `wanted_times`; instants before the first frame take the first frame. A
    tolerance of 1 microsecond absorbs timestamps that were rounded when stored.
    """
    times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    wanted = np.asarray(wanted_times, dtype=np.float64)
    if len(times) == 0:
        raise ValueError("the video has no frames")
    indices = np.searchsorted(times, wanted + 1e-6, side="right") - 1
    return np.clip(indices, 0, len(times) - 1).astype(np.int64)


def clip_ready(segment_stop: float, latest_frame_time: float | None) -> bool:
    """Whether a live frame buffer can already give every frame of the clip ending at `segment_stop`.

    Frames arrive in time order, so once a frame at or after the segment's stop has arrived, no later frame
    can change which frame is "latest not after" any instant of the clip (all of them lie before the stop
    when the segment is at least the clip's span, as in the live 1-s segments). The clip's sEMG window
    ends at the same instant, so both modalities of the clip are complete together.
    """
    return latest_frame_time is not None and float(latest_frame_time) >= float(segment_stop)
