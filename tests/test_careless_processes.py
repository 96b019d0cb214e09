"""Careless and hostile use of the live processes: signals to `myosight run`, a failing source, two sources
under one name, a worker that connects after the first action started, and bad ZeroMQ addresses.

Real processes, real LSL on loopback and real ZeroMQ; each test uses its own LSL source name and port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pylsl
import pytest
import zmq
from lsl_helpers import unique_source, wait_for

from myosight.capture.inlets import resolve
from myosight.capture.streams import StreamNames
from myosight.cli import main
from myosight.data.actionsense import ActionSenseSession
from myosight.errors import StreamError
from myosight.models.bundle import load_bundle
from myosight.processes import EXIT_INTERRUPTED, EXIT_SOURCE_FAILED
from myosight.realtime.messages import ResultPublisher
from myosight.realtime.worker import Worker, WorkerConfig

#: How long every process of a stopped command may take to be gone (the worker stops within a second or two;
#: a child that does not is terminated after 10 s).
GONE_WITHIN_S = 30.0
FIRST_ACTIVITY = "Peel a cucumber"


@pytest.fixture(scope="module")
def bundle() -> Path:
    from myosight.training.demo_model import demo_bundle

    return demo_bundle(progress=False)


@pytest.fixture(scope="module")
def long_action_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sEMG-only session whose first action starts half a second in and lasts 40 s."""
    from myosight.data.synth import SynthConfig, write_session

    config = SynthConfig(subjects=("S01",), classes=(FIRST_ACTIVITY,), actions_per_class=1, seconds_per_action=40.0,
                         duration_jitter=0.0, rest_seconds=0.5, write_video=False, seed=5)
    return write_session(config, tmp_path_factory.mktemp("long-action"), "S01", progress=False).hdf5_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def myosight(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m myosight ARGS` in its own session (so that a signal can reach its whole process group, as
    Ctrl-C in a terminal does), output to a file (a pipe could fill and block it)."""
    return subprocess.Popen([sys.executable, "-m", "myosight", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def bindable(address: str) -> bool:
    """Whether a new worker could publish on `address` now."""
    socket_ = zmq.Context.instance().socket(zmq.PUB)
    try:
        socket_.bind(address)
        return True
    except zmq.ZMQError:
        return False
    finally:
        socket_.close(linger=0)


def health_arrives(address: str, timeout_s: float) -> bool:
    """Whether the worker publishing on `address` sends a message within `timeout_s`."""
    subscriber = zmq.Context.instance().socket(zmq.SUB)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"health")
    subscriber.connect(address)
    try:
        return bool(subscriber.poll(int(timeout_s * 1000)))
    finally:
        subscriber.close(linger=0)


def error_lines(output: str) -> list[str]:
    """What myosight said (liblsl's own start-up log lines left out)."""
    return [line for line in output.splitlines() if line.strip() and "INFO|" not in line]


# -- 1. signals: nothing outlives the command ---------------------------------------------------------------


@pytest.mark.parametrize(("sig", "to_group", "expected"), [
    (signal.SIGTERM, False, 0),  # `kill`, systemd, a container stop
    (signal.SIGHUP, False, 0),  # the terminal closed
    (signal.SIGINT, True, EXIT_INTERRUPTED),  # Ctrl-C reaches the whole process group
    (signal.SIGKILL, False, -signal.SIGKILL),  # no chance to clean up: the children see their parent die
], ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGKILL"])
def test_a_signal_to_run_leaves_no_process_and_frees_the_port(bundle: Path, tmp_path: Path, sig: int,
                                                               to_group: bool, expected: int) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    run = myosight(["run", "--model", str(bundle), "--source", "synthetic", "--headless", "--emg-only", "--address",
                    address], tmp_path / "run.log")
    try:
        assert health_arrives(address, 120), (tmp_path / "run.log").read_text()[-3000:]
        children = descendants(run.pid)  # source, worker, and multiprocessing's resource tracker
        assert len(children) >= 3, children
        if to_group:
            os.killpg(run.pid, sig)
        else:
            run.send_signal(sig)
        assert run.wait(timeout=GONE_WITHIN_S) == expected, (tmp_path / "run.log").read_text()[-3000:]
        assert wait_for(lambda: not any(alive(pid) for pid in children), GONE_WITHIN_S), \
            [Path(f"/proc/{pid}/cmdline").read_text() for pid in children if alive(pid)]
        assert wait_for(lambda: bindable(address), 5), f"{address} is still taken"
        assert "Traceback" not in (tmp_path / "run.log").read_text()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)


# -- 6. a source that fails: at once, in one line -----------------------------------------------------------


def test_run_with_a_failing_source_fails_at_once_with_its_one_line_error(bundle: Path, tmp_path: Path) -> None:
    """An HDF5 file without the ActionSense streams: the replay fails in its child process; `run` says why in
    the child's own words, without a traceback, and does not wait for a source that will never be ready."""
    import h5py

    empty = tmp_path / "empty.hdf5"
    h5py.File(empty, "w").close()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "myosight", "run", "--model", str(bundle), "--source", "replay",
                             str(empty), "--headless", "--emg-only", "--address", f"tcp://127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    said = error_lines(result.stdout + result.stderr)
    assert result.returncode == EXIT_SOURCE_FAILED, said
    assert len(said) == 1 and said[0].startswith("myosight: error: the replay source failed: "), said
    assert "empty.hdf5" in said[0] and "myo-left/emg" in said[0]
    assert elapsed < 25, f"{elapsed:.0f} s: waited for the source to be ready"  # the ready timeout is 30 s


# -- 4. two sources under one name ---------------------------------------------------------------------------


def test_two_sources_with_one_name_are_refused_by_the_worker(bundle: Path, long_action_session: Path,
                                                             tmp_path: Path) -> None:
    """Two replays with the same --source: the second warns that the name is taken, and a worker on that name
    refuses to start, naming the streams, instead of taking one arm from each session."""
    source = unique_source("twin")
    replay = ["replay", str(long_action_session), "--no-video", "--loop", "--source", source]
    first = myosight(replay, tmp_path / "first.log")
    second = None
    try:
        resolve(StreamNames(source).source_id("emg-left"), 60)
        second = myosight(replay, tmp_path / "second.log")
        twice = f"source_id='{StreamNames(source).source_id('emg-left')}'"
        assert wait_for(lambda: len(pylsl.resolve_bypred(twice, 2, 1.0)) == 2, 60)
        assert "already used on the network" in (tmp_path / "second.log").read_text()
        assert "already used" not in (tmp_path / "first.log").read_text()
        publisher = ResultPublisher(f"tcp://127.0.0.1:{free_port()}")
        try:
            with pytest.raises(StreamError, match="more than one source") as refused:
                Worker(load_bundle(bundle), WorkerConfig(source=source, emg_only=True, resolve_timeout_s=10), publisher)
        finally:
            publisher.close()
        for arm in ("left", "right"):
            assert f"myosight-{source}-emg-{arm} from 2 streams" in str(refused.value)
    finally:
        for process in (first, second):
            if process is not None:
                process.send_signal(signal.SIGINT)
                process.wait(20)


# -- 7. the first action's label reaches a worker that connects after it started ---------------------------


def test_a_worker_that_connects_late_knows_the_activity_in_progress(bundle: Path, long_action_session: Path,
                                                                     tmp_path: Path) -> None:
    """The replay has sent the first Start marker before the worker connects (it loads its model first): the
    replay announces the open activity again when the worker's label inlet connects, so the predictions of
    the first action carry their true label instead of none until the next action."""
    with ActionSenseSession(long_action_session) as session:
        first = session.activities()[0]
        first_emg_s = min(session.emg(arm).time_s[0] for arm in ("left", "right"))
    assert first.label == FIRST_ACTIVITY and first.stop_s - first.start_s > 30
    source = unique_source("late")
    replay = myosight(["replay", str(long_action_session), "--no-video", "--source", source], tmp_path / "replay.log")
    probe = None
    try:
        # an EMG probe (not a label consumer) shows how far the replay has got: stamps are recorded time + shift
        probe = inlet_for_source(source, "emg-left")
        _, stamps = probe.pull_chunk(timeout=30.0, max_samples=1)
        assert stamps, (tmp_path / "replay.log").read_text()
        past_start = stamps[0] + (first.start_s - first_emg_s) + 0.5  # the Start marker has been sent by then

        def beyond_start() -> bool:
            _, newer = probe.pull_chunk(timeout=0.0)
            return bool(newer) and newer[-1] > past_start

        assert wait_for(beyond_start, 30)
        probe.close_stream()
        probe = None
        publisher = ResultPublisher(f"tcp://127.0.0.1:{free_port()}")
        worker = Worker(load_bundle(bundle), WorkerConfig(source=source, emg_only=True), publisher)
        try:
            assert worker.label_inlet is not None
            assert wait_for(lambda: worker.step() is not None and worker.labels.events, 10), \
                "the worker never heard of the activity in progress"
            stamp, label = worker.labels.events[0]
            assert label == FIRST_ACTIVITY
            assert stamp < past_start  # the Start as it was stamped, not the time the worker connected
            assert worker.labels.at(past_start) == FIRST_ACTIVITY
        finally:
            worker.close()
            publisher.close()
    finally:
        if probe is not None:
            probe.close_stream()
        replay.send_signal(signal.SIGINT)
        replay.wait(20)


def inlet_for_source(source: str, kind: str) -> pylsl.StreamInlet:
    info = resolve(StreamNames(source).source_id(kind), 60)
    inlet = pylsl.StreamInlet(info, max_buflen=10)
    inlet.open_stream(10)
    inlet.info(10)
    return inlet


# -- 9. socket addresses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "option"), [
    (["worker", "--emg-only", "--address", "{address}"], "worker --address"),
    (["run", "--source", "synthetic", "--headless", "--emg-only", "--address", "{address}"], "run --address"),
    (["view", "--headless", "--duration", "1", "--connect", "{address}"], "view --connect"),
], ids=["worker", "run", "view"])
@pytest.mark.parametrize("address", ["nonsense", "tcp://127.0.0.1:notaport", "http://127.0.0.1:5557"])
def test_a_malformed_address_is_one_line_naming_the_option(bundle: Path, capsys: pytest.CaptureFixture,
                                                           command: list[str], option: str, address: str) -> None:
    args = [part.format(address=address) for part in command]
    if command[0] != "view":
        args += ["--model", str(bundle)]
    assert main(args) == 1
    said = error_lines(capsys.readouterr().err)
    assert said == [said[0]] and said[0].startswith(f"myosight: error: {option} {address}: cannot "), said


@pytest.mark.parametrize(("command", "option"), [
    (["worker", "--emg-only"], "worker --address"),
    (["run", "--source", "synthetic", "--headless", "--emg-only"], "run --address"),
], ids=["worker", "run"])
def test_a_port_in_use_is_one_line_naming_the_option(bundle: Path, capsys: pytest.CaptureFixture,
                                                     command: list[str], option: str) -> None:
    """Another worker already publishes on the port: refused at once (`run` starts no child for nothing)."""
    taken = ResultPublisher(f"tcp://127.0.0.1:{free_port()}")
    try:
        started = time.monotonic()
        assert main([*command, "--model", str(bundle), "--address", taken.address]) == 1
        assert time.monotonic() - started < 10
    finally:
        taken.close()
    said = error_lines(capsys.readouterr().err)
    assert said == [f"myosight: error: {option} {taken.address}: cannot bind it: the port is in use (is another "
                    "worker running on it?)"], said
