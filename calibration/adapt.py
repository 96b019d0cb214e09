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
  one is kept (`fine_tune="auto"`).

The result is `DIR/bundle.safetensors` (with its provenance: base bundle hash, sessions, subject, date,
held-out accuracy), `DIR/report.json` (per-class held-out accuracy, both ways' scores, timings) and
`DIR/confusion.png`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from myosight.calibration.plan import WINDOW_SHIFTS_S
from myosight.data.actionsense import Action, ActionSenseSession
from myosight.data.subactions import SubAction, cut_subactions
from myosight.errors import ConfigError
from myosight.models.bundle import Bundle, load_bundle, save_bundle
from myosight.models.clips import ClipGeometry, clip_segments, resolve_geometry
from myosight.models.emg_cnn import EmgSpectrogramCNN
from myosight.models.emg_pipeline import EmgNormalisation
from myosight.models.heads import Head, build_head
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
CNN_TUNING = TrainConfig(lr=0.003, epochs=15, val_fraction=0.0, patience=15)
#: The RGB weights a Late-Fusion PAR head is scored with (besides the base model's own).
PAR_WEIGHTS = (0.6, 0.7, 0.8, 0.9)


@dataclass
class AdaptOptions:
    base: Path
    out_dir: Path
    classes: Sequence[str] | None = None  # the activities, in order; None: the recorded ones
    emg_only: bool = False
    input_size: int | None = None
    fine_tune: str = "auto"  # "auto": score both ways and keep the better; "yes"; "no"
    features: Sequence[Path] = ()  # live RGB features of the recording (calibration/features.py)
    subject: str | None = None
    seed: int = 0


@dataclass
class Samples:
    """The recording's samples: labels (indices into `classes`), repetition round, and model inputs."""

    classes: list[str]
    labels: np.ndarray
    rounds: np.ndarray
    start_s: np.ndarray
    subactions: list[SubAction]
    shifts: np.ndarray  # seconds each window is moved from its sub-action (0: the sub-action itself)
    spectrograms: np.ndarray
    normalisation: EmgNormalisation
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
    geometry = resolve_geometry(base.geometry, options.input_size)
    say("reading the recording")
    samples = read_samples(sessions, base, geometry, options.classes)
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
    head = _train_head(samples, _inputs(samples, cnn, everything, ("emg", "rgb")), everything, head_name,
                       chosen.kwargs, options.seed)
    return chosen, scores, cnn, head


# -- samples ---------------------------------------------------------------------------------------------


def read_samples(sessions: Sequence[Path], base: Bundle, geometry: ClipGeometry,
                 classes: Sequence[str] | None) -> Samples:
    """The training windows of every good repetition (`training_windows`), their round (the k-th repetition
    of an activity is round k) and their spectrograms, with the sEMG normalisation fitted on the person's
    own recording (the windows' spans)."""
    config = base.emg_config
    opened = [ActionSenseSession(path) for path in sessions]
    try:
        opened.sort(key=lambda session: session.activities()[0].start_s if session.activities() else 0.0)
        windows: list[tuple[ActionSenseSession, SubAction, int]] = []
        seen: dict[str, int] = {}  # repetitions of each activity so far
        round_of: dict[tuple[str, int], int] = {}  # (session, action index) -> its round
        for session in opened:
            for window, action in training_windows(session, geometry.sample_seconds, classes):
                key = (str(session.path), action.index)
                if key not in round_of:
                    round_of[key] = seen.get(action.label, 0)
                    seen[action.label] = round_of[key] + 1
                windows.append((session, window, round_of[key]))
        chosen = list(classes) if classes is not None else list(seen)
        missing = [name for name in chosen if name not in seen]
        if missing:
            raise ConfigError(f"the recording has no good repetition of {', '.join(missing)}")
        spans = [[(w.start_s, w.start_s + geometry.sample_seconds) for s, w, _ in windows if s is session]
                 for session in opened]
        rms = [session_tracks(s, config, None, allow_missing_arm=True, stage="rms") for s in opened]
        normalisation = fit_normalisation_on_windows(rms, spans, config)
        spectrograms = []
        for session in opened:
            members = [w for s, w, _ in windows if s is session]
            if members:
                tracks = session_tracks(session, config, normalisation, allow_missing_arm=True)
                spectrograms.append(subaction_spectrograms(tracks, members, geometry, config)[0])
    finally:
        for session in opened:
            session.close()
    return Samples(classes=chosen, labels=np.array([chosen.index(w.label) for _, w, _ in windows], np.int64),
                   rounds=np.array([r for _, _, r in windows], np.int64),
                   start_s=np.array([w.start_s for _, w, _ in windows]), subactions=[w for _, w, _ in windows],
                   shifts=np.array([float(w.uid.rsplit("/", 1)[1]) for _, w, _ in windows]),
                   spectrograms=np.concatenate(spectrograms).astype(np.float32), normalisation=normalisation)


def training_windows(session: ActionSenseSession, sample_seconds: float,
                     classes: Sequence[str] | None) -> list[tuple[SubAction, Action]]:
    """(window, action) of each action's sub-actions moved by `WINDOW_SHIFTS_S`, in time order, keeping a moved
    window only when it holds the recording's data, no other action, and at least half of its own."""
    emg = [session.emg(arm).time_s for arm in session.arms]
    data_from, data_to = max(t[0] for t in emg), min(t[-1] for t in emg)
    actions = session.activities()
    out = []
    for action in actions:
        if classes is not None and action.label not in classes:
            continue
        others = [a for a in actions if a is not action]
        for sub in cut_subactions([action], str(session.path), session.subject, sample_seconds):
            for shift in WINDOW_SHIFTS_S:
                start, stop = sub.start_s + shift, sub.start_s + shift + sample_seconds
                own = min(stop, action.stop_s) - max(start, action.start_s)
                clear = all(a.stop_s <= start or a.start_s >= stop for a in others)
                if shift == 0 or (start >= data_from and stop <= data_to and clear and own >= sample_seconds / 2):
                    out.append((replace(sub, uid=f"{sub.uid}/{shift:+g}", start_s=start), action))
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
    """One way of training the adapted model: the sEMG CNN frozen or fine-tuned, and the head's options."""

    way: str  # "frozen" or "fine-tuned"
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
    ways = {"auto": ("frozen", "fine-tuned"), "yes": ("fine-tuned",), "no": ("frozen",)}[fine_tune]
    grid = [head_kwargs]
    if head_name == "late_fusion_par_const":
        grid += [dict(head_kwargs, p=p) for p in PAR_WEIGHTS if p != head_kwargs.get("p")]
    return ways, grid


def _cnn(base: Bundle, samples: Samples, rows: np.ndarray, way: str, seed: int) -> EmgSpectrogramCNN:
    """The base sEMG CNN (frozen), or a copy fine-tuned, for the samples' classes, on the clips of the given
    rows' unmoved windows (the moved ones repeat the same clips)."""
    if base.emg_cnn is None:
        raise ConfigError("the base bundle holds no sEMG CNN (calibration adapts sEMG models)")
    if way == "frozen":
        return base.emg_cnn
    kwargs = dict(base.metadata["emg_cnn_kwargs"], num_classes=len(samples.classes))
    cnn = EmgSpectrogramCNN(**kwargs)
    state = {k: v for k, v in base.emg_cnn.state_dict().items() if not k.startswith("classifier.")}
    cnn.load_state_dict(state, strict=False)
    rows = rows[samples.shifts[rows] == 0]
    spectrograms = samples.spectrograms[rows]
    clips = spectrograms.reshape(-1, *spectrograms.shape[2:])
    labels = np.repeat(samples.labels[rows], spectrograms.shape[1])
    fit(ClipModel(cnn), {"spectrograms": clips}, labels, TrainConfig(**{**CNN_TUNING.to_dict(), "seed": seed}),
        progress=False, description="sEMG CNN (fine-tuning)")
    return cnn.eval()


def _inputs(samples: Samples, cnn: EmgSpectrogramCNN, rows: np.ndarray, modalities: Sequence[str]) -> dict:
    inputs = {}
    if "emg" in modalities:
        inputs["emg"] = extract_emg_features(cnn, samples.spectrograms[rows])
    if "rgb" in modalities and samples.rgb is not None:
        inputs["rgb"] = samples.rgb[rows]
    return inputs


def _train_head(samples: Samples, inputs: dict, rows: np.ndarray, name: str, kwargs: dict,
                seed: int) -> Head:
    """A head trained on `inputs` (the features of `rows`, in order)."""
    torch.manual_seed(seed)
    head = build_head(name, num_classes=len(samples.classes), **kwargs)
    fit(head, {m: inputs[m] for m in head.modalities}, samples.labels[rows],
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
            train_inputs = _inputs(samples, cnn, train, ("emg", "rgb"))
            test_inputs = to_tensors(_inputs(samples, cnn, test, ("emg", "rgb")))
            for candidate in (c for c in tried if c.way == way):
                head = _train_head(samples, train_inputs, train, head_name, candidate.kwargs, seed)
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
        "calibrated_from": str(Path(options.base).resolve()), "base_sha256": _sha256(Path(options.base)),
        "sessions": [str(Path(p).resolve()) for p in sessions], "subject": options.subject,
        "date": datetime.now().isoformat(timespec="seconds"), "samples": len(samples.labels),
        "repetitions": len(np.unique(samples.rounds)), "sEMG_cnn": chosen.way, "trained": chosen.name,
        "held_out_top1": None if held_out is None else held_out["top1"],
    }
    cnn_kwargs = dict(base.metadata["emg_cnn_kwargs"], num_classes=cnn.classifier.out_features)
    metrics = {"top1": provenance["held_out_top1"], "samples": provenance["samples"]}
    bundle = save_bundle(
        out / BUNDLE_NAME, head_name=head_name, head=head,
        head_kwargs={k: v for k, v in head.head_config.items() if k != "name"}, classes=samples.classes,
        geometry=geometry, emg_config=base.emg_config, normalisation=samples.normalisation, emg_cnn=cnn,
        emg_cnn_kwargs=cnn_kwargs,
        i3d_sha256=base.i3d_sha256 if "rgb" in head.modalities else None, metrics=metrics, provenance=provenance)
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
