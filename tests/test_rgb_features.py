"""Clip frame sampling (shared with the live worker) and `myosight features rgb` on synthetic sessions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from rgb_cli import run_cli

from myosight.cli import main
from myosight.data.actionsense import ActionSenseSession
from myosight.data.synth import SynthConfig, write_sessions
from myosight.errors import ConfigError, SessionFormatError
from myosight.models.clips import (
    ClipGeometry,
    clip_frame_times,
    clip_ready,
    clip_segments,
    latest_not_after,
    resolve_geometry,
    sample_bounds,
    sample_frame_times,
    short_side_for,
)
from myosight.models.i3d_weights import manifest_path, weights_path
from myosight.training.feature_store import array_names, read_manifest, read_split
from myosight.training.rgb_features import PARTIAL_SUFFIX, extract_rgb_features, sample_frame_indices

torch.set_num_threads(1)

GEOMETRY = ClipGeometry()
CLASSES = ("Peel a cucumber", "Clean a plate with a towel")


# -- the clip sampler -----------------------------------------------------------------------------------


def test_dense_clip_is_064_s_centred_in_a_1_s_segment() -> None:
    times = clip_frame_times(100.0, 101.0, GEOMETRY)
    assert times.shape == (16,)
    np.testing.assert_allclose(np.diff(times), 1 / 25)
    span_start, span_stop = times[0], times[-1] + 1 / 25
    assert span_stop - span_start == pytest.approx(0.64)
    assert (span_start + span_stop) / 2 == pytest.approx(100.5)


def test_dense_clip_with_rng_moves_inside_the_segment() -> None:
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(200):
        times = clip_frame_times(3.0, 4.0, GEOMETRY, rng=rng)
        assert times[0] >= 3.0 and times[-1] + 1 / 25 <= 4.0 + 1e-9
        np.testing.assert_allclose(np.diff(times), 1 / 25)
        starts.append(times[0])
    assert np.ptp(starts) > 0.25  # the 0.36 s of slack is explored


def test_dense_clip_longer_than_its_segment_stays_centred() -> None:
    times = clip_frame_times(0.0, 0.4, GEOMETRY, rng=np.random.default_rng(1))
    assert (times[0] + times[-1] + 1 / 25) / 2 == pytest.approx(0.2)


def test_uniform_clip_spans_the_segment() -> None:
    times = clip_frame_times(10.0, 11.0, GEOMETRY, mode="uniform")
    assert times[0] == pytest.approx(10.0)
    assert times[-1] + 1 / 16 == pytest.approx(11.0)
    np.testing.assert_allclose(np.diff(times), 1 / 16)
    jittered = clip_frame_times(10.0, 11.0, GEOMETRY, mode="uniform", rng=np.random.default_rng(0))
    period = np.floor((jittered - 10.0) * 16)
    np.testing.assert_array_equal(period, np.arange(16))  # one instant in each sixteenth
    with pytest.raises(ValueError, match="sampling mode"):
        clip_frame_times(0.0, 1.0, GEOMETRY, mode="random")


def test_sample_frame_times_put_clip_i_in_segment_i() -> None:
    times = sample_frame_times(50.0, GEOMETRY)
    segments = clip_segments(50.0, GEOMETRY)
    assert times.shape == (5, 16)
    assert np.all(times >= segments[:, :1]) and np.all(times < segments[:, 1:])
    # variable-length samples (EPIC-Kitchens action segments): 5 equal parts of [start, stop)
    bounds = sample_bounds(2.0, GEOMETRY, stop_s=9.5)
    np.testing.assert_allclose(bounds[:, 1] - bounds[:, 0], 1.5)
    varied = sample_frame_times(2.0, GEOMETRY, stop_s=9.5)
    assert np.all(varied >= bounds[:, :1]) and np.all(varied < bounds[:, 1:])


def test_latest_not_after_picks_the_frame_on_screen_at_each_instant_of_a_30_fps_video() -> None:
    rng = np.random.default_rng(0)
    frame_times = 1000.0 + np.arange(300) / 30 + rng.uniform(-0.003, 0.003, 300)  # jittered 30 fps camera
    wanted = sample_frame_times(1001.0, GEOMETRY)
    indices = latest_not_after(frame_times, wanted)
    assert indices.shape == (5, 16)
    assert np.all(frame_times[indices] <= wanted + 1e-6)
    assert np.all(frame_times[indices + 1] > wanted)
    # 25 fps from 30 fps: steps of one frame with every fifth step skipping one
    assert set(np.diff(indices, axis=1).ravel()) <= {1, 2}
    np.testing.assert_array_equal(latest_not_after(frame_times, [999.0, 1e9]), [0, 299])  # clamped
    with pytest.raises(ValueError):
        latest_not_after(np.zeros(0), [1.0])


def test_the_geometry_is_resolved_from_the_model_and_the_users_override() -> None:
    assert resolve_geometry() == ClipGeometry()  # I3D's own: 256 -> 224, input 224
    reduced = resolve_geometry(ClipGeometry(), 112)  # the model frame stays, the input is area-downscaled
    assert (reduced.short_side, reduced.crop_size, reduced.input_size) == (256, 224, 112)
    larger = resolve_geometry(reduced, 288)  # more than the frame holds: a larger crop at I3D's ratio
    assert (larger.short_side, larger.crop_size, larger.input_size) == (short_side_for(288), 288, 288)
    assert resolve_geometry(reduced, None, "uniform") == ClipGeometry(input_size=112, sampling="uniform")
    assert short_side_for(224) == 256 and short_side_for(112) == 128
    for bad in (16, 0, -224, 112.5, True):
        with pytest.raises(ConfigError, match="too small"):
            resolve_geometry(None, bad)
    with pytest.raises(ConfigError, match="sampling"):
        resolve_geometry(None, None, "sparse")
    # a geometry stored before the input size existed reads its frames at its crop size
    stored = ClipGeometry(crop_size=112, short_side=128, input_size=112).to_dict()
    del stored["input_size"]
    old = ClipGeometry.from_dict(stored)
    assert (old.crop_size, old.input_size) == (112, 112)
    assert ClipGeometry(crop_size=112).short_side == 128  # derived at I3D's ratio unless given
    with pytest.raises(ValueError, match="ratio"):
        ClipGeometry(crop_size=112, short_side=256)
    with pytest.raises(ValueError, match="input_size"):
        ClipGeometry(input_size=300)
    with pytest.raises(ValueError, match="unknown"):
        ClipGeometry.from_dict({**ClipGeometry().to_dict(), "zoom": 2})


def test_clip_ready_waits_for_the_first_frame_at_or_after_the_segment_stop() -> None:
    assert not clip_ready(10.0, None)
    assert not clip_ready(10.0, 9.99)
    assert clip_ready(10.0, 10.0)
    assert clip_ready(10.0, 10.02)


# -- feature extraction ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes, two 5-s sub-actions each, world video at 30 fps; dataset with sEMG inputs, no features."""
    root = tmp_path_factory.mktemp("rgb")
    config = SynthConfig(subjects=("S07",), actions_per_class=1, seconds_per_action=(10.4, 10.8), rest_seconds=1.0,
                         classes=CLASSES, width=160, height=120, seed=5)
    sessions = write_sessions(config, root / "sessions", progress=False)
    assert main(["dataset", *[str(s.hdf5_path) for s in sessions], "--out", str(root / "data"),
                 "--train-fraction", "0.5"]) == 0
    return root / "data"


@pytest.fixture(scope="module")
def weights() -> Path:
    path = weights_path()
    if not path.is_file():
        pytest.skip(f"the I3D weights are not cached at {path}; run `myosight weights fetch` to enable this test")
    return path


@pytest.fixture(scope="module")
def extracted(synthetic: Path, weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset after one uninterrupted `features rgb --size 112` run."""
    data = tmp_path_factory.mktemp("one_pass") / "data"
    shutil.copytree(synthetic, data)
    assert run_cli(["features", "rgb", str(data), "--size", "112", "--eager", "--quiet"]) == 0
    return data


def test_frames_of_each_clip_lie_inside_its_segment(synthetic: Path) -> None:
    for split in ("train", "test"):
        data = read_split(synthetic / f"{split}.h5", ())
        for start, session in zip(data.start_s, data.sessions, strict=True):
            with ActionSenseSession(session) as handle:
                frame_times = handle.video_frame_times()
            chosen = frame_times[sample_frame_indices(frame_times, start, GEOMETRY)]
            segments = clip_segments(start, GEOMETRY)
            assert np.all(chosen >= segments[:, :1]) and np.all(chosen < segments[:, 1:])


@pytest.mark.slow
def test_rgb_features_shape_manifest_and_class_structure(extracted: Path) -> None:
    manifest = read_manifest(extracted)
    geometry = manifest["clip_geometry"]  # the 224 model frame, area-downscaled to a 112-px input
    assert (geometry["crop_size"], geometry["short_side"], geometry["input_size"]) == (224, 256, 112)
    weights_manifest = json.loads(manifest_path().read_text())
    assert manifest["i3d_sha256"] == weights_manifest["weights_sha256"]
    assert manifest["rgb_features"]["complete"] is True
    features, labels = [], []
    for split in ("train", "test"):
        data = read_split(extracted / f"{split}.h5", ("rgb",))
        assert data.arrays["rgb"].shape == (len(data), 5, 1024) and data.arrays["rgb"].dtype == np.float32
        assert "emg_raw" in array_names(extracted / f"{split}.h5")  # the sEMG arrays are untouched
        assert not (extracted / f"{split}{PARTIAL_SUFFIX}").exists()
        features.append(data.arrays["rgb"].mean(axis=1))
        labels.append(data.labels)
    x, y = np.concatenate(features), np.concatenate(labels)
    assert np.isfinite(x).all() and x.std() > 0
    distance = np.linalg.norm(x[:, None] - x[None], axis=-1)
    same = (y[:, None] == y[None]) & ~np.eye(len(y), dtype=bool)
    different = y[:, None] != y[None]
    assert distance[different].mean() > 1.5 * distance[same].mean()


@pytest.mark.slow
def test_interrupted_extraction_resumes_to_the_one_pass_result(
    synthetic: Path, extracted: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    assert run_cli(["features", "rgb", str(data), "--size", "112", "--eager", "--quiet", "--limit", "1"]) == 0
    assert (data / f"train{PARTIAL_SUFFIX}").exists()
    assert "rgb" not in array_names(data / "train.h5")
    with h5py.File(data / f"train{PARTIAL_SUFFIX}", "r") as handle:
        assert handle["done"][()].sum() == 1
    assert read_manifest(data)["rgb_features"]["complete"] is False
    result = extract_rgb_features(data, size=112, fast=False, batch_size=15, progress=False)  # other batching
    assert result.complete and result.samples == 3
    for split in ("train", "test"):
        resumed = read_split(data / f"{split}.h5", ("rgb",)).arrays["rgb"]
        one_pass = read_split(extracted / f"{split}.h5", ("rgb",)).arrays["rgb"]
        np.testing.assert_allclose(resumed, one_pass, atol=1e-5, rtol=0)
    # nothing left to do: a re-run returns at once
    assert extract_rgb_features(data, size=112, fast=False, progress=False).samples == 0


@pytest.mark.slow
def test_other_size_is_refused_instead_of_mixed(extracted: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(["features", "rgb", str(extracted), "--size", "224", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "input_size 112 (now 224)" in captured.out + captured.err
    assert read_manifest(extracted)["clip_geometry"]["input_size"] == 112


def test_missing_video_is_named_or_zero_filled(synthetic: Path, weights: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    gone = tmp_path / "gone.mp4"
    for split in ("train", "test"):
        with h5py.File(data / f"{split}.h5", "a") as handle:
            handle["video"][...] = np.array([str(gone)] * handle["video"].shape[0], dtype="S")
    with pytest.raises(SessionFormatError, match=r"gone\.mp4"):
        extract_rgb_features(data, size=112, fast=False, progress=False)
    result = extract_rgb_features(data, size=112, fast=False, progress=False, skip_bad=True)
    assert result.complete and len(result.bad) == 4 and result.clips == 0
    assert not read_split(data / "train.h5", ("rgb",)).arrays["rgb"].any()
    assert len(read_manifest(data)["rgb_features"]["bad_samples"]) == 4
