"""Evaluating a saved model bundle on a dataset directory."""

from __future__ import annotations

from pathlib import Path

from myosight.errors import ConfigError
from myosight.models.bundle import load_bundle
from myosight.training.feature_store import read_manifest, read_split
from myosight.training.trainer import classification_metrics, predict_logits, to_tensors


def evaluate_bundle(bundle_path: Path, data_dir: Path, split: str = "test") -> dict:
    """Top-1/top-5/per-class accuracy and confusion of a bundle's head on a split's stored features."""
    bundle = load_bundle(bundle_path)
    manifest = read_manifest(data_dir)
    if manifest["classes"] != bundle.classes:
        raise ConfigError(
            f"{bundle_path}: the bundle's {len(bundle.classes)} classes differ from the dataset's "
            f"{len(manifest['classes'])} ({data_dir})"
        )
    data = read_split(Path(data_dir) / f"{split}.h5", bundle.modalities)
    logits = predict_logits(bundle.head, to_tensors(data.arrays)).numpy()
    metrics = classification_metrics(logits, data.labels, bundle.classes)
    trained = bundle.metadata.get("metrics") or {}
    if trained.get("selection") == "best-test":  # the test set chose these weights: say so with the figure
        metrics.update(selection="best-test", optimistic=True, selection_label=trained.get("selection_label", ""))
    return metrics
