"""Faults with the real parts: the worker killed and restarted under a running viewer, an EMG source that goes
away and comes back, and a camera that fails while the armbands stream."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pylsl
import pytest
import torch
from lsl_helpers import pull_at_least, unique_source, wait_for

from myosight.capture.inlets import resolve
from myosight.capture.launch import source_process, spec_of_kind
from myosight.capture.streams import emg_stream_info, open_outlet
from myosight.data.actionsense import ARMS
from myosight.models.bundle import load_bundle
from myosight.realtime.messages import ResultPublisher
from myosight.realtime.worker import Worker, WorkerConfig

torch.set_num_threads(1)




def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def myosight(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m myosight ARGS` as its own process, output to a file (a pipe could fill and block it)."""
    handle = log.open("w")
    return subprocess.Popen([sys.executable, "-m", "myosight", *args], stdout=handle, stderr=subprocess.STDOUT,
                            text=True)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGINT, timeout_s: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_worker_killed_and_restarted_while_sources_and_viewer_run(synthetic_emg_model: dict, tmp_path: Path) -> None:
    """SIGKILL the worker mid-session: the viewer stays up and receives the new worker's predictions (on the
    same address) once it is restarted, and counts the restart."""
    session = synthetic_emg_model["sessions"][0].hdf5_path
    address, source = f"tcp://127.0.0.1:{free_port()}", unique_source("fault")
    predictions = tmp_path / "predictions.jsonl"
    worker_args = ["worker", "--model", str(synthetic_emg_model["bundle"]), "--source", source, "--emg-only",
                   "--address", address]
    replay = myosight(["replay", str(session), "--speed", "4", "--loop", "--no-video", "--source", source],
                      tmp_path / "replay.log")
    viewer = myosight(["view", "--connect", address, "--headless", "--jsonl", str(predictions)], tmp_path / "view.log")
    workers = [myosight(worker_args, tmp_path / "worker1.log")]
    try:
        assert wait_for(lambda: len(records(predictions)) >= 5, 120), (tmp_path / "worker1.log").read_text()
        workers[0].send_signal(signal.SIGKILL)
        assert workers[0].wait(timeout=10) == -signal.SIGKILL
        before = records(predictions)
        assert viewer.poll() is None  # the viewer does not depend on the worker
        workers.append(myosight(worker_args, tmp_path / "worker2.log"))
        resumed = wait_for(lambda: len(records(predictions)) >= len(before) + 5, 120)
        assert resumed, (tmp_path / "worker2.log").read_text()
        after = records(predictions)[len(before):]
        assert viewer.poll() is None and replay.poll() is None
        assert after[0]["seq"] < before[-1]["seq"]  # a new publisher, counting from 1 again
        assert min(r["window_end"] for r in after) > before[-1]["window_end"]  # the session went on meanwhile
    finally:
        for worker in workers:
            stop_process(worker)
        stop_process(replay)
        stop_process(viewer, signal.SIGTERM)
    summary = (tmp_path / "view.log").read_text()
    assert "restarted 1x" in summary and viewer.returncode == 0, summary


def test_emg_source_restarted_under_the_same_id_is_picked_up_again(synthetic_emg_model: dict) -> None:
    """The left armband's source process dies (its outlet disappears) and comes back with the same source id:
    the worker goes on with the right arm, reports the left lost, and uses it again once it is back."""
    source = unique_source("fault")
    outlets = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    worker = Worker(load_bundle(synthetic_emg_model["bundle"]),
                    WorkerConfig(source=source, emg_only=True, lost_after_s=0.3), publisher)
    rng = np.random.default_rng(0)
    clock = {"t": pylsl.local_clock() - 60.0}

    def send(seconds: float, arms=ARMS) -> None:
        n = int(seconds * 160)
        stamps = clock["t"] + np.arange(n) / 160
        for arm in arms:
            outlets[arm].push_chunk(rng.normal(0, 20, (n, 8)).astype(np.float32), stamps.tolist())
        clock["t"] = stamps[-1] + 1 / 160

    def step_until(condition, timeout_s: float, arms=ARMS) -> list:
        seen: list = []

        def one() -> bool:
            send(0.25, arms)
            seen.extend(worker.step())
            return condition(seen)

        assert wait_for(one, timeout_s), worker.health().streams
        return seen

    left = worker.emg_inlets["left"].health
    try:
        send(6.0)
        step_until(lambda seen: len(seen) > 0, 20)
        del outlets["left"]  # the left source is gone
        step_until(lambda seen: left.lost and len(seen) >= 2, 20, arms=("right",))
        outlets["left"] = open_outlet(emg_stream_info("left", source))  # restarted, same source id
        step_until(lambda seen: left.recovered_events >= 1, 60)
        recovered = step_until(lambda seen: any(p.emg_coverage[:, 0].min() > 0.99 for p in seen), 30)
        assert not left.lost and left.lost_events >= 1
        assert recovered[-1].emg_coverage[:, 0].min() > 0.99  # the left arm fills its channels again
    finally:
        worker.close()
        publisher.close()


def test_a_failed_camera_leaves_the_armbands_streaming(caplog: pytest.LogCaptureFixture) -> None:
    """camera+lsl-emg: the camera cannot deliver frames; the EMG relay goes on, so the worker can run sEMG-only."""
    source, name = unique_source("fault"), f"TestEMG-{uuid.uuid4().hex[:8]}"
    upstream = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EMG", 8, 200, pylsl.cf_float32, f"up-{name}"))
    spec = spec_of_kind("camera+lsl-emg", camera="/nonexistent/camera0.mp4", lsl_emg_left=name, source=source)
    stop, ready, result = threading.Event(), threading.Event(), {}

    def run() -> None:
        try:
            source_process(asdict(spec), stop, ready)
        except BaseException as error:
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    with caplog.at_level(logging.ERROR, logger="myosight.capture.kinds"):
        thread.start()
        try:
            assert ready.wait(30)
            relayed = pylsl.StreamInlet(resolve(f"myosight-{source}-emg-left", 10), max_buflen=10)
            relayed.open_stream(10)
            relayed.info(10)
            assert wait_for(lambda: "camera stopped" in caplog.text, 10)
            assert thread.is_alive()  # the camera failed, the source goes on
            stamps = pylsl.local_clock() + np.arange(200) / 200
            data = np.tile(np.arange(200, dtype=np.float32)[:, None], (1, 8))
            for lo in range(0, 200, 20):
                upstream.push_chunk(data[lo:lo + 20], stamps[lo:lo + 20].tolist())
            samples, _ = pull_at_least(relayed, 200, timeout=10)
            np.testing.assert_array_equal(samples[:, 0], np.arange(200))
            relayed.close_stream()
        finally:
            stop.set()
            thread.join(timeout=10)
    assert not thread.is_alive() and "error" not in result
    assert "no such file or device" in caplog.text and "sEMG only" in caplog.text

