"""Windows and macOS, simulated on Linux: the POSIX calls they lack are taken away, and recording still works.

Only Linux runs these tests for real. What they simulate: no `os.posix_fallocate` (Windows, macOS), no SIGXFSZ,
SIGHUP, SIGKILL and the other POSIX-only signals (Windows), no `fork` start method (Windows; macOS defaults to
spawn), no POSIX-only modules (fcntl, termios, resource). The whole-command tests run `myosight replay` and
`myosight record` (and the viewer's recorder child) in processes where a sitecustomize takes these away before
myosight is imported, in every process, spawned children included.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from conftest import child_environment
from lsl_helpers import unique_source

from myosight import paths, processes
from myosight.capture.recorder import RecorderSpec, RecordingError, SessionRecorder, reserve_space
from myosight.capture.xdf_format import check_xdf
from myosight.data.actionsense import ARMS, ActionSenseSession
from myosight.data.synth import SynthConfig, write_sessions
from myosight.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("core", "capture", "data", "models", "realtime", "gui", "app", "bench", "calibration", "training")

#: Run first in every Python process of a simulated run (a sitecustomize on PYTHONPATH).
WINDOWS_LIKE = textwrap.dedent('''
    import multiprocessing
    import multiprocessing.context
    import os
    import signal
    import sys

    for name in ("posix_fallocate", "fork", "forkpty", "sched_getaffinity", "killpg", "setsid"):
        if hasattr(os, name):
            delattr(os, name)
    WINDOWS_SIGNALS = {"SIGABRT", "SIGFPE", "SIGILL", "SIGINT", "SIGSEGV", "SIGTERM", "SIGBREAK"}
    for name in [n for n in dir(signal) if re.match(r"^SIG[A-Z0-9]+$", n) and n not in WINDOWS_SIGNALS]:
        delattr(signal, name)
    for name in ("fcntl", "termios", "tty", "resource"):
        sys.modules[name] = None  # `import fcntl` now fails, as on Windows
    multiprocessing.context._concrete_contexts.pop("fork", None)
    multiprocessing.context._concrete_contexts.pop("forkserver", None)
    multiprocessing.set_start_method("spawn", force=True)
''').replace("import sys\n", "import re\nimport sys\n", 1)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SynthConfig(subjects=("S04",), actions_per_class=1, seconds_per_action=(5.0, 5.0),
                         classes=("Slice bread", "Peel a potato"), seed=4, width=32, height=32, fps=10.0)
    return write_sessions(config, tmp_path_factory.mktemp("synthetic"), progress=False)[0].hdf5_path


@pytest.fixture(scope="module")
def windows_like(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a simulated run."""
    folder = tmp_path_factory.mktemp("windows-like")
    (folder / "sitecustomize.py").write_text(WINDOWS_LIKE)
    return child_environment(folder)


def _python(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, **kwargs)


def test_the_simulation_takes_the_posix_calls_away(windows_like: dict[str, str]) -> None:
    probe = ("import os, signal, multiprocessing as mp; import myosight.capture.recorder\n"
             "try:\n    mp.get_context('fork'); fork = True\nexcept ValueError:\n    fork = False\n"
             "print(hasattr(os, 'posix_fallocate'), hasattr(signal, 'SIGHUP'), hasattr(signal, 'SIGXFSZ'), "
             "mp.get_start_method(), fork); import fcntl")
    result = _python(["-c", probe], windows_like, timeout=60)
    assert result.stdout.split("\n")[0] == "False False False spawn False", result.stderr[-2000:]
    assert "ModuleNotFoundError" in result.stderr or "ImportError" in result.stderr


@pytest.mark.slow
def test_replay_and_record_run_without_the_posix_calls(synthetic: Path, windows_like: dict[str, str],
                                                       tmp_path: Path) -> None:
    """`myosight replay` and `myosight record --format both` in simulated processes: both files whole."""
    source = unique_source("win")
    replay = subprocess.Popen([sys.executable, "-m", "myosight", "replay", str(synthetic), "--source", source,
                               "--loop", "--frame-size", "32"], env=windows_like, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert "replaying" in replay.stdout.readline()
        record = _python(["-m", "myosight", "record", "--source", source, "--out", str(tmp_path), "--label-source",
                          "none", "--format", "both", "--duration", "3"], windows_like, timeout=120)
    finally:
        replay.terminate()  # SIGTERM: the replay stops cleanly, as on Ctrl-C
        _, replay_err = replay.communicate(timeout=30)
    assert record.returncode == 0, record.stderr[-3000:]
    assert replay.returncode == 0, replay_err[-3000:]
    _assert_whole_recording(tmp_path)


@pytest.mark.slow
def test_the_viewers_recorder_child_runs_without_the_posix_calls(synthetic: Path, windows_like: dict[str, str],
                                                                 tmp_path: Path) -> None:
    """The recorder as the desktop viewer starts it: a spawned child (child_main without SIGHUP), stopped by its
    stop event."""
    source = unique_source("winchild")
    script = textwrap.dedent(f'''
        import sys, threading, time
        from dataclasses import asdict
        from myosight.capture.recorder import RecorderSpec, recorder_process
        from myosight.capture.replay import SessionReplay
        from myosight.processes import ProcessGroup

        if __name__ == "__main__":
            replay = SessionReplay({str(synthetic)!r}, source={source!r}, loop=True, frame_size=32)
            replay.open()
            stop = threading.Event()
            threading.Thread(target=replay.run, args=(stop,), daemon=True).start()
            group = ProcessGroup()
            spec = RecorderSpec(out_dir={str(tmp_path)!r}, source={source!r}, label_source=None,
                                formats=["hdf5", "xdf"], flush_every_s=0.5)
            group.start("recorder", recorder_process, asdict(spec))
            ready = group.wait_ready("recorder", 60)
            time.sleep(2.5)  # the length of the recording, not a wait for anything
            child = group.get("recorder")
            group.stop(["recorder"], timeout_s=30)
            stop.set()
            replay.close()
            print("ready", ready, "exit", child.exitcode, "error", child.error)
    ''')
    (tmp_path / "viewer_recorder.py").write_text(script)
    result = _python([str(tmp_path / "viewer_recorder.py")], windows_like, timeout=180, cwd=tmp_path)
    assert "ready True exit 0 error None" in result.stdout, result.stderr[-3000:]
    _assert_whole_recording(tmp_path)


def _assert_whole_recording(folder: Path) -> None:
    """One HDF5 session with both arms and its mp4, and its XDF file whole and readable with pyxdf."""
    sessions = list(folder.glob("*.hdf5"))
    assert len(sessions) == 1, list(folder.iterdir())
    with ActionSenseSession(sessions[0]) as session:
        rows = {arm: len(session.emg(arm)) for arm in ARMS}
        assert min(rows.values()) > 0 and session.video_path is not None
    xdf = sessions[0].with_suffix(".xdf")
    counts = check_xdf(xdf)
    streams = {s["info"]["name"][0]: s for s in pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)[0]}
    assert {"myosight-emg-left", "myosight-emg-right", "myosight-video"} <= set(streams)
    for arm in ARMS:
        assert len(streams[f"myosight-emg-{arm}"]["time_stamps"]) == rows[arm] == counts[
            int(streams[f"myosight-emg-{arm}"]["info"]["stream_id"])]
    assert not list(folder.glob("*.partial"))


# -- the fallbacks one by one ------------------------------------------------------------------------------
def test_room_check_without_posix_fallocate_compares_the_free_space(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "session.hdf5"
    path.write_bytes(b"x" * 1000)
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    paths.reserve_room(path, 1_000_000)
    assert path.stat().st_size == 1000  # nothing allocated: only the free space was looked at
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(OSError) as refused:
        paths.reserve_room(path, 1000 + free + (1 << 30))
    assert refused.value.errno == errno.ENOSPC
    with pytest.raises(RecordingError, match=rf"{re.escape(str(path))}: the disk is full .* last flush"):
        reserve_space(path, 1000 + free + (1 << 30))


def test_room_check_falls_back_when_the_file_system_cannot_allocate(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "session.hdf5"
    path.write_bytes(b"")
    calls = []

    def unsupported(fd: int, offset: int, length: int) -> None:
        calls.append(length)
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported, raising=False)
    paths.reserve_room(path, 4096)
    assert calls == [4096] and path.stat().st_size == 0
    monkeypatch.setattr(paths.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10, 10, 100))
    with pytest.raises(OSError, match="No space"):
        paths.reserve_room(path, 4096)


def test_the_file_size_signal_is_ignored_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    if hasattr(signal, "SIGXFSZ"):
        previous = signal.getsignal(signal.SIGXFSZ)
        try:
            processes.ignore_file_size_signal()
            assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        finally:
            signal.signal(signal.SIGXFSZ, previous)
    monkeypatch.delattr(signal, "SIGXFSZ", raising=False)
    processes.ignore_file_size_signal()  # Windows: nothing to do, and no AttributeError


def test_stop_signals_are_the_ones_the_system_has() -> None:
    assert signal.SIGINT in processes.STOP_SIGNALS and signal.SIGTERM in processes.STOP_SIGNALS
    assert all(isinstance(s, int) for s in processes.STOP_SIGNALS)


def test_subject_names_must_make_file_names_on_every_system(tmp_path: Path) -> None:
    for subject, why in (("S:01", "':'"), ("con", "reserved device name"), ("S01.", "ends in a dot"),
                         ("a/b", "'/'")):
        with pytest.raises(ConfigError, match=f"subject .* cannot be part of a file name: .*{re.escape(why)}"):
            SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source="x", subject=subject))
    SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source="x", subject="S01-Ünïcode"))


def test_the_cache_is_where_each_system_keeps_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (paths.CACHE_ENV, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "AppData" / "Local"))
    monkeypatch.setattr(sys, "platform", "win32")
    assert paths.cache_dir() == tmp_path / "AppData" / "Local" / "myosight" / "Cache"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert paths.cache_dir() == Path.home() / "Library" / "Caches" / "myosight"
    monkeypatch.setattr(sys, "platform", "linux")
    assert paths.cache_dir() == Path.home() / ".cache" / "myosight"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "myosight"


def test_no_module_relies_on_fork() -> None:
    """Children are started with spawn (the only method on Windows): no fork, no default-context Process."""
    forbidden = re.compile(r"os\.fork\(|get_context\(\s*[\"']fork|set_start_method\(\s*[\"']fork|"
                           r"\b(?:mp|multiprocessing)\.(?:Process|Pool|Queue|Event|Pipe)\(")
    found = [f"{path.relative_to(ROOT)}:{n}" for folder in PACKAGE_DIRS for path in (ROOT / folder).rglob("*.py")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if forbidden.search(line)]
    assert found == []


def test_the_recorder_runs_without_posix_calls_in_this_process(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush and a close with posix_fallocate and SIGXFSZ gone (the in-process variant of the runs above)."""
    import pylsl

    from myosight.capture.streams import emg_stream_info, open_outlet

    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    monkeypatch.delattr(signal, "SIGXFSZ", raising=False)
    source = unique_source("inproc")
    outlets = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
    recorder = SessionRecorder(RecorderSpec(out_dir=str(tmp_path), source=source, label_source=None, video=False,
                                            formats=["hdf5", "xdf"]))
    recorder.open()
    stamps = pylsl.local_clock() + np.arange(100) / 200
    for outlet in outlets.values():
        outlet.push_chunk(np.ones((100, 8), np.float32), stamps.tolist())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(t.pending.rows for t in recorder.tracks) < 200:
        recorder.pull()
        time.sleep(0.02)
    stats = recorder.close()
    assert stats.state == "finished" and stats.rows == {"emg-left": 100, "emg-right": 100}
    assert check_xdf(Path(stats.xdf)) == {1: 100, 2: 100}
