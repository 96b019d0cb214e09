"""Sources, worker and viewer as three separate processes joined only by explicit addresses, as on three hosts.

The sources' and the worker's LSL discovery is configured by an lsl_api.cfg named in $LSLAPICFG (KnownPeers
lists the source host; a SessionID of its own keeps these streams apart from every other LSL program); the
viewer knows nothing but the worker's ZeroMQ address. Here every "host" is 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pylsl
import pytest
from lsl_helpers import wait_for

SOURCE_HOST = WORKER_HOST = "127.0.0.1"


def lsl_config(path: Path, session_id: str) -> Path:
    """The lsl_api.cfg every LSL process of the set-up reads (the same file on each host)."""
    path.write_text(
        "[ports]\nIPv6 = disable\n\n"
        "[lab]\n"
        f"KnownPeers = {{{SOURCE_HOST}, {WORKER_HOST}}}\n"
        f"SessionID = {session_id}\n"
    )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]



def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "myosight", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=env, text=True)


def test_sources_worker_and_viewer_on_three_hosts(synthetic_emg_model: dict, tmp_path: Path) -> None:
    session = synthetic_emg_model["sessions"][0].hdf5_path
    source_name, session_id = f"lab{uuid.uuid4().hex[:8]}", f"myosight-test-{uuid.uuid4().hex[:8]}"
    config = lsl_config(tmp_path / "lsl_api.cfg", session_id)
    lsl_env = {**os.environ, "LSLAPICFG": str(config)}
    viewer_env = {k: v for k, v in os.environ.items() if k != "LSLAPICFG"}
    address = f"tcp://{WORKER_HOST}:{free_port()}"
    predictions = tmp_path / "predictions.jsonl"
    logs = {name: tmp_path / f"{name}.log" for name in ("sources", "worker", "viewer")}
    processes = {
        "sources": start(["replay", str(session), "--speed", "4", "--loop", "--no-video", "--source", source_name],
                         logs["sources"], lsl_env),
        "viewer": start(["view", "--connect", address, "--headless", "--jsonl", str(predictions)], logs["viewer"],
                        viewer_env),
        "worker": start(["worker", "--model", str(synthetic_emg_model["bundle"]), "--source", source_name,
                         "--emg-only", "--address", address], logs["worker"], lsl_env),
    }
    try:
        arrived = wait_for(lambda: predictions.exists() and len(predictions.read_text().splitlines()) >= 5, 120)
        assert arrived, "\n".join(f"--- {name}\n{path.read_text()[-2000:]}" for name, path in logs.items())
        record = json.loads(predictions.read_text().splitlines()[-1])
        assert record["mode"] == "emg" and len(record["probs"]) == 5
        # outside the configured LSL session (this process reads no lsl_api.cfg) the streams are invisible
        assert not pylsl.resolve_bypred(f"source_id='myosight-{source_name}-emg-left'", 1, 2.0)
    finally:
        for name, sig in (("worker", signal.SIGINT), ("sources", signal.SIGINT), ("viewer", signal.SIGTERM)):
            process = processes[name]
            if process.poll() is None:
                process.send_signal(sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    assert f"Configuration loaded from {config}" in logs["worker"].read_text()
    assert f"Configuration loaded from {config}" in logs["sources"].read_text()
    assert f"subscribed to {address}" in logs["viewer"].read_text()
    assert processes["viewer"].returncode == 0


def test_view_without_headless_is_the_desktop_viewer_on_that_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """`myosight view --connect ADDRESS` (no --headless) opens the desktop viewer on that address, starting
    nothing (as `myosight gui --connect ADDRESS`)."""
    import myosight.gui.app
    from myosight.cli import main

    opened = []
    monkeypatch.setattr(myosight.gui.app, "run_viewer", lambda options: opened.append(options) or 0)
    assert main(["view", "--connect", "tcp://192.0.2.1:5557", "--duration", "3"]) == 0
    (options,) = opened
    assert options.connect == "tcp://192.0.2.1:5557" and options.source is None and options.duration_s == 3
