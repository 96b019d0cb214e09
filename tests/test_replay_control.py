"""Replay control on loopback: a real replay over LSL, a real ZeroMQ client; pause, play, seek, speed, bad requests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
import zmq
from lsl_helpers import pull_at_least, wait_for

from myosight.capture.playback import CHUNK_SECONDS, SEEK_GAP_S
from myosight.capture.replay import SessionReplay
from myosight.capture.replay_control import ReplayControlClient, ReplayControlServer, parse_request
from myosight.data.actionsense import ActionSenseSession
from myosight.data.synth import SynthConfig, write_sessions
from myosight.errors import ConfigError, StreamError

CLASSES = ("Slice bread", "Peel a potato", "Clean a plate with a towel")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SynthConfig(subjects=("S05",), actions_per_class=1, seconds_per_action=(6.0, 6.0), classes=CLASSES,
                         seed=4, write_video=False)
    return write_sessions(config, tmp_path_factory.mktemp("control"), progress=False)[0].hdf5_path



def connect(source: str, kind: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_bypred(f"source_id='myosight-{source}-{kind}'", 1, 10.0)
    assert found, f"stream {kind} of {source} not found"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(10.0)
    inlet.info(10.0)
    return inlet


class Running:
    """A replay with a control socket, sending in a thread, with an inlet on its left arm and its labels."""

    def __init__(self, session: Path, speed: float = 1.0, loop: bool = False) -> None:
        self.source = f"ctl{uuid.uuid4().hex[:8]}"
        self.replay = SessionReplay(session, speed=speed, loop=loop, source=self.source,
                                    control_address="tcp://127.0.0.1:0")
        self.replay.open()
        self.emg = connect(self.source, "emg-left")
        self.labels = connect(self.source, "labels")
        self.client = ReplayControlClient(self.replay.control_address, timeout_ms=5000)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.replay.run, args=(self.stop,), daemon=True)
        self.received = 0

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.close()
        self.labels.close_stream()
        self.emg.close_stream()

    def pull(self, count: int, timeout_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
        samples, stamps = pull_at_least(self.emg, count, timeout_s)
        self.received += len(stamps)
        return samples, stamps

    def drain(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything the replay has sent so far (it has stopped sending: paused or seeking)."""
        samples, stamps = [], []
        while self.received < self.replay.stats.emg_samples["left"]:
            got = self.pull(self.replay.stats.emg_samples["left"] - self.received)
            assert len(got[1]), "samples the replay sent did not arrive"
            samples.append(got[0])
            stamps.append(got[1])
        return (np.concatenate(samples), np.concatenate(stamps)) if stamps else (np.zeros((0, 8)), np.zeros(0))


def test_pause_stops_sending_and_play_resumes(session: Path) -> None:
    with Running(session) as run:
        _, before = run.pull(100)
        status = run.client.pause()
        assert status["paused"] is True and 0 < status["position_s"] < status["duration_s"]
        sent = run.replay.stats.emg_samples["left"]
        _, rest = run.drain()
        # observe a full second: nothing is sent and nothing arrives while paused
        extra, _ = pull_at_least(run.emg, 1, timeout=1.0)
        assert len(extra) == 0 and run.replay.stats.emg_samples["left"] == sent
        assert run.client.status()["position_s"] == status["position_s"]
        assert run.client.play()["paused"] is False
        _, after = run.pull(50)
        stamps = np.concatenate([before, rest, after])
        assert np.all(np.diff(stamps) > 0)  # stamps keep increasing across the pause


def test_seek_moves_the_position_keeps_stamps_increasing_and_resends_the_label(session: Path) -> None:
    with ActionSenseSession(session) as recorded:
        left = recorded.emg("left")
        actions = recorded.activities()
    with Running(session, speed=4.0) as run:
        first = run.replay.first_s
        wait_for(lambda: run.replay.playback is not None and run.replay.playback.open_activity is not None, 20)
        open_before = run.replay.playback.open_activity
        run.client.pause()
        _, before = run.drain()
        target = actions[0].start_s + 2.0 - first  # into the middle of the first action
        status = run.client.seek(target)
        assert status["position_s"] == pytest.approx(target) and status["paused"] is True
        shift = run.replay.playback.shift
        run.client.play()
        samples, after = run.pull(40)
        assert after[0] >= before[-1] + SEEK_GAP_S  # a gap, then stamps go on increasing
        assert np.all(np.diff(np.concatenate([before, after])) > 0)
        # the data at the new position (from the start of the 20-ms chunk that reaches it)
        recorded_times = after[:40] - shift
        assert first + target - CHUNK_SECONDS <= recorded_times[0] <= first + target
        index = int(np.searchsorted(left.time_s, recorded_times[0] - 1e-6))
        assert np.allclose(recorded_times, left.time_s[index:index + 40], atol=1e-6)
        assert np.array_equal(samples[:40], left.data[index:index + 40])
        assert shift == round(shift)  # the time base moved by whole seconds
        markers, stamps = pull_markers(run.labels, until=f"{actions[0].label}|Start", after=open_before)
        assert [m for m in markers if m.endswith("|Stop")][-1] == f"{open_before}|Stop"
        assert markers[-1] == f"{actions[0].label}|Start"
        assert stamps[-1] == pytest.approx(first + target + shift)
        assert np.all(np.diff(stamps) > 0)


def pull_markers(inlet: pylsl.StreamInlet, until: str, after: str | None) -> tuple[list[str], np.ndarray]:
    """Markers up to the re-sent `until` that follows the Stop of `after` (bounded wait)."""
    markers, stamps = [], []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sample, stamp = inlet.pull_sample(timeout=0.2)
        if sample is None:
            continue
        markers.append(sample[0])
        stamps.append(stamp)
        if sample[0] == until and f"{after}|Stop" in markers:
            break
    return markers, np.asarray(stamps)


def test_speed_change_is_applied(session: Path) -> None:
    with Running(session, speed=1.0) as run:
        run.pull(10)
        assert run.client.status()["speed"] == 1.0
        status = run.client.set_speed(500.0)
        assert status["speed"] == 500.0
        # at 500x the rest of the session (half a minute at 1x) is sent at once
        assert wait_for(lambda: not run.thread.is_alive(), 20)
        assert run.replay.stats.passes == 1
        with pytest.raises(StreamError):  # the replay ended: its control socket is closed
            ReplayControlClient(run.replay.control_address, timeout_ms=200).status()


def test_bad_requests_get_an_error_reply(session: Path) -> None:
    with Running(session) as run:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, 5000)
        socket.connect(run.replay.control_address)
        bad = [b"\xff\xfe", b"not json", b"[1, 2]", b'{"command": "fly"}', b'{"command": "set_speed"}',
               b'{"command": "set_speed", "speed": "fast"}', b'{"command": "set_speed", "speed": -2}',
               b'{"command": "seek", "position_s": NaN}', b'{"command": "seek", "position_s": true}',
               *HOSTILE_REQUESTS.values()]
        try:
            for request in bad:
                socket.send(request)
                reply = json.loads(socket.recv())
                assert reply["ok"] is False and reply["error"], request
            socket.send_multipart([b'{"command": "status"}', b"extra"])
            assert json.loads(socket.recv())["ok"] is False
        finally:
            socket.close(linger=0)
        assert run.client.status()["paused"] is False  # the replay goes on
        with pytest.raises(ConfigError, match=r"speed must be from 0\.01 to 1000"):
            run.client.set_speed(0.0)


#: Requests a careless or hostile peer sends: each gets an error reply and changes nothing.
HOSTILE_REQUESTS = {
    "deep nesting": b'{"command": "seek", "position_s": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    "an integer beyond float": b'{"command": "seek", "position_s": 1' + b"0" * 400 + b"}",
    "a 3000-digit integer": b'{"command": "seek", "position_s": ' + b"9" * 3000 + b"}",
    "a speed that floods the CPU": b'{"command": "set_speed", "speed": 1e300}',
    "a speed that freezes the replay": b'{"command": "set_speed", "speed": 1e-300}',
    "a field the command does not have": b'{"command": "play", "speed": 2}',
    "a command that is not a string": b'{"command": {"name": "play"}}',
    "a long unknown command": b'{"command": "' + b"x" * 3000 + b'"}',
}


@pytest.mark.parametrize("request_bytes", HOSTILE_REQUESTS.values(), ids=HOSTILE_REQUESTS.keys())
def test_a_hostile_request_is_refused_with_a_short_reason(request_bytes: bytes) -> None:
    """Every hostile request is a ConfigError (never another exception, which would end the replay), and the
    reason never echoes the request back whole."""
    with pytest.raises(ConfigError) as refused:
        parse_request([request_bytes])
    assert len(str(refused.value)) < 200


def test_a_speed_in_the_command_lines_range_is_taken() -> None:
    assert parse_request([b'{"command": "set_speed", "speed": 1000}']).value == 1000.0
    assert parse_request([b'{"command": "set_speed", "speed": 0.01}']).value == 0.01
    assert parse_request([b'{"command": "seek", "position_s": 1e300}']).value == 1e300  # clamped by the replay


def test_client_raises_when_nobody_answers_and_recovers(tmp_path: Path) -> None:
    probe = ReplayControlServer("tcp://127.0.0.1:0")
    address = probe.address
    probe.close()  # a port nobody listens on now
    client = ReplayControlClient(address, timeout_ms=300)
    with pytest.raises(StreamError, match="did not answer"):
        client.status()
    server = ReplayControlServer(address)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if server.wait(0.05):
                server.serve(lambda command: {"position_s": 0.0, "command": command.name})

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert client.pause()["command"] == "pause"  # a fresh socket after the timeout
    finally:
        stop.set()
        thread.join(5)
        server.close()
        client.close()


def test_replay_command_answers_on_its_control_address(session: Path) -> None:
    """`myosight replay --control` in its own process: seek to the end at high speed and it finishes."""
    probe = ReplayControlServer("tcp://127.0.0.1:0")
    address = probe.address
    probe.close()
    process = subprocess.Popen([sys.executable, "-m", "myosight", "replay", str(session), "--source",
                                f"cli{uuid.uuid4().hex[:6]}", "--control", address],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = ReplayControlClient(address, timeout_ms=500)
    try:
        status = None
        deadline = time.monotonic() + 60
        while status is None and time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(StreamError):
                status = client.status()
        assert status is not None and status["speed"] == 1.0, process.stderr.read() if process.poll() else ""
        client.set_speed(100.0)
        client.seek(status["duration_s"] - 1.0)
        assert process.wait(60) == 0
        assert "sent" in process.stdout.read()
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_start_sends_the_part_before_the_first_whole_second_at_once() -> None:
    """The first window ends on a whole second of the LSL clock; the replay starts there, so that window's data is
    complete 5 s after the start (not up to 6 s): what was recorded before the first whole second (0.7 s here) goes
    out at once, stamped in the past, and the time base stays a whole-second shift."""
    from myosight.capture.playback import Event, Playback, ReplayStats

    sent: list[tuple[float, float, float, float]] = []  # recorded time, stamp, clock at sending, position

    def event(recorded_s: float) -> Event:
        def send(shift: float) -> None:
            sent.append((recorded_s, recorded_s + shift, pylsl.local_clock(), playback.position()))
        return Event(recorded_s, send)

    times = (100.3, 100.6, 100.9, 101.0, 101.2, 101.4)
    playback = Playback([event(t) for t in times], 100.3, 101.4, speed=1.0, loop=False, stats=ReplayStats())
    playback.run(threading.Event(), start_lsl=pylsl.local_clock())

    assert [s[0] for s in sent] == list(times)
    assert playback.shift == round(playback.shift)
    first_whole = next(s for s in sent if s[0] == 101.0)
    assert first_whole[1] == pytest.approx(round(first_whole[1]), abs=1e-6)  # stamped on a whole LSL second
    assert all(stamp <= clock + 1e-6 for _, stamp, clock, _ in sent)  # no stamp in the future
    assert sent[0][3] >= 0.7 - 1e-9  # at the first send the replay already stands at the first whole second
