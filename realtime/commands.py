"""CLI: `myosight replay`, `myosight worker`, `myosight run`, `myosight demo` (and `view`, `soak`: ops_commands)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from myosight.capture.replay_control import DEFAULT_CONTROL_ADDRESS
from myosight.realtime.messages import DEFAULT_ADDRESS


def register(subparsers: argparse._SubParsersAction) -> None:
    replay = subparsers.add_parser(
        "replay", help="publish a recorded session or XDF file as LSL streams (EMG, video, labels)",
        description="Replay an ActionSense or synthetic session (.hdf5), or a LabRecorder file (.xdf: its EMG, "
        "myosight video and marker streams), as LSL streams with the recorded relative timing: "
        "myosight-emg-left/right, myosight-video (frames at the model's size) and myosight-labels. With "
        "--control, a viewer can play, pause, seek and change the speed.",
    )
    replay.add_argument("session", type=Path, help="session .hdf5 file or LabRecorder .xdf file")
    replay.add_argument("--video", type=Path, help="world video (default: found beside the session)")
    replay.add_argument("--no-video", action="store_true", help="publish the EMG and labels only")
    replay.add_argument("--speed", type=float, default=1.0, help="replay speed (above 1: faster than real time)")
    replay.add_argument("--loop", action="store_true", help="start again at the end")
    replay.add_argument("--from", dest="start", type=float, default=0.0, help="skip this many seconds")
    replay.add_argument("--duration", type=float, help="replay only this many seconds")
    replay.add_argument("--size", type=int, default=224, help="frame size published (default 224)")
    replay.add_argument("--source", default="replay", help="LSL source name (stream source ids myosight-NAME-*)")
    replay.add_argument("--control", metavar="ADDRESS", nargs="?", const=DEFAULT_CONTROL_ADDRESS,
                        help="answer play/pause/seek/speed requests on this ZeroMQ address (no value: "
                        f"{DEFAULT_CONTROL_ADDRESS})")
    replay.add_argument("--left-stream", metavar="NAME", help="XDF: the left arm's EMG stream (name, source id or id)")
    replay.add_argument("--right-stream", metavar="NAME", help="XDF: the right arm's EMG stream")
    replay.set_defaults(handler=run_replay)

    worker = subparsers.add_parser(
        "worker", help="run the live worker: LSL streams in, predictions out on ZeroMQ",
        description="Subscribe to a source's LSL streams, predict every new window and publish results on "
        f"a ZeroMQ PUB socket (default {DEFAULT_ADDRESS}; binds 127.0.0.1 unless --address says otherwise).",
    )
    worker.add_argument("--model", type=Path, required=True, help="model bundle (.safetensors)")
    worker.add_argument("--source", default="live", help="LSL source name to subscribe to")
    _add_worker_options(worker)
    worker.set_defaults(handler=run_worker)

    run = subparsers.add_parser(
        "run", help="start sources, worker and viewer together",
        description="Start a source (replay FILE, synthetic, camera+myo, camera+lsl-emg), the worker and a "
        "viewer; Ctrl-C stops everything. --headless shows a live table in the terminal and --jsonl logs every "
        "prediction. The exit code says what failed: 3 a source, 4 the worker.",
    )
    run.add_argument("--model", type=Path, required=True, help="model bundle (.safetensors)")
    _add_source_options(run)
    _add_worker_options(run)
    run.set_defaults(handler=run_run)

    demo = subparsers.add_parser(
        "demo", help="the live demo on the demo model and a synthetic person (no hardware)",
        description="Run the demo model (built on first use from synthetic sessions, then cached) on a "
        "new synthetic session of a training subject (never trained on), replayed in a loop as LSL streams, or on a "
        "live synthetic person (--live-person).",
    )
    demo.add_argument("--replay", type=Path, help="replay this session instead of the held-out synthetic one")
    demo.add_argument("--live-person", action="store_true",
                      help="a live synthetic person instead of a replay (see the README's known limits)")
    demo.add_argument("--speed", type=float, default=1.0)
    demo.add_argument("--headless", action="store_true", help="terminal table instead of the desktop viewer")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--jsonl", type=Path, help="log every prediction to this file")
    demo.add_argument("--emg-only", action="store_true", help="sEMG only (no I3D)")
    demo.set_defaults(handler=run_demo)

    from myosight.realtime.ops_commands import register_ops

    register_ops(subparsers)  # `myosight view`, `myosight soak`


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", nargs="+", required=True, metavar="KIND [FILE]",
                        help="replay FILE | synthetic | camera+myo | camera+lsl-emg")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed")
    parser.add_argument("--loop", action="store_true", help="loop the replay")
    parser.add_argument("--camera", default="0", help="camera index or video file (camera sources)")
    parser.add_argument("--myo-left", help="left armband address (camera+myo)")
    parser.add_argument("--myo-right", help="right armband address (camera+myo)")
    parser.add_argument("--lsl-emg-left", metavar="NAME", help="LSL EMG stream of the left arm (camera+lsl-emg)")
    parser.add_argument("--lsl-emg-right", metavar="NAME", help="existing LSL EMG stream of the right arm")
    parser.add_argument("--headless", action="store_true", help="terminal table instead of the desktop viewer")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--jsonl", type=Path, help="log every prediction to this file")


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="ZeroMQ address to publish results on")
    parser.add_argument("--emg-only", action="store_true", help="sEMG only: no video, no I3D")
    parser.add_argument("--hop", type=float, default=1.0, help="seconds between predictions (default: one clip)")
    parser.add_argument("--compile", action="store_true",
                        help="compile I3D with torch.compile (about 1.8x faster; 10-30 s of compiling at start)")
    parser.add_argument("--size", type=int, default=None,
                        help="I3D input size (default: the bundle's; 112 is the reduced-resolution mode)")


def run_replay(args: argparse.Namespace) -> int:
    replay = _replay_for(args)
    replay.open()
    control = f"; control on {replay.control_address}" if replay.control_address else ""
    print(f"replaying {args.session.name} ({replay.duration_s:.0f} s) as source '{args.source}' at {args.speed}x"
          f"{control}; Ctrl-C stops", flush=True)
    stop = threading.Event()
    try:
        stats = replay.run(stop)
    except KeyboardInterrupt:
        stop.set()
        stats = replay.stats
    print(f"sent {stats.emg_samples} EMG samples, {stats.frames} frames, {stats.markers} labels")
    return 0


def _replay_for(args: argparse.Namespace):
    """A session replay, or an XDF replay for a .xdf file."""
    common = {"speed": args.speed, "loop": args.loop, "source": args.source, "control_address": args.control,
              "include_video": not args.no_video, "start_offset_s": args.start, "max_seconds": args.duration}
    if args.session.suffix.lower() == ".xdf":
        from myosight.capture.xdf_replay import XdfReplay

        return XdfReplay(args.session, left=args.left_stream, right=args.right_stream, **common)
    from myosight.capture.replay import SessionReplay

    return SessionReplay(args.session, video=args.video, video_size=args.size, **common)


def run_worker(args: argparse.Namespace) -> int:
    from myosight.models.bundle import load_bundle
    from myosight.realtime.messages import ResultPublisher
    from myosight.realtime.worker import Worker, WorkerConfig

    publisher = ResultPublisher(args.address)
    worker = Worker(load_bundle(args.model), WorkerConfig(source=args.source, hop_s=args.hop, emg_only=args.emg_only,
                                                          video_size=args.size, use_compile=args.compile), publisher)
    print(f"worker: predictions on {publisher.address}; Ctrl-C stops")
    stop = threading.Event()
    try:
        worker.run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        worker.close()
        publisher.close()
    return 0


def _source_spec(args: argparse.Namespace, source_name: str):
    from myosight.errors import ConfigError
    from myosight.realtime.run import SourceSpec

    kind, *rest = args.source
    if kind == "replay" and len(rest) != 1:
        raise ConfigError("--source replay needs the session file: --source replay FILE.hdf5")
    if kind not in ("replay", "synthetic", "camera+myo", "camera+lsl-emg"):
        raise ConfigError(f"unknown --source {kind!r}: replay FILE | synthetic | camera+myo | camera+lsl-emg")
    return SourceSpec(kind=kind, session=rest[0] if rest else None, speed=args.speed, loop=args.loop,
                      video=not args.emg_only, video_size=224, camera=args.camera, myo_left=args.myo_left,
                      myo_right=args.myo_right, lsl_emg_left=args.lsl_emg_left,
                      lsl_emg_right=args.lsl_emg_right, source=source_name)


def run_run(args: argparse.Namespace) -> int:
    import os

    from myosight.realtime.run import RunSpec, check_bundle, run

    check_bundle(str(args.model))
    spec = RunSpec(bundle=str(args.model), sources=_source_spec(args, f"run{os.getpid()}"), address=args.address,
                   emg_only=args.emg_only, hop_s=args.hop, video_size=args.size, duration_s=args.duration,
                   use_compile=args.compile)
    return run(spec, headless=args.headless, jsonl=args.jsonl)


def run_demo(args: argparse.Namespace) -> int:
    import os

    from myosight.realtime.run import RunSpec, SourceSpec, run
    from myosight.training.demo_model import demo_bundle, demo_session

    bundle = demo_bundle()
    if args.live_person:
        source = SourceSpec(kind="synthetic", video=not args.emg_only, subject="S07", source=f"demo{os.getpid()}")
    else:
        session = args.replay or demo_session()
        source = SourceSpec(kind="replay", session=str(session), speed=args.speed, loop=True,
                            video=not args.emg_only, source=f"demo{os.getpid()}")
    spec = RunSpec(bundle=str(bundle), sources=source, emg_only=args.emg_only, duration_s=args.duration)
    return run(spec, headless=args.headless, jsonl=args.jsonl)
