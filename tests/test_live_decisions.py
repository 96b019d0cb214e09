"""Faster and finer live decisions: the hop ladder, the device option, the inlets opened before the models.

The sub-second hop's parity with offline features is in tests/test_rgb_parity.py (hop 0.2 at 112 px).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from lsl_helpers import unique_source, wait_for

from myosight import options
from myosight.capture.streams import emg_stream_info, open_outlet
from myosight.errors import ConfigError, StreamError
from myosight.realtime.messages import HealthMessage, StreamStatus, decode
from myosight.realtime.sources import SourceInlets
from myosight.realtime.worker import HopLadder


# -- the hop ladder -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("hop", "steps"), [(0.2, (0.2, 1.0)), (0.1, (0.1, 0.2, 0.5, 1.0)), (0.25, (0.25, 0.5, 1.0)),
                                            (0.3, (0.3,)), (1.0, (1.0,)), (2.0, (2.0,))])
def test_coarser_hops_are_the_multiples_that_divide_a_clip(hop: float, steps: tuple[float, ...]) -> None:
    ladder = HopLadder(hop, clip_s=1.0)
    assert ladder.steps == pytest.approx(steps)
    assert HopLadder(hop, clip_s=1.0, adapt=False).steps == (hop,)


def test_the_ladder_coarsens_when_busy_and_returns_when_relaxed() -> None:
    ladder = HopLadder(0.1, clip_s=1.0)
    changes = [ladder.observe(0.09) for _ in range(HopLadder.SETTLE)]  # 90 % of a 0.1-s hop: too busy
    assert changes[-1] and not any(changes[:-1]) and ladder.hop_s == pytest.approx(0.2) and ladder.coarsened == 1
    for _ in range(HopLadder.SETTLE):  # 45 % of 0.2 s: comfortable here, but not below 40 % of the finer 0.1 s
        assert not ladder.observe(0.09)
    assert ladder.hop_s == pytest.approx(0.2)
    for _ in range(HopLadder.SETTLE):
        ladder.observe(0.03)  # 30 % of the finer hop: back to it
    assert ladder.hop_s == pytest.approx(0.1) and ladder.coarsened == 1
    for _ in range(4 * HopLadder.SETTLE):
        ladder.observe(5.0)  # far too slow: to the coarsest step, and no further
    assert ladder.hop_s == pytest.approx(1.0) and ladder.coarsened == 4


# -- the device option ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["cpu", "CUDA", "cuda:1", "mps"])
def test_device_names_are_accepted(text: str) -> None:
    assert options.device(text) == text.lower()


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cpu:0", "tpu", ""])
def test_other_device_names_are_refused_at_parse_time(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected cpu, cuda, cuda:N or mps"):
        options.device(text)


def test_a_device_this_machine_lacks_is_a_clear_error() -> None:
    import torch

    from myosight.models.device import check_device

    assert check_device("cpu") == "cpu"
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        check_device("cuda:0")
    with pytest.raises(ConfigError, match="int8 runs I3D on the CPU only"):
        check_device("cuda", precision="int8")


def test_the_demo_refuses_a_missing_device_before_it_starts_anything(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = subprocess.run([sys.executable, "-m", "myosight", "demo", "--device", "cuda", "--headless",
                             "--duration", "1"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda" in lines[0] and "no CUDA device" in lines[0], result.stderr
    assert not (tmp_path / "demo-output").exists()


def test_starting_a_run_imports_no_torch() -> None:
    """The parent of a live run reads the bundle's header and starts children; torch (seconds to import) is
    the children's business."""
    code = ("import sys; import myosight.cli, myosight.app.commands, myosight.app.launch, myosight.realtime.child, "
            "myosight.models.bundle_header, myosight.models.device, myosight.capture.launch; "
            "print(sorted(m for m in ('torch', 'scipy', 'librosa') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


# -- the source's inlets, opened before the models ---------------------------------------------------------
def _publish_later(source: str, arms: tuple[str, ...], delay_s: float, stop: threading.Event) -> threading.Thread:
    """Open EMG outlets for `arms` after `delay_s` (a source that starts after its worker) and feed them."""

    def run() -> None:
        time.sleep(delay_s)
        outlets = [open_outlet(emg_stream_info(arm, source)) for arm in arms]
        while not stop.is_set():
            for outlet in outlets:
                outlet.push_chunk(np.zeros((4, 8), np.float32).tolist())
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_worker_waits_for_a_source_that_starts_after_it() -> None:
    source, stop = unique_source(), threading.Event()
    feeder = _publish_later(source, ("left", "right"), 1.0, stop)
    try:
        started = time.monotonic()
        inlets = SourceInlets.open(source, video=False, first_timeout_s=20)
        try:
            assert time.monotonic() - started >= 0.9
            assert set(inlets.emg) == {"left", "right"} and inlets.missing_arms == []
            assert inlets.video is None and inlets.labels is None
            assert wait_for(lambda: len(inlets.emg["left"].pull()[0]) > 0, 10)
        finally:
            inlets.close()
    finally:
        stop.set()
        feeder.join(5)


def test_a_one_arm_source_opens_for_a_model_of_its_arm_and_not_for_two_unless_asked() -> None:
    """A one-arm model opens its arm; a two-arm model is refused (naming the arm that is not streamed) unless the
    user allowed zeros there, and then the other arm is marked missing."""
    source, stop = unique_source(), threading.Event()
    feeder = _publish_later(source, ("left",), 0.0, stop)
    try:
        inlets = SourceInlets.open(source, video=False, arms=("left",), first_timeout_s=20)
        try:
            assert set(inlets.emg) == {"left"} and inlets.missing_arms == []
        finally:
            inlets.close()
        with pytest.raises(StreamError, match=r"does not stream the right arm.*--allow-missing-arm"):
            SourceInlets.open(source, video=False, first_timeout_s=20)
        with pytest.raises(StreamError, match=f"source '{source}' streams the left arm, but the model reads the "
                                              "right arm"):
            SourceInlets.open(source, video=False, arms=("right",), first_timeout_s=20)
        inlets = SourceInlets.open(source, video=False, allow_missing_arm=True, first_timeout_s=20)
        try:
            assert set(inlets.emg) == {"left"} and inlets.missing_arms == ["right"]
        finally:
            inlets.close()
        with pytest.raises(StreamError, match=f"no video stream from source '{source}'.*--emg-only"):
            SourceInlets.open(source, video=True, arms=("left",), first_timeout_s=20)
    finally:
        stop.set()
        feeder.join(5)


def test_no_source_at_all_names_what_was_looked_for() -> None:
    source = unique_source()
    with pytest.raises(StreamError, match=f"no EMG stream from source '{source}' within 0.5 s"):
        SourceInlets.open(source, video=False, first_timeout_s=0.5)


# -- the hop in the health report and the viewer --------------------------------------------------------------
def _health(hop_s: float | None, coarsened: int) -> HealthMessage:
    return HealthMessage(streams={"emg-left": StreamStatus(lost=True, missing=True)}, mode="fusion", video_lost=False,
                         windows_predicted=10, windows_skipped=0, rgb_features=10, emg_features=50,
                         hop_s=hop_s, hop_coarsened=coarsened)


def test_the_hop_travels_in_the_health_report() -> None:
    decoded = HealthMessage.from_message(decode(_health(1.0, 2).encode(seq=1)))
    assert decoded.hop_s == 1.0 and decoded.hop_coarsened == 2
    plain = HealthMessage.from_message(decode(_health(None, 0).encode(seq=2)))
    assert plain.hop_s is None and plain.hop_coarsened == 0


def test_the_viewer_shows_the_hop_and_when_it_was_coarsened(qtbot) -> None:
    from types import SimpleNamespace

    from myosight.gui.widgets.health import HealthPanel

    panel = HealthPanel()
    qtbot.addWidget(panel)
    panel.show_health(SimpleNamespace(health=_health(1.0, 2), streams={}))  # the two parts it reads
    assert panel.worker_values["hop_s"].text() == "1.00 s"
    assert "2 time" in panel.worker_values["hop_s"].toolTip()
    panel.show_health(SimpleNamespace(health=_health(0.2, 0), streams={}))
    assert panel.worker_values["hop_s"].text() == "0.20 s" and panel.worker_values["hop_s"].toolTip() == ""


def test_the_terminal_table_shows_the_hop() -> None:
    from rich.console import Console
    from rich.table import Table

    from myosight.realtime.headless import HeadlessViewer

    table = Table(show_header=False)
    table.add_column()
    table.add_column()
    HeadlessViewer._health_rows(table, _health(1.0, 2))
    console = Console(record=True, width=120)
    console.print(table)
    assert "every 1.00 s (made coarser 2x to keep up)" in console.export_text()
