"""The armband path as a user types it: `myosight myo` and the commands beside it, against a simulated Myo behind
bleak's API (tests/devices/bleak) that plays real recordings of the MyoArmbandDataset (../shared/realemg).

Everything above the BLE API is the code a user runs: the command line, the driver, the parsing of the 16-byte
notifications, the LSL outlet, and `myosight record` on the other side of the network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
from conftest import child_environment
from lsl_helpers import pull_at_least, wait_for
from test_faults import stop_process

from myosight.data.actionsense import ActionSenseSession

DEVICES = Path(__file__).resolve().parent / "devices"
RECORDING = [f"EvaluationDataset/Female0/training0/classe_{n}" for n in range(3)]
RIGHT, LEFT = "C0:FF:EE:00:00:0A", "C0:FF:EE:00:00:0B"


@pytest.fixture
def armbands(shared_dir: Path, tmp_path: Path) -> dict:
    """Two simulated armbands playing real recordings, the environment that puts them behind `import bleak`, and
    the log of the commands they received."""
    npz = shared_dir / "realemg" / "myoarmband.npz"
    log = tmp_path / "commands.jsonl"
    described = [{"address": RIGHT, "name": "Myo right", "rssi": -48, "battery": 91, "npz": str(npz),
                  "keys": RECORDING, "log": str(log)},
                 {"address": LEFT, "name": "Myo left", "rssi": -70, "battery": 40, "npz": str(npz),
                  "keys": RECORDING[::-1], "log": str(log)}]
    env = {**child_environment(DEVICES), "MYOSIGHT_SIMULATED_ARMBANDS": json.dumps(described)}
    with np.load(npz) as data:
        recording = np.concatenate([data[key] for key in RECORDING]).astype(np.float32)
    return {"env": env, "log": log, "recording": recording}


def _myosight(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "myosight", *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def _commands(log: Path, address: str) -> list[str]:
    if not log.is_file():
        return []
    return [entry["command"] for line in log.read_text().splitlines() if (entry := json.loads(line))["address"] ==
            address]


def test_scan_lists_the_armbands_and_identify_makes_one_vibrate(armbands: dict) -> None:
    scanned = _myosight(["myo", "--scan"], armbands["env"])
    assert scanned.returncode == 0, scanned.stderr
    lines = [line for line in scanned.stdout.splitlines() if line.startswith("C0:FF:EE")]
    assert [line.split()[0] for line in lines] == [RIGHT, LEFT]  # strongest signal first
    assert "signal -48 dBm" in lines[0] and "battery 91 %" in lines[0] and "firmware 1.5.1970" in lines[0]
    assert "battery 40 %" in lines[1]
    identified = _myosight(["myo", "--identify", LEFT], armbands["env"])
    assert identified.returncode == 0, identified.stderr
    assert _commands(armbands["log"], LEFT) == ["030103"]  # vibrate, long: the vendor's command 0x03
    assert _commands(armbands["log"], RIGHT) == []
    missing = _myosight(["myo", "--identify", "C0:FF:EE:00:00:FF"], armbands["env"])
    assert missing.returncode != 0 and "armband C0:FF:EE:00:00:FF not found" in missing.stderr


def _start_myo(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "myosight", "myo", *args], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True)


def test_myo_streams_the_armbands_bytes_and_says_which_armband_it_took(armbands: dict, tmp_path: Path) -> None:
    """`myosight myo --right` with no address takes the first armband found and says so in a warning; the samples
    on the LSL stream are the recording's, in order, at the armband's 200 Hz."""
    source = f"band{uuid.uuid4().hex[:8]}"
    log = tmp_path / "myo.log"
    myo = _start_myo(["--right", "--source", source], armbands["env"], log)
    try:
        found = pylsl.resolve_bypred(f"source_id='myosight-{source}-emg-right'", 1, 60)
        assert found, log.read_text()
        inlet = pylsl.StreamInlet(found[0], max_buflen=30)
        samples, stamps = pull_at_least(inlet, 400, timeout=30)
        assert len(samples) == 400, log.read_text()
        recording = np.concatenate([armbands["recording"]] * 2)  # the armband plays it again and again
        first = np.flatnonzero((recording == samples[0]).all(axis=1))
        assert any(np.array_equal(recording[i:i + 400], samples) for i in first)  # the bytes, in order
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert 150 < rate < 260  # the armband's pace, not a burst
        assert wait_for(lambda: "no address was given, so armband C0:FF:EE:00:00:0A" in log.read_text(), 10)
    finally:
        stop_process(myo)
    sent = _commands(armbands["log"], RIGHT)
    assert sent[:2] == ["090101", "0103030000"]  # never sleep, then raw EMG (the vendor's set-mode command)
    assert sent[-2:] == ["0103000000", "090100"]  # EMG off, normal sleep again: the battery is spared


def test_record_takes_the_armband_of_another_program(armbands: dict, tmp_path: Path) -> None:
    """`myosight myo` in one terminal, `myosight record --emg NAME` in another: the session holds the armband's
    samples as the recording has them."""
    source = f"band{uuid.uuid4().hex[:8]}"
    myo = _start_myo(["--right", RIGHT, "--source", source], armbands["env"], tmp_path / "myo.log")
    try:
        out = tmp_path / "sessions"
        recorded = _myosight(["record", "--emg", source, "--video", source, "--labels", source, "--out", str(out),
                              "--duration", "4", "--wait", "60"], armbands["env"], timeout_s=180)
        assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    finally:
        stop_process(myo)
    sessions = sorted(out.glob("*.hdf5"))
    assert len(sessions) == 1
    with ActionSenseSession(sessions[0]) as session:
        assert session.arms == ("right",)
        emg = session.emg("right")
    assert len(emg) > 2 * 160
    recording = np.concatenate([armbands["recording"]] * 2)  # the armband plays it again and again
    first = np.flatnonzero((recording == emg.data[0]).all(axis=1))
    assert any(np.array_equal(recording[i:i + len(emg)], emg.data) for i in first)


@pytest.mark.slow
def test_run_with_two_armbands_and_a_camera_as_typed(armbands: dict, synthetic_emg_model: dict, tmp_path: Path) -> None:
    """`myosight run --source camera+myo --myo-left ADDR --myo-right ADDR --camera FILE`: the armbands behind the
    BLE API, the camera a video file through the same OpenCV capture code, the worker and the terminal table as a
    user starts them; predictions come, from the armbands' streams."""
    video = synthetic_emg_model["sessions"][0].video_path
    jsonl = tmp_path / "predictions.jsonl"
    done = _myosight(["run", "--model", str(synthetic_emg_model["bundle"]), "--source", "camera+myo", "--myo-left",
                      LEFT, "--myo-right", RIGHT, "--camera", str(video), "--emg-only", "--headless", "--duration",
                      "20", "--jsonl", str(jsonl)], armbands["env"], timeout_s=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) >= 5 and all(record["mode"] == "emg" for record in records)
    assert "the sources publish as the LSL source 'run" in done.stdout
    for address in (LEFT, RIGHT):
        assert "0103030000" in _commands(armbands["log"], address)  # raw EMG asked of each armband


def test_the_viewer_names_the_armband_of_each_arm(qtbot, armbands: dict, synthetic_emg_model: dict,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The viewer started on camera+myo, the left armband named by address, the right one left to a scan: each
    arm's trace is titled with the armband streaming it, the scanned one marked to be checked (swapped arms give
    wrong predictions, so which is which is shown, never guessed in silence)."""
    from myosight.capture.launch import spec_of_kind
    from myosight.gui.controller import Controller, WorkerSettings, free_tcp_address
    from myosight.gui.main_window import MainWindow
    from myosight.gui.state import GuiState

    monkeypatch.syspath_prepend(str(DEVICES))  # the source's child process imports the simulated bleak
    monkeypatch.setenv("MYOSIGHT_SIMULATED_ARMBANDS", armbands["env"]["MYOSIGHT_SIMULATED_ARMBANDS"])
    state = GuiState()
    controller = Controller(state, free_tcp_address(), WorkerSettings(bundle=None))
    window = MainWindow(state, controller, controller.address)
    qtbot.addWidget(window)
    window.show()
    video = synthetic_emg_model["sessions"][0].video_path
    controller.start_source(spec_of_kind("camera+myo", source=f"band{uuid.uuid4().hex[:8]}", camera=str(video),
                                         myo_left=LEFT, arms=("left", "right")))
    try:
        qtbot.waitUntil(lambda: len(window.traces.titles) == 2 and all(
            "·" in title.split("arm", 1)[1] for title in window.traces.titles.values()), timeout=60000)
        assert window.traces.titles["emg-left"] == f"sEMG · left arm · Myo {LEFT}"
        assert window.traces.titles["emg-right"] == f"sEMG · right arm · Myo right {RIGHT} (first found: check the arm)"
        qtbot.waitUntil(lambda: window.traces.curve_points("emg-right") > 50, timeout=30000)
    finally:
        controller.shutdown()


@pytest.mark.slow
def test_calibrate_records_the_armbands_as_typed(armbands: dict, synthetic_emg_model: dict, tmp_path: Path) -> None:
    """`myosight calibrate --source camera+myo --myo-left ADDR --myo-right ADDR --camera FILE --headless`: the
    person's prompts are recorded from the armbands (their bytes, both arms), a bundle is adapted, and every
    process ends cleanly (no abort of a source thread still holding its outlet)."""
    from myosight.models.bundle_header import read_bundle_metadata

    base = synthetic_emg_model["bundle"]
    classes = read_bundle_metadata(base)["classes"][:2]
    out = tmp_path / "me"
    done = _myosight(["calibrate", "--source", "camera+myo", "--myo-left", LEFT, "--myo-right", RIGHT, "--camera",
                      str(synthetic_emg_model["sessions"][0].video_path), "--classes", *classes, "--reps", "2",
                      "--seconds", "3", "--rest", "1", "--lead-in", "1", "--emg-only", "--base", str(base), "--out",
                      str(out), "--headless", "--json"], armbands["env"], timeout_s=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "terminate called" not in done.stderr and (out / "bundle.safetensors").is_file()
    outcome = json.loads(done.stdout[done.stdout.index("{"):])
    assert outcome["stage"] == "done" and outcome["bundle"] == str(out / "bundle.safetensors")
    sessions = sorted((out / "recordings").glob("*.hdf5"))
    assert sessions
    with ActionSenseSession(sessions[0]) as session:
        assert session.arms == ("left", "right")
        right = session.emg("right").data
        labelled = {action.label for action in session.activities()}
    recording = np.concatenate([armbands["recording"]] * 3)
    first = np.flatnonzero((recording == right[0]).all(axis=1))
    assert len(right) > 160 and any(np.array_equal(recording[i:i + len(right)], right) for i in first)
    assert labelled == set(classes)


@pytest.mark.slow
def test_calibrate_records_the_armbands_another_program_streams(armbands: dict, synthetic_emg_model: dict,
                                                                tmp_path: Path) -> None:
    """`myosight myo --left ADDR --right ADDR` in one terminal, `myosight streams` lists its streams with each
    arm's armband, and `myosight calibrate --streams --emg SOURCE --headless` in another records them by role
    (nothing started) and adapts a bundle on them."""
    from myosight.models.bundle_header import read_bundle_metadata

    bands = f"band{uuid.uuid4().hex[:8]}"
    myo = _start_myo(["--left", LEFT, "--right", RIGHT, "--source", bands], armbands["env"], tmp_path / "myo.log")
    base = synthetic_emg_model["bundle"]
    classes = read_bundle_metadata(base)["classes"][:2]
    out = tmp_path / "me"
    try:
        assert pylsl.resolve_bypred(f"source_id='myosight-{bands}-emg-left'", 1, 60), "the armbands never streamed"
        listed = json.loads(_myosight(["streams", "--json"], armbands["env"]).stdout)
        assert {(row["role"], row["device"]) for row in listed if row["source"] == bands} == {
            ("emg-left", f"Myo {LEFT}"), ("emg-right", f"Myo {RIGHT}")}
        # the armbands named by role, as a user does where other programs stream too (the suite's leftovers)
        done = _myosight(["calibrate", "--streams", "--emg", bands, "--classes", *classes, "--reps", "2", "--seconds",
                          "3", "--rest", "1", "--lead-in", "1", "--emg-only", "--base", str(base), "--out", str(out),
                          "--headless", "--json"], armbands["env"], timeout_s=400)
    finally:
        stop_process(myo)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"recording emg-left from '{bands}', emg-right from '{bands}'" in done.stderr
    assert json.loads(done.stdout[done.stdout.index("{"):])["stage"] == "done"
    with ActionSenseSession(sorted((out / "recordings").glob("*.hdf5"))[0]) as session:
        assert session.arms == ("left", "right") and len(session.emg("left").data) > 160
        assert {action.label for action in session.activities()} == set(classes)


def test_the_viewer_shows_armbands_and_a_camera_of_separate_programs(qtbot, armbands: dict, synthetic_emg_model: dict,
                                                                      tmp_path: Path) -> None:
    """`myosight myo` and `myosight camera 0` as two programs (the camera simulated at OpenCV's capture call, a
    video in real time), and a viewer of a worker elsewhere told where each role comes from (`gui --connect ...
    --streams --emg SOURCE --video SOURCE`): both arms' traces, titled with their armbands, and the camera."""
    from myosight.capture.choice import StreamChoice
    from myosight.gui.main_window import MainWindow
    from myosight.gui.state import GuiState
    from myosight.realtime.messages import ResultPublisher

    bands, camera = f"band{uuid.uuid4().hex[:8]}", f"cam{uuid.uuid4().hex[:8]}"
    env = {**armbands["env"], "MYOSIGHT_SIMULATED_CAMERAS": json.dumps(
        {"0": str(synthetic_emg_model["sessions"][0].video_path)})}
    myo = _start_myo(["--left", LEFT, "--right", RIGHT, "--source", bands], env, tmp_path / "myo.log")
    camera_log = (tmp_path / "camera.log").open("w")
    shown = subprocess.Popen([sys.executable, "-m", "myosight", "camera", "0", "--source", camera], env=env,
                             stdout=camera_log, stderr=subprocess.STDOUT)
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    window = MainWindow(GuiState(), None, publisher.address)
    qtbot.addWidget(window)
    window.show()
    try:
        window.show_streams(StreamChoice.from_options(emg=bands, video=camera))
        qtbot.waitUntil(lambda: window.camera.frames_shown > 5 and window.traces.curve_points("emg-left") > 50
                        and window.traces.curve_points("emg-right") > 50, timeout=60000)
        assert window.traces.titles == {"emg-left": f"sEMG · left arm · Myo {LEFT}",
                                        "emg-right": f"sEMG · right arm · Myo {RIGHT}"}
        assert f"video from '{camera}'" in window.streams.source
    finally:
        if window.streams is not None:
            window.streams.stop()
        publisher.close()
        stop_process(myo)
        stop_process(shown)
        camera_log.close()
