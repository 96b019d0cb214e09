"""Careless option values are refused at the command line, before anything starts.

Every numeric option of every command, given 0, a negative number, nan, inf or an absurd size where that
is invalid, must end `myosight.cli.main` with exit status 1 and one line on stderr that names the option:
no traceback, no handler run, no file written. Valid edge values (a seed of 0, --frames 0, --limit 0) and
every default must still pass. The handlers are replaced by a recorder, so a value the parser wrongly lets
through shows up as a handler call instead of starting a source, a worker or a training run.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from myosight import cli, options

POSITIVE = ("0", "-1", "nan", "inf", "-inf", "1e12")
NON_NEGATIVE = ("-1", "-0.5", "nan", "inf", "1e12")
COUNT = ("0", "-1", "1.5", "nan", "inf", "99999999999")
INDEX = ("-1", "1.5", "nan", "inf", "99999999999")
PIXELS = (*COUNT, "8", "100000")
FRACTION = ("0", "1", "-0.5", "1.5", "nan", "inf")
SEED = ("-1", "1.5", "nan", "inf", "99999999999")
VIDEO_SIZE = ("0x0", "-1x48", "64", "nanxnan", "infx64", "100000x100000", "64x48x3")
ACTION_SECONDS = (*POSITIVE, "5,2", "0,3", "nan,4", "1,2,3")

TRAIN = (("--epochs", COUNT), ("--lr", POSITIVE), ("--batch-size", COUNT), ("--patience", INDEX))
WORKER = (("--hop", POSITIVE), ("--input-size", PIXELS))

#: command -> its numeric options and the values each must refuse.
TABLE: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "run": (("--speed", POSITIVE), *WORKER, ("--duration", POSITIVE)),
    "demo": (("--speed", POSITIVE), ("--hop", POSITIVE), ("--duration", POSITIVE)),
    "calibrate": (("--speed", POSITIVE), ("--reps", COUNT), ("--seconds", POSITIVE), ("--rest", NON_NEGATIVE),
                  ("--lead-in", NON_NEGATIVE), ("--input-size", PIXELS), ("--after", NON_NEGATIVE),
                  ("--window", POSITIVE)),
    "view": (("--duration", POSITIVE),),
    "worker": (*WORKER, ("--wait", POSITIVE)),
    "streams": (("--wait", POSITIVE),),
    "replay": (("--speed", POSITIVE), ("--from", NON_NEGATIVE), ("--duration", POSITIVE),
               ("--frame-size", PIXELS)),
    "camera": (("--frame-size", PIXELS), ("--fps", POSITIVE), ("--no-frame-timeout", POSITIVE)),
    "camera-throughput": (("--seconds", POSITIVE), ("--size", PIXELS), ("--fps", POSITIVE)),
    "lsl-emg": (("--channels", COUNT), ("--timeout", POSITIVE)),
    "record": (("--duration", POSITIVE), ("--flush-every", POSITIVE), ("--wait", POSITIVE)),
    "gui": (("--speed", POSITIVE), *WORKER, ("--duration", POSITIVE), ("--after", NON_NEGATIVE)),
    "bench": (("--repeat", COUNT), ("--seconds", POSITIVE), ("--input-size", PIXELS), ("--speed", POSITIVE)),
    "soak": (("--hours", POSITIVE), ("--speed", POSITIVE), ("--hop", POSITIVE), ("--max-rss-growth", NON_NEGATIVE)),
    "synth": (("--actions-per-class", COUNT), ("--seconds", ACTION_SECONDS), ("--rest", NON_NEGATIVE),
              ("--num-classes", (*COUNT, "21")), ("--seed", SEED), ("--video-size", VIDEO_SIZE),
              ("--fps", POSITIVE), ("--emg-rate", POSITIVE)),
    "subactions": (("--length", POSITIVE), ("--train-fraction", FRACTION), ("--seed", SEED)),
    "dataset": (("--seed", SEED), ("--train-fraction", FRACTION), ("--window", POSITIVE), ("--clips", COUNT),
                ("--step", POSITIVE)),
    "import libemg-csv": (("--rate", POSITIVE), ("--gap", NON_NEGATIVE)),
    "features emg": (("--cross-fit", COUNT), *TRAIN, ("--seed", SEED)),
    "features rgb": (("--input-size", PIXELS), ("--batch-size", COUNT), ("--limit", INDEX)),
    "dataset-epic": (("--fps", POSITIVE),),
    "train": (*TRAIN, ("--seed", SEED), ("--iterations", COUNT)),
    "report": (("--seeds", SEED), *TRAIN, ("--iterations", COUNT)),
    "crossval": (("--folds", (*COUNT, "1")), ("--seeds", SEED), *TRAIN),
    "emg spectrograms": (("--sample", INDEX),),
    "i3d classify": (("--top", (*COUNT, "401")), ("--frames", INDEX)),
}

#: The rest of a complete command line (after the option under test, so that option is parsed first).
REQUIRED: dict[str, tuple[str, ...]] = {
    "run": ("--model", "m.safetensors", "--source", "synthetic"),
    "worker": ("--model", "m.safetensors"),
    "replay": ("s.hdf5",),
    "camera": ("0",),
    "lsl-emg": ("--arm", "left"),
    "record": ("--out", "out"),
    "synth": ("--out", "out"),
    "subactions": ("s.hdf5",),
    "dataset": ("s.hdf5", "--out", "out"),
    "import libemg-csv": ("data", "--out", "out"),
    "features emg": ("data",),
    "features rgb": ("data",),
    "dataset-epic": ("train.csv", "test.csv", "--frames", "frames", "--out", "out"),
    "train": ("--model", "linear_emg", "--data", "data"),
    "report": ("--data", "data"),
    "crossval": ("f.npz",),
    "emg spectrograms": ("s.hdf5",),
    "i3d classify": ("v.mp4",),
}

CASES = [(command, option, value) for command, rows in TABLE.items() for option, values in rows for value in values]


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command words, parser) of every parser under `parser`, itself included."""
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _is_numeric(action: argparse.Action) -> bool:
    kind = action.type
    return isinstance(kind, options.NumberType) or kind in (int, float, options.video_size) or (
        getattr(kind, "__name__", "") == "_parse_seconds")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the files the command lines name, and a private cache."""
    work = tmp_path / "work"
    for folder in ("data", "frames"):
        (work / folder).mkdir(parents=True)
    for name in ("m.safetensors", "s.hdf5", "train.csv", "test.csv", "f.npz", "v.mp4"):
        (work / name).write_bytes(b"")
    monkeypatch.chdir(work)
    monkeypatch.setenv("MYOSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def guarded_parser() -> tuple[argparse.ArgumentParser, list[argparse.Namespace]]:
    """The real parser, built once, with every handler replaced by one that records its options."""
    calls: list[argparse.Namespace] = []
    parser = cli.build_parser()
    for _, sub in _parsers(parser):
        if sub.get_default("handler") is not None:
            sub.set_defaults(handler=lambda args: calls.append(args) or 0)
    return parser, calls


@pytest.fixture
def handled(guarded_parser: tuple, monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """The parsed options of every handler `main` calls; the real handlers never run."""
    parser, calls = guarded_parser
    calls.clear()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    return calls


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_bad_value_exits_1_with_one_line_naming_the_option(
    command: str, option: str, value: str, workdir: Path, handled: list, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(workdir)
    code = cli.main([*command.split(), option, value, *REQUIRED.get(command, ())])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 1 and not handled, f"myosight {command} {option} {value} was accepted"
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"myosight {command}: error: argument ") and option in lines[0], lines[0]
    assert captured.out == "" and "Traceback" not in captured.err
    assert _files(workdir) == before


def test_the_table_covers_every_numeric_option() -> None:
    found = {(command, action.option_strings[0]) for command, parser in _parsers(cli.build_parser())
             for action in parser._actions if _is_numeric(action)}
    listed = {(command, option) for command, rows in TABLE.items() for option, _ in rows}
    assert found - listed == set(), "numeric options without a row in TABLE"
    assert listed - found == set(), "rows in TABLE for options that are not numeric (or do not exist)"


def test_no_option_takes_a_bare_int_or_float() -> None:
    bare = [f"{command} {action.option_strings or action.dest}" for command, parser in _parsers(cli.build_parser())
            for action in parser._actions if action.type in (int, float)]
    assert bare == [], "use a type from myosight.options: int and float accept 0, negatives, nan and inf"


def test_every_default_is_a_value_the_option_accepts() -> None:
    for command, parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            defaults = action.default if isinstance(action.default, list) else [action.default]
            if isinstance(action.type, options.NumberType) and action.default is not None:
                assert [action.type(str(d)) for d in defaults] == defaults, f"{command} {action.option_strings}"


EDGE_VALUES = [
    (["train", "--seed", "0", *REQUIRED["train"]], "seed", 0),
    (["train", "--patience", "0", *REQUIRED["train"]], "patience", 0),
    (["train", "--seed", str(2**32 - 1), *REQUIRED["train"]], "seed", 2**32 - 1),
    (["report", "--seeds", "0", "1", *REQUIRED["report"]], "seeds", [0, 1]),
    (["crossval", "--folds", "2", *REQUIRED["crossval"]], "folds", 2),
    (["features", "emg", "--cross-fit", "1", *REQUIRED["features emg"]], "cross_fit", 1),
    (["features", "rgb", "--limit", "0", *REQUIRED["features rgb"]], "limit", 0),
    (["i3d", "classify", "--frames", "0", *REQUIRED["i3d classify"]], "frames", 0),
    (["emg", "spectrograms", "--sample", "0", *REQUIRED["emg spectrograms"]], "sample", 0),
    (["replay", "--from", "0", *REQUIRED["replay"]], "start", 0.0),
    (["replay", "--speed", "0.25", *REQUIRED["replay"]], "speed", 0.25),
    (["calibrate", "--rest", "0"], "rest", 0.0),
    (["calibrate", "--lead-in", "0"], "lead_in", 0.0),
    (["run", "--size", "32", *REQUIRED["run"]], "input_size", 32),
    (["run", "--input-size", "1024", *REQUIRED["run"]], "input_size", 1024),
    (["dataset", "--train-fraction", "0.5", *REQUIRED["dataset"]], "train_fraction", 0.5),
    (["soak", "--max-rss-growth", "0"], "max_rss_growth", 0.0),
    (["synth", "--seconds", "2,2", *REQUIRED["synth"]], "seconds", (2.0, 2.0)),
    (["synth", "--video-size", "16X4096", *REQUIRED["synth"]], "video_size", (16, 4096)),
    (["synth", "--num-classes", "20", *REQUIRED["synth"]], "num_classes", 20),
    (["synth", "--seed", "0", "--rest", "0", *REQUIRED["synth"]], "rest", 0.0),
]


@pytest.mark.parametrize(("argv", "dest", "expected"), EDGE_VALUES)
def test_valid_edge_values_still_parse(argv: list[str], dest: str, expected: object, workdir: Path,
                                       handled: list) -> None:
    assert cli.main(argv) == 0
    assert len(handled) == 1 and getattr(handled[0], dest) == expected


def test_number_types_say_what_they_allow() -> None:
    slowest = r"expected a number at least 0\.01 and at most 1000, got 'nan'"  # a slower replay looks frozen
    with pytest.raises(argparse.ArgumentTypeError, match=slowest):
        options.speed("nan")
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a whole number from 32 to 1024, got '4096'"):
        options.pixels("4096")
    with pytest.raises(argparse.ArgumentTypeError, match=r"got '1\\n2'"):  # the user's text stays on one line
        options.positive_int("1\n2")
    with pytest.raises(argparse.ArgumentTypeError, match=r"from 0 to \d+, got '9{37}\.\.\.'"):
        options.seed("9" * 5000)  # past Python's int-parsing digit limit: still a clear refusal
    assert options.non_negative_seconds("0") == 0.0 and options.fraction("0.7") == 0.7
    assert options.video_size("224x224") == (224, 224)


def test_usage_errors_outside_option_values_are_one_line_and_exit_1(handled: list,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--source", "synthetic"]) == 1
    assert capsys.readouterr().err == "myosight run: error: the following arguments are required: --model\n"
    assert cli.main(["no-such-command"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("myosight: error: argument COMMAND: invalid choice: 'no-such-command'")
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as stop:  # parse_args outside main: argparse's SystemExit, with status 1
        cli.build_parser().parse_args(["demo", "--speed", "0"])
    assert "argument --speed" in capsys.readouterr().err
    assert stop.value.code == 1 and not handled
