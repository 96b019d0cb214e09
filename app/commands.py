"""CLI: `myosight run`, `myosight demo` and `myosight view`: what a user launches to see live predictions."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from myosight import options
from myosight.capture.choice import add_streams_options
from myosight.capture.launch import add_source_options
from myosight.realtime.commands import add_decision_options, add_worker_options
from myosight.realtime.messages import DEFAULT_ADDRESS


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="start sources, worker and viewer together",
        description="Start a source (replay FILE, synthetic, camera+myo, camera+lsl-emg), the worker and a "
        "viewer; Ctrl-C stops everything. --headless shows a live table in the terminal and --jsonl logs every "
        "prediction. The exit code says what failed: 3 a source, 4 the worker.",
    )
    run.add_argument("--model", type=Path, required=True, help="model bundle (.safetensors)")
    add_source_options(run)
    add_worker_options(run)
    _add_viewer_options(run)
    run.set_defaults(handler=run_run)

    demo = subparsers.add_parser(
        "demo", help="the live demo on the demo model and a synthetic person (no hardware)",
        description="Run the demo model (built on first use from synthetic sessions, then cached) on a "
        "new synthetic session of a training subject (never trained on), replayed in a loop as LSL streams, or on a "
        "live synthetic person (--live-person).",
    )
    demo.add_argument("--replay", type=Path, help="replay this session instead of the held-out synthetic one")
    demo.add_argument("--live-person", action="store_true",
                      help="a live synthetic person instead of a replay (docs/user-guide/calibration.md: known limits)")
    demo.add_argument("--speed", type=options.speed, default=1.0, help="replay speed (default 1: real time)")
    demo.add_argument("--emg-only", action="store_true", help="sEMG only (no I3D)")
    add_decision_options(demo)
    _add_viewer_options(demo)
    demo.set_defaults(handler=run_demo)

    calibrate = subparsers.add_parser(
        "calibrate", help="record a new person (guided prompts) and adapt a model to them",
        description="A guided recording of a new person: each activity is prompted REPS times for SECONDS, with "
        "rests between; the recording is an ActionSense session (DIR/recordings). RGB features are computed "
        "while it records; when the last repetition ends the base model (default: the demo model) is adapted: "
        "sEMG normalisation refitted on the person, the head trained for the chosen activities (new ones too), "
        "the sEMG CNN fine-tuned where that scores better when one repetition is left out. Writes "
        "DIR/bundle.safetensors, DIR/report.json and DIR/confusion.png. Without --headless the desktop viewer "
        "shows the prompts; with it, the terminal does (keys p, r, q). Running it again into the same DIR "
        "records only the missing repetitions. --from adapts on sessions recorded before. --streams records "
        "armbands and a camera that other programs stream (`myosight myo`, `myosight camera`) instead of starting "
        "a source.",
    )
    add_source_options(calibrate, required=False)
    add_streams_options(calibrate, "record")
    calibrate.add_argument("--out", type=Path, help="the calibration's folder (created; resumed when it exists)")
    calibrate.add_argument("--classes", nargs="+", metavar="ACTIVITY",
                           help="the activities to record (default: the base model's classes; new ones allowed)")
    calibrate.add_argument("--reps", type=options.int_range(1, 100), default=2,
                           help="repetitions of each activity, 1 to 100 (default 2)")
    calibrate.add_argument("--seconds", type=options.float_range(0, 3600, open_max=True), default=6.0,
                           help="seconds per repetition, below 3600 (default 6)")
    calibrate.add_argument("--rest", type=options.float_range(0, 3600, open_min=False, open_max=True), default=3.0,
                           help="seconds of rest between repetitions (default 3)")
    calibrate.add_argument("--lead-in", type=options.float_range(0, 3600, open_min=False, open_max=True), default=3.0,
                           help="countdown before the first (default 3)")
    calibrate.add_argument("--base", type=Path, help="the model to adapt (default: the demo model)")
    calibrate.add_argument("--emg-only", action="store_true", help="sEMG only: no video, no I3D")
    calibrate.add_argument("--input-size", "--size", dest="input_size", type=options.pixels, metavar="PIXELS",
                           help="I3D input size (default: the base model's)")
    calibrate.add_argument("--fine-tune", choices=("auto", "yes", "no", "scratch"), default="auto",
                           help="the sEMG CNN: auto fine-tunes the base's and keeps that when it scores better "
                           "(default); yes, no; scratch trains one on this person alone")
    calibrate.add_argument("--window", type=options.float_range(0, 60), metavar="SECONDS",
                           help="seconds each decision reads, a whole number of the base model's clips (default: "
                           "the base's; 1 for hand gestures held a few seconds)")
    calibrate.add_argument("--from", dest="from_sessions", nargs="+", type=Path, metavar="SESSION",
                           help="adapt on these recorded sessions instead of recording (RGB from their videos)")
    calibrate.add_argument("--update", type=Path, metavar="BUNDLE",
                           help="top up a calibrated model for a new session of its person: record one repetition "
                           "of each activity (or take --from sessions) and adapt on the earlier recordings and the "
                           "new together; the bundle is replaced (the old one kept in its folder's history/)")
    calibrate.add_argument("--headless", action="store_true", help="prompts in the terminal, not the window")
    calibrate.add_argument("--json", action="store_true", help="print the outcome as JSON")
    calibrate.add_argument("--screenshot", type=Path, metavar="PNG",
                           help="save the window as PNG while a prompt is shown, then quit (the recording is kept)")
    calibrate.add_argument("--after", type=options.non_negative_seconds, default=3.0, metavar="N",
                           help="with --screenshot: seconds into the first prompt (default 3)")
    calibrate.set_defaults(handler=run_calibrate)

    view = subparsers.add_parser(
        "view", help="show the predictions of a running worker (this or another computer)",
        description="Subscribe to a worker's results: `--headless` shows a live table in the terminal (and logs "
        "every prediction with --jsonl); without it the desktop viewer opens (`myosight gui --connect`). "
        "Across machines, start the worker with `--address tcp://0.0.0.0:5557` and connect with "
        "`--connect tcp://WORKER_HOST:5557`.",
    )
    view.add_argument("--connect", default=DEFAULT_ADDRESS, metavar="ADDRESS",
                      help=f"the worker's ZeroMQ address (default {DEFAULT_ADDRESS})")
    _add_viewer_options(view)
    view.set_defaults(handler=run_view)


def _add_viewer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--headless", action="store_true", help="terminal table instead of the desktop viewer")
    parser.add_argument("--duration", type=options.seconds, help="stop after this many seconds")
    parser.add_argument("--jsonl", type=Path, help="log every prediction to this file")


#: How long a replay whose every window is decided waits for the worker's inlets (a busy machine starts slowly).
EVERY_WINDOW_CONSUMER_WAIT_S = 60.0


def run_spec(args: argparse.Namespace, bundle: Path, source_name: str):
    """The run the options describe, with the clip geometry resolved once from the bundle and --input-size:
    the sources publish its frames, the worker computes its inputs."""
    from myosight.capture.kinds import with_settings
    from myosight.capture.launch import require_model_arms, require_model_video, source_spec_from_args
    from myosight.models.bundle_header import bundle_arms, bundle_reads_video, read_bundle_geometry
    from myosight.models.clips import resolve_geometry
    from myosight.models.device import check_device
    from myosight.processes import RunSpec

    check_device(args.device, precision=args.precision)
    geometry = resolve_geometry(read_bundle_geometry(bundle), args.input_size)
    arms = bundle_arms(bundle)
    sources = source_spec_from_args(args, source_name, geometry.crop_size, model_arms=arms)
    require_model_arms(arms, sources, allow_missing_arm=args.allow_missing_arm, model=str(bundle))
    require_model_video(not args.emg_only and bundle_reads_video(bundle), sources, model=str(bundle))
    if args.every_window and "consumer_wait_s" in sources.settings:  # every window of a replay: it starts once
        sources = with_settings(sources, consumer_wait_s=EVERY_WINDOW_CONSUMER_WAIT_S)  # the worker listens
    return RunSpec(bundle=str(bundle), sources=sources, address=args.address, emg_only=args.emg_only,
                   hop_s=args.hop, input_size=args.input_size, geometry=geometry.to_dict(),
                   duration_s=args.duration, use_compile=args.compile, device=args.device,
                   precision=args.precision, allow_missing_arm=args.allow_missing_arm,
                   every_window=args.every_window)


def run_run(args: argparse.Namespace) -> int:
    from myosight.app.launch import run_live
    from myosight.realtime.messages import check_bindable

    spec = run_spec(args, args.model, f"run{os.getpid()}")
    check_bindable(spec.address, "run --address")  # before any child starts for nothing
    return run_live(spec, headless=args.headless, jsonl=args.jsonl)


def run_demo(args: argparse.Namespace) -> int:
    from myosight.app.launch import run_live
    from myosight.capture.launch import require_model_arms, spec_of_kind
    from myosight.models.bundle_header import bundle_arms, read_bundle_geometry
    from myosight.models.device import check_device
    from myosight.processes import RunSpec
    from myosight.realtime.messages import check_bindable
    from myosight.training.demo_model import HOLDOUT_SUBJECT, demo_bundle, demo_session

    device = check_device(args.device, precision=args.precision)  # before a first-use model build
    bundle = demo_bundle()
    geometry = read_bundle_geometry(bundle)
    name = f"demo{os.getpid()}"
    if args.live_person:
        source = spec_of_kind("synthetic", video=not args.emg_only, subject=HOLDOUT_SUBJECT, source=name,
                              frame_size=geometry.crop_size)
    else:
        session = args.replay or demo_session()
        source = spec_of_kind("replay", session=str(session), speed=args.speed, loop=True,
                              video=not args.emg_only, source=name, frame_size=geometry.crop_size)
        require_model_arms(bundle_arms(bundle), source, allow_missing_arm=False, model="the demo model")
    spec = RunSpec(bundle=str(bundle), sources=source, emg_only=args.emg_only, duration_s=args.duration,
                   geometry=geometry.to_dict(), hop_s=args.hop, every_window=args.every_window,
                   device=device, precision=args.precision)
    check_bindable(spec.address, "demo: its result address")
    return run_live(spec, headless=args.headless, jsonl=args.jsonl)


def run_calibrate(args: argparse.Namespace) -> int:
    from myosight.app.calibrate import run_calibrate as calibrate

    return calibrate(args)


def run_view(args: argparse.Namespace) -> int:
    from myosight.realtime.messages import check_connectable

    check_connectable(args.connect, "view --connect")
    if not args.headless:
        from myosight.gui.app import ViewerOptions, run_viewer

        return run_viewer(ViewerOptions(connect=args.connect, jsonl=args.jsonl, duration_s=args.duration))
    import sys

    from myosight.processes import stop_on_signals
    from myosight.realtime.headless import HeadlessViewer

    viewer = HeadlessViewer(args.connect, args.jsonl)
    print(f"viewer: subscribed to {args.connect}; Ctrl-C stops", flush=True)
    try:
        with stop_on_signals() as stop:
            viewer.run(stop, args.duration, live=sys.stdout.isatty())
    finally:
        viewer.close()
    accuracy = f", running accuracy {100 * viewer.accuracy:.1f} %" if viewer.accuracy is not None else ""
    print(f"viewer: {viewer.predictions} predictions{accuracy}; worker: {viewer.worker_status()}")
    return 0
