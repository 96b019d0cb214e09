"""Careless and hostile files: every file-taking command refuses a bad path in one true line (exit 1, no
traceback, no output touched); outputs are replaced only when complete; shards are merged only when sound."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from myosight.cli import main
from myosight.data.synth import SynthConfig, write_sessions
from myosight.models.bundle import save_bundle
from myosight.models.clips import ClipGeometry
from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
from myosight.models.heads import build_head
from myosight.training.feature_store import SplitData, read_split, write_manifest, write_split
from myosight.training.rgb_features import settings_of
from myosight.training.sharding import SHARD_DIR

CLASSES = ["Peel a cucumber", "Slice bread"]
CASES = ("missing", "directory", "empty", "text", "truncated", "unicode")


def _bad_path(case: str, root: Path, request: pytest.FixtureRequest) -> Path:
    """One kind of bad input, named with the extension a real one would have."""
    if case == "missing":
        return root / "missing.hdf5"
    if case == "directory":
        (root / "folder.hdf5").mkdir()
        return root / "folder.hdf5"
    if case == "empty":
        (root / "empty.hdf5").write_bytes(b"")
        return root / "empty.hdf5"
    if case == "text":
        (root / "notes.hdf5").write_text("not a session\n")
        return root / "notes.hdf5"
    if case == "truncated":
        real = request.getfixturevalue("real_dir") / "S01_1_myo.hdf5"
        data = real.read_bytes()
        (root / "cut.hdf5").write_bytes(data[: len(data) // 3])
        return root / "cut.hdf5"
    folder = root / "séance ü 1"
    folder.mkdir()
    (folder / "prise é.hdf5").write_text("not a session either\n")
    return folder / "prise é.hdf5"


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    head = build_head("linear_rgb", num_classes=len(CLASSES), feature_dim=1024)
    return save_bundle(tmp_path_factory.mktemp("bundle") / "bundle.safetensors", head_name="linear_rgb", head=head,
                       head_kwargs={"feature_dim": 1024}, classes=CLASSES, geometry=ClipGeometry(),
                       emg_config=EmgPipelineConfig(), normalisation=EmgNormalisation.full_scale())


#: Every command that takes a file (or a dataset folder), with OUT standing for an existing output folder.
COMMANDS: dict[str, list[str]] = {
    "info": ["info", "{path}"],
    "emg spectrograms": ["emg", "spectrograms", "{path}", "--out", "{out}/spectrograms.png"],
    "subactions": ["subactions", "{path}"],
    "dataset": ["dataset", "{path}", "--out", "{out}"],
    "features emg": ["features", "emg", "{path}", "--quiet"],
    "features rgb": ["features", "rgb", "{path}", "--quiet"],
    "features merge": ["features", "merge", "{path}"],
    "train": ["train", "--model", "linear_emg", "--data", "{path}", "--out", "{out}", "--quiet"],
    "evaluate": ["evaluate", "--bundle", "{path}", "--data", "{out}"],
    "report": ["report", "--data", "{path}", "--out", "{out}", "--quiet"],
    "figures": ["figures", "--data", "{path}", "--out", "{out}"],
    "crossval": ["crossval", "{path}", "--quiet", "--out", "{out}/table.md"],
    "replay": ["replay", "{path}"],
    "run --source replay": ["run", "--model", "{bundle}", "--headless", "--source", "replay", "{path}"],
    "worker --model": ["worker", "--model", "{path}"],
    "record --recover": ["record", "--recover", "{path}"],
    "i3d classify": ["i3d", "classify", "{path}"],
    "calibrate --from": ["calibrate", "--from", "{path}", "--headless", "--out", "{out}/adapted"],
    "epic convert": ["epic", "convert", "{path}", "--out", "{out}/annotations.csv"],
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_file_is_one_true_line(command: str, case: str, tmp_path: Path, tiny_bundle: Path,
                                   capsys: pytest.CaptureFixture, request: pytest.FixtureRequest) -> None:
    if command == "record --recover" and case == "directory":
        pytest.skip("--recover takes a folder too (its unfinished sessions)")
    path = _bad_path(case, tmp_path, request)
    out = tmp_path / "existing output"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier result")
    before = _snapshot(out)
    argv = [arg.format(path=path, out=out, bundle=tiny_bundle) for arg in COMMANDS[command]]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("myosight: error: "), err
    assert str(path) in lines[0] and "Traceback" not in err
    if case == "directory":
        assert "directory" in lines[0] or "not a myosight dataset" in lines[0] or SHARD_DIR in lines[0], lines[0]
    assert _snapshot(out) == before


# -- point 2: outputs replaced only when complete; any character in paths ---------------------------------
@pytest.fixture(scope="module")
def session_in_odd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SynthConfig(subjects=("S04",), actions_per_class=2, seconds_per_action=6.0, classes=tuple(CLASSES),
                         seed=1, write_video=False)
    folder = tmp_path_factory.mktemp("sessions") / "séances d'été"
    return write_sessions(config, folder, progress=False)[0].hdf5_path


def test_dataset_from_a_unicode_path_over_an_existing_one(session_in_odd_folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "données"
    assert main(["dataset", str(session_in_odd_folder), "--out", str(data)]) == 0
    assert main(["dataset", str(session_in_odd_folder), "--out", str(data), "--force"]) == 0  # replaced whole
    train = read_split(data / "train.h5")
    assert set(train.sessions) == {str(session_in_odd_folder.resolve())}
    assert not [p.name for p in data.iterdir() if ".partial" in p.name]


def test_failed_dataset_rerun_leaves_the_old_dataset(session_in_odd_folder: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import myosight.training.dataset as dataset

    data = tmp_path / "data"
    assert main(["dataset", str(session_in_odd_folder), "--out", str(data)]) == 0
    before = _snapshot(data)
    original = dataset._split_arrays

    def fail_on_test(part, *args):
        if args[-1] == "test":
            raise OSError("disk full")
        return original(part, *args)

    monkeypatch.setattr(dataset, "_split_arrays", fail_on_test)
    with pytest.raises(OSError, match="disk full"):
        dataset.build_emg_dataset([session_in_odd_folder], data, seed=1, progress=False)
    assert _snapshot(data) == before


# -- point 5: shards merged only when sound, kept until the merged files are verified ----------------------
def _dataset_with_shards(root: Path, features: dict[str, np.ndarray]) -> Path:
    """A dataset of 4 + 2 samples and one finished shard per split holding `features[split]`."""
    settings = settings_of(ClipGeometry(), "0" * 64)
    manifest = {"format": "myosight-dataset/1", "classes": CLASSES, "clip_geometry": ClipGeometry().to_dict(),
                "emg_pipeline": EmgPipelineConfig().to_dict(),
                "emg_normalisation": EmgNormalisation.full_scale().to_dict()}
    shard = root / SHARD_DIR / "rank0of1"
    shard.mkdir(parents=True)
    for split, count in (("train", 4), ("test", 2)):
        data = SplitData(uids=np.array([f"{split}-é{i}" for i in range(count)]), labels=np.arange(count) % 2,
                         start_s=np.arange(count, dtype=float), sessions=np.array(["s"] * count),
                         videos=np.array(["v"] * count), arrays={"spectrograms": np.zeros((count, 1))})
        write_split(root / f"{split}.h5", data)
        write_split(shard / f"{split}.h5", SplitData(data.uids, data.labels, data.start_s, data.sessions,
                                                     data.videos, {"rgb": features[split]}))
    write_manifest(root, manifest)
    write_manifest(shard, {**manifest, "i3d_sha256": "0" * 64,
                           "rgb_features": {"settings": settings, "complete": True}})
    return root


def _features(count: int, dim: int = 1024, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(count).normal(size=(count, 5, dim)).astype(dtype)


@pytest.mark.parametrize("fault", ["feature size", "NaN", "inf", "float64"])
def test_merge_refuses_unsound_shards_and_keeps_them(fault: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    train = {"feature size": _features(4, 512), "float64": _features(4, dtype=np.float64)}.get(fault, _features(4))
    if fault in ("NaN", "inf"):
        train[2, 1, 7] = np.nan if fault == "NaN" else np.inf
    data = _dataset_with_shards(tmp_path / "data", {"train": train, "test": _features(2)})
    before = _snapshot(data)
    assert main(["features", "merge", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.h5" in err and "Traceback" not in err
    assert _snapshot(data) == before  # shards kept, split files and manifest untouched


def test_merge_of_sound_shards_writes_features_then_removes_shards(tmp_path: Path) -> None:
    features = {"train": _features(4), "test": _features(2)}
    data = _dataset_with_shards(tmp_path / "data", features)
    assert main(["features", "merge", str(data)]) == 0
    for split, expected in features.items():
        merged = read_split(data / f"{split}.h5")
        np.testing.assert_array_equal(merged.arrays["rgb"], expected)
        assert merged.arrays["spectrograms"].shape == (len(expected), 1)  # the other arrays are carried over
        with h5py.File(data / f"{split}.h5") as handle:
            assert json.loads(handle["arrays/rgb"].attrs["settings"])["clips_per_sample"] == 5
    assert not (data / SHARD_DIR).exists()
    assert not [p.name for p in data.iterdir() if ".partial" in p.name]


# -- point 10: messages that say what is true ---------------------------------------------------------------
def test_named_video_that_does_not_exist_is_refused(session_in_odd_folder: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    video = tmp_path / "no such video.mp4"
    assert main(["info", str(session_in_odd_folder), "--video", str(video)]) == 1
    err = capsys.readouterr().err
    assert str(video) in err and "no such file" in err


def test_recover_on_an_intact_session_says_nothing_was_recovered(session_in_odd_folder: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["record", "--recover", str(session_in_odd_folder)]) == 0
    out = capsys.readouterr().out
    assert "nothing to recover" in out and not out.startswith("recovered")


def test_recover_on_a_folder_without_unfinished_sessions_says_so(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["record", "--recover", str(tmp_path)]) == 0
    assert "no unfinished sessions" in capsys.readouterr().out


# -- feature files that would train a bundle the worker cannot run ----------------------------------------------
def _rgb_dataset(root: Path, change: dict) -> Path:
    """A dataset of 4 + 2 samples with RGB features (I3D's width), one thing of it changed by `change`."""
    manifest = {"format": "myosight-dataset/1", "classes": CLASSES, "clip_geometry": ClipGeometry().to_dict(),
                "emg_pipeline": EmgPipelineConfig().to_dict(),
                "emg_normalisation": EmgNormalisation.full_scale().to_dict(), "i3d_sha256": "0" * 64}
    root.mkdir(parents=True)
    for split, count in (("train", 4), ("test", 2)):
        features = change.get("features", lambda n: _features(n))(count)
        labels = change.get("labels", lambda n: np.arange(n) % 2)(count)
        data = SplitData(uids=np.array([f"{split}{i}" for i in range(count)]), labels=labels,
                         start_s=np.arange(count, dtype=float), sessions=np.array(["s"] * count),
                         videos=np.array(["v"] * count), arrays={"rgb": features})
        write_split(root / f"{split}.h5", data)
    write_manifest(root, manifest)
    return root


BAD_FEATURES = {
    "features of another width": ({"features": lambda n: _features(n, dim=512)},
                                  "features of width 512, but the live I3D computes 1024"),
    "a label outside the classes": ({"labels": lambda n: np.full(n, 7)}, "has label 7, outside the 2 classes"),
    "features that are text": ({"features": lambda n: np.array([["a"] * 5] * n, dtype="S4")},
                               "features must be numbers"),
}


@pytest.mark.parametrize("case", list(BAD_FEATURES))
def test_train_refuses_features_the_worker_could_not_run(case: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    change, reason = BAD_FEATURES[case]
    data = _rgb_dataset(tmp_path / "data", change)
    capsys.readouterr()
    code = main(["train", "--model", "linear_rgb", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("myosight: error: ") and reason in err and "\n" not in err, err
    assert not (tmp_path / "run").exists()  # no bundle the worker would refuse at its first window


def test_train_takes_a_sound_dataset_of_the_same_shape(tmp_path: Path) -> None:
    data = _rgb_dataset(tmp_path / "data", {})
    assert main(["train", "--model", "linear_rgb", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--epochs", "2", "--quiet"]) == 0
