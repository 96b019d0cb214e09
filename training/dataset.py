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

from myosight.arms import arm_layout, describe_arms, emg_channels
from myosight.data.actionsense import ActionSenseSession
from myosight.data.activities import ACTIVITIES
from myosight.data.checks import checked_actions
from myosight.data.subactions import SubAction, cut_subactions, split_subactions
from myosight.errors import ConfigError
from myosight.models.clips import ClipGeometry
from myosight.models.emg_pipeline import LIVE_PRESET, EmgNormalisation, EmgPipelineConfig
from myosight.models.emg_presets import check_clip_length, preset_config
from myosight.paths import replaced_together
from myosight.progress import track
from myosight.training.emg_spectrograms import (
    fit_normalisation_on_windows,
    offline_subaction_spectrograms,
    session_tracks,
    subaction_raw_windows,
    subaction_spectrograms,
)
from myosight.training.feature_store import (
    DATASET_FILE,
    SplitData,
    remove_derived_files,
    write_manifest_file,
    write_split,
)

#: Whose statistics scale a session's sEMG in a dataset (see `build_emg_dataset`).
NORMALISE = ("pooled", "subject")


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
    arms: Sequence[str] | None = None,
    normalise: str = "pooled",
    step_s: float | None = None,
    progress: bool = True,
) -> dict:
    """Build a dataset directory (see training.feature_store) and return its manifest. A dataset already in
    `out_dir` is replaced whole, with the CNN and features made from it, once the new one is computed.

    `config`, when given, overrides the preset's parameters (its own `preset` field says which pipeline runs).
    `arms` is the armband layout of the dataset (default: every arm the sessions recorded); a session without
    one of its arms is refused unless `allow_missing_arm` (that arm's channels are then zero). `geometry`
    sets the sample's length and clips (default: the paper's 5 clips of a 5-s sample). `normalise` says whose
    min-max statistics scale a session's sEMG (the live preset): "pooled", everyone's training samples together
    (what the bundle holds, and what a model used without calibration meets), or "subject", each subject's own
    training samples, as a calibration scales the person it adapts to (a base model meant to be calibrated then
    learns the inputs it will see; its bundle still holds the pooled statistics). `step_s` cuts a sample every
    so many seconds (default: one sample length, consecutive; shorter: overlapping samples, more of a short
    recording; split by action then, or neighbours overlap across the split).
    """
    if normalise not in NORMALISE:
        raise ConfigError(f"normalise {normalise!r}: choose from {', '.join(NORMALISE)}")
    config, geometry = config or preset_config(preset), geometry or ClipGeometry()
    check_clip_length(config, geometry.clip_seconds)
    out_dir = Path(out_dir)
    sessions: list[ActionSenseSession] = []
    subactions: list[SubAction] = []
    try:
        for path in session_paths:
            session = ActionSenseSession(path)
            sessions.append(session)
            subactions += cut_subactions(checked_actions(session, arms), str(Path(path).resolve()), session.subject,
                                         geometry.sample_seconds, step_s)
        layout = dataset_arms(sessions, arms, allow_missing_arm)
        if not subactions:
            raise ConfigError("the sessions hold no labelled actions")
        split = split_subactions(subactions, train_fraction=train_fraction, seed=seed, by=split_by, subjects=subjects)
        empty = [name for name, part in (("training", split.train), ("test", split.test)) if not part]
        if empty:
            raise ConfigError(f"the {len(subactions)} samples of the sessions leave the {empty[0]} part of the split "
                              f"empty (split by {split_by}, --train-fraction {train_fraction:g}): record more "
                              "actions, or split otherwise")
        by_session = {str(Path(s.path).resolve()): s for s in sessions}
        normalisation = (EmgNormalisation.full_scale(emg_channels(layout)) if config.offline
                         else _fit_live_normalisation(by_session, split.train, config, geometry, layout, progress))
        scaling = {key: normalisation for key in by_session}
        if normalise == "subject" and not config.offline:
            scaling = _subject_normalisation(by_session, split.train, config, geometry, layout, progress)
        classes = class_list([s.label for s in split.train + split.test])
        parts = {"train": split.train, "test": split.test}
        computed = {name: _split_arrays(part, by_session, classes, scaling, config, geometry, layout, progress,
                                        name) for name, part in parts.items()}
    finally:
        for session in sessions:
            session.close()
    counts = {name: len(part) for name, part in parts.items()}
    manifest = {
        "format": "myosight-dataset/1",
        "classes": classes,
        "sessions": [str(Path(p).resolve()) for p in session_paths],
        "split": {"by": split_by, "seed": seed, "train_fraction": train_fraction,
                  "subjects": list(subjects) if subjects else None, **counts},
        "arms": list(layout),
        "emg_preset": config.preset,
        "emg_pipeline": config.to_dict(),
        "clip_geometry": geometry.to_dict(),
        "emg_normalisation": normalisation.to_dict(),
        "normalise": normalise,
        "step_s": step_s,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    # all written before any replaces the earlier dataset, whose CNN and features then go with it
    files = [out_dir / f"{name}.h5" for name in computed] + [out_dir / DATASET_FILE]
    with replaced_together(files, before_replacing=lambda: remove_derived_files(out_dir)) as temporaries:
        for temporary, data in zip(temporaries, computed.values(), strict=False):
            write_split(temporary, data)
        write_manifest_file(temporaries[-1], manifest)
    return manifest


def dataset_arms(sessions: Sequence[ActionSenseSession], arms: Sequence[str] | None,
                 allow_missing_arm: bool) -> tuple[str, ...]:
    """The arm layout of a dataset: the one asked for, else every arm the sessions recorded; each session must
    have every arm of it unless `allow_missing_arm` (a ConfigError names the first that lacks one)."""
    recorded = {arm for session in sessions for arm in session.arms}
    if arms is None and not recorded:
        raise ConfigError(f"{sessions[0].path if sessions else 'the sessions'}: no Myo EMG stream in any session")
    layout = arm_layout(arms if arms is not None else recorded, what="--arms")
    if not allow_missing_arm:
        for session in sessions:
            lacking = [arm for arm in layout if arm not in session.arms]
            if lacking:
                raise ConfigError(
                    f"{session.path}: the dataset reads {describe_arms(layout)} but this session has "
                    f"{describe_arms(session.arms)} (choose its arms with --arms {','.join(session.arms) or 'ARM'}, "
                    f"or --allow-missing-arm for zeros in place of the {lacking[0]} arm)")
    return layout


def _fit_live_normalisation(by_session: dict[str, ActionSenseSession], train: Sequence[SubAction],
                            config: EmgPipelineConfig, geometry: ClipGeometry, arms: tuple[str, ...],
                            progress: bool) -> EmgNormalisation:
    """The live preset's min-max statistics: the RMS envelopes inside the training samples only."""
    rms = {key: session_tracks(s, config, None, arms=arms, allow_missing_arm=True, stage="rms") for key, s in
           track(by_session.items(), "RMS envelopes", enabled=progress)}
    keys = list(rms)
    train_windows = [[(s.start_s, s.start_s + geometry.sample_seconds) for s in train if s.session == key]
                     for key in keys]
    return fit_normalisation_on_windows([rms[k] for k in keys], train_windows, config)


def _subject_normalisation(by_session: dict[str, ActionSenseSession], train: Sequence[SubAction],
                           config: EmgPipelineConfig, geometry: ClipGeometry, arms: tuple[str, ...],
                           progress: bool) -> dict[str, EmgNormalisation]:
    """Each session's scaling: its subject's statistics, from that subject's training samples (a session without a
    subject is its own)."""
    groups: dict[str, list[str]] = {}
    for key, session in by_session.items():
        groups.setdefault(session.subject or key, []).append(key)
    scaling = {}
    for keys in groups.values():
        members = [s for s in train if s.session in keys]
        fitted = _fit_live_normalisation({k: by_session[k] for k in keys}, members, config, geometry, arms, False)
        scaling.update({key: fitted for key in keys})
    return scaling


def _split_arrays(part, by_session, classes, scaling, config, geometry, arms, progress, name) -> SplitData:
    index = {label: i for i, label in enumerate(classes)}
    spectrograms, raw = [], []
    order = []
    for key, session in track(by_session.items(), f"sEMG {name}", enabled=progress):
        members = [s for s in part if s.session == key]
        if not members:
            continue
        resampled = session_tracks(session, config, None, arms=arms, allow_missing_arm=True, stage="resampled")
        if config.offline:  # whole actions: each sub-action's action from the session's labels
            actions = {action.index: action for action in session.activities()}
            spectrograms.append(offline_subaction_spectrograms(resampled, actions, members, geometry, config))
        else:
            envelope = session_tracks(session, config, scaling[key], arms=arms, allow_missing_arm=True)
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
