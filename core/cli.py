"""The `myosight` command line: one entry point, one subcommand per task.

Each part of the project contributes its subcommands through a `register(subparsers)` function in its
`commands` module; the heavy imports (torch, Qt, OpenCV) happen inside the handlers so that `--help` is
instant.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from myosight import __version__
from myosight.errors import ConfigError, MyosightError, install_hint
from myosight.interrupts import Stopped, exit_code, raise_if_stopped, stop_raises
from myosight.paths import FULL_ERRNOS, output_problem

#: Modules that add subcommands, in the order they appear in `myosight --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "myosight.data.commands",
    "myosight.models.commands",
    "myosight.training.commands",
    "myosight.app.commands",
    "myosight.realtime.commands",
    "myosight.capture.commands",
    "myosight.gui.commands",
    "myosight.bench.commands",
)

DESCRIPTION = """\
myosight recognises kitchen actions live from a head-mounted camera and one or two Myo sEMG armbands,
fusing frozen I3D video features with sEMG spectrogram-CNN features.

Typical first steps:
  myosight demo                           the live demo in the desktop viewer (--headless: a terminal table)
  myosight synth --out sessions/          write synthetic sessions (HDF5 + world video)
  myosight info sessions/<file>.hdf5      streams, measured rates, gaps and labelled actions of a session
  myosight dataset sessions/*.hdf5 --out data/ && myosight features emg data/ && myosight features rgb data/
  myosight report --data data/            train and evaluate the paper's heads (on the live sEMG pipeline
                                          unless the dataset was built with --preset paper)
  myosight run --model BUNDLE --source replay <file>.hdf5
  myosight calibrate --source synthetic --out me/ --headless   a model adapted to a new person (--update: next day)
  myosight import myoarmband PATH --out people/   other people's recordings as sessions
  myosight record --out sessions/ --labels gui    record the armbands and camera (labels from the viewer)
"""


#: Optional packages and the extra that installs each (pyproject.toml): a command that needs one that is not
#: installed (the lean `capture` install has no torch) says so in one line instead of a traceback.
EXTRA_OF = {"torch": "models", "librosa": "models", "safetensors": "models", "matplotlib": "models",
            "PySide6": "gui", "pyqtgraph": "gui", "pyxdf": "xdf", "bleak": "myo", "pyomyo": "myo", "pandas": "epic"}


class UsageError(SystemExit):
    """A command line the parser refused (a bad option value, a missing argument): exit status 1."""


class CommandParser(argparse.ArgumentParser):
    """argparse, but a refused command line is one line on stderr and exit status 1, like any other error the
    user can cause: `myosight demo: error: argument --speed: expected ...`. The usage text would bury the line
    that names the option; `myosight CMD --help` shows it. Subcommand parsers inherit this class."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        raise UsageError(1)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="myosight",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"myosight {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        return int(error.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        check_outputs(args)
        with stop_raises():
            code = int(args.handler(args) or 0)
            raise_if_stopped()  # a stop that a library swallowed is still a stop
            return code
    except MyosightError as error:
        print(f"myosight: error: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if package not in EXTRA_OF:
            raise
        print(f"myosight: error: `myosight {args.command}` needs {package}, which is not installed here: "
              f"{install_hint(EXTRA_OF[package])}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        # every output half-written when the stop came was removed on the way out (myosight.paths)
        print(f"myosight: {f'stopped by {interrupt}' if isinstance(interrupt, Stopped) else 'interrupted'}",
              file=sys.stderr)
        return exit_code(interrupt)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS or args.verbose:
            raise
        where = error.filename or "a file"
        print(f"myosight: error: cannot write {where}: {error.strerror}; nothing partial was kept"
              if error.errno in FULL_ERRNOS else f"myosight: error: {where}: {error.strerror}", file=sys.stderr)
        return 1


#: Options that name what a command writes: checked before the command starts (`check_outputs`).
OUTPUT_OPTIONS = ("out", "output", "jsonl", "save", "screenshot", "record_dir", "work_dir")
#: Errors of the machine's state, not bugs (a full disk, a file-size limit, a read-only or forbidden folder, a name
#: too long): one line instead of a traceback.
WRITE_ERRNOS = FULL_ERRNOS | {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG}


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output that cannot be written (a read-only folder, a name too long, a file in the way) before
    the command starts its work, naming the option."""
    for name in OUTPUT_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, Path) and (problem := output_problem(value)):
            raise ConfigError(f"--{name.replace('_', '-')} {value}: {problem}")
