"""The source registry: each kind of source is declared once, and the CLI, the viewer's picker and calibrate
read it.

A kind added in one place (here, a test kind registered for the test's duration) must appear in `--source`'s
help, get its options on every command that starts a source, be built and checked from the command line,
start in a source process, and be listed by the viewer's picker; settings a kind does not declare are
refused by name.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from myosight.capture import kinds
from myosight.capture.kinds import (
    PickerFields,
    SourceKind,
    SourceOption,
    register,
    source_kind,
    source_kinds,
    with_settings,
)
from myosight.capture.launch import add_source_options, source_process, source_spec_from_args, spec_of_kind
from myosight.cli import build_parser
from myosight.errors import ConfigError
from myosight.processes import SourceSpec

KINDS_FOLDER = Path(kinds.__file__).parent
STARTED: list[SourceSpec] = []


@dataclass(frozen=True)
class ToneSettings:
    pitch: float = 440.0


@pytest.fixture
def tone_kind() -> Iterator[type[SourceKind]]:
    """A kind declared as a new file would declare it, in the registry for this test only."""

    class Tone(SourceKind):
        name = "tone"
        title = "Test tone"
        options = (SourceOption(("--pitch",), "pitch", {"type": float, "default": 440.0, "help": "Hz"}),)
        settings_type = ToneSettings
        live_person = True

        def settings_from_picker(self, picked: PickerFields) -> dict:
            return {"pitch": float(picked.camera)}

        def run(self, spec: SourceSpec, stop: threading.Event, ready: Any) -> None:
            STARTED.append(spec)
            ready.set()

    kinds.source_kinds()  # the files' kinds first, as a command would have them
    register(Tone)
    try:
        yield Tone
    finally:
        kinds._REGISTRY.pop("tone")


def test_every_file_of_the_package_declares_a_kind() -> None:
    """A kind is one file: each module of the package (but the shared `_` ones) registers a kind, and each kind
    declares what the registry needs."""
    files = {path.stem for path in KINDS_FOLDER.glob("*.py") if not path.stem.startswith("_")}
    modules = {type(kind).__module__.rsplit(".", 1)[-1] for kind in source_kinds()}
    assert files and files == modules
    for kind in source_kinds():
        assert kind.name and kind.title and dataclasses.is_dataclass(kind.settings_type)
        fields = {field.name for field in dataclasses.fields(kind.settings_type)}
        assert {option.setting for option in kind.options} <= fields, kind.name
        assert kind.file is None or kind.file in fields
        assert set(kind.publishes) <= {"emg", "video", "labels"}


def test_a_new_kind_reaches_the_command_line_and_starts(tone_kind: type[SourceKind]) -> None:
    parser = argparse.ArgumentParser()
    add_source_options(parser)
    assert "tone" in parser.format_help() and "--pitch" in parser.format_help()
    args = parser.parse_args(["--source", "tone", "--pitch", "220"])
    spec = source_spec_from_args(args, "tonetest", 112)
    assert spec.kind == "tone" and spec.settings == {"pitch": 220.0} and spec.frame_size == 112
    STARTED.clear()
    ready = threading.Event()
    source_process(asdict(spec), threading.Event(), ready)
    assert ready.is_set() and [spec] == STARTED
    with pytest.raises(ConfigError, match="takes no file"):
        source_spec_from_args(parser.parse_args(["--source", "tone", "extra.hdf5"]), "tonetest", 112)


def test_every_source_starting_command_lists_the_registry(tone_kind: type[SourceKind]) -> None:
    """run, gui and calibrate: --source's help names every kind, and each kind's options are there."""
    for command in ("run", "gui", "calibrate"):
        words = [command, "--model", "m.safetensors"] if command == "run" else [command]
        args = build_parser().parse_args([*words, "--source", "tone", "--pitch", "330"])
        assert args.pitch == 330.0, command


def test_calibrate_records_from_the_kinds_of_a_live_person(tone_kind: type[SourceKind]) -> None:
    from myosight.app.calibrate import run_calibrate

    words = ["calibrate", "--base", "b.safetensors", "--source", "replay", "x.hdf5", "--out", "o", "--headless"]
    args = build_parser().parse_args(words)
    with pytest.raises(ConfigError, match=r"records a live person: .*camera\+myo.*tone"):
        run_calibrate(args)


def test_the_viewers_picker_lists_every_kind(qtbot, tone_kind: type[SourceKind]) -> None:
    from myosight.gui.widgets.controls import ControlsPanel

    panel = ControlsPanel()
    qtbot.addWidget(panel)
    listed = [(panel.kind.itemData(i), panel.kind.itemText(i)) for i in range(panel.kind.count())]
    assert listed == [(kind.name, kind.title) for kind in source_kinds()] and ("tone", "Test tone") in listed
    panel.kind.setCurrentIndex(panel.kind.findData("tone"))
    panel.camera.setText("660")
    with qtbot.waitSignal(panel.sourceRequested) as picked:
        panel.start.click()
    fields = picked.args[0]
    assert isinstance(fields, PickerFields) and fields.kind == "tone"
    assert source_kind("tone").settings_from_picker(fields) == {"pitch": 660.0}


def test_settings_a_kind_does_not_declare_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"replay: bad settings.*'camera'"):
        spec_of_kind("replay", source="x", session="a.hdf5", camera="0")
    spec = spec_of_kind("synthetic", source="x", subject="S03")
    assert with_settings(spec, speed=2.0).settings["speed"] == 2.0 and spec.settings["speed"] == 1.0
    with pytest.raises(ConfigError, match="synthetic: bad settings"):
        with_settings(spec, session="a.hdf5")
    with pytest.raises(ConfigError, match=r"unknown --source 'bluetooth-toaster': replay FILE \| "):
        source_kind("bluetooth-toaster")


def test_a_kind_registered_twice_is_an_error(tone_kind: type[SourceKind]) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register(tone_kind)


@pytest.mark.parametrize("option", [["--window", "1"], ["--fine-tune", "scratch"], ["--arms", "right"], ["--json"]])
def test_calibrate_in_the_window_refuses_what_only_a_headless_calibration_does(option: list[str]) -> None:
    """The window adapts the live model with its own window, arms and fine-tuning: an option it would ignore is
    refused in one line instead."""
    from myosight.app.calibrate import run_calibrate

    args = build_parser().parse_args(["calibrate", "--base", "b.safetensors", "--source", "synthetic", "--classes",
                                      "Slice bread", "--out", "o", *option])
    with pytest.raises(ConfigError, match=f"{option[0]}: for --headless calibrations"):
        run_calibrate(args)


@pytest.mark.parametrize(("words", "refusal"), [
    (["--streams", "--source", "synthetic"], "--source starts a source, --streams records"),
    (["--streams", "--speed", "2"], "--speed is for a synthetic person only"),
    (["--emg", "myo"], "--emg: these choose the streams of --streams; add --streams"),
    (["--streams", "it's"], "a source name is a non-empty word without quotes"),
])
def test_calibrate_refuses_a_muddled_choice_of_other_programs_streams(words: list[str], refusal: str) -> None:
    """`calibrate --streams` records what other programs stream, so it starts no source and no synthetic person;
    the role options choose among those streams and mean nothing without it."""
    from myosight.app.calibrate import run_calibrate

    args = build_parser().parse_args(["calibrate", "--base", "b.safetensors", "--classes", "Slice bread", "--out",
                                      "o", "--headless", *words])
    with pytest.raises(ConfigError, match=re.escape(refusal)):
        run_calibrate(args)


def test_the_viewers_picker_starts_the_kind_it_shows(qtbot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Start in the picker: the kind's own settings from the fields it reads (the others left out), a replay of a
    file that is not there refused in the banner, nothing else started."""
    from myosight.gui.controller import Controller, WorkerSettings, free_tcp_address
    from myosight.gui.main_window import MainWindow
    from myosight.gui.state import GuiState

    controller = Controller(GuiState(), free_tcp_address(), WorkerSettings(bundle=None))
    started: list[SourceSpec] = []
    monkeypatch.setattr(controller, "start_source", started.append)
    window = MainWindow(controller.state, controller, controller.address)
    qtbot.addWidget(window)
    controls = window.controls

    def start(kind: str, path: str = "", left: str = "", right: str = "") -> None:
        controls.kind.setCurrentIndex(controls.kind.findData(kind))
        controls.path.setText(path)
        controls.left.setText(left)
        controls.right.setText(right)
        controls.start.click()

    start("camera+myo", left="C0:FF:EE:00:00:0B")
    start("camera+lsl-emg", path="ignored.hdf5", left="EMG L", right="EMG R")
    start("replay", path=str(tmp_path / "missing.hdf5"))
    assert [spec.kind for spec in started] == ["camera+myo", "camera+lsl-emg"]
    assert started[0].settings == {"camera": "0", "myo_left": "C0:FF:EE:00:00:0B", "myo_right": None,
                                   "backend": "bleak"}
    assert started[1].settings == {"camera": "0", "lsl_emg_left": "EMG L", "lsl_emg_right": "EMG R"}
    assert any("replay: no file" in text and "missing.hdf5" in text for text in window.notices)
