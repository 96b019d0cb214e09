"""The sEMG pipeline: chunked-vs-offline parity, the fault policy, resampling and the stage maths."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
from conftest import myo_timestamps

from myosight.data.actionsense import ActionSenseSession
from myosight.data.subactions import cut_subactions
from myosight.errors import MissingStreamError, StreamError
from myosight.models.clips import ClipGeometry, clip_segments
from myosight.models.emg_pipeline import (
    EmgNormalisation,
    EmgPipelineConfig,
    EmgStreamProcessor,
    EnvelopeChunk,
    clip_spectrograms,
    fit_normalisation,
    log_mel_spectrogram,
    process_recording,
)
from myosight.training.emg_spectrograms import fit_session_normalisation, session_tracks, subaction_spectrograms

CONFIG = EmgPipelineConfig()
GEOMETRY = ClipGeometry()
T0 = 1_700_000_000.0


def replay_in_chunks(time_s, values, normalisation, rng, low=1, high=500) -> EnvelopeChunk:
    """Feed a recording to a fresh processor in random chunk sizes, as a live inlet would."""
    processor = EmgStreamProcessor(CONFIG, normalisation, channels=values.shape[1])
    out, i = [], 0
    while i < len(time_s):
        n = int(rng.integers(low, high + 1))
        out.append(processor.push(time_s[i:i + n], values[i:i + n]))
        i += n
    out.append(processor.flush())
    return EnvelopeChunk.concat(out, values.shape[1])


def noisy_stream(seconds: float, rng: np.random.Generator, channels: int = 8):
    """Myo-like int8 noise with a 1-Hz activation rhythm."""
    times = myo_timestamps(int(seconds * CONFIG.rate_hz / 2), CONFIG.rate_hz, T0, rng)
    envelope = 10 + 30 * (1 + np.sin(2 * np.pi * 1.0 * (times - T0)))[:, None]
    return times, np.clip(np.round(rng.normal(0, 1, (len(times), channels)) * envelope), -128, 127)


# -- parity: the recording replayed in chunks gives the offline features ------------------------------
def test_parity_on_real_session(real_dir: Path) -> None:
    """S02_2 (both arms, gaps between 25 actions) replayed in chunks of 1..500 samples per arm."""
    rng = np.random.default_rng(7)
    with ActionSenseSession(real_dir / "S02_2_myo.hdf5") as session:
        normalisation = fit_session_normalisation([session], CONFIG)
        offline = session_tracks(session, CONFIG, normalisation)
        subactions = cut_subactions(session.activities(), "S02_2", "S02")
        streamed = {
            arm: replay_in_chunks(session.emg(arm).time_s, session.emg(arm).data, normalisation.arm(i), rng)
            for i, arm in enumerate(("left", "right"))
        }
    for arm in ("left", "right"):
        np.testing.assert_array_equal(streamed[arm].grid, offline.tracks[arm].grid)
    offline_spec, _ = subaction_spectrograms(offline, subactions, GEOMETRY, CONFIG)
    offline.tracks = streamed
    streamed_spec, _ = subaction_spectrograms(offline, subactions, GEOMETRY, CONFIG)
    assert offline_spec.shape == (120, 5, 16, 10, 17)
    assert np.abs(streamed_spec - offline_spec).max() < 1e-5
    assert offline_spec.std() > 0.1  # not trivially equal (all zeros)


def test_parity_with_faults_in_the_stream() -> None:
    """Parity holds with NaNs, repeated timestamps, a gap and backwards timestamps in the input."""
    rng = np.random.default_rng(3)
    times, values = noisy_stream(40, rng)
    values[500:505, 2] = np.nan
    values[900, :] = np.inf
    times[3000:3008] = times[3000]  # a burst of repeated timestamps
    times[4000:] += 3.0  # a 3-s gap
    times[5000] -= 0.5  # one sample from the past
    repeats = int((np.diff(times) == 0).sum())
    assert repeats >= 7
    normalisation = EmgNormalisation.full_scale(8)
    offline, health = process_recording(times, values, CONFIG, normalisation)
    for seed in range(3):
        streamed = replay_in_chunks(times, values, normalisation, np.random.default_rng(seed))
        np.testing.assert_array_equal(streamed.grid, offline.grid)
        assert np.abs(streamed.values - offline.values).max() < 1e-9
    assert health.nonfinite_values == 5 + 8
    assert health.backwards_dropped == 1
    assert health.repeated_timestamps == repeats
    assert len(health.gaps) == 1


# -- the stages --------------------------------------------------------------------------------------
@pytest.mark.parametrize("stored", [False, True], ids=["log with a floor", "log1p of an earlier bundle"])
def test_log_mel_matches_librosa(stored: bool) -> None:
    """The Mel power is librosa's; it is compressed by log(mel + floor), or, for a configuration stored before
    the floor was a setting (a bundle without the key), by log1p as then."""
    config = CONFIG
    if stored:
        saved = CONFIG.to_dict()
        del saved["log_floor"]
        config = EmgPipelineConfig.from_dict(saved)
        assert config.log_floor is None
    rng = np.random.default_rng(0)
    window = rng.random((160, 3))
    ours = log_mel_spectrogram(window, config)
    for c in range(3):
        reference = librosa.feature.melspectrogram(
            y=window[:, c], sr=config.rate_hz, n_fft=config.n_fft, hop_length=config.hop_length,
            n_mels=config.n_mels, fmin=0.0, fmax=config.rate_hz / 2, center=False, power=2.0,
        )
        expected = np.log1p(reference) if stored else np.log(reference + config.log_floor)
        np.testing.assert_allclose(ours[c], expected, rtol=1e-6, atol=1e-9)
    assert ours.shape == (3, 10, 17)


def test_rms_envelope_and_normalisation() -> None:
    """A constant-amplitude square wave has RMS = amplitude; min-max maps it into [0, 1] with clipping."""
    times = T0 + np.arange(1600) / CONFIG.rate_hz
    values = np.tile(np.array([[20.0], [-20.0]]), (800, 8))
    rms, _ = process_recording(times, values, CONFIG, normalisation=None)
    np.testing.assert_allclose(rms.values[40:], 20.0, rtol=1e-6)
    normalisation = EmgNormalisation(np.zeros(8), np.full(8, 40.0))
    envelope, _ = process_recording(times, values, CONFIG, normalisation)
    np.testing.assert_allclose(envelope.values[200:], 0.5, atol=1e-6)
    loud, _ = process_recording(times, values * 5, CONFIG, normalisation)
    assert loud.values.max() <= 1.0 + 1e-9  # clipped to the training range


def test_lowpass_removes_fast_modulation() -> None:
    """An amplitude modulation at 1 Hz passes the 5-Hz low-pass; one at 20 Hz does not."""
    times = T0 + np.arange(3200) / CONFIG.rate_hz
    carrier = np.sign(np.sin(2 * np.pi * 60 * (times - T0)))[:, None]

    def ripple(freq: float) -> float:
        values = 40 * (1 + 0.5 * np.sin(2 * np.pi * freq * (times - T0)))[:, None] * carrier
        envelope, _ = process_recording(times, np.repeat(values, 8, 1), CONFIG, EmgNormalisation.full_scale(8))
        return float(np.ptp(envelope.values[800:, 0]))

    assert ripple(1.0) > 10 * ripple(20.0)


def test_causal_output_ignores_the_future() -> None:
    rng = np.random.default_rng(1)
    times, values = noisy_stream(10, rng)
    altered = values.copy()
    altered[1000:] = 100.0
    normalisation = EmgNormalisation.full_scale(8)
    original, _ = process_recording(times, values, CONFIG, normalisation)
    changed, _ = process_recording(times, altered, CONFIG, normalisation)
    before = original.grid < np.floor(times[999] * CONFIG.rate_hz)
    np.testing.assert_array_equal(original.values[before], changed.values[before])
    assert not np.allclose(original.values[~before], changed.values[~before])


def test_fit_normalisation_covers_training_data() -> None:
    rng = np.random.default_rng(2)
    recordings = [noisy_stream(20, rng) for _ in range(2)]
    normalisation = fit_normalisation(recordings, CONFIG)
    rms = np.vstack([process_recording(t, v, CONFIG, None)[0].values for t, v in recordings])
    normalised = normalisation.apply(rms)
    np.testing.assert_array_equal(normalised.min(axis=0), 0.0)  # every channel's extremes reached, none clipped
    np.testing.assert_array_equal(normalised.max(axis=0), 1.0)
    for times, values in recordings:
        envelope, _ = process_recording(times, values, CONFIG, normalisation)
        assert envelope.values.min() > -0.05 and envelope.values.max() < 1.05  # low-pass ringing only
    assert np.all(normalisation.maximum > normalisation.minimum)


# -- resampling --------------------------------------------------------------------------------------
def test_resampling_from_500_hz_with_repeated_timestamps(shared_dir: Path) -> None:
    """The real ~500 Hz recorder file (77% repeated stamps) lands on the 160-Hz grid at the right length."""
    path = sorted((shared_dir / "actionsense").glob("*15-34-28*.hdf5"))[0]
    with ActionSenseSession(path) as session:
        series = session.read_stream("EMGLeft-cognionics/emgleft-values")
    config = EmgPipelineConfig()
    processor = EmgStreamProcessor(config, None, channels=1)
    out = EnvelopeChunk.concat([processor.push(series.time_s, series.data), processor.flush()], 1)
    span = series.time_s[-1] - series.time_s[0]
    assert abs(len(out.grid) - span * config.rate_hz) < 0.02 * span * config.rate_hz
    assert np.all(np.diff(out.grid) >= 1)
    assert 480 < processor.health.measured_rate_hz < 520  # measured from timestamps
    assert processor.health.repeated_timestamps > 0.7 * len(series)


def test_resampled_signal_follows_the_source() -> None:
    """A slow sine sampled at 500 Hz in bursts of equal stamps is reconstructed on the 160-Hz grid."""
    true_times = T0 + np.arange(5000) / 500.0
    stamps = true_times[(np.arange(5000) // 8) * 8]  # 8 samples share each stamp
    values = np.sin(2 * np.pi * 2.0 * (true_times - T0))[:, None]
    processor = EmgStreamProcessor(CONFIG, None, channels=1)
    t, x = processor._cleaner.push(stamps, values)  # the resampling stages alone
    [(_, grid, resampled)] = processor._resampler.push(t, x)
    expected = np.sin(2 * np.pi * 2.0 * (grid / CONFIG.rate_hz - T0))
    assert np.abs(resampled[:, 0] - expected).max() < 0.02


def test_both_arms_land_on_one_grid() -> None:
    rng = np.random.default_rng(4)
    left_t, left_x = noisy_stream(5, rng)
    right_t, right_x = noisy_stream(5, rng)
    right_t = right_t + 0.0123  # the right armband started a little later
    norm = EmgNormalisation.full_scale(8)
    left, _ = process_recording(left_t, left_x, CONFIG, norm)
    right, _ = process_recording(right_t, right_x, CONFIG, norm)
    common = np.intersect1d(left.grid, right.grid)
    assert len(common) > 0.95 * min(len(left.grid), len(right.grid))


# -- fault policy ------------------------------------------------------------------------------------
def test_nonfinite_values_are_held() -> None:
    times = T0 + np.arange(10) / CONFIG.rate_hz
    values = np.arange(10, dtype=float)[:, None].repeat(2, 1)
    values[4:7, 1] = np.nan
    processor = EmgStreamProcessor(CONFIG, None, channels=2)
    _t, x = processor._cleaner.push(times, values)
    np.testing.assert_array_equal(x[4:7, 1], [3, 3, 3])
    np.testing.assert_array_equal(x[:, 0], np.arange(9))  # the last sample waits for the next stamp
    assert processor.health.nonfinite_values == 3


def test_gap_is_not_bridged_and_windows_report_coverage() -> None:
    rng = np.random.default_rng(5)
    times, values = noisy_stream(20, rng)
    gap_start = times[1600]
    times[1601:] += 3.0  # the stream stops for 3 s and returns
    normalisation = EmgNormalisation.full_scale(8)
    track, health = process_recording(times, values, CONFIG, normalisation)
    assert health.gaps == [(pytest.approx(gap_start), pytest.approx(times[1601]))]
    inside = (track.grid / CONFIG.rate_hz > gap_start + 0.01) & (track.grid / CONFIG.rate_hz < times[1601] - 0.01)
    assert not inside.any()
    spanning = np.array([[gap_start - 0.5, gap_start + 0.5]])
    _, coverage = clip_spectrograms([track, track], spanning, CONFIG)
    assert 0.4 < coverage[0, 0] < 0.6
    _, coverage = clip_spectrograms([track, None], clip_segments(times[100], GEOMETRY), CONFIG)
    np.testing.assert_allclose(coverage[:, 0], 1.0)
    np.testing.assert_allclose(coverage[:, 1], 0.0)


def test_stuck_channel_is_flagged_then_cleared() -> None:
    rng = np.random.default_rng(6)
    times, values = noisy_stream(10, rng)
    values[:800, 3] = 17  # stuck for the first 5 s
    processor = EmgStreamProcessor(CONFIG, EmgNormalisation.full_scale(8))
    processor.push(times[:700], values[:700])
    assert processor.health.stuck_channels == (3,)
    processor.push(times[700:], values[700:])
    assert processor.health.stuck_channels == ()


def test_bad_chunk_shapes_are_refused() -> None:
    processor = EmgStreamProcessor(CONFIG, EmgNormalisation.full_scale(8), name="myo-left")
    with pytest.raises(StreamError, match="myo-left: expected \\(n, 8\\)"):
        processor.push(np.zeros(3), np.zeros((3, 7)))
    with pytest.raises(StreamError, match="3 samples but 2 timestamps"):
        processor.push(np.zeros(2), np.zeros((3, 8)))


def test_one_arm_session_spectrograms(real_dir: Path) -> None:
    """S06_1 (left arm only) is a one-arm layout of 8 channels; read as both arms, on request, the right arm's
    channels are a silent armband's (the log's floor) and its coverage 0, and the left arm's are the same."""
    with ActionSenseSession(real_dir / "S06_1_myo.hdf5") as session:
        assert session.arms == ("left",)
        subactions = cut_subactions(session.activities(), "S06_1", "S06")
        one = session_tracks(session, CONFIG, fit_session_normalisation([session], CONFIG, ("left",)), arms=("left",))
        with pytest.raises(MissingStreamError, match="the model reads both arms but the session has the left arm"):
            session_tracks(session, CONFIG, fit_session_normalisation([session], CONFIG))
        both = session_tracks(session, CONFIG, fit_session_normalisation([session], CONFIG), allow_missing_arm=True)
    left, left_coverage = subaction_spectrograms(one, subactions, GEOMETRY, CONFIG)
    spectrograms, coverage = subaction_spectrograms(both, subactions, GEOMETRY, CONFIG)
    assert left.shape[2] == 8 and spectrograms.shape[2] == 16 and left_coverage.shape[-1] == 1
    assert both.tracks["right"] is None
    assert np.allclose(spectrograms[:, :, 8:], np.log(CONFIG.log_floor)) and spectrograms[:, :, :8].std() > 0.1
    np.testing.assert_array_equal(spectrograms[:, :, :8], left)
    assert np.all(coverage[..., 1] == 0) and coverage[..., 0].mean() > 0.95
