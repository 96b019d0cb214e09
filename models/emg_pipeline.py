"""The live sEMG pipeline (preset ``live``, the default): raw Myo samples -> envelopes -> per-clip Mel spectrograms.

This is myosight's causal pipeline, not the method's as its authors ran it: the authors process whole actions
offline (centred RMS, min-max per action, a zero-phase filter), which a live stream cannot do because it needs
the future. Those variants are the offline presets ``paper`` and ``paper-text``
(:mod:`myosight.models.emg_presets`); a model trained on one of them cannot run live.

One implementation with two drivers. :class:`EmgStreamProcessor` is stateful and takes chunks of any
size; the offline pass (:func:`process_recording`) is the same processor fed the whole recording at once,
so training and the live worker compute identical features (tested to 1e-5 on chunked replays).

Stages, per arm:

1. Resampling onto the absolute grid ``t_k = k / rate_hz`` by linear interpolation of the timestamps
   (the rate is measured from timestamps, never taken from metadata). Both arms land on the same grid,
   so they are aligned by time, not by arrival order.
2. RMS over a causal window of ``rms_window`` samples.
3. Per-channel min-max to [0, 1] with statistics fixed in advance (:class:`EmgNormalisation`, fitted on
   training data and stored with the model), clipped to [0, 1]: a live stream cannot know its own future
   extremes, so the offline pass uses the same stored statistics.
4. Causal Butterworth low-pass (order ``lowpass_order``, ``lowpass_hz``), started at steady state on the
   first sample of each contiguous segment.

Then, per clip, :func:`clip_spectrograms` takes the envelope window of every channel and computes a log
Mel spectrogram (librosa's Mel filter bank, Hann window, no centre padding).

Fault policy for live input (each case is counted in :class:`StreamHealth`):
- NaN/inf sample values: replaced by the channel's last finite value (0 before the first one).
- Timestamps going backwards: the sample is dropped.
- Repeated timestamps (the Myo sends sample pairs with one stamp): the samples of a run are spread evenly
  over the interval to the next distinct timestamp, at most ``1 / rate_hz`` apart.
- A gap longer than ``max_gap_s``: nothing is interpolated across it; the filters restart after it, and
  clip windows that reach into it are zero-filled and report their coverage below 1.
- A channel stuck at one value for ``stuck_seconds``: flagged in the health report; data pass unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
from scipy import signal

from myosight.constants import CHANNELS_PER_ARM, EMG_CHANNELS
from myosight.errors import ConfigError, StreamError

STAGES = ("envelope", "rms", "resampled")
#: The floor of the spectrogram's log: the envelope is scaled to [0, 1], so its Mel power spans about 1e-6 (a
#: resting muscle) to 1; a log that low keeps the ratios between muscles that a classifier reads (log1p, nearly
#: linear below 1, flattened them: measured on real people, `myosight bench people`).
LOG_FLOOR = 1e-6
#: The sEMG presets: ``live`` (causal, this module) and the offline ones of the method
#: (:mod:`myosight.models.emg_presets`): ``paper`` as its authors' code ran it, ``paper-text`` as its text states it.
LIVE_PRESET = "live"
PRESETS = (LIVE_PRESET, "paper", "paper-text")


@dataclass(frozen=True)
class EmgPipelineConfig:
    """Every parameter of the sEMG pipeline; stored in the model bundle."""

    rate_hz: float = 160.0  # what real Myo sessions deliver on average (nominal 200 Hz)
    rms_window: int = 32  # samples (0.2 s at 160 Hz)
    lowpass_hz: float = 5.0
    lowpass_order: int = 5
    n_mels: int = 10
    n_fft: int = 32
    hop_length: int = 8  # fixed: 17 spectrogram frames per 1-s clip at 160 Hz
    f_max: float | None = None  # None: Nyquist
    max_gap_s: float = 0.1  # longer silences are gaps: no interpolation across, filters restart
    stuck_seconds: float = 2.0
    preset: str = LIVE_PRESET  # which pipeline the parameters above belong to (see PRESETS)
    # the spectrogram's compression: log(mel + log_floor); None: log1p(mel), as bundles made before it was a choice
    log_floor: float | None = LOG_FLOOR

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown sEMG preset {self.preset!r}; choose from {', '.join(PRESETS)}")

    @property
    def offline(self) -> bool:
        """Whether the preset needs whole actions in advance (zero-phase filter, per-action min-max): not live."""
        return self.preset != LIVE_PRESET

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EmgPipelineConfig:
        """A stored configuration; one stored before `log_floor` existed compressed with log1p, and still does."""
        return cls(**{"log_floor": None, **values})

    @cached_property
    def lowpass_sos(self) -> np.ndarray:
        return signal.butter(self.lowpass_order, self.lowpass_hz, btype="low", fs=self.rate_hz, output="sos")

    @cached_property
    def mel_basis(self) -> np.ndarray:
        import librosa  # imported here: librosa is slow to import and only the spectrogram needs it

        f_max = self.f_max if self.f_max is not None else self.rate_hz / 2
        return librosa.filters.mel(
            sr=self.rate_hz, n_fft=self.n_fft, n_mels=self.n_mels, fmin=0.0, fmax=f_max
        ).astype(np.float64)

    @cached_property
    def stft_window(self) -> np.ndarray:
        return signal.get_window("hann", self.n_fft, fftbins=True)

    def samples_in(self, seconds: float) -> int:
        return round(seconds * self.rate_hz)


@dataclass(frozen=True)
class EmgNormalisation:
    """Per-channel min and max of the RMS envelope, known before the stream starts."""

    minimum: np.ndarray  # (channels,)
    maximum: np.ndarray  # (channels,)

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.minimum, np.float64), np.asarray(self.maximum, np.float64)
        if lo.shape != hi.shape or lo.ndim != 1:
            raise ConfigError(f"normalisation min/max must be equal-length vectors, got {lo.shape} and {hi.shape}")
        object.__setattr__(self, "minimum", lo)
        object.__setattr__(self, "maximum", hi)

    @classmethod
    def full_scale(cls, channels: int = EMG_CHANNELS) -> EmgNormalisation:
        """A prior needing no data: the Myo's int8 range (RMS of 0..128)."""
        return cls(np.zeros(channels), np.full(channels, 128.0))

    def arm(self, index: int) -> EmgNormalisation:
        """The statistics of one arm's channels (arm 0 = left, 1 = right)."""
        part = slice(index * CHANNELS_PER_ARM, (index + 1) * CHANNELS_PER_ARM)
        return EmgNormalisation(self.minimum[part], self.maximum[part])

    def apply(self, rms: np.ndarray) -> np.ndarray:
        span = np.maximum(self.maximum - self.minimum, 1e-9)
        return np.clip((rms - self.minimum) / span, 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"minimum": self.minimum.tolist(), "maximum": self.maximum.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> EmgNormalisation:
        return cls(np.asarray(values["minimum"]), np.asarray(values["maximum"]))


@dataclass
class StreamHealth:
    """What went wrong, and how much, on one stream; reported live and by the offline pass."""

    samples_in: int = 0
    grid_samples_out: int = 0
    nonfinite_values: int = 0
    backwards_dropped: int = 0
    repeated_timestamps: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (last time before, first time after)
    stuck_channels: tuple[int, ...] = ()
    recorded_seconds: float = 0.0

    @property
    def measured_rate_hz(self) -> float:
        """Settled input samples per recorded second (gaps excluded)."""
        return self.samples_in / self.recorded_seconds if self.recorded_seconds > 0 else 0.0


@dataclass
class EnvelopeChunk:
    """Envelope samples on the absolute grid: sample j is at time `grid[j] / rate_hz`."""

    grid: np.ndarray  # (n,) int64 grid indices, strictly increasing
    values: np.ndarray  # (n, channels) float64 in [0, 1]

    @classmethod
    def empty(cls, channels: int) -> EnvelopeChunk:
        return cls(np.zeros(0, np.int64), np.zeros((0, channels)))

    @classmethod
    def concat(cls, chunks: list[EnvelopeChunk], channels: int) -> EnvelopeChunk:
        if not chunks:
            return cls.empty(channels)
        return cls(np.concatenate([c.grid for c in chunks]), np.concatenate([c.values for c in chunks]))


class _TimestampCleaner:
    """Applies the timestamp and value fault policy; holds back the newest run of equal timestamps."""

    def __init__(self, channels: int, rate_hz: float, health: StreamHealth) -> None:
        self.channels = channels
        self.min_step = 1.0 / rate_hz
        self.health = health
        self.last_finite = np.zeros(channels)
        self.latest_time = -math.inf
        self.pending_t: np.ndarray = np.zeros(0)
        self.pending_x: np.ndarray = np.zeros((0, channels))

    def push(self, time_s: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the samples whose timestamps are now settled, with repeated stamps spread out."""
        time_s, values = self._drop_backwards(time_s, self._hold_nonfinite(values))
        t = np.concatenate([self.pending_t, time_s])
        x = np.concatenate([self.pending_x, values])
        if len(t) == 0:
            return t, x
        # The last run of equal timestamps may continue in the next chunk: keep it pending.
        last_run_start = int(np.searchsorted(t, t[-1], side="left"))
        self.pending_t, self.pending_x = t[last_run_start:], x[last_run_start:]
        return self._spread_runs(t[:last_run_start], next_time=t[-1]), x[:last_run_start]

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Settle the pending run at the end of a recording, spaced at the nominal rate."""
        t, x = self.pending_t, self.pending_x
        self.pending_t, self.pending_x = np.zeros(0), np.zeros((0, self.channels))
        if len(t) == 0:
            return t, x
        return self._spread_runs(t, next_time=t[-1] + len(t) * self.min_step), x

    def _hold_nonfinite(self, values: np.ndarray) -> np.ndarray:
        finite = np.isfinite(values)
        if finite.all():
            if len(values):
                self.last_finite = values[-1].copy()
            return values
        self.health.nonfinite_values += int((~finite).sum())
        filled = np.vstack([self.last_finite, values])
        mask = np.vstack([np.ones((1, self.channels), bool), finite])
        # Forward fill: index of the last finite row at or before each row, per channel.
        last_index = np.maximum.accumulate(np.where(mask, np.arange(len(filled))[:, None], 0), axis=0)
        filled = np.take_along_axis(filled, last_index, axis=0)[1:]
        self.last_finite = filled[-1].copy()
        return filled

    def _drop_backwards(self, time_s: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(time_s) == 0:
            return time_s, values
        running_max = np.maximum.accumulate(np.concatenate([[self.latest_time], time_s]))
        keep = time_s >= running_max[:-1]
        self.latest_time = float(running_max[-1])
        dropped = int((~keep).sum())
        if dropped:
            self.health.backwards_dropped += dropped
            return time_s[keep], values[keep]
        return time_s, values

    def _spread_runs(self, t: np.ndarray, next_time: float) -> np.ndarray:
        """Spread each run of equal timestamps evenly up to the next distinct timestamp."""
        if len(t) < 2:
            return t
        starts = np.flatnonzero(np.concatenate([[True], t[1:] != t[:-1]]))
        lengths = np.diff(np.concatenate([starts, [len(t)]]))
        if np.all(lengths == 1):
            return t
        self.health.repeated_timestamps += int((lengths - 1).sum())
        run_time = t[starts]
        following = np.concatenate([run_time[1:], [next_time]])
        step = np.minimum((following - run_time) / lengths, self.min_step)
        offsets = np.arange(len(t)) - np.repeat(starts, lengths)
        return np.repeat(run_time, lengths) + offsets * np.repeat(step, lengths)


class _GridResampler:
    """Linear interpolation of settled samples onto the grid k / rate_hz, never across a gap."""

    def __init__(self, rate_hz: float, max_gap_s: float, health: StreamHealth) -> None:
        self.rate_hz = rate_hz
        self.max_gap_s = max_gap_s
        self.health = health
        self.prev_t: float | None = None
        self.prev_x: np.ndarray | None = None
        self.next_k: int | None = None

    def push(self, t: np.ndarray, x: np.ndarray) -> list[tuple[bool, np.ndarray, np.ndarray]]:
        """Return [(restart, grid, values)] segments; `restart` marks the first segment after a gap."""
        if len(t) == 0:
            return []
        segments = []
        breaks = np.flatnonzero(np.diff(np.concatenate([[t[0] if self.prev_t is None else self.prev_t], t]))
                                > self.max_gap_s)
        bounds = [0, *breaks.tolist(), len(t)]
        for lo, hi in itertools.pairwise(bounds):
            if hi <= lo:
                continue
            restart = self.prev_t is None or t[lo] - self.prev_t > self.max_gap_s
            if restart:
                if self.prev_t is not None:
                    self.health.gaps.append((self.prev_t, float(t[lo])))
                self.prev_t, self.prev_x = None, None
                self.next_k = math.ceil(t[lo] * self.rate_hz)
            segments.append((restart, *self._interpolate(t[lo:hi], x[lo:hi])))
        return segments

    def _interpolate(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.prev_t is not None and self.prev_x is not None:  # set together
            self.health.recorded_seconds += float(t[-1] - self.prev_t)
            t = np.concatenate([[self.prev_t], t])
            x = np.vstack([self.prev_x, x])
        else:
            self.health.recorded_seconds += float(t[-1] - t[0])
        self.prev_t, self.prev_x = float(t[-1]), x[-1].copy()
        last_k = math.floor(t[-1] * self.rate_hz)
        assert self.next_k is not None
        grid = np.arange(self.next_k, last_k + 1, dtype=np.int64)
        self.next_k = max(self.next_k, last_k + 1)
        if len(grid) == 0:
            return grid, np.zeros((0, x.shape[1]))
        at = grid / self.rate_hz
        values = np.column_stack([np.interp(at, t, x[:, c]) for c in range(x.shape[1])])
        return grid, values


class _EnvelopeFilter:
    """Causal RMS -> min-max -> low-pass, with state carried across chunks."""

    def __init__(self, config: EmgPipelineConfig, normalisation: EmgNormalisation | None) -> None:
        self.config = config
        self.normalisation = normalisation
        self.rms_taps = np.full(config.rms_window, 1.0 / config.rms_window)
        self.rms_state: np.ndarray | None = None
        self.lowpass_state: np.ndarray | None = None

    def restart(self) -> None:
        self.rms_state = None
        self.lowpass_state = None

    def rms(self, values: np.ndarray) -> np.ndarray:
        squared = values * values
        if self.rms_state is None:  # steady state as if the first sample had always been there
            zi = signal.lfilter_zi(self.rms_taps, [1.0])
            self.rms_state = zi[:, None] * squared[0][None, :]
        mean_square, self.rms_state = signal.lfilter(self.rms_taps, [1.0], squared, axis=0, zi=self.rms_state)
        return np.sqrt(np.maximum(mean_square, 0.0))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if len(values) == 0:
            return values
        assert self.normalisation is not None
        normalised = self.normalisation.apply(self.rms(values))
        sos = self.config.lowpass_sos
        if self.lowpass_state is None:
            zi = signal.sosfilt_zi(sos)
            self.lowpass_state = zi[:, :, None] * normalised[0][None, None, :]
        smoothed, self.lowpass_state = signal.sosfilt(sos, normalised, axis=0, zi=self.lowpass_state)
        return smoothed


class _StuckDetector:
    """Flags channels whose raw value has not changed for `stuck_seconds`."""

    def __init__(self, channels: int, stuck_seconds: float) -> None:
        self.stuck_seconds = stuck_seconds
        self.last_value = np.full(channels, np.nan)
        self.last_change = np.full(channels, np.nan)

    def update(self, time_s: np.ndarray, values: np.ndarray) -> tuple[int, ...]:
        if len(time_s) == 0:
            return tuple(np.flatnonzero(self._stuck(None)))
        previous = np.vstack([self.last_value, values[:-1]])
        changed = values != previous
        for c in np.flatnonzero(changed.any(axis=0)):
            self.last_change[c] = time_s[np.flatnonzero(changed[:, c])[-1]]
        self.last_value = values[-1].copy()
        return tuple(int(c) for c in np.flatnonzero(self._stuck(float(time_s[-1]))))

    def _stuck(self, now: float | None) -> np.ndarray:
        if now is None:
            return np.zeros(len(self.last_value), bool)
        return (now - self.last_change) >= self.stuck_seconds


class EmgStreamProcessor:
    """Stateful sEMG pipeline for one stream (one arm): push chunks, get envelope samples on the grid.

    `stage` says where the output is taken: "envelope" (the full pipeline, needs `normalisation`), "rms"
    (used to fit the normalisation) or "resampled" (the raw signal on the grid, for raw-sEMG models).
    With `normalisation=None` the stage defaults to "rms".
    """

    def __init__(
        self,
        config: EmgPipelineConfig,
        normalisation: EmgNormalisation | None,
        channels: int = CHANNELS_PER_ARM,
        name: str = "emg",
        stage: str | None = None,
    ) -> None:
        stage = stage or ("envelope" if normalisation is not None else "rms")
        if stage not in STAGES:
            raise ConfigError(f"{name}: unknown pipeline stage {stage!r}; choose from {', '.join(STAGES)}")
        if stage == "envelope" and normalisation is None:
            raise ConfigError(f"{name}: the envelope stage needs normalisation statistics")
        if config.offline and stage != "resampled":
            raise ConfigError(
                f"{name}: the sEMG preset {config.preset!r} is offline (it needs each whole action in advance); "
                f"the streaming processor computes the {LIVE_PRESET!r} preset only"
            )
        if normalisation is not None and len(normalisation.minimum) != channels:
            raise ConfigError(
                f"{name}: normalisation has {len(normalisation.minimum)} channels, the stream {channels}"
            )
        self.config = config
        self.channels = channels
        self.name = name
        self.health = StreamHealth()
        self._cleaner = _TimestampCleaner(channels, config.rate_hz, self.health)
        self._resampler = _GridResampler(config.rate_hz, config.max_gap_s, self.health)
        self._filter = _EnvelopeFilter(config, normalisation)
        self._stuck = _StuckDetector(channels, config.stuck_seconds)
        self.stage = stage

    def push(self, time_s: np.ndarray, values: np.ndarray) -> EnvelopeChunk:
        """Feed samples (any number, including 0); return the envelope samples that became final."""
        time_s = np.asarray(time_s, dtype=np.float64).reshape(-1)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.channels:
            raise StreamError(f"{self.name}: expected (n, {self.channels}) samples, got shape {values.shape}")
        if len(values) != len(time_s):
            raise StreamError(f"{self.name}: {len(values)} samples but {len(time_s)} timestamps")
        if not np.all(np.isfinite(time_s)):
            raise StreamError(f"{self.name}: non-finite timestamps")
        t, x = self._cleaner.push(time_s, values)
        return self._settle(t, x)

    def flush(self) -> EnvelopeChunk:
        """End of a recording: settle the samples held back for timestamp spreading."""
        return self._settle(*self._cleaner.flush())

    def _settle(self, t: np.ndarray, x: np.ndarray) -> EnvelopeChunk:
        self.health.samples_in += len(t)
        self.health.stuck_channels = self._stuck.update(t, x)
        chunks = []
        for restart, grid, resampled in self._resampler.push(t, x):
            if restart:
                self._filter.restart()
            if len(grid):
                chunks.append(EnvelopeChunk(grid, self._output(resampled)))
        out = EnvelopeChunk.concat(chunks, self.channels)
        self.health.grid_samples_out += len(out.grid)
        return out


    def _output(self, resampled: np.ndarray) -> np.ndarray:
        if self.stage == "resampled":
            return resampled
        if self.stage == "rms":
            return self._filter.rms(resampled)
        return self._filter(resampled)


def process_recording(
    time_s: np.ndarray,
    values: np.ndarray,
    config: EmgPipelineConfig,
    normalisation: EmgNormalisation | None,
    name: str = "emg",
    stage: str | None = None,
) -> tuple[EnvelopeChunk, StreamHealth]:
    """The offline driver: the streaming processor fed a whole recording in one chunk."""
    processor = EmgStreamProcessor(
        config, normalisation, channels=np.asarray(values).shape[1], name=name, stage=stage
    )
    body = processor.push(time_s, values)
    tail = processor.flush()
    return EnvelopeChunk.concat([body, tail], processor.channels), processor.health


def fit_normalisation(
    recordings: list[tuple[np.ndarray, np.ndarray]], config: EmgPipelineConfig
) -> EmgNormalisation:
    """Per-channel min and max of the RMS envelope over (time_s, values) recordings (the training set)."""
    if not recordings:
        raise ConfigError("fit_normalisation needs at least one recording")
    mins, maxs = [], []
    for time_s, values in recordings:
        rms, _ = process_recording(time_s, values, config, normalisation=None)
        if len(rms.values):
            mins.append(rms.values.min(axis=0))
            maxs.append(rms.values.max(axis=0))
    if not mins:
        raise ConfigError("fit_normalisation: the recordings hold no samples")
    return EmgNormalisation(np.min(mins, axis=0), np.max(maxs, axis=0))


def window_from_track(track: EnvelopeChunk, first_grid: int, length: int) -> tuple[np.ndarray, float]:
    """Envelope samples for grid indices [first_grid, first_grid + length), zero where none exist.

    Returns the (length, channels) window and its coverage (fraction of grid points present).
    """
    out = np.zeros((length, track.values.shape[1]))
    lo = int(np.searchsorted(track.grid, first_grid, side="left"))
    hi = int(np.searchsorted(track.grid, first_grid + length, side="left"))
    if hi > lo:
        out[track.grid[lo:hi] - first_grid] = track.values[lo:hi]
    return out, (hi - lo) / length


def log_mel_spectrogram(window: np.ndarray, config: EmgPipelineConfig) -> np.ndarray:
    """Log Mel spectrogram of each channel: (..., n, channels) -> (..., channels, n_mels, frames).

    Power spectrogram (Hann window, no centre padding) through librosa's Mel filter bank, then the log (with the
    config's floor; log1p for a configuration that has none). Leading
    axes are independent windows (the clips of a sample), computed in one pass: the per-call overhead of the
    FFT and the matrix product is most of a 1-s clip's cost.
    """
    n = window.shape[-2]
    if n < config.n_fft:
        raise ConfigError(f"a clip of {n} samples is shorter than n_fft={config.n_fft}")
    per_channel = np.swapaxes(window, -1, -2)  # (..., channels, n)
    frames = np.lib.stride_tricks.sliding_window_view(per_channel, config.n_fft, axis=-1)[..., :: config.hop_length, :]
    spectrum = np.fft.rfft(frames * config.stft_window, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2  # (..., channels, frames, bins)
    mel = power @ config.mel_basis.T  # (..., channels, frames, n_mels)
    compressed = np.log1p(mel) if config.log_floor is None else np.log(mel + config.log_floor)
    return np.swapaxes(compressed, -1, -2)


def clip_spectrograms(
    tracks: Sequence[EnvelopeChunk | None],
    clip_bounds_s: np.ndarray,
    config: EmgPipelineConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectrograms of every clip from per-arm envelope tracks (None = arm missing, zeros).

    `clip_bounds_s` is (clips, 2) [start, stop) times. Returns float32 (clips, channels, n_mels, frames)
    and (clips, arms) coverage.
    """
    length = config.samples_in(float(clip_bounds_s[0, 1] - clip_bounds_s[0, 0]))
    windows = np.zeros((len(clip_bounds_s), length, CHANNELS_PER_ARM * len(tracks)))
    coverage = np.zeros((len(clip_bounds_s), len(tracks)))
    for clip, (start_s, _) in enumerate(clip_bounds_s):
        first = round(start_s * config.rate_hz)
        for arm, track in enumerate(tracks):
            if track is not None:  # a missing arm stays zero, covered 0
                columns = slice(arm * CHANNELS_PER_ARM, (arm + 1) * CHANNELS_PER_ARM)
                windows[clip, :, columns], coverage[clip, arm] = window_from_track(track, first, length)
    return log_mel_spectrogram(windows, config).astype(np.float32), coverage
