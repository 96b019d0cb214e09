"""EPIC-Kitchens-55 D1: annotations (CSV, restricted pickle reading), frames, dataset directory, RGB features."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from rgb_cli import run_cli

from myosight.cli import main
from myosight.data.epic_kitchens import (
    ALLOWED_PICKLE_GLOBALS,
    D1_VERBS,
    FrameFolder,
    UnsafePickleError,
    locate_video,
    read_annotations,
    restricted_load_dataframe,
)
from myosight.errors import ConfigError, SessionFormatError
from myosight.models.clips import ClipGeometry, sample_bounds
from myosight.models.i3d_weights import weights_path
from myosight.training.feature_store import read_manifest, read_split
from myosight.training.rgb_features import open_video, sample_frame_indices

torch.set_num_threads(1)

COLUMNS = ("uid", "participant_id", "video_id", "narration", "start_timestamp", "stop_timestamp", "start_frame",
           "stop_frame", "verb", "verb_class")
#: (uid, video, verb_class, start_frame, stop_frame); frames at 60 fps
TRAIN = ((11, "P08_01", 0, 1, 110), (12, "P08_01", 4, 121, 230), (13, "P08_01", 0, 241, 330))
TEST = ((21, "P08_01", 4, 341, 420), (22, "P08_02", 0, 20, 150))


def _rows(segments: tuple) -> list[dict]:
    return [{"uid": uid, "participant_id": "P08", "video_id": video, "narration": f"{D1_VERBS[cls]} thing",
             "start_timestamp": "", "stop_timestamp": "", "start_frame": a, "stop_frame": b, "verb": D1_VERBS[cls],
             "verb_class": cls} for uid, video, cls, a, b in segments]


def _write_csv(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _frame(number: int, verb_class: int) -> np.ndarray:
    """A frame whose look identifies the class: a red sweeping disc (take) or blue stripes (wash)."""
    image = np.full((60, 80, 3), 90, np.uint8)
    if verb_class == 0:
        cv2.circle(image, (10 + number % 60, 30), 12, (30, 30, 220), -1)
    else:
        image[(np.arange(60) + number) % 12 < 6] = (200, 120, 40)
    return image


def _class_at(frame: int, segments: tuple, video: str) -> int:
    return next((cls for _, v, cls, a, b in segments if v == video and a <= frame <= b), 0)


@pytest.fixture(scope="module")
def epic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frames folder for P08_01 (430 JPEGs at 60 fps), an mp4 for P08_02 (30 fps), and the two CSVs."""
    root = tmp_path_factory.mktemp("epic")
    folder = root / "frames" / "P08" / "P08_01"
    folder.mkdir(parents=True)
    for number in range(1, 431):
        cv2.imwrite(str(folder / f"frame_{number:010d}.jpg"), _frame(number, _class_at(number, TRAIN + TEST, "P08_01")))
    writer = cv2.VideoWriter(str(root / "frames" / "P08_02.MP4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (80, 60))
    for index in range(90):  # 3 s; annotation frame n (60 fps) is video frame (n - 1) / 2
        writer.write(_frame(index, 0))
    writer.release()
    _write_csv(_rows(TRAIN), root / "D1_train.csv")
    _write_csv(_rows(TEST), root / "D1_test.csv")
    return root


# -- annotations ----------------------------------------------------------------------------------------


def test_d1_classes_are_epic_55_verb_ids_0_to_7() -> None:
    # EPIC_verb_classes.csv: 0 take, 1 put, 2 open, 3 close, 4 wash, 5 cut, 6 mix, 7 pour
    assert D1_VERBS == ("take", "put", "open", "close", "wash", "cut", "mix", "pour")


def test_csv_annotations(epic: Path) -> None:
    segments = read_annotations(epic / "D1_train.csv")
    assert [s.uid for s in segments] == ["11", "12", "13"]
    first = segments[0]
    assert (first.video_id, first.verb_class, first.verb) == ("P08_01", 0, "take")
    assert first.start_s() == 0.0 and first.stop_s() == pytest.approx(110 / 60)


def test_csv_missing_column_is_named(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "verb_class"} for row in _rows(TRAIN)]
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[c for c in COLUMNS if c != "verb_class"])
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(SessionFormatError, match="verb_class"):
        read_annotations(path)


@pytest.mark.parametrize(
    "payload",
    [
        b"cos\nsystem\n(S'echo owned'\ntR.",  # protocol 0: GLOBAL os.system, called by REDUCE
        b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x031+1\x85R.",  # protocol 4: STACK_GLOBAL builtins.eval
        b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",  # protocol 2
    ],
)
def test_restricted_unpickler_refuses_code(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "D1_train.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="refusing to unpickle"):
        restricted_load_dataframe(path)
    with pytest.raises(UnsafePickleError):
        read_annotations(path)


def test_allow_list_holds_only_reconstruction_callables() -> None:
    modules = {module.split(".")[0] for module, _ in ALLOWED_PICKLE_GLOBALS}
    assert modules == {"pandas", "numpy", "builtins", "_codecs"}
    assert ("builtins", "eval") not in ALLOWED_PICKLE_GLOBALS and ("os", "system") not in ALLOWED_PICKLE_GLOBALS


def test_dataframe_pickle(tmp_path: Path, epic: Path, capsys: pytest.CaptureFixture) -> None:
    # A DataFrame pickle's first opcode names pandas.DataFrame; what happens next depends on pandas being there.
    try:
        import pandas as pd
    except ImportError:
        path = tmp_path / "D1_train.pkl"
        path.write_bytes(b"\x80\x04\x8c\x06pandas\x8c\tDataFrame\x93)\x81.")
        with pytest.raises(ConfigError, match="needs pandas"):
            read_annotations(path)
        return
    frame = pd.DataFrame(_rows(TRAIN))
    expected = read_annotations(epic / "D1_train.csv")
    for protocol in (2, 4, 5):
        for variant in (frame, frame.set_index("uid")):
            path = tmp_path / f"D1_train_{protocol}.pkl"
            path.write_bytes(pickle.dumps(variant, protocol=protocol))
            assert read_annotations(path) == expected
    out = tmp_path / "converted.csv"
    assert run_cli(["epic", "convert", str(path), "--out", str(out)]) == 0
    assert read_annotations(out) == expected


# -- frames ---------------------------------------------------------------------------------------------


def test_frame_folder_and_locating_videos(epic: Path, tmp_path: Path) -> None:
    root = epic / "frames"
    assert locate_video(root, "P08", "P08_01") == root / "P08" / "P08_01"
    assert locate_video(root, "P08", "P08_02") == root / "P08_02.MP4"
    with pytest.raises(SessionFormatError, match="P08_09"):
        locate_video(root, "P08", "P08_09")
    folder = FrameFolder(root / "P08" / "P08_01")
    assert folder.frame_count == 430
    np.testing.assert_allclose(folder.timestamps()[:3], [0, 1 / 60, 2 / 60])
    frames = folder.read([5, 0, 5])
    assert frames.shape == (3, 60, 80, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], frames[2])
    with pytest.raises(SessionFormatError, match=r"frame_0000000431\.jpg"):
        folder.read([430])


def test_epic_clips_sample_inside_each_fifth_of_the_action(epic: Path) -> None:
    geometry = ClipGeometry()
    video = open_video(str(epic / "frames" / "P08" / "P08_01"), "P08/P08_01", {"kind": "epic", "fps": 60.0})
    for segment in read_annotations(epic / "D1_train.csv"):
        start, stop = segment.start_s(), segment.stop_s()
        chosen = video.times[sample_frame_indices(video.times, start, geometry, stop)]
        bounds = sample_bounds(start, geometry, stop)
        centres = chosen.mean(axis=1)
        assert np.all(np.abs(centres - bounds.mean(axis=1)) < 0.05)  # each clip centred on its fifth
        assert np.all(np.diff(centres) > 0)


# -- dataset directory and features ---------------------------------------------------------------------


def test_dataset_epic_layout(epic: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert run_cli(["dataset-epic", str(epic / "D1_train.csv"), str(epic / "D1_test.csv"), "--frames",
                    str(epic / "frames"), "--out", str(out)]) == 0
    manifest = read_manifest(out)
    assert manifest["classes"] == list(D1_VERBS) and manifest["frame_source"] == {"kind": "epic", "fps": 60.0}
    assert manifest["split"]["train"] == 3 and manifest["split"]["test"] == 2
    test = read_split(out / "test.h5")
    assert list(test.uids) == ["21", "22"] and list(test.labels) == [4, 0]
    with h5py.File(out / "test.h5", "r") as handle:
        np.testing.assert_allclose(handle["stop_s"][()], [420 / 60, 150 / 60])
    np.testing.assert_allclose(test.start_s, [340 / 60, 19 / 60])
    assert test.videos[1].endswith("P08_02.MP4")


def test_dataset_epic_refuses_missing_frames(epic: Path, tmp_path: Path) -> None:
    rows = _rows(TEST[:1])
    rows[0]["video_id"] = "P08_77"
    bad = _write_csv(rows, tmp_path / "bad.csv")
    assert run_cli(["dataset-epic", str(epic / "D1_train.csv"), str(bad), "--frames", str(epic / "frames"),
                    "--out", str(tmp_path / "data")]) == 1


@pytest.mark.slow
def test_epic_rgb_features_and_linear_rgb(epic: Path, tmp_path: Path) -> None:
    if not weights_path().is_file():
        pytest.skip(f"the I3D weights are not cached at {weights_path()}; run `myosight weights fetch`")
    out = tmp_path / "data"
    assert run_cli(["dataset-epic", str(epic / "D1_train.csv"), str(epic / "D1_test.csv"), "--frames",
                    str(epic / "frames"), "--out", str(out)]) == 0
    assert run_cli(["features", "rgb", str(out), "--size", "112", "--eager", "--quiet"]) == 0
    train, test = read_split(out / "train.h5", ("rgb",)), read_split(out / "test.h5", ("rgb",))
    assert train.arrays["rgb"].shape == (3, 5, 1024) and test.arrays["rgb"].shape == (2, 5, 1024)
    assert np.isfinite(test.arrays["rgb"]).all() and test.arrays["rgb"].std() > 0
    run = tmp_path / "run"
    assert main(["train", "--model", "linear_rgb", "--data", str(out), "--out", str(run), "--epochs", "3",
                 "--quiet"]) == 0
    assert (run / "bundle.safetensors").is_file()
