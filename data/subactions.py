"""Cutting labelled actions into the paper's 5-second sub-actions, and the train/test splits.

Every action is cut into consecutive sub-actions of `length_s` seconds from its start; the remainder
shorter than `length_s` is dropped, except that an action shorter than `length_s` is kept whole as one
sub-action. A sample window always spans `length_s`: after a short action's end it holds whatever the
recording holds there (zeros where, as in files that keep only the labelled actions, nothing was
recorded), exactly as a live window would.

Two splits, both deterministic for a given seed and stratified by class:
- `by="subaction"`: the paper's split, a random 70/30 split over sub-actions. Neighbouring
  sub-actions of one action can land on both sides, so test accuracy is optimistic.
- `by="action"`: whole actions go to one side (no leakage between neighbours); the fraction of
  sub-actions in train is close to, not exactly, `train_fraction`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from myosight.data.actionsense import Action
from myosight.errors import ConfigError

PAPER_SUBJECTS: tuple[str, ...] = ("S04", "S07", "S08")


@dataclass(frozen=True)
class SubAction:
    """One training/test sample: `length_s` seconds from `start_s` of one labelled action."""

    uid: str  # "<session>/<action index>/<sub index>", unique across a dataset
    session: str
    subject: str | None
    label: str
    action_index: int
    sub_index: int
    start_s: float
    stop_s: float  # end of the labelled content (<= start_s + length for a short action)

    @property
    def action_key(self) -> tuple[str, int]:
        return (self.session, self.action_index)


@dataclass(frozen=True)
class Split:
    train: list[SubAction]
    test: list[SubAction]


def cut_subactions(
    actions: Iterable[Action], session: str, subject: str | None, length_s: float = 5.0,
    step_s: float | None = None,
) -> list[SubAction]:
    """Cut each action into `length_s`-second sub-actions (see the module docstring for remainders), one every
    `step_s` seconds (default `length_s`: consecutive; shorter: overlapping, more samples of a short recording)."""
    if length_s <= 0:
        raise ConfigError(f"sub-action length must be positive, got {length_s}")
    step_s = length_s if step_s is None else step_s
    if not 0 < step_s <= length_s:
        raise ConfigError(f"the step between sub-actions must be above 0 and at most their length, got {step_s}")
    out: list[SubAction] = []
    for action in actions:
        count = int(np.floor((action.duration_s - length_s) / step_s + 1e-9)) + 1 \
            if action.duration_s >= length_s - 1e-9 else 0
        if count == 0 and action.duration_s > 0:
            starts = [action.start_s]
        else:
            starts = [action.start_s + i * step_s for i in range(count)]
        for sub_index, start in enumerate(starts):
            out.append(
                SubAction(
                    uid=f"{session}/{action.index}/{sub_index}",
                    session=session,
                    subject=subject,
                    label=action.label,
                    action_index=action.index,
                    sub_index=sub_index,
                    start_s=start,
                    stop_s=min(start + length_s, action.stop_s),
                )
            )
    return out


def split_subactions(
    subactions: Sequence[SubAction],
    *,
    train_fraction: float = 0.7,
    seed: int = 0,
    by: str = "subaction",
    subjects: Sequence[str] | None = None,
) -> Split:
    """Stratified, seeded train/test split (the paper's split uses subjects=PAPER_SUBJECTS)."""
    if not 0 < train_fraction < 1:
        raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction}")
    if by not in ("subaction", "action"):
        raise ConfigError(f"split 'by' must be 'subaction' or 'action', got {by!r}")
    pool = [s for s in subactions if subjects is None or s.subject in subjects]
    if not pool:
        raise ConfigError(f"no sub-actions of subjects {list(subjects or [])} to split")
    rng = np.random.default_rng(seed)
    train: list[SubAction] = []
    test: list[SubAction] = []
    for label in sorted({s.label for s in pool}):
        members = [s for s in pool if s.label == label]
        groups: dict[object, list[SubAction]] = defaultdict(list)
        for s in members:
            groups[s.uid if by == "subaction" else s.action_key].append(s)
        keys = sorted(groups, key=str)
        order = rng.permutation(len(keys))
        n_train = _train_count(len(keys), train_fraction)
        for rank, index in enumerate(order):
            (train if rank < n_train else test).extend(groups[keys[index]])
    return Split(sorted(train, key=_uid_order), sorted(test, key=_uid_order))


def _train_count(groups: int, fraction: float) -> int:
    """Groups that go to train: the rounded fraction, keeping one on each side when there are two or more."""
    if groups < 2:
        return groups
    return int(min(max(round(groups * fraction), 1), groups - 1))


def _uid_order(s: SubAction) -> tuple[str, int, int]:
    return (s.session, s.action_index, s.sub_index)
