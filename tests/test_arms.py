"""One or two armbands: the arm layout is the data's and the bundle's, every layer follows it, and a model never
runs on a source without its arms unless the user asks for zeros (core/arms.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from myosight.arms import arm_columns, arm_layout, emg_channels, parse_arms
from myosight.cli import main
from myosight.data.actionsense import ActionSenseSession
from myosight.data.synth import SynthConfig, write_sessions
from myosight.errors import ConfigError
from myosight.gui.controller import free_tcp_address
from myosight.models.bundle import load_bundle
from myosight.models.bundle_header import bundle_arms

CLASSES = ("Peel a cucumber", "Clean a plate with a towel", "Pour water from a pitcher into a glass")


def myosight(*args: str, timeout_s: float = 600.0) -> subprocess.CompletedProcess:
    """A `myosight` command in its own process, as a user types it (the exit code is the caller's to check)."""
    return subprocess.run([sys.executable, "-m", "myosight", *args], capture_output=True, text=True,
                          timeout=timeout_s, stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def one_arm_sessions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two synthetic people wearing one armband (the right), no video."""
    config = SynthConfig(subjects=("S04", "S07"), actions_per_class=2, seconds_per_action=(10.5, 12.0),
                         classes=CLASSES, seed=5, write_video=False, arms=("right",))
    return [s.hdf5_path for s in write_sessions(config, tmp_path_factory.mktemp("one-arm"), progress=False)]


def test_arm_layouts_are_canonical_and_refuse_nonsense() -> None:
    assert arm_layout(["right", "left"]) == ("left", "right")
    assert parse_arms("both") == ("left", "right") and parse_arms("Right") == ("right",)
    assert emg_channels(("right",)) == 8 and arm_columns(("left", "right"), "right") == slice(8, 16)
    for bad in (["up"], ["left", "left"], []):
        with pytest.raises(ConfigError):
            arm_layout(bad)


def test_a_one_arm_session_reads_back_with_its_one_arm(one_arm_sessions: list[Path]) -> None:
    with ActionSenseSession(one_arm_sessions[0]) as session:
        assert session.arms == ("right",)
        assert len(session.activities()) == 2 * len(CLASSES)


def test_the_dataset_takes_the_arms_the_sessions_have(one_arm_sessions: list[Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert main(["dataset", *map(str, one_arm_sessions), "--out", str(data), "--window", "2", "--clips", "2"]) == 0
    manifest = json.loads((data / "dataset.json").read_text())
    assert manifest["arms"] == ["right"] and len(manifest["emg_normalisation"]["minimum"]) == 8
    assert manifest["clip_geometry"]["sample_seconds"] == 2 and manifest["clip_geometry"]["clips_per_sample"] == 2
    import h5py

    with h5py.File(data / "train.h5", "r") as split:
        assert split["arrays/spectrograms"].shape[1:3] == (2, 8)  # 2 clips, 8 channels
    with pytest.raises(ConfigError, match="the dataset reads the left arm but this session has the right arm"):
        from myosight.training.dataset import build_emg_dataset

        build_emg_dataset(one_arm_sessions, tmp_path / "left", arms=["left"], progress=False)


def test_a_clip_too_short_for_the_pipeline_is_refused_before_any_work(one_arm_sessions: list[Path],
                                                                       tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the sEMG CNN needs 2"):
        from myosight.models.clips import ClipGeometry
        from myosight.training.dataset import build_emg_dataset

        build_emg_dataset(one_arm_sessions, tmp_path / "d", geometry=ClipGeometry(clips_per_sample=5,
                                                                                  sample_seconds=1.0), progress=False)
    assert not (tmp_path / "d").exists()


@pytest.fixture(scope="module")
def one_arm_bundle(one_arm_sessions: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("one-arm-model")
    assert main(["dataset", *map(str, one_arm_sessions), "--out", str(root / "data")]) == 0
    assert main(["features", "emg", str(root / "data"), "--epochs", "10", "--cross-fit", "1", "--quiet"]) == 0
    assert main(["train", "--model", "linear_emg", "--data", str(root / "data"), "--out", str(root / "run"),
                 "--quiet"]) == 0
    return root / "run" / "bundle.safetensors"


def test_the_bundle_records_its_arms_and_its_cnn_reads_eight_channels(one_arm_bundle: Path) -> None:
    assert bundle_arms(one_arm_bundle) == ("right",)
    bundle = load_bundle(one_arm_bundle)
    assert bundle.arms == ("right",) and bundle.emg_cnn is not None
    assert bundle.emg_cnn.input_shape[0] == 8 and len(bundle.normalisation.minimum) == 8


def test_a_bundle_whose_channels_do_not_match_its_arms_is_never_written(synthetic_emg_model: dict,
                                                                         tmp_path: Path) -> None:
    from myosight.models.bundle import save_bundle

    bundle = load_bundle(synthetic_emg_model["bundle"])  # two arms: 16 channels
    with pytest.raises(ConfigError, match="normalisation has 16 channels, but the right arm give"):
        save_bundle(tmp_path / "b.safetensors", head_name=bundle.head_name, head=bundle.head,
                    head_kwargs=bundle.metadata["head_kwargs"], classes=bundle.classes, geometry=bundle.geometry,
                    emg_config=bundle.emg_config, normalisation=bundle.normalisation, emg_cnn=bundle.emg_cnn,
                    emg_cnn_kwargs=bundle.metadata["emg_cnn_kwargs"], arms=("right",))
    assert not (tmp_path / "b.safetensors").exists()


def test_a_base_cnn_restricted_to_one_arm_is_the_base_with_that_arm_alone(synthetic_emg_model: dict) -> None:
    """The one-arm CNN a calibration starts from computes what the two-arm CNN computes when the other arm's
    standardised input is zero: its weights for the kept arm, nothing else."""
    from myosight.calibration.adapt import base_cnn_for_arms

    base = load_bundle(synthetic_emg_model["bundle"])
    assert base.emg_cnn is not None
    right, kwargs = base_cnn_for_arms(base, ("right",))
    assert kwargs["in_channels"] == 8 and right.input_shape[0] == 8
    rng = np.random.default_rng(0)
    x_right = torch.as_tensor(rng.normal(1.0, 0.5, (3, 8, *right.input_shape[1:])).astype(np.float32))
    x_both = torch.cat([base.emg_cnn.input_mean[:8].expand(3, 8, *right.input_shape[1:]), x_right], dim=1)
    with torch.no_grad():
        assert torch.allclose(right.features(x_right), base.emg_cnn.features(x_both), atol=1e-5)


def test_a_two_arm_model_is_refused_on_a_one_arm_source_before_anything_starts(synthetic_emg_model: dict,
                                                                              one_arm_sessions: list[Path]) -> None:
    bundle = str(synthetic_emg_model["bundle"])
    address = free_tcp_address()
    for source in (["replay", str(one_arm_sessions[0])], ["synthetic", "--arms", "right"]):
        result = myosight("run", "--model", bundle, "--source", *source, "--emg-only", "--headless", "--address",
                          address, "--duration", "5", timeout_s=60)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "reads both arms" in lines[0] and "the right arm" in lines[0]
        assert "--allow-missing-arm" in lines[0]
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_two_arm_model_runs_on_one_arm_with_zeros_only_when_asked(synthetic_emg_model: dict,
                                                                    one_arm_sessions: list[Path],
                                                                    tmp_path: Path) -> None:
    log = tmp_path / "zeros.jsonl"
    result = myosight("run", "--model", str(synthetic_emg_model["bundle"]), "--source", "replay",
                      str(one_arm_sessions[0]), "--emg-only", "--headless", "--allow-missing-arm", "--every-window",
                      "--speed", "8", "--jsonl", str(log), "--address", free_tcp_address())
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and all(r["arms"] == ["left", "right"] for r in records)
    assert all(r["emg_coverage"][0] == 0.0 and r["emg_coverage"][1] > 0.5 for r in records)


@pytest.mark.slow
def test_a_one_arm_person_from_calibration_to_replay(synthetic_emg_model: dict, tmp_path: Path) -> None:
    """A synthetic person wearing one armband is calibrated from a two-arm base model (its CNN restricted to
    that arm), and the one-arm model runs on a replay of the recording, every window decided."""
    out = tmp_path / "me"
    result = myosight("calibrate", "--source", "synthetic", "--arms", "right", "--subject", "S09", "--classes",
                      *CLASSES, "--reps", "2", "--seconds", "6", "--rest", "2", "--lead-in", "1", "--speed", "3",
                      "--base", str(synthetic_emg_model["bundle"]), "--emg-only", "--out", str(out), "--headless",
                      "--json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    bundle = load_bundle(out / "bundle.safetensors")
    assert bundle.arms == ("right",) and bundle.emg_cnn is not None and bundle.emg_cnn.input_shape[0] == 8
    recordings = sorted((out / "recordings").glob("*.hdf5"))
    with ActionSenseSession(recordings[0]) as session:
        assert session.arms == ("right",)  # the recorder records just the arm there is
    log = tmp_path / "replay.jsonl"
    replay = myosight("run", "--model", str(out / "bundle.safetensors"), "--source", "replay", str(recordings[0]),
                      "--emg-only", "--headless", "--every-window", "--hop", "0.5", "--speed", "4", "--jsonl",
                      str(log), "--address", free_tcp_address())
    assert replay.returncode == 0, replay.stderr[-2000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    ends = np.array([r["window_end"] for r in records])
    assert len(records) > 20 and np.allclose(np.diff(ends), 0.5)  # every window, in order
    assert all(r["arms"] == ["right"] and len(r["emg_coverage"]) == 1 for r in records)
    labelled = [r for r in records if r["true_label"]]
    accuracy = np.mean([r["label"] == r["true_label"] for r in labelled])
    assert accuracy > 1.5 / len(CLASSES), f"running accuracy {accuracy:.0%} is no better than chance"
