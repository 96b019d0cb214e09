"""Every shell block of README.md and docs/ that shows myosight commands is run as written, or says why not.

A block of commands is preceded by a marker comment (the documentation build hides it):

- `<!-- docs-test: run -->`: this test runs the block, command by command as typed, in a scratch folder that
  holds what the page assumes (sessions/, a model, a video), with the simulated armbands and camera of
  tests/devices in place of the hardware (so `--myo-left ADDR` reaches an armband behind the BLE API and camera 0
  shows a video in real time) and LSL EMG streams named "EMG L" and "EMG R" on the network. A command that ends
  must end with exit status 0; one that is still running after `RUNS_FOR_S` (a viewer, a worker, a recording,
  a calibration) is interrupted as a user's Ctrl-C would, and must then stop cleanly (status 0 or 130). A
  command ending in `&` runs beside the rest of its block until the block ends. No output may hold a traceback.
  Placeholders are filled in: ADDR (the armband of the arm its option names), BUNDLE and BASE (a model),
  HOST (this machine), `<file>` (the session), and `[optional parts]` are left out. The default ports (5557,
  5558) become free ones, given to every command through MYOSIGHT_ADDRESS and MYOSIGHT_CONTROL_ADDRESS too, so
  that a myosight running beside the suite does not collide with it.
- `<!-- docs-test: tested-by tests/FILE.py::TEST [...] -->`: the named tests run these commands (work longer than
  a test of the documentation can take); each test must exist, and together their source must use every
  subcommand and option the block shows.
- `<!-- docs-test: needs install|gpu|data|hours -->`: commands the suite cannot run: the set-up commands
  themselves (`.ci/run` runs them), a GPU, recordings that are not in ../shared, or a whole benchmark (hours on
  a CPU: the commands that wrote a page's figures, whose parts the tests run on small inputs).

A block without a marker fails here, so a new example is either run or says why it is not.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl
import pytest
from conftest import REPO_ROOT, child_environment
from test_docs_commands import PAGES, _resolve, _shell_commands, shell_blocks
from test_xdf_replay import recording
from xdf_writer import write_xdf

from myosight.bench.steps import free_address
from myosight.cli import build_parser

DEVICES = Path(__file__).resolve().parent / "devices"
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")
NEEDS = ("install", "gpu", "data", "hours")
RUNS_FOR_S = 8.0  # a command still running after this is interrupted (it started and did not fail)
STOP_WITHIN_S = 45.0  # how long an interrupted command may take to stop cleanly
LEFT, RIGHT = "C0:FF:EE:00:00:0B", "C0:FF:EE:00:00:0A"
ARM_OPTIONS = {"--myo-left": LEFT, "--left": LEFT, "--identify": LEFT, "--myo-right": RIGHT, "--right": RIGHT}
RECORDING = [f"EvaluationDataset/Female0/training0/classe_{n}" for n in range(3)]


@dataclass
class Block:
    page: str
    line: int
    marker: str | None
    scenarios: list[list[str]] = field(default_factory=list)  # split where a comment line says "# or ..."

    @property
    def commands(self) -> list[str]:
        return [command for scenario in self.scenarios for command in scenario]

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def documented_blocks() -> list[Block]:
    """Every fenced shell block that shows a myosight command, with its marker (None: unmarked)."""
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        lines = text.splitlines()
        for line, body in shell_blocks(text):
            parts = re.split(r"^\s*#\s*or\b.*$", body, flags=re.M)
            scenarios = [[c for c in _shell_commands(part) if _words(c)[:1] == ["myosight"]] for part in parts]
            if any(scenarios):
                marker = MARKER.fullmatch(lines[line - 2].strip()) if line >= 2 else None
                blocks.append(Block(str(page.relative_to(REPO_ROOT)), line, marker.group(1) if marker else None,
                                    [scenario for scenario in scenarios if scenario]))
    return blocks


def _words(command: str) -> list[str]:
    words = command.split()
    while words and re.match(r"^[A-Z_]+=\S*$", words[0]):  # LSLAPICFG=... myosight ...
        words.pop(0)
    return words


BLOCKS = documented_blocks()
RUN = [block for block in BLOCKS if block.marker == "run"]


def test_every_block_of_commands_is_marked() -> None:
    unmarked = [block.name for block in BLOCKS if block.marker is None]
    assert not unmarked, f"shell blocks without a <!-- docs-test: ... --> marker: {unmarked}"
    kinds = {block.marker.split()[0] for block in BLOCKS if block.marker}
    assert kinds <= {"run", "tested-by", "needs"}, kinds
    assert len(RUN) >= 8  # the run blocks are found (a change of the page format would empty them)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.marker and b.marker.startswith("needs")],
                         ids=lambda b: b.name)
def test_a_block_not_run_names_what_it_needs(block: Block) -> None:
    assert block.marker.split()[1:] and set(block.marker.split()[1:]) <= set(NEEDS), block.marker


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.marker and b.marker.startswith("tested-by")],
                         ids=lambda b: b.name)
def test_the_tests_a_block_names_run_its_commands(block: Block) -> None:
    """Each reference exists, and the referenced code uses every subcommand and option of the block's commands."""
    source = "\n".join(_referenced_source(block, reference) for reference in block.marker.split()[1:])
    parser = build_parser()
    for command in block.commands:
        words = _words(_without_optional_parts(command))[1:]
        _, rest, name = _resolve(parser, words)
        used = [*name.split()[1:], *(word.split("=", 1)[0] for word in rest if word.startswith("--"))]
        for word in used:
            assert f'"{word}"' in source or f"'{word}'" in source or (f" {word}" in source and "Makefile" in \
                block.marker), f"{block.name}: `{command}`: {word} is not used by {block.marker.split()[1:]}"


def _referenced_source(block: Block, reference: str) -> str:
    """The code a `tested-by` reference names: a function of a Python file (a test or a fixture), or the recipe
    of a Makefile target."""
    path, _, name = reference.partition("::")
    text = (REPO_ROOT / path).read_text(encoding="utf-8")
    if path == "Makefile":
        recipe = re.search(rf"^{re.escape(name)}:.*\n((?:\t.*\n)+)", text, re.M)
        assert recipe, f"{block.name}: no target {name} in the Makefile"
        return recipe.group(1)
    functions = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.FunctionDef)
                 and node.name == name]
    assert functions, f"{block.name}: no function {reference}"
    return ast.get_source_segment(text, functions[0]) or ""


# -- running a block ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_files(synthetic_emg_model: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the pages assume exists: a session (and its world video), a LabRecorder file, a model, and a
    calibrated one-armband model; the environment with the simulated armbands and camera."""
    from conftest import SHARED

    from myosight.training.demo_model import demo_bundle

    npz = SHARED / "realemg" / "myoarmband.npz"
    if not npz.is_file():
        pytest.skip(f"the simulated armbands play ../shared/realemg/myoarmband.npz, not found at {SHARED}")
    demo_bundle()  # `myosight demo` and calibrate's default base: built once here, not inside a command's time
    root = tmp_path_factory.mktemp("docs-files")
    session = synthetic_emg_model["sessions"][0]
    armbands = [{"address": RIGHT, "name": "Myo right", "npz": str(npz), "keys": RECORDING},
                {"address": LEFT, "name": "Myo left", "npz": str(npz), "keys": RECORDING[::-1]}]
    env = {**child_environment(DEVICES), "MYOSIGHT_SIMULATED_ARMBANDS": json.dumps(armbands),
           "MYOSIGHT_SIMULATED_CAMERAS": json.dumps({"0": str(session.video_path)}), "QT_QPA_PLATFORM": "offscreen",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           # ports of their own, where a page uses the defaults: a myosight beside the suite holds those
           "MYOSIGHT_ADDRESS": free_address(), "MYOSIGHT_CONTROL_ADDRESS": free_address()}
    bundle = synthetic_emg_model["bundle"]
    me = root / "me"  # a person's calibration of one armband, as the pages' `me/` (topped up the next day)
    classes = ["Peel a cucumber", "Clean a plate with a towel"]
    done = subprocess.run([sys.executable, "-m", "myosight", "calibrate", "--source", "synthetic", "--arms", "right",
                           "--classes", *classes, "--reps", "2", "--seconds", "3", "--rest", "1", "--lead-in", "1",
                           "--speed", "3", "--emg-only", "--base", str(bundle), "--out", str(me), "--headless"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    xdf = write_xdf(root / "NAME.xdf", recording(seconds=30.0))  # a LabRecorder file that says its arms
    return {"session": session, "bundle": bundle, "me": me, "xdf": xdf, "env": env}


def _scratch(folder: Path, files: dict, command: str) -> Path:
    """A folder laid out as the page assumes before `command`: sessions/ with a session and its video (also at
    the top), runs/sa/ with a model, video.mp4, sessions/NAME.xdf, and me/ with a calibration where the command
    uses one (a command that makes me/ finds no other calibration there)."""
    folder.mkdir(parents=True)
    session = files["session"]
    (folder / "sessions").mkdir()
    for source in (session.hdf5_path, session.video_path):
        shutil.copy(source, folder / "sessions" / Path(source).name)
        shutil.copy(source, folder / Path(source).name)
    shutil.copy(session.video_path, folder / "video.mp4")
    shutil.copy(files["xdf"], folder / "sessions" / "NAME.xdf")
    (folder / "runs" / "sa").mkdir(parents=True)
    shutil.copy(files["bundle"], folder / "runs" / "sa" / "bundle.safetensors")
    if "me/bundle.safetensors" in command:
        shutil.copytree(files["me"], folder / "me")
    return folder


def _without_optional_parts(command: str) -> str:
    return re.sub(r"\s\[[^\]]*\]", "", command)


def _argv(command: str, folder: Path, files: dict) -> list[str]:
    """The command as a user's shell would run it in `folder`, with the page's placeholders filled in."""
    words = shlex.split(_without_optional_parts(command))
    while words and re.match(r"^[A-Z_]+=\S*$", words[0]):  # LSLAPICFG=... myosight ...: the environment's part
        words.pop(0)
    argv: list[str] = []
    for word in words:
        before = argv[-1] if argv else ""
        if word in ("ADDR", "ADDR1", "ADDR2"):
            word = {"ADDR1": LEFT, "ADDR2": RIGHT}.get(word) or ARM_OPTIONS.get(before, RIGHT)
        elif word in ("BUNDLE", "BASE"):
            word = str(files["bundle"])
        elif word == "SESSION.hdf5":
            word = Path(files["session"].hdf5_path).name
        word = os.path.expanduser(word.replace("HOST", "127.0.0.1").replace("<file>", "*"))
        for default, variable in ((":5557", "MYOSIGHT_ADDRESS"), (":5558", "MYOSIGHT_CONTROL_ADDRESS")):
            word = word.replace(default, ":" + files["env"][variable].rsplit(":", 1)[1])  # the run's own port
        matches = sorted(glob.glob(word, root_dir=folder)) if any(c in word for c in "*?") else []
        argv += matches or [word]
    return [sys.executable, "-m", "myosight", *argv[1:]]


class _EmgDevice:
    """LSL EMG streams named as the pages name another program's ("EMG L", "EMG R"), sending until closed."""

    def __init__(self, names: tuple[str, ...] = ("EMG L", "EMG R")) -> None:
        self.outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(name, "EMG", 8, 200, pylsl.cf_float32,
                                                            f"docs-{name.replace(' ', '')}-{os.getpid()}"))
                        for name in names]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        rng = np.random.default_rng(0)
        while not self.stop.wait(0.05):
            for outlet in self.outlets:
                outlet.push_chunk(rng.normal(0, 20, (10, 8)).astype(np.float32).tolist())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.outlets = []


def _stop(process: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C, as in a terminal; the exit status and what the command printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return -9, output
    return process.returncode, output


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=lambda b: b.name)
def test_the_documented_commands_run_as_written(block: Block, scratch_files: dict, tmp_path: Path) -> None:
    device = _EmgDevice()
    failures = []
    try:
        for number, scenario in enumerate(block.scenarios):
            failures += _run_scenario(block, scenario, scratch_files, tmp_path / f"scenario{number}")
    finally:
        device.close()
    assert not failures, f"{block.name}:\n" + "\n\n".join(failures)


def _run_scenario(block: Block, commands: list[str], files: dict, folder: Path) -> list[str]:
    """The commands in order, each in a folder of its own; one sent to the background runs until the end."""
    background: list[tuple[str, subprocess.Popen]] = []
    failures = []
    try:
        for number, command in enumerate(commands):
            cwd = _scratch(folder / f"command{number}", files, command)
            process = subprocess.Popen(_argv(command, cwd, files), cwd=cwd, env=files["env"],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       stdin=subprocess.DEVNULL)
            if _backgrounded(block, command):
                background.append((command, process))
                continue
            try:
                process.wait(RUNS_FOR_S)
                ended_by_itself = True
            except subprocess.TimeoutExpired:
                ended_by_itself = False
            code, output = _stop(process)
            failures += _failure(command, code, output, ended_by_itself)
    finally:
        for command, process in background:
            code, output = _stop(process)
            failures += _failure(command, code, output, False)
    return failures


def _backgrounded(block: Block, command: str) -> bool:
    """`_shell_commands` drops the `&` that ends a line: find it in the page again."""
    text = (REPO_ROOT / block.page).read_text(encoding="utf-8")
    return bool(re.search(re.escape(command) + r"\s*&(\s|$)", text))


def _failure(command: str, code: int, output: str, ended_by_itself: bool) -> list[str]:
    ok = code == 0 if ended_by_itself else code in (0, 130)
    if ok and "Traceback (most recent call last)" not in output:
        return []
    how = "ended" if ended_by_itself else "interrupted"
    lines = [line for line in output.splitlines() if "INFO|" not in line]  # liblsl's own start-up lines
    return [f"`{command}` ({how}, exit {code}):\n" + "\n".join(lines)[-2500:]]
