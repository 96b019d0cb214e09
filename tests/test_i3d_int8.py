"""The int8 I3D (`--precision int8`): faithful to float32 on real and synthetic clips, Kinetics top-1 unchanged,
cached once and rebuilt when the cache is damaged, offered by `myosight features rgb`.

One quantised network (112 px, the live default; about a minute to build on a busy 2-core machine) is built
into a temporary folder and shared by the tests of this module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from rgb_cli import run_cli

from myosight.data.synth import SynthConfig, write_sessions
from myosight.models import i3d_int8
from myosight.models.i3d import InceptionI3d, optimize_for_inference
from myosight.models.i3d_int8 import (
    ExportableI3d,
    Int8Error,
    int8_available,
    load_int8_i3d,
    synthetic_clips,
    video_clips,
)
from myosight.models.i3d_weights import WeightsError, load_i3d, verify_weights
from myosight.training.rgb_features import settings_of

SIZE = 112


def _cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1).numpy()


def _needs_int8() -> None:
    reason = int8_available()
    if reason is not None:
        pytest.skip(f"int8 I3D cannot run here: {reason}")
    try:
        verify_weights()
    except WeightsError as error:
        pytest.skip(f"I3D weights not cached ({error}); run `myosight weights fetch` to enable this test")


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module")
def int8(artefacts: Path) -> i3d_int8.Int8I3d:
    """The quantised network at 112 px, built once (calibrated on ../shared/media where present)."""
    _needs_int8()
    return load_int8_i3d(SIZE, progress=False, artefacts=artefacts)


@pytest.fixture(scope="module")
def float_model() -> torch.nn.Module:
    _needs_int8()
    return optimize_for_inference(load_i3d(), use_compile=False)


# -- without building ---------------------------------------------------------------------------------------
def test_exported_network_equals_the_float_model() -> None:
    """The zero-padded max-pools of the exported network change nothing (every pool reads a ReLU output)."""
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    x = torch.rand(2, 3, 9, 48, 64) * 2 - 1
    with torch.inference_mode():
        assert (ExportableI3d(model)(x) - model.extract_features(x)).abs().max() <= 1e-4


def test_a_cpu_without_vnni_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i3d_int8, "_cpu_flags", lambda: {"sse4_2", "avx2", "avx512f"})
    reason = int8_available()
    assert reason is not None and "VNNI" in reason
    with pytest.raises(Int8Error, match="VNNI"):
        load_int8_i3d(SIZE, progress=False)


def test_int8_and_float32_features_are_different_settings() -> None:
    from myosight.models.clips import ClipGeometry

    assert settings_of(ClipGeometry(), "0" * 64, "int8") != settings_of(ClipGeometry(), "0" * 64)


# -- the built network ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_features_match_float32_on_synthetic_clips(int8: i3d_int8.Int8I3d, float_model: torch.nn.Module) -> None:
    clips = synthetic_clips(SIZE, 16, subjects=("S07",))[::4]  # a subject the calibration never saw
    with torch.inference_mode():
        cosines = _cosines(int8.extract_features(clips), float_model.extract_features(clips))
    assert cosines.min() >= 0.99, cosines
    single = int8.extract_features(clips[:1])  # another batch size: its own compiled shape, same features
    assert _cosines(single, int8.extract_features(clips)[:1]).min() > 0.9999
    assert single.dtype == torch.float32 and single.shape == (1, 1024)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_features_match_float32_on_real_clips(
    int8: i3d_int8.Int8I3d, float_model: torch.nn.Module, shared_dir: Path
) -> None:
    for video in sorted((shared_dir / "media").glob("*.mp4")):
        clips = video_clips(video, SIZE, 16, count=3)
        with torch.inference_mode():
            cosines = _cosines(int8.extract_features(clips), float_model.extract_features(clips))
        assert cosines.min() >= 0.99, (video.name, cosines)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_kinetics_top1_unchanged_on_the_shared_clips(
    int8: i3d_int8.Int8I3d, float_model: torch.nn.Module, shared_dir: Path
) -> None:
    """Per video: the class of the mean probability over all its 16-frame clips, float32 and int8 alike (at
    112 px that class is not always the video's label: the comparison is with float32, not with the label).
    Single clips whose float32 top two classes are close can swap (measured: 61 of 67 clips agree)."""
    videos = sorted(p for p in (shared_dir / "media").iterdir() if p.suffix in (".mp4", ".mkv"))
    assert len(videos) >= 4
    for video in videos:
        clips = video_clips(video, SIZE, 16)
        with torch.inference_mode():
            reference = float_model(clips).softmax(-1).mean(0)
            quantised = int8(clips).softmax(-1).mean(0)
            features = int8.extract_features(clips[:1])[0]
            live = int8.logits(features[None, :, None, None, None]).flatten()  # as the live worker calls it
        assert int(quantised.argmax()) == int(reference.argmax()), video.name
        assert torch.allclose(live, int8(clips[:1])[0], atol=1e-5)


@pytest.mark.slow
def test_a_wrong_clip_shape_is_refused(int8: i3d_int8.Int8I3d) -> None:
    with pytest.raises(ValueError, match="built for"):
        int8.extract_features(torch.zeros(1, 3, 16, 224, 224))
    with pytest.raises(ValueError, match="built for"):
        int8.extract_features(torch.zeros(1, 3, 12, SIZE, SIZE))
    with pytest.raises(Int8Error, match="CPU only"):
        int8.to("cuda")


# -- the cache -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_load_uses_the_cache(int8: i3d_int8.Int8I3d, artefacts: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("rebuilt although the cached network is intact")

    monkeypatch.setattr(i3d_int8, "build_int8_onnx", no_build)
    again = load_int8_i3d(SIZE, progress=False, artefacts=artefacts)
    assert again.path == int8.path and again.record["sha256"] == int8.record["sha256"]
    manifest = json.loads(int8.path.with_suffix(".json").read_text())
    assert manifest["key"]["input_size"] == SIZE and manifest["key"]["frames_per_clip"] == 16
    assert manifest["key"]["weights_sha256"] == verify_weights()["weights_sha256"]
    assert "openvino" in manifest["key"]["versions"]


@pytest.mark.slow
def test_a_corrupt_cached_network_is_detected_and_rebuilt(
    int8: i3d_int8.Int8I3d, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A copy of the cache, then one flipped byte in the middle of the network (a bad disk, a cut copy).
    cache = tmp_path / "cache"
    shutil.copytree(int8.path.parent, cache)
    damaged = cache / int8.path.name
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    builds: list[Path] = []

    def rebuild(model: object, out: Path, *args: object, **kwargs: object) -> dict:
        builds.append(out)  # the real build is the fixture's; here it is replaced by the intact file
        shutil.copyfile(int8.path, out)
        return {"calibration_clips": 0, "check_clips": 0, "check_cosine_min": 1.0, "build_seconds": 0.0}

    monkeypatch.setattr(i3d_int8, "build_int8_onnx", rebuild)
    again = load_int8_i3d(SIZE, progress=True, artefacts=cache)
    err = capsys.readouterr().err
    assert builds == [damaged]
    assert "corrupt" in err and damaged.name in err and "rebuilding" in err
    assert damaged.read_bytes() == int8.path.read_bytes()
    x = synthetic_clips(SIZE, 16, subjects=("S08",))[:1]
    assert _cosines(again.extract_features(x), int8.extract_features(x)).min() > 0.9999


# -- `myosight features rgb --precision int8` ----------------------------------------------------------------
@pytest.mark.slow
def test_features_rgb_with_int8_precision(
    int8: i3d_int8.Int8I3d, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from myosight.cli import main

    monkeypatch.setattr(i3d_int8, "artefact_dir", lambda cache_dir=None: int8.path.parent)  # the built network
    config = SynthConfig(subjects=("S07",), actions_per_class=1, seconds_per_action=(10.4, 10.8), rest_seconds=1.0,
                         classes=("Peel a cucumber", "Clean a plate with a towel"), width=160, height=120, seed=5)
    sessions = write_sessions(config, tmp_path / "sessions", progress=False)
    data = tmp_path / "data"
    assert main(["dataset", *[str(s.hdf5_path) for s in sessions], "--out", str(data),
                 "--train-fraction", "0.5"]) == 0
    as_float = tmp_path / "float"
    shutil.copytree(data, as_float)
    assert run_cli(["features", "rgb", str(data), "--size", str(SIZE), "--precision", "int8", "--quiet"]) == 0
    assert run_cli(["features", "rgb", str(as_float), "--size", str(SIZE), "--no-compile", "--quiet"]) == 0
    manifest = json.loads((data / "dataset.json").read_text())
    assert manifest["rgb_features"]["settings"]["precision"] == "int8"
    for split in ("train", "test"):
        with h5py.File(data / f"{split}.h5", "r") as quantised, h5py.File(as_float / f"{split}.h5", "r") as reference:
            a, b = quantised["arrays/rgb"][()], reference["arrays/rgb"][()]
        assert a.shape == b.shape and np.isfinite(a).all()
        assert _cosines(torch.from_numpy(a.reshape(-1, 1024)), torch.from_numpy(b.reshape(-1, 1024))).min() >= 0.99
    capsys.readouterr()
    # float32 features are never added to an int8 dataset (nor the other way round) without --force
    assert run_cli(["features", "rgb", str(data), "--size", str(SIZE), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "precision 'int8' (now 'float32')" in captured.out + captured.err
