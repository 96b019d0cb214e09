"""LibEMG, the EMG library the field uses, as the peer `myosight bench people` compares myosight with.

LibEMG pins numpy below 2 and pulls in a desktop's worth of packages (OpenCV with its own Qt, pygame, ...), so it
never enters myosight's environment: `PeerEnvironment` installs it from the package index into a virtual
environment of its own under myosight's cache (once per machine, guarded by a lock against two first runs at
once) and runs `libemg_runner.py` there as a child process. What crosses between the two environments is data
only: a request of arrays (.npz, read without pickle) and a result of numbers (JSON), checked strictly here so
that a comparison is never made on a malformed answer.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from myosight.errors import ConfigError
from myosight.paths import cache_dir, write_text_replacing

DEFAULT_PACKAGE = "libemg==2.0.3 scikit-learn==1.9.1"  # scikit-learn pinned: LibEMG leaves it open
#: LibEMG's classifiers by their names in `EMGClassifier`; LDA on the HTD features is its default pipeline.
CLASSIFIERS = ("LDA", "KNN", "SVM", "QDA", "RF", "NB", "GB", "MLP")
RUNNER = Path(__file__).with_name("libemg_runner.py")
STAMP_NAME = "myosight-peer.json"
#: Progress lines of the runner start with this (the rest of its output is kept for error messages).
PROGRESS_PREFIX = "libemg: "
INSTALL_TIMEOUT_S = 1800.0
LOCK_TIMEOUT_S = 2400.0  # longer than an install: a waiting run outlasts the one installing
RUN_TIMEOUT_S = 1800.0
#: pip's words for a package index it could not reach (name resolution, refused or timed-out connections).
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|nodename nor servname|getaddrinfo failed|Network is unreachable|"
    r"Connection refused|ConnectTimeoutError|ProxyError|No route to host", re.IGNORECASE)
_VERIFY = ("import json, sys\nfrom importlib import metadata\nimport numpy, libemg\n"
           "print(json.dumps({'libemg': metadata.version('libemg'), 'numpy': numpy.__version__, "
           "'python': sys.version.split()[0]}))")


class PeerInstallError(ConfigError):
    """Installing the peer environment failed; `index_unreachable` tells a network problem from a broken package."""

    def __init__(self, command: list[str], returncode: int | None, output: str) -> None:
        self.command = command
        self.output = output
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        unreachable = [line for line in lines if _UNREACHABLE.search(line)]
        self.index_unreachable = bool(unreachable)
        how = "timed out" if returncode is None else f"exited with {returncode}"
        message = f"`{shlex.join(command)}` {how}: {lines[-1] if lines else 'no output'}"
        if unreachable:
            message += f" (the package index could not be reached: {_network_reason(unreachable[-1])})"
        super().__init__(message)


def _network_reason(line: str) -> str:
    """The system's words in one of pip's connection warnings ("Name or service not known"), else pip's own."""
    errno_text = re.search(r"\[Errno [^\]]*\]\s*([^'\")]+)", line)
    if errno_text:
        return errno_text.group(1).strip()
    found = _UNREACHABLE.search(line)
    return found.group(0) if found else line[:120]


def _environment_name(package: str) -> str:
    """A folder name for a requirement: "libemg==2.0.3" -> "libemg-2.0.3"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", package.replace("==", "-")).strip("_") or "peer"


class PeerEnvironment:
    """LibEMG in a virtual environment of its own, built on first use and reused after (see the module's text)."""

    def __init__(self, root: Path | None = None, package: str = DEFAULT_PACKAGE) -> None:
        """`package`: pip's requirement(s), space-separated (pins of LibEMG's own dependencies may follow it)."""
        self.package = package
        self.root = Path(root) if root is not None else cache_dir() / "peers" / _environment_name(package)

    @property
    def python(self) -> Path:
        """The environment's interpreter (it may not exist yet: see `ensure`)."""
        if sys.platform == "win32":
            return self.root / "Scripts" / "python.exe"
        return self.root / "bin" / "python"

    @property
    def stamp(self) -> Path:
        """Written last by a successful install: its presence is what `ready` trusts."""
        return self.root / STAMP_NAME

    def stamp_contents(self) -> dict[str, Any] | None:
        """The stamp's record (requirement, LibEMG, numpy and Python versions), or None without a usable one."""
        try:
            record = json.loads(self.stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def ready(self) -> bool:
        """Whether an install of this requirement finished here and its interpreter is still there."""
        record = self.stamp_contents()
        return record is not None and record.get("requirement") == self.package and self.python.exists()

    def ensure(self, progress: Callable[[str], None] | None = None) -> Path:
        """The environment's interpreter, installing the environment first if no finished install is there.

        A failed install raises `PeerInstallError` (a ConfigError) and leaves no stamp, so the next run retries.
        """
        say = progress or (lambda _text: None)
        if self.ready():
            return self.python
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.root.with_name(self.root.name + ".lock"), say):
            if not self.ready():  # another process may have finished it while this one waited
                self._install(say)
        return self.python

    def _install(self, say: Callable[[str], None]) -> None:
        self.stamp.unlink(missing_ok=True)
        if not self.python.exists():
            say(f"creating the peer environment in {self.root}")
            fresh = ["--clear"] if (self.root / "pyvenv.cfg").exists() else []  # a broken earlier one
            _install_step([sys.executable, "-I", "-m", "venv", *fresh, str(self.root)])
        say(f"installing {self.package} into it (first run only; a few minutes)")
        _install_step([str(self.python), "-I", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                       "--no-input", *self.package.split()])
        versions = self._installed_versions()
        record = {"requirement": self.package, "libemg_version": versions["libemg"],
                  "numpy_version": versions["numpy"], "python": versions["python"]}
        write_text_replacing(self.stamp, json.dumps(record, indent=2) + "\n")
        say(f"peer environment ready: LibEMG {versions['libemg']}, numpy {versions['numpy']}")

    def _installed_versions(self) -> dict[str, str]:
        """Import LibEMG in the new environment (an install can finish without a working package) and read the
        versions the comparison will name."""
        verify = [str(self.python), "-I", "-c", _VERIFY]
        output = _install_step(verify)
        try:
            versions = json.loads(output.strip().splitlines()[-1])
            return {key: str(versions[key]) for key in ("libemg", "numpy", "python")}
        except (ValueError, IndexError, KeyError, TypeError):
            raise PeerInstallError(verify, 0, output + "\nthe versions could not be read") from None

    def run(self, request: PeerRequest, work_dir: Path, progress: Callable[[str], None] | None = None,
            timeout_s: float = RUN_TIMEOUT_S) -> PeerResult:
        """Score LibEMG's classifiers on `request` in the peer environment (which must be `ensure`d).

        The request and result files stay in `work_dir`, so a comparison can be rechecked by hand.
        """
        if not self.ready():
            raise ConfigError(f"the LibEMG environment in {self.root} is not installed; call ensure() first")
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        request_path, result_path = work_dir / "libemg-request.npz", work_dir / "libemg-result.json"
        result_path.unlink(missing_ok=True)
        write_request(request, request_path)
        command = [str(self.python), "-I", str(RUNNER), str(request_path), str(result_path)]
        start = time.perf_counter()
        returncode, tail = _run_streaming(command, progress, timeout_s)
        seconds = time.perf_counter() - start
        if returncode != 0 or not result_path.is_file():
            how = f"ran past {timeout_s:g} s" if returncode is None else f"exited with {returncode}"
            last = " | ".join(tail[-5:]) or "no output"
            raise ConfigError(f"the LibEMG runner {how} (`{shlex.join(command)}`): {last}")
        return read_result(result_path, request, wall_seconds=seconds)


def _install_step(command: list[str]) -> str:
    """Run one install command; its output (stdout and stderr together), or PeerInstallError."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   encoding="utf-8", errors="replace", env=env, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        output = error.output.decode(errors="replace") if isinstance(error.output, bytes) else error.output or ""
        raise PeerInstallError(command, None, output) from None
    except OSError as error:
        raise PeerInstallError(command, None, str(error)) from None
    if completed.returncode != 0:
        raise PeerInstallError(command, completed.returncode, completed.stdout)
    return completed.stdout


@contextlib.contextmanager
def _exclusive(path: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive lock on `path` between processes, waiting (and saying so once) while another holds it."""
    with path.open("a+b") as handle:
        deadline, told = time.monotonic() + LOCK_TIMEOUT_S, False
        while not _try_lock(handle):
            if not told:
                say(f"waiting for another myosight process to finish installing {path.stem}")
                told = True
            if time.monotonic() > deadline:
                raise ConfigError(f"{path} stayed locked for {LOCK_TIMEOUT_S:g} s; is another install stuck?")
            time.sleep(0.5)
        try:
            yield
        finally:
            _unlock(handle)


def _try_lock(handle: IO[bytes]) -> bool:
    """Take the lock without waiting; False when another process holds it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(handle: IO[bytes]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run_streaming(command: list[str], progress: Callable[[str], None] | None,
                   timeout_s: float) -> tuple[int | None, list[str]]:
    """Run the runner, handing its progress lines to `progress` as they come; (exit code or None on timeout,
    the last lines of its output)."""
    tail: deque[str] = deque(maxlen=40)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               encoding="utf-8", errors="replace")

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.strip()
            if line.startswith(PROGRESS_PREFIX) and progress is not None:
                progress(line[len(PROGRESS_PREFIX):])
            elif line and not line.startswith(PROGRESS_PREFIX):
                tail.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        returncode: int | None = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        returncode = None
    reader.join(timeout=10)
    return returncode, list(tail)


@dataclass(frozen=True)
class PeerRequest:
    """What LibEMG is asked: train on `train` and predict each decision of each test recording.

    `train` holds one held gesture per recording, (samples, channels) raw sEMG and its label (an int >= 0);
    `tests` maps a name to a whole recording and the exclusive end sample of each decision's window (the window
    of length L is data[end-L:end]; a decision whose window would start before the recording gets -1).
    Each window length in `window_samples` is tried; training windows advance by `increment_samples`.
    """

    rate_hz: float
    train: list[tuple[np.ndarray, int]]
    tests: dict[str, tuple[np.ndarray, np.ndarray]]
    window_samples: tuple[int, ...]
    increment_samples: int
    classifiers: tuple[str, ...] = CLASSIFIERS

    def __post_init__(self) -> None:
        problem = _request_problem(self)
        if problem:
            raise ConfigError(f"LibEMG request: {problem}")

    def labels(self) -> set[int]:
        """The labels LibEMG may answer with."""
        return {int(label) for _, label in self.train}


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _array_problem(what: str, data: np.ndarray, channels: int | None) -> str | None:
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        return f"{what} must be (samples, channels) with both > 0, not {data.shape}"
    if channels is not None and data.shape[1] != channels:
        return f"{what} has {data.shape[1]} channels, the first training recording {channels}"
    if not np.issubdtype(data.dtype, np.number) or not np.isfinite(data).all():
        return f"{what} must be finite numbers"
    return None


def _request_problem(request: PeerRequest) -> str | None:
    """What makes `request` unusable, or None."""
    rate = request.rate_hz
    if not (isinstance(rate, (int, float, np.integer, np.floating)) and math.isfinite(rate) and rate > 0):
        return f"rate_hz must be a positive number, not {request.rate_hz!r}"
    if not request.train or not request.tests:
        return "at least one training and one test recording are needed"
    if not request.window_samples or not all(_is_int(n) and n > 0 for n in request.window_samples):
        return f"window_samples must be positive ints, not {request.window_samples!r}"
    if not (_is_int(request.increment_samples) and request.increment_samples > 0):
        return f"increment_samples must be a positive int, not {request.increment_samples!r}"
    names = request.classifiers
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        return f"classifiers must be distinct names, not {request.classifiers!r}"
    channels = np.asarray(request.train[0][0]).shape[-1]
    for i, (data, label) in enumerate(request.train):
        if not (_is_int(label) and label >= 0):
            return f"training recording {i}: the label must be an int >= 0, not {label!r}"
        problem = _array_problem(f"training recording {i}", data, channels)
        if problem:
            return problem
    return _tests_problem(request.tests, channels)


def _tests_problem(tests: dict[str, tuple[np.ndarray, np.ndarray]], channels: int) -> str | None:
    for name, (data, ends) in tests.items():
        if not isinstance(name, str) or not name or re.search(r"[/\\\x00-\x1f]", name):
            return f"test name {name!r} must be a non-empty string without slashes or control characters"
        problem = _array_problem(f"test {name!r}", data, channels)
        if problem:
            return problem
        ends = np.asarray(ends)
        if ends.ndim != 1 or not np.issubdtype(ends.dtype, np.integer):
            return f"test {name!r}: ends must be a 1-D int array"
        if len(ends) and (ends.min() < 0 or ends.max() > len(data)):
            return f"test {name!r}: ends must lie in [0, {len(data)}]"
    return None


def write_request(request: PeerRequest, path: Path) -> None:
    """The request as the runner reads it: plain arrays in an .npz (no pickled objects)."""
    arrays: dict[str, Any] = {
        "rate_hz": np.float64(request.rate_hz), "window_samples": np.asarray(request.window_samples, np.int64),
        "increment_samples": np.int64(request.increment_samples),
        "classifiers": np.asarray(request.classifiers, dtype=str), "train_count": np.int64(len(request.train)),
        "test_names": np.asarray(list(request.tests), dtype=str),
    }
    for i, (data, label) in enumerate(request.train):
        arrays[f"train_{i}_data"] = np.asarray(data, np.float64)
        arrays[f"train_{i}_label"] = np.int64(label)
    for name, (data, ends) in request.tests.items():
        arrays[f"test_{name}_data"] = np.asarray(data, np.float64)
        arrays[f"test_{name}_ends"] = np.asarray(ends, np.int64)
    np.savez(path, **arrays)


@dataclass(frozen=True)
class PeerRun:
    """One classifier at one window length: how long it took and its prediction for each test decision."""

    classifier: str
    window_samples: int
    fit_seconds: float
    predict_seconds: float
    predictions: dict[str, np.ndarray]
    train_windows: int = 0
    feature_seconds: float = 0.0


@dataclass(frozen=True)
class PeerFailure:
    """A classifier that raised at one window length, with LibEMG's one-line error."""

    classifier: str
    window_samples: int
    error: str


@dataclass(frozen=True)
class PeerResult:
    """LibEMG's answer to one request, with the versions that gave it."""

    version: str
    numpy_version: str
    results: list[PeerRun]
    errors: list[PeerFailure] = field(default_factory=list)
    sklearn_version: str = ""
    wall_seconds: float = 0.0  # the whole child process, start-up and imports included


def _need(record: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"LibEMG result: {where}: `{key}` is missing or not a {kind}")
    return value


def _predictions(raw: object, request: PeerRequest, length: int, where: str) -> dict[str, np.ndarray]:
    """A run's predictions, checked: one per decision of each test, -1 exactly where the window does not fit."""
    if not isinstance(raw, dict) or set(raw) != set(request.tests):
        raise ConfigError(f"LibEMG result: {where}: predictions must name exactly the tests {sorted(request.tests)}")
    labels = request.labels()
    out = {}
    for name, (_data, ends) in request.tests.items():
        values = raw[name]
        ends = np.asarray(ends)
        if not isinstance(values, list) or len(values) != len(ends):
            raise ConfigError(f"LibEMG result: {where}: test {name!r} needs {len(ends)} predictions, "
                              f"not {len(values) if isinstance(values, list) else type(values).__name__}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"LibEMG result: {where}: test {name!r} has predictions that are not ints")
        array = np.asarray(values, np.int64)
        short = ends < length
        bad = np.flatnonzero(np.where(short, array != -1, ~np.isin(array, sorted(labels))))
        if len(bad):
            raise ConfigError(f"LibEMG result: {where}: test {name!r} decision {bad[0]} predicts {array[bad[0]]}, "
                              f"expected {'-1 (window before the start)' if short[bad[0]] else sorted(labels)}")
        out[name] = array
    return out


def _run_entry(record: object, request: PeerRequest) -> PeerRun:
    if not isinstance(record, dict):
        raise ConfigError("LibEMG result: a result entry is not an object")
    name = _need(record, "classifier", str, "result")
    length = _need(record, "window_samples", int, name)
    where = f"{name} at {length} samples"
    if name not in request.classifiers or length not in request.window_samples:
        raise ConfigError(f"LibEMG result: {where} was not asked for")
    seconds = [_need(record, key, (int, float), where) for key in ("fit_seconds", "predict_seconds")]
    if not all(math.isfinite(s) and s >= 0 for s in seconds):
        raise ConfigError(f"LibEMG result: {where}: times must be finite and >= 0")
    return PeerRun(name, length, float(seconds[0]), float(seconds[1]),
                   _predictions(record.get("predictions"), request, length, where),
                   train_windows=int(record.get("train_windows", 0)),
                   feature_seconds=float(record.get("feature_seconds", 0.0)))


def _failure_entry(record: object) -> PeerFailure:
    if not isinstance(record, dict):
        raise ConfigError("LibEMG result: an error entry is not an object")
    return PeerFailure(_need(record, "classifier", str, "error"), _need(record, "window_samples", int, "error"),
                       _need(record, "error", str, "error"))


def parse_result(text: str, request: PeerRequest, wall_seconds: float = 0.0) -> PeerResult:
    """The runner's JSON checked against the request: each (classifier, window) asked for answered exactly once,
    as a run or as a failure; any deviation raises ConfigError, since a comparison on it would be wrong."""
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"LibEMG result is not JSON: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("results"), list) or not isinstance(raw.get("errors"), list):
        raise ConfigError("LibEMG result: needs an object with `results` and `errors` lists")
    runs = [_run_entry(record, request) for record in raw["results"]]
    failures = [_failure_entry(record) for record in raw["errors"]]
    answered = [(run.classifier, run.window_samples) for run in runs]
    answered += [(failure.classifier, failure.window_samples) for failure in failures]
    asked = [(name, length) for length in request.window_samples for name in request.classifiers]
    if sorted(answered) != sorted(asked):
        missing = sorted(set(asked) - set(answered))
        raise ConfigError(f"LibEMG result: each classifier and window must be answered once; missing {missing}, "
                          f"{len(answered)} answers for {len(asked)} asked")
    return PeerResult(version=_need(raw, "libemg_version", str, "result"),
                      numpy_version=_need(raw, "numpy_version", str, "result"), results=runs, errors=failures,
                      sklearn_version=str(raw.get("sklearn_version", "")), wall_seconds=wall_seconds)


def read_result(path: Path, request: PeerRequest, wall_seconds: float = 0.0) -> PeerResult:
    """`parse_result` of a result file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"LibEMG result {path}: {error.strerror or error}") from None
    return parse_result(text, request, wall_seconds)


def peer_accuracy(result: PeerResult, truth: dict[str, np.ndarray],
                  mask: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Accuracy of each (classifier, window) over the decisions `mask` keeps (all where it names no test).

    A decision LibEMG could not answer (-1: its window starts before the recording) counts as wrong, so a
    longer window does not look better by skipping the start of each recording.
    """
    rows = []
    for run in result.results:
        hits = counted = unanswered = 0
        for name, predicted in run.predictions.items():
            if name not in truth:
                raise ConfigError(f"peer accuracy: no true labels for test {name!r}")
            labels = np.asarray(truth[name])
            keep = np.ones(len(predicted), bool) if mask is None or name not in mask else np.asarray(mask[name], bool)
            if labels.shape != predicted.shape or keep.shape != predicted.shape:
                raise ConfigError(f"peer accuracy: test {name!r} has {len(predicted)} decisions, "
                                  f"labels {labels.shape} and mask {keep.shape}")
            hits += int(np.sum(predicted[keep] == labels[keep]))
            counted += int(keep.sum())
            unanswered += int(np.sum(predicted[keep] == -1))
        rows.append({"classifier": run.classifier, "window_samples": run.window_samples,
                     "accuracy": hits / counted if counted else None, "decisions": counted,
                     "unanswered": unanswered})
    return rows

