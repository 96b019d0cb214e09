"""Fuzzing (hypothesis): the ActionSense reader on mutated HDF5 files and the bundle loader on tampered bundles.

Every case must end in success or a MyosightError naming the file; never a raw exception, a crash or a
hang. The reader runs in a child process (tests/session_reader_server.py) with a time limit per file,
because a damaged file can crash the HDF5 library; a crash or a hang is reported with the mutation.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import myo_timestamps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myosight.data.layout import ACTIVITY_GROUP, EMG_GROUPS, VIDEO_TIMESTAMP_GROUP, SessionWriter
from myosight.errors import MyosightError

torch.set_num_threads(1)

T0 = 1_655_159_743.0
READ_TIMEOUT_S = 30.0
SERVER = Path(__file__).with_name("session_reader_server.py")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)


class ReaderServer:
    """The reader in a child process; restarted after a crash or a hang."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.reads = 0

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, bufsize=1)
        assert self._reply(60.0) == {"status": "ready"}

    def _reply(self, timeout_s: float) -> dict | None:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def read(self, path: Path) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        reply = self._reply(READ_TIMEOUT_S)
        self.reads += 1
        if reply is None:
            hung = self.process.poll() is None
            self.stop()
            return {"status": "hang" if hung else f"crash (exit code {self.process.returncode})"}
        return reply

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def reader() -> Iterator[ReaderServer]:
    server = ReaderServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def write_base_session(path: Path) -> Path:
    """Both arms, labels, frame timestamps and a Subject attribute: every part the reader reads."""
    rng = np.random.default_rng(1)
    times = myo_timestamps(200, 160.0, T0, rng)
    with SessionWriter(path, file_attrs={"Subject": "S04"}) as writer:
        for arm in ("left", "right"):
            writer.add_emg_stream(arm)
            writer.append(EMG_GROUPS[arm], rng.integers(-128, 128, (len(times), 8)), times)
        writer.add_activity_stream(["Slice bread", "Peel a potato"])
        for activity, kind, t in (("Slice bread", "Start", 0.2), ("Slice bread", "Stop", 1.0),
                                  ("Peel a potato", "Start", 1.2), ("Peel a potato", "Stop", 2.2)):
            writer.append_activity(activity, kind, T0 + t)
        writer.add_video_timestamp_stream()
        frames = T0 + np.arange(60) / 30
        writer.append(VIDEO_TIMESTAMP_GROUP, frames.reshape(-1, 1), frames)
    return path


@pytest.fixture(scope="module")
def base_session(workdir: Path) -> Path:
    return write_base_session(workdir / "2022-06-14_12-35-43_streamLog_base.hdf5")


_names = itertools.count()


def check_outcome(reply: dict, path: Path, what: object) -> None:
    assert reply["status"] in ("ok", "project_error"), f"{what}: {reply}"
    if reply["status"] == "project_error":
        assert path.name in reply["message"], f"{what}: the error does not name the file: {reply['message']}"


def test_the_base_session_reads_cleanly(reader: ReaderServer, base_session: Path) -> None:
    assert reader.read(base_session) == {"status": "ok"}


def test_the_server_reports_a_raw_error(reader: ReaderServer, workdir: Path) -> None:
    """The harness can fail: a file the reader rejects with a project error is told apart from success."""
    bad = workdir / "not_a_session.hdf5"
    bad.write_bytes(b"not hdf5")
    reply = reader.read(bad)
    assert reply["status"] == "project_error" and "not an HDF5 file" in reply["message"]


# -- byte-level mutations ---------------------------------------------------------------------------------

offsets = st.one_of(st.integers(0, 4095), st.integers(0, 1 << 20))
byte_mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(offsets, st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("overwrite"), offsets, st.binary(min_size=1, max_size=64)),
)


def apply_bytes(data: bytes, mutation: tuple) -> bytes:
    buffer = bytearray(data)
    kind = mutation[0]
    if kind == "flip":
        for offset, value in mutation[1]:
            buffer[offset % len(buffer)] ^= value
    elif kind == "truncate":
        del buffer[int(mutation[1] * (len(buffer) - 1)):]
    else:
        offset = mutation[1] % len(buffer)
        buffer[offset:offset + len(mutation[2])] = mutation[2]
    return bytes(buffer)


@FUZZ
@given(mutation=byte_mutation)
def test_reader_on_byte_mutations(reader: ReaderServer, base_session: Path, workdir: Path, mutation: tuple) -> None:
    path = workdir / f"bytes_{next(_names)}.hdf5"
    path.write_bytes(apply_bytes(base_session.read_bytes(), mutation))
    try:
        check_outcome(reader.read(path), path, mutation)
    finally:
        path.unlink()


# -- structural mutations with h5py ------------------------------------------------------------------------

GROUPS = (EMG_GROUPS["left"], EMG_GROUPS["right"], ACTIVITY_GROUP, VIDEO_TIMESTAMP_GROUP)
ODD_DTYPES = ("f8", "f4", "u1", "i8", "?", "c8", "S7", "str", "compound")
ODD_SHAPES = ((), (0,), (5,), (0, 8), (5, 7), (5, 0), (5, 8, 2), (5, 1), (5, 3), (300, 8), (1, 8))
garbage_text = st.one_of(st.binary(max_size=40), st.text(max_size=20).map(str.encode),
                         st.sampled_from([b"Start", b"Stop", b"Good", b"Bad", b"Slice bread", b"", b"\xff\xfe"]))
odd_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10).map(float),
                        st.just(T0), st.just(0.0))


def _array(dtype: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if dtype == "str":
        return np.array(["x" * int(n) for n in rng.integers(0, 5, int(np.prod(shape)))], dtype=object).reshape(shape)
    if dtype == "compound":
        return np.zeros(shape, dtype=[("a", "f8"), ("b", "i4")])
    if dtype.startswith("S"):
        return np.full(shape, b"garbage", dtype=dtype)
    return (rng.normal(T0, 10, shape) if dtype.startswith(("f", "c")) else rng.integers(0, 2, shape)).astype(dtype)


def _replace(f: h5py.File, path: str, value: np.ndarray) -> None:
    if path in f:
        del f[path]
    dtype = h5py.string_dtype() if value.dtype == object else None
    f.create_dataset(path, data=value, dtype=dtype)


@st.composite
def structural_mutation(draw: st.DrawFn) -> tuple:
    group = draw(st.sampled_from(GROUPS))
    name = draw(st.sampled_from(("data", "time_s", "time_str")))
    kind = draw(st.sampled_from(("dtype", "shape", "delete", "group_for_dataset", "dataset_for_group",
                                 "dangling_link", "activity_cells", "activity_times", "time_values", "attrs")))
    if kind == "dtype":
        return kind, f"{group}/{name}", draw(st.sampled_from(ODD_DTYPES)), draw(st.sampled_from(ODD_SHAPES[1:]))
    if kind == "shape":
        return kind, f"{group}/{name}", draw(st.sampled_from(("i4", "f8", "S500"))), draw(st.sampled_from(ODD_SHAPES))
    if kind in ("delete", "group_for_dataset", "dangling_link"):
        return kind, draw(st.sampled_from((f"{group}/{name}", group, group.split("/")[0])))
    if kind == "dataset_for_group":
        return kind, group
    if kind == "activity_cells":
        rows = draw(st.lists(st.lists(garbage_text, min_size=1, max_size=5), min_size=0, max_size=6))
        width = draw(st.integers(1, 5))
        return kind, [(row + [b""] * width)[:width] for row in rows]
    if kind == "activity_times":
        return kind, draw(st.lists(odd_numbers, min_size=4, max_size=4))
    if kind == "time_values":
        return kind, group, draw(st.lists(st.tuples(st.integers(0, 400), odd_numbers), min_size=1, max_size=4))
    small = st.integers(-(2**62), 2**62)  # what an HDF5 attribute can hold
    return kind, draw(st.sampled_from(("/", group))), draw(st.one_of(garbage_text, small, st.floats(),
                                                                   st.lists(small, max_size=3)))


def apply_structure(path: Path, mutation: tuple) -> None:
    rng = np.random.default_rng(0)
    kind = mutation[0]
    with h5py.File(path, "a") as f:
        if kind in ("dtype", "shape"):
            _replace(f, mutation[1], _array(mutation[2], mutation[3], rng))
        elif kind == "delete":
            del f[mutation[1]]
        elif kind == "group_for_dataset":
            del f[mutation[1]]
            f.create_group(mutation[1])
        elif kind == "dataset_for_group":
            del f[mutation[1]]
            f.create_dataset(mutation[1], data=np.arange(10))
        elif kind == "dangling_link":
            del f[mutation[1]]
            f[mutation[1]] = h5py.SoftLink("/nowhere/at/all")
        elif kind == "activity_cells":
            rows = mutation[1]
            table = np.array(rows, dtype="S500") if rows else np.zeros((0, 4), "S500")
            _replace(f, f"{ACTIVITY_GROUP}/data", table)
        elif kind == "activity_times":
            _replace(f, f"{ACTIVITY_GROUP}/time_s", np.array(mutation[1], dtype="f8").reshape(-1, 1))
        elif kind == "time_values":
            times = f[f"{mutation[1]}/time_s"]
            for row, value in mutation[2]:
                if row < times.shape[0]:
                    times[row] = value
        else:
            value = mutation[2]
            if isinstance(value, bytes):
                value = np.bytes_(value)  # fixed length: may hold NUL bytes
            f[mutation[1]].attrs["Subject" if mutation[1] == "/" else "Data headings"] = \
                np.array(value) if isinstance(value, list) else value


@FUZZ
@given(mutation=structural_mutation())
def test_reader_on_structural_mutations(reader: ReaderServer, base_session: Path, workdir: Path,
                                        mutation: tuple) -> None:
    path = workdir / f"structure_{next(_names)}.hdf5"
    path.write_bytes(base_session.read_bytes())
    apply_structure(path, mutation)
    try:
        check_outcome(reader.read(path), path, mutation)
    finally:
        path.unlink()


# -- the bundle loader ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_file(workdir: Path) -> Path:
    """A small real bundle: a late-fusion head and the sEMG CNN, as `myosight train` writes one."""
    from myosight.models.bundle import save_bundle
    from myosight.models.clips import ClipGeometry
    from myosight.models.emg_cnn import EmgSpectrogramCNN
    from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
    from myosight.models.heads import build_head

    torch.manual_seed(0)
    head = build_head("late_fusion", num_classes=3, feature_dim=16)
    return save_bundle(
        workdir / "bundle.safetensors", head_name="late_fusion", head=head,
        head_kwargs={k: v for k, v in head.head_config.items() if k != "name"},
        classes=["Slice bread", "Peel a potato", "Pour water from a pitcher into a glass"],
        geometry=ClipGeometry(), emg_config=EmgPipelineConfig(), normalisation=EmgNormalisation.full_scale(),
        emg_cnn=EmgSpectrogramCNN(num_classes=3), emg_cnn_kwargs={"num_classes": 3}, i3d_sha256="a" * 64,
    )


def load_outcome(path: Path):
    """The loaded bundle, or "project_error" (a MyosightError naming the file); anything else fails."""
    from myosight.models.bundle import load_bundle

    try:
        return load_bundle(path)
    except MyosightError as error:
        assert path.name in str(error), f"the error does not name the file: {error}"
        return "project_error"


def test_the_intact_bundle_loads(bundle_file: Path) -> None:
    assert load_outcome(bundle_file).classes[0] == "Slice bread"


@settings(max_examples=80, deadline=None, derandomize=True)
@given(mutation=byte_mutation)
def test_bundle_loader_on_byte_mutations(bundle_file: Path, workdir: Path, mutation: tuple) -> None:
    path = workdir / f"bundle_bytes_{next(_names)}.safetensors"
    path.write_bytes(apply_bytes(bundle_file.read_bytes(), mutation))
    try:
        load_outcome(path)
    finally:
        path.unlink()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children,
                                                                              max_size=4)),
    max_leaves=8,
)


@st.composite
def tampered_metadata(draw: st.DrawFn) -> list:
    """A list of edits (key path, new value or None to delete) to the bundle's JSON metadata."""
    top = ("format", "head", "head_kwargs", "modalities", "classes", "clip_geometry", "emg_pipeline",
           "emg_normalisation", "emg_cnn_kwargs", "i3d_sha256", "metrics", "junk")
    nested = ("num_classes", "feature_dim", "p", "branch", "clips_per_sample", "sample_seconds", "rate_hz",
              "minimum", "maximum", "frames_per_clip", "crop_size", "n_mels", "n_fft", "hop_length")
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(top))
        path = (key, draw(st.sampled_from(nested))) if draw(st.booleans()) else (key,)
        edits.append((path, draw(st.one_of(st.none(), json_values))))
    return edits


def _edit(meta: dict, path: tuple, value: object) -> None:
    target = meta
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            return
        target = target[key]
    if value is None:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


@settings(max_examples=150, deadline=None, derandomize=True)
@given(edits=tampered_metadata())
def test_bundle_loader_on_tampered_metadata(bundle_file: Path, workdir: Path, edits: list) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(bundle_file), framework="pt") as handle:
        meta = json.loads(handle.metadata()["myosight"])
    for path, value in edits:
        _edit(meta, path, value)
    target = workdir / f"bundle_meta_{next(_names)}.safetensors"
    save_file(load_file(str(bundle_file)), str(target), metadata={"myosight": json.dumps(meta)})
    try:
        outcome = load_outcome(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
    if outcome != "project_error":  # whatever loads must be usable: sane geometry, pipeline and labels
        geometry, config = outcome.geometry, outcome.emg_config
        assert geometry.clips_per_sample >= 1 and geometry.sample_seconds > 0 and config.rate_hz > 0, edits
        assert all(isinstance(label, str) for label in outcome.classes), edits
