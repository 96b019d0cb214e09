"""CLI: `myosight gui`, the desktop viewer on its own (sources, models and recording chosen in the window)."""

from __future__ import annotations

import argparse
from pathlib import Path

from myosight import options
from myosight.capture.choice import add_streams_options, streams_from_args
from myosight.capture.launch import add_source_options
from myosight.realtime.commands import add_worker_options
from myosight.realtime.messages import DEFAULT_ADDRESS


def register(subparsers: argparse._SubParsersAction) -> None:
    gui = subparsers.add_parser(
        "gui", help="the desktop viewer: live sEMG, spectrograms, camera, predictions, attention, health",
        description="Open the desktop viewer. With --source (and --model) it starts that source and a worker "
        "as `myosight run` does; without, choose them in the window. --connect views a worker that runs "
        "elsewhere (nothing is started). --screenshot saves a PNG of the window --after seconds after the "
        "first prediction, then quits (how the documentation's screenshot is made).",
    )
    gui.add_argument("--model", type=Path, help="model bundle (.safetensors)")
    gui.add_argument("--demo", action="store_true",
                     help="the demo model and its held-out synthetic session, replayed in a loop")
    add_source_options(gui, required=False)
    add_worker_options(gui, address=False)
    gui.add_argument("--address", help="ZeroMQ address the started worker publishes on (default: a free port)")
    gui.add_argument("--connect", metavar="ADDRESS",
                     help=f"view the worker publishing at ADDRESS (e.g. {DEFAULT_ADDRESS}); starts nothing")
    add_streams_options(gui, "with --connect: also show (traces, camera)")
    gui.add_argument("--record-dir", type=Path, default=Path("recordings"), help="where recordings go")
    gui.add_argument("--duration", type=options.seconds, help="close the window after this many seconds")
    gui.add_argument("--jsonl", type=Path, help="log every prediction to this file")
    gui.add_argument("--screenshot", type=Path, metavar="PNG", help="save the window as PNG, then quit")
    gui.add_argument("--after", type=options.non_negative_seconds, default=10.0, metavar="N",
                     help="seconds after the first prediction to take the screenshot (default 10)")
    gui.set_defaults(handler=run_gui)


def _check(args: argparse.Namespace) -> None:
    from myosight.errors import ConfigError

    if args.connect and (args.source or args.model or args.demo):
        raise ConfigError("--connect views a worker that runs elsewhere and starts nothing: "
                          "drop --source / --model / --demo, or drop --connect")
    if args.streams is not None and not args.connect:
        raise ConfigError("--streams goes with --connect (a started source's streams are shown anyway)")
    if args.demo and args.model:
        raise ConfigError("--demo brings its own model; drop --model")
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise ConfigError(f"--screenshot {args.screenshot}: the file name must end in .png")


def _options(args: argparse.Namespace):
    import os

    from myosight.capture.launch import require_model_arms, require_model_video, source_spec_from_args, spec_of_kind
    from myosight.gui.app import ViewerOptions
    from myosight.gui.controller import WorkerSettings
    from myosight.models.bundle_header import bundle_arms, bundle_reads_video
    from myosight.models.device import check_device

    bundle = str(args.model) if args.model else None
    source = None
    if args.demo:
        from myosight.training.demo_model import demo_bundle, demo_session

        bundle = str(demo_bundle())
        if not args.source:
            source = spec_of_kind("replay", session=str(demo_session()), speed=args.speed, loop=True,
                                  source=f"gui{os.getpid()}")
    worker = WorkerSettings(bundle=bundle, emg_only=args.emg_only, hop_s=args.hop, input_size=args.input_size,
                            use_compile=args.compile, device=check_device(args.device, precision=args.precision),
                            precision=args.precision, allow_missing_arm=args.allow_missing_arm)
    geometry = worker.geometry()  # checks the bundle and the input size before anything starts
    if args.source:
        arms = bundle_arms(bundle) if bundle else None
        source = source_spec_from_args(args, f"gui{os.getpid()}", geometry.crop_size, model_arms=arms)
        source.video = True  # the window shows the camera even when the model reads sEMG only
        if arms is not None and bundle is not None:
            require_model_arms(arms, source, allow_missing_arm=args.allow_missing_arm, model=bundle)
            require_model_video(not args.emg_only and bundle_reads_video(bundle), source, model=bundle)
    return ViewerOptions(source=source, worker=worker, address=args.address, connect=args.connect,
                         streams=streams_from_args(args), duration_s=args.duration, screenshot=args.screenshot,
                         after_s=args.after, jsonl=args.jsonl, record_dir=args.record_dir, subject=args.subject)


def run_gui(args: argparse.Namespace) -> int:
    from myosight.gui.app import run_viewer

    _check(args)
    return run_viewer(_options(args))
