"""Shared fixtures: the reference files in ../shared and small constructed session files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _free_loopback_address() -> str:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


# The suite's workers and replays take ports of their own where a test names none (here and in every child
# process, which inherits the environment), never the defaults 5557 and 5558: a myosight the user is running
# beside the suite holds those. Set before any myosight module reads them.
for _variable in ("MYOSIGHT_ADDRESS", "MYOSIGHT_CONTROL_ADDRESS"):
    os.environ.setdefault(_variable, _free_loopback_address())

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MYOSIGHT_SHARED_DIR", REPO_ROOT.parent / "shared"))


def child_environment(*first: Path) -> dict[str, str]:
    """The environment of a Python child whose path starts with `first` (a folder with a sitecustomize): only
    those on PYTHONPATH, never the parent's sys.path, which a package such as OpenCV extends with its own folder
    (whose `typing` then shadows the standard library's in the child). myosight itself is installed."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "PYTHONPATH": os.pathsep.join(str(folder) for folder in first), "PYTHONUNBUFFERED": "1"}
REAL = SHARED / "actionsense" / "real"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the repository; tests that need it skip where it is absent (a user's clone)."""
    if not (SHARED / "SPEC.md").is_file():
        pytest.skip(f"reference files not found at {SHARED} (set MYOSIGHT_SHARED_DIR to use another place)")
    return SHARED


@pytest.fixture
def real_dir(shared_dir: Path) -> Path:
    return shared_dir / "actionsense" / "real"


def myo_timestamps(n_pairs: int, rate_hz: float, start_s: float, rng: np.random.Generator) -> np.ndarray:
    """Myo-like stamps: one per pair, the earlier sample of a pair moved to the midpoint (as recorded)."""
    stamps = start_s + np.cumsum(rng.normal(2 / rate_hz, 0.001, n_pairs).clip(0.002))
    times = np.repeat(stamps, 2)
    times[2::2] = (stamps[:-1] + stamps[1:]) / 2  # earlier of each pair halfway to the previous pair
    return times


@pytest.fixture(scope="session")
def synthetic_emg_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two synthetic subjects (with video), a dataset, the sEMG CNN and a `linear_emg` bundle."""
    import torch

    from myosight.cli import main
    from myosight.data.synth import SynthConfig, write_sessions

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("synthetic-model")
    classes = ("Peel a cucumber", "Clean a plate with a towel", "Pour water from a pitcher into a glass",
               "Open/close a jar of almond butter", "Stack on table: 3 each large/small plates, bowls")
    config = SynthConfig(subjects=("S04", "S07"), actions_per_class=2, seconds_per_action=(10.5, 14.0),
                         classes=classes, seed=3)
    sessions = write_sessions(config, root / "sessions", progress=False)
    data = root / "data"
    assert main(["dataset", *[str(s.hdf5_path) for s in sessions], "--out", str(data)]) == 0
    assert main(["features", "emg", str(data), "--epochs", "30", "--cross-fit", "1", "--quiet"]) == 0
    run = root / "run_emg"
    assert main(["train", "--model", "linear_emg", "--data", str(data), "--out", str(run), "--quiet"]) == 0
    return {"sessions": sessions, "data": data, "bundle": run / "bundle.safetensors"}
