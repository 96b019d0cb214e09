"""A base model adapted to one person, from the sessions of their calibration.

The samples are the recording's labelled repetitions cut into sub-actions as every dataset is
(`cut_subactions`). What is refitted on the person:

- the sEMG normalisation: min/max of their own RMS envelopes (their skin, their armband placement);
- the RGB features: from the frozen I3D, computed live during the recording (calibration/features.py) or,
  for a recording made elsewhere, from its video;
- the head, trained from scratch for the chosen activities, which may include activities the base model
  never saw; it is the base bundle's head (sEMG-only calibrations use the linear sEMG head);
- the sEMG CNN, fine-tuned from the base weights, kept only when it measurably helps: both ways are scored
  by leaving one repetition out (train on the other rounds, test on the held-out round) and the better
  one is kept (`fine_tune="auto"`); `"scratch"` trains it on the person alone (the base then gives only the
  pipeline, the clip and the head).

The arms are the recording's: a person wearing one armband gets a one-arm model (the base's CNN reads that
arm's channels). The decision window may differ from the base's (`window`: a whole number of its clips, as
short actions such as hand gestures need); the clip, and so the CNN, stays the base's.

The result is `DIR/bundle.safetensors` (with its provenance: base bundle hash, sessions, subject, date,
held-out accuracy), `DIR/report.json` (per-class held-out accuracy, both ways' scores, timings) and
`DIR/confusion.png`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from myosight.arms import arm_columns, arm_layout, describe_arms, emg_channels
from myosight.calibration.plan import calibration_geometry, window_starts, window_step
from myosight.data.actionsense import Action, ActionSenseSession
from myosight.data.checks import checked_actions
from myosight.data.subactions import SubAction, cut_subactions
from myosight.errors import ConfigError
from myosight.models.bundle import Bundle, load_bundle, save_bundle
from myosight.models.clips import ClipGeometry, clip_segments
from myosight.models.emg_cnn import EmgSpectrogramCNN
from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
from myosight.models.heads import Head, build_head
from myosight.paths import sha256_file
from myosight.realtime.live import torch_threads
from myosight.training.emg_features import ClipModel, extract_emg_features
from myosight.training.emg_spectrograms import fit_normalisation_on_windows, session_tracks, subaction_spectrograms
from myosight.training.trainer import TrainConfig, classification_metrics, fit, predict_logits, to_tensors

log = logging.getLogger(__name__)

BUNDLE_NAME = "bundle.safetensors"
REPORT_NAME = "report.json"
CONFUSION_NAME = "confusion.png"
#: Sub-actions whose start lies this close to a live feature's start are the same sample (seconds).
MATCH_TOLERANCE_S = 2e-3
HEAD_TRAINING = TrainConfig(epochs=25, batch_size=64, val_fraction=0.0, patience=25)
CNN_TUNING = TrainConfig(lr=0.003, epochs=10, val_fraction=0.0, patience=10)
#: A CNN trained on the person alone starts from random weights: the dataset's optimiser, more epochs (each epoch
#: sees every clip `LEVEL_COPIES` + 1 times, see below).
CNN_SCRATCH = TrainConfig(lr=0.01, epochs=15, val_fraction=0.0, patience=15)
#: Between two sessions the armband's contact and the person's effort change each channel's level. Training sees
#: `LEVEL_COPIES` copies of every sample with its channels' levels changed (a gain g on a channel's envelope adds
#: 2 log g to its log-Mel power; log g drawn per channel, plus one drawn for all channels), so that the model does
#: not hang on levels the next session will not repeat.
LEVEL_COPIES = 2
CHANNEL_LEVEL_SD = 0.15
COMMON_LEVEL_SD = 0.2
#: The ways of training the sEMG CNN that `fine_tune` names (the first of each is scored first).
CNN_WAYS = {"auto": ("frozen", "fine-tuned"), "yes": ("fine-tuned",), "no": ("frozen",), "scratch": ("scratch",)}
#: The RGB weights a Late-Fusion PAR head is scored with (besides the base model's own).
PAR_WEIGHTS = (0.6, 0.7, 0.8, 0.9)


@dataclass
class AdaptOptions:
    base: Path
    out_dir: Path
    classes: Sequence[str] | None = None  # the activities, in order; None: the recorded ones
    emg_only: bool = False
    input_size: int | None = None
    fine_tune: str = "auto"  # "auto": score frozen and fine-tuned, keep the better; "yes"; "no"; "scratch"
    features: Sequence[Path] = ()  # live RGB features of the recording (calibration/features.py)
    subject: str | None = None
    seed: int = 0
    window: float | None = None  # the decision window in seconds (default: the base model's)
    arms: Sequence[str] | None = None  # the armbands to use (default: the recording's)


@dataclass
class Samples:
    """The recording's samples: labels (indices into `classes`), repetition round, and model inputs."""

    classes: list[str]
    labels: np.ndarray
    rounds: np.ndarray
    start_s: np.ndarray
    subactions: list[SubAction]
    own_clips: np.ndarray  # (N, clips) bool: the clip lies inside its window's repetition (it carries its label)
    clip_keys: np.ndarray  # (N, clips) int64: each clip's start on the sEMG grid (a clip shared by windows: one key)
    spectrograms: np.ndarray
    normalisation: EmgNormalisation
    arms: tuple[str, ...]
    rgb: np.ndarray | None = None
    rgb_live: int = 0  # samples whose RGB features were computed live


@dataclass
class AdaptResult:
    bundle: Path
    report: dict


def adapt(sessions: Sequence[Path], options: AdaptOptions,
          progress: Callable[[str], None] | None = None) -> AdaptResult:
    """The adapted bundle and its report (see the module docstring)."""
    say = progress or (lambda text: log.info("%s", text))
    started = time.perf_counter()
    base = load_bundle(options.base)
    fusion = not options.emg_only and "rgb" in base.modalities
    geometry = calibration_geometry(base.geometry, options.input_size, options.window)
    say("reading the recording")
    samples = read_samples(sessions, base, geometry, options.classes, arms=options.arms,
                           step_s=window_step(geometry, emg_only=not fusion))
    if fusion:
        say("matching the RGB features")
        samples.rgb = rgb_features(samples, sessions, geometry, options.features, base)
    head_name, head_kwargs = _head_for(base, fusion)
    with torch_threads(1):  # small models: threads only add synchronisation (and the source runs beside)
        chosen, scores, cnn, head = _train(samples, base, head_name, head_kwargs, options, say)
    result = _write(options, base, samples, sessions, cnn, head, head_name, geometry, scores, chosen,
                    time.perf_counter() - started)
    say(f"bundle written to {result.bundle}")
    return result


def _train(samples: Samples, base: Bundle, head_name: str, head_kwargs: dict, options: AdaptOptions,
           say: Callable[[str], None]) -> tuple[Candidate, dict, EmgSpectrogramCNN, torch.nn.Module]:
    """Score the ways of training, then train the best one on every repetition."""
    ways, grid = training_choices(head_name, head_kwargs, options.fine_tune)
    scores: dict[Candidate, dict] = {}
    chosen = Candidate(ways[0], tuple(sorted(head_kwargs.items())))
    if len(np.unique(samples.rounds)) >= 2:
        say(f"scoring {len(grid)} head setting(s) by leaving one repetition out ({ways[0]} sEMG CNN)")
        tried = [Candidate(ways[0], tuple(sorted(kwargs.items()))) for kwargs in grid]
        scores = held_out_scores(samples, base, head_name, tried, options.seed)
        chosen = max(tried, key=lambda c: (scores[c]["top1"], -tried.index(c)))
        if len(ways) > 1:
            say(f"scoring the {ways[1]} sEMG CNN by leaving one repetition out")
            other = Candidate(ways[1], chosen.options)
            scores |= held_out_scores(samples, base, head_name, [other], options.seed)
            chosen = other if scores[other]["top1"] > scores[chosen]["top1"] else chosen
    else:
        log.warning("one repetition per activity: no held-out accuracy (record two or more to score the model)")
    say(f"training the head ({chosen.name}) on every repetition")
    everything = np.arange(len(samples.labels))
    cnn = _cnn(base, samples, everything, chosen.way, options.seed)
    inputs, labels = _training_inputs(samples, cnn, everything, base.emg_config, options.seed)
    head = _train_head(samples, inputs, labels, head_name, chosen.kwargs, options.seed)
    return chosen, scores, cnn, head


# -- samples ---------------------------------------------------------------------------------------------


def recording_arms(sessions: Sequence[ActionSenseSession], base_arms: tuple[str, ...],
                   asked: Sequence[str] | None) -> tuple[str, ...]:
    """The arms a calibration uses: the ones asked for, else those every session recorded that the base reads
    too (or, where the base reads none of them, the recorded ones: the base's CNN then starts them)."""
    if asked is not None:
        layout = arm_layout(asked, what="--arms")
        for session in sessions:
            lacking = [arm for arm in layout if arm not in session.arms]
            if lacking:
                raise ConfigError(f"{session.path}: recorded {describe_arms(session.arms)}, not the {lacking[0]} arm")
        return layout
    recorded = set.intersection(*(set(session.arms) for session in sessions)) if sessions else set()
    if not recorded:
        raise ConfigError(f"{sessions[0].path if sessions else 'the recording'}: no armband that every session "
                          "recorded")
    shared = [arm for arm in base_arms if arm in recorded]
    layout = arm_layout(shared or recorded)
    unused = sorted(recorded - set(layout))
    if unused:
        log.warning("the base model reads %s only: the %s arm's recording is not used", describe_arms(base_arms),
                    unused[0])
    return layout


def read_samples(sessions: Sequence[Path], base: Bundle, geometry: ClipGeometry,
                 classes: Sequence[str] | None, *, arms: Sequence[str] | None = None,
                 step_s: float | None = None) -> Samples:
    """The training windows of every good repetition (`training_windows`), their round (the k-th repetition
    of an activity is round k) and their spectrograms, with the sEMG normalisation fitted on the person's
    own recording (the windows' spans)."""
    config = base.emg_config
    step_s = step_s or geometry.clip_seconds
    opened = [ActionSenseSession(path) for path in sessions]
    try:
        layout = recording_arms(opened, base.arms, arms)
        for session in opened:  # an unusable recording is refused before anything is fitted on it
            checked_actions(session, layout)
        opened.sort(key=lambda session: session.activities()[0].start_s if session.activities() else 0.0)
        windows: list[tuple[ActionSenseSession, SubAction, int, Action]] = []
        seen: dict[str, int] = {}  # repetitions of each activity so far
        round_of: dict[tuple[str, int], int] = {}  # (session, action index) -> its round
        for session in opened:
            for window, action in training_windows(session, geometry, classes, step_s):
                key = (str(session.path), action.index)
                if key not in round_of:
                    round_of[key] = seen.get(action.label, 0)
                    seen[action.label] = round_of[key] + 1
                windows.append((session, window, round_of[key], action))
        chosen = list(classes) if classes is not None else list(seen)
        missing = [name for name in chosen if name not in seen]
        if missing:
            raise ConfigError(f"the recording has no good repetition of {', '.join(missing)}")
        if len(chosen) < 2:
            raise ConfigError(f"the recording holds {len(chosen)} activit{'y' if len(chosen) == 1 else 'ies'} "
                              f"({', '.join(chosen) or 'none'}): a model tells at least two apart")
        spans = [[(w.start_s, w.start_s + geometry.sample_seconds) for s, w, _, _ in windows if s is session]
                 for session in opened]
        rms = [session_tracks(s, config, None, arms=layout, stage="rms") for s in opened]
        normalisation = fit_normalisation_on_windows(rms, spans, config)
        spectrograms = []
        for session in opened:
            members = [w for s, w, _, _ in windows if s is session]
            if members:
                tracks = session_tracks(session, config, normalisation, arms=layout)
                spectrograms.append(subaction_spectrograms(tracks, members, geometry, config)[0])
    finally:
        for session in opened:
            session.close()
    segments = np.stack([clip_segments(w.start_s, geometry) for _, w, _, _ in windows])  # (N, clips, 2)
    spans_of = np.array([[a.start_s, a.stop_s] for _, _, _, a in windows])
    tolerance = 1e-6
    own = (segments[:, :, 0] >= spans_of[:, None, 0] - tolerance) \
        & (segments[:, :, 1] <= spans_of[:, None, 1] + tolerance)
    return Samples(classes=chosen, labels=np.array([chosen.index(w.label) for _, w, _, _ in windows], np.int64),
                   rounds=np.array([r for _, _, r, _ in windows], np.int64),
                   start_s=np.array([w.start_s for _, w, _, _ in windows]), subactions=[w for _, w, _, _ in windows],
                   own_clips=own, clip_keys=np.round(segments[:, :, 0] * config.rate_hz).astype(np.int64),
                   spectrograms=np.concatenate(spectrograms).astype(np.float32), normalisation=normalisation,
                   arms=layout)


def training_windows(session: ActionSenseSession, geometry: ClipGeometry, classes: Sequence[str] | None,
                     step_s: float) -> list[tuple[SubAction, Action]]:
    """(window, action) of each repetition's candidate windows (`calibration.plan.window_starts`), in time order:
    its sub-actions as a dataset cuts them, and the other candidates that hold the recording's data, no other
    action, and at least half of their own."""
    sample = geometry.sample_seconds
    emg = [session.emg(arm).time_s for arm in session.arms]
    data_from, data_to = max(t[0] for t in emg), min(t[-1] for t in emg)
    actions = session.activities()
    out = []
    for action in actions:
        if classes is not None and action.label not in classes:
            continue
        others = [a for a in actions if a is not action]
        subactions = [sub.start_s for sub in cut_subactions([action], "", None, sample)]
        kept = []
        for start in window_starts(action.start_s, action.stop_s, geometry, step_s):
            stop = start + sample
            own = min(stop, action.stop_s) - max(start, action.start_s)
            clear = all(a.stop_s <= start + 1e-9 or a.start_s >= stop - 1e-9 for a in others)
            if any(abs(start - sub) < 1e-6 for sub in subactions) \
                    or (start >= data_from and stop <= data_to and clear and own >= sample / 2):
                kept.append(start)
        uid = f"{session.path}/{action.index}"
        out += [(SubAction(uid=f"{uid}/{start - action.start_s:+.3f}", session=str(session.path),
                           subject=session.subject, label=action.label, action_index=action.index,
                           sub_index=index, start_s=start, stop_s=start + sample), action)
                for index, start in enumerate(kept)]
    return out


def rgb_features(samples: Samples, sessions: Sequence[Path], geometry: ClipGeometry, live: Sequence[Path],
                 base: Bundle) -> np.ndarray:
    """(N, clips, 1024): each window's clips from the live features (found by their start time), and the
    windows with a clip missing there from the recorded video."""
    rgb = np.zeros((len(samples.labels), geometry.clips_per_sample, 1024), np.float32)
    found = np.zeros(len(samples.labels), bool)
    starts, features = _live_clips(live)
    offsets = {str(Path(path).resolve()): _lsl_to_epoch(path) for path in sessions}
    for index, window in enumerate(samples.subactions):
        epoch_starts = starts + offsets[str(Path(window.session).resolve())]
        rows = [np.flatnonzero(np.abs(epoch_starts - segment[0]) < MATCH_TOLERANCE_S)
                for segment in clip_segments(window.start_s, geometry)]
        if all(len(row) for row in rows):
            rgb[index], found[index] = features[[row[-1] for row in rows]], True
    if not found.all():
        log.info("%d of %d windows take their RGB features from the recorded video", (~found).sum(), len(found))
        rgb[~found] = _features_from_video([s for s, f in zip(samples.subactions, found, strict=True) if not f],
                                           geometry, base)
    samples.rgb_live = int(found.sum())
    return rgb


def _live_clips(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Every stored live clip feature: (clip starts (M,) in LSL time, features (M, 1024))."""
    starts, features = [np.zeros(0)], [np.zeros((0, 1024), np.float32)]
    for path in paths:
        if Path(path).is_file():
            with np.load(path) as stored:
                starts.append(stored["clip_starts"])
                features.append(stored["features"])
    return np.concatenate(starts), np.concatenate(features)


def _lsl_to_epoch(path: Path) -> float:
    """The recorder's LSL-to-epoch offset of a session (0 for a session not recorded by myosight)."""
    import h5py

    with h5py.File(path, "r") as handle:
        value = handle.attrs.get("LSL clock to epoch offset (s)")
    return float(value.decode() if isinstance(value, bytes) else value) if value is not None else 0.0


def _features_from_video(subactions: Sequence[SubAction], geometry: ClipGeometry, base: Bundle) -> np.ndarray:
    """I3D features of sub-actions from their session's world video (the offline extractor's frame path)."""
    from myosight.models.i3d import optimize_for_inference
    from myosight.models.i3d_weights import load_i3d, verify_weights
    from myosight.training.rgb_features import ClipReader, open_video

    manifest = verify_weights()
    if base.i3d_sha256 and manifest.get("weights_sha256") != base.i3d_sha256:
        raise ConfigError("the base bundle was trained on other I3D weights than the cached ones")
    model = optimize_for_inference(load_i3d(), use_compile=False)
    by_session: dict[str, list[int]] = {}
    for index, sub in enumerate(subactions):
        by_session.setdefault(sub.session, []).append(index)
    features = np.zeros((len(subactions), geometry.clips_per_sample, 1024), np.float32)
    for session, indices in by_session.items():
        with ActionSenseSession(session) as handle:
            video = handle.video_path
        if video is None:
            raise ConfigError(f"{session}: no world video beside the session, and no live RGB features")
        reader = ClipReader(open_video(str(video), session, {"kind": "actionsense"}), geometry)
        try:
            for index in indices:
                with torch.inference_mode():
                    features[index] = model.extract_features(reader.clips(subactions[index].start_s, None)).numpy()
        finally:
            reader.close()
    return features


# -- training --------------------------------------------------------------------------------------------


def _head_for(base: Bundle, fusion: bool) -> tuple[str, dict]:
    """The base bundle's head (its options, not its classes), or the linear sEMG head without RGB."""
    if fusion or base.modalities == ("emg",):
        kwargs = {k: v for k, v in base.metadata["head_kwargs"].items() if k not in ("num_classes", "feature_dim")}
        return base.head_name, kwargs
    return "linear_emg", {}


@dataclass(frozen=True)
class Candidate:
    """One way of training the adapted model: the sEMG CNN frozen, fine-tuned or trained from scratch, and the
    head's options."""

    way: str  # "frozen", "fine-tuned" or "scratch"
    options: tuple[tuple[str, object], ...] = ()

    @property
    def kwargs(self) -> dict:
        return dict(self.options)

    @property
    def name(self) -> str:
        extra = ", ".join(f"{key} = {value}" for key, value in self.options if key == "p")
        return f"{self.way} sEMG CNN" + (f", {extra}" if extra else "")


def training_choices(head_name: str, head_kwargs: dict, fine_tune: str) -> tuple[tuple[str, ...], list[dict]]:
    """The sEMG CNN ways to score (the first is the default) and the head settings to score, the base model's
    own first: for a Late-Fusion PAR head, the RGB weights of `PAR_WEIGHTS` too (how much to trust each
    modality is what differs most between people: their sEMG differs from the training subjects' more than
    their kitchen does). The settings are scored with the first way; the other way with the best setting."""
    if fine_tune not in CNN_WAYS:
        raise ConfigError(f"fine_tune {fine_tune!r}: choose from {', '.join(CNN_WAYS)}")
    ways = CNN_WAYS[fine_tune]
    grid = [head_kwargs]
    if head_name == "late_fusion_par_const":
        grid += [dict(head_kwargs, p=p) for p in PAR_WEIGHTS if p != head_kwargs.get("p")]
    return ways, grid


def base_cnn_for_arms(base: Bundle, arms: tuple[str, ...]) -> tuple[EmgSpectrogramCNN, dict]:
    """The base's sEMG CNN reading `arms` (and its constructor arguments): the base itself where the arms are its
    own; else a copy whose first convolution and input statistics keep, for each arm, the base's planes of that
    arm (or, for an arm the base never read, of its first arm: the same armband's channels in the same order)."""
    if base.emg_cnn is None:
        raise ConfigError("the base bundle holds no sEMG CNN (calibration adapts sEMG models)")
    kwargs = dict(base.metadata["emg_cnn_kwargs"])
    if arms == base.arms:
        return base.emg_cnn, kwargs
    columns = np.concatenate([np.arange(emg_channels(base.arms))[arm_columns(base.arms, arm if arm in base.arms
                                                                                else base.arms[0])]
                              for arm in arms])
    state = {key: value.clone() for key, value in base.emg_cnn.state_dict().items()}
    first = "conv.0.weight"
    state[first] = state[first][:, columns]
    state["input_mean"], state["input_std"] = state["input_mean"][columns], state["input_std"][columns]
    kwargs["in_channels"] = emg_channels(arms)
    cnn = EmgSpectrogramCNN(**kwargs)
    cnn.load_state_dict(state)
    return cnn.eval(), kwargs


def _cnn(base: Bundle, samples: Samples, rows: np.ndarray, way: str, seed: int) -> EmgSpectrogramCNN:
    """The base sEMG CNN (frozen), a copy fine-tuned, or one trained on the person alone ("scratch"), for the
    samples' classes and arms, on the distinct clips of the given rows that lie inside their repetition."""
    start, kwargs = base_cnn_for_arms(base, samples.arms)
    if way == "frozen":
        return start
    kwargs = dict(kwargs, num_classes=len(samples.classes))
    torch.manual_seed(seed)
    cnn = EmgSpectrogramCNN(**kwargs)
    clips, labels = level_copies(*_own_clips(samples, rows), base.emg_config, seed)
    if way == "scratch":
        cnn.set_input_statistics(torch.as_tensor(clips))
        config = CNN_SCRATCH
    else:
        state = {k: v for k, v in start.state_dict().items() if not k.startswith("classifier.")}
        cnn.load_state_dict(state, strict=False)
        config = CNN_TUNING
    fit(ClipModel(cnn), {"spectrograms": clips}, labels, TrainConfig(**{**config.to_dict(), "seed": seed}),
        progress=False, description=f"sEMG CNN ({way})")
    return cnn.eval()


def _own_clips(samples: Samples, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clips, labels): each distinct clip of the rows' windows that lies inside its window's repetition, once."""
    window, clip = np.nonzero(samples.own_clips[rows])
    _, first = np.unique(samples.clip_keys[rows][window, clip], return_index=True)
    window, clip = window[first], clip[first]
    return samples.spectrograms[rows][window, clip], samples.labels[rows][window]


def level_copies(spectrograms: np.ndarray, labels: np.ndarray, config: EmgPipelineConfig,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The samples (N, ..., channels, mels, frames) and `LEVEL_COPIES` copies of them with their channels' levels
    changed (see `LEVEL_COPIES`), and the labels repeated. A pipeline without a floor to its log (log1p, bundles
    made before) gets none: a gain is no offset there."""
    if config.log_floor is None or not LEVEL_COPIES:
        return spectrograms, labels
    rng = np.random.default_rng(seed)
    channel_axis = spectrograms.ndim - 3
    shape = [len(spectrograms)] + [1] * (spectrograms.ndim - 1)
    copies = [spectrograms]
    for _ in range(LEVEL_COPIES):
        per_channel = list(shape)
        per_channel[channel_axis] = spectrograms.shape[channel_axis]
        log_gain = rng.normal(0.0, CHANNEL_LEVEL_SD, per_channel) + rng.normal(0.0, COMMON_LEVEL_SD, shape)
        copies.append((spectrograms + 2.0 * log_gain).astype(spectrograms.dtype))
    return np.concatenate(copies), np.tile(labels, LEVEL_COPIES + 1)


def _inputs(samples: Samples, cnn: EmgSpectrogramCNN, rows: np.ndarray, modalities: Sequence[str]) -> dict:
    inputs = {}
    if "emg" in modalities:
        inputs["emg"] = extract_emg_features(cnn, samples.spectrograms[rows])
    if "rgb" in modalities and samples.rgb is not None:
        inputs["rgb"] = samples.rgb[rows]
    return inputs


def _training_inputs(samples: Samples, cnn: EmgSpectrogramCNN, rows: np.ndarray, config: EmgPipelineConfig,
                     seed: int) -> tuple[dict, np.ndarray]:
    """The features a head trains on, with the level-changed copies of the rows' sEMG (their RGB repeated: the
    video does not change with the armband), and their labels."""
    spectrograms, labels = level_copies(samples.spectrograms[rows], samples.labels[rows], config, seed)
    copies = len(labels) // len(rows)
    inputs = {"emg": extract_emg_features(cnn, spectrograms)}
    if samples.rgb is not None:
        inputs["rgb"] = np.tile(samples.rgb[rows], (copies, 1, 1))
    return inputs, labels


def _train_head(samples: Samples, inputs: dict, labels: np.ndarray, name: str, kwargs: dict,
                seed: int) -> Head:
    """A head trained on `inputs` (features, in the order of `labels`)."""
    torch.manual_seed(seed)
    head = build_head(name, num_classes=len(samples.classes), **kwargs)
    fit(head, {m: inputs[m] for m in head.modalities}, labels,
        TrainConfig(**{**HEAD_TRAINING.to_dict(), "seed": seed}), progress=False, description=name)
    return head.eval()


def held_out_scores(samples: Samples, base: Bundle, head_name: str, tried: Sequence[Candidate],
                    seed: int) -> dict[Candidate, dict]:
    """Leave one repetition round out: train each candidate on the other rounds and predict the held-out one;
    the metrics over all rounds. The sEMG features of a fold are computed once per CNN way."""
    logits = {c: np.zeros((len(samples.labels), len(samples.classes)), np.float32) for c in tried}
    for held_out in np.unique(samples.rounds):
        train, test = np.flatnonzero(samples.rounds != held_out), np.flatnonzero(samples.rounds == held_out)
        for way in dict.fromkeys(c.way for c in tried):
            cnn = _cnn(base, samples, train, way, seed)
            train_inputs, train_labels = _training_inputs(samples, cnn, train, base.emg_config, seed)
            test_inputs = to_tensors(_inputs(samples, cnn, test, ("emg", "rgb")))
            for candidate in (c for c in tried if c.way == way):
                head = _train_head(samples, train_inputs, train_labels, head_name, candidate.kwargs, seed)
                logits[candidate][test] = predict_logits(head, {m: test_inputs[m] for m in head.modalities}).numpy()
    return {c: classification_metrics(logits[c], samples.labels, samples.classes) for c in tried}


# -- output ----------------------------------------------------------------------------------------------


def _write(options: AdaptOptions, base: Bundle, samples: Samples, sessions: Sequence[Path], cnn, head, head_name: str,
           geometry: ClipGeometry, scores: dict, chosen: Candidate, seconds: float) -> AdaptResult:
    from myosight.training.figures import plot_confusion

    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    held_out = scores.get(chosen)
    provenance = {
        "calibrated_from": str(Path(options.base).resolve()), "base_sha256": sha256_file(Path(options.base)),
        "sessions": [str(Path(p).resolve()) for p in sessions], "subject": options.subject,
        "date": datetime.now().isoformat(timespec="seconds"), "samples": len(samples.labels),
        "repetitions": len(np.unique(samples.rounds)), "sEMG_cnn": chosen.way, "trained": chosen.name,
        "held_out_top1": None if held_out is None else held_out["top1"], "arms": list(samples.arms),
        "window_s": geometry.sample_seconds, "emg_only": "rgb" not in head.modalities,
        "fine_tune": options.fine_tune, "input_size": geometry.input_size,
    }
    cnn_kwargs = dict(base.metadata["emg_cnn_kwargs"], num_classes=cnn.classifier.out_features,
                      in_channels=emg_channels(samples.arms))
    metrics = {"top1": provenance["held_out_top1"], "samples": provenance["samples"]}
    keep_previous(out / BUNDLE_NAME)
    bundle = save_bundle(
        out / BUNDLE_NAME, head_name=head_name, head=head,
        head_kwargs={k: v for k, v in head.head_config.items() if k != "name"}, classes=samples.classes,
        geometry=geometry, emg_config=base.emg_config, normalisation=samples.normalisation, emg_cnn=cnn,
        emg_cnn_kwargs=cnn_kwargs,
        i3d_sha256=base.i3d_sha256 if "rgb" in head.modalities else None, metrics=metrics, provenance=provenance,
        arms=samples.arms)
    report = {**provenance, "classes": samples.classes, "head": head_name, "adapt_seconds": seconds,
              "scores": {c.name: s["top1"] for c, s in scores.items()},
              "per_class": held_out.get("per_class") if held_out is not None else None,
              "windows_with_live_rgb": samples.rgb_live}
    if held_out is not None:
        report["confusion"] = held_out["confusion"]
        plot_confusion(np.asarray(held_out["confusion"]), samples.classes, out / CONFUSION_NAME,
                       f"held-out repetitions: top-1 {held_out['top1']:.1%}")
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return AdaptResult(bundle, report)


def keep_previous(bundle: Path) -> Path | None:
    """Copy an existing bundle into `history/` beside it (named by its date), so that a calibration run again into
    its folder, or topped up, never loses the model the person used before."""
    if not bundle.is_file():
        return None
    from myosight.models.bundle_header import read_bundle_metadata

    try:
        stamp = str(read_bundle_metadata(bundle).get("provenance", {}).get("date", ""))
    except ConfigError:
        stamp = ""
    stamp = stamp.replace(":", "-") or datetime.fromtimestamp(bundle.stat().st_mtime).strftime("%Y-%m-%dT%H-%M-%S")
    history = bundle.parent / "history"
    history.mkdir(exist_ok=True)
    kept = history / f"{bundle.stem}-{stamp}{bundle.suffix}"
    shutil.copy2(bundle, kept)  # a copy: the new bundle replaces the old one only once it is written whole
    return kept

