"""Security: no pickle on data or sockets, sockets on 127.0.0.1 by default, weights checked by sha256."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import pickle
import re
import socket
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

PACKAGES = ("myosight", "myosight.capture", "myosight.realtime", "myosight.gui", "myosight.models",
            "myosight.training", "myosight.data")
#: The only unpicklers allowed in the package, each restricted to rebuilding arrays (I3D checkpoint) or a
#: DataFrame of numbers and strings (EPIC-Kitchens annotations).
ALLOWED_UNPICKLERS = {"models/i3d_weights.py": "NumpyOnlyUnpickler", "data/epic_kitchens.py": "DataFrameUnpickler"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def package_sources() -> dict[str, str]:
    """Every installed .py file of myosight (the folders the package maps), keyed by folder/file."""
    sources = {}
    for name in PACKAGES:
        for folder in importlib.import_module(name).__path__:
            for path in sorted(Path(folder).glob("*.py")):
                sources[f"{Path(folder).name}/{path.name}"] = path.read_text(encoding="utf-8")
    return sources


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def unsafe_calls(source: str) -> list[str]:
    """What in `source` could unpickle data: pickle.load(s), *.recv_pyobj / send_pyobj, torch.load without
    weights_only=True, numpy.load with allow_pickle=True, pandas.read_pickle, and unpickler classes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            weights_only = keywords.get("weights_only")
            allow_pickle = keywords.get("allow_pickle")
            if re.fullmatch(r"(c?pickle|dill|joblib|marshal|shelve)\.(loads?|open)", name) \
                    or name.endswith((".recv_pyobj", ".send_pyobj", "read_pickle")):
                found.append(f"{name}() at line {node.lineno}")
            elif name == "torch.load" and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"torch.load without weights_only=True at line {node.lineno}")
            elif name in ("np.load", "numpy.load") and isinstance(allow_pickle, ast.Constant) and allow_pickle.value:
                found.append(f"{name}(allow_pickle=True) at line {node.lineno}")
        elif isinstance(node, ast.ClassDef) and any("Unpickler" in _dotted(base) for base in node.bases):
            found.append(f"class {node.name}")
    return found


def test_the_scanner_finds_what_it_looks_for() -> None:
    sample = ("import pickle, torch\nx = pickle.loads(b'')\ny = torch.load('f')\n"
              "z = torch.load('f', weights_only=True)\ns.recv_pyobj()\nclass U(pickle.Unpickler):\n    pass\n"
              "np.load('a', allow_pickle=True)\n")
    assert set(unsafe_calls(sample)) == {"pickle.loads() at line 2", "torch.load without weights_only=True at line 3",
                                         "s.recv_pyobj() at line 5", "class U", "np.load(allow_pickle=True) at line 8"}


def test_no_pickle_in_the_package_except_the_two_restricted_unpicklers() -> None:
    sources = package_sources()
    assert len(sources) > 40 and "realtime/messages.py" in sources and "core/cli.py" in sources
    offences = {}
    for name, source in sources.items():
        found = unsafe_calls(source)
        allowed = ALLOWED_UNPICKLERS.get(name)
        found = [item for item in found if item != f"class {allowed}"]
        if found:
            offences[name] = found
        for word in ("recv_pyobj", "send_pyobj", "pickle.load(", "pickle.loads("):
            assert word not in source, f"{name} mentions {word}"
    assert not offences, offences
    for name, unpickler in ALLOWED_UNPICKLERS.items():
        assert f"class {unpickler}" in unsafe_calls(sources[name])


class _RunsCode:
    """A pickle payload that would run `os.system` (and leave a marker file) if unpickled plainly."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_the_i3d_checkpoint_unpickler_is_restricted(tmp_path: Path, protocol: int) -> None:
    from myosight.models.i3d_weights import NumpyOnlyUnpickler, UnsafePickleError, restricted_loads

    marker = tmp_path / "ran"
    payloads = [pickle.dumps(_RunsCode(marker), protocol=protocol),
                pickle.dumps({"w": np.ones(3, np.float32), "evil": _RunsCode(marker)}, protocol=protocol),
                pickle.dumps(eval, protocol=protocol), pickle.dumps(argparse.Namespace(a=1), protocol=protocol)]
    for payload in payloads:
        with pytest.raises(UnsafePickleError, match="refusing to unpickle"):
            restricted_loads(payload)
    assert not marker.exists()
    allowed_modules = {module for module, _name in NumpyOnlyUnpickler._ALLOWED}
    assert allowed_modules <= {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                               "numpy._core.numeric", "collections", "_codecs"}
    arrays = restricted_loads(pickle.dumps({"w": np.arange(4, dtype=np.float32)}, protocol=protocol))
    np.testing.assert_array_equal(arrays["w"], np.arange(4))


def test_the_epic_annotation_unpickler_is_restricted(tmp_path: Path) -> None:
    from myosight.data.epic_kitchens import ALLOWED_PICKLE_GLOBALS, UnsafePickleError, restricted_load_dataframe

    marker = tmp_path / "ran"
    path = tmp_path / "D1_train.pkl"
    path.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(UnsafePickleError, match=r"D1_train\.pkl: refusing to unpickle"):
        restricted_load_dataframe(path)
    assert not marker.exists()
    modules = {module.split(".")[0] for module, _name in ALLOWED_PICKLE_GLOBALS}
    assert modules <= {"pandas", "numpy", "_codecs", "builtins"}
    assert {name for module, name in ALLOWED_PICKLE_GLOBALS if module == "builtins"} == {"slice"}


# -- sockets ------------------------------------------------------------------------------------------------


def _address_options(parser: argparse.ArgumentParser, path: str = "myosight") -> dict[str, object]:
    """Every option of every subcommand that names a network address, with its default."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_address_options(sub, f"{path} {name}"))
        elif any(word in action.dest for word in ("address", "bind", "host", "connect", "control", "endpoint")):
            name = f"{path} {'/'.join(action.option_strings) or action.dest}"
            found[name] = action.default
            if action.const is not None:  # `--option` given without a value
                found[f"{name} (no value)"] = action.const
    return found


def test_every_address_default_of_the_cli_is_loopback() -> None:
    from myosight.cli import build_parser

    options = _address_options(build_parser())
    assert "myosight worker --address" in options and "myosight run --address" in options
    assert "myosight view --connect" in options
    for option, default in options.items():
        if isinstance(default, str) and default:
            assert any(host in default for host in LOOPBACK_HOSTS), f"{option} defaults to {default}"


def test_no_address_literal_in_the_package_leaves_loopback() -> None:
    pattern = re.compile(r"^(tcp|udp|ipc|ws)://([^:/]+|\[[^\]]+\])(:\d+)?$")
    seen = 0
    for name, source in package_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = pattern.match(node.value)
                if match:
                    seen += 1
                    assert match.group(2) in LOOPBACK_HOSTS, f"{name}: address literal {node.value!r}"
    assert seen >= 1  # the worker's default address at least


def _listening(port: int) -> list[str]:
    """Local addresses listening on `port`, from the kernel's own table (/proc/net/tcp and tcp6)."""
    hosts = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # LISTEN
                if len(address) == 8:
                    hosts.append(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
                else:
                    hosts.append(address)
    return hosts


def test_the_worker_publisher_binds_loopback_only() -> None:
    from myosight.realtime.messages import DEFAULT_ADDRESS, ResultPublisher

    assert DEFAULT_ADDRESS.startswith("tcp://127.0.0.1:")
    host = DEFAULT_ADDRESS.rsplit(":", 1)[0]
    publisher = ResultPublisher(f"{host}:0")  # the default host on a free port (the default port may be busy)
    try:
        port = int(publisher.address.rsplit(":", 1)[1])
        assert _listening(port) == ["127.0.0.1"]
    finally:
        publisher.close()
    assert ResultPublisher.__init__.__defaults__[0] == DEFAULT_ADDRESS


def test_replay_control_binds_loopback_if_present() -> None:
    """The replay control socket (capture/) binds 127.0.0.1 by default, wherever it is defined."""
    defaults = []
    for name, source in package_sources().items():
        if not name.startswith("capture/"):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(getattr(node, "value", None), ast.Constant):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [_dotted(t) for t in targets]
                if any("ADDRESS" in n.upper() or "HOST" in n.upper() for n in names) \
                        and isinstance(node.value.value, str):
                    defaults.append((name, names, node.value.value))
    for name, names, value in defaults:
        assert any(host in value for host in LOOPBACK_HOSTS), f"{name}: {names} = {value!r}"


# -- weights ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding converted I3D weights (random values) and its manifest, written by the fetch's writer."""
    import torch

    from myosight.models.i3d import InceptionI3d
    from myosight.models.i3d_weights import NUM_CLASSES, _write_outputs

    torch.manual_seed(0)
    cache = tmp_path_factory.mktemp("cache")
    state = {k: v.contiguous() for k, v in InceptionI3d(num_classes=NUM_CLASSES).state_dict().items()}
    _write_outputs(cache, state, [f"kinetics class {i}" for i in range(NUM_CLASSES)])
    return cache


def _copy_cache(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_intact_weights_load(weights_cache: Path) -> None:
    from myosight.models.i3d_weights import load_i3d, verify_weights

    assert verify_weights(weights_cache)["weights_sha256"]
    assert load_i3d(weights_cache).logits is not None


@pytest.mark.parametrize("where", ["header", "middle", "end"])
def test_tampered_weights_are_refused_before_use(weights_cache: Path, tmp_path: Path, where: str) -> None:
    from myosight.models.i3d_weights import WeightsError, load_i3d, verify_weights, weights_path

    cache = _copy_cache(weights_cache, tmp_path / "cache")
    path = weights_path(cache)
    data = bytearray(path.read_bytes())
    offset = {"header": 20, "middle": len(data) // 2, "end": len(data) - 1}[where]
    data[offset] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    for check in (verify_weights, load_i3d):
        with pytest.raises(WeightsError, match=rf"{re.escape(str(path))}: sha256 does not match"):
            check(cache)


def test_truncated_weights_and_altered_labels_are_refused(weights_cache: Path, tmp_path: Path) -> None:
    from myosight.models.i3d_weights import WeightsError, labels_path, load_i3d, weights_path

    cache = _copy_cache(weights_cache, tmp_path / "truncated")
    path = weights_path(cache)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(WeightsError, match="sha256"):
        load_i3d(cache)
    cache = _copy_cache(weights_cache, tmp_path / "labels")
    labels = labels_path(cache)
    labels.write_text(labels.read_text().replace("kinetics class 7\n", "evil\n"))
    with pytest.raises(WeightsError, match="missing or altered"):
        load_i3d(cache)


def test_the_worker_refuses_tampered_weights_and_foreign_ones(weights_cache: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The live worker checks the weights (and that the bundle was trained on them) before loading I3D."""
    from myosight.errors import ConfigError
    from myosight.models.clips import ClipGeometry
    from myosight.models.i3d_weights import WeightsError, manifest_path, weights_path
    from myosight.realtime.worker import load_live_i3d

    bundle = SimpleNamespace(i3d_sha256="0" * 64)  # all `load_live_i3d` reads of a bundle
    geometry = ClipGeometry(input_size=112)
    cache = _copy_cache(weights_cache, tmp_path / "cache")
    monkeypatch.setenv("MYOSIGHT_CACHE_DIR", str(cache))
    with pytest.raises(ConfigError, match="other I3D weights"):
        load_live_i3d(bundle, geometry)
    bundle.i3d_sha256 = json.loads(manifest_path(cache).read_text())["weights_sha256"]
    assert load_live_i3d(bundle, geometry) is not None
    path = weights_path(cache)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(WeightsError, match="sha256"):
        load_live_i3d(bundle, geometry)

