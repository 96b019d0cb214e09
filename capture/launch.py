"""A source as a child process: what `myosight run`, `demo` and the desktop viewer start to publish streams.

`source_process` is the child's target (see `myosight.processes`): it publishes the source a `SourceSpec`
names (a replay, a synthetic person, or camera and armbands) until it is told to stop or a replay ends.
The command-line options that choose a source are defined here too, once, for every command that
starts one.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from myosight import options
from myosight.arms import BOTH_ARMS, arm_layout, arms_option, describe_arms
from myosight.errors import ConfigError
from myosight.processes import SourceSpec

log = logging.getLogger(__name__)

SOURCE_KINDS = ("replay", "synthetic", "camera+myo", "camera+lsl-emg")


def source_process(fields: dict, stop: threading.Event, ready: Any) -> None:
    """Child target: publish the chosen source until `stop` (a replay ends by itself)."""
    spec = SourceSpec(**fields)
    if spec.kind == "replay":
        replay = open_replay(spec)
        replay.open()
        ready.set()
        replay.wait_for_consumers(spec.consumer_wait_s, stop)
        replay.run(stop)
    elif spec.kind == "synthetic":
        from myosight.capture.clock import SourceClock
        from myosight.capture.synthetic import SyntheticSource
        from myosight.data.activities import ACTIVITIES

        origin = spec.clock_origin if spec.clock_origin is not None else SourceClock.starting_now().origin
        source = SyntheticSource(classes=tuple(spec.classes or ACTIVITIES), video=spec.video,
                                 frame_size=spec.frame_size, subject=spec.subject, source=spec.source,
                                 prompts=spec.prompts, clock=SourceClock(origin, spec.speed), arms=tuple(spec.arms))
        ready.set()
        source.run(stop)
    elif spec.kind in ("camera+myo", "camera+lsl-emg"):
        hardware_sources(spec, stop, ready)
    else:
        raise ConfigError(f"unknown source kind {spec.kind!r}")


def open_replay(spec: SourceSpec):
    """A LabRecorder replay for a .xdf file, a session replay otherwise."""
    if spec.session is None:
        raise ConfigError("a replay needs a session file")
    if str(spec.session).lower().endswith(".xdf"):
        from myosight.capture.xdf_replay import XdfReplay

        return XdfReplay(spec.session, speed=spec.speed, loop=spec.loop, source=spec.source,
                         control_address=spec.control_address, include_video=spec.video,
                         left=spec.lsl_emg_left, right=spec.lsl_emg_right)
    from myosight.capture.replay import SessionReplay

    return SessionReplay(spec.session, speed=spec.speed, loop=spec.loop, include_video=spec.video,
                         frame_size=spec.frame_size, source=spec.source, control_address=spec.control_address)


def hardware_sources(spec: SourceSpec, stop: threading.Event, ready: Any) -> None:
    """Camera and armbands in threads of this process. A camera that fails (unplugged, no frames) is logged and
    the armbands go on, so the worker continues with sEMG only; the source stops when an EMG thread ends or the
    camera's file ends, and an EMG failure is raised (the process's exit code then says the source failed)."""
    from myosight.capture.camera import CameraSource, parse_device
    from myosight.capture.streams import warn_if_source_name_taken

    warn_if_source_name_taken(spec.source)
    camera = CameraSource(parse_device(spec.camera), size=spec.frame_size, source=spec.source)
    failures: dict[str, BaseException] = {}
    camera_thread = _source_thread("camera", camera.run, stop, failures)
    emg_threads = []
    if spec.kind == "camera+myo":
        from myosight.capture.myo import MyoSource

        addresses = {"left": spec.myo_left, "right": spec.myo_right}
        myo = MyoSource({arm: addresses[arm] for arm in spec.arms}, backend=spec.myo_backend, source=spec.source)
        emg_threads.append(_source_thread("myo", myo.run, stop, failures))
    else:
        from myosight.capture.lsl_emg import EmgRelay, find_emg_stream

        for arm, name in (("left", spec.lsl_emg_left), ("right", spec.lsl_emg_right)):
            if name:
                relay = EmgRelay(find_emg_stream(name=name), arm, source=spec.source)
                relay.open()
                emg_threads.append(_source_thread(f"emg-{arm}", relay.run, stop, failures))
    for thread in [camera_thread, *emg_threads]:
        thread.start()
    ready.set()
    while not stop.is_set() and all(t.is_alive() for t in emg_threads) and (camera_thread.is_alive()
                                                                            or "camera" in failures):
        stop.wait(0.2)
    stop.set()
    emg_failures = [error for name, error in failures.items() if name != "camera"]
    if emg_failures:
        raise emg_failures[0]


def _source_thread(name: str, run_source, stop: threading.Event, failures: dict) -> threading.Thread:
    """A thread running one source until `stop`; an exception is logged and kept in `failures[name]`."""

    def target() -> None:
        try:
            run_source(stop)
        except Exception as error:
            failures[name] = error
            then = "the worker goes on with sEMG only" if name == "camera" else "stopping the sources"
            log.error("%s stopped: %s; %s", name, error, then)

    return threading.Thread(target=target, name=f"source-{name}", daemon=True)


# -- command-line options ----------------------------------------------------------------------------------


def add_source_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The options that choose a source (`myosight run`, `myosight gui`)."""
    parser.add_argument("--source", nargs="+", required=required, metavar="KIND [FILE]",
                        help="replay FILE | synthetic | camera+myo | camera+lsl-emg")
    parser.add_argument("--speed", type=options.speed, default=1.0, help="replay speed")
    parser.add_argument("--loop", action="store_true", help="loop the replay")
    parser.add_argument("--camera", default="0", help="camera index or video file (camera sources)")
    parser.add_argument("--myo-left", help="left armband address (camera+myo)")
    parser.add_argument("--myo-right", help="right armband address (camera+myo)")
    parser.add_argument("--backend", choices=("bleak", "pyomyo"), default="bleak",
                        help="camera+myo: bleak, the computer's Bluetooth (default), or pyomyo, a BLED112 dongle per "
                        "armband")
    parser.add_argument("--lsl-emg-left", metavar="NAME", help="LSL EMG stream of the left arm (camera+lsl-emg); "
                        "replay FILE.xdf: the file's stream of the left arm, when the file does not say")
    parser.add_argument("--lsl-emg-right", metavar="NAME", help="LSL EMG stream of the right arm (as --lsl-emg-left)")
    parser.add_argument("--arms", type=arms_option, metavar="left|right|both",
                        help="the armbands worn: synthetic, the person's; camera+myo without addresses, the ones "
                        "to connect (default: the model's, else both; with --myo-left/--myo-right, the ones named)")
    parser.add_argument("--subject", default="S00", help="subject id written into recordings; synthetic: the "
                        "synthetic person to render (S00-S09)")


def source_spec_from_args(args: argparse.Namespace, source_name: str, frame_size: int,
                          model_arms: tuple[str, ...] | None = None) -> SourceSpec:
    """The source the options name; its frames are published at `frame_size` (the resolved geometry's). The arms
    of a synthetic person or of armbands found by scanning are `--arms`, else the model's (`model_arms`), else
    both; armbands named by address are the arms named."""
    kind, *rest = args.source
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"unknown --source {kind!r}: replay FILE | synthetic | camera+myo | camera+lsl-emg")
    if kind == "replay" and len(rest) != 1:
        raise ConfigError("--source replay needs the session file: --source replay FILE.hdf5")
    if kind != "replay" and rest:
        raise ConfigError(f"--source {kind} takes no file (got {' '.join(rest)})")
    if kind == "replay":
        _check_replay_file(rest[0], args.lsl_emg_left, args.lsl_emg_right)
    named = tuple(arm for arm, address in (("left", args.myo_left), ("right", args.myo_right)) if address)
    arms = getattr(args, "arms", None) or model_arms or BOTH_ARMS
    if kind == "camera+myo" and named:
        if getattr(args, "arms", None) and tuple(args.arms) != named:
            raise ConfigError(f"--arms {','.join(args.arms)} but armbands are named for {describe_arms(named)}")
        arms = named
    return SourceSpec(kind=kind, session=rest[0] if rest else None, speed=args.speed, loop=args.loop,
                      video=not getattr(args, "emg_only", False), frame_size=frame_size, camera=args.camera,
                      myo_left=args.myo_left, myo_right=args.myo_right, myo_backend=getattr(args, "backend", "bleak"),
                      lsl_emg_left=args.lsl_emg_left,
                      lsl_emg_right=args.lsl_emg_right, subject=args.subject, source=source_name, arms=tuple(arms))


def source_arms(spec: SourceSpec) -> tuple[str, ...] | None:
    """The armbands a source will stream, known before it starts (None: only its streams will tell)."""
    if spec.kind == "replay" and spec.session is not None:
        if str(spec.session).lower().endswith(".xdf"):
            from pathlib import Path

            from myosight.capture.xdf_replay import choose_arms, scan_streams

            chosen = choose_arms(scan_streams(spec.session).streams, Path(spec.session), left=spec.lsl_emg_left,
                                 right=spec.lsl_emg_right)
            return arm_layout(chosen)
        from myosight.data.actionsense import ActionSenseSession

        with ActionSenseSession(spec.session) as session:
            return session.arms
    if spec.kind in ("synthetic", "camera+myo"):
        return arm_layout(spec.arms)
    if spec.kind == "camera+lsl-emg":
        return tuple(arm for arm, name in (("left", spec.lsl_emg_left), ("right", spec.lsl_emg_right)) if name)
    return None


def require_model_arms(model_arms: tuple[str, ...], spec: SourceSpec, *, allow_missing_arm: bool,
                       model: str = "the model") -> None:
    """Refuse, in one line and before anything starts, a model whose arm the source will not stream (unless the
    user allowed it: zeros there). A source streaming an arm the model does not read is fine (it is not used)."""
    streamed = source_arms(spec)
    if not streamed:  # unknown until the streams appear, or none at all: the source itself says what is wrong
        return
    absent = [arm for arm in model_arms if arm not in streamed]
    if absent and not allow_missing_arm:
        what = f"the replay of {spec.session}" if spec.kind == "replay" else f"the {spec.kind} source"
        raise ConfigError(
            f"{model} reads {describe_arms(model_arms)} but {what} streams {describe_arms(streamed)}: use a model of "
            f"{describe_arms(streamed)} (myosight calibrate makes one), or --allow-missing-arm to run this one with "
            f"zeros in place of the {absent[0]} arm")


def _check_replay_file(path: str, left: str | None = None, right: str | None = None) -> None:
    """Open the file to replay here, so that a bad path (or, for XDF, arms it cannot tell) is one error line
    before any process starts."""
    from pathlib import Path

    from myosight.errors import SessionFormatError
    from myosight.paths import not_a_file_reason

    if str(path).lower().endswith(".xdf"):
        if not Path(path).is_file():
            raise SessionFormatError(path, not_a_file_reason(path))
        from myosight.capture.xdf_replay import choose_arms, scan_streams

        choose_arms(scan_streams(path).streams, Path(path), left=left, right=right)
        return
    from myosight.data.actionsense import ActionSenseSession

    ActionSenseSession(path).close()
