"""Shared fixtures: the reference files in ../shared and small constructed session files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MYOSIGHT_SHARED_DIR", REPO_ROOT.parent / "shared"))
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
