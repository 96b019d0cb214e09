"""CLI: `myosight emg ...` (the sEMG pipeline over recorded sessions)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from myosight import options
from myosight.arms import arms_option

if TYPE_CHECKING:
    from myosight.models.clips import ClipGeometry
    from myosight.training.trainer import TrainConfig

# The sEMG presets (models.emg_pipeline.PRESETS, described in models.emg_presets), named here without importing
# them: the pipeline modules load scipy, which would slow every `myosight` command (tests keep the names equal).
LIVE_PRESET = "live"
PRESET_HELP = {
    "live": "causal, runs live (default)",
    "paper": "offline, as the authors' code ran it (centred RMS, min-max per action, zero-phase Butterworth order "
             "4 at 1 Hz, Mel 10 x 81 with n_fft 16, hop 2, no log)",
    "paper-text": "offline, the paper's text where it differs from the code (order 5 at 5 Hz, n_fft 32)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    emg = subparsers.add_parser("emg", help="run the sEMG pipeline over recorded sessions")
    emg_commands = emg.add_subparsers(dest="emg_command", metavar="ACTION")
    spec = emg_commands.add_parser(
        "spectrograms",
        help="compute the per-clip Mel spectrograms of a session's sub-actions and plot one",
        description="Run the offline sEMG pass (resampling, RMS, min-max, low-pass, Mel spectrograms) "
        "over a session, cut its actions into 5-second sub-actions, report the stream health, and save "
        "the 16 Mel spectrograms of one sub-action as a PNG (the paper's fig. 3, both arms).",
    )
    spec.add_argument("session", type=Path, help="session .hdf5 file")
    spec.add_argument("--out", type=Path, default=Path("emg_spectrograms.png"), help="PNG to write")
    spec.add_argument("--sample", type=options.non_negative_int, default=0, help="which sub-action to plot (default 0)")
    spec.add_argument(
        "--normalisation", choices=("session", "full-scale"), default="session",
        help="min-max statistics: fitted on this session's RMS envelopes (an offline inspection) or the "
        "Myo's full int8 scale (no data needed). Models use the statistics stored in their bundle.",
    )
    spec.add_argument("--arms", type=arms_option, metavar="left|right|both",
                      help="the armbands to show (default: the ones the session recorded)")
    spec.add_argument("--allow-missing-arm", action="store_true",
                      help="show both arms of a one-arm session (the other arm zeros)")
    spec.add_argument("--save", type=Path, help="also save all spectrograms and labels to this .npz")
    spec.set_defaults(handler=run_spectrograms)
    emg.set_defaults(handler=lambda args: emg.print_help() or 2)
    register_training(subparsers)
    register_figures(subparsers)


def run_spectrograms(args: argparse.Namespace) -> int:
    import numpy as np

    from myosight.arms import BOTH_ARMS, emg_channels
    from myosight.data.actionsense import ActionSenseSession
    from myosight.data.checks import check_session, checked_actions
    from myosight.data.subactions import cut_subactions
    from myosight.errors import ConfigError
    from myosight.models.clips import ClipGeometry
    from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
    from myosight.paths import replaced_when_done
    from myosight.training.emg_spectrograms import (
        fit_session_normalisation,
        session_tracks,
        subaction_spectrograms,
    )
    from myosight.training.figures import plot_emg_spectrograms

    config, geometry = EmgPipelineConfig(), ClipGeometry()
    with ActionSenseSession(args.session) as session:
        check_session(session, args.arms)  # before the tracks: an unusable session is refused in one line
        arms = args.arms or (BOTH_ARMS if args.allow_missing_arm or not session.arms else session.arms)
        if args.normalisation == "session":
            normalisation = fit_session_normalisation([session], config, arms)
        else:
            normalisation = EmgNormalisation.full_scale(emg_channels(arms))
        tracks = session_tracks(session, config, normalisation, arms=arms, allow_missing_arm=args.allow_missing_arm)
        subactions = cut_subactions(checked_actions(session, arms), args.session.stem, session.subject,
                                    geometry.sample_seconds)
    for arm, health in tracks.health.items():
        print(
            f"{arm}: {health.samples_in} samples, measured {health.measured_rate_hz:.1f} Hz, "
            f"{len(health.gaps)} gaps, {health.repeated_timestamps} repeated timestamps spread, "
            f"{health.nonfinite_values} non-finite values held, stuck channels {list(health.stuck_channels)}"
        )
    spectrograms, coverage = subaction_spectrograms(tracks, subactions, geometry, config)
    print(f"{len(subactions)} sub-actions -> spectrograms {spectrograms.shape}")
    if not subactions:
        raise ConfigError(f"{args.session}: no labelled actions to cut into sub-actions")
    if not 0 <= args.sample < len(subactions):
        raise ConfigError(f"--sample {args.sample} is out of range (0..{len(subactions) - 1})")
    chosen = subactions[args.sample]
    title = f"{args.session.name} - sub-action {args.sample}: {chosen.label}"
    path = plot_emg_spectrograms(spectrograms[args.sample], args.out, title, geometry.clip_seconds)
    print(f"wrote {path}")
    if args.save:
        with replaced_when_done(args.save) as temporary, open(temporary, "wb") as handle:  # whole or absent
            np.savez_compressed(
                handle, spectrograms=spectrograms, coverage=coverage,
                label=np.array([s.label for s in subactions]), uid=np.array([s.uid for s in subactions]),
            )
        print(f"wrote {args.save}")
    return 0


def register_training(subparsers: argparse._SubParsersAction) -> None:
    """`myosight dataset`, `features emg`, `train`, `evaluate`, `report`."""
    dataset = subparsers.add_parser(
        "dataset",
        help="cut sessions into sub-actions, split them, and compute the sEMG inputs of every sample",
        description="Build a dataset directory from session files: 5-s sub-actions, the 70/30 split "
        "(stratified, seeded), and per split the 16-channel Mel spectrograms and raw sEMG windows of every clip. "
        "The sEMG preset picks the pipeline: `live` (default) is myosight's causal pipeline, the one a live "
        "model runs (min-max statistics fitted on the training samples only); `paper` is the method as its "
        "authors' code ran it and `paper-text` as the paper's text states it, both offline over whole actions "
        "(a model trained on them cannot run live). Then run `myosight features emg` (and `myosight features "
        "rgb` for video) before `myosight train`.",
    )
    dataset.add_argument("sessions", type=Path, nargs="+", help="session .hdf5 files")
    dataset.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    dataset.add_argument("--by", choices=("subaction", "action"), default="subaction",
                         help="split unit: the paper's random split over sub-actions, or whole actions (no leakage)")
    dataset.add_argument("--seed", type=options.seed, default=0)
    dataset.add_argument("--train-fraction", type=options.fraction, default=0.7,
                         help="share of the samples for training, between 0 and 1 (default 0.7)")
    dataset.add_argument("--subjects", nargs="*", help="keep only these subjects (paper: S04 S07 S08)")
    dataset.add_argument("--arms", type=arms_option, metavar="left|right|both",
                         help="the armbands the models read (default: every arm the sessions recorded)")
    dataset.add_argument("--allow-missing-arm", action="store_true",
                         help="accept sessions without one of the arms (its channels are zeros)")
    add_window_options(dataset)
    dataset.add_argument("--step", type=options.float_range(0, 60), metavar="SECONDS",
                         help="a sample every SECONDS within each action (default: one window, consecutive samples); "
                         "shorter overlaps them, for more samples of short recordings (split --by action then)")
    dataset.add_argument("--normalise", choices=("pooled", "subject"), default="pooled",
                         help="whose min-max statistics scale each session's sEMG: everyone's training samples "
                         "together (default), or each subject's own, as a calibration scales its person (for a base "
                         "model meant to be calibrated)")
    dataset.add_argument("--preset", choices=tuple(PRESET_HELP), default=LIVE_PRESET,
                         help="sEMG pipeline; " + "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items()))
    dataset.add_argument("--force", action="store_true",
                         help="replace the dataset already in --out, with the sEMG CNN and features made from it")
    dataset.set_defaults(handler=run_dataset)

    features = subparsers.add_parser("features", help="compute per-clip features of a dataset (emg, rgb)")
    kinds = features.add_subparsers(dest="kind", metavar="KIND")
    emg = kinds.add_parser(
        "emg", help="train the sEMG CNN on the training clips and extract 5 x 1024 features per sample",
        description="Train the spectrogram CNN (paper's optimiser, early stopping on a validation split carved "
        "by sample) and write the 1024-d feature of every clip into the dataset's split files.",
    )
    emg.add_argument("data", type=Path, help="dataset directory")
    emg.add_argument("--cross-fit", type=options.int_range(1, 100), default=None, metavar="K",
                     help="training features out-of-fold from K CNNs, each trained without that fold (default: 5 "
                     "for the live preset; 1 for the paper presets, as the method ran: from the final CNN, which "
                     "makes fusion heads over-trust sEMG)")
    _add_train_options(emg)
    emg.add_argument("--force", action="store_true", help="replace the dataset's sEMG CNN and features")
    emg.set_defaults(handler=run_features_emg)
    features.set_defaults(handler=lambda args: features.print_help() or 2)
    from myosight.training.rgb_commands import register_rgb

    register_rgb(kinds, subparsers)

    train = subparsers.add_parser(
        "train", help="train one head of the paper on a dataset and write a run directory with its bundle",
        description="Train a classifier or fusion head on pre-computed features (SGD lr 0.01, momentum 0.9, "
        "weight decay 1e-7 by default), evaluate it on the test split, and write RUN/ with config.json, "
        "metrics.json, confusion.png and bundle.safetensors (what `myosight run` loads).",
    )
    train.add_argument("--model", required=True, help="head name (`myosight heads` lists them)")
    train.add_argument("--data", type=Path, required=True, help="dataset directory")
    train.add_argument("--out", type=Path, help="run directory (default: runs/<model>-seed<seed>)")
    train.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="head option, e.g. --option p=0.8 --option alpha=2 (repeatable; wins over --heads)")
    _add_head_options(train)
    _add_train_options(train)
    train.set_defaults(handler=run_train)

    heads = subparsers.add_parser("heads", help="list the classifier and fusion heads")
    heads.set_defaults(handler=run_list_heads)

    evaluate = subparsers.add_parser("evaluate", help="evaluate a model bundle on a dataset's test split")
    evaluate.add_argument("--bundle", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--split", choices=("train", "test"), default="test")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=run_evaluate)

    report = subparsers.add_parser(
        "report", help="train and evaluate the heads of every row of the paper's table on a dataset",
        description="Train and evaluate the heads of the rows of the paper's Table 2 (rows whose inputs the "
        "dataset lacks are listed as skipped) over one or more seeds; write results.md, results.csv and confusion "
        "matrices. The figures are the paper's protocol only for a dataset built with `--preset paper` from "
        "S04/S07/S08, `features emg --cross-fit 1`, `--heads paper` and `--select best-test` (optimistic); by "
        "default they measure myosight's live pipeline with validation early stopping.",
    )
    report.add_argument("--data", type=Path, required=True)
    report.add_argument("--out", type=Path, help="where to write results (default: DATA/report)")
    report.add_argument("--seeds", type=options.seed, nargs="+", default=[0])
    report.add_argument("--rows", nargs="+", help="head names to include (default: all rows)")
    _add_head_options(report)
    _add_train_options(report, seed=False)
    report.set_defaults(handler=run_report)


def _add_train_options(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    parser.add_argument("--epochs", type=options.int_range(1, 100_000), default=60)
    parser.add_argument("--lr", type=options.float_range(0, 10), default=0.01, help="learning rate, in (0, 10]")
    parser.add_argument("--batch-size", type=options.int_range(1, 65_536), default=32)
    parser.add_argument("--patience", type=options.int_range(0, 100_000), default=12,
                        help="early-stopping patience in epochs")
    if seed:
        parser.add_argument("--seed", type=options.seed, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_head_options(parser: argparse.ArgumentParser) -> None:
    """--heads (myosight's head defaults or the authors' details) and --select (how the weights are chosen)."""
    parser.add_argument("--heads", choices=("default", "paper"), default="default",
                        help="head details: myosight's defaults, or the authors' where they differ (batch norm "
                        "before the linear layer, self-attention alpha 1.25 and d_k 1024, mid fusion 2048 -> 1024)")
    parser.add_argument("--select", choices=("val", "best-test"), default="val",
                        help="which weights are reported: early stopping on a validation split (default), or the "
                        "best test accuracy over --iterations steps as the authors report it (OPTIMISTIC: the "
                        "test set chooses; labelled so in every output)")
    parser.add_argument("--iterations", type=options.int_range(1, 10_000_000), default=2000,
                        help="optimiser steps of a --select best-test run (default 2000, the authors')")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from myosight.training.trainer import TrainConfig

    return TrainConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, patience=args.patience,
                       seed=getattr(args, "seed", 0), select=getattr(args, "select", "val"),
                       iterations=getattr(args, "iterations", 2000))


def _parse_options(pairs: list[str]) -> dict:
    import json

    from myosight.errors import ConfigError

    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """`--window` and `--clips`: the sample (the live decision window) and the clips it is cut into."""
    parser.add_argument("--window", type=options.float_range(0, 60), metavar="SECONDS",
                        help="seconds of one sample, the window each live decision reads (default 5, the paper's "
                        "5-s sub-actions; shorter for short actions such as hand gestures)")
    parser.add_argument("--clips", type=options.int_range(1, 100), metavar="N",
                        help="clips per sample (default 5); each clip is window / clips seconds")


def window_geometry(args: argparse.Namespace) -> ClipGeometry:
    """The clip geometry of `--window` and `--clips` (the defaults where either is not given)."""
    from dataclasses import replace

    from myosight.models.clips import ClipGeometry

    geometry = ClipGeometry()
    if args.window is not None:
        geometry = replace(geometry, sample_seconds=args.window)
    if args.clips is not None:
        geometry = replace(geometry, clips_per_sample=args.clips)
    return geometry


def run_dataset(args: argparse.Namespace) -> int:
    from myosight.arms import describe_arms
    from myosight.errors import ConfigError
    from myosight.training.dataset import build_emg_dataset
    from myosight.training.feature_store import dataset_files

    existing = dataset_files(args.out)
    if existing and not args.force:
        raise ConfigError(f"{args.out} already holds a dataset ({', '.join(p.name for p in existing)}): pass --force "
                          "to replace it and the sEMG CNN and features made from it, or choose another --out")
    geometry = window_geometry(args)
    manifest = build_emg_dataset(args.sessions, args.out, split_by=args.by, seed=args.seed,
                                 train_fraction=args.train_fraction, subjects=args.subjects,
                                 allow_missing_arm=args.allow_missing_arm, preset=args.preset, arms=args.arms,
                                 geometry=geometry, normalise=args.normalise, step_s=args.step)
    split = manifest["split"]
    kind = " (offline: its models cannot run live)" if args.preset != LIVE_PRESET else ""
    print(f"{args.out}: {split['train']} train / {split['test']} test samples, {len(manifest['classes'])} classes; "
          f"{describe_arms(manifest['arms'])}; {geometry.clips_per_sample} clips of {geometry.clip_seconds:g} s; "
          f"sEMG preset {args.preset}{kind}")
    return 0


def run_features_emg(args: argparse.Namespace) -> int:
    from myosight.errors import ConfigError
    from myosight.training.emg_features import default_cross_fit, make_emg_features
    from myosight.training.feature_store import CNN_WEIGHTS, SPLITS, array_names, read_manifest

    read_manifest(args.data)
    made = [name for name in SPLITS if "emg" in array_names(args.data / f"{name}.h5")]
    if (made or (args.data / CNN_WEIGHTS).exists()) and not args.force:
        raise ConfigError(f"{args.data} already has its sEMG CNN and features: pass --force to train the CNN again "
                          "and replace them")
    cross_fit = args.cross_fit if args.cross_fit is not None else default_cross_fit(args.data)
    meta = make_emg_features(args.data, _train_config(args), cross_fit=cross_fit, progress=not args.quiet)
    print(f"sEMG CNN: best epoch {meta['best_epoch']}, validation {meta['val_accuracy']:.1%}, "
          f"test clips {meta['test_clip_top1']:.1%}; training features with --cross-fit {cross_fit}; "
          f"features written to {args.data}/{{train,test}}.h5")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from myosight.training.run import train_head

    out = args.out or Path("runs") / f"{args.model}-seed{args.seed}"
    result = train_head(args.data, args.model, options=_parse_options(args.option), config=_train_config(args),
                        run_dir=out, progress=not args.quiet, heads=args.heads)
    extra = f", p = {result.metrics['p']:.3f}" if "p" in result.metrics else ""
    label = f" [{result.metrics['selection_label']}]" if result.metrics.get("optimistic") else ""
    print(f"{args.model}: top-1 {result.metrics['top1']:.1%}, top-5 {result.metrics['top5']:.1%} on "
          f"{result.metrics['samples']} test samples{label} ({result.seconds:.1f} s){extra}; run written to {out}")
    return 0


def run_list_heads(args: argparse.Namespace) -> int:
    from myosight.models.heads import HEADS

    for name, spec in HEADS.items():
        print(f"{name:<28} reads {'+'.join(spec.modalities):<10} {spec.summary}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from myosight.training.evaluation import evaluate_bundle

    metrics = evaluate_bundle(args.bundle, args.data, args.split)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        label = f" [weights chosen by {metrics['selection_label']}]" if metrics.get("optimistic") else ""
        print(f"{args.bundle}: top-1 {metrics['top1']:.1%}, top-5 {metrics['top5']:.1%} on "
              f"{metrics['samples']} {args.split} samples{label}")
        for label, accuracy in metrics["per_class"].items():
            print(f"  {accuracy:6.1%}  {label}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    import csv

    import numpy as np

    from myosight.errors import ConfigError
    from myosight.training.feature_store import read_manifest
    from myosight.training.figures import plot_confusion
    from myosight.training.run import TABLE_ROWS, report, table_markdown

    unknown = sorted(set(args.rows or ()) - {r[1] for r in TABLE_ROWS})
    if unknown:
        raise ConfigError(f"--rows: unknown head(s) {', '.join(unknown)}; the rows are "
                          f"{', '.join(r[1] for r in TABLE_ROWS)}")
    rows = [r for r in TABLE_ROWS if not args.rows or r[1] in args.rows]
    config = _train_config(args)
    table = report(args.data, rows, seeds=args.seeds, config=config, progress=not args.quiet, heads=args.heads)
    out = args.out or args.data / "report"
    out.mkdir(parents=True, exist_ok=True)
    markdown = table_markdown(table, caption=report_caption(args.data, args.heads, config))
    (out / "results.md").write_text(markdown + "\n")
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "head", "top1", "top1_std", "top5", "seconds", "seeds", "p", "selection"])
        selection = "best-test (optimistic)" if config.select == "best-test" else "val"
        for e in table:
            if "skipped" not in e:
                writer.writerow([e["row"], e["head"], f"{e['top1']:.4f}", f"{e['top1_std']:.4f}", f"{e['top5']:.4f}",
                                 f"{e['seconds']:.2f}", e["seeds"], f"{e['p']:.4f}" if "p" in e else "", selection])
    classes = read_manifest(args.data)["classes"]
    for e in table:
        if "skipped" not in e:
            plot_confusion(np.asarray(e["confusion"]), classes, out / f"confusion_{e['head']}.png",
                           f"{e['row']}: top-1 {e['top1']:.1%}")
    print(markdown)
    print(f"wrote {out}/results.md, results.csv and confusion_*.png")
    return 0


def report_caption(data: Path, heads: str, config: TrainConfig) -> str:
    """One line saying what a report's figures measure: the dataset's sEMG preset, the heads, the selection."""
    import json

    from myosight.training.emg_features import CNN_META
    from myosight.training.feature_store import read_manifest
    from myosight.training.trainer import selection_label

    preset = read_manifest(data).get("emg_preset", LIVE_PRESET)
    meta_path = Path(data) / CNN_META
    cross_fit = json.loads(meta_path.read_text()).get("train_features_cross_fit", 1) if meta_path.is_file() else None
    kind = "offline, the method's" if preset != LIVE_PRESET else "live, myosight's causal pipeline"
    features = f"; sEMG training features cross-fit K = {cross_fit}" if cross_fit is not None else ""
    return (f"sEMG preset: {preset} ({kind}){features}; heads: {heads}; selection: "
            f"{selection_label(config)}.")


def register_figures(subparsers: argparse._SubParsersAction) -> None:
    """`myosight figures` (the paper's figures 2, 3, 4, 6) and `myosight crossval` (k-fold on a feature npz)."""
    figures = subparsers.add_parser(
        "figures", help="draw the paper's figures 2, 3, 4 and 6 for a dataset",
        description="Write fig2_pca_knn.png (PCA of the RGB features with nearest-neighbour frames), "
        "fig3_emg_spectrograms.png (the first test sample), fig4_confusion_emg.png (linear_emg trained with the "
        "default configuration) and fig6_attention.png (per-clip attention of a self-attention head: trained "
        "here, or read from --run). Figures whose inputs the dataset lacks are skipped with a message.",
    )
    figures.add_argument("--data", type=Path, required=True, help="dataset directory")
    figures.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    figures.add_argument("--run", type=Path, help="run directory (or bundle file) of a self_attention_lf* head")
    figures.set_defaults(handler=run_figures)

    crossval = subparsers.add_parser(
        "crossval", help="stratified k-fold cross-validation of heads on a feature npz, over seeds",
        description="Cross-validate single-modality heads on an npz holding `features` (N, clips, D) and `label` "
        "(N,) (and `start_s` for --by action). --by subaction stratifies over sub-actions (the paper's split, "
        "neighbours of one action on both sides); --by action keeps runs of adjacent sub-actions of one action "
        "in one fold (no leakage). Prints a Markdown table: top-1 mean ± std over folds x seeds, top-5.",
    )
    crossval.add_argument("npz", type=Path, help="feature file (.npz)")
    crossval.add_argument("--heads", nargs="+", default=["linear_rgb", "lstm_rgb"], help="heads to evaluate")
    crossval.add_argument("--folds", type=options.int_range(2, 1000), default=5)
    crossval.add_argument("--seeds", type=options.seed, nargs="+", default=[0, 1, 2])
    crossval.add_argument("--by", choices=("subaction", "action"), default="subaction", help="split unit")
    crossval.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    _add_train_options(crossval, seed=False)
    crossval.set_defaults(handler=run_crossval)


def run_figures(args: argparse.Namespace) -> int:
    from myosight.training.paper_figures import write_paper_figures

    written = write_paper_figures(args.data, args.out, args.run)
    print(f"{len(written)} figure(s) written to {args.out}")
    return 0


def run_crossval(args: argparse.Namespace) -> int:
    import time

    from myosight.training.crossval import crossval_markdown, crossval_npz, describe_split

    grouped = args.by == "action"
    started = time.perf_counter()
    rows = crossval_npz(args.npz, heads=args.heads, folds=args.folds, seeds=args.seeds, config=_train_config(args),
                        group_by_action=grouped, log=None if args.quiet else print)
    title = f"{describe_split(args.npz, grouped)}; {time.perf_counter() - started:.0f} s"
    markdown = crossval_markdown(rows, title=title)
    unseen = max(row["unseen"] for row in rows)
    if unseen > 0:
        unit = "whole actions" if grouped else "samples"
        markdown += (f"\n\nNote: on average {unseen:.1%} of a fold's test samples belong to a class with no training "
                     f"sample in that fold (the class has too few {unit} to be on both sides); top-1 cannot exceed "
                     f"{1 - unseen:.1%} on average.")
    print(markdown)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown + "\n")
        print(f"wrote {args.out}")
    return 0
