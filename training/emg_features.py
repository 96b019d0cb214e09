"""`myosight features emg`: train the sEMG CNN on training clips, then extract 5 x 1024 features per sample.

The CNN is trained on single clips (every clip carries its sample's label), with the validation split
carved by sample so that no clip of a validation sample is trained on. After training, the convolutions
and the first fully connected layer give one 1024-d vector per clip. The CNN takes the spectrogram shape of
the dataset's sEMG preset (16 x 10 x 17 live, 16 x 10 x 81 in the paper presets).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from myosight.models.emg_cnn import EmgSpectrogramCNN
from myosight.paths import replaced_when_done, write_text_replacing
from myosight.training.feature_store import read_manifest, read_split, write_array
from myosight.training.trainer import FitResult, TrainConfig, classification_metrics, fit, predict_logits

CNN_WEIGHTS = "emg_cnn.safetensors"
CNN_META = "emg_cnn.json"


class ClipModel(nn.Module):
    """Adapts the CNN to the trainer's batch dicts: one spectrogram stack per row."""

    def __init__(self, cnn: EmgSpectrogramCNN) -> None:
        super().__init__()
        self.cnn = cnn

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.cnn(batch["spectrograms"])


def fit_emg_cnn(spectrograms: np.ndarray, labels: np.ndarray, num_classes: int, config: TrainConfig,
                *, progress: bool = True) -> tuple[EmgSpectrogramCNN, FitResult, dict]:
    """Train a CNN on the clips of (N, clips, 16, n_mels, frames) samples; validation carved by sample."""
    clips = spectrograms.reshape(-1, *spectrograms.shape[2:])
    clip_labels = np.repeat(labels, spectrograms.shape[1])
    groups = np.repeat(np.arange(len(labels)), spectrograms.shape[1])
    kwargs = {"num_classes": num_classes, "in_channels": clips.shape[1], "n_mels": clips.shape[2],
              "frames": clips.shape[3]}
    torch.manual_seed(config.seed)
    cnn = EmgSpectrogramCNN(**kwargs)
    cnn.set_input_statistics(torch.as_tensor(clips))
    result: FitResult = fit(ClipModel(cnn), {"spectrograms": clips}, clip_labels, config, progress=progress,
                            description="sEMG CNN", groups=groups)
    return cnn, result, kwargs


def train_emg_cnn(data_dir: Path, config: TrainConfig, *, progress: bool = True) -> tuple[EmgSpectrogramCNN, dict]:
    """Train the CNN on the dataset's training clips; save weights and metadata beside the dataset."""
    manifest = read_manifest(data_dir)
    train = read_split(data_dir / "train.h5", ("spectrograms",))
    spectrograms = train.arrays["spectrograms"]
    cnn, result, kwargs = fit_emg_cnn(spectrograms, train.labels, len(manifest["classes"]), config,
                                      progress=progress)
    clips = spectrograms.reshape(-1, *spectrograms.shape[2:])
    test = read_split(data_dir / "test.h5", ("spectrograms",))
    test_clips = test.arrays["spectrograms"].reshape(-1, *clips.shape[1:])
    logits = predict_logits(ClipModel(cnn), {"spectrograms": torch.as_tensor(test_clips)})
    clip_metrics = classification_metrics(logits.numpy(), np.repeat(test.labels, spectrograms.shape[1]),
                                          manifest["classes"])
    meta = {"kwargs": kwargs, "train_config": config.to_dict(), "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "val_accuracy": result.best_val_accuracy,
            "test_clip_top1": clip_metrics["top1"]}
    with replaced_when_done(data_dir / CNN_WEIGHTS) as temporary:
        save_file({k: v.contiguous() for k, v in cnn.state_dict().items()}, str(temporary))
    write_text_replacing(data_dir / CNN_META, json.dumps(meta, indent=2))
    return cnn, meta


def load_emg_cnn(data_dir: Path) -> EmgSpectrogramCNN:
    meta = json.loads((data_dir / CNN_META).read_text())
    cnn = EmgSpectrogramCNN(**meta["kwargs"])
    cnn.load_state_dict(load_file(str(data_dir / CNN_WEIGHTS)))
    return cnn.eval()


@torch.inference_mode()
def extract_emg_features(cnn: EmgSpectrogramCNN, spectrograms: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, clips, 16, n_mels, frames) -> (N, clips, feature_dim) float32."""
    cnn.eval()
    out = [cnn.sample_features(torch.as_tensor(spectrograms[i:i + batch_size])).numpy()
           for i in range(0, len(spectrograms), batch_size)]
    return np.concatenate(out).astype(np.float32)


def add_emg_features(data_dir: Path, cnn: EmgSpectrogramCNN, *, cross_fit: int = 1,
                     config: TrainConfig | None = None, progress: bool = True) -> None:
    """Write the `emg` feature array into both split files.

    Test features come from `cnn`. With `cross_fit` K > 1 the training samples' features are out-of-fold:
    each fold's features come from a CNN trained on the other K - 1 folds. The features of the very samples a
    CNN was trained on are more confident than on new samples, and heads trained on them learn to trust
    sEMG more than it deserves; out-of-fold features show the heads what sEMG is worth on unseen data.
    """
    test_path = data_dir / "test.h5"
    write_array(test_path, "emg", extract_emg_features(cnn, read_split(test_path, ("spectrograms",)).arrays[
        "spectrograms"]))
    train_path = data_dir / "train.h5"
    train = read_split(train_path, ("spectrograms",))
    spectrograms = train.arrays["spectrograms"]
    if cross_fit <= 1:
        write_array(train_path, "emg", extract_emg_features(cnn, spectrograms))
        _record_cross_fit(data_dir, 1)
        return
    config = config or TrainConfig()
    num_classes = cnn.classifier.out_features
    folds = _stratified_folds(train.labels, cross_fit, config.seed)
    features = np.zeros((len(train), spectrograms.shape[1], cnn.classifier.in_features), np.float32)
    for k in range(cross_fit):
        held_out = folds == k
        fold_cnn, _, _ = fit_emg_cnn(spectrograms[~held_out], train.labels[~held_out], num_classes, config,
                                     progress=progress)
        features[held_out] = extract_emg_features(fold_cnn, spectrograms[held_out])
    write_array(train_path, "emg", features)
    _record_cross_fit(data_dir, cross_fit)


def _record_cross_fit(data_dir: Path, cross_fit: int) -> None:
    """Note in the CNN's metadata how the training features were made (reports print it)."""
    meta_path = data_dir / CNN_META
    if not meta_path.is_file():  # a CNN given directly, not trained by train_emg_cnn: nothing to annotate
        return
    meta = json.loads(meta_path.read_text())
    meta["train_features_cross_fit"] = cross_fit
    write_text_replacing(meta_path, json.dumps(meta, indent=2))


def default_cross_fit(data_dir: Path) -> int:
    """The `--cross-fit` a dataset gets by default: 5 for the live preset, 1 (the final CNN's features of the
    training samples, as the method ran) for the offline paper presets."""
    return 5 if read_manifest(data_dir).get("emg_preset", "live") == "live" else 1


def _stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index per sample, classes spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(labels), np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return assignment
