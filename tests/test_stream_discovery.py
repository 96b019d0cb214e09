"""Sources that find each other: a consumer takes its streams by role, from one program or several, named or found.

The pure rules (which source gives which role, when a choice is ambiguous) are checked on stream descriptions;
the programs themselves (`myosight replay` for the armbands, `myosight camera` for the camera, `myosight worker`
and `myosight streams`) run as separate processes in an LSL session of their own (an lsl_api.cfg with its own
SessionID), so that nothing else on the machine is in reach and "whichever source streams it" is well defined.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
from lsl_helpers import unique_source, wait_for
from test_across_machines import free_port, lsl_config

from myosight.capture.choice import StreamChoice, parse_source_id
from myosight.capture.discovery import pick_streams, stream_rows
from myosight.capture.recorder import RecorderSpec, SessionRecorder
from myosight.capture.streams import emg_stream_info, marker_stream_info, open_outlet, video_stream_info
from myosight.constants import ARMS
from myosight.data.actionsense import ActionSenseSession
from myosight.errors import ConfigError, StreamError


# -- the rules ------------------------------------------------------------------------------------------------
def test_a_source_id_gives_its_source_and_role() -> None:
    assert parse_source_id("myosight-myo-emg-left") == ("myo", "emg-left")
    assert parse_source_id("myosight-my-lab-pc-video") == ("my-lab-pc", "video")  # names may hold hyphens
    assert parse_source_id("myosight-gui-labels") == ("gui", "labels")
    for other in ("amp-1", "myosight-emg-left", "myosight-camera-depth", ""):
        assert parse_source_id(other) is None


def test_each_role_takes_the_most_specific_option() -> None:
    choice = StreamChoice.from_options("replay", emg="myo", emg_left="left-band", video="camera")
    assert choice == StreamChoice(emg_left="left-band", emg_right="myo", video="camera", labels="replay")
    assert StreamChoice.of("lab").single == "lab" and StreamChoice.of("lab").explicit
    assert StreamChoice.of(None).single is None and not StreamChoice.of(None).explicit
    assert StreamChoice.from_options() == StreamChoice()
    assert choice.describe() == ("emg-left from 'left-band', emg-right from 'myo', video from 'camera', labels from "
                                 "'replay'")
    for bad in ("", " myo", "my'o"):
        with pytest.raises(ConfigError, match="--emg"):
            StreamChoice.from_options(emg=bad)


def _info(source: str, role: str) -> pylsl.StreamInfo:
    if role.startswith("emg-"):
        return emg_stream_info(role[4:], source)
    return video_stream_info(32, 30.0, source) if role == "video" else marker_stream_info(source)


def test_streams_from_several_programs_are_taken_by_role_and_ambiguity_is_refused() -> None:
    armband, camera, viewer = _info("myo", "emg-right"), _info("camera", "video"), _info("gui", "labels")
    picked = pick_streams(StreamChoice(), [armband, camera, viewer])
    assert {role: info.source_id() for role, info in picked.items()} == {
        "emg-right": "myosight-myo-emg-right", "video": "myosight-camera-video", "labels": "myosight-gui-labels"}
    replay = [_info("replay", role) for role in ("emg-left", "emg-right", "labels")]
    with pytest.raises(StreamError, match=r"more than one source streams the emg-right role: 'myo' on .*, "
                                          r"'replay' on .*--emg-right \(or --emg\)"):
        pick_streams(StreamChoice(), [armband, camera, viewer, *replay])
    chosen = pick_streams(StreamChoice.from_options(emg="myo", labels="gui"), [armband, camera, viewer, *replay])
    assert {role: parse_source_id(info.source_id())[0] for role, info in chosen.items()} == {
        "emg-right": "myo", "video": "camera", "labels": "gui"}  # the replay's left arm is not the armband's
    only_right = pick_streams(StreamChoice(), [armband, camera, *replay], roles=("video",))
    assert list(only_right) == ["video"]  # a role the consumer does not need is never refused
    calibration = _info("cal123", "labels")  # a second program publishing label markers
    worker_view = pick_streams(StreamChoice(), [armband, camera, viewer, calibration], optional=("labels",))
    assert sorted(worker_view) == ["emg-right", "video"]  # the worker shows no true label rather than refuse
    with pytest.raises(StreamError, match="more than one source streams the labels role"):
        pick_streams(StreamChoice(), [armband, camera, viewer, calibration])  # record: the labels matter


def test_the_stream_list_puts_myosight_roles_first() -> None:
    other = pylsl.StreamInfo("EMG L", "EMG", 8, 2000.0, pylsl.cf_float32, "amp-1")
    rows = stream_rows([other, _info("myo", "emg-right"), _info("camera", "video"), _info("myo", "emg-left")])
    assert [(r.role, r.source) for r in rows] == [("video", "camera"), ("emg-left", "myo"), ("emg-right", "myo"),
                                                  ("-", "-")]
    assert rows[-1].rate_hz == 2000.0 and rows[-1].format == "float32" and rows[0].format == "int8"


# -- the recorder takes its roles from several sources ----------------------------------------------------------
def test_record_takes_the_armband_from_one_program_and_the_labels_from_another(tmp_path: Path) -> None:
    armband, viewer = unique_source("band"), unique_source("gui")
    emg = {arm: open_outlet(emg_stream_info(arm, armband)) for arm in ARMS}
    labels = open_outlet(marker_stream_info(viewer))
    choice = StreamChoice.from_options(emg=armband, video=armband, labels=viewer)
    recorder = SessionRecorder(RecorderSpec(out_dir=str(tmp_path), streams=choice.to_dict(), video=False,
                                            classes=["Slice bread"]))
    path = recorder.open()
    start = pylsl.local_clock()
    labels.push_sample(["Slice bread|Start"], start)
    labels.push_sample(["Slice bread|Stop"], start + 2)
    stamps = start + np.arange(400) / 160
    for outlet in emg.values():
        outlet.push_chunk(np.zeros((400, 8), np.float32), stamps.tolist())
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    wanted = {"emg-left": 400, "emg-right": 400, "activities": 2}
    got = wait_for(lambda: {t.role: t.written + t.pending.rows for t in recorder.tracks} == wanted, 20)
    stop.set()
    thread.join(10)
    stats = recorder.close()
    assert got, stats.rows
    with ActionSenseSession(path) as session:
        assert [a.label for a in session.activities()] == ["Slice bread"]
        assert session.attrs("/")["Label source"] == f"myosight-{viewer}-labels"
        assert session.attrs("/")["LSL source"] == armband
    del emg, labels


# -- the programs, as a user starts them ---------------------------------------------------------------------------
def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "myosight", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=env, text=True)


def _streams(env: dict[str, str]) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "myosight", "streams", "--json", "--wait", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_armbands_and_camera_as_separate_programs_are_found_by_a_worker_given_no_source(
        synthetic_emg_model: dict, tmp_path: Path) -> None:
    """The armbands (a replay of a session's EMG and labels) and the camera (`myosight camera` on the session's
    video) run as two programs; `myosight streams` lists both; a worker started with no source option finds the
    EMG wherever it is; a second program streaming EMG makes the choice ambiguous, and the worker refuses,
    naming both, until told which (`--emg`)."""
    session = synthetic_emg_model["sessions"][0]
    env = {**os.environ, "LSLAPICFG": str(lsl_config(tmp_path / "lsl_api.cfg", f"discovery-{uuid.uuid4().hex[:8]}"))}
    logs = tmp_path / "logs"
    logs.mkdir()
    programs = [_start(["replay", str(session.hdf5_path), "--no-video", "--loop", "--speed", "2", "--source", "arms"],
                       logs / "arms.log", env),
                _start(["camera", str(session.video_path), "--loop", "--frame-size", "112", "--source", "cam"],
                       logs / "camera.log", env)]
    try:
        roles: set[tuple[str, str]] = set()

        def both_listed() -> bool:
            roles.clear()
            roles.update((row["role"], row["source"]) for row in _streams(env))
            return {("emg-left", "arms"), ("emg-right", "arms"), ("labels", "arms"), ("video", "cam")} <= roles

        assert wait_for(both_listed, 60, step_s=0.5), (roles, [p.read_text()[-800:] for p in logs.iterdir()])
        address = f"tcp://127.0.0.1:{free_port()}"
        predictions = tmp_path / "predictions.jsonl"
        viewer = _start(["view", "--connect", address, "--headless", "--jsonl", str(predictions)], logs / "view.log",
                        env)
        worker = _start(["worker", "--model", str(synthetic_emg_model["bundle"]), "--emg-only", "--address", address,
                         "--wait", "30"], logs / "worker.log", env)
        programs += [worker, viewer]
        arrived = wait_for(lambda: predictions.exists() and len(predictions.read_text().splitlines()) >= 3, 120)
        assert arrived, "\n".join(p.read_text()[-1500:] for p in logs.iterdir())
        _stop([worker])
        programs.append(_start(["replay", str(session.hdf5_path), "--no-video", "--loop", "--source", "other"],
                               logs / "other.log", env))
        assert wait_for(lambda: ("emg-left", "other") in {(r["role"], r["source"]) for r in _streams(env)}, 60, 0.5)
        refused = subprocess.run([sys.executable, "-m", "myosight", "worker", "--model",
                                  str(synthetic_emg_model["bundle"]), "--emg-only", "--address",
                                  f"tcp://127.0.0.1:{free_port()}", "--wait", "30"],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0
        assert "more than one source streams the emg-" in refused.stderr
        assert "'arms'" in refused.stderr and "'other'" in refused.stderr
    finally:
        _stop(programs)
