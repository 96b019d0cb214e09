"""`myosight dataset`: sessions -> sub-actions -> split -> sEMG spectrograms and raw windows per split.

The sEMG preset (`preset`, stored in the manifest and from there in every bundle) picks the pipeline: ``live``
(the default, causal: what the live worker computes) or an offline one of the method (``paper``,
``paper-text``; see :mod:`myosight.models.emg_presets`). In the live preset the min-max statistics are fitted
on the RMS envelopes of the training samples only (never on test data) and stored in the dataset manifest,
from where they travel into the model bundle; the offline presets take min and max per action instead (the
manifest then holds the full-scale prior, which they do not use).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from myosight.data.actionsense import ActionSenseSession
from myosight.data.activities import ACTIVITIES
from myosight.data.subactions import SubAction, cut_subactions, split_subactions
from myosight.errors import ConfigError
from myosight.models.clips import ClipGeometry
from myosight.models.emg_pipeline import LIVE_PRESET, EmgNormalisation, EmgPipelineConfig
from myosight.models.emg_presets import preset_config
from myosight.progress import track
from myosight.training.emg_spectrograms import (
    fit_normalisation_on_windows,
    offline_subaction_spectrograms,
    session_tracks,
    subaction_raw_windows,
    subaction_spectrograms,
)
from myosight.training.feature_store import SplitData, write_manifest, write_split


def class_list(labels: Sequence[str]) -> list[str]:
    """The classes present, in the canonical ActionSense order (unknown labels after, sorted)."""
    present = set(labels)
    known = [a for a in ACTIVITIES if a in present]
    return known + sorted(present - set(known))


def build_emg_dataset(
    session_paths: Sequence[Path],
    out_dir: Path,
    *,
    split_by: str = "subaction",
    seed: int = 0,
    train_fraction: float = 0.7,
    subjects: Sequence[str] | None = None,
    allow_missing_arm: bool = False,
    preset: str = LIVE_PRESET,
    config: EmgPipelineConfig | None = None,
    geometry: ClipGeometry | None = None,
    progress: bool = True,
) -> dict:
    """Build a dataset directory (see training.feature_store) and return its manifest.

    `config`, when given, overrides the preset's parameters (its own `preset` field says which pipeline runs).
    """
    config, geometry = config or preset_config(preset), geometry or ClipGeometry()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sessions: list[ActionSenseSession] = []
    subactions: list[SubAction] = []
    try:
        for path in session_paths:
            session = ActionSenseSession(path)
            sessions.append(session)
            if not allow_missing_arm:
                session.emg_pair()  # refuses a one-arm session with a clear message
            subactions += cut_subactions(session.activities(), str(Path(path).resolve()), session.subject,
                                         geometry.sample_seconds)
        if not subactions:
            raise ConfigError("the sessions hold no labelled actions")
        split = split_subactions(subactions, train_fraction=train_fraction, seed=seed, by=split_by, subjects=subjects)
        by_session = {str(Path(s.path).resolve()): s for s in sessions}
        normalisation = (EmgNormalisation.full_scale() if config.offline
                         else _fit_live_normalisation(by_session, split.train, config, geometry, progress))
        classes = class_list([s.label for s in split.train + split.test])
        parts = {"train": split.train, "test": split.test}
        computed = {name: _split_arrays(part, by_session, classes, normalisation, config, geometry, progress, name)
                    for name, part in parts.items()}
    finally:
        for session in sessions:
            session.close()
    counts = {name: len(part) for name, part in parts.items()}
    for name, data in computed.items():  # written only once everything is computed; each file replaced whole
        write_split(out_dir / f"{name}.h5", data)
    manifest = {
        "format": "myosight-dataset/1",
        "classes": classes,
        "sessions": [str(Path(p).resolve()) for p in session_paths],
        "split": {"by": split_by, "seed": seed, "train_fraction": train_fraction,
                  "subjects": list(subjects) if subjects else None, **counts},
        "emg_preset": config.preset,
        "emg_pipeline": config.to_dict(),
        "clip_geometry": geometry.to_dict(),
        "emg_normalisation": normalisation.to_dict(),
    }
    write_manifest(out_dir, manifest)
    return manifest


def _fit_live_normalisation(by_session: dict[str, ActionSenseSession], train: Sequence[SubAction],
                            config: EmgPipelineConfig, geometry: ClipGeometry, progress: bool) -> EmgNormalisation:
    """The live preset's min-max statistics: the RMS envelopes inside the training samples only."""
    rms = {key: session_tracks(s, config, None, allow_missing_arm=True, stage="rms") for key, s in
           track(by_session.items(), "RMS envelopes", enabled=progress)}
    keys = list(rms)
    train_windows = [[(s.start_s, s.start_s + geometry.sample_seconds) for s in train if s.session == key]
                     for key in keys]
    return fit_normalisation_on_windows([rms[k] for k in keys], train_windows, config)


def _split_arrays(part, by_session, classes, normalisation, config, geometry, progress, name) -> SplitData:
    index = {label: i for i, label in enumerate(classes)}
    spectrograms, raw = [], []
    order = []
    for key, session in track(by_session.items(), f"sEMG {name}", enabled=progress):
        members = [s for s in part if s.session == key]
        if not members:
            continue
        resampled = session_tracks(session, config, None, allow_missing_arm=True, stage="resampled")
        if config.offline:  # whole actions: each sub-action's action from the session's labels
            actions = {action.index: action for action in session.activities()}
            spectrograms.append(offline_subaction_spectrograms(resampled, actions, members, geometry, config))
        else:
            envelope = session_tracks(session, config, normalisation, allow_missing_arm=True)
            spectrograms.append(subaction_spectrograms(envelope, members, geometry, config)[0])
        raw.append(subaction_raw_windows(resampled, members, geometry, config))
        order += [(s, session.video_path) for s in members]
    return SplitData(
        uids=np.array([s.uid for s, _ in order]),
        labels=np.array([index[s.label] for s, _ in order], np.int64),
        start_s=np.array([s.start_s for s, _ in order]),
        sessions=np.array([s.session for s, _ in order]),
        videos=np.array([str(v) if v else "" for _, v in order]),
        arrays={"spectrograms": np.concatenate(spectrograms), "emg_raw": np.concatenate(raw)},
    )
