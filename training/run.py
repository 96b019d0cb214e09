"""Training one head on a dataset directory, evaluating it, and the rows of the paper's results table.

The table's rows are the paper's heads; what the numbers mean depends on how the dataset and the run were
made: the sEMG preset of the dataset (``live`` by default, causal; ``paper``/``paper-text`` offline, as the
method ran), the head style (myosight's defaults or the authors' details, ``heads="paper"``) and the
selection (validation early stopping by default; ``best-test``, the authors' reporting, is optimistic).

`train_head` writes a run directory:

    RUN/config.json       head, options, training config, dataset
    RUN/metrics.json      top-1/top-5/per-class accuracy, confusion matrix, learning curve, p / attention
    RUN/confusion.png     the test confusion matrix
    RUN/bundle.safetensors  everything the live worker needs (models/bundle.py)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from myosight.arms import BOTH_ARMS
from myosight.errors import ConfigError
from myosight.models.bundle import save_bundle
from myosight.models.clips import ClipGeometry
from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
from myosight.models.heads import HEADS, build_head, head_options
from myosight.paths import write_text_replacing
from myosight.training.feature_store import read_manifest, read_split
from myosight.training.trainer import (
    TrainConfig,
    classification_metrics,
    fit,
    fit_best_test,
    predict_logits,
    selection_label,
    to_tensors,
)

#: The rows of the paper's Table 2, in its order: (row title, head name, options).
TABLE_ROWS: tuple[tuple[str, str, dict], ...] = (
    ("Linear RGB", "linear_rgb", {}),
    ("LSTM RGB", "lstm_rgb", {}),
    ("LSTM sEMG raw", "lstm_emg_raw", {}),
    ("Linear sEMG", "linear_emg", {}),
    ("LSTM sEMG", "lstm_emg", {}),
    ("Late-Fusion", "late_fusion", {}),
    ("Late-Fusion PAR (p = 0.8)", "late_fusion_par_const", {"p": 0.8}),
    ("Late-Fusion PAR (learnable p)", "late_fusion_par_learnable", {}),
    ("Late-Fusion LSTM", "late_fusion_lstm", {}),
    ("Mid-Fusion", "mid_fusion", {}),
    ("Self-Attention Late-Fusion", "self_attention_lf", {}),
    ("Self-Attention LF LSTM", "self_attention_lf_lstm", {}),
    ("Baseline: RMS + MAV sEMG (not in the paper)", "rms_mav_emg", {}),
)


@dataclass
class RunResult:
    name: str
    metrics: dict
    seconds: float
    run_dir: Path | None


def _inputs(split, modalities: Sequence[str]) -> dict[str, np.ndarray]:
    return {name: split.arrays[name] for name in modalities}


def live_feature_width(data_dir: Path, modality: str) -> int:
    """The width of the features a live worker computes for `modality`: I3D's, or the dataset's sEMG CNN's."""
    if modality == "rgb":
        from myosight.models.i3d import FEATURE_DIM

        return FEATURE_DIM
    import inspect

    from myosight.models.emg_cnn import EmgSpectrogramCNN
    from myosight.training.emg_features import CNN_META

    default = inspect.signature(EmgSpectrogramCNN).parameters["feature_dim"].default
    meta = Path(data_dir) / CNN_META
    kwargs = json.loads(meta.read_text(encoding="utf-8")).get("kwargs", {}) if meta.is_file() else {}
    return int(kwargs.get("feature_dim", default))


def check_training_inputs(data_dir: Path, splits: dict, modalities: Sequence[str], num_classes: int) -> None:
    """ConfigError, naming the file, for inputs that would train a bundle the worker cannot run or that training
    would trip over: an empty split, labels outside the dataset's classes, features that are not numbers, of
    another width than the live models compute, or of another count than the split's samples."""
    if "emg" in modalities:
        from myosight.training.emg_features import emg_features_problem

        if problem := emg_features_problem(Path(data_dir)):
            raise ConfigError(f"{problem}: run `myosight features emg {data_dir} --force`")
    for name, split in splits.items():
        where = Path(data_dir) / f"{name}.h5"
        if len(split) == 0:
            raise ConfigError(f"{where}: the {name} split holds no sample")
        outside = np.flatnonzero((split.labels < 0) | (split.labels >= num_classes))
        if len(outside):
            raise ConfigError(f"{where} [label]: sample {int(outside[0])} has label {int(split.labels[outside[0]])}, "
                              f"outside the {num_classes} classes of dataset.json")
        for modality in modalities:
            array = split.arrays[modality]
            field = f"{where} [arrays/{modality}]"
            if not np.issubdtype(array.dtype, np.number):
                raise ConfigError(f"{field}: features must be numbers, found {array.dtype}")
            if len(array) != len(split.labels):
                raise ConfigError(f"{field}: {len(array)} rows for {len(split.labels)} samples")
            if modality in ("rgb", "emg") and array.shape[-1] != live_feature_width(data_dir, modality):
                raise ConfigError(f"{field}: features of width {array.shape[-1]}, but the live "
                                  f"{'I3D' if modality == 'rgb' else 'sEMG CNN'} computes "
                                  f"{live_feature_width(data_dir, modality)}: compute them again with "
                                  f"`myosight features {modality}`")


def train_head(
    data_dir: Path,
    head_name: str,
    *,
    options: dict | None = None,
    config: TrainConfig | None = None,
    run_dir: Path | None = None,
    progress: bool = True,
    heads: str = "default",
) -> RunResult:
    """Train `head_name` on the dataset's train split, evaluate on its test split, optionally write a run.

    `heads="paper"` adds the authors' head details (models.heads.PAPER_HEAD_OPTIONS) under `options`. With
    `config.select == "best-test"` the weights are those of the best test accuracy (optimistic; labelled so).
    """
    config = config or TrainConfig()
    options = head_options(head_name, heads, options)
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    classes = manifest["classes"]
    if head_name not in HEADS:
        build_head(head_name)  # raises the ConfigError listing the known heads
    modalities = HEADS[head_name].modalities
    train = read_split(data_dir / "train.h5", tuple(modalities))
    test = read_split(data_dir / "test.h5", tuple(modalities))
    check_training_inputs(data_dir, {"train": train, "test": test}, modalities, len(classes))
    feature_dim = next((train.arrays[m].shape[-1] for m in modalities if m in ("rgb", "emg")), 1024)
    if "emg_raw" in modalities:
        options.setdefault("channels", train.arrays["emg_raw"].shape[-1])
    torch.manual_seed(config.seed)
    head = build_head(head_name, num_classes=len(classes), feature_dim=feature_dim, **options)
    started = time.perf_counter()
    if config.select == "best-test":
        result = fit_best_test(head, _inputs(train, modalities), train.labels, _inputs(test, modalities),
                               test.labels, config, progress=progress, description=head_name)
    else:
        result = fit(head, _inputs(train, modalities), train.labels, config, progress=progress,
                     description=head_name)
    logits = predict_logits(head, to_tensors(_inputs(test, modalities))).numpy()
    seconds = time.perf_counter() - started
    metrics = classification_metrics(logits, test.labels, classes)
    metrics.update({"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                    "train_seconds": seconds, "selection": config.select, "selection_label": selection_label(config),
                    "heads": heads, "emg_preset": manifest.get("emg_preset", "live")})
    if config.select == "best-test":
        metrics["optimistic"] = True
    else:
        metrics["val_accuracy"] = result.best_val_accuracy
    if hasattr(head, "p") and isinstance(getattr(type(head), "p", None), property):
        metrics["p"] = float(head.p)  # type: ignore[arg-type]  # a property of the fusion heads (checked above)
    if run_dir is not None:
        _write_run(Path(run_dir), data_dir, manifest, head_name, head, config, metrics, result.history)
    return RunResult(head_name, metrics, seconds, run_dir)


def _write_run(run_dir, data_dir, manifest, head_name, head, config, metrics, history) -> None:
    from myosight.training.emg_features import CNN_META, load_emg_cnn
    from myosight.training.figures import plot_confusion

    run_dir.mkdir(parents=True, exist_ok=True)
    head_kwargs = {k: v for k, v in head.head_config.items() if k != "name"}
    emg_cnn, cnn_kwargs = None, None
    if "emg" in head.modalities:
        emg_cnn = load_emg_cnn(data_dir)
        cnn_kwargs = json.loads((data_dir / CNN_META).read_text())["kwargs"]
    save_bundle(  # first: a run that cannot write its bundle (a full disk) writes nothing else either
        run_dir / "bundle.safetensors", head_name=head_name, head=head, head_kwargs=head_kwargs,
        classes=manifest["classes"], geometry=ClipGeometry.from_dict(manifest["clip_geometry"]),
        emg_config=EmgPipelineConfig.from_dict(manifest["emg_pipeline"]),
        normalisation=EmgNormalisation.from_dict(manifest["emg_normalisation"]), emg_cnn=emg_cnn,
        emg_cnn_kwargs=cnn_kwargs, i3d_sha256=manifest.get("i3d_sha256") if "rgb" in head.modalities else None,
        metrics={k: metrics[k] for k in ("top1", "top5", "samples", "selection", "selection_label")},
        arms=manifest.get("arms", BOTH_ARMS),  # a dataset written before arms were recorded had both
    )
    write_text_replacing(run_dir / "config.json", json.dumps(
        {"head": head_name, "head_kwargs": head_kwargs, "train_config": config.to_dict(),
         "dataset": str(data_dir.resolve())}, indent=2))
    write_text_replacing(run_dir / "metrics.json", json.dumps({**metrics, "history": history}, indent=2))
    plot_confusion(np.asarray(metrics["confusion"]), manifest["classes"], run_dir / "confusion.png",
                   f"{head_name}: top-1 {metrics['top1']:.1%}")


def report(
    data_dir: Path,
    rows: Sequence[tuple[str, str, dict]] = TABLE_ROWS,
    *,
    seeds: Sequence[int] = (0,),
    config: TrainConfig | None = None,
    progress: bool = True,
    heads: str = "default",
) -> list[dict]:
    """Train and evaluate every row (skipping rows whose inputs the dataset lacks) over seeds.

    Every entry records the selection (`config.select`); "best-test" entries carry `optimistic: True`.
    """
    from myosight.training.feature_store import array_names

    read_manifest(data_dir)  # a path that is not a dataset is refused with the reason
    available = set(array_names(Path(data_dir) / "train.h5"))
    config = config or TrainConfig()
    table = []
    for title, head_name, options in rows:
        needed = set(HEADS[head_name].modalities)
        if not needed <= available:
            table.append({"row": title, "head": head_name, "skipped": f"needs {', '.join(sorted(needed - available))}"})
            continue
        runs = [train_head(data_dir, head_name, options=options, progress=progress, heads=heads,
                           config=TrainConfig(**{**config.to_dict(), "seed": seed})) for seed in seeds]
        top1 = np.array([r.metrics["top1"] for r in runs])
        top5 = np.array([r.metrics["top5"] for r in runs])
        entry = {"row": title, "head": head_name, "top1": float(top1.mean()), "top1_std": float(top1.std()),
                 "top5": float(top5.mean()), "seconds": float(np.mean([r.seconds for r in runs])),
                 "seeds": len(runs), "confusion": runs[0].metrics["confusion"], "selection": config.select,
                 "optimistic": config.select == "best-test"}
        if "p" in runs[0].metrics:
            entry["p"] = float(np.mean([r.metrics["p"] for r in runs]))
        table.append(entry)
    return table


def table_markdown(table: list[dict], caption: str | None = None) -> str:
    """The results as a Markdown table; a table of best-test entries is labelled OPTIMISTIC in its header and
    in a note under it, so that it cannot be copied without the label."""
    optimistic = any(entry.get("optimistic") for entry in table)
    top1 = "top-1 (%), best test: OPTIMISTIC" if optimistic else "top-1 (%)"
    lines = [caption, ""] if caption else []
    lines += [f"| model | {top1} | top-5 (%) | train + test time (s) |", "| --- | ---: | ---: | ---: |"]
    for entry in table:
        if "skipped" in entry:
            lines.append(f"| {entry['row']} | - | - | ({entry['skipped']}) |")
            continue
        spread = f" ± {100 * entry['top1_std']:.1f}" if entry["seeds"] > 1 else ""
        extra = f" (p at convergence {entry['p']:.2f})" if "p" in entry and "learnable" in entry["head"] else ""
        lines.append(f"| {entry['row']}{extra} | {100 * entry['top1']:.1f}{spread} | {100 * entry['top5']:.1f} | "
                     f"{entry['seconds']:.1f} |")
    if optimistic:
        lines += ["", "OPTIMISTIC: each figure is the best test accuracy reached during training (the authors' "
                      "reporting, `--select best-test`): the test set chose the weights, so it overstates what the "
                      "model does on new data. The default `--select val` stops early on a validation split."]
    return "\n".join(lines)
