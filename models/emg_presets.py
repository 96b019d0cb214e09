"""The offline sEMG presets: the method's pipeline over whole actions, as its authors ran it and as its text states it.

myosight's default pipeline (preset ``live``, :mod:`myosight.models.emg_pipeline`) is causal, so that the live
worker and training compute the same spectrograms. The method as published works on whole actions offline,
which a live stream cannot do. These presets reproduce it for offline evaluation (the paper's Table 2); a
model trained on them cannot run live (:func:`myosight.models.bundle.require_live_preset`).

Per action and arm, on the 160 Hz grid (the grid points inside the action's labelled span, found by
timestamps like the live pipeline's, since the Myo's measured average rate is 160 Hz):

1. RMS over ``rms_window`` (32) samples, centred: sample i is the RMS of samples i - 16 .. i + 15, with
   symmetric padding at the action's ends.
2. Rectification (``abs``; a no-op after the RMS, kept so that every stage of the authors' list is here).
3. Min-max to [0, 1] over the whole action, one minimum and one maximum over all 8 channels of the arm.
4. Zero-phase Butterworth low-pass (``scipy.signal.filtfilt``, transfer-function form, default padding):
   order 4 at 1 Hz in ``paper`` (the authors' code), order 5 at 5 Hz in ``paper-text`` (the text).

Then each 5-s sub-action (cut as in :mod:`myosight.data.subactions`) is samples ``800 k .. 800 k + 799`` of its
action (zero-padded past the action's end) and is cut into 5 clips of 160 samples. Per clip and channel a Mel
power spectrogram: Hann window, n_fft 16 (``paper``) or 32 (``paper-text``), hop 2, centred with reflect
padding, power 2, normalised by the window's energy (the frame's power spectrum divided by sum(w^2)),
n_mels 10 on the HTK Mel scale without filter normalisation, f_min 0, f_max 80, no log: 10 x 81 per channel
and clip.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

from myosight.errors import ConfigError
from myosight.models.emg_pipeline import LIVE_PRESET, PRESETS, EmgPipelineConfig

#: One line per preset, for help texts and reports.
PRESET_SUMMARIES: dict[str, str] = {
    "live": "causal, runs live (default): trailing RMS, min-max from the training set, causal 5 Hz low-pass, "
            "log-Mel 10 x 17 per 1-s clip",
    "paper": "offline, as the authors' code ran it: centred RMS, min-max per action, zero-phase Butterworth "
             "order 4 at 1 Hz, Mel 10 x 81 (n_fft 16, hop 2, centred), no log",
    "paper-text": "offline, the paper's text where it differs from the code: Butterworth order 5 at 5 Hz, n_fft 32",
}


def preset_config(name: str) -> EmgPipelineConfig:
    """The pipeline parameters of a named preset."""
    if name == LIVE_PRESET:
        return EmgPipelineConfig()
    if name == "paper":
        return EmgPipelineConfig(preset=name, lowpass_order=4, lowpass_hz=1.0, n_fft=16, hop_length=2, f_max=80.0)
    if name == "paper-text":
        return EmgPipelineConfig(preset=name, lowpass_order=5, lowpass_hz=5.0, n_fft=32, hop_length=2, f_max=80.0)
    raise ConfigError(f"unknown sEMG preset {name!r}; choose from {', '.join(PRESETS)}")


def spectrogram_frames(config: EmgPipelineConfig, clip_samples: int) -> int:
    """Spectrogram frames of a clip of `clip_samples` samples under a preset (17 live, 81 offline at 160)."""
    if config.offline:
        return 1 + clip_samples // config.hop_length
    return 1 + (clip_samples - config.n_fft) // config.hop_length


#: The fewest spectrogram frames (and Mel bands) a clip needs: the sEMG CNN halves both with its max-pool.
MIN_CLIP_FRAMES = 2


def check_clip_length(config: EmgPipelineConfig, clip_seconds: float) -> int:
    """The spectrogram frames of one clip, or a ConfigError saying the clip is too short for the pipeline."""
    samples = config.samples_in(clip_seconds)
    frames = spectrogram_frames(config, samples) if samples >= (0 if config.offline else config.n_fft) else 0
    if frames < MIN_CLIP_FRAMES:
        shortest = (config.n_fft + config.hop_length * (MIN_CLIP_FRAMES - 1)) / config.rate_hz
        raise ConfigError(f"a clip of {clip_seconds:g} s ({samples} samples at {config.rate_hz:g} Hz) gives "
                          f"{frames} spectrogram frame(s); the sEMG CNN needs {MIN_CLIP_FRAMES}: make clips at "
                          f"least {shortest:g} s (window / clips)")
    return frames


def centred_rms(values: np.ndarray, window: int) -> np.ndarray:
    """(n, channels) -> (n, channels): RMS over `window` samples centred on each sample, symmetric padding."""
    before, after = window // 2, window - 1 - window // 2
    padded = np.pad(np.asarray(values, np.float64) ** 2, ((before, after), (0, 0)), mode="symmetric")
    running = np.concatenate([np.zeros((1, padded.shape[1])), np.cumsum(padded, axis=0)])
    mean_square = (running[window:] - running[:-window]) / window
    return np.sqrt(np.maximum(mean_square, 0.0))


def action_envelope(samples: np.ndarray, config: EmgPipelineConfig) -> np.ndarray:
    """One arm's whole action (n, channels) on the grid -> its envelope (RMS, abs, min-max, zero-phase low-pass).

    The min-max uses one minimum and one maximum over the arm's channels and the whole action: it needs the
    action's future, as does the zero-phase filter. An all-constant action (a missing arm) stays zero.
    """
    if not config.offline:
        raise ConfigError(f"action_envelope computes the offline presets, not {config.preset!r}")
    if len(samples) == 0:
        return np.zeros_like(samples, dtype=np.float64)
    rectified = np.abs(centred_rms(samples, config.rms_window))
    low, high = rectified.min(), rectified.max()
    normalised = (rectified - low) / max(high - low, 1e-12) if high > low else np.zeros_like(rectified)
    b, a = signal.butter(config.lowpass_order, config.lowpass_hz, btype="low", fs=config.rate_hz)
    padlen = min(3 * max(len(a), len(b)), len(normalised) - 1)  # scipy's default, for actions long enough
    if padlen < 1:
        return normalised
    return signal.filtfilt(b, a, normalised, axis=0, padlen=padlen)


def subaction_window(envelope: np.ndarray, sub_index: int, length: int) -> np.ndarray:
    """Samples [sub_index * length, (sub_index + 1) * length) of an action's envelope, zero past its end."""
    out = np.zeros((length, envelope.shape[1]))
    part = envelope[sub_index * length:(sub_index + 1) * length]
    out[:len(part)] = part
    return out


@lru_cache(maxsize=8)
def _mel_basis(rate_hz: float, n_fft: int, n_mels: int, f_max: float) -> np.ndarray:
    import librosa  # imported here: librosa is slow to import and only the spectrogram needs it

    return librosa.filters.mel(sr=rate_hz, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=f_max, htk=True,
                               norm=None).astype(np.float64)


def mel_power_spectrogram(clip: np.ndarray, config: EmgPipelineConfig) -> np.ndarray:
    """(n, channels) -> (channels, n_mels, 1 + n // hop): centred, normalised Mel power spectrogram, no log."""
    n = len(clip)
    half = config.n_fft // 2
    if n <= half:
        raise ConfigError(f"a clip of {n} samples is too short for centred frames of n_fft={config.n_fft}")
    padded = np.pad(np.asarray(clip, np.float64).T, ((0, 0), (half, half)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft, axis=1)[:, :: config.hop_length]
    window = signal.get_window("hann", config.n_fft, fftbins=True)
    spectrum = np.fft.rfft(frames * window, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2) / np.sum(window**2)  # (channels, frames, bins)
    f_max = config.f_max if config.f_max is not None else config.rate_hz / 2
    mel = power @ _mel_basis(config.rate_hz, config.n_fft, config.n_mels, f_max).T
    return mel.transpose(0, 2, 1)


def sample_spectrograms(window: np.ndarray, config: EmgPipelineConfig, clips: int) -> np.ndarray:
    """A sub-action's (clips * clip_samples, channels) envelope -> (clips, channels, n_mels, frames) float32."""
    if len(window) % clips:
        raise ConfigError(f"a sub-action of {len(window)} samples does not split into {clips} equal clips")
    parts = np.split(np.asarray(window), clips)
    return np.stack([mel_power_spectrogram(part, config) for part in parts]).astype(np.float32)
