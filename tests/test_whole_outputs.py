"""Outputs whole or absent: a full disk, a stop signal at any write, a re-run over existing output, an output
that cannot be written. Each command either writes its outputs whole or leaves the earlier ones as they were,
with no hidden partial file left behind, and says so in one line.

The full disk is a file-size limit (`ulimit -f`, RLIMIT_FSIZE) on the command's process: writes past it fail
with EFBIG, as writes on a full disk fail with ENOSPC, and every user may set it (a small file system needs
root to mount).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import child_environment

from myosight.cli import main
from myosight.interrupts import raise_if_stopped, stop_raises
from myosight.paths import output_problem, replaced_when_done

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="file-size limits and signals of POSIX systems")

CLASSES = ("Peel a cucumber", "Clean a plate with a towel", "Pour water from a pitcher into a glass")
#: The file-size limit of the full-disk runs: above every small file a command writes (manifests, metadata),
#: below its large ones (sessions, split files, CNN weights, bundles).
FILE_LIMIT_BYTES = 200_000


def _myosight(*argv: str | Path, cwd: Path, file_limit: int | None = None,
              stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([sys.executable, "-m", "myosight", *map(str, argv)], cwd=cwd, env=child_environment(),
                          preexec_fn=limit if file_limit else None, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=300)


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones included) and the SHA-256 of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _partials(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".partial" in p.name]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with sessions/ and data/ (a dataset with its sEMG CNN and features), made by the commands."""
    root = tmp_path_factory.mktemp("whole")
    assert _myosight("synth", "--out", "sessions", "--subjects", "S01", "S02", "--no-video", "--seconds", "11",
                     "--classes", *CLASSES, "--quiet", cwd=root).returncode == 0
    assert _myosight("dataset", *sorted((root / "sessions").glob("*.hdf5")), "--out", "data", cwd=root).returncode == 0
    assert _myosight("features", "emg", "data", "--epochs", "2", "--cross-fit", "1", "--quiet",
                     cwd=root).returncode == 0
    return root


def _sessions(root: Path) -> list[str]:
    return [str(p) for p in sorted((root / "sessions").glob("*.hdf5"))]


#: command -> (argv in the fixture's folder, the file it fails to write)
FULL_DISK = {
    "synth": (["synth", "--out", "new-sessions", "--no-video", "--num-classes", "3", "--quiet"], "new-sessions/"),
    "dataset": (["dataset", "SESSIONS", "--out", "data", "--force"], "data/train.h5"),
    "features emg": (["features", "emg", "data", "--force", "--epochs", "1", "--cross-fit", "1", "--quiet"],
                     "data/train.h5"),
    "train": (["train", "--model", "linear_emg", "--data", "data", "--out", "run", "--epochs", "1", "--quiet"],
              "run/bundle.safetensors"),
    "emg spectrograms --save": (["emg", "spectrograms", "SESSION", "--out", "plot.png", "--save", "arrays.npz"],
                                "arrays.npz"),
}


@pytest.mark.parametrize("command", FULL_DISK)
def test_a_full_disk_is_one_line_and_leaves_the_earlier_outputs(command: str, made: Path) -> None:
    argv, target = FULL_DISK[command]
    sessions = _sessions(made)
    argv = [word for item in argv for word in (sessions if item == "SESSIONS" else [sessions[0]] if
                                               item == "SESSION" else [item])]
    before = _snapshot(made)
    result = _myosight(*argv, cwd=made, file_limit=FILE_LIMIT_BYTES, stdout=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("myosight: error: cannot write ") and target in last and "File too large" in last, last
    after = _snapshot(made)
    assert {name: digest for name, digest in after.items() if name in before} == before, "an earlier file changed"
    assert not _partials(made)
    assert not [name for name in after if name not in before and name.startswith(target)]


def test_features_emg_stopped_by_sigterm_keeps_the_earlier_cnn_and_features(made: Path) -> None:
    """A real SIGTERM while the CNN trains: exit 143, one line, nothing changed, no partial file."""
    before = _snapshot(made / "data")
    process = subprocess.Popen([sys.executable, "-m", "myosight", "-v", "features", "emg", "data", "--force",
                                "--epochs", "100000", "--patience", "100000"], cwd=made, env=child_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    assert process.stderr is not None
    for line in iter(process.stderr.readline, ""):  # -v logs each epoch: training has started
        seen.append(line)
        if "sEMG CNN: epoch 2," in line:
            break
    process.send_signal(signal.SIGTERM)
    seen.append(process.communicate(timeout=60)[1])
    assert process.returncode == 128 + signal.SIGTERM, "".join(seen)
    assert seen[-1].strip().splitlines()[-1] == "myosight: stopped by SIGTERM"
    assert _snapshot(made / "data") == before
    assert not _partials(made)


#: What `features emg` writes, in order, all under temporary names before any replaces the earlier file.
FEATURE_WRITES = ("test features", "train features", "CNN weights", "CNN metadata")


@pytest.mark.parametrize("stopped_at", range(len(FEATURE_WRITES)), ids=lambda i: FEATURE_WRITES[i])
def test_a_stop_at_any_write_of_features_emg_leaves_the_earlier_cnn_and_features(
        stopped_at: int, made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop comes at the exact write (in-process): exit 130, every earlier file as it was, no partial."""
    import shutil

    import myosight.training.emg_features as emg_features

    data = tmp_path / "data"
    shutil.copytree(made / "data", data)
    before = _snapshot(data)
    writes = {"count": 0}

    def stop_at_write(original):
        def write(*args, **kwargs):
            if writes["count"] == stopped_at:
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would; raises in the main thread
            writes["count"] += 1
            return original(*args, **kwargs)
        return write

    monkeypatch.setattr(emg_features, "write_array", stop_at_write(emg_features.write_array))
    monkeypatch.setattr(Path, "write_bytes", stop_at_write(Path.write_bytes))
    monkeypatch.setattr(Path, "write_text", stop_at_write(Path.write_text))
    code = main(["features", "emg", str(data), "--force", "--epochs", "1", "--cross-fit", "1", "--quiet"])
    monkeypatch.undo()
    assert code == 130 and writes["count"] == stopped_at  # the stop raised at that write
    assert _snapshot(data) == before


def test_train_refuses_features_another_cnn_made(made: Path, tmp_path: Path, capsys) -> None:
    """A CNN and its features that still came apart (a process killed while the files were moved into place,
    a file copied from another run) are refused in one line, not bundled."""
    import shutil

    data, other = tmp_path / "data", tmp_path / "other"
    shutil.copytree(made / "data", data)
    shutil.copytree(made / "data", other)
    assert main(["features", "emg", str(other), "--force", "--epochs", "1", "--cross-fit", "1", "--seed", "5",
                 "--quiet"]) == 0
    shutil.copy(other / "test.h5", data / "test.h5")
    capsys.readouterr()
    assert main(["train", "--model", "linear_emg", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "test.h5: its sEMG features were made by another CNN than" in err and "--force" in err, err
    assert not (tmp_path / "run").exists()


def test_a_rerun_over_existing_output_needs_force_and_replaces_what_depended_on_it(made: Path, tmp_path: Path,
                                                                                  capsys) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(made / "data", data)
    before = _snapshot(data)
    assert main(["dataset", *_sessions(made), "--out", str(data)]) == 1
    assert "already holds a dataset" in capsys.readouterr().err and _snapshot(data) == before
    assert main(["features", "emg", str(data), "--epochs", "1", "--quiet"]) == 1
    assert "pass --force" in capsys.readouterr().err and _snapshot(data) == before
    (data / "notes.txt").write_text("mine")
    assert main(["dataset", *_sessions(made), "--out", str(data), "--force", "--seed", "3"]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["dataset.json", "notes.txt", "test.h5", "train.h5"]
    assert main(["features", "emg", str(data), "--epochs", "1", "--cross-fit", "1", "--quiet"]) == 0


def test_an_interrupt_a_library_swallowed_still_stops_the_command(tmp_path: Path) -> None:
    """HDF5 drops an exception raised in its callbacks: the next file that would be moved into place raises the
    stop again, and the earlier file stays."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread only")
    path = tmp_path / "out.txt"
    path.write_text("earlier")
    with stop_raises():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0) if hasattr(signal, "sigtimedwait") else None
        except KeyboardInterrupt:
            pass  # what the library did
        with pytest.raises(KeyboardInterrupt), replaced_when_done(path) as temporary:
            temporary.write_text("new")
        with pytest.raises(KeyboardInterrupt):
            raise_if_stopped()
    raise_if_stopped()  # outside the command the stop is forgotten
    assert path.read_text() == "earlier" and not _partials(tmp_path)


def test_outputs_that_cannot_be_written_are_refused_before_the_work(made: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "a-file").write_text("")
    long_name = "x" * 300
    cases = {str(tmp_path / "a-file" / "data"): "is a file, not a folder",
             str(tmp_path / long_name): "300 bytes long"}
    if os.geteuid() != 0:  # root writes in a folder without write permission
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases[str(locked / "data")] = "cannot write in"
    for out, why in cases.items():
        assert main(["dataset", *_sessions(made), "--out", out]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"myosight: error: --out {out}: ") and why in err, err
        assert "samples" not in err


def test_an_output_name_as_long_as_the_system_allows_is_written(tmp_path: Path) -> None:
    """The hidden temporary name is cut short where the final name is long, so it is valid wherever that is."""
    path = tmp_path / ("y" * 250 + ".json")
    assert output_problem(path) is None
    with replaced_when_done(path) as temporary:
        temporary.write_text("{}")
    assert path.read_text() == "{}"
