"""Stratified k-fold cross-validation of single-modality heads on a feature file (npz).

A feature npz holds `features` (N, clips, D) and `label` (N,) and, for grouping, `start_s` (N,). The
held-out estimate of one train/test split of ~100 samples swings by several points, so this repeats
k folds over several seeds and reports mean and standard deviation over all folds x seeds.

Two split units:

- ``subaction`` (the paper's split): folds stratified over sub-actions. Sub-actions cut from one action
  are neighbours in time (and may even overlap), so one action lands on both sides: an optimistic figure.
- ``action``: runs of adjacent sub-actions of one action (same label, each starting within `ACTION_GAP_S`
  of the previous one) are kept in one fold, so no test sample has a neighbour in training. When a class
  has fewer actions than the split needs, its test samples have no training sample of their class; the
  table reports that share (`unseen`) so a low figure is not mistaken for a weak model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from myosight.errors import ConfigError
from myosight.paths import not_a_file_reason
from myosight.training.trainer import TrainConfig

#: Two sub-actions of one label belong to one action when the later starts at most this long after the
#: earlier (5-s sub-actions cut back to back start 5 s apart; the margin absorbs timestamp jitter).
ACTION_GAP_S = 5.5
SPLIT_KINDS = ("subaction", "action")


@dataclass
class FeatureFile:
    """A validated feature npz: features (N, clips, D), integer labels into `classes`, start times."""

    path: Path
    features: np.ndarray
    labels: np.ndarray
    classes: list[str]
    start_s: np.ndarray | None
    uids: np.ndarray


def load_feature_npz(path: str | Path, *, need_start: bool = False) -> FeatureFile:
    """Read and check a feature npz; every problem is a ConfigError naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {not_a_file_reason(path)} (expected a feature .npz)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise ConfigError(f"{path}: not a readable npz without pickled objects ({error})") from error
    for key in ("features", "label") + (("start_s",) if need_start else ()):
        if key not in contents:
            raise ConfigError(f"{path}: missing key '{key}' (present: {', '.join(sorted(contents)) or 'none'})")
    features = contents["features"]
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3 or not np.issubdtype(features.dtype, np.number):
        raise ConfigError(f"{path}: 'features' must be numeric (N, clips, D) or (N, D), found {features.shape} "
                          f"{features.dtype}")
    if not np.isfinite(features).all():
        raise ConfigError(f"{path}: 'features' holds non-finite values")
    labels_text = contents["label"].astype(str).reshape(-1) if contents["label"].ndim <= 1 else None
    if labels_text is None or len(labels_text) != len(features):
        raise ConfigError(f"{path}: 'label' has shape {contents['label'].shape}, 'features' has "
                          f"{len(features)} samples: they must agree")
    start_s = None
    if "start_s" in contents:
        start_s = np.asarray(contents["start_s"], dtype=np.float64).reshape(-1)
        if len(start_s) != len(features):
            raise ConfigError(f"{path}: 'start_s' has {len(start_s)} values for {len(features)} samples")
    uids = contents["uid"].reshape(-1) if "uid" in contents and contents["uid"].size == len(features) \
        else np.arange(len(features))
    classes, labels = np.unique(labels_text, return_inverse=True)
    return FeatureFile(path, features.astype(np.float32), labels.astype(np.int64), classes.tolist(), start_s, uids)


def action_groups(labels: np.ndarray, start_s: np.ndarray | None, gap_s: float = ACTION_GAP_S) -> np.ndarray:
    """One group id per sample: runs of time-adjacent sub-actions with one label form one action."""
    if start_s is None:  # a feature file read without need_start
        raise ConfigError("grouping by action needs the samples' start times")
    labels, start_s = np.asarray(labels), np.asarray(start_s, dtype=np.float64)
    order = np.argsort(start_s, kind="stable")
    groups = np.empty(len(labels), dtype=np.int64)
    group = -1
    for position, index in enumerate(order):
        previous = order[position - 1] if position else None
        if previous is None or labels[index] != labels[previous] or start_s[index] - start_s[previous] > gap_s:
            group += 1
        groups[index] = group
    return groups


def stratified_group_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold index per sample: whole groups go to one fold, each class's samples spread evenly over folds.

    Per class (in label order), its groups are shuffled with `seed`, then placed largest first into the
    fold holding the fewest samples of that class (then the fewest samples overall, then at random).
    With one group per sample this is ordinary seeded stratified k-fold.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {folds}")
    unique_groups = np.unique(groups)
    if len(unique_groups) < folds:
        raise ConfigError(f"{folds} folds need at least {folds} groups; the data has {len(unique_groups)}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = np.zeros((len(classes), folds), dtype=np.int64)
    totals = np.zeros(folds, dtype=np.int64)
    assignment = np.full(len(labels), -1, dtype=np.int64)
    members = {g: np.flatnonzero(groups == g) for g in unique_groups}
    for c, label in enumerate(classes):
        shuffled = rng.permutation(np.unique(groups[labels == label]))
        class_groups = sorted(shuffled, key=lambda g: -len(members[g]))  # stable: shuffled order breaks ties
        for g in class_groups:
            keys = np.stack([per_class[c], totals, rng.random(folds)], axis=1)
            fold = int(np.lexsort(keys.T[::-1])[0])
            assignment[members[g]] = fold
            per_class[c, fold] += len(members[g])
            totals[fold] += len(members[g])
    return assignment


def _head_modality(name: str) -> str:
    from myosight.models.heads import HEADS, build_head

    if name not in HEADS:
        build_head(name)  # raises the ConfigError listing the known heads
    modalities = HEADS[name].modalities
    if len(modalities) != 1 or modalities[0] not in ("rgb", "emg"):
        raise ConfigError(f"head '{name}' reads {'+'.join(modalities)}; cross-validation on one feature file "
                          "needs a head over one feature modality (e.g. linear_rgb, lstm_rgb, linear_emg)")
    return modalities[0]


def _validation_groups(labels: np.ndarray, groups: np.ndarray, config: TrainConfig) -> np.ndarray | None:
    """`groups` for the early-stopping carve, or None when no whole action can be held out for validation.

    With one or two actions per class no group is carved, and the trainer cannot carve an empty group
    set; the fallback carves validation by sample, which only affects the choice of epoch, never the test.
    """
    from myosight.training.trainer import carve_validation

    _, first = np.unique(groups, return_index=True)
    return groups if len(carve_validation(labels[first], config.val_fraction, config.seed)[1]) else None


def crossval_npz(
    path: str | Path,
    heads: Sequence[str] = ("linear_rgb", "lstm_rgb"),
    folds: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    config: TrainConfig | None = None,
    *,
    group_by_action: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Cross-validate each head on the npz's features; one result row per head.

    Every head sees the same folds for a seed. The validation split that early stopping needs is carved
    from the training folds (by action when `group_by_action`). Row keys: head, top1, top1_std, top5,
    top5_std, runs, unseen (share of test samples whose class had no training sample), per_fold.
    """
    import torch

    from myosight.models.heads import build_head
    from myosight.training.trainer import classification_metrics, fit, predict_logits, to_tensors

    config = config or TrainConfig()
    data = load_feature_npz(path, need_start=group_by_action)
    modalities = {name: _head_modality(name) for name in heads}
    groups = action_groups(data.labels, data.start_s) if group_by_action else np.arange(len(data.labels))
    assignments = {seed: stratified_group_folds(data.labels, groups, folds, seed) for seed in seeds}

    rows = []
    for name in heads:
        per_fold = []
        for seed in seeds:
            for fold in range(folds):
                test = assignments[seed] == fold
                train = ~test
                torch.manual_seed(seed)
                head = build_head(name, num_classes=len(data.classes), feature_dim=data.features.shape[-1])
                fold_config = replace(config, seed=seed)
                fit_groups = _validation_groups(data.labels[train], groups[train], fold_config) \
                    if group_by_action else None
                fit(head, {modalities[name]: data.features[train]}, data.labels[train], fold_config,
                    progress=False, description=name, groups=fit_groups)
                logits = predict_logits(head, to_tensors({modalities[name]: data.features[test]})).numpy()
                metrics = classification_metrics(logits, data.labels[test], data.classes)
                unseen = ~np.isin(data.labels[test], data.labels[train])
                per_fold.append({"seed": seed, "fold": fold, "top1": metrics["top1"], "top5": metrics["top5"],
                                 "test_samples": int(test.sum()), "unseen": float(unseen.mean())})
                if log:
                    log(f"{name} seed {seed} fold {fold}: top-1 {metrics['top1']:.1%} on {int(test.sum())} samples")
        top1 = np.array([f["top1"] for f in per_fold])
        top5 = np.array([f["top5"] for f in per_fold])
        rows.append({"head": name, "top1": float(top1.mean()), "top1_std": float(top1.std()),
                     "top5": float(top5.mean()), "top5_std": float(top5.std()), "runs": len(per_fold),
                     "folds": folds, "seeds": len(seeds),
                     "unseen": float(np.mean([f["unseen"] for f in per_fold])), "per_fold": per_fold})
    return rows


def crossval_markdown(rows: Sequence[dict], *, title: str = "") -> str:
    """The result rows as a Markdown table (accuracies in %)."""
    lines = [f"{title}\n"] if title else []
    lines += ["| head | top-1 (%) mean ± std | top-5 (%) | folds x seeds | test samples of unseen classes (%) |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['head']} | {100 * row['top1']:.1f} ± {100 * row['top1_std']:.1f} | "
                     f"{100 * row['top5']:.1f} | {row['folds']} x {row['seeds']} | {100 * row['unseen']:.1f} |")
    return "\n".join(lines)


def describe_split(path: str | Path, group_by_action: bool) -> str:
    """One line saying what the folds are made of (samples, classes, actions)."""
    data = load_feature_npz(path, need_start=group_by_action)
    text = f"{Path(path).name}: {len(data.labels)} samples, {len(data.classes)} classes"
    if group_by_action:
        groups = action_groups(data.labels, data.start_s)
        text += f", {len(np.unique(groups))} actions; folds keep each action whole"
    else:
        text += "; folds stratified over sub-actions (the paper's split)"
    return text
