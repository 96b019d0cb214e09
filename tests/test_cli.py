"""The `myosight` command line end to end on a synthetic session, and the package's installability."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from myosight.cli import main
from myosight.data.actionsense import ActionSenseSession
from myosight.data.synth import SynthConfig, write_session

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_the_commands(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 0
    text = capsys.readouterr().out
    for command in ("synth", "info", "subactions", "emg", "bench"):
        assert command in text


def test_synth_info_subactions_spectrograms(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sessions"
    code = main(["synth", "--out", str(out), "--subjects", "S04", "--num-classes", "4", "--actions-per-class", "2",
                 "--seconds", "10.5,14", "--include-bad-labels", "--quiet"])
    assert code == 0
    [session_path] = sorted(out.glob("*.hdf5"))
    capsys.readouterr()

    assert main(["info", str(session_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["subject"] == "S04" and info["missing_arms"] == []
    assert len(info["actions"]) == 8  # the Bad/Maybe pairs and the zero-time row are dropped
    assert info["video_frames"] > 0 and info["video"].endswith(".mp4")
    assert 158 < info["emg"]["left"]["measured_rate_hz"] < 162
    assert main(["info", str(session_path), str(session_path), "--json"]) == 0  # several: a list, in order
    assert [entry["subject"] for entry in json.loads(capsys.readouterr().out)] == ["S04", "S04"]
    assert main(["info", str(session_path), str(session_path)]) == 0
    assert capsys.readouterr().out.count("labelled actions: 8") == 2
    assert main(["info", str(session_path), str(session_path), "--video", str(info["video"])]) == 1

    csv_path = tmp_path / "split.csv"
    assert main(["subactions", str(session_path), "--csv", str(csv_path)]) == 0
    rows = csv_path.read_text().splitlines()[1:]
    assert len(rows) == 8 * 2  # every action lasts 10.5-14 s: two 5-s sub-actions each
    png = tmp_path / "spec.png"
    npz = tmp_path / "spec.npz"
    assert main(["emg", "spectrograms", str(session_path), "--out", str(png), "--save", str(npz)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    saved = np.load(npz)
    assert saved["spectrograms"].shape[1:] == (5, 16, 10, 17)


def test_reader_reads_back_what_synth_wrote(tmp_path: Path) -> None:
    config = SynthConfig(subjects=("S07",), actions_per_class=1, seconds_per_action=6.0,
                         classes=("Peel a potato", "Slice bread", "Clean a pan with a towel"),
                         include_bad_labels=True, seed=5)
    written = write_session(config, tmp_path, "S07", progress=False)
    with ActionSenseSession(written.hdf5_path) as session:
        actions = session.activities()
        assert session.video_path == written.video_path
        assert session.subject == "S07"
    assert [(a.label, round(a.start_s, 6), round(a.stop_s, 6)) for a in actions] == [
        (label, round(start, 6), round(stop, 6)) for label, start, stop in written.actions
    ]


def test_errors_are_reported_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"\x00" * 100)
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.hdf5" in err and "not an HDF5 file" in err and "Traceback" not in err


def test_wheel_contains_every_subpackage(tmp_path: Path) -> None:
    """A plain (non-editable) build maps the root folders to myosight.<folder>."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(REPO_ROOT)],
        check=True, capture_output=True,
    )
    [wheel] = tmp_path.glob("myosight-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("myosight/cli.py", "myosight/data/actionsense.py", "myosight/models/emg_pipeline.py",
                   "myosight/capture/__init__.py", "myosight/realtime/__init__.py", "myosight/gui/__init__.py",
                   "myosight/training/emg_spectrograms.py"):
        assert module in names, module
    assert not any(name.startswith(("tests/", "core/")) for name in names)
