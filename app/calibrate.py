"""`myosight calibrate`: a new person's guided recording and the model adapted to them, in the terminal.

The source runs as a child process (a synthetic person follows the prompts' label markers; with a camera and
armbands the person follows the terminal), or, with `--streams`, other programs already stream the armbands
and the camera (`myosight myo`, `myosight camera`: found by role, as the worker finds them). The calibration
(calibration/run.py) records and adapts, and this process shows the prompts: the activity in capitals, a
countdown before it, a bar during it, what comes next and the count. On a terminal, keys: p pauses (and
resumes), r redoes the last repetition, q aborts; Ctrl-C aborts too. Whatever was recorded is kept. `--from
SESSION...` skips the recording and adapts on sessions recorded before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

from myosight.arms import describe_arms
from myosight.calibration.plan import CalibrationPlan, PromptState, calibration_geometry
from myosight.calibration.run import CalibrationRun, CalibrationSetup, CalibrationStatus, require_own_folder
from myosight.calibration.top_up import TopUp, read_top_up
from myosight.capture.choice import StreamChoice, streams_from_args
from myosight.capture.clock import SourceClock
from myosight.capture.kinds import external_spec, kind_usage, source_kind, source_kinds
from myosight.capture.launch import source_arms, source_process, source_spec_from_args
from myosight.errors import ConfigError
from myosight.models.bundle_header import bundle_arms, read_bundle_geometry, read_bundle_metadata
from myosight.models.clips import resolve_geometry
from myosight.processes import ProcessGroup, SourceSpec, stop_on_signals

EXIT_FAILED = 1
EXIT_ABORTED = 130
SOURCE_READY_TIMEOUT_S = 60.0


def base_bundle(args: argparse.Namespace) -> Path:
    """--base, or the demo model (built on first use)."""
    if args.base is not None:
        return Path(args.base)
    from myosight.training.demo_model import demo_bundle

    return demo_bundle()


def plan_from_args(args: argparse.Namespace, base: Path) -> CalibrationPlan:
    classes = args.classes or read_bundle_metadata(base)["classes"]
    return CalibrationPlan(tuple(classes), repetitions=args.reps, seconds=args.seconds, rest_s=args.rest,
                           lead_in_s=args.lead_in)


def run_calibrate(args: argparse.Namespace) -> int:
    if args.update is not None:
        return _top_up(args)
    base = base_bundle(args)
    if args.from_sessions:
        return _adapt_only(args, base)
    streams = _recorded_streams(args)
    if args.out is None or (streams is None and args.source is None):
        raise ConfigError("name the source and the folder: myosight calibrate --source synthetic --out DIR (or "
                          "--streams to record armbands and a camera that other programs stream)")
    plan = plan_from_args(args, base)
    if args.headless and args.screenshot is not None:
        raise ConfigError("--screenshot saves the window: drop --headless")
    if not args.headless:
        return _in_the_viewer(args, base, plan, streams)
    return _record_and_adapt(*_headless_setup(args, base, plan, args.out, streams), json_output=args.json)


def _recorded_streams(args: argparse.Namespace) -> StreamChoice | None:
    """`--streams` (other programs' streams, by role), None where `--source` starts the source; ConfigError for
    both, or for a source no live person performs."""
    streams = streams_from_args(args)
    if streams is not None and args.source is not None:
        raise ConfigError("--source starts a source, --streams records the streams other programs publish: give one")
    follows_prompts = False
    if args.source is not None:
        kind = source_kind(args.source[0])
        if not kind.live_person:
            live = [k for k in source_kinds() if k.live_person]
            raise ConfigError(f"--source {kind.name}: calibration records a live person: {kind_usage(live)}")
        follows_prompts = kind.follows_prompts
    if args.speed != 1.0 and not follows_prompts:
        raise ConfigError("--speed is for a synthetic person only: a real person performs in real time")
    return streams


def _headless_setup(args: argparse.Namespace, base: Path, plan: CalibrationPlan, out: Path,
                    streams: StreamChoice | None,
                    top_up: TopUp | None = None) -> tuple[CalibrationSetup, SourceSpec | None]:
    """The recording the options describe: the source to start (a synthetic person follows the prompts; None
    with `streams`, the `--streams` of other programs) and the run."""
    input_size = top_up.input_size if top_up is not None else args.input_size
    geometry = calibration_geometry(read_bundle_geometry(base), input_size,
                                    top_up.window_s if top_up is not None else args.window)
    emg_only = top_up.emg_only if top_up is not None else args.emg_only
    clock = SourceClock.starting_now(args.speed)
    names = f"cal{os.getpid()}"
    setup = CalibrationSetup(out_dir=out, plan=plan, base=base, geometry=geometry, source=f"{names}src",
                             labels=names, clock=clock, subject=args.subject, emg_only=emg_only,
                             source_video=not emg_only, fine_tune=args.fine_tune, arms=args.arms, top_up=top_up)
    if streams is not None:
        return replace(setup, source=streams), None
    arms = top_up.arms if top_up is not None else None
    source = source_spec_from_args(args, f"{names}src", geometry.crop_size, model_arms=arms)
    source.video = not emg_only
    return setup, source_kind(source).with_prompts(source, labels=names, clock_origin=clock.origin,
                                                   speed=args.speed, classes=plan.classes, subject=args.subject)


def _record_and_adapt(setup: CalibrationSetup, source: SourceSpec | None, *, json_output: bool) -> int:
    group = ProcessGroup()
    # its label outlet first: a synthetic person looks for it when it starts; the source stops once the
    # recording is complete (the adaptation does not need it)
    run = CalibrationRun(setup, on_recorded=lambda: group.stop(["source"]))
    interrupted = False
    with stop_on_signals() as stop:
        try:
            if source is not None:
                group.start("source", source_process, asdict(source))
                if not group.wait_ready("source", SOURCE_READY_TIMEOUT_S):
                    print(f"myosight: the {source.kind} source did not start", file=sys.stderr)
                    return EXIT_FAILED
            else:
                print(f"myosight: recording {StreamChoice.of(setup.source).describe()}", file=sys.stderr)
            run.start()
            status = _show(run, stop)
            interrupted = stop.is_set()
        finally:
            run.shutdown()
            group.stop(["source"])
    return _report(status, setup, json_output, interrupted)


def _show(run: CalibrationRun, stop: threading.Event) -> CalibrationStatus:
    """Tick the run and show it until it ends; keys and signals reach the prompter."""
    live = sys.stdout.isatty()
    view = _TerminalView(live)
    with _keys(live) as keys:
        while not run.finished:
            if stop.is_set():
                run.abort()
            for key in keys.take():
                _key(run, key)
            view.show(run.tick())
            time.sleep(0.05)
    view.close()
    return run.status


def _key(run: CalibrationRun, key: str) -> None:
    prompt = run.status.prompt
    if key == "p":
        run.resume() if prompt is not None and prompt.phase == "paused" else run.pause()
    elif key == "r":
        run.redo()
    elif key == "q":
        run.abort()


def _report(status: CalibrationStatus, setup: CalibrationSetup, json_output: bool, interrupted: bool) -> int:
    result = {"stage": status.stage, "message": status.message, "out": str(setup.out_dir),
              "bundle": str(status.bundle) if status.bundle else None, **status.timings,
              "held_out_top1": (status.report or {}).get("held_out_top1"),
              "recording_seconds_planned": setup.plan.recording_seconds}
    if json_output:
        print(json.dumps(result, indent=2))
    else:
        print(f"myosight calibrate: {status.message}")
        if status.bundle is not None:
            print(f"  bundle: {status.bundle}\n  report: {setup.out_dir / 'report.json'} (confusion.png beside it)\n"
                  f"  use it: myosight run --model {status.bundle} --source ...")
    if status.stage == "done":
        return 0
    return EXIT_ABORTED if interrupted or status.stage == "aborted" else EXIT_FAILED


def _adapt_only(args: argparse.Namespace, base: Path) -> int:
    """`--from SESSION...`: adapt on sessions recorded before (RGB features from their videos)."""
    from myosight.calibration.adapt import AdaptOptions

    if args.out is None:
        raise ConfigError("name the folder for the adapted model: --out DIR")
    require_own_folder(args.out, args.subject)
    options = AdaptOptions(base=base, out_dir=args.out, classes=args.classes, emg_only=args.emg_only,
                           input_size=args.input_size, fine_tune=args.fine_tune, subject=args.subject,
                           window=args.window, arms=args.arms)
    return _adapt_and_say(args.from_sessions, options, args.json)


def _adapt_and_say(sessions: list[Path], options, json_output: bool) -> int:
    from myosight.calibration.adapt import adapt

    started = time.monotonic()
    result = adapt(sessions, options, progress=lambda text: print(f"calibrate: {text}", flush=True))
    summary = {"bundle": str(result.bundle), "held_out_top1": result.report.get("held_out_top1"),
               "adapt_wall_s": time.monotonic() - started, "sEMG_cnn": result.report.get("sEMG_cnn"),
               "sessions": len(sessions)}
    print(json.dumps(summary, indent=2) if json_output else f"myosight calibrate: bundle written to {result.bundle}")
    return 0


def _top_up(args: argparse.Namespace) -> int:
    """`--update BUNDLE`: one more repetition of every activity (recorded now, or `--from` sessions), adapted on
    together with the calibration's earlier recordings, into the bundle's folder (calibration/top_up.py)."""
    top_up = read_top_up(args.update, base=args.base)
    if args.out is not None or args.classes:
        raise ConfigError("--update keeps the calibration's folder and activities: drop --out and --classes")
    if args.from_sessions:
        return _adapt_and_say([*top_up.earlier, *args.from_sessions], top_up.options(), args.json)
    streams = _recorded_streams(args)
    if args.source is None and streams is None:
        raise ConfigError("name the source to record the top-up from (--source ... or --streams), or the sessions "
                          "(--from ...)")
    if not args.headless:
        raise ConfigError("a top-up records in the terminal for now: add --headless (the viewer's Calibration "
                          "menu has Top up)")
    plan = top_up.plan(args.seconds, args.rest, args.lead_in)
    setup, source = _headless_setup(args, top_up.base, plan, top_up.recording_folder(), streams, top_up)
    return _record_and_adapt(setup, source, json_output=args.json)


def _in_the_viewer(args: argparse.Namespace, base: Path, plan: CalibrationPlan, streams: StreamChoice | None) -> int:
    from myosight.gui.app import ViewerOptions, run_viewer
    from myosight.gui.controller import WorkerSettings

    if args.speed != 1.0:
        raise ConfigError("--speed is for --headless runs (the window runs in real time)")
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise ConfigError(f"--screenshot {args.screenshot}: the file name must end in .png")
    headless_only = [option for option, given in (("--window", args.window is not None),
                                                  ("--fine-tune", args.fine_tune != "auto"),
                                                  ("--arms", args.arms is not None), ("--json", args.json)) if given]
    if headless_only:
        raise ConfigError(f"{', '.join(headless_only)}: for --headless calibrations (the window adapts the live "
                          "model with its own window, arms and fine-tuning)")
    if streams is not None:
        source = external_spec(streams)
    else:
        source = source_spec_from_args(args, f"gui{os.getpid()}", resolve_geometry(
            read_bundle_geometry(base), args.input_size).crop_size)
    source.video = True  # the window shows the camera even when the model reads sEMG only (as `myosight gui`)
    streamed = source_arms(source) if streams is None else None  # other programs': their streams will tell
    missing = [arm for arm in bundle_arms(base) if arm not in (streamed or bundle_arms(base))]
    if missing:  # the base shows its live guesses with zeros there until the person's own model replaces it
        print(f"note: {base} reads {describe_arms(bundle_arms(base))}; until your model is ready its live predictions "
              f"have zeros for the {missing[0]} arm", file=sys.stderr)
    worker = WorkerSettings(bundle=str(base), emg_only=args.emg_only, input_size=args.input_size,
                            allow_missing_arm=bool(missing))
    return run_viewer(ViewerOptions(source=source, worker=worker, subject=args.subject,
                                    calibration=(plan, Path(args.out)), screenshot=args.screenshot,
                                    after_s=args.after))


# -- the terminal ---------------------------------------------------------------------------------------


class _TerminalView:
    """A live panel on a terminal; otherwise one line per change of what is asked."""

    def __init__(self, live: bool) -> None:
        self.live, self.last_line = live, ""
        self._live = None
        if live:
            from rich.live import Live

            self._live = Live(refresh_per_second=10, transient=False)
            self._live.start()

    def show(self, status: CalibrationStatus) -> None:
        if self._live is not None:
            self._live.update(_panel(status))
            return
        line = _line(status)
        if line != self.last_line:
            print(line, flush=True)
            self.last_line = line

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


def _line(status: CalibrationStatus) -> str:
    prompt = status.prompt
    if status.stage != "recording" or prompt is None:
        return f"[{status.stage}] {status.message}"
    if prompt.phase == "active" and prompt.current is not None:
        return f"[{prompt.done + 1}/{prompt.total}] NOW: {prompt.current.activity}"
    if prompt.phase == "rest" and prompt.current is not None:
        return f"[{prompt.done}/{prompt.total}] rest; next: {prompt.current.activity}"
    return f"[{prompt.done}/{prompt.total}] {prompt.phase}"


def _panel(status: CalibrationStatus):
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    prompt: PromptState | None = status.prompt
    grid = Table.grid(padding=(0, 1))
    if status.stage == "recording" and prompt is not None and prompt.current is not None:
        active = prompt.phase == "active"
        title = prompt.current.activity.upper()
        grid.add_row(Text("NOW" if active else ("PAUSED" if prompt.phase == "paused" else "NEXT"), style="bold"))
        grid.add_row(Text(title, style="bold white on dark_green" if active else "bold yellow"))
        if active:
            grid.add_row(ProgressBar(total=1.0, completed=prompt.progress, width=60))
        elif prompt.phase == "rest":
            grid.add_row(Text(f"starts in {prompt.remaining_s:.0f} s", style="yellow"))
        following = prompt.next.activity if prompt.next is not None else "-"
        grid.add_row(Text(f"then: {following}"))
        grid.add_row(Text(f"repetition {prompt.done + (1 if active else 0)} of {prompt.total}"))
        grid.add_row(Text("keys: p pause/resume · r redo the last · q abort", style="dim"))
    else:
        grid.add_row(Text(status.message or status.stage))
    return Panel(grid, title=f"myosight calibrate · {status.stage}")


class _KeyReader:
    """Keys typed on the terminal, read by a thread (cbreak mode: one key at a time, no Enter)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def take(self) -> list[str]:
        with self._lock:
            keys, self.keys = self.keys, []
        return keys

    def add(self, key: str) -> None:
        with self._lock:
            self.keys.append(key.lower())


@contextlib.contextmanager
def _keys(live: bool) -> Iterator[_KeyReader]:
    reader = _KeyReader()
    try:
        import termios
        import tty
    except ImportError:  # not a POSIX terminal: Ctrl-C still aborts
        live = False
    if not live or not sys.stdin.isatty():
        yield reader
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    done = threading.Event()

    def read() -> None:
        import select

        while not done.is_set():
            if select.select([sys.stdin], [], [], 0.1)[0]:
                reader.add(sys.stdin.read(1))

    thread = threading.Thread(target=read, name="myosight-keys", daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        done.set()
        thread.join(1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
