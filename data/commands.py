"""CLI: `myosight info`, `myosight subactions`, `myosight synth` and `myosight import`."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from myosight import options
from myosight.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser(
        "info",
        help="show the streams, measured rates and labelled actions of session files",
        description="Read ActionSense-layout sessions (.hdf5) and print what each holds: every stream with "
        "its row count, the Myo EMG arms with their rate measured from timestamps and their gaps, the "
        "world video, and the labelled actions after Start/Stop pairing.",
    )
    info.add_argument("sessions", type=Path, nargs="+", metavar="session", help="session .hdf5 files")
    info.add_argument("--video", type=Path, help="world-camera video of the one session named (default: found "
                      "beside the session)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text (a list for several "
                      "sessions)")
    info.set_defaults(handler=run_info)

    sub = subparsers.add_parser(
        "subactions",
        help="cut sessions into 5-second sub-actions and make the train/test split",
        description="Cut the labelled actions of sessions into sub-actions and split them 70/30, "
        "stratified by class. --by subaction is the paper's split (neighbouring sub-actions of one "
        "action may land on both sides); --by action keeps whole actions on one side (no leakage).",
    )
    sub.add_argument("sessions", type=Path, nargs="+", help="session .hdf5 files")
    sub.add_argument("--length", type=options.float_range(0, 3600), default=5.0,
                     help="sub-action length in seconds (default 5)")
    sub.add_argument("--by", choices=("subaction", "action"), default="subaction", help="split unit")
    sub.add_argument("--train-fraction", type=options.fraction, default=0.7,
                     help="share of the sub-actions for training, between 0 and 1 (default 0.7)")
    sub.add_argument("--seed", type=options.seed, default=0)
    sub.add_argument(
        "--subjects", nargs="*", default=None,
        help="keep only these subjects (the paper uses S04 S07 S08; default: all)",
    )
    sub.add_argument("--csv", type=Path, help="write uid,subject,label,start_s,stop_s,split rows here")
    sub.set_defaults(handler=run_subactions)

    from myosight.data.synth import add_synth_parser

    add_synth_parser(subparsers)
    add_import_parser(subparsers)


#: Sampling rates `import libemg-csv --rate` accepts (Hz).
_IMPORT_RATE = options.float_range(0, 100_000, name="rate_hz")
#: Rests between imported recordings (s): 0 lays them end to end; an hour is already far more than a rest.
_IMPORT_GAP = options.float_range(0, 3600, open_min=False, name="gap_s")
_SPLIT_CHOICES = {"evaluation": ["EvaluationDataset"], "pretraining": ["PreTrainingDataset"],
                  "both": ["EvaluationDataset", "PreTrainingDataset"]}


def add_import_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `myosight import myoarmband` and `myosight import libemg-csv`."""
    parser = subparsers.add_parser(
        "import", help="turn public EMG recordings into ActionSense-layout sessions (myoarmband, libemg-csv)",
        description="Write other recordings as session files every myosight command reads: right- or "
        "left-arm Myo EMG with evenly spaced timestamps and one Good-rated activity per recording.",
    )
    kinds = parser.add_subparsers(dest="import_kind", metavar="FORMAT")
    myo = kinds.add_parser(
        "myoarmband", help="the MyoArmbandDataset (npz archive or original .dat folders): one session per "
        "person and round",
        description="Import the MyoArmbandDataset of Côté-Allard et al. (right forearm, 8 channels, 200 Hz, "
        "7 gestures x 4 cycles per round) from its npz archive or its original folders "
        "(ROOT/EvaluationDataset/Male0/training0/classe_0.dat ...). Writes OUT/<split>/<person>/<session>.hdf5 "
        "(right-arm EMG, one activity per recording, named by its gesture; rounds start at fixed times) and "
        "OUT/index.json listing every session written.",
    )
    myo.add_argument("path", type=Path, help="myoarmband.npz, or a folder holding EvaluationDataset/ and/or "
                     "PreTrainingDataset/ (or one of them)")
    myo.add_argument("--out", type=Path, required=True, help="output folder (must be empty unless --force)")
    myo.add_argument("--split", choices=tuple(_SPLIT_CHOICES), default="both",
                     help="which part of the dataset to import (default: both)")
    myo.add_argument("--people", nargs="+", metavar="NAME", help="only these people, e.g. Male0 Female1 "
                     "(default: all)")
    myo.add_argument("--rounds", nargs="+", metavar="ROUND", help="only these rounds: training0, Test0, Test1 "
                     "(default: all)")
    myo.add_argument("--force", action="store_true", help="write into a non-empty OUT, replacing sessions of "
                     "the same names and index.json")
    myo.set_defaults(handler=run_import_myoarmband)

    csv_parser = kinds.add_parser(
        "libemg-csv", help="a folder of R_<rep>_C_<class>.csv recordings: one session",
        description="Import a folder of CSV recordings named R_<rep>_C_<class>.csv (one sample per row, 8 "
        "comma-separated integer Myo values in [-128, 127], no header) as ONE session in OUT: the recordings in "
        "the order rep 0 class 0, rep 0 class 1, ..., rep 1 class 0, ..., each one Good-rated activity, with "
        "--gap seconds without samples between them. Writes OUT/<date>_<time>_streamLog_<subject>-libemg.hdf5.",
    )
    csv_parser.add_argument("folder", type=Path, help="folder holding the R_<rep>_C_<class>.csv files")
    csv_parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    csv_parser.add_argument("--rate", type=_IMPORT_RATE, default=200.0, metavar="HZ",
                            help="sampling rate of the files (default: 200, the Myo's)")
    csv_parser.add_argument("--arm", choices=("left", "right"), default="right",
                            help="the arm that wore the armband (default: right)")
    csv_parser.add_argument("--classes", nargs="+", metavar="NAME",
                            help="activity names for classes 0, 1, ... (default: 'class 0', 'class 1', ...)")
    csv_parser.add_argument("--subject", help="subject id stored in the session and its file name "
                            "(default: the folder's name)")
    csv_parser.add_argument("--gap", type=_IMPORT_GAP, default=1.0, metavar="SECONDS",
                            help="seconds without samples between consecutive recordings (default: 1)")
    csv_parser.add_argument("--force", action="store_true", help="replace an existing session of the same name")
    csv_parser.set_defaults(handler=run_import_libemg)


def session_summary(session_path: Path, video: Path | None = None) -> dict:
    """Everything `myosight info` reports, as a JSON-able dict."""
    from myosight.data.actionsense import ActionSenseSession
    from myosight.errors import MissingStreamError

    with ActionSenseSession(session_path, video=video) as session:
        summary: dict = {"file": str(session.path), "subject": session.subject, "streams": session.streams()}
        arms = {}
        for arm in session.arms:
            series = session.emg(arm)
            steps = series.time_s[1:] - series.time_s[:-1]
            arms[arm] = {
                "samples": len(series),
                "measured_rate_hz": round(series.measured_rate_hz(), 2),
                "gaps_over_0.5s": int((steps > 0.5).sum()),
                "repeated_timestamps": int((steps == 0).sum()),
                "span_s": round(float(series.time_s[-1] - series.time_s[0]), 3) if len(series) else 0.0,
            }
        summary["emg"] = arms
        summary["missing_arms"] = [arm for arm in ("left", "right") if arm not in session.arms]
        try:
            actions = session.activities()
        except MissingStreamError:
            actions = []
        summary["actions"] = [
            {"label": a.label, "start_s": a.start_s, "duration_s": round(a.duration_s, 3)} for a in actions
        ]
        summary["video"] = str(session.video_path) if session.video_path else None
        try:
            summary["video_frames"] = len(session.video_frame_times())
        except MissingStreamError:
            summary["video_frames"] = 0
    return summary


def run_info(args: argparse.Namespace) -> int:
    if args.video is not None and len(args.sessions) > 1:
        raise ConfigError("--video is the world video of one session: name one session with it")
    summaries = [session_summary(path, args.video) for path in args.sessions]
    if args.json:
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
        return 0
    for index, summary in enumerate(summaries):
        if index:
            print()
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    print(f"{summary['file']}  (subject {summary['subject'] or 'unknown'})")
    print("streams:")
    for name, rows in summary["streams"].items():
        print(f"  {name:<45} {rows:>9} rows")
    for arm, facts in summary["emg"].items():
        print(
            f"EMG {arm}: {facts['samples']} samples over {facts['span_s']} s, measured "
            f"{facts['measured_rate_hz']} Hz, {facts['gaps_over_0.5s']} gaps > 0.5 s"
        )
    if summary["missing_arms"]:
        print(f"missing Myo arms: {', '.join(summary['missing_arms'])}")
    print(f"video: {summary['video'] or 'none found'} ({summary['video_frames']} frame timestamps)")
    print(f"labelled actions: {len(summary['actions'])}")
    for action in summary["actions"]:
        print(f"  {action['duration_s']:7.1f} s  {action['label']}")


def run_subactions(args: argparse.Namespace) -> int:
    from collections import Counter

    from myosight.data.actionsense import ActionSenseSession
    from myosight.data.checks import checked_actions
    from myosight.data.subactions import cut_subactions, split_subactions

    subactions = []
    for path in args.sessions:
        with ActionSenseSession(path) as session:
            subactions += cut_subactions(checked_actions(session), path.stem, session.subject, args.length)
    split = split_subactions(
        subactions, train_fraction=args.train_fraction, seed=args.seed, by=args.by, subjects=args.subjects
    )
    train, test = Counter(s.label for s in split.train), Counter(s.label for s in split.test)
    print(f"{len(split.train)} train / {len(split.test)} test sub-actions (split by {args.by}, seed {args.seed})")
    for label in sorted(set(train) | set(test)):
        print(f"  {train[label]:4d} / {test[label]:4d}  {label}")
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["uid", "subject", "label", "start_s", "stop_s", "split"])
            for name, part in (("train", split.train), ("test", split.test)):
                for s in part:
                    writer.writerow([s.uid, s.subject, s.label, f"{s.start_s:.6f}", f"{s.stop_s:.6f}", name])
        print(f"wrote {args.csv}")
    return 0


def run_import_myoarmband(args: argparse.Namespace) -> int:
    from myosight.data.import_myoarmband import import_myoarmband

    written = import_myoarmband(args.path, args.out, splits=_SPLIT_CHOICES[args.split], people=args.people,
                                rounds=args.rounds, force=args.force)
    for session in written:
        print(f"{session.path}  ({session.subject} {session.attrs['Round']}, {session.recordings} recordings, "
              f"{session.samples} samples)")
    print(f"wrote {len(written)} sessions and {args.out / 'index.json'}")
    return 0


def run_import_libemg(args: argparse.Namespace) -> int:
    from myosight.data.import_libemg import import_libemg_csv

    session = import_libemg_csv(args.folder, args.out, rate_hz=args.rate, arm=args.arm, classes=args.classes,
                                subject=args.subject, gap_s=args.gap, force=args.force)
    print(f"{session.path}  ({session.subject}, {session.recordings} recordings, {session.samples} samples)")
    return 0
