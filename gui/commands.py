"""CLI: `myosight gui`, the desktop viewer on its own (sources, models and recording chosen in the window)."""

from __future__ import annotations

import argparse
from pathlib import Path

from myosight import options
from myosight.capture.launch import add_source_options
from myosight.realtime.commands import add_worker_options
from myosight.realtime.messages import DEFAULT_ADDRESS

#: `--streams` given without a source name: each role from whichever myosight source streams it.
ANY_SOURCE = ""


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
    gui.add_argument("--streams", metavar="SOURCE", nargs="?", const=ANY_SOURCE,
                     help="with --connect: also show the LSL streams of this source name (traces, camera); with no "
                     "name, whichever myosight source streams each role (`myosight streams` lists them)")
    gui.add_argument("--emg", metavar="SOURCE", dest="emg_streams", help="with --streams: the source of both arms' EMG")
    gui.add_argument("--emg-left", metavar="SOURCE", dest="emg_left_stream", help="with --streams: the left arm's")
    gui.add_argument("--emg-right", metavar="SOURCE", dest="emg_right_stream", help="with --streams: the right arm's")
    gui.add_argument("--video", metavar="SOURCE", dest="video_stream", help="with --streams: the video's source")
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
    roles = [args.emg_streams, args.emg_left_stream, args.emg_right_stream, args.video_stream]
    if any(roles) and args.streams is None:
        raise ConfigError("--emg, --emg-left, --emg-right and --video choose the streams --streams shows: add "
                          "--streams (with --connect)")
    if args.demo and args.model:
        raise ConfigError("--demo brings its own model; drop --model")
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise ConfigError(f"--screenshot {args.screenshot}: the file name must end in .png")


def _stream_choice(args: argparse.Namespace):
    """The streams `--streams` (and the role options) ask the viewer to show, None when it was not given."""
    from myosight.capture.choice import StreamChoice, check_source_name

    if args.streams is None:
        return None
    source = check_source_name(args.streams, "--streams") if args.streams != ANY_SOURCE else None
    return StreamChoice.from_options(source, emg=args.emg_streams, emg_left=args.emg_left_stream,
                                     emg_right=args.emg_right_stream, video=args.video_stream)


def _options(args: argparse.Namespace):
    import os

    from myosight.capture.launch import require_model_arms, source_spec_from_args, spec_of_kind
    from myosight.gui.app import ViewerOptions
    from myosight.gui.controller import WorkerSettings
    from myosight.models.bundle_header import bundle_arms
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
    return ViewerOptions(source=source, worker=worker, address=args.address, connect=args.connect,
                         streams=_stream_choice(args), duration_s=args.duration, screenshot=args.screenshot,
                         after_s=args.after, jsonl=args.jsonl, record_dir=args.record_dir, subject=args.subject)


def run_gui(args: argparse.Namespace) -> int:
    from myosight.gui.app import run_viewer

    _check(args)
    return run_viewer(_options(args))
