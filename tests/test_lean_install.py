"""The lean install for the machine with the armbands (`pip install -e '.[capture]'`): no torch, and the capture
commands work there.

Two checks. The package metadata: the base dependencies and the `capture` extra name no model package (pip's
extras only add, so that is what keeps torch out). The commands: processes in which the packages the lean
install lacks are marked missing (`sys.modules[name] = None`, from a sitecustomize, so spawned children too)
show the capture commands' help, import every capture module, and do real work on loopback: a session
replayed, a video file played as a camera, both recorded into HDF5 and XDF, the XDF file replayed. A model
command there says in one line which extra it needs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from conftest import child_environment
from lsl_helpers import unique_source

from myosight.capture.xdf_format import check_xdf
from myosight.capture.xdf_replay import XdfReplay
from myosight.data.actionsense import ARMS, ActionSenseSession
from myosight.data.synth import SynthConfig, write_sessions

ROOT = Path(__file__).resolve().parents[1]
#: What the full install has and the capture install has not (the capture extra brings bleak and pyxdf).
NOT_IN_CAPTURE = ("torch", "torchvision", "librosa", "safetensors", "matplotlib", "PySide6", "pyqtgraph", "pandas",
                  "pyomyo")
CAPTURE_MODULES = ("commands", "recorder", "recorder_xdf", "recorder_tracks", "replay", "xdf_replay", "xdf_format",
                   "camera", "myo", "lsl_emg", "launch", "playback", "inlets", "session_video", "synthetic", "choice",
                   "discovery")


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process that has only what the capture install brings."""
    folder = tmp_path_factory.mktemp("lean")
    (folder / "sitecustomize.py").write_text(
        f"import sys\nfor name in {NOT_IN_CAPTURE!r}:\n    sys.modules[name] = None  # as if not installed\n")
    return child_environment(folder)


def _myosight(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "myosight", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s;<>=!~\[]", r, maxsplit=1)[0].lower() for r in requirements}


def _extras(requirements: list[str], extras: dict[str, list[str]]) -> set[str]:
    """The package names `requirements` install, following the project's references to its own extras."""
    names: set[str] = set()
    for requirement in requirements:
        own = re.fullmatch(r"myosight\[([\w,\s-]+)\]", requirement.strip())
        if own:
            for extra in own.group(1).split(","):
                names |= _extras(extras[extra.strip()], extras)
        else:
            names |= _requirement_names([requirement])
    return names


def test_the_capture_extra_brings_no_model_package() -> None:
    """pyproject.toml: base + capture has no model package; the full and the development installs still have the
    models (the installed metadata would do too, but it is only as new as the last `pip install`)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    lean = _extras(project["dependencies"] + extras["capture"], extras)
    assert not lean & {name.lower() for name in NOT_IN_CAPTURE}, lean
    assert {"pylsl", "h5py", "opencv-python-headless", "pyzmq", "bleak", "pyxdf"} <= lean
    for install in ("full", "dev"):
        assert {"torch", "librosa", "safetensors", "pyside6-essentials", "pyxdf"} <= _extras(extras[install], extras)


def test_capture_commands_import_and_explain_themselves_without_torch(lean: dict[str, str]) -> None:
    probe = textwrap.dedent(f"""
        import sys
        for module in {CAPTURE_MODULES!r}:
            __import__("myosight.capture." + module)
        from myosight.cli import build_parser
        build_parser()
        print("loaded", sorted(name for name in {NOT_IN_CAPTURE!r} if sys.modules.get(name) is not None))
        import torch
    """)
    result = subprocess.run([sys.executable, "-c", probe], env=lean, capture_output=True, text=True, timeout=120)
    assert "loaded []" in result.stdout, result.stderr[-3000:]
    assert "ModuleNotFoundError" in result.stderr  # the simulation holds: torch cannot be imported there
    for command in ("myo", "camera", "replay", "record", "lsl-emg"):
        shown = _myosight([command, "--help"], lean)
        assert shown.returncode == 0 and f"usage: myosight {command}" in shown.stdout, shown.stderr[-2000:]
    model = _myosight(["features", "emg", "nowhere"], lean)
    assert model.returncode == 1
    assert model.stderr.strip().splitlines()[-1] == ("myosight: error: `myosight features` needs torch, which is "
                                                     "not installed here: pip install -e '.[models]' in the "
                                                     "myosight checkout")


@pytest.mark.slow
def test_capture_commands_work_without_torch(lean: dict[str, str], tmp_path: Path) -> None:
    """replay + camera -> record (HDF5 and XDF, the camera as an extra stream) -> replay of the XDF file."""
    config = SynthConfig(subjects=("S05",), actions_per_class=1, seconds_per_action=(5.0, 5.0),
                         classes=("Slice bread", "Peel a potato"), seed=5, width=32, height=32, fps=10.0)
    session = write_sessions(config, tmp_path / "synthetic", progress=False)[0]
    with ActionSenseSession(session.hdf5_path) as original:
        video = original.video_path
    source, camera = unique_source("lean"), unique_source("leancam")
    publishers = [subprocess.Popen([sys.executable, "-m", "myosight", *args], env=lean, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for args in (
        ["replay", str(session.hdf5_path), "--source", source, "--loop", "--frame-size", "32"],
        ["camera", str(video), "--source", camera, "--loop", "--frame-size", "32"])]
    out = tmp_path / "recorded"
    try:
        assert "replaying" in publishers[0].stdout.readline()
        record = _myosight(["record", "--source", source, "--out", str(out), "--label-source", "none", "--format",
                            "both", "--stream", f"source_id=myosight-{camera}-video", "--duration", "3"], lean)
    finally:
        for process in publishers:
            process.terminate()
        errors = [process.communicate(timeout=30)[1] for process in publishers]
    assert record.returncode == 0, record.stderr[-3000:]
    assert [p.returncode for p in publishers] == [0, 0], errors
    recorded = next(out.glob("*.hdf5"))
    with ActionSenseSession(recorded) as copy:
        rows = {arm: len(copy.emg(arm)) for arm in ARMS}
        assert min(rows.values()) > 0 and copy.video_path is not None
        assert copy.streams()["lsl-myosight-video/Video"] > 0  # the camera, as it came
    xdf = recorded.with_suffix(".xdf")
    check_xdf(xdf)
    streams = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)[0]
    sources = {s["info"]["source_id"][0]: len(s["time_stamps"]) for s in streams}
    assert sources[f"myosight-{camera}-video"] > 0 and sources[f"myosight-{source}-emg-left"] == rows["left"]
    own_video = next(s for s in streams if s["info"]["source_id"][0] == f"myosight-{source}-video")
    back = XdfReplay(xdf, source=unique_source("leanpick"))  # two video streams: the recorded source's is replayed
    assert np.array_equal(back.video[1], own_video["time_series"])
    replayed = _myosight(["replay", str(xdf), "--speed", "20", "--source", unique_source("leanback")], lean)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert f"sent {{'left': {rows['left']}, 'right': {rows['right']}}} EMG samples" in replayed.stdout
