"""Running `myosight features rgb` / `dataset-epic` / `epic convert` from tests.

Uses the real `myosight` entry point once `training.commands` registers the RGB commands, and an equivalent
parser built from `register_rgb` until then, so the tests exercise the same handlers either way.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from myosight.cli import build_parser, main
from myosight.errors import MyosightError
from myosight.training.rgb_commands import register_rgb


def _registered() -> bool:
    try:
        build_parser().parse_args(["features", "rgb", "x"])
    except SystemExit:
        return False
    return True


def run_cli(argv: Sequence[str]) -> int:
    """Exit status of `myosight ARGV` (errors the user can cause give 1, as in `myosight.cli.main`)."""
    if _registered():
        return main(list(argv))
    parser = argparse.ArgumentParser(prog="myosight")
    subparsers = parser.add_subparsers(dest="command")
    kinds = subparsers.add_parser("features").add_subparsers(dest="kind")
    register_rgb(kinds, subparsers)
    args = parser.parse_args(list(argv))
    try:
        return int(args.handler(args) or 0)
    except MyosightError as error:
        print(f"myosight: error: {error}")
        return 1
