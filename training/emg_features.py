"""`myosight features emg`: train the sEMG CNN on training clips, then extract 5 x 1024 features per sample.

The CNN is trained on single clips (every clip carries its sample's label), with the validation split
carved by sample so that no clip of a validation sample is trained on. After training, the convolutions
and the first fully connected layer give one 1024-d vector per clip. The CNN takes the spectrogram shape of
the dataset's sEMG preset (16 x 10 x 17 live, 16 x 10 x 81 in the paper presets).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from myosight.models.emg_cnn import EmgSpectrogramCNN
from myosight.paths import replaced_together, sha256_file
from myosight.training.feature_store import CNN_META, CNN_WEIGHTS, read_manifest, read_split, write_array
from myosight.training.trainer import FitResult, TrainConfig, classification_metrics, fit, predict_logits

#: The attribute of a split's `emg` array that names the CNN that made it (the SHA-256 of its weights file).
CNN_TAG = "cnn_sha256"


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
    """Train the CNN on the dataset's training clips; return it with its metadata (nothing is written: see
    `make_emg_features`)."""
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
    return cnn, meta


def make_emg_features(data_dir: Path, config: TrainConfig, *, cross_fit: int = 1, progress: bool = True) -> dict:
    """`myosight features emg`: train the CNN, compute both splits' features, then write them together
    (`save_emg_features`); return the CNN's metadata."""
    cnn, meta = train_emg_cnn(data_dir, config, progress=progress)
    features = emg_feature_arrays(data_dir, cnn, cross_fit=cross_fit, config=config, progress=progress)
    meta["train_features_cross_fit"] = cross_fit
    save_emg_features(data_dir, cnn, meta, features)
    return meta


def save_emg_features(data_dir: Path, cnn: EmgSpectrogramCNN, meta: dict, features: dict[str, np.ndarray]) -> None:
    """Write the CNN and the features it made together (`replaced_together`: all written before any replaces
    the earlier ones). Each split's features are tagged with the SHA-256 of the CNN's weights, so that a
    dataset whose CNN and features still came apart (a process killed while the files were moved into place)
    is refused by training (`emg_features_problem`) instead of bundling a CNN with features it did not make."""
    weights = save({k: v.contiguous() for k, v in cnn.state_dict().items()})
    digest = hashlib.sha256(weights).hexdigest()
    splits = list(features)
    files = [data_dir / f"{name}.h5" for name in splits] + [data_dir / CNN_WEIGHTS, data_dir / CNN_META]
    with replaced_together(files) as temporaries:
        for name, temporary in zip(splits, temporaries, strict=False):
            write_array(data_dir / f"{name}.h5", "emg", features[name], {CNN_TAG: digest}, into=temporary)
        temporaries[-2].write_bytes(weights)
        temporaries[-1].write_text(json.dumps({**meta, "weights_sha256": digest}, indent=2), encoding="utf-8")


def emg_features_problem(data_dir: Path) -> str | None:
    """Why the dataset's sEMG features cannot be trained on with its CNN (the CNN missing, or features made by
    another CNN), or None. Features written before they were tagged are taken as they are."""
    weights = Path(data_dir) / CNN_WEIGHTS
    tags = {}
    for name in ("train", "test"):
        with h5py.File(Path(data_dir) / f"{name}.h5", "r") as handle:
            tags[name] = handle["arrays/emg"].attrs.get(CNN_TAG) if "arrays/emg" in handle else None
    if not any(tags.values()):
        return None
    if not weights.is_file():
        return f"{weights}: the sEMG CNN that made its features is missing"
    digest = sha256_file(weights)
    stale = [name for name, tag in tags.items() if tag != digest]
    if stale:
        return (f"{Path(data_dir) / (stale[0] + '.h5')}: its sEMG features were made by another CNN than "
                f"{weights} (an interrupted `myosight features emg`?)")
    return None


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


def emg_feature_arrays(data_dir: Path, cnn: EmgSpectrogramCNN, *, cross_fit: int = 1,
                       config: TrainConfig | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """The `emg` feature array of each split (nothing is written).

    Test features come from `cnn`. With `cross_fit` K > 1 the training samples' features are out-of-fold:
    each fold's features come from a CNN trained on the other K - 1 folds. The features of the very samples a
    CNN was trained on are more confident than on new samples, and heads trained on them learn to trust
    sEMG more than it deserves; out-of-fold features show the heads what sEMG is worth on unseen data.
    """
    test = extract_emg_features(cnn, read_split(data_dir / "test.h5", ("spectrograms",)).arrays["spectrograms"])
    train = read_split(data_dir / "train.h5", ("spectrograms",))
    spectrograms = train.arrays["spectrograms"]
    if cross_fit <= 1:
        return {"train": extract_emg_features(cnn, spectrograms), "test": test}
    config = config or TrainConfig()
    num_classes = cnn.classifier.out_features
    folds = _stratified_folds(train.labels, cross_fit, config.seed)
    features = np.zeros((len(train), spectrograms.shape[1], cnn.classifier.in_features), np.float32)
    for k in range(cross_fit):
        held_out = folds == k
        fold_cnn, _, _ = fit_emg_cnn(spectrograms[~held_out], train.labels[~held_out], num_classes, config,
                                     progress=progress)
        features[held_out] = extract_emg_features(fold_cnn, spectrograms[held_out])
    return {"train": features, "test": test}


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
