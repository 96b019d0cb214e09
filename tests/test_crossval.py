"""Cross-validation on feature files: folds, action grouping, npz validation, the CLI, the real S04 features."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from myosight.errors import ConfigError
from myosight.training.crossval import (
    action_groups,
    crossval_npz,
    load_feature_npz,
    stratified_group_folds,
)

REAL_NPZ = Path(__file__).resolve().parents[2] / "shared" / "actionsense" / "real" / "S04_subactions_i3d_rgb.npz"
CLASSES = ("Peel a potato", "Slice bread", "Set table", "Clean a pan with a towel")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _constructed(path: Path, per_action: int = 5, actions: int = 2, noise: float = 0.3) -> Path:
    """4 well-separated classes, each `actions` actions of `per_action` sub-actions 5 s apart (40 samples)."""
    rng = np.random.default_rng(0)
    directions = rng.standard_normal((len(CLASSES), 1024))
    labels, starts = [], []
    clock = 1000.0
    for a in range(actions):
        for c, name in enumerate(CLASSES):
            for s in range(per_action):
                labels.append((c, name))
                starts.append(clock + 5.0 * s + 0.05 * a)  # a little jitter in the 5-s spacing
            clock += 60.0
    order = rng.permutation(len(labels))  # the file's row order must not matter
    index = np.array([c for c, _ in labels])[order]
    features = directions[index][:, None, :] + noise * rng.standard_normal((len(index), 5, 1024))
    np.savez(path, features=features.astype(np.float32), label=np.array([n for _, n in labels])[order],
             start_s=np.array(starts)[order], uid=np.arange(len(index)))
    return path


def test_action_groups_join_adjacent_subactions_only() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 0])
    starts = np.array([0.0, 5.0, 10.4, 16.0, 21.0, 26.0, 31.0])
    groups = action_groups(labels, starts)
    # 5.0 and 5.4 s gaps join, 5.6 s splits, a label change splits, the same label after another splits
    assert groups.tolist() == [0, 0, 0, 1, 2, 2, 3]
    shuffled = np.random.default_rng(0).permutation(len(labels))
    regrouped = action_groups(labels[shuffled], starts[shuffled])
    # the same partition whatever the row order
    assert len(set(regrouped)) == len(set(groups))
    assert len({(g, h) for g, h in zip(regrouped, groups[shuffled], strict=True)}) == len(set(groups))


def test_grouped_folds_keep_actions_whole(tmp_path: Path) -> None:
    data = load_feature_npz(_constructed(tmp_path / "f.npz"), need_start=True)
    groups = action_groups(data.labels, data.start_s)
    assert len(np.unique(groups)) == 8 and np.bincount(groups).tolist() == [5] * 8
    for seed in (0, 1, 2):
        folds = stratified_group_folds(data.labels, groups, 2, seed)
        for g in np.unique(groups):
            assert len(np.unique(folds[groups == g])) == 1
        # stratified: every class has one whole action in each fold
        for c in range(len(CLASSES)):
            assert np.bincount(folds[data.labels == c], minlength=2).tolist() == [5, 5]
    # ungrouped folds do split actions (so the check above can fail)
    plain = stratified_group_folds(data.labels, np.arange(len(data.labels)), 5, 0)
    assert any(len(np.unique(plain[groups == g])) > 1 for g in np.unique(groups))
    assert np.bincount(plain).tolist() == [8] * 5
    assert not np.array_equal(plain, stratified_group_folds(data.labels, np.arange(len(data.labels)), 5, 1))


def test_crossval_separable_classes(tmp_path: Path) -> None:
    path = _constructed(tmp_path / "f.npz")
    rows = crossval_npz(path, heads=("linear_rgb",), folds=5, seeds=(0,))
    (row,) = rows
    assert row["head"] == "linear_rgb" and row["runs"] == 5 and len(row["per_fold"]) == 5
    assert row["top1"] > 0.9 and row["unseen"] == 0.0
    assert sum(f["test_samples"] for f in row["per_fold"]) == 40
    grouped = crossval_npz(path, heads=("linear_rgb",), folds=2, seeds=(0,), group_by_action=True)[0]
    assert grouped["top1"] > 0.9 and grouped["unseen"] == 0.0


def test_bad_npz_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    features = np.zeros((6, 5, 16), np.float32)
    np.savez(tmp_path / "no_label.npz", features=features)
    with pytest.raises(ConfigError, match=r"no_label\.npz.*'label'"):
        crossval_npz(tmp_path / "no_label.npz", heads=("linear_rgb",), folds=2, seeds=(0,))
    np.savez(tmp_path / "no_features.npz", label=np.array(["a"] * 6))
    with pytest.raises(ConfigError, match=r"no_features\.npz.*'features'"):
        load_feature_npz(tmp_path / "no_features.npz")
    np.savez(tmp_path / "short.npz", features=features, label=np.array(["a", "b"] * 2))
    with pytest.raises(ConfigError, match=r"short\.npz.*'label'.*6 samples"):
        load_feature_npz(tmp_path / "short.npz")
    np.savez(tmp_path / "no_start.npz", features=features, label=np.array(["a", "b"] * 3))
    with pytest.raises(ConfigError, match="'start_s'"):
        crossval_npz(tmp_path / "no_start.npz", heads=("linear_rgb",), folds=2, seeds=(0,), group_by_action=True)
    with pytest.raises(ConfigError, match="late_fusion"):
        crossval_npz(tmp_path / "no_start.npz", heads=("late_fusion",), folds=2, seeds=(0,))
    with pytest.raises(ConfigError, match=r"absent\.npz: no such file"):
        load_feature_npz(tmp_path / "absent.npz")


def test_crossval_command_prints_and_writes_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from myosight.training.commands import register_figures

    parser = argparse.ArgumentParser(prog="myosight")
    register_figures(parser.add_subparsers())
    out = tmp_path / "results.md"
    args = parser.parse_args(["crossval", str(_constructed(tmp_path / "f.npz")), "--heads", "linear_rgb",
                              "--folds", "2", "--seeds", "0", "--by", "action", "--out", str(out), "--quiet"])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "| linear_rgb |" in printed and "| 2 x 1 |" in printed and "8 actions" in printed
    assert out.read_text().strip() in printed


@pytest.mark.needs_shared
def test_crossval_on_real_s04_rgb_features() -> None:
    if not REAL_NPZ.is_file():
        pytest.skip(f"real S04 feature file not found at {REAL_NPZ} (../shared is absent)")
    data = load_feature_npz(REAL_NPZ, need_start=True)
    assert data.features.shape == (118, 5, 1024) and len(data.classes) == 7
    (row,) = crossval_npz(REAL_NPZ, heads=("linear_rgb",), folds=3, seeds=(0,))
    assert row["top1"] > 3 / 7  # chance is 1/7
