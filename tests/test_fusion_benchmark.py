"""The paper's structure on a small synthetic benchmark: each modality has a blind spot, fusion covers both.

Four classes: two that share a muscle pattern (peel a cucumber / a potato: sEMG confuses them, vision does
not) and two of the same-look dish group (set table / load dishwasher: vision confuses them, sEMG does
not). A single modality can reach about 75 %; a fusion head that really combines both must do clearly
better than either. A broken fusion (one modality ignored, or logits mixed wrongly) stays at the level of
one modality and fails the margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from myosight.cli import main
from myosight.data.synth import SynthConfig, write_sessions
from myosight.models.i3d_weights import weights_path
from myosight.training.feature_store import read_manifest

PEEL = ("Peel a cucumber", "Peel a potato")
DISHES = ("Set table: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
          "Load dishwasher: 3 each large/small plates, bowls, mugs, glasses, sets of utensils")
CLASSES = (*PEEL, *DISHES)
MARGIN = 0.10

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not weights_path().is_file(), reason="I3D weights not cached: run `myosight weights fetch`"),
]


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three subjects, the four classes, sEMG and RGB (112 px) features."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fusion_benchmark")
    config = SynthConfig(subjects=("S04", "S07", "S08"), actions_per_class=3, seconds_per_action=(10.5, 14.0),
                         classes=CLASSES, seed=5)
    sessions = write_sessions(config, root / "sessions", progress=False)
    data = root / "data"
    assert main(["dataset", *[str(s.hdf5_path) for s in sessions], "--out", str(data)]) == 0
    assert main(["features", "emg", str(data), "--cross-fit", "3", "--quiet"]) == 0
    assert main(["features", "rgb", str(data), "--size", "112", "--no-compile", "--quiet"]) == 0
    return data


def _train(data: Path, head: str, out: Path) -> dict:
    assert main(["train", "--model", head, "--data", str(data), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "metrics.json").read_text())


def _confused_within(metrics: dict, classes: list[str], group: tuple[str, ...]) -> float:
    """Share of the group's test samples predicted as another class of the same group."""
    confusion = np.array(metrics["confusion"])
    index = [classes.index(c) for c in group]
    block = confusion[np.ix_(index, index)]
    return float((block.sum() - np.trace(block)) / max(1, confusion[index].sum()))


def test_each_modality_has_its_blind_spot_and_fusion_covers_both(benchmark: Path, tmp_path: Path) -> None:
    rgb = _train(benchmark, "linear_rgb", tmp_path / "rgb")
    emg = _train(benchmark, "linear_emg", tmp_path / "emg")
    classes = read_manifest(benchmark)["classes"]
    # each modality separates the group the other one is blind to
    assert _confused_within(rgb, classes, PEEL) <= 0.1
    assert _confused_within(emg, classes, DISHES) <= 0.1
    assert _confused_within(rgb, classes, DISHES) > 0.1  # and is itself blind to the other group
    best_single = max(rgb["top1"], emg["top1"])
    for head in ("late_fusion", "mid_fusion", "late_fusion_par_learnable"):
        fused = _train(benchmark, head, tmp_path / head)
        assert fused["top1"] >= best_single + MARGIN, (head, fused["top1"], rgb["top1"], emg["top1"])
