"""CLI: `myosight gui`, the desktop viewer on its own (sources, models and recording chosen in the window)."""

from __future__ import annotations

import argparse
from pathlib import Path

from myosight.realtime.messages import DEFAULT_ADDRESS


def register(subparsers: argparse._SubParsersAction) -> None:
    gui = subparsers.add_parser(
        "gui", help="the desktop viewer: live sEMG, spectrograms, camera, predictions, attention, health",
        description="Open the desktop viewer. With --source (and --model) it starts that source and a worker "
        "as `myosight run` does; without, choose them in the window. --connect views a worker that runs "
        "elsewhere (nothing is started). --screenshot saves a PNG of the window --after seconds after the "
        "first prediction, then quits (how the README's screenshot is made).",
    )
    gui.add_argument("--model", type=Path, help="model bundle (.safetensors)")
    gui.add_argument("--demo", action="store_true",
                     help="the demo model and its held-out synthetic session, replayed in a loop")
    gui.add_argument("--source", nargs="+", metavar="KIND [FILE]",
                     help="replay FILE | synthetic | camera+myo | camera+lsl-emg")
    gui.add_argument("--speed", type=float, default=1.0, help="replay speed")
    gui.add_argument("--loop", action="store_true", help="loop the replay")
    gui.add_argument("--camera", default="0", help="camera index or video file (camera sources)")
    gui.add_argument("--myo-left", help="left armband address (camera+myo)")
    gui.add_argument("--myo-right", help="right armband address (camera+myo)")
    gui.add_argument("--lsl-emg-left", metavar="NAME", help="LSL EMG stream of the left arm (camera+lsl-emg)")
    gui.add_argument("--lsl-emg-right", metavar="NAME", help="LSL EMG stream of the right arm (camera+lsl-emg)")
    gui.add_argument("--emg-only", action="store_true", help="sEMG only: no I3D (the camera is still shown)")
    gui.add_argument("--address", help="ZeroMQ address the started worker publishes on (default: a free port)")
    gui.add_argument("--hop", type=float, default=1.0, help="seconds between predictions")
    gui.add_argument("--size", type=int, default=None, help="I3D input size (default: the bundle's)")
    gui.add_argument("--compile", action="store_true", help="compile I3D (faster after 10-30 s of compiling)")
    gui.add_argument("--connect", metavar="ADDRESS",
                     help=f"view the worker publishing at ADDRESS (e.g. {DEFAULT_ADDRESS}); starts nothing")
    gui.add_argument("--streams", metavar="SOURCE",
                     help="with --connect: also show the LSL streams of this source name (traces, camera)")
    gui.add_argument("--record-dir", type=Path, default=Path("recordings"), help="where recordings go")
    gui.add_argument("--subject", default="S00", help="subject id written into recordings")
    gui.add_argument("--duration", type=float, help="close the window after this many seconds")
    gui.add_argument("--jsonl", type=Path, help="log every prediction to this file")
    gui.add_argument("--screenshot", type=Path, metavar="PNG", help="save the window as PNG, then quit")
    gui.add_argument("--after", type=float, default=10.0, metavar="N",
                     help="seconds after the first prediction to take the screenshot (default 10)")
    gui.set_defaults(handler=run_gui)


def _check(args: argparse.Namespace) -> None:
    from myosight.errors import ConfigError

    if args.connect and (args.source or args.model or args.demo):
        raise ConfigError("--connect views a worker that runs elsewhere and starts nothing: "
                          "drop --source / --model / --demo, or drop --connect")
    if args.streams and not args.connect:
        raise ConfigError("--streams goes with --connect (a started source's streams are shown anyway)")
    if args.demo and args.model:
        raise ConfigError("--demo brings its own model; drop --model")
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise ConfigError(f"--screenshot {args.screenshot}: the file name must end in .png")


def _options(args: argparse.Namespace):
    import os

    from myosight.gui.app import ViewerOptions
    from myosight.gui.controller import WorkerSettings
    from myosight.realtime.commands import _source_spec
    from myosight.realtime.run import SourceSpec, check_bundle

    bundle = str(args.model) if args.model else None
    source = None
    if args.demo:
        from myosight.training.demo_model import demo_bundle, demo_session

        bundle = str(demo_bundle())
        if not args.source:
            source = SourceSpec(kind="replay", session=str(demo_session()), speed=args.speed, loop=True,
                                source=f"gui{os.getpid()}")
    if bundle:
        check_bundle(bundle)
    if args.source:
        source = _source_spec(args, f"gui{os.getpid()}")
        source.video = True  # the window shows the camera even when the model reads sEMG only
    worker = WorkerSettings(bundle=bundle, emg_only=args.emg_only, hop_s=args.hop, video_size=args.size,
                            use_compile=args.compile)
    return ViewerOptions(source=source, worker=worker, address=args.address, connect=args.connect,
                         streams=args.streams, duration_s=args.duration, screenshot=args.screenshot,
                         after_s=args.after, jsonl=args.jsonl, record_dir=args.record_dir, subject=args.subject)


def run_gui(args: argparse.Namespace) -> int:
    from myosight.gui.app import run_viewer

    _check(args)
    return run_viewer(_options(args))
