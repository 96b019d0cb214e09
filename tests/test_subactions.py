"""Sub-action cutting and the two train/test splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from myosight.data.actionsense import Action, ActionSenseSession
from myosight.data.subactions import PAPER_SUBJECTS, cut_subactions, split_subactions
from myosight.errors import ConfigError


def actions(*durations: float, label: str = "Slice bread") -> list[Action]:
    out, start = [], 100.0
    for i, duration in enumerate(durations):
        out.append(Action(label, start, start + duration, i))
        start += duration + 3.0
    return out


def test_cutting_rules() -> None:
    subs = cut_subactions(actions(12.0, 3.0, 5.0), "sess", "S04")
    assert [(s.action_index, s.sub_index) for s in subs] == [(0, 0), (0, 1), (1, 0), (2, 0)]
    assert subs[1].start_s == pytest.approx(105.0) and subs[1].stop_s == pytest.approx(110.0)
    assert subs[2].stop_s - subs[2].start_s == pytest.approx(3.0)  # a short action kept whole
    assert len({s.uid for s in subs}) == len(subs)


def test_real_session_cutting(real_dir: Path) -> None:
    with ActionSenseSession(real_dir / "S02_2_myo.hdf5") as session:
        acts = session.activities()
        subs = cut_subactions(acts, "S02_2", session.subject)
    expected = sum(max(int(a.duration_s // 5), 1) for a in acts)
    assert len(subs) == expected == 120
    for s in subs:  # every sub-action lies inside its action
        action = acts[s.action_index]
        assert action.start_s <= s.start_s < s.stop_s <= action.stop_s + 1e-9


def many_subactions() -> list:
    subs = []
    for subject in ("S01", "S04", "S07", "S08"):
        for label in ("Peel a potato", "Slice bread", "Clean a plate with a towel"):
            subs += cut_subactions(actions(22.0, 17.0, 31.0, 12.0, label=label), f"{subject}_{label}", subject)
    return subs


def test_split_by_subaction_is_seeded_and_stratified() -> None:
    subs = many_subactions()
    first = split_subactions(subs, seed=3, subjects=PAPER_SUBJECTS)
    again = split_subactions(subs, seed=3, subjects=PAPER_SUBJECTS)
    other = split_subactions(subs, seed=4, subjects=PAPER_SUBJECTS)
    assert [s.uid for s in first.train] == [s.uid for s in again.train]
    assert [s.uid for s in first.train] != [s.uid for s in other.train]
    assert all(s.subject in PAPER_SUBJECTS for s in first.train + first.test)
    total = len(first.train) + len(first.test)
    assert total == sum(1 for s in subs if s.subject in PAPER_SUBJECTS)
    assert abs(len(first.train) / total - 0.7) < 0.02
    train, test = Counter(s.label for s in first.train), Counter(s.label for s in first.test)
    for label in train:
        assert abs(train[label] / (train[label] + test[label]) - 0.7) < 0.05


def test_split_by_action_has_no_leakage() -> None:
    subs = many_subactions()
    split = split_subactions(subs, seed=0, by="action")
    train_actions = {s.action_key for s in split.train}
    assert train_actions.isdisjoint({s.action_key for s in split.test})
    assert 0.55 < len(split.train) / len(subs) < 0.85
    # the paper's split does put neighbours of one action on both sides
    paper = split_subactions(subs, seed=0, by="subaction")
    assert {s.action_key for s in paper.train} & {s.action_key for s in paper.test}


def test_split_errors() -> None:
    with pytest.raises(ConfigError, match="no sub-actions of subjects"):
        split_subactions(many_subactions(), subjects=["S99"])
    with pytest.raises(ConfigError, match="train_fraction"):
        split_subactions(many_subactions(), train_fraction=1.5)
