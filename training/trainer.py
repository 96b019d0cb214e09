"""One training loop for every model: SGD as in the paper, seeds, early stopping, metrics.

Models take a batch dict (`{"rgb": ..., "emg": ..., "emg_raw": ..., "spectrograms": ...}`) and return
logits, so the loop never needs to know which head it trains.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from myosight.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """The paper's optimiser by default (SGD, lr 0.01, momentum 0.9, weight decay 1e-7)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-7
    epochs: int = 60
    batch_size: int = 32
    patience: int = 12  # epochs without validation improvement before stopping
    val_fraction: float = 0.15
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def carve_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) indices; a class with one sample stays in train."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = round(len(members) * fraction) if len(members) > 1 else 0
        val += members[:n_val].tolist()
        train += members[n_val:].tolist()
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))


def _carve(labels: np.ndarray, groups: np.ndarray | None, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    if groups is None:
        return carve_validation(labels, config.val_fraction, config.seed)
    unique, first = np.unique(groups, return_index=True)
    _train_groups, val_groups = carve_validation(labels[first], config.val_fraction, config.seed)
    in_val = np.isin(groups, unique[val_groups])
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def _batches(inputs: dict[str, torch.Tensor], labels: torch.Tensor, size: int, shuffle: bool, generator):
    order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
    for start in range(0, len(labels), size):
        index = order[start:start + size]
        yield {k: v[index] for k, v in inputs.items()}, labels[index]


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.as_tensor(np.asarray(array, dtype=np.float32)) for name, array in arrays.items()}


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    best_val_accuracy: float
    history: list[dict]


def fit(
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    config: TrainConfig,
    *,
    progress: bool = True,
    description: str = "train",
    on_epoch: Callable[[int, dict], None] | None = None,
    groups: np.ndarray | None = None,
) -> FitResult:
    """Train with early stopping on a stratified validation split carved from `inputs`; keep the best weights.

    `groups` (one id per row) keeps rows of one group on one side, e.g. the 5 clips of one sample.
    """
    seed_everything(config.seed)
    train_idx, val_idx = _carve(labels, groups, config)
    tensors, targets = to_tensors(inputs), torch.as_tensor(labels, dtype=torch.long)
    train_x, train_y = {k: v[train_idx] for k, v in tensors.items()}, targets[train_idx]
    val_x, val_y = {k: v[val_idx] for k, v in tensors.items()}, targets[val_idx]
    optimiser = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)
    best = (-1.0, float("inf"))
    best_state, best_epoch, history = copy.deepcopy(model.state_dict()), 0, []
    # disable=None: a bar on a terminal, nothing in a log file (one epoch bar per head would flood it)
    bar = tqdm(range(config.epochs), desc=description, disable=None if progress else True, leave=False)
    for epoch in bar:
        model.train()
        total, seen = 0.0, 0
        for batch, target in _batches(train_x, train_y, config.batch_size, True, generator):
            optimiser.zero_grad()
            loss = loss_fn(model(batch), target)
            _check_finite(float(loss.detach()), "training", epoch, config)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(target)
            seen += len(target)
        record = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        if len(val_idx):
            val_logits = predict_logits(model, val_x, config.batch_size)
            record["val_loss"] = _check_finite(float(loss_fn(val_logits, val_y)), "validation", epoch, config)
            record["val_accuracy"] = float((val_logits.argmax(1) == val_y).float().mean())
        else:
            record["val_loss"], record["val_accuracy"] = record["train_loss"], 0.0
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_accuracy']:.3f}")
        if (record["val_accuracy"], -record["val_loss"]) > (best[0], -best[1]):
            best, best_state, best_epoch = (record["val_accuracy"], record["val_loss"]), copy.deepcopy(
                model.state_dict()), epoch
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, len(history), best[0], history)


def _check_finite(loss: float, which: str, epoch: int, config: TrainConfig) -> float:
    """Stop a diverged run: weights that give a NaN or infinite loss would give NaN predictions in a bundle."""
    if not math.isfinite(loss):
        raise ConfigError(f"training diverged: the {which} loss is {loss} in epoch {epoch + 1} (learning rate "
                          f"{config.lr}). Use a smaller --lr, or check the features for NaN")
    return loss


@torch.inference_mode()
def predict_logits(model: nn.Module, inputs: dict[str, torch.Tensor], batch_size: int = 256) -> torch.Tensor:
    model.eval()
    count = len(next(iter(inputs.values())))
    outputs = [model({k: v[i:i + batch_size] for k, v in inputs.items()}) for i in range(0, count, batch_size)]
    return torch.cat(outputs) if outputs else torch.zeros(0)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Top-1, top-5, per-class accuracy and the confusion matrix (rows: true, columns: predicted)."""
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    predicted = top[:, 0]
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {
        classes[c]: float(confusion[c, c] / confusion[c].sum()) for c in range(len(classes)) if confusion[c].sum()
    }
    return {
        "top1": float((predicted == labels).mean()) if len(labels) else 0.0,
        "top5": float((top == labels[:, None]).any(axis=1).mean()) if len(labels) else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "samples": len(labels),
    }
