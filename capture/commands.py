"""CLI: `myosight replay`, `myosight myo`, `myosight camera`, `myosight camera-throughput`, `myosight lsl-emg` and
`myosight record`.

Each command publishes until Ctrl-C (or, for a file without --loop, its end). Imports of OpenCV and the
Myo libraries happen in the handlers, so `myosight --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path

from myosight import options
from myosight.capture.choice import add_choice_options
from myosight.capture.replay_control import DEFAULT_CONTROL_ADDRESS
from myosight.constants import I3D_CROP
from myosight.processes import ignore_file_size_signal, stop_on_signals

log = logging.getLogger(__name__)


def register_capture(subparsers: argparse._SubParsersAction) -> None:
    replay = subparsers.add_parser(
        "replay", help="publish a recorded session or XDF file as LSL streams (EMG, video, labels)",
        description="Replay an ActionSense or synthetic session (.hdf5), or a LabRecorder file (.xdf: its EMG, "
        "myosight video and marker streams), as LSL streams with the recorded relative timing: "
        "myosight-emg-left/right, myosight-video (model frames) and myosight-labels. With --control, a viewer "
        "can play, pause, seek and change the speed.",
    )
    replay.add_argument("session", type=Path, help="session .hdf5 file or LabRecorder .xdf file")
    replay.add_argument("--video", type=Path, help="world video (default: found beside the session)")
    replay.add_argument("--no-video", action="store_true", help="publish the EMG and labels only")
    replay.add_argument("--speed", type=options.speed, default=1.0,
                        help="replay speed (above 1: faster than real time; at most 1000)")
    replay.add_argument("--loop", action="store_true", help="start again at the end")
    replay.add_argument("--from", dest="start", type=options.non_negative_seconds, default=0.0,
                        help="skip this many seconds")
    replay.add_argument("--duration", type=options.seconds, help="replay only this many seconds")
    replay.add_argument("--frame-size", "--size", dest="frame_size", type=options.pixels, default=I3D_CROP,
                        metavar="PIXELS",
                        help="published frame size (default %(default)s: the model frame of the I3D weights; use "
                        "the model's frame size; --size is the old name)")
    replay.add_argument("--source", default="replay", help="LSL source name (stream source ids myosight-NAME-*)")
    replay.add_argument("--control", metavar="ADDRESS", nargs="?", const=DEFAULT_CONTROL_ADDRESS,
                        help="answer play/pause/seek/speed requests on this ZeroMQ address (no value: "
                        f"{DEFAULT_CONTROL_ADDRESS})")
    replay.add_argument("--left-stream", metavar="NAME", help="XDF: the left arm's EMG stream (name, source id or id)")
    replay.add_argument("--right-stream", metavar="NAME", help="XDF: the right arm's EMG stream")
    replay.set_defaults(handler=run_replay)

    myo = subparsers.add_parser(
        "myo",
        help="stream one or two Myo armbands as LSL EMG (myosight-emg-left/right)",
        description="Connect to Myo armbands and publish their EMG (8 channels, 200 Hz nominal) as the "
        "LSL streams myosight-emg-left and myosight-emg-right. Backend bleak uses the computer's Bluetooth "
        "(no dongle); pyomyo uses the BLED112 USB dongle (one per armband). Both need "
        "pip install -e '.[myo]' in the myosight checkout (bleak alone comes with `make install`). Check the "
        "armbands first: --scan lists them, --identify ADDR makes one vibrate. Reconnects on its own until Ctrl-C.",
    )
    myo.add_argument("--scan", action="store_true",
                     help="list the armbands in reach (address, name, signal, battery, firmware) and exit")
    myo.add_argument("--identify", metavar="ADDR", help="make this armband vibrate (to tell which forearm it is on) "
                     "and exit")
    myo.add_argument("--left", metavar="ADDR", nargs="?", const="auto", help="left armband address ('auto' or no "
                     "value: the first Myo found, said in a warning)")
    myo.add_argument("--right", metavar="ADDR", nargs="?", const="auto", help="right armband address (as --left)")
    myo.add_argument("--backend", choices=("bleak", "pyomyo"), default="bleak")
    myo.add_argument("--mode", choices=("raw", "filtered"), default="raw",
                     help="EMG mode: raw (unfiltered) or the armband's filtered EMG, both 200 Hz (default raw)")
    myo.add_argument("--left-port", help="pyomyo: serial port of the left arm's dongle (default: auto-detect)")
    myo.add_argument("--right-port", help="pyomyo: serial port of the right arm's dongle")
    myo.add_argument("--source", default="myo", help="LSL source name (stream source ids myosight-NAME-emg-left/right; "
                     "default myo); a second armband program needs its own")
    myo.set_defaults(handler=run_myo)

    camera = subparsers.add_parser(
        "camera",
        help="publish a camera or a video file as the LSL video stream (myosight-video)",
        description="Capture frames from a camera (by index) or play a video file as if it were one, resize "
        "and centre-crop them to SIZE x SIZE RGB (the model's input) and publish them as myosight-video.",
    )
    camera.add_argument("device", help="camera index (0, 1, ...) or a video file")
    camera.add_argument("--frame-size", "--size", dest="frame_size", type=options.pixels, default=I3D_CROP,
                        metavar="PIXELS",
                        help="published frame size: the centre crop, after resizing the short side at I3D's 256/224 "
                        "ratio (default %(default)s; use the model's frame size; --size is the old name)")
    camera.add_argument("--fps", type=options.fps, help="camera: rate to request; file: playback rate (default: own)")
    camera.add_argument("--loop", action="store_true", help="replay a video file from the start at its end")
    camera.add_argument("--no-frame-timeout", type=options.seconds, default=5.0,
                        help="seconds without a frame before a camera counts as failed (default 5)")
    camera.add_argument("--source", default="camera", help="LSL source name (stream source id myosight-NAME-video; "
                        "default camera); a second camera needs its own")
    camera.set_defaults(handler=run_camera)

    streams = subparsers.add_parser(
        "streams", help="list every LSL stream in reach: role, source, rate, channels, host, device",
        description="List the LSL streams on the network (as LabRecorder does): for myosight's, the role (EMG of "
        "each arm, video, labels) and the source that publishes it, the names a consumer takes with --source, "
        "--emg, --video and --labels; other programs' streams too (`myosight lsl-emg` relays an EMG one).",
    )
    streams.add_argument("--wait", type=options.seconds, default=1.0, metavar="SECONDS",
                         help="how long to listen for streams (default 1)")
    streams.add_argument("--json", action="store_true", help="print JSON instead of a table")
    streams.set_defaults(handler=run_streams)

    bench = subparsers.add_parser(
        "camera-throughput",
        help="measure whether raw video frames go through LSL on loopback without drops",
        description="Send synthetic SIZE x SIZE x 3 frames at FPS through an LSL outlet to an inlet in the same "
        "process for SECONDS and report frames sent, received and dropped, latency and CPU time.",
    )
    bench.add_argument("--seconds", type=options.seconds, default=10.0)
    bench.add_argument("--size", type=options.pixels, default=224)
    bench.add_argument("--fps", type=options.fps, default=30.0)
    bench.set_defaults(handler=run_camera_throughput)

    lsl = subparsers.add_parser(
        "lsl-emg",
        help="relay another program's LSL EMG stream as myosight-emg-<arm>",
        description="Find an EMG stream published by another program (by name, type and/or source id), check "
        "it has 8 channels and republish it as myosight-emg-<arm>, keeping its time stamps (moved onto this "
        "computer's clock).",
    )
    lsl.add_argument("--name", help="stream name to look for")
    lsl.add_argument("--type", default="EMG", help="stream type to look for (default EMG)")
    lsl.add_argument("--source-id", help="stream source id to look for")
    lsl.add_argument("--arm", choices=("left", "right"), required=True, help="which arm the stream is")
    lsl.add_argument("--channels", type=options.int_range(1, 256), default=8, help="expected channel count (default 8)")
    lsl.add_argument("--timeout", type=options.seconds, default=5.0, help="seconds to look for the stream (default 5)")
    lsl.set_defaults(handler=run_lsl_emg)

    record = subparsers.add_parser(
        "record",
        help="record a source's LSL streams into a session file (HDF5 + world video) and/or an XDF file",
        description="Record the LSL streams of one source or several (EMG of each arm, video, labels; the "
        "armbands from `myosight myo` and the camera from `myosight camera` are two sources) into an "
        "ActionSense-layout session in --out: the HDF5 file plus the world-camera mp4 beside it, read back by every "
        "myosight command. The markers of the labels role (--labels; --label-source is its old name) become the "
        "activity rows. The file is flushed every --flush-every seconds: a crash loses at most that, and `--recover` "
        "rebuilds the video after one (unfinished sessions in --out are recovered when recording starts). With "
        "--format xdf the streams go, as they came, into an XDF file as LabRecorder writes it (pyxdf, MNE, EEGLAB "
        "and `myosight replay` read it) instead; with --format both into both files. --stream adds other LSL "
        "streams. Ctrl-C stops.",
    )
    add_choice_options(record, what="record")
    record.add_argument("--out", type=Path, help="folder for the session (created if missing)")
    record.add_argument("--label-source", dest="labels", metavar="SOURCE", help=argparse.SUPPRESS)
    record.add_argument("--subject", default="S00", help="subject id written into the session (default S00)")
    record.add_argument("--duration", type=options.seconds, help="stop after this many seconds")
    record.add_argument("--flush-every", type=options.seconds, default=1.0, help="seconds between flushes (default 1)")
    record.add_argument("--classes", nargs="+", metavar="LABEL", help="the label list stored with the session")
    record.add_argument("--format", dest="formats", choices=("hdf5", "xdf", "both"), default="hdf5",
                        help="hdf5: the ActionSense session (+ mp4), what training reads; xdf: LabRecorder's "
                        "format (frames stored raw: large); both: the two from the same streams (default hdf5)")
    record.add_argument("--stream", dest="streams", action="append", default=[], metavar="NAME|FIELD=VALUE",
                        help="also record this LSL stream as it comes (another program's markers, an IMU, a second "
                        "camera): a name or source id, or name=, type=, source_id=, hostname=...; repeatable")
    record.add_argument("--recover", type=Path, metavar="PATH",
                        help="finish a recording that did not stop cleanly: rebuild a session's world video, or "
                        "write the missing end of an XDF file (.xdf.partial); a folder: every unfinished one")
    record.set_defaults(handler=run_record)


def run_replay(args: argparse.Namespace) -> int:
    replay = _replay_for(args)
    replay.open()
    control = f"; control on {replay.control_address}" if replay.control_address else ""
    print(f"replaying {args.session.name} ({replay.duration_s:.0f} s) as source '{args.source}' at {args.speed}x"
          f"{control}; Ctrl-C stops", flush=True)
    with stop_on_signals() as stop:
        stats = replay.run(stop)
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

    return SessionReplay(args.session, video=args.video, frame_size=args.frame_size, **common)


def run_myo(args: argparse.Namespace) -> int:
    from myosight.capture.myo import MyoSource
    from myosight.capture.streams import warn_if_source_name_taken
    from myosight.errors import ConfigError

    if args.scan or args.identify:
        return _check_armbands(args)
    arms = {arm: (None if value == "auto" else value) for arm, value in (("left", args.left), ("right", args.right))
            if value is not None}
    if not arms:
        raise ConfigError("name at least one armband: --left [ADDR] and/or --right [ADDR]")
    warn_if_source_name_taken(args.source)
    source = MyoSource(arms, backend=args.backend, emg_mode=args.mode,
                       ports={"left": args.left_port, "right": args.right_port}, source=args.source)
    with stop_on_signals() as stop:
        source.run(stop)
    return 0


def _check_armbands(args: argparse.Namespace) -> int:
    """`myo --scan` and `myo --identify ADDR` (bleak: the computer's Bluetooth)."""
    from myosight.capture.myo import identify_armband, scan_armbands
    from myosight.errors import ConfigError

    if args.backend != "bleak":
        raise ConfigError("--scan and --identify use the computer's Bluetooth (--backend bleak)")
    if args.identify:
        identify_armband(args.identify)
        print(f"armband {args.identify} vibrated: it is the one on the forearm that felt it")
        return 0
    armbands = scan_armbands()
    if not armbands:
        print("no Myo armband in reach (charged, awake, not connected to another program? tap it to wake it)")
        return 0
    for armband in armbands:
        signal = f"{armband.rssi_dbm} dBm" if armband.rssi_dbm is not None else "-"
        battery = f"battery {armband.battery_percent} %" if armband.battery_percent is not None else "battery -"
        print(f"{armband.address}  {armband.name}  signal {signal}  {battery}  firmware {armband.firmware or '-'}")
    print("tell them apart: myosight myo --identify ADDR makes one vibrate")
    return 0


def run_streams(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from myosight.capture.discovery import streams_in_reach

    rows = streams_in_reach(args.wait)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
        return 0
    if not rows:
        print(f"no LSL stream answered within {args.wait:g} s (across machines: see lsl_api.cfg in the docs)")
        return 0
    header = ("role", "source", "name", "type", "rate", "channels", "format", "host", "device")
    table = [header] + [(r.role, r.source, r.name, r.type, f"{r.rate_hz:g} Hz" if r.rate_hz else "irregular",
                         str(r.channels), r.format, r.host, r.device) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def run_camera(args: argparse.Namespace) -> int:
    from myosight.capture.camera import CameraSource, parse_device

    source = CameraSource(parse_device(args.device), size=args.frame_size, fps=args.fps, loop=args.loop,
                          no_frame_timeout_s=args.no_frame_timeout, source=args.source)
    with stop_on_signals() as stop:
        stats = source.run(stop)
    print(f"frames read {stats.read}, published {stats.published}, dropped {stats.dropped}, loops {stats.loops}")
    return 0


def run_camera_throughput(args: argparse.Namespace) -> int:
    from myosight.capture.camera import measure_video_throughput

    print(json.dumps(measure_video_throughput(args.seconds, args.size, args.fps), indent=2))
    return 0


def run_lsl_emg(args: argparse.Namespace) -> int:
    from myosight.capture.lsl_emg import EmgRelay, describe, find_emg_stream

    info = find_emg_stream(name=args.name, type=args.type, source_id=args.source_id, channels=args.channels,
                           timeout=args.timeout)
    print(f"relaying {describe(info)} as myosight-emg-{args.arm}")
    with stop_on_signals() as stop:
        stats = EmgRelay(info, args.arm).run(stop)
    print(f"relayed {stats.samples} samples in {stats.chunks} chunks")
    return 0


def run_record(args: argparse.Namespace) -> int:
    from myosight.capture.recorder_xdf import unfinished_xdf
    from myosight.capture.session_video import unfinished_sessions
    from myosight.errors import ConfigError

    if args.recover is not None:
        folder = args.recover.is_dir()
        sessions = unfinished_sessions(args.recover) + unfinished_xdf(args.recover) if folder else [args.recover]
        if not sessions:
            print(f"{args.recover}: no unfinished sessions; nothing to recover")
        _recover(sessions)
        return 0
    if args.out is None:
        raise ConfigError("name the folder: myosight record --out DIR (the streams: --source NAME, or by role with "
                          "--emg/--video/--labels; by default whichever myosight source streams each role)")
    if args.out.is_dir():
        _recover(unfinished_sessions(args.out) + unfinished_xdf(args.out), strict=False)
    return _record(args)


def _recover(sessions: list[Path], strict: bool = True) -> None:
    """Finish each unfinished recording; `strict` False (before a new recording): a file that cannot be
    recovered is reported in one line and left as it is, so it does not stop the new recording."""
    from myosight.capture.recorder_xdf import recover_xdf
    from myosight.capture.session_video import recover_session
    from myosight.errors import MyosightError

    for session in sessions:
        if session.name.lower().endswith((".xdf", ".xdf.partial")):
            try:
                path, counts, repaired = recover_xdf(session)
            except MyosightError as error:
                if strict:
                    raise
                print(f"myosight: warning: cannot recover {session}: {error}")
                continue
            done = "recovered" if repaired else "intact, nothing to recover:"
            print(f"{done} {path}: {len(counts)} streams, {sum(counts.values())} samples")
            continue
        recovery = recover_session(session)
        if recovery.rebuilt and recovery.video is not None:
            print(f"recovered {session}: world video {recovery.video.name} rebuilt from the recorded frames")
        elif recovery.video is not None:
            print(f"{session}: intact, nothing to recover (world video {recovery.video.name} holds every frame)")
        else:
            print(f"{session}: no video frames recorded; nothing to recover")


def _record(args: argparse.Namespace) -> int:
    from myosight.capture.choice import choice_from_args
    from myosight.capture.recorder import RecorderSpec, SessionRecorder
    from myosight.progress import ProgressBar

    if args.labels is not None and args.labels.lower() == "none":  # the old spelling of "the source's own labels"
        args.labels = None
    choice = choice_from_args(args)
    recorder = SessionRecorder(RecorderSpec(out_dir=str(args.out), streams=choice.to_dict(),
                                            resolve_timeout_s=args.wait,
                                            subject=args.subject, flush_every_s=args.flush_every,
                                            classes=args.classes, extra_streams=args.streams,
                                            formats=["hdf5", "xdf"] if args.formats == "both" else [args.formats]))
    ignore_file_size_signal()  # a file-size limit becomes a clear error, not a core dump
    path = recorder.open()
    files = [str(path)] if "hdf5" in recorder.spec.formats else []
    files += [recorder.stats.xdf] if recorder.stats.xdf else []
    print(f"recording {', '.join(recorder.stats.streams)} into {' and '.join(files)}; Ctrl-C stops")
    with stop_on_signals() as stop, ProgressBar(args.duration, desc="recording", unit="s") as bar:
        timer = threading.Timer(args.duration, stop.set) if args.duration else None
        if timer is not None:
            timer.start()
        started = time.monotonic()

        def show(stats) -> None:
            bar.set_postfix(stats.rows)
            bar.update(time.monotonic() - started - bar.n)

        recorder.on_flush = show
        try:
            recorder.run(stop)
        finally:
            if timer is not None:
                timer.cancel()
            stats = recorder.close()
    also = [f"world video {stats.video}"] if stats.video else []
    also += [f"XDF {stats.xdf}"] if stats.xdf and stats.xdf != stats.session else []
    print(f"wrote {stats.session}: {stats.rows} rows" + "".join(f"; {item}" for item in also))
    return 0


register = register_capture
