"""Non-finite weights and probabilities: refused when a bundle is saved or loaded, stopped in training, and
never published by the worker (counted in its health report instead)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from myosight.cli import main
from myosight.errors import ConfigError
from myosight.models.bundle import load_bundle, save_bundle
from myosight.models.clips import ClipGeometry
from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
from myosight.models.heads import build_head
from myosight.realtime.live import Prediction
from myosight.realtime.messages import HealthMessage, decode
from myosight.realtime.worker import HopLadder, Worker
from myosight.training.feature_store import SplitData, write_manifest, write_split
from myosight.training.run import train_head
from myosight.training.trainer import TrainConfig

CLASSES = ["Peel a cucumber", "Slice bread"]


def _bundle(path: Path) -> Path:
    head = build_head("linear_rgb", num_classes=len(CLASSES), feature_dim=1024)
    return save_bundle(path, head_name="linear_rgb", head=head, head_kwargs={"feature_dim": 1024},
                       classes=CLASSES, geometry=ClipGeometry(), emg_config=EmgPipelineConfig(),
                       normalisation=EmgNormalisation.full_scale())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_bundle_with_nonfinite_weights_is_refused(tmp_path: Path, value: float) -> None:
    path = _bundle(tmp_path / "bundle.safetensors")
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name].view(-1)[0] = value
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ConfigError, match="NaN or infinite"):
        load_bundle(path)


def test_save_bundle_refuses_nonfinite_weights(tmp_path: Path) -> None:
    head = build_head("linear_rgb", num_classes=len(CLASSES), feature_dim=1024)
    with torch.no_grad():
        next(iter(head.parameters())).fill_(float("nan"))
    with pytest.raises(ConfigError, match="NaN or infinite"):
        save_bundle(tmp_path / "b.safetensors", head_name="linear_rgb", head=head, head_kwargs={"feature_dim": 1024},
                    classes=CLASSES, geometry=ClipGeometry(), emg_config=EmgPipelineConfig(),
                    normalisation=EmgNormalisation.full_scale())
    assert not list(tmp_path.iterdir())


def _rgb_dataset(root: Path) -> Path:
    """A dataset directory with random RGB features only (enough to train `linear_rgb` in a second)."""
    rng = np.random.default_rng(0)
    for name, count in (("train", 16), ("test", 6)):
        labels = np.arange(count) % len(CLASSES)
        write_split(root / f"{name}.h5", SplitData(
            uids=np.array([f"{name}{i}" for i in range(count)]), labels=labels, start_s=np.arange(count, dtype=float),
            sessions=np.array(["s"] * count), videos=np.array([""] * count),
            arrays={"rgb": (rng.normal(size=(count, 5, 1024)) + labels[:, None, None]).astype(np.float32)}))
    write_manifest(root, {"format": "myosight-dataset/1", "classes": CLASSES,
                          "clip_geometry": ClipGeometry().to_dict(), "emg_pipeline": EmgPipelineConfig().to_dict(),
                          "emg_normalisation": EmgNormalisation.full_scale().to_dict()})
    return root


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 1e30])
def test_training_stops_when_the_loss_is_not_finite(tmp_path: Path, lr: float) -> None:
    data = _rgb_dataset(tmp_path)
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="training diverged"):
        train_head(data, "linear_rgb", config=TrainConfig(lr=lr, epochs=3), run_dir=run, progress=False)
    assert not (run / "bundle.safetensors").exists()


def test_train_on_nonfinite_features_exits_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _rgb_dataset(tmp_path)
    with h5py.File(data / "train.h5", "a") as handle:
        handle["arrays/rgb"][0, 0, 0] = np.nan
    run = tmp_path / "run"
    code = main(["train", "--model", "linear_rgb", "--data", str(data), "--out", str(run), "--epochs", "3", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("myosight: error: training diverged") and "Traceback" not in err
    assert not (run / "bundle.safetensors").exists()


def test_train_with_a_sane_rate_still_writes_a_loadable_bundle(tmp_path: Path) -> None:
    data = _rgb_dataset(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--model", "linear_rgb", "--data", str(data), "--out", str(run), "--epochs", "2",
                 "--quiet"]) == 0
    assert load_bundle(run / "bundle.safetensors").classes == CLASSES
    assert not [p.name for p in run.iterdir() if ".partial" in p.name]


class _Collect:
    def __init__(self) -> None:
        self.sent: list = []

    def publish(self, message: object) -> None:
        self.sent.append(message)


def _bare_worker() -> Worker:
    """A worker without streams: only what publishing and the health report read."""
    worker = Worker.__new__(Worker)
    worker.bundle = SimpleNamespace(classes=CLASSES, geometry=ClipGeometry(), arms=("left", "right"))
    worker.config = SimpleNamespace(hop_s=1.0)
    worker.hops = HopLadder(1.0, clip_s=1.0)
    worker.publisher = _Collect()
    worker.labels = SimpleNamespace(at=lambda t: None)
    worker.emg_inlets, worker.video_inlet, worker.missing_arms = {}, None, []
    worker.predictor = SimpleNamespace(frames=None, rgb_features_computed=0, emg_features_computed=3)
    worker.windows_predicted, worker.windows_skipped = 1, 0
    worker.latencies, worker.compute_times = deque([0.01]), deque([0.01])
    worker.nonfinite_predictions = 0
    return worker


def _prediction(probs: list[float]) -> Prediction:
    return Prediction(window_end=5.0, clip_starts=np.arange(5.0), probs=np.array(probs, np.float32), label_index=0,
                      mode="emg", emg_coverage=np.ones((5, 16)))


@pytest.mark.parametrize("probs", [[float("nan"), float("nan")], [float("inf"), 0.0]])
def test_worker_withholds_nonfinite_probabilities_and_reports_them(probs: list[float]) -> None:
    worker = _bare_worker()
    worker._publish(_prediction(probs), 0.01)
    assert worker.publisher.sent == []
    health = worker.health()
    assert health.nonfinite_predictions == 1
    decoded = HealthMessage.from_message(decode(health.encode(seq=1)))
    assert decoded.nonfinite_predictions == 1


def test_worker_publishes_finite_probabilities() -> None:
    worker = _bare_worker()
    worker._publish(_prediction([0.25, 0.75]), 0.01)
    assert len(worker.publisher.sent) == 1 and worker.nonfinite_predictions == 0
    assert HealthMessage.from_message(decode(worker.health().encode(seq=2))).nonfinite_predictions == 0
