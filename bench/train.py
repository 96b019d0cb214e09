"""`myosight bench train`: how long every head of Table 2 takes to train and evaluate on extracted features.

The feature store is synthetic, written in the project's own layout at the size of the real sEMG
table (255 five-second samples, 180 train / 75 test, 13 classes): RGB and sEMG features of 5 x 1024 per
sample and raw sEMG of 5 x 160 x 16, with class-dependent means under noise (what is timed is the work
of training, not how well these features can be learnt). The epoch count is fixed (no early stopping), so
the figures do not depend on when a head happens to converge; `myosight train` (up to 60 epochs with
early stopping) scales with its epochs and the paper's split (799 / 343 samples) with its size. Each head
is first trained once on a tiny store, so the timed runs pay no first-call costs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from myosight.models.clips import ClipGeometry
from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
from myosight.training.feature_store import SplitData, write_manifest, write_split
from myosight.training.run import TABLE_ROWS, train_head
from myosight.training.trainer import TrainConfig

TRAIN_SAMPLES, TEST_SAMPLES, CLASSES = 180, 75, 13


def _split(rng: np.random.Generator, count: int, classes: int, centres: dict[str, np.ndarray]) -> SplitData:
    labels = rng.integers(0, classes, count)
    arrays = {}
    for name, centre in centres.items():
        noise = rng.normal(0.0, 1.0, (count, *centre.shape[1:])).astype(np.float32)
        values = centre[labels] + noise
        arrays[name] = np.abs(values) if name != "emg_raw" else 1 / (1 + np.exp(-values))  # ReLU-like / [0, 1]
    uids = np.array([f"bench-{i}" for i in range(count)])
    empty = np.array([""] * count)
    return SplitData(uids, labels, np.arange(count, dtype=np.float64) * 5.0, empty, empty,
                     {name: array.astype(np.float32) for name, array in arrays.items()})


def write_feature_store(directory: Path, train: int = TRAIN_SAMPLES, test: int = TEST_SAMPLES,
                        classes: int = CLASSES, seed: int = 0) -> Path:
    """A dataset directory with `rgb`, `emg` and `emg_raw` arrays of synthetic, learnable features."""
    rng = np.random.default_rng(seed)
    geometry, config = ClipGeometry(), EmgPipelineConfig()
    clips, raw = geometry.clips_per_sample, round(geometry.clip_seconds * config.rate_hz)
    centres = {"rgb": rng.normal(0, 0.5, (classes, clips, 1024)), "emg": rng.normal(0, 0.5, (classes, clips, 1024)),
               "emg_raw": rng.normal(0, 0.5, (classes, clips, raw, 16))}
    directory.mkdir(parents=True, exist_ok=True)
    write_split(directory / "train.h5", _split(rng, train, classes, centres))
    write_split(directory / "test.h5", _split(rng, test, classes, centres))
    write_manifest(directory, {
        "classes": [f"class {i:02d}" for i in range(classes)], "clip_geometry": geometry.to_dict(),
        "emg_pipeline": config.to_dict(), "emg_normalisation": EmgNormalisation.full_scale().to_dict(),
        "source": "myosight bench train (synthetic features)",
    })
    return directory


def benchmark_train(repeats: int = 1, epochs: int = 5, train: int = TRAIN_SAMPLES, test: int = TEST_SAMPLES,
                    classes: int = CLASSES, progress: bool = True) -> dict:
    """Train and evaluate every row of Table 2 `repeats` times, after a warm-up of each head on a tiny store.

    Returns {"heads": {head: {"seconds": [...], "top1": ...}}, "epochs": ..., "samples": ...}.
    """
    from myosight.progress import ProgressBar

    config = TrainConfig(epochs=epochs, patience=epochs + 1)
    rows = [(head, options) for _title, head, options in TABLE_ROWS]
    results: dict[str, dict] = {head: {"seconds": []} for head, _ in rows}
    with tempfile.TemporaryDirectory(prefix="myosight-bench-train-") as tmp:
        data = write_feature_store(Path(tmp) / "data", train, test, classes)
        tiny = write_feature_store(Path(tmp) / "warm-up", 2 * classes, classes, classes, seed=1)
        warm = TrainConfig(epochs=1, patience=2)
        with ProgressBar(len(rows) * (repeats + 1), desc="bench train", unit="head", enabled=progress) as bar:
            for head, options in rows:
                train_head(tiny, head, options=options, config=warm, progress=False)
                bar.update(1)
            for _ in range(repeats):
                for head, options in rows:
                    started = time.perf_counter()
                    run = train_head(data, head, options=options, config=config, progress=False)
                    results[head]["seconds"].append(time.perf_counter() - started)
                    results[head]["top1"] = run.metrics["top1"]
                    bar.update(1)
    return {"heads": results, "epochs": epochs, "samples": {"train": train, "test": test}, "classes": classes}


def train_figures(result: dict) -> list[dict]:
    """The `myosight bench train` rows: per head (median over repeats) and the whole table."""
    heads = result["heads"]
    baseline = float(np.median(heads["linear_rgb"]["seconds"]))
    note = (f"{result['epochs']} epochs, {result['samples']['train']} train / {result['samples']['test']} test "
            f"samples, {result['classes']} classes (synthetic features)")
    figures = []
    for head, entry in heads.items():
        seconds = float(np.median(entry["seconds"]))
        figures.append({"name": f"train.{head}", "value": seconds, "unit": "s", "baseline": "train.linear_rgb",
                        "ratio": seconds / baseline})
    total = sum(float(np.median(entry["seconds"])) for entry in heads.values())
    figures.append({"name": "train.table2_total", "value": total, "unit": "s", "note": note})
    figures.append({"name": "train.table2_total_per_epoch", "value": total / result["epochs"], "unit": "s/epoch"})
    return figures
