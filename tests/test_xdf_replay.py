"""XDF replay: files written here from the format's chunk specification, read by pyxdf, replayed over LSL on
loopback; truncated and mutated files end in a clear project error."""

from __future__ import annotations

import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
import pyxdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsl_helpers import pull_at_least
from xdf_writer import XdfStream, write_xdf

from myosight.capture.xdf_replay import XdfReplay, choose_arms, read_xdf
from myosight.cli import main
from myosight.errors import ConfigError, MyosightError, SessionFormatError

RATE = 200.0
FRAME = 16
PUBLISHED = {"emg-left": 0, "emg-right": 1, "video": 3}  # stream kind -> index in `recording()`


def recording(seconds: float = 3.0, *, names: tuple[str, str] = ("Myo armband left", "EMG 2"),
              right_desc: bool = True) -> list[XdfStream]:
    """Two 8-channel EMG streams (arms told by the name, and by the description), markers, a 16-pixel video."""
    rng = np.random.default_rng(7)
    n = int(seconds * RATE)
    left_t = 5000.0 + np.arange(n) / RATE + rng.normal(0, 2e-4, n)
    right_t = 5000.013 + np.arange(n) / RATE
    offsets = [(5000.0 + k, 0.0) for k in range(int(seconds) + 1)]
    frames = int(seconds * 10)
    return [
        XdfStream(names[0], "EMG", "float32", np.sort(left_t), rng.integers(-128, 128, (n, 8)).astype(np.float32),
                  RATE, "myo-l", clock_offsets=offsets),
        XdfStream(names[1], "EMG", "int16", right_t, rng.integers(-128, 128, (n, 8)).astype(np.int16), RATE, "emg-r",
                  desc={"arm": "right"} if right_desc else {}, clock_offsets=offsets),
        XdfStream("Labels", "Markers", "string", np.array([5000.5, 5002.0]),
                  [["Slice bread|Start"], ["Slice bread|Stop"]], 0.0, "labels", clock_offsets=offsets),
        XdfStream("Camera", "Video", "int8", 5000.05 + np.arange(frames) / 10,
                  rng.integers(-128, 128, (frames, FRAME * FRAME * 3)).astype(np.int8), 10.0, "cam",
                  desc={"width": str(FRAME), "height": str(FRAME)}, clock_offsets=offsets),
    ]


@pytest.fixture(scope="module")
def xdf_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[XdfStream]]:
    streams = recording()
    return write_xdf(tmp_path_factory.mktemp("xdf") / "session.xdf", streams), streams


def test_pyxdf_reads_the_written_file(xdf_file, tmp_path: Path) -> None:
    path, streams = xdf_file
    loaded, header = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
    assert header["info"]["version"] == ["1.0"]
    by_name = {s["info"]["name"][0]: s for s in loaded}
    for stream in streams:
        got = by_name[stream.name]
        assert np.allclose(got["time_stamps"], stream.time_stamps)
        if stream.channel_format == "string":
            assert got["time_series"] == stream.samples
        else:
            assert np.array_equal(got["time_series"], stream.samples)
    # samples without their own stamp: pyxdf deduces them from the nominal rate, as the format says
    regular = write_xdf(tmp_path / "regular.xdf", streams[:1], omit_stamps=True)
    got = pyxdf.load_xdf(str(regular), dejitter_timestamps=False)[0][0]
    assert np.array_equal(got["time_series"], streams[0].samples)
    assert np.allclose(np.diff(got["time_stamps"]), 1 / RATE, atol=2e-3)


def test_replay_publishes_what_the_file_holds(xdf_file) -> None:
    path, streams = xdf_file
    source = f"xdf{uuid.uuid4().hex[:8]}"
    replay = XdfReplay(path, speed=10.0, source=source)
    assert set(replay.emg) == {"left", "right"} and replay.frame_size == FRAME
    replay.open()
    inlets = {kind: _inlet(source, kind) for kind in ("emg-left", "emg-right", "video", "labels")}
    thread = threading.Thread(target=replay.run, daemon=True)
    thread.start()
    try:
        got = {kind: pull_at_least(inlets[kind], len(streams[index].time_stamps), timeout=20)
               for kind, index in PUBLISHED.items()}
        markers = [inlets["labels"].pull_sample(timeout=10) for _ in range(2)]
        thread.join(20)
    finally:
        for inlet in inlets.values():
            inlet.close_stream()
    shift = replay._t0 - replay.first_s
    assert abs(shift - round(shift)) < 1e-6  # a whole-second time base (up to float rounding)
    for kind, (samples, stamps) in got.items():
        stream = streams[PUBLISHED[kind]]
        assert np.array_equal(samples, np.asarray(stream.samples, samples.dtype)), kind
        assert np.allclose(stamps - shift, stream.time_stamps, atol=1e-6), kind
    assert [m[0][0] for m in markers] == ["Slice bread|Start", "Slice bread|Stop"]
    assert np.allclose([m[1] - shift for m in markers], [5000.5, 5002.0])
    assert replay.stats.passes == 1 and replay.stats.frames == len(streams[3].time_stamps)


def _inlet(source: str, kind: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_bypred(f"source_id='myosight-{source}-{kind}'", 1, 10.0)
    assert found, kind
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(10.0)
    inlet.info(10.0)
    return inlet


def test_arms_are_told_by_options_when_the_file_does_not_say(tmp_path: Path) -> None:
    path = write_xdf(tmp_path / "anonymous.xdf", recording(names=("EMG A", "EMG B"), right_desc=False))
    streams = read_xdf(path)
    with pytest.raises(ConfigError, match=r"cannot tell which arm .*--left-stream"):
        choose_arms(streams, path)
    chosen = choose_arms(streams, path, left="EMG B", right="myo-l")  # by name and by source id
    assert (chosen["left"].name, chosen["right"].name) == ("EMG B", "EMG A")
    with pytest.raises(ConfigError, match="is not 8 numeric EMG channels"):
        choose_arms(streams, path, left="Labels")
    only_markers = write_xdf(tmp_path / "markers.xdf", recording()[2:3])
    with pytest.raises(SessionFormatError, match="no EMG stream"):
        XdfReplay(only_markers)


def test_replay_command_dispatches_on_the_suffix(xdf_file, capsys: pytest.CaptureFixture) -> None:
    path, streams = xdf_file
    assert main(["replay", str(path), "--speed", "50", "--source", f"cli{uuid.uuid4().hex[:6]}", "--no-video"]) == 0
    out = capsys.readouterr().out
    n = len(streams[0].time_stamps)
    assert f"sent {{'left': {n}, 'right': {n}}} EMG samples, 0 frames, 2 labels" in out


# -- damaged files ----------------------------------------------------------------------------------------
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_xdf(tmp_path_factory.mktemp("fuzz") / "small.xdf", recording(seconds=1.0)).read_bytes()


@FUZZ
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files_are_a_format_error_naming_the_file(small_file: bytes, cut: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cut.xdf"
        path.write_bytes(small_file[: int(cut * len(small_file))])
        with pytest.raises(SessionFormatError) as error:
            XdfReplay(path)
        assert str(path) in str(error.value)


@FUZZ
@given(data=st.data())
def test_mutated_files_read_or_end_in_a_project_error(small_file: bytes, data: st.DataObject) -> None:
    damaged = bytearray(small_file)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            damaged[position] = data.draw(st.integers(0, 255))
        elif action == "insert":
            damaged[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del damaged[position:position + data.draw(st.integers(1, 8))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutated.xdf"
        path.write_bytes(bytes(damaged))
        try:
            replay = XdfReplay(path)
        except MyosightError as error:  # SessionFormatError, or ConfigError when an arm's name was hit
            assert str(path) in str(error)
        else:
            assert replay.emg and replay.duration_s >= 0
