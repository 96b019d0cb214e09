"""The offline sEMG pass over sessions: envelope tracks per arm, then spectrograms per sub-action.

For the ``live`` preset this is the offline driver of :mod:`myosight.models.emg_pipeline`; the live worker feeds
the same processor in chunks, so the spectrograms computed here are the ones the model sees live. For the
offline presets (:mod:`myosight.models.emg_presets`) the signal on the grid is processed one whole action at a
time (:func:`offline_subaction_spectrograms`), as the method does; no live worker can compute those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from myosight.arms import BOTH_ARMS, arm_columns, describe_arms, emg_channels
from myosight.constants import CHANNELS_PER_ARM
from myosight.data.actionsense import Action, ActionSenseSession
from myosight.data.layout import EMG_GROUPS
from myosight.data.subactions import SubAction
from myosight.errors import MissingStreamError
from myosight.models.clips import ClipGeometry, clip_segments
from myosight.models.emg_pipeline import (
    EmgNormalisation,
    EmgPipelineConfig,
    EnvelopeChunk,
    StreamHealth,
    clip_spectrograms,
    fit_normalisation,
    process_recording,
    window_from_track,
)
from myosight.models.emg_presets import action_envelope, sample_spectrograms, spectrogram_frames, subaction_window


@dataclass
class SessionTracks:
    """Envelope tracks of the layout's arms of one session (None where the session lacks an arm)."""

    tracks: dict[str, EnvelopeChunk | None]
    health: dict[str, StreamHealth]
    arms: tuple[str, ...] = BOTH_ARMS  # the layout, in channel order

    def ordered(self) -> list[EnvelopeChunk | None]:
        return [self.tracks[arm] for arm in self.arms]


def session_tracks(
    session: ActionSenseSession,
    config: EmgPipelineConfig,
    normalisation: EmgNormalisation | None,
    *,
    arms: tuple[str, ...] = BOTH_ARMS,
    allow_missing_arm: bool = False,
    stage: str | None = None,
) -> SessionTracks:
    """Run the offline pass over the layout's arms of a session (normalisation None: RMS envelopes only).

    `arms` is the layout the model reads (its normalisation has 8 channels per arm, in this order); an arm the
    session lacks is refused unless `allow_missing_arm` (its channels are then zero). `stage` picks the
    pipeline output ("envelope", "rms", "resampled"; see EmgStreamProcessor).
    """
    missing = [arm for arm in arms if arm not in session.arms]
    if missing and not allow_missing_arm:
        raise MissingStreamError(
            session.path, f"the model reads {describe_arms(arms)} but the session has {describe_arms(session.arms)} "
            f"(use --arms {','.join(session.arms) or 'ARM'} for its arms, or --allow-missing-arm for zeros in place "
            f"of the {missing[0]} arm)", EMG_GROUPS[missing[0]])
    tracks: dict[str, EnvelopeChunk | None] = {}
    health: dict[str, StreamHealth] = {}
    for index, arm in enumerate(arms):
        if arm in missing:
            tracks[arm] = None
            continue
        series = session.emg(arm)
        arm_norm = normalisation.arm(index) if normalisation is not None and stage != "resampled" else None
        tracks[arm], health[arm] = process_recording(
            series.time_s, series.data, config, arm_norm, name=f"{session.path.name}:{arm}", stage=stage
        )
    return SessionTracks(tracks, health, arms)


def fit_session_normalisation(sessions: Sequence[ActionSenseSession], config: EmgPipelineConfig,
                              arms: tuple[str, ...] = BOTH_ARMS) -> EmgNormalisation:
    """Per-channel min/max of the RMS envelope over sessions (8 per arm of the layout); an arm no session has
    gets the full-scale prior."""
    prior = EmgNormalisation.full_scale(emg_channels(arms))
    minimum, maximum = prior.minimum.copy(), prior.maximum.copy()
    for arm in arms:
        recordings = [(s.emg(arm).time_s, s.emg(arm).data) for s in sessions if arm in s.arms]
        if recordings:
            fitted = fit_normalisation(recordings, config)
            part = arm_columns(arms, arm)
            minimum[part], maximum[part] = fitted.minimum, fitted.maximum
    return EmgNormalisation(minimum, maximum)


def fit_normalisation_on_windows(
    rms_tracks: Sequence[SessionTracks], windows: Sequence[Sequence[tuple[float, float]]], config: EmgPipelineConfig
) -> EmgNormalisation:
    """Per-channel min/max of RMS envelopes inside the given time windows only (the training samples).

    `windows[i]` lists the (start_s, stop_s) spans taken from `rms_tracks[i]` (all of one arm layout); an arm
    never seen keeps the full-scale prior.
    """
    arms = rms_tracks[0].arms if rms_tracks else BOTH_ARMS
    prior = EmgNormalisation.full_scale(emg_channels(arms))
    minimum, maximum = np.full(len(prior.minimum), np.inf), np.full(len(prior.minimum), -np.inf)
    for tracks, spans in zip(rms_tracks, windows, strict=True):
        for arm, track in zip(tracks.arms, tracks.ordered(), strict=True):
            if track is None:
                continue
            part = arm_columns(arms, arm)
            for start_s, stop_s in spans:
                lo, hi = np.searchsorted(track.grid, [start_s * config.rate_hz, stop_s * config.rate_hz])
                if hi > lo:
                    minimum[part] = np.minimum(minimum[part], track.values[lo:hi].min(axis=0))
                    maximum[part] = np.maximum(maximum[part], track.values[lo:hi].max(axis=0))
    unseen = ~np.isfinite(minimum)
    minimum[unseen], maximum[unseen] = prior.minimum[unseen], prior.maximum[unseen]
    return EmgNormalisation(minimum, maximum)


def subaction_raw_windows(
    resampled: SessionTracks, subactions: Sequence[SubAction], geometry: ClipGeometry, config: EmgPipelineConfig
) -> np.ndarray:
    """(N, clips, samples_per_clip, channels) float16 raw sEMG on the model grid, scaled to [-1, 1]."""
    length = config.samples_in(geometry.clip_seconds)
    out = np.zeros((len(subactions), geometry.clips_per_sample, length, emg_channels(resampled.arms)), np.float16)
    for n, sub in enumerate(subactions):
        for c, (start_s, _) in enumerate(clip_segments(sub.start_s, geometry)):
            first = round(start_s * config.rate_hz)
            for index, track in enumerate(resampled.ordered()):
                if track is not None:
                    window, _ = window_from_track(track, first, length)
                    out[n, c, :, index * 8:(index + 1) * 8] = window / 128.0
    return out


def subaction_spectrograms(
    tracks: SessionTracks,
    subactions: Sequence[SubAction],
    geometry: ClipGeometry,
    config: EmgPipelineConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, clips, channels, n_mels, frames) float32 spectrograms and (N, clips, arms) per-arm coverage."""
    spectrograms, coverage = [], []
    for sub in subactions:
        spec, cov = clip_spectrograms(tracks.ordered(), clip_segments(sub.start_s, geometry), config)
        spectrograms.append(spec)
        coverage.append(cov)
    if not spectrograms:
        return (_no_spectrograms(geometry, config, tracks.arms),
                np.zeros((0, geometry.clips_per_sample, len(tracks.arms))))
    return np.stack(spectrograms), np.stack(coverage)


def _no_spectrograms(geometry: ClipGeometry, config: EmgPipelineConfig, arms: tuple[str, ...]) -> np.ndarray:
    frames = spectrogram_frames(config, config.samples_in(geometry.clip_seconds))
    return np.zeros((0, geometry.clips_per_sample, emg_channels(arms), config.n_mels, frames), np.float32)


def action_grid_samples(track: EnvelopeChunk | None, action: Action, config: EmgPipelineConfig) -> np.ndarray:
    """One arm's samples on the grid points inside an action's span [start, stop] (zeros where none exist)."""
    first = math.ceil(action.start_s * config.rate_hz)
    length = max(math.floor(action.stop_s * config.rate_hz) - first + 1, 0)
    if track is None:
        return np.zeros((length, CHANNELS_PER_ARM))
    return window_from_track(track, first, length)[0]


def offline_subaction_spectrograms(
    resampled: SessionTracks,
    actions: dict[int, Action],
    subactions: Sequence[SubAction],
    geometry: ClipGeometry,
    config: EmgPipelineConfig,
) -> np.ndarray:
    """(N, clips, channels, n_mels, frames) float32 spectrograms of an offline preset.

    `resampled` holds the raw signal on the grid ("resampled" stage); `actions` maps each sub-action's
    `action_index` to its action. Each action's envelope is computed once, over the whole action and per
    arm, then sub-action k takes its samples 800 k .. 800 k + 799 (zeros past the action's end).
    """
    length = config.samples_in(geometry.sample_seconds)
    envelopes: dict[int, np.ndarray] = {}
    out = []
    for sub in subactions:
        if sub.action_index not in envelopes:
            action = actions[sub.action_index]
            envelopes[sub.action_index] = np.hstack(
                [action_envelope(action_grid_samples(track, action, config), config) for track in resampled.ordered()]
            )
        window = subaction_window(envelopes[sub.action_index], sub.sub_index, length)
        out.append(sample_spectrograms(window, config, geometry.clips_per_sample))
    return np.stack(out) if out else _no_spectrograms(geometry, config, resampled.arms)
