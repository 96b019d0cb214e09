"""CLI: `myosight features rgb`, `myosight dataset-epic` and `myosight epic convert`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from myosight import options
from myosight.models.device import PRECISIONS


def register_rgb(features_subparsers: argparse._SubParsersAction, subparsers: argparse._SubParsersAction) -> None:
    """Add `features rgb` under `myosight features`, and the EPIC-Kitchens commands at the top level."""
    rgb = features_subparsers.add_parser(
        "rgb", help="extract the frozen I3D's 5 x 1024 features of every sample from its video",
        description="Read the 5 clips of every sample of both splits from its video (frames chosen by timestamp, "
        "as live), prepare them for I3D at --size, and write `rgb` (N, 5, 1024) into the split files. Resumable: "
        "progress is saved after every batch and a re-run continues where the last one stopped. Needs the I3D "
        "weights (`myosight weights fetch`). Data-parallel on several GPUs or machines: `torchrun --nproc-per-node "
        "N -m myosight features rgb DIR --device cuda` (each rank extracts whole videos into its own shard, rank 0 "
        "merges; with RANK / WORLD_SIZE set by hand instead, finish with `myosight features merge DIR`).",
    )
    rgb.add_argument("data", type=Path, help="dataset directory")
    rgb.add_argument("--input-size", "--size", dest="size", type=options.pixels, default=224, metavar="PIXELS",
                     help="I3D input size: the model frame (short side 256, centre crop 224) area-downscaled to "
                     "PIXELS, or for sizes above 224 a larger crop at the same ratio; 224 is what I3D was trained on, "
                     "112 is about 4x faster (default: %(default)s; --size is the old name)")
    rgb.add_argument("--batch-size", type=options.int_range(1, 10_000), default=10,
                     help="clips per I3D batch, whole samples (default: 10)")
    speed = rgb.add_mutually_exclusive_group()
    speed.add_argument("--fast", dest="fast", action="store_true", default=True,
                       help="inference path: batch norm folded, channels-last, torch.compile (default)")
    speed.add_argument("--eager", dest="fast", action="store_false", help="the plain model (no compile warm-up)")
    rgb.add_argument("--no-compile", action="store_true", help="with --fast: skip torch.compile (no 30-s warm-up)")
    rgb.add_argument("--precision", choices=PRECISIONS, default="float32",
                     help="I3D arithmetic: float32, or int8 on a CPU with VNNI (quantised once per input size and "
                     "cached, 1-3 minutes; I3D about 3x faster than compiled float32, features within cosine 0.99). "
                     "Stored with the features: the two are never mixed (default: %(default)s)")
    rgb.add_argument("--sampling", choices=("dense", "uniform"),
                     help="frames of a clip: consecutive at 25 fps, or spread over the clip (default: the manifest's)")
    rgb.add_argument("--limit", type=options.non_negative_int,
                     help="stop after N samples (continue later by running again)")
    rgb.add_argument("--skip-bad", action="store_true",
                     help="zero-fill samples whose video is missing or corrupt and list them, instead of stopping")
    rgb.add_argument("--force", action="store_true", help="discard existing RGB features and progress, start over")
    rgb.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    rgb.add_argument("--quiet", action="store_true", help="no progress bar")
    rgb.set_defaults(handler=run_features_rgb)

    merge = features_subparsers.add_parser(
        "merge", help="merge the RGB feature shards of a data-parallel `features rgb` run into the split files",
        description="Merge DIR/.rgb_shards/rank*of*/ (written by `features rgb` under torchrun, or with RANK and "
        "WORLD_SIZE set by hand) into the split files, matching samples by uid; refuses if a sample is missing.",
    )
    merge.add_argument("data", type=Path, help="dataset directory")
    merge.set_defaults(handler=run_features_merge)

    dataset = subparsers.add_parser(
        "dataset-epic", help="build a dataset directory from EPIC-Kitchens-55 annotations and frames (RGB only)",
        description="Build a dataset directory from an EPIC-Kitchens split (the paper uses D1: D1_train / D1_test, "
        "CSV or the original pickles): one sample per action segment, cut into 5 equal parts, one clip each. "
        "Then run `myosight features rgb DIR` and `myosight train --model linear_rgb --data DIR`.",
    )
    dataset.add_argument("train", type=Path, help="training annotations (.csv, or .pkl with pandas installed)")
    dataset.add_argument("test", type=Path, help="test annotations (.csv or .pkl)")
    dataset.add_argument("--frames", type=Path, required=True,
                         help="folder holding <participant>/<video_id>/frame_##########.jpg (or <video_id>/ "
                         "frames folders, or <video_id>.MP4 files)")
    dataset.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    dataset.add_argument("--fps", type=options.fps, default=60.0,
                         help="rate the annotation frame numbers and the JPEG frames count (default: 60)")
    dataset.set_defaults(handler=run_dataset_epic)

    epic = subparsers.add_parser("epic", help="EPIC-Kitchens annotation tools")
    epic_commands = epic.add_subparsers(dest="epic_command", metavar="ACTION")
    convert = epic_commands.add_parser(
        "convert", help="convert a D1_*.pkl DataFrame pickle to CSV once (restricted unpickling, needs pandas)",
        description="Read an annotation pickle with an unpickler that admits only what rebuilding a pandas "
        "DataFrame needs, and write the same columns as CSV, the format `myosight dataset-epic` reads safely.",
    )
    convert.add_argument("pickle", type=Path, help="annotation pickle, e.g. D1_train.pkl")
    convert.add_argument("--out", type=Path, help="CSV to write (default: beside the pickle, .csv)")
    convert.set_defaults(handler=run_epic_convert)
    epic.set_defaults(handler=lambda args: epic.print_help() or 2)


def run_features_rgb(args: argparse.Namespace) -> int:
    from myosight.errors import ConfigError
    from myosight.training.rgb_features import extract_rgb_features

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 0:
        raise ConfigError("--limit must be 0 or more")
    from myosight.training.sharding import shard_from_env

    shard = shard_from_env()
    if shard.active:
        return _run_sharded(args, shard)
    result = extract_rgb_features(
        args.data, size=args.size, batch_size=args.batch_size, fast=args.fast, use_compile=not args.no_compile,
        sampling=args.sampling, limit=args.limit, skip_bad=args.skip_bad, force=args.force, device=args.device,
        progress=not args.quiet, log=print, precision=args.precision,
    )
    speed = (f" ({result.clips_per_second:.2f} clips/s overall, {result.steady_clips_per_second:.2f} after the first "
             "batch)") if result.clips else ""
    print(f"{args.data}: {result.samples} sample(s), {result.clips} clips this run{speed}; ", end="")
    if result.complete:
        print(f"`rgb` features complete in both splits at size {args.size} ({args.precision})")
    else:
        print("not finished yet: run the same command again to continue")
    if result.bad:
        print(f"{len(result.bad)} sample(s) had unreadable video and were zero-filled (listed in dataset.json)")
    return 0


def _run_sharded(args: argparse.Namespace, shard) -> int:
    """One rank of a data-parallel extraction (see training/sharding.py)."""
    from myosight.training.sharding import extract_shard, finish_sharded_run

    device = f"cuda:{shard.local_rank}" if args.device == "cuda" else args.device
    result = extract_shard(
        args.data, shard, size=args.size, batch_size=args.batch_size, fast=args.fast, use_compile=not args.no_compile,
        sampling=args.sampling, limit=args.limit, skip_bad=args.skip_bad, force=args.force, device=device,
        progress=not args.quiet and shard.rank == 0, log=print, precision=args.precision,
    )
    state = "complete" if result.complete else "not finished (run the same command again)"
    print(f"[{shard.name}] {result.samples} sample(s), {result.clips} clips this run; shard {state}", flush=True)
    if finish_sharded_run(args.data, shard):
        print(f"{args.data}: shards merged; `rgb` features complete in both splits at size {args.size}")
    elif "MASTER_ADDR" not in os.environ:
        print(f"when every rank has finished: myosight features merge {args.data}")
    return 0


def run_features_merge(args: argparse.Namespace) -> int:
    from myosight.training.sharding import merge_rgb_shards

    summary = merge_rgb_shards(args.data)
    print(f"{args.data}: merged {len(summary['shards'])} shard(s) ({', '.join(summary['shards'])}); `rgb` complete")
    return 0


def run_dataset_epic(args: argparse.Namespace) -> int:
    from myosight.training.epic_dataset import build_epic_dataset

    manifest = build_epic_dataset(args.train, args.test, args.frames, args.out, fps=args.fps)
    split = manifest["split"]
    print(f"{args.out}: {split['train']} train / {split['test']} test samples, {len(manifest['classes'])} classes; "
          f"next: myosight features rgb {args.out}")
    return 0


def run_epic_convert(args: argparse.Namespace) -> int:
    from myosight.data.epic_kitchens import convert_pickle_to_csv

    out = args.out or args.pickle.with_suffix(".csv")
    rows = convert_pickle_to_csv(args.pickle, out)
    print(f"wrote {out} ({rows} rows)")
    return 0
