"""Offline training end to end on small synthetic sessions: dataset, sEMG CNN features, heads, bundles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from myosight.cli import main
from myosight.data.synth import SynthConfig, write_sessions
from myosight.errors import ConfigError
from myosight.models.bundle import load_bundle
from myosight.models.bundle_header import read_bundle_metadata
from myosight.training.feature_store import array_names, read_manifest, read_split

CLASSES = ("Peel a cucumber", "Peel a potato", "Clean a plate with a towel", "Pour water from a pitcher into a glass",
           "Open/close a jar of almond butter")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic subjects, five classes, sEMG spectrograms and CNN features."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("synthetic")
    config = SynthConfig(subjects=("S04", "S07", "S08"), actions_per_class=3, seconds_per_action=(10.5, 14.0),
                         classes=CLASSES, write_video=False, seed=1)
    sessions = write_sessions(config, root / "sessions", progress=False)
    data = root / "data"
    assert main(["dataset", *[str(s.hdf5_path) for s in sessions], "--out", str(data)]) == 0
    assert main(["features", "emg", str(data), "--epochs", "25", "--cross-fit", "2", "--quiet"]) == 0
    return data


def test_dataset_layout(dataset: Path) -> None:
    manifest = read_manifest(dataset)
    assert sorted(manifest["classes"]) == sorted(CLASSES)
    assert manifest["split"]["train"] + manifest["split"]["test"] == 3 * 5 * 3 * 2
    assert abs(manifest["split"]["train"] / 90 - 0.7) < 0.05
    train = read_split(dataset / "train.h5")
    assert train.arrays["spectrograms"].shape[1:] == (5, 16, 10, 17)
    assert train.arrays["emg_raw"].shape[1:] == (5, 160, 16)
    assert train.arrays["emg"].shape[1:] == (5, 1024)
    assert set(array_names(dataset / "test.h5")) == {"spectrograms", "emg_raw", "emg"}
    lo, hi = np.array(manifest["emg_normalisation"]["minimum"]), np.array(manifest["emg_normalisation"]["maximum"])
    assert np.all(hi > lo)


def test_train_evaluate_and_bundle(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["train", "--model", "linear_emg", "--data", str(dataset), "--out", str(run), "--quiet",
                 "--epochs", "30"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    chance = 1 / len(CLASSES)
    assert metrics["top1"] > 2 * chance
    # sEMG alone cannot tell the peel classes apart: most of their errors are with each other
    confusion = np.array(metrics["confusion"])
    classes = read_manifest(dataset)["classes"]
    peel = [classes.index("Peel a cucumber"), classes.index("Peel a potato")]
    peel_rows = confusion[peel]
    assert peel_rows[:, peel].sum() >= 0.8 * peel_rows.sum()
    assert (run / "confusion.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["evaluate", "--bundle", str(run / "bundle.safetensors"), "--data", str(dataset), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["top1"] == pytest.approx(metrics["top1"])
    bundle = load_bundle(run / "bundle.safetensors")
    assert bundle.emg_cnn is not None and bundle.classes == classes
    assert bundle.geometry.clips_per_sample == 5 and bundle.emg_config.rate_hz == 160.0


def test_bundle_refuses_tampering(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--model", "linear_emg", "--data", str(dataset), "--out", str(run), "--quiet",
                 "--epochs", "2"]) == 0
    path = run / "bundle.safetensors"
    meta = read_bundle_metadata(path)
    tensors = load_file(str(path))

    def rewrite(name: str, new_meta: dict, new_tensors: dict) -> Path:
        target = tmp_path / name
        save_file(new_tensors, str(target), metadata={"myosight": json.dumps(new_meta)})
        return target

    with pytest.raises(ConfigError, match="bundle format"):
        load_bundle(rewrite("version.safetensors", {**meta, "format": "myosight-bundle/99"}, tensors))
    with pytest.raises(ConfigError, match="label list has 4"):
        load_bundle(rewrite("classes.safetensors", {**meta, "classes": meta["classes"][:4]}, tensors))
    without_cnn = {k: v for k, v in tensors.items() if not k.startswith("emg_cnn.")}
    with pytest.raises(ConfigError, match="emg_cnn weights do not match"):
        load_bundle(rewrite("nocnn.safetensors", meta, without_cnn))
    resized = dict(tensors)
    key = next(k for k in tensors if k.startswith("head.") and k.endswith("weight"))
    resized[key] = torch.zeros(3, 3)
    with pytest.raises(ConfigError, match="has shape"):
        load_bundle(rewrite("shape.safetensors", meta, resized))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ConfigError, match="not a myosight model bundle"):
        load_bundle(garbage)
    with pytest.raises(ConfigError, match="trained on I3D weights"):
        load_bundle(rewrite("hash.safetensors", {**meta, "i3d_sha256": "a" * 64}, tensors), i3d_sha256="b" * 64)


def test_report_skips_rows_without_inputs(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    assert main(["report", "--data", str(dataset), "--out", str(out), "--rows", "linear_emg", "rms_mav_emg",
                 "linear_rgb", "--epochs", "10", "--quiet"]) == 0
    text = (out / "results.md").read_text()
    assert "| Linear sEMG |" in text and "needs rgb" in text
    assert (out / "confusion_linear_emg.png").exists()


def test_training_features_are_out_of_fold(dataset: Path) -> None:
    """Train features come from CNNs that never saw those samples; test features from the final CNN."""
    from myosight.training.emg_features import extract_emg_features, load_emg_cnn

    assert json.loads((dataset / "emg_cnn.json").read_text())["train_features_cross_fit"] == 2
    cnn = load_emg_cnn(dataset)
    train = read_split(dataset / "train.h5", ("spectrograms", "emg"))
    test = read_split(dataset / "test.h5", ("spectrograms", "emg"))
    np.testing.assert_allclose(extract_emg_features(cnn, test.arrays["spectrograms"]), test.arrays["emg"], atol=1e-5)
    assert not np.allclose(extract_emg_features(cnn, train.arrays["spectrograms"]), train.arrays["emg"], atol=1e-3)
