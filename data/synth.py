"""Synthetic ActionSense sessions: the project's test bed for every reader, replay, training and live path.

A synthetic session is written in exactly the ActionSense recorder layout (one HDF5 file plus the world
camera mp4 beside it) and carries the structure of the paper's data:

* two Myo armbands (`myo-left/emg`, `myo-right/emg`, 8 channels each, int8 range in int32) at an
  effective rate of about 160 Hz, timestamped in pairs as the Myo delivers them, with the earlier sample of
  each pair moved to the midpoint of its neighbours as the recorder does;
* sEMG = band-limited noise shaped by a class-specific per-channel activation envelope with a
  class-specific rhythm; classes that use the same muscles (`SAME_MUSCLE_GROUPS`) share one
  envelope exactly, so sEMG alone cannot separate them, while the other classes differ with some
  overlap (families of similar actions), so sEMG alone is far above chance but well below 100 %;
* a first-person video whose hands move with the same rhythm as the sEMG and whose objects identify
  the class, so vision separates the same-muscle classes; the classes of a same-look group
  (`SAME_LOOK_GROUPS`: the dish handling) share one scene, object and motion, so vision confuses them
  while their muscle patterns differ: each modality has blind spots the other covers;
* Start/Stop label presses rated 'Good' (and, on request, 'Bad'/'Maybe' presses and a zero-time row that
  a correct reader must drop).

The class design (muscle patterns) is fixed and independent of the seed and the subject, so a model
trained on one synthetic session generalises to another; subjects differ by per-channel gains and looks,
sessions by action order, durations and per-action variation.
"""

from __future__ import annotations

import argparse
import math
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from myosight import options
from myosight.arms import arm_layout, arms_option
from myosight.constants import ARMS, CHANNELS_PER_ARM, EMG_CHANNELS
from myosight.data.activities import ACTIVITIES, SAME_LOOK_GROUPS, SAME_MUSCLE_GROUPS, canonical_activity
from myosight.errors import ConfigError, MyosightError
from myosight.progress import ProgressBar

if TYPE_CHECKING:
    from myosight.data.synth_scene import SceneRenderer


#: Sessions start on this (local) date and time plus `seed` minutes, so file names are deterministic.
BASE_START = datetime(2022, 6, 13, 10, 0, 0)

#: EMG standard deviation (Myo units) of a channel at activation 1.0, and at rest.
FULL_SCALE = 34.0
REST_LEVEL = 2.2
#: The noise band as fractions of the Nyquist frequency (20-68 Hz at 160 Hz).
NOISE_BAND = (0.25, 0.85)
#: Seconds over which the activation cross-fades when the activity changes (muscles do not switch instantly).
RAMP_S = 0.3
#: Standard deviation (s) of the arrival jitter of a Myo sample pair.
PAIR_JITTER_S = 0.002
#: Video starts this long after the session start (the camera opens after the recorder).
VIDEO_OFFSET_S = 0.1


# -- muscle patterns ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MusclePattern:
    """The sEMG activation envelope and hand motion shared by all classes that use the same muscles.

    The envelope of channel k at cycle phase theta is `level_k * (1 - depth_k + depth_k * burst_k)` with
    `burst_k = ((1 + cos(theta - phase_k)) / 2) ** sharpness`: a tonic level plus a rhythmic burst whose
    timing differs per channel (agonists and antagonists fire at different points of the cycle).
    """

    key: str
    family: str
    freq_hz: float
    motion: str
    sharpness: float
    level: np.ndarray  # (16,) left arm channels 0-7, right arm 8-15
    depth: np.ndarray  # (16,)
    phase: np.ndarray  # (16,)

    def envelope(self, theta: np.ndarray) -> np.ndarray:
        """Activation (n, 16) at cycle phases `theta` (n,)."""
        burst = (0.5 * (1.0 + np.cos(theta[:, None] - self.phase))) ** self.sharpness
        return self.level * (1.0 - self.depth + self.depth * burst)


#: key -> (family, rhythm in Hz, hand motion, burst sharpness). Members of a family have similar channel
#: levels (overlap for an sEMG classifier); 'solo' patterns have their own.
_PATTERN_TABLE: dict[str, tuple[str, float, str, float]] = {
    "fetch": ("solo", 0.35, "reach", 1.0),
    "clear_board": ("solo", 0.8, "sweep", 1.5),
    "peel": ("cut", 1.6, "stroke", 2.0),
    "slice": ("cut", 2.0, "chop", 3.0),
    "spread_almond": ("spread", 1.0, "spread", 1.5),
    "spread_jelly": ("spread", 1.3, "dab", 1.5),
    "jar": ("solo", 0.8, "twist", 2.0),
    "pour": ("solo", 0.3, "tilt", 1.0),
    "plate_sponge": ("clean", 2.4, "circle", 1.5),
    "plate_towel": ("clean", 1.5, "circle", 1.0),
    "pan_sponge": ("clean", 2.8, "scrub", 2.0),
    "pan_towel": ("clean", 1.8, "wipe", 1.0),
    "cabinet_get": ("dishes", 0.45, "reach", 1.0),
    "set_table": ("dishes", 0.8, "place", 1.0),
    "stack": ("dishes", 1.1, "lift", 1.5),
    "load_dishwasher": ("dishes", 0.6, "lower", 2.5),
    "unload_dishwasher": ("dishes", 1.4, "lift_out", 2.0),
}

#: Which muscle pattern each activity uses; same-muscle groups map to one key.
CLASS_PATTERN: dict[str, str] = dict(zip(ACTIVITIES, (
    "fetch", "clear_board", "peel", "slice", "peel", "slice", "slice", "spread_almond", "spread_jelly",
    "jar", "pour", "plate_sponge", "plate_towel", "pan_sponge", "pan_towel", "cabinet_get", "set_table",
    "stack", "load_dishwasher", "unload_dishwasher",
), strict=True))

#: (left arm, right arm) activation of a family: which arm does the work.
_FAMILY_ARMS: dict[str, tuple[float, float]] = {
    "cut": (0.45, 0.95), "spread": (0.4, 0.8), "clean": (0.55, 0.9), "dishes": (0.75, 0.85),
    "solo": (0.6, 0.8),
}
#: How far (log scale) a pattern's channel levels stray from its family's ('solo' patterns share one
#: broad family: unrelated actions still use the same forearm muscles). The dish-handling patterns stray
#: further: they look alike on video, so their muscles must be what tells them apart.
FAMILY_SPREAD = {"solo": 0.3, "dishes": 0.6}
DEFAULT_FAMILY_SPREAD = 0.2
#: Per-action variation (log scale) of the overall strength and of each channel's strength.
ACTION_GAIN_SD = 0.12
ACTION_CHANNEL_SD = 0.4


def _stable_rng(*parts: object) -> np.random.Generator:
    """A generator seeded from text, identical on every run and platform (unlike `hash`)."""
    return np.random.default_rng(zlib.crc32(":".join(str(p) for p in parts).encode()))


def _build_pattern(key: str) -> MusclePattern:
    family, freq, motion, sharpness = _PATTERN_TABLE[key]
    fam_rng = _stable_rng("family", family)
    left, right = _FAMILY_ARMS[family]
    proto = np.concatenate([left * fam_rng.uniform(0.25, 1.0, 8), right * fam_rng.uniform(0.25, 1.0, 8)])
    fam_phase = fam_rng.uniform(0, 2 * np.pi, EMG_CHANNELS)
    rng = _stable_rng("pattern", key)
    spread = FAMILY_SPREAD.get(family, DEFAULT_FAMILY_SPREAD)
    level = np.clip(proto * np.exp(spread * rng.standard_normal(EMG_CHANNELS)), 0.05, 1.0)
    return MusclePattern(
        key=key, family=family, freq_hz=freq, motion=motion, sharpness=sharpness,
        level=level, depth=rng.uniform(0.3, 0.85, EMG_CHANNELS),
        phase=fam_phase + rng.normal(0.0, 0.8, EMG_CHANNELS),
    )


PATTERNS: dict[str, MusclePattern] = {key: _build_pattern(key) for key in _PATTERN_TABLE}


def pattern_for(label: str) -> MusclePattern:
    """The muscle pattern of an activity (same object for classes of one `SAME_MUSCLE_GROUPS` entry)."""
    try:
        return PATTERNS[CLASS_PATTERN[label]]
    except KeyError:
        raise ConfigError(f"no synthetic muscle pattern for activity {label!r}") from None


def _check_groups() -> None:
    for group in SAME_MUSCLE_GROUPS:
        if len({CLASS_PATTERN[label] for label in group}) != 1:
            raise AssertionError(f"same-muscle group {group} must share one pattern")


_check_groups()

#: The motion name and rhythm (Hz) that every class of a same-look group shows on video.
SAME_LOOK_MOTION: tuple[str, float] = ("place", 0.6)
_SAME_LOOK_CLASSES = frozenset(label for group in SAME_LOOK_GROUPS for label in group)


# -- configuration --------------------------------------------------------------------------------------


@dataclass
class SynthConfig:
    """What to synthesise. Defaults give a 20-class session of about 8 minutes per subject."""

    subjects: tuple[str, ...] = ("S00",)
    actions_per_class: int = 2
    #: Seconds per action: a number (each action jittered by +-`duration_jitter`) or a (min, max) range.
    seconds_per_action: float | tuple[float, float] = 10.0
    duration_jitter: float = 0.2
    rest_seconds: float = 2.0
    classes: tuple[str, ...] = ACTIVITIES
    seed: int = 0
    width: int = 224
    height: int = 224
    fps: float = 30.0
    #: Effective Myo rate (what real sessions show); the nominal rate is 200 Hz.
    emg_rate: float = 160.0
    include_bad_labels: bool = False
    write_video: bool = True
    #: The armbands the person wears: both, or one (that arm's signals are a two-armband person's same arm).
    arms: tuple[str, ...] = ARMS

    def __post_init__(self) -> None:
        self.arms = arm_layout(self.arms, what="synth arms")
        self.subjects = tuple(self.subjects)
        self.classes = tuple(dict.fromkeys(canonical_activity(c) for c in self.classes))
        if not self.subjects:
            raise ConfigError("synth: at least one subject is needed")
        if not self.classes:
            raise ConfigError("synth: at least one class is needed")
        unknown = [c for c in self.classes if c not in CLASS_PATTERN]
        if unknown:
            raise ConfigError(f"synth: unknown activities {unknown}; choose from the 20 ActionSense labels")
        if self.actions_per_class < 1:
            raise ConfigError("synth: actions_per_class must be at least 1")
        lo, hi = self.duration_range
        if not 0 < lo <= hi:
            raise ConfigError(f"synth: bad seconds_per_action {self.seconds_per_action!r}")
        if self.rest_seconds < 0:
            raise ConfigError("synth: rest_seconds must be >= 0")
        if self.width < 16 or self.height < 16:
            raise ConfigError(f"synth: video size {self.width}x{self.height} is too small")
        if self.fps <= 0 or self.emg_rate <= 0:
            raise ConfigError("synth: fps and emg_rate must be positive")

    @property
    def duration_range(self) -> tuple[float, float]:
        """The (min, max) seconds of an action."""
        s = self.seconds_per_action
        if isinstance(s, (tuple, list)):
            return float(s[0]), float(s[1])
        return float(s) * (1 - self.duration_jitter), float(s) * (1 + self.duration_jitter)


@dataclass
class SynthSession:
    """A written session and its ground truth (only the 'Good' actions)."""

    hdf5_path: Path
    video_path: Path | None
    subject: str
    actions: list[tuple[str, float, float]]
    start_time_s: float = 0.0
    stop_time_s: float = 0.0


def session_start_time(config: SynthConfig, subject: str) -> float:
    """Epoch start of a subject's session: BASE_START + seed minutes + one day per subject number.

    Readers find the video beside a session by its date-time prefix, so two subjects written into one
    folder must never share a start time: `Sxx` starts on day xx, other names on a day from their hash.
    """
    match = re.fullmatch(r"S(\d+)", subject)
    day = int(match.group(1)) if match else zlib.crc32(subject.encode()) % 1000
    return BASE_START.timestamp() + 60.0 * config.seed + 86400.0 * day


def _session_seed(config: SynthConfig, subject: str, purpose: str) -> np.random.SeedSequence:
    """Independent, reproducible seeds per (seed, subject, purpose)."""
    return np.random.SeedSequence(
        [int(config.seed) & 0xFFFFFFFF, zlib.crc32(subject.encode()), zlib.crc32(purpose.encode())]
    )


# -- sEMG -----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class ActionMotion:
    """One performance of an activity: its pattern plus the per-action variation of rhythm and strength.

    Both the sEMG generator and the video renderer evaluate the same object, so the visible motion and the
    muscle activity follow one rhythm.
    """

    label: str
    pattern: MusclePattern
    start_s: float
    freq_hz: float
    phase0: float
    gain: np.ndarray  # (16,)

    def theta(self, t: np.ndarray | float) -> np.ndarray | float:
        """Cycle phase at epoch time(s) `t`."""
        return 2 * np.pi * self.freq_hz * (np.asarray(t) - self.start_s) + self.phase0

    def envelope(self, t: np.ndarray) -> np.ndarray:
        """sEMG standard deviation (n, 16) in Myo units at times `t` (n,), before the subject's gains."""
        return FULL_SCALE * self.gain * self.pattern.envelope(np.atleast_1d(self.theta(t)))


def draw_motion(label: str, start_s: float, rng: np.random.Generator) -> ActionMotion:
    """Draw one performance of `label`: rhythm +-8 %, random start phase, overall and per-channel strength
    (`ACTION_GAIN_SD`, `ACTION_CHANNEL_SD`), so two actions of one class are alike but never identical and
    an sEMG classifier meets realistic overlap between classes."""
    pattern = pattern_for(label)
    return ActionMotion(
        label=label, pattern=pattern, start_s=start_s,
        freq_hz=pattern.freq_hz * float(np.exp(rng.normal(0.0, 0.08))),
        phase0=float(rng.uniform(0, 2 * np.pi)),
        gain=np.exp(rng.normal(0.0, ACTION_GAIN_SD) + rng.normal(0.0, ACTION_CHANNEL_SD, EMG_CHANNELS)),
    )


def subject_gains(subject: str) -> np.ndarray:
    """Per-channel gains (16,) in 0.7-1.3 of a subject: electrode placement and skin differ per person."""
    return _stable_rng("gains", subject).uniform(0.7, 1.3, EMG_CHANNELS)


@dataclass
class EmgChunk:
    """New EMG rows per arm: `time_s[arm]` (n,) epoch seconds and `data[arm]` (n, 8) int32."""

    time_s: dict[str, np.ndarray]
    data: dict[str, np.ndarray]

    def __len__(self) -> int:
        return sum(len(t) for t in self.time_s.values())


class _ArmClock:
    """Sample clock, pair timestamps and noise filter state of one armband."""

    def __init__(self, start_s: float, rate: float, sos: np.ndarray, rng: np.random.Generator) -> None:
        self.t0 = start_s
        self.rate = rate
        self.pairs = 0
        self.last_arrival = start_s - 1.0 / rate  # a virtual pair before the first one
        self.sos = sos
        self.zi = np.zeros((sos.shape[0], 2, CHANNELS_PER_ARM))
        # separate streams for jitter and noise keep the output independent of the chunking
        self.jitter_rng, self.noise_rng = rng.spawn(2)

    def pairs_until(self, time_s: float) -> int:
        """Number of new pairs whose nominal arrival (the later sample's time) is at or before `time_s`."""
        last = math.floor((time_s - self.t0) * self.rate / 2.0 - 0.5 + 1e-9)  # index of the last such pair
        return max(0, last + 1 - self.pairs)


class SyntheticEmg:
    """Stateful two-arm Myo sEMG source, shared by the session writer and the live synthetic source.

    Call `set_activity(label, t)` when the (synthetic) person starts an action or rests (`None`), and
    `generate_until(t)` to get every sample that has arrived by time `t`. The chunks join seamlessly (the
    noise filters and clocks carry their state), so the result does not depend on how time is chunked.
    """

    def __init__(
        self, config: SynthConfig, subject: str, rng: np.random.Generator | None = None,
        start_time_s: float | None = None,
    ) -> None:
        from scipy.signal import butter, sosfilt

        self._sosfilt = sosfilt
        self.rate = float(config.emg_rate)
        self.subject = subject
        self.rng = rng if rng is not None else np.random.default_rng(_session_seed(config, subject, "emg"))
        start = session_start_time(config, subject) if start_time_s is None else float(start_time_s)
        sos = butter(4, NOISE_BAND, btype="bandpass", output="sos")
        impulse = np.zeros(4096)
        impulse[0] = 1.0
        self._noise_scale = 1.0 / math.sqrt(float(np.sum(sosfilt(sos, impulse) ** 2)))
        children = self.rng.spawn(3)
        self._motion_rng = children[0]
        # the armbands connect a few tens of milliseconds apart
        self.arms = {
            arm: _ArmClock(start + float(child.uniform(0.0, 0.05)), self.rate, sos, child)
            for arm, child in zip(ARMS, children[1:], strict=True)
        }
        self.gains = subject_gains(subject)
        self.rest = REST_LEVEL * (1.0 + 0.2 * _stable_rng("rest", subject).random(EMG_CHANNELS))
        self.current: ActionMotion | None = None
        self.previous: ActionMotion | None = None
        self.changed_at = -math.inf

    def set_activity(self, label: str | None, time_s: float) -> ActionMotion | None:
        """Start `label` (or rest with None) at `time_s`; returns the drawn performance for the video."""
        self.previous = self.current
        self.current = draw_motion(label, time_s, self._motion_rng) if label is not None else None
        self.changed_at = float(time_s)
        return self.current

    def _activation(self, motion: ActionMotion | None, t: np.ndarray) -> np.ndarray:
        if motion is None:
            return np.broadcast_to(self.rest, (len(t), EMG_CHANNELS))
        return np.maximum(motion.envelope(t), self.rest)

    def envelope(self, t: np.ndarray) -> np.ndarray:
        """Standard deviation (n, 16) of the EMG at times `t`, subject gains included."""
        t = np.asarray(t, dtype=float)
        weight = np.clip((t - self.changed_at) / RAMP_S, 0.0, 1.0)[:, None]
        env = self._activation(self.current, t)
        if np.any(weight < 1.0):
            env = weight * env + (1.0 - weight) * self._activation(self.previous, t)
        return env * self.gains

    def generate_until(self, time_s: float) -> EmgChunk:
        """All samples of both arms that have arrived by `time_s` and were not returned before."""
        times: dict[str, np.ndarray] = {}
        data: dict[str, np.ndarray] = {}
        for index, (arm, clock) in enumerate(self.arms.items()):
            n_pairs = clock.pairs_until(time_s)
            if n_pairs == 0:
                times[arm] = np.empty(0)
                data[arm] = np.empty((0, CHANNELS_PER_ARM), np.int32)
                continue
            k = clock.pairs + np.arange(n_pairs)
            sample_t = clock.t0 + np.arange(2 * clock.pairs, 2 * (clock.pairs + n_pairs)) / self.rate
            jitter_cap = min(3 * PAIR_JITTER_S, 0.5 / self.rate)
            jitter = np.clip(clock.jitter_rng.normal(0.0, PAIR_JITTER_S, n_pairs), -jitter_cap, jitter_cap)
            arrival = clock.t0 + (2 * k + 1) / self.rate + jitter
            stamps = np.empty(2 * n_pairs)
            stamps[1::2] = arrival
            previous = np.concatenate([[clock.last_arrival], arrival[:-1]])
            stamps[0::2] = 0.5 * (previous + arrival)  # the recorder moves the earlier sample to the midpoint
            noise = clock.noise_rng.standard_normal((2 * n_pairs, CHANNELS_PER_ARM))
            filtered, clock.zi = self._sosfilt(clock.sos, noise, axis=0, zi=clock.zi)
            env = self.envelope(sample_t)[:, index * CHANNELS_PER_ARM : (index + 1) * CHANNELS_PER_ARM]
            values = np.clip(np.rint(filtered * self._noise_scale * env), -128, 127).astype(np.int32)
            clock.last_arrival = float(arrival[-1])
            clock.pairs += n_pairs
            times[arm] = stamps
            data[arm] = values
        return EmgChunk(times, data)


# -- session timeline -----------------------------------------------------------------------------------


@dataclass
class _Segment:
    label: str | None  # None = rest
    start_s: float
    stop_s: float


@dataclass
class _Plan:
    start_s: float
    stop_s: float
    segments: list[_Segment]
    extra_labels: list[tuple[str, str, float, str, str]] = field(default_factory=list)  # bad/maybe presses


def plan_session(config: SynthConfig, subject: str) -> _Plan:
    """The seeded timeline: a lead-in rest, then actions in random order, each followed by a rest."""
    rng = np.random.default_rng(_session_seed(config, subject, "plan"))
    start = session_start_time(config, subject)
    labels = [label for label in config.classes for _ in range(config.actions_per_class)]
    order = rng.permutation(len(labels))
    lo, hi = config.duration_range
    t = start + config.rest_seconds
    segments = [_Segment(None, start, t)]
    for i in order:
        duration = float(rng.uniform(lo, hi))
        segments.append(_Segment(labels[i], t, t + duration))
        t += duration
        segments.append(_Segment(None, t, t + config.rest_seconds))
        t += config.rest_seconds
    plan = _Plan(start, t, segments)
    if config.include_bad_labels:
        rests = [s for s in segments[1:] if s.label is None and s.stop_s - s.start_s >= 1.0]
        for validity, seg in zip(("Bad", "Maybe"), rests[:: max(1, len(rests) // 2)], strict=False):
            label = config.classes[int(rng.integers(len(config.classes)))]
            span = seg.stop_s - seg.start_s
            note = "restarted" if validity == "Bad" else "unsure"
            plan.extra_labels.append((label, "Start", seg.start_s + 0.2 * span, validity, note))
            plan.extra_labels.append((label, "Stop", seg.start_s + 0.8 * span, validity, note))
    return plan


# -- writing --------------------------------------------------------------------------------------------


def render_frame(renderer: SceneRenderer, motion: ActionMotion | None, t: float) -> np.ndarray:
    """The world-camera frame at epoch time `t` while `motion` is performed (None: resting hands).

    Shared by the file writer and a live synthetic camera, so both show the rhythm the sEMG follows, except
    for the classes of a same-look group, which all show one motion at one rhythm (`SAME_LOOK_MOTION`).
    """
    if motion is None:
        return renderer.render(None, "idle", 2 * math.pi * 0.2 * t, t)
    if motion.label in _SAME_LOOK_CLASSES:
        name, freq_hz = SAME_LOOK_MOTION
        return renderer.render(motion.label, name, 2 * math.pi * freq_hz * (t - motion.start_s) + motion.phase0, t)
    return renderer.render(motion.label, motion.pattern.motion, float(motion.theta(t)), t)


class _VideoOut:
    """mp4 writer plus the renderer; keeps rendering and encoding time apart for the benchmark."""

    def __init__(self, path: Path, config: SynthConfig, subject: str) -> None:
        import cv2

        from myosight.data.synth_scene import SceneRenderer

        self.path = path
        self.renderer: SceneRenderer = SceneRenderer(config.width, config.height, subject)
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), float(config.fps),
                                      (config.width, config.height))
        if not self.writer.isOpened():
            raise MyosightError(f"{path}: OpenCV cannot open an mp4v video writer here")
        self.render_s = 0.0
        self.encode_s = 0.0

    def write(self, motion: ActionMotion | None, t: float) -> None:
        t0 = time.perf_counter()
        frame = render_frame(self.renderer, motion, t)
        t1 = time.perf_counter()
        self.writer.write(frame)
        self.encode_s += time.perf_counter() - t1
        self.render_s += t1 - t0

    def close(self) -> None:
        self.writer.release()


def _progress(total: int, desc: str, enabled: bool) -> ProgressBar:
    return ProgressBar(total, desc=desc, unit="frame" if total else "s", enabled=enabled, leave=False)


def write_session(
    config: SynthConfig, out_dir: str | Path, subject: str, *, progress: bool = True
) -> SynthSession:
    """Write one subject's session (HDF5 + mp4 beside it) into `out_dir` and return its ground truth.

    EMG and video are continuous over the whole session, rest periods included, as a live recording is.
    """
    from myosight.data.layout import (
        EMG_GROUPS,
        VIDEO_TIMESTAMP_GROUP,
        SessionWriter,
        session_filename,
        video_filename,
    )

    out_dir = Path(out_dir)
    plan = plan_session(config, subject)
    hdf5_path = out_dir / session_filename(plan.start_s, f"actionNet-wearables_{subject}")
    video_path = out_dir / video_filename(plan.start_s, subject) if config.write_video else None
    emg = SyntheticEmg(config, subject, start_time_s=plan.start_s)

    frame_dt = 1.0 / config.fps
    video_start = plan.start_s + VIDEO_OFFSET_S
    n_frames = max(0, math.floor((plan.stop_s - video_start) * config.fps)) if video_path else 0
    frame_times = video_start + frame_dt * np.arange(n_frames)
    extra = sorted(plan.extra_labels, key=lambda row: row[2])
    actions: list[tuple[str, float, float]] = []

    out_dir.mkdir(parents=True, exist_ok=True)
    video = _VideoOut(video_path, config, subject) if video_path else None
    total = n_frames if video else round(plan.stop_s - plan.start_s)
    frame_index = 0
    try:
        # built in memory and written whole at the end (about 1.3 MB per minute): a full disk is then an error,
        # and an interrupted synth leaves no half session
        with SessionWriter(hdf5_path, file_attrs={"Synthetic": "myosight synth", "Subject": subject,
                                                  "Seed": str(config.seed)}, whole=True) as writer, \
                _progress(total, f"synth {subject}", progress) as bar:
            for arm in config.arms:
                writer.add_emg_stream(arm)
            writer.add_activity_stream(list(config.classes))
            if video:
                writer.add_video_timestamp_stream()
            for seg in plan.segments:
                motion = emg.set_activity(seg.label, seg.start_s)
                if seg.label is not None:
                    writer.append_activity(seg.label, "Start", seg.start_s, "Good")
                t = seg.start_s
                while t < seg.stop_s:  # one-second blocks keep memory flat however long the session
                    t = min(t + 1.0, seg.stop_s)
                    chunk = emg.generate_until(t)
                    for arm in config.arms:
                        if len(chunk.time_s[arm]):
                            writer.append(EMG_GROUPS[arm], chunk.data[arm], chunk.time_s[arm])
                    while extra and extra[0][2] <= t:
                        label, start_stop, t_press, validity, note = extra.pop(0)
                        writer.append_activity(label, start_stop, t_press, validity, note)
                    if video:
                        stop = int(np.searchsorted(frame_times, t, side="left"))
                        for i in range(frame_index, stop):
                            video.write(motion, float(frame_times[i]))
                        if stop > frame_index:
                            ts = frame_times[frame_index:stop]
                            writer.append(VIDEO_TIMESTAMP_GROUP, ts.reshape(-1, 1), ts)
                        bar.update(stop - frame_index)
                        frame_index = stop
                    else:
                        bar.update(max(0, round(t - plan.start_s) - bar.n))
                if seg.label is not None:
                    writer.append_activity(seg.label, "Stop", seg.stop_s, "Good")
                    actions.append((seg.label, seg.start_s, seg.stop_s))
            if config.include_bad_labels:
                # an unfinished log: the last press was never given a time
                writer.append_activity(config.classes[0], "Start", 0.0, "Good", "unfinished")
    finally:
        if video:
            video.close()
    return SynthSession(hdf5_path, video_path, subject, actions, plan.start_s, plan.stop_s)


def write_sessions(config: SynthConfig, out_dir: str | Path, *, progress: bool = True) -> list[SynthSession]:
    """Write one session per subject of `config`."""
    return [write_session(config, out_dir, subject, progress=progress) for subject in config.subjects]


def bench_render(seconds: float = 60.0, width: int = 224, height: int = 224, fps: float = 30.0) -> dict:
    """Time rendering and mp4 encoding of `seconds` of synthetic video (a benchmark, not a test)."""
    import tempfile

    config = SynthConfig(width=width, height=height, fps=fps)
    rng = np.random.default_rng(0)
    labels = list(config.classes)
    with tempfile.TemporaryDirectory() as tmp:
        video = _VideoOut(Path(tmp) / "bench.mp4", config, "S00")
        start = time.perf_counter()
        motion: ActionMotion | None = None
        for i in range(round(seconds * fps)):
            t = i / fps
            if i % round(5 * fps) == 0:
                motion = draw_motion(labels[(i // round(5 * fps)) % len(labels)], t, rng)
            video.write(motion, t)
        video.close()
        total = time.perf_counter() - start
        size = (Path(tmp) / "bench.mp4").stat().st_size
    return {"seconds_of_video": seconds, "frames": round(seconds * fps), "size": f"{width}x{height}",
            "render_s": video.render_s, "encode_s": video.encode_s, "total_s": total, "mp4_bytes": size}


# -- command line ---------------------------------------------------------------------------------------


def resolve_classes(names: Sequence[str]) -> tuple[str, ...]:
    """Map exact labels or unique case-insensitive fragments ('peel a potato', 'jelly') to the labels."""
    out = []
    for name in names:
        if name in ACTIVITIES:
            out.append(name)
            continue
        hits = [a for a in ACTIVITIES if name.lower() in a.lower()]
        if len(hits) != 1:
            what = "matches no activity" if not hits else "is ambiguous: " + "; ".join(hits)
            raise ConfigError(f"--classes: {name!r} {what}")
        out.append(hits[0])
    return tuple(dict.fromkeys(out))


_ACTION_SECONDS = options.float_range(0, 3600)


def _parse_seconds(text: str) -> float | tuple[float, float]:
    """S or MIN,MAX action seconds, refused here when not finite, not positive, above an hour or MIN > MAX."""
    try:
        parts = [_ACTION_SECONDS(v) for v in text.split(",")]
    except argparse.ArgumentTypeError:
        parts = []
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and parts[0] <= parts[1]:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"expected S or MIN,MAX seconds ({_ACTION_SECONDS.allowed}; MIN <= MAX), "
                                     f"got {text[:40]!r}")


def add_synth_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `myosight synth`."""
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic ActionSense sessions (HDF5 + world video)",
        description=(
            "Write synthetic sessions in the ActionSense recorder layout: two Myo sEMG streams (int8 range, "
            "paired timestamps, ~160 Hz), Start/Stop activity labels and a first-person mp4 with frame "
            "timestamps. Same-muscle classes (peel cucumber/potato; slice cucumber/potato/bread) share "
            "one sEMG pattern and differ only in the video. Output is deterministic for a given seed."
        ),
    )
    arg = parser.add_argument
    arg("--out", required=True, type=Path, help="output folder (created if missing)")
    arg("--subjects", nargs="+", default=["S00"], metavar="ID", help="one session per subject (default: S00)")
    arg("--actions-per-class", type=options.int_range(1, 1000), default=2, metavar="N",
        help="how many times each class is performed per session (default: %(default)s)")
    arg("--seconds", type=_parse_seconds, default=10.0, metavar="S|MIN,MAX",
        help="action length: S (each action jittered +-20%%) or a MIN,MAX range (default: 10)")
    arg("--rest", type=options.float_range(0, 3600, open_min=False), default=2.0, metavar="S",
        help="rest seconds before the first and after each action (default: %(default)s)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--classes", nargs="+", metavar="NAME",
                       help="activities to include: exact labels or unique fragments, e.g. 'peel a potato'")
    which.add_argument("--num-classes", type=options.int_range(1, len(ACTIVITIES)), metavar="K",
                       help="the first K of the 20 activities (default: all 20)")
    arg("--seed", type=options.seed, default=0, help="seed of action order, timing and noise (default: %(default)s)")
    arg("--video-size", type=options.video_size, default="224x224", metavar="WxH",
        help="world video frame size (default: %(default)s)")
    arg("--fps", type=options.fps, default=30.0, help="world video frame rate (default: %(default)s)")
    arg("--emg-rate", type=options.float_range(0, 10_000), default=160.0, metavar="HZ",
        help="effective Myo EMG rate; real sessions show ~160, nominal is 200 (default: %(default)s)")
    arg("--no-video", action="store_true", help="write only the HDF5 (much faster)")
    arg("--arms", type=arms_option, default=ARMS, metavar="left|right|both",
        help="the armbands the person wears (default: both)")
    arg("--include-bad-labels", action="store_true",
        help="also write 'Bad'/'Maybe' label pairs and a zero-time row that readers must drop")
    arg("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_synth)
    return parser


def _run_synth(args: argparse.Namespace) -> int:
    if args.classes:
        classes = resolve_classes(args.classes)
    elif args.num_classes is not None:
        if not 1 <= args.num_classes <= len(ACTIVITIES):
            raise ConfigError(f"--num-classes must be 1-{len(ACTIVITIES)}")
        classes = ACTIVITIES[: args.num_classes]
    else:
        classes = ACTIVITIES
    config = SynthConfig(
        subjects=tuple(args.subjects), actions_per_class=args.actions_per_class,
        seconds_per_action=args.seconds, rest_seconds=args.rest, classes=classes, seed=args.seed,
        width=args.video_size[0], height=args.video_size[1], fps=args.fps, emg_rate=args.emg_rate,
        include_bad_labels=args.include_bad_labels, write_video=not args.no_video, arms=args.arms,
    )
    start = time.perf_counter()
    sessions = write_sessions(config, args.out, progress=not args.quiet)
    for session in sessions:
        print(session.hdf5_path)
        if session.video_path:
            print(session.video_path)
    n_actions = sum(len(s.actions) for s in sessions)
    minutes = sum(s.stop_time_s - s.start_time_s for s in sessions) / 60.0
    print(f"synth: {len(sessions)} session(s), {n_actions} actions of {len(classes)} classes, "
          f"{minutes:.1f} min of recording, in {time.perf_counter() - start:.1f} s")
    return 0
