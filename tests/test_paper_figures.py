"""The paper's figures: PCA + nearest neighbours (fig. 2), central frames, clip attention (fig. 6), the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from myosight.data.actionsense import ActionSenseSession
from myosight.data.synth import SynthConfig, write_sessions
from myosight.data.video import VideoFile
from myosight.errors import ConfigError
from myosight.training.feature_store import SplitData, write_manifest, write_split
from myosight.training.paper_figures import (
    central_frame,
    choose_queries,
    nearest_neighbours,
    plot_clip_attention,
    plot_feature_pca,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ["Peel a cucumber", "Pour water from a pitcher into a glass", "Slice bread"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _clusters(per_class: int = 4, dim: int = 1024, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters around random non-negative directions, each point at its own scale."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (3, dim))
    features = np.concatenate([
        c * rng.uniform(0.5, 3.0, (per_class, 1)) + 0.01 * rng.standard_normal((per_class, dim)) for c in centres
    ])
    return features, np.repeat(np.arange(3), per_class)


def test_nearest_neighbours_find_the_own_cluster() -> None:
    features, labels = _clusters()
    neighbours, distances = nearest_neighbours(features, [0, 5, 11], k=3)
    assert neighbours.shape == (3, 3)
    for row, query in zip(neighbours, (0, 5, 11), strict=True):
        assert query not in row
        assert set(row) == set(np.flatnonzero(labels == labels[query])) - {query}
    assert np.all(np.diff(distances, axis=1) >= 0)
    # cosine: a point far away in Euclidean terms but in the same direction is the nearest
    line = np.array([[1.0, 0.0], [10.0, 0.1], [1.0, 1.0], [0.0, 1.0]])
    assert nearest_neighbours(line, [0], k=1)[0][0, 0] == 1


def test_choose_queries_is_deterministic_and_spans_classes() -> None:
    features, labels = _clusters()
    queries = choose_queries(features, labels, 3)
    assert queries == choose_queries(features, labels, 3)
    assert sorted(labels[queries]) == [0, 1, 2]
    eligible = np.arange(len(labels)) % 2 == 1  # e.g. only samples with a video frame
    chosen = choose_queries(features, labels, 3, eligible)
    assert sorted(labels[chosen]) == [0, 1, 2] and eligible[chosen].all()
    assert choose_queries(features, labels, 2) != [] and len(set(labels[choose_queries(features, labels, 2)])) == 2


def test_plot_feature_pca_writes_png(tmp_path: Path) -> None:
    features, labels = _clusters(per_class=8)
    rng = np.random.default_rng(1)
    thumbnails = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) if i % 5 else None for i in range(len(labels))]
    with_frames = plot_feature_pca(features, labels, CLASSES, thumbnails, tmp_path / "knn.png", k=4)
    scatter_only = plot_feature_pca(features, labels, CLASSES, [None] * len(labels), tmp_path / "scatter.png")
    (w_frames, h_frames), (w_scatter, _) = _png_size(with_frames), _png_size(scatter_only)
    assert with_frames.stat().st_size > 20_000 and scatter_only.stat().st_size > 10_000
    assert w_frames > 1.5 * w_scatter  # the neighbour strips are there
    assert h_frames > 300


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    config = SynthConfig(subjects=("S04",), actions_per_class=1, seconds_per_action=6.0, duration_jitter=0.0,
                         rest_seconds=0.5, classes=tuple(CLASSES[:2]), width=64, height=48, fps=30.0)
    return write_sessions(config, tmp_path_factory.mktemp("video"), progress=False)[0]


def test_central_frame_is_the_frame_nearest_the_centre(session) -> None:
    with ActionSenseSession(session.hdf5_path) as opened:
        times = opened.video_frame_times()
    fps = 30.0
    with VideoFile(session.video_path) as video:
        for index, fraction in ((60, 0.4), (60, 0.6), (200, 0.1)):
            start = times[index] + fraction / fps - 2.5  # centre between frame `index` and the next
            expected = index + (1 if fraction > 0.5 else 0)
            frame = central_frame(session.video_path, times, start, sample_seconds=5.0)
            direct = video.read([expected - 1, expected, expected + 1])[:, :, :, ::-1]
            assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
            assert np.array_equal(frame, direct[1])
            # neighbouring frames differ (the hands move), so an off-by-one would be caught
            assert not np.array_equal(frame, direct[0]) and not np.array_equal(frame, direct[2])


def test_plot_clip_attention_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(5), size=(2, 3))
    path = plot_clip_attention(weights[0], weights[1], ["a: x", "b: y", "c: z"], tmp_path / "att.png")
    width, height = _png_size(path)
    assert path.stat().st_size > 10_000 and width > height
    with pytest.raises(ValueError, match="weights"):
        plot_clip_attention(weights[0], weights[1][:, :4], ["a", "b", "c"], tmp_path / "bad.png")


def _figures_parser() -> argparse.ArgumentParser:
    from myosight.training.commands import register_figures

    parser = argparse.ArgumentParser(prog="myosight")
    register_figures(parser.add_subparsers())
    return parser


def _dataset(root: Path, session) -> Path:
    """A dataset directory built by hand: separable rgb/emg features, spectrograms, samples on the video."""
    rng = np.random.default_rng(0)
    directions = rng.uniform(0, 1, (len(CLASSES), 1024))
    first_start, second_start = session.actions[0][1], session.actions[1][1]
    data = root / "data"
    data.mkdir()
    for split, count in (("train", 30), ("test", 12)):
        labels = np.arange(count) % len(CLASSES)
        starts = np.where(labels == 0, first_start, second_start) + rng.uniform(-1.0, 1.0, count)
        videos = np.array([str(session.video_path) if i % 4 else "" for i in range(count)])
        arrays = {
            "rgb": (directions[labels][:, None, :] + 0.2 * rng.random((count, 5, 1024))).astype(np.float32),
            "emg": (directions[::-1][labels][:, None, :] + 0.2 * rng.random((count, 5, 1024))).astype(np.float32),
            "spectrograms": rng.random((count, 5, 16, 10, 17)).astype(np.float32),
        }
        write_split(data / f"{split}.h5", SplitData(
            np.array([f"{split}-{i}" for i in range(count)]), labels, starts,
            np.full(count, str(session.hdf5_path)), videos, arrays))
    write_manifest(data, {"classes": CLASSES})
    return data


@pytest.mark.slow
def test_figures_command_writes_all_figures(tmp_path: Path, session, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path, session)
    out = tmp_path / "figures"
    args = _figures_parser().parse_args(["figures", "--data", str(data), "--out", str(out)])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    names = ("fig2_pca_knn.png", "fig3_emg_spectrograms.png", "fig4_confusion_emg.png", "fig6_attention.png")
    for name in names:
        assert _png_size(out / name)[0] > 300
        assert f"wrote {out / name}" in printed
    assert "no video frame" in printed  # every fourth sample has no video


def test_figures_command_refuses_a_run_without_attention(tmp_path: Path, session) -> None:
    from myosight.models.bundle import save_bundle
    from myosight.models.clips import ClipGeometry
    from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
    from myosight.models.heads import build_head

    data = _dataset(tmp_path, session)
    head = build_head("linear_rgb", num_classes=len(CLASSES))
    run = tmp_path / "run"
    save_bundle(run / "bundle.safetensors", head_name="linear_rgb", head=head,
                head_kwargs={k: v for k, v in head.head_config.items() if k != "name"}, classes=CLASSES,
                geometry=ClipGeometry(), emg_config=EmgPipelineConfig(), normalisation=EmgNormalisation.full_scale())
    out = tmp_path / "figures"
    missing = r"missing: no such file \(expected a model bundle\)"
    for target, message in ((run, "no clip self-attention"), (tmp_path / "missing", missing)):
        args = _figures_parser().parse_args(["figures", "--data", str(data), "--out", str(out), "--run", str(target)])
        with pytest.raises(ConfigError, match=message):
            args.handler(args)
    assert not out.exists()  # refused before any figure was trained or drawn


def test_figures_command_skips_without_rgb(tmp_path: Path, session, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        write_split(data / f"{split}.h5", SplitData(
            np.array(["a", "b"]), np.array([0, 1]), np.zeros(2), np.array(["", ""]), np.array(["", ""]),
            {"spectrograms": rng.random((2, 5, 16, 10, 17)).astype(np.float32)}))
    write_manifest(data, {"classes": CLASSES[:2]})
    args = _figures_parser().parse_args(["figures", "--data", str(data), "--out", str(tmp_path / "f")])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "skipped fig. 2" in printed and "skipped fig. 4" in printed and "skipped fig. 6" in printed
    assert (tmp_path / "f" / "fig3_emg_spectrograms.png").is_file()
    assert not (tmp_path / "f" / "fig2_pca_knn.png").exists()
