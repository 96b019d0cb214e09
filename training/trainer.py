"""One training loop for every model: SGD as in the paper, seeds, early stopping, metrics.

Models take a batch dict (`{"rgb": ..., "emg": ..., "emg_raw": ..., "spectrograms": ...}`) and return
logits, so the loop never needs to know which head it trains.

Two ways to choose the weights a run keeps (`TrainConfig.select`):
- ``val`` (the default): early stopping on a validation split carved from the training samples; the test
  split is seen once, at the end. An honest estimate.
- ``best-test``: how the method's authors report: train on all training samples for a fixed number of
  iterations (optimiser steps, 2000), evaluate the test split after every epoch and keep the best. The test
  set chooses the weights, so the figure is OPTIMISTIC; every place that prints it says so.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from myosight.errors import ConfigError
from myosight.progress import ProgressBar

log = logging.getLogger(__name__)


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
    select: str = "val"  # "val": early stopping on validation; "best-test": best test accuracy (optimistic)
    iterations: int = 2000  # optimiser steps of a "best-test" run (the authors' 2000); unused by "val"

    def __post_init__(self) -> None:
        if self.select not in SELECTIONS:
            raise ConfigError(f"unknown selection {self.select!r}; choose from {', '.join(SELECTIONS)}")

    def to_dict(self) -> dict:
        return asdict(self)


#: Ways to choose a run's weights (see the module docstring); "best-test" is optimistic.
SELECTIONS = ("val", "best-test")
OPTIMISTIC_LABEL = "best test accuracy over {iterations} iterations: OPTIMISTIC, the test set chose the weights"


def selection_label(config: TrainConfig) -> str:
    """How a run's reported accuracy was chosen, in words (the optimistic one says so)."""
    if config.select == "best-test":
        return OPTIMISTIC_LABEL.format(iterations=config.iterations)
    return "early stopping on a validation split of the training samples; test split seen once"


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
    # a bar on a terminal only, nothing in a log file (one epoch bar per head would flood it)
    bar = ProgressBar(config.epochs, desc=description, unit="epoch", enabled=progress, leave=False)
    for epoch in bar.iterate(range(config.epochs)):
        record = {"epoch": epoch, "train_loss": _train_epoch(model, train_x, train_y, optimiser, generator, epoch,
                                                             config)[0]}
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
        log.debug("%s: epoch %d, loss %.3f, validation accuracy %.3f", description, epoch + 1, record["train_loss"],
                  record["val_accuracy"])  # `myosight -v`: the epochs in a log, where no bar is drawn
        if (record["val_accuracy"], -record["val_loss"]) > (best[0], -best[1]):
            best, best_state, best_epoch = (record["val_accuracy"], record["val_loss"]), copy.deepcopy(
                model.state_dict()), epoch
        elif epoch - best_epoch >= config.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, len(history), best[0], history)


def _train_epoch(model: nn.Module, train_x: dict[str, torch.Tensor], train_y: torch.Tensor, optimiser,
                 generator: torch.Generator, epoch: int, config: TrainConfig,
                 max_steps: int | None = None) -> tuple[float, int]:
    """One pass over shuffled batches (at most `max_steps` of them): (mean training loss, steps taken)."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    total, seen, steps = 0.0, 0, 0
    for batch, target in _batches(train_x, train_y, config.batch_size, True, generator):
        if max_steps is not None and steps >= max_steps:
            break
        optimiser.zero_grad()
        loss = loss_fn(model(batch), target)
        _check_finite(float(loss.detach()), "training", epoch, config)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(target)
        seen += len(target)
        steps += 1
    return total / max(seen, 1), steps


def fit_best_test(
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    test_inputs: dict[str, np.ndarray],
    test_labels: np.ndarray,
    config: TrainConfig,
    *,
    progress: bool = True,
    description: str = "train",
) -> FitResult:
    """The authors' reporting: all training samples, `config.iterations` optimiser steps, the test split
    evaluated after every epoch, the weights of the best test accuracy kept (earliest on ties).

    OPTIMISTIC: the test set chooses the weights. `best_val_accuracy` of the result holds that best *test*
    accuracy; the history has `test_accuracy` per epoch.
    """
    seed_everything(config.seed)
    train_x, train_y = to_tensors(inputs), torch.as_tensor(labels, dtype=torch.long)
    test_x, test_y = to_tensors(test_inputs), torch.as_tensor(test_labels, dtype=torch.long)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    best, best_state, best_epoch, history, steps, epoch = -1.0, copy.deepcopy(model.state_dict()), 0, [], 0, 0
    bar = ProgressBar(config.iterations, desc=f"{description} (best-test)", unit="step", enabled=progress,
                      leave=False)
    while steps < config.iterations:
        loss, taken = _train_epoch(model, train_x, train_y, optimiser, generator, epoch, config,
                                   max_steps=config.iterations - steps)
        if taken == 0:
            raise ConfigError("best-test selection needs training samples; the training split is empty")
        steps += taken
        accuracy = float((predict_logits(model, test_x, config.batch_size).argmax(1) == test_y).float().mean())
        history.append({"epoch": epoch, "iterations": steps, "train_loss": loss, "test_accuracy": accuracy})
        if accuracy > best:
            best, best_state, best_epoch = accuracy, copy.deepcopy(model.state_dict()), epoch
        bar.update(taken)
        epoch += 1
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, len(history), best, history)


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
