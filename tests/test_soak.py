"""Soak: a session looped through the worker at high speed; memory stays bounded, every window is accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from myosight.bench.soak import SoakConfig, expected_windows, rss_mb, run_soak, window_grid
from myosight.cli import main

torch.set_num_threads(1)


def test_window_grid_from_replayed_stamps() -> None:
    """Windows end on the hop grid, from the first full 5 s after the first sample to the last covered time."""
    span = {"first_s": 100.0, "emg": {"left": [100.3, 160.0], "right": [100.0, 159.9]}}
    passes = [{"t0": 1000.0}, {"t0": 1062.0}]
    first_end, last_end = window_grid(span, passes, rate_hz=160.0, hop_s=1.0, sample_s=5.0)
    assert first_end == 1005.0  # the earliest arm's first sample at 1000.0
    assert last_end == 1121.0  # the later pass: min(1062 + 60, 1062 + 59.9) = 1121.9 -> 1121
    assert expected_windows(first_end, last_end, 1.0) == 117
    assert expected_windows(*window_grid(span, passes, 160.0, 0.5, 5.0), 0.5) == 234


def test_rss_is_read_from_proc() -> None:
    value = rss_mb()
    assert value is not None and 10 < value < 100_000


def test_short_soak_keeps_memory_bounded_and_accounts_for_every_window(synthetic_emg_model: dict) -> None:
    """About six minutes of recording (three passes of a two-minute session) at 20x, sEMG-only."""
    session = synthetic_emg_model["sessions"][0].hdf5_path
    config = SoakConfig(hours=0.1, speed=20.0, emg_only=True, max_rss_growth_mb=40.0)
    summary = run_soak(synthetic_emg_model["bundle"], session, config, progress=False)
    windows = summary["windows"]
    assert summary["passes"] >= 2 and summary["replayed_hours"] >= 0.1
    assert windows["expected"] > 250
    assert windows["predicted"] + windows["skipped"] == windows["expected"], windows
    assert windows["predicted"] >= 0.9 * windows["expected"]  # sEMG-only keeps up at 20x: few skips
    assert 0 < windows["received_by_viewer"] <= windows["predicted"]
    assert summary["emg_samples"]["received"] == summary["emg_samples"]["sent"] > 0
    assert summary["rss_mb"]["growth"] < 40.0 and summary["rss_mb"]["growth_after_warmup"] < 40.0, summary["rss_mb"]
    assert summary["latency_ms"]["last_quarter"]["count"] > 50
    assert summary["ok"] and summary["problems"] == []


def test_soak_command_writes_the_summary(synthetic_emg_model: dict, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "soak.json"
    session = synthetic_emg_model["sessions"][1].hdf5_path
    code = main(["soak", "--hours", "0.02", "--speed", "30", "--emg-only", "--hop", "0.5", "--model",
                 str(synthetic_emg_model["bundle"]), "--session", str(session), "--out", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert code == 0 and summary["ok"], printed
    assert summary["config"]["hop_s"] == 0.5 and summary["windows"]["unaccounted"] == 0
    assert "result: OK" in printed and "unaccounted" in printed


def test_soak_refuses_bad_options(capsys: pytest.CaptureFixture) -> None:
    assert main(["soak", "--hours", "0", "--emg-only"]) == 1
    assert "myosight soak: error: argument --hours: expected a number above 0" in capsys.readouterr().err
