"""CLI: `myosight view` (a viewer on any worker's address) and `myosight soak` (hours of replay through the worker).

Registered from `myosight.realtime.commands.register`; heavy imports stay in the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from myosight.realtime.messages import DEFAULT_ADDRESS


def register_ops(subparsers: argparse._SubParsersAction) -> None:
    view = subparsers.add_parser(
        "view", help="show the predictions of a running worker (this or another computer)",
        description="Subscribe to a worker's results: `--headless` shows a live table in the terminal (and logs "
        "every prediction with --jsonl); without it the desktop viewer opens (`myosight gui --connect`). "
        "Across machines, start the worker with `--address tcp://0.0.0.0:5557` and connect with "
        "`--connect tcp://WORKER_HOST:5557`.",
    )
    view.add_argument("--connect", default=DEFAULT_ADDRESS, metavar="ADDRESS",
                      help=f"the worker's ZeroMQ address (default {DEFAULT_ADDRESS})")
    view.add_argument("--headless", action="store_true", help="terminal table instead of the desktop viewer")
    view.add_argument("--jsonl", type=Path, help="log every prediction to this file")
    view.add_argument("--duration", type=float, help="stop after this many seconds")
    view.set_defaults(handler=run_view)

    soak = subparsers.add_parser(
        "soak", help="replay a session in a loop for hours of recording through the worker; check memory, "
        "latency and that every window is accounted for",
        description="Replay a session (default: a new synthetic one) in a loop, faster than real time, through "
        "the worker and a headless viewer, for the equivalent of --hours of recording. Reports the worker's "
        "memory (RSS) after the first prediction, after the warm-up and at the end, latency in the first and last "
        "quarter, and "
        "whether every window of the replayed span was predicted or reported skipped; writes the summary as "
        "JSON. Exit code 1 when memory grew past the bound or windows are unaccounted for.",
    )
    soak.add_argument("--hours", type=float, default=2.0, help="hours of recording to replay (default 2)")
    soak.add_argument("--speed", type=float, default=20.0, help="replay speed (default 20)")
    soak.add_argument("--emg-only", action="store_true", help="sEMG only: no video, no I3D")
    soak.add_argument("--model", type=Path, help="model bundle (default: the demo model)")
    soak.add_argument("--session", type=Path, help="session to loop (default: a new synthetic session)")
    soak.add_argument("--hop", type=float, default=1.0, help="seconds between predictions (default 1)")
    soak.add_argument("--max-rss-growth", type=float, default=50.0, metavar="MB",
                      help="memory growth allowed after the warm-up (the first tenth of the run) (default 50 MB)")
    soak.add_argument("--out", type=Path, help="JSON summary file (default soak-<date>-<time>.json)")
    soak.set_defaults(handler=run_soak)


def run_view(args: argparse.Namespace) -> int:
    if not args.headless:
        return _desktop_viewer(args.connect)
    from myosight.capture.commands import stop_on_interrupt
    from myosight.realtime.headless import HeadlessViewer

    viewer = HeadlessViewer(args.connect, args.jsonl)
    print(f"viewer: subscribed to {args.connect}; Ctrl-C stops", flush=True)
    try:
        with stop_on_interrupt() as stop:
            viewer.run(stop, args.duration, live=sys.stdout.isatty())
    finally:
        viewer.close()
    accuracy = f", running accuracy {100 * viewer.accuracy:.1f} %" if viewer.accuracy is not None else ""
    print(f"viewer: {viewer.predictions} predictions{accuracy}; worker: {viewer.worker_status()}")
    return 0


def _desktop_viewer(address: str) -> int:
    args = desktop_viewer_args(address)
    return int(args.handler(args) or 0)


def desktop_viewer_args(address: str) -> argparse.Namespace:
    """The parsed `myosight gui --connect ADDRESS` where the desktop viewer is installed; otherwise say so."""
    from myosight.cli import build_parser
    from myosight.errors import ConfigError

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "gui" not in commands:
        raise ConfigError("the desktop viewer (myosight.gui) is not available in this installation; use "
                          "`myosight view --headless`, or install the gui extra (pip install 'myosight[gui]')")
    return parser.parse_args(["gui", "--connect", address])


def run_soak(args: argparse.Namespace) -> int:
    from myosight.realtime.soak import run_soak_command

    return run_soak_command(args)
