"""Data-parallel RGB feature extraction: rows split by rank, two real processes (torchrun and plain env vars),
and the merged features equal a single process's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from myosight.cli import main
from myosight.data.synth import SynthConfig, write_sessions
from myosight.errors import ConfigError
from myosight.training.feature_store import read_manifest, read_split
from myosight.training.sharding import SHARD_DIR, Shard, assign_rows, shard_from_env

torch.set_num_threads(1)

TORCHRUN = Path(sys.executable).with_name("torchrun")
EXTRACT = ["features", "rgb", "--size", "112", "--eager", "--quiet"]


def test_rows_are_split_by_whole_videos_and_balanced() -> None:
    videos = np.array(["a", "a", "a", "b", "b", "c", "d", "d", "d", "d"])
    sessions = np.array(["s"] * 10)
    parts = assign_rows(videos, sessions, 2)
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    for part in parts:
        for video in set(videos[part]):
            assert set(np.flatnonzero(videos == video)) <= set(part.tolist())  # a video stays on one rank
    assert sorted(len(part) for part in parts) == [5, 5]
    assert [len(p) for p in assign_rows(videos, sessions, 2)] == [len(p) for p in parts]  # deterministic
    assert sum(len(p) for p in assign_rows(videos, sessions, 7)) == 10  # more ranks than videos: some idle


def test_rank_and_world_size_from_the_environment() -> None:
    assert shard_from_env({}) == Shard(0, 1, 0) and not shard_from_env({}).active
    shard = shard_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert shard.active and shard.name == "rank1of2"
    with pytest.raises(ConfigError, match="RANK=2 and WORLD_SIZE=2"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="must be integers"):
        shard_from_env({"RANK": "x", "WORLD_SIZE": "2"})


@pytest.fixture(scope="module")
def i3d_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights cache with a random-valued I3D, written as `myosight weights fetch` writes the real one."""
    from myosight.models.i3d import InceptionI3d
    from myosight.models.i3d_weights import NUM_CLASSES, _write_outputs

    torch.manual_seed(0)
    cache = tmp_path_factory.mktemp("cache")
    state = {k: v.contiguous() for k, v in InceptionI3d(num_classes=NUM_CLASSES).state_dict().items()}
    _write_outputs(cache, state, [f"class {i}" for i in range(NUM_CLASSES)])
    return cache


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two subjects (two videos), two classes, two 5-s samples per class and subject; no features yet."""
    root = tmp_path_factory.mktemp("sharding")
    config = SynthConfig(subjects=("S07", "S08"), actions_per_class=2, seconds_per_action=(5.4, 5.8),
                         rest_seconds=1.0, classes=("Peel a cucumber", "Clean a plate with a towel"), width=160,
                         height=120, seed=5)
    sessions = write_sessions(config, root / "sessions", progress=False)
    assert main(["dataset", *[str(s.hdf5_path) for s in sessions], "--out", str(root / "data"),
                 "--train-fraction", "0.5"]) == 0
    for split in ("train", "test"):  # both ranks have work in both splits, so the test shows the split
        data = read_split(root / "data" / f"{split}.h5", ())
        assert all(len(rows) for rows in assign_rows(data.videos, data.sessions, 2)), split
    return root / "data"


def _copy(dataset: Path, target: Path) -> Path:
    shutil.copytree(dataset, target)
    return target


def _myosight(args: list[str], env: dict[str, str], *, torchrun: bool = False) -> subprocess.CompletedProcess:
    prefix = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "myosight"] if torchrun \
        else [sys.executable, "-m", "myosight"]
    return subprocess.run([*prefix, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def single_process(dataset: Path, i3d_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = _copy(dataset, tmp_path_factory.mktemp("single") / "data")
    env = {**os.environ, "MYOSIGHT_CACHE_DIR": str(i3d_cache), "OMP_NUM_THREADS": "1"}
    result = _myosight([EXTRACT[0], EXTRACT[1], str(data), *EXTRACT[2:]], env)
    assert result.returncode == 0, result.stdout + result.stderr
    return data


def _assert_same_features(merged: Path, reference: Path) -> None:
    for split in ("train", "test"):
        ours, theirs = read_split(merged / f"{split}.h5", ("rgb",)), read_split(reference / f"{split}.h5", ("rgb",))
        np.testing.assert_array_equal(ours.uids, theirs.uids)
        assert ours.arrays["rgb"].shape == (len(ours), 5, 1024) and np.abs(ours.arrays["rgb"]).sum() > 0
        np.testing.assert_allclose(ours.arrays["rgb"], theirs.arrays["rgb"], atol=1e-5, rtol=0)
    manifest, expected = read_manifest(merged), read_manifest(reference)
    assert manifest["rgb_features"]["complete"] is True
    assert manifest["rgb_features"]["settings"] == expected["rgb_features"]["settings"]
    assert manifest["clip_geometry"] == expected["clip_geometry"] and manifest["i3d_sha256"] == expected["i3d_sha256"]
    assert not (merged / SHARD_DIR).exists()


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(dataset: Path, i3d_cache: Path, single_process: Path,
                                              tmp_path: Path) -> None:
    data = _copy(dataset, tmp_path / "data")
    env = {**os.environ, "MYOSIGHT_CACHE_DIR": str(i3d_cache)}
    result = _myosight([EXTRACT[0], EXTRACT[1], str(data), *EXTRACT[2:]], env, torchrun=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[rank0of2]" in result.stdout and "[rank1of2]" in result.stdout and "shards merged" in result.stdout
    _assert_same_features(data, single_process)


@pytest.mark.slow
def test_plain_env_ranks_then_merge_step(dataset: Path, i3d_cache: Path, single_process: Path,
                                         tmp_path: Path) -> None:
    """Ranks started by hand (no rendezvous); merging before every rank is done is refused, nothing is lost."""
    data = _copy(dataset, tmp_path / "data")
    base = {**os.environ, "MYOSIGHT_CACHE_DIR": str(i3d_cache), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        base.pop(key, None)
    first = _myosight([EXTRACT[0], EXTRACT[1], str(data), *EXTRACT[2:]], {**base, "RANK": "0"})
    assert first.returncode == 0 and "myosight features merge" in first.stdout, first.stdout + first.stderr
    early = _myosight(["features", "merge", str(data)], dict(os.environ))
    assert early.returncode == 1 and "not extracted by any shard yet" in early.stderr
    assert (data / SHARD_DIR / "rank0of2").is_dir()  # rank 0's work is kept
    second = _myosight([EXTRACT[0], EXTRACT[1], str(data), *EXTRACT[2:]], {**base, "RANK": "1"})
    assert second.returncode == 0, second.stdout + second.stderr
    again = _myosight([EXTRACT[0], EXTRACT[1], str(data), *EXTRACT[2:]], {**base, "RANK": "0"})
    assert again.returncode == 0 and "0 sample(s)" in again.stdout  # resumed: nothing left for rank 0
    merged = _myosight(["features", "merge", str(data)], dict(os.environ))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    _assert_same_features(data, single_process)
