"""The importers (`myosight import myoarmband` and `libemg-csv`) write sessions the reader reads back exactly.

Each check reads what the importer wrote through `ActionSenseSession`, as every other command does: the
activities in recording order with their names, the arm, the values sample for sample, the rate measured
from the timestamps, and the subject. Both input forms of the MyoArmbandDataset (npz archive and original
`.dat` folders) must give the same sessions, and every malformed input must be refused with a one-line
error naming the file at fault, before anything is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from myosight.cli import main
from myosight.data.actionsense import ActionSenseSession
from myosight.data.import_libemg import import_libemg_csv, read_csv_recording
from myosight.data.import_myoarmband import (
    FILES_PER_ROUND,
    GESTURES,
    SOURCE,
    import_myoarmband,
    round_start_time,
)
from myosight.data.layout import session_filename
from myosight.errors import ConfigError, SessionFormatError

EXPECTED_LABELS = [GESTURES[i % 7] for i in range(FILES_PER_ROUND)]


def _read_back(path: Path) -> dict:
    """What a session holds, through the reader every command uses."""
    with ActionSenseSession(path) as session:
        arm = session.arms[0]
        emg = session.emg(arm)
        return {"subject": session.subject, "arms": session.arms, "data": emg.data, "time_s": emg.time_s,
                "rate": emg.measured_rate_hz(), "attrs": session.attrs("/"),
                "actions": [(a.label, a.start_s, a.stop_s) for a in session.activities()]}


def _round_arrays(rng: np.random.Generator) -> list[np.ndarray]:
    """28 short recordings of Myo-range values, of varied lengths."""
    return [rng.integers(-128, 128, (int(rng.integers(40, 60)), 8)).astype(np.int8) for _ in range(FILES_PER_ROUND)]


#: (split, person, round) of the crafted dataset.
CRAFTED = (("EvaluationDataset", "Female0", "training0"), ("EvaluationDataset", "Female0", "Test0"),
           ("EvaluationDataset", "Male1", "training0"), ("PreTrainingDataset", "Male0", "training0"))


@pytest.fixture
def crafted() -> dict[str, np.ndarray]:
    """A small dataset as npz keys -> (n, 8) int8 arrays."""
    rng = np.random.default_rng(7)
    return {f"{split}/{person}/{round_}/classe_{i}": values
            for split, person, round_ in CRAFTED for i, values in enumerate(_round_arrays(rng))}


def _write_tree(root: Path, arrays: dict[str, np.ndarray]) -> Path:
    """The original folder layout: ROOT/SPLIT/PERSON/ROUND/classe_I.dat, little-endian int16 interleaved."""
    for key, values in arrays.items():
        path = root / f"{key}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        values.astype("<i2").tofile(path)
    return root


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def _one_dat(root: Path) -> Path:
    return root / "EvaluationDataset" / "Male1" / "training0" / "classe_3.dat"


# -- MyoArmbandDataset: the shared npz --------------------------------------------------------------------


def test_shared_npz_imports_two_people(shared_dir: Path, tmp_path: Path) -> None:
    npz = shared_dir / "realemg" / "myoarmband.npz"
    evaluation = import_myoarmband(npz, tmp_path / "eval", splits=["evaluation"], people=["Male0"])
    pretraining = import_myoarmband(npz, tmp_path / "pre", splits=["PreTrainingDataset"], people=["Female0"])
    assert [s.attrs["Round"] for s in evaluation] == ["training0", "Test0", "Test1"]
    assert [s.attrs["Round"] for s in pretraining] == ["training0"]
    with np.load(npz) as archive:
        for session in [*evaluation, *pretraining]:
            split, person, round_ = session.attrs["Split"], session.subject, session.attrs["Round"]
            back = _read_back(session.path)
            assert back["subject"] == person and back["arms"] == ("right",)
            assert [label for label, _, _ in back["actions"]] == EXPECTED_LABELS
            assert 199.9 < back["rate"] < 200.1
            assert back["attrs"]["Source"] == SOURCE and back["attrs"]["Split"] == split
            arrays = [archive[f"{split}/{person}/{round_}/classe_{i}"] for i in range(FILES_PER_ROUND)]
            np.testing.assert_array_equal(back["data"], np.concatenate(arrays))
            first = len(arrays[0])  # recording 1 starts right after recording 0, 5 ms later
            assert back["actions"][1][1] == pytest.approx(back["time_s"][first], abs=1e-6)
            assert back["actions"][0][2] == pytest.approx(back["time_s"][first - 1], abs=1e-6)
    index = json.loads((tmp_path / "eval" / "index.json").read_text())
    assert [entry["round"] for entry in index["sessions"]] == ["training0", "Test0", "Test1"]
    entry = index["sessions"][0]
    assert entry["arms"] == ["right"] and entry["rate_hz"] == 200 and entry["gestures"] == list(GESTURES)
    assert entry["recordings"] == 28 and (tmp_path / "eval" / entry["path"]).is_file()
    assert entry["path"].startswith("EvaluationDataset/Male0/")


# -- MyoArmbandDataset: crafted inputs, both forms --------------------------------------------------------


def test_folder_tree_and_npz_give_the_same_sessions(crafted: dict, tmp_path: Path) -> None:
    tree = _write_tree(tmp_path / "tree", crafted)
    npz = _write_npz(tmp_path / "data.npz", crafted)
    from_tree = import_myoarmband(tree, tmp_path / "out_tree")
    from_npz = import_myoarmband(npz, tmp_path / "out_npz")
    assert [(s.attrs["Split"], s.subject, s.attrs["Round"]) for s in from_tree] == list(CRAFTED)
    for a, b in zip(from_tree, from_npz, strict=True):
        assert a.path.relative_to(tmp_path / "out_tree") == b.path.relative_to(tmp_path / "out_npz")
        tree_back, npz_back = _read_back(a.path), _read_back(b.path)
        np.testing.assert_array_equal(tree_back.pop("data"), npz_back.pop("data"))
        np.testing.assert_array_equal(tree_back.pop("time_s"), npz_back.pop("time_s"))
        assert tree_back == npz_back
    split, person, round_ = CRAFTED[1]
    back = _read_back(from_tree[1].path)
    expected = np.concatenate([crafted[f"{split}/{person}/{round_}/classe_{i}"] for i in range(FILES_PER_ROUND)])
    np.testing.assert_array_equal(back["data"], expected)
    assert from_tree[1].path.name == session_filename(round_start_time("Test0"), "Female0-Test0")
    assert back["time_s"][0] == round_start_time("Test0") == round_start_time("training0") + 900
    tree_index = json.loads((tmp_path / "out_tree" / "index.json").read_text())
    assert tree_index == json.loads((tmp_path / "out_npz" / "index.json").read_text())
    assert len(tree_index["sessions"]) == len(CRAFTED)


def test_a_split_folder_and_the_selection_options(crafted: dict, tmp_path: Path) -> None:
    tree = _write_tree(tmp_path / "tree", crafted)
    written = import_myoarmband(tree / "PreTrainingDataset", tmp_path / "a")
    assert [(s.attrs["Split"], s.subject) for s in written] == [("PreTrainingDataset", "Male0")]
    written = import_myoarmband(tree, tmp_path / "b", people=["Female0"], rounds=["Test0"])
    assert [(s.subject, s.attrs["Round"]) for s in written] == [("Female0", "Test0")]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["EvaluationDataset", "index.json"]


def test_existing_output_is_refused_unless_forced(crafted: dict, tmp_path: Path) -> None:
    npz = _write_npz(tmp_path / "data.npz", crafted)
    out = tmp_path / "out"
    first = import_myoarmband(npz, out, people=["Male1"])
    before = first[0].path.read_bytes()
    with pytest.raises(SessionFormatError, match="not empty"):
        import_myoarmband(npz, out, people=["Male1"])
    again = import_myoarmband(npz, out, people=["Male1"], force=True)
    assert again[0].path == first[0].path and again[0].path.read_bytes() == before
    assert not [p for p in out.rglob("*") if "partial" in p.name]


# -- MyoArmbandDataset: malformed inputs ------------------------------------------------------------------


def test_missing_path_and_wrong_archives(tmp_path: Path) -> None:
    with pytest.raises(SessionFormatError, match=r"nowhere\.npz: no such file"):
        import_myoarmband(tmp_path / "nowhere.npz", tmp_path / "out")
    other = _write_npz(tmp_path / "other.npz", {"x": np.zeros((3, 8), np.int8)})
    with pytest.raises(SessionFormatError, match=r"other\.npz: no key of the form SPLIT/PERSON/ROUND/classe_I"):
        import_myoarmband(other, tmp_path / "out")
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(SessionFormatError, match=r"notes\.npz: not an npz archive"):
        import_myoarmband(text, tmp_path / "out")
    sneaky = _write_npz(tmp_path / "sneaky.npz", {"EvaluationDataset/../training0/classe_0": np.zeros((3, 8), np.int8)})
    with pytest.raises(SessionFormatError, match=r"sneaky\.npz: person '\.\.' cannot name a folder"):
        import_myoarmband(sneaky, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionFormatError, match="empty: expected a folder holding EvaluationDataset"):
        import_myoarmband(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("content", "message"), [
    (np.zeros(8 * 10 + 3, "<i2").tobytes()[:-2], "is not a whole number of samples"),
    (np.full((10, 8), 300, "<i2").tobytes(), "value 300 at row 0, channel 1 is outside the Myo range"),
    (b"", "empty recording"),
])
def test_bad_dat_files_are_named(crafted: dict, tmp_path: Path, content: bytes, message: str) -> None:
    tree = _write_tree(tmp_path / "tree", crafted)
    _one_dat(tree).write_bytes(content)
    with pytest.raises(SessionFormatError, match=message) as raised:
        import_myoarmband(tree, tmp_path / "out")
    assert str(_one_dat(tree)) in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_bad_npz_arrays_are_named(crafted: dict, tmp_path: Path) -> None:
    key = "EvaluationDataset/Male1/training0/classe_3"
    for values, message in ((np.full((5, 8), -200, np.int16), "value -200 at row 0"),
                            (np.zeros((0, 8), np.int8), "empty recording"),
                            (np.zeros((5, 6), np.int8), r"expected \(n, 8\) integer samples")):
        npz = _write_npz(tmp_path / "bad.npz", {**crafted, key: values})
        with pytest.raises(SessionFormatError, match=message) as raised:
            import_myoarmband(npz, tmp_path / "out")
        assert "bad.npz" in str(raised.value) and key in str(raised.value)


def test_a_round_missing_a_file_names_the_first_missing(crafted: dict, tmp_path: Path) -> None:
    tree = _write_tree(tmp_path / "tree", crafted)
    for index in (5, 9):
        (tree / "EvaluationDataset" / "Male1" / "training0" / f"classe_{index}.dat").unlink()
    with pytest.raises(SessionFormatError, match=r"Male1/training0/classe_5\.dat: missing \(2 of"):
        import_myoarmband(tree, tmp_path / "out")
    del crafted["EvaluationDataset/Male1/training0/classe_27"]
    npz = _write_npz(tmp_path / "data.npz", crafted)
    with pytest.raises(SessionFormatError, match=r"data\.npz: EvaluationDataset/Male1/training0/classe_27 is missing"):
        import_myoarmband(npz, tmp_path / "out")
    assert len(import_myoarmband(npz, tmp_path / "out", people=["Female0"])) == 2  # others are fine


@pytest.mark.parametrize(("selection", "message"), [
    ({"people": ["Male7"]}, "person 'Male7' is not in EvaluationDataset or PreTrainingDataset"),
    ({"splits": ["training"]}, "split 'training' is not a split"),
    ({"rounds": ["Test2"]}, "round 'Test2' is not a round"),
    ({"splits": ["pretraining"], "rounds": ["Test0"]}, "nothing to import"),
])
def test_unknown_selections_are_config_errors(crafted: dict, tmp_path: Path, selection: dict, message: str) -> None:
    npz = _write_npz(tmp_path / "data.npz", crafted)
    with pytest.raises(ConfigError, match=message):
        import_myoarmband(npz, tmp_path / "out", **selection)


# -- LibEMG-style CSV folders -----------------------------------------------------------------------------


def _write_csv_folder(folder: Path, reps: int = 2, classes: int = 3) -> dict[tuple[int, int], np.ndarray]:
    """reps x classes CSV recordings of random Myo values; returns what each file holds."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    written = {}
    for rep in range(reps):
        for cls in range(classes):
            values = rng.integers(-128, 128, (int(rng.integers(30, 50)), 8))
            text = "\n".join(",".join(str(v) for v in row) for row in values) + "\n"
            (folder / f"R_{rep}_C_{cls}.csv").write_text(text)
            written[rep, cls] = values
    return written


def test_libemg_folder_reads_back_in_order(tmp_path: Path) -> None:
    written = _write_csv_folder(tmp_path / "P3")
    (tmp_path / "P3" / "notes.txt").write_text("ignored")
    session = import_libemg_csv(tmp_path / "P3", tmp_path / "out", rate_hz=150, arm="left",
                                classes=["fist", "open", "rest"], gap_s=2.0)
    back = _read_back(session.path)
    assert session.path.parent == tmp_path / "out" and session.path.name.endswith("_streamLog_P3-libemg.hdf5")
    assert back["subject"] == "P3" and back["arms"] == ("left",)
    assert [label for label, _, _ in back["actions"]] == ["fist", "open", "rest"] * 2
    assert 149.9 < back["rate"] < 150.1
    order = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    np.testing.assert_array_equal(back["data"], np.concatenate([written[key] for key in order]))
    gaps = [b[1] - a[2] for a, b in zip(back["actions"][:-1], back["actions"][1:], strict=True)]
    assert gaps == pytest.approx([2.0 + 1 / 150] * 5, abs=1e-6)
    assert back["time_s"][0] == back["actions"][0][1]


def test_libemg_defaults_and_missing_combinations(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_csv_folder(tmp_path / "rec", reps=2, classes=3)
    (tmp_path / "rec" / "R_1_C_1.csv").unlink()
    with caplog.at_level(logging.WARNING):
        session = import_libemg_csv(tmp_path / "rec", tmp_path / "out", subject="S42", start_s=1.6e9)
    assert "R_1_C_1" in caplog.text
    back = _read_back(session.path)
    assert back["subject"] == "S42" and back["arms"] == ("right",) and 199.9 < back["rate"] < 200.1
    assert [label for label, _, _ in back["actions"]] == ["class 0", "class 1", "class 2", "class 0", "class 2"]
    assert session.path.name == session_filename(1.6e9, "S42-libemg") and back["time_s"][0] == 1.6e9
    with pytest.raises(SessionFormatError, match="already exists"):
        import_libemg_csv(tmp_path / "rec", tmp_path / "out", subject="S42", start_s=1.6e9)
    assert import_libemg_csv(tmp_path / "rec", tmp_path / "out", subject="S42", start_s=1.6e9, force=True).samples


@pytest.mark.parametrize(("text", "message"), [
    ("ch1,ch2,ch3,ch4,ch5,ch6,ch7,ch8\n1,2,3,4,5,6,7,8\n", "line 1 is not numbers .* header row is not allowed"),
    ("1,2,3,4,5,6,7,8\n1,2,3,4,5,6,7\n", "line 2: 7 columns, expected 8"),
    ("1,2,3,4,5,6,7,8\n1,2,3,4,5,6,7,8.5\n", "line 2, column 8: value 8.5 is not a Myo sample.*integer samples"),
    ("1,2,3,4,5,6,7,8\n1,2,3,4,500,6,7,8\n", "line 2, column 5: value 500 is not a Myo sample"),
    ("1,2,3,4,5,6,7,8\n\n1,2,3,4,5,6,7,8\n", "line 2 is empty"),
    ("", "empty recording"),
])
def test_bad_csv_files_are_named_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "R_0_C_0.csv"
    path.write_text(text)
    with pytest.raises(SessionFormatError, match=message) as raised:
        read_csv_recording(path)
    assert str(path) in str(raised.value)


def test_libemg_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "data.csv").write_text("1,2,3,4,5,6,7,8\n")
    with pytest.raises(SessionFormatError, match=r"none: no recordings found: expected files named R_<rep>_C_"):
        import_libemg_csv(tmp_path / "none", tmp_path / "out")
    with pytest.raises(SessionFormatError, match="missing: no such folder"):
        import_libemg_csv(tmp_path / "missing", tmp_path / "out")
    _write_csv_folder(tmp_path / "rec")
    with pytest.raises(ConfigError, match="2 names given but the files use class indices 0-2"):
        import_libemg_csv(tmp_path / "rec", tmp_path / "out", classes=["a", "b"])
    (tmp_path / "rec" / "R_1_C_2.csv").write_text("1,2,3,4,5,6,7,8\n1,2,3,4,5,6,7,0.25\n")
    with pytest.raises(SessionFormatError, match=r"R_1_C_2\.csv: line 2, column 8"):
        import_libemg_csv(tmp_path / "rec", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- the command line -------------------------------------------------------------------------------------


def test_cli_import_myoarmband(crafted: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _write_tree(tmp_path / "tree", crafted)
    out = tmp_path / "out"
    assert main(["import", "myoarmband", str(tree), "--out", str(out), "--split", "evaluation",
                 "--people", "Female0", "--rounds", "training0", "Test0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "Female0-training0" in lines[0] and "Female0-Test0" in lines[1]
    assert main(["import", "myoarmband", str(tree), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["import", "myoarmband", str(tree), "--out", str(out), "--force"]) == 0
    assert len(json.loads((out / "index.json").read_text())["sessions"]) == len(CRAFTED)
    _one_dat(tree).write_bytes(b"\x01\x02\x03")
    assert main(["import", "myoarmband", str(tree), "--out", str(tmp_path / "other")]) == 1
    assert str(_one_dat(tree)) in capsys.readouterr().err


def test_cli_import_libemg_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_csv_folder(tmp_path / "rec")
    command = ["import", "libemg-csv", str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--rate", "100",
               "--arm", "left", "--classes", "a", "b", "c", "--subject", "S05", "--gap", "0"]
    assert main(command) == 0
    [path] = sorted((tmp_path / "out").glob("*.hdf5"))
    assert str(path) in capsys.readouterr().out
    back = _read_back(path)
    assert back["arms"] == ("left",) and back["subject"] == "S05" and 99.9 < back["rate"] < 100.1
    assert np.diff(back["time_s"]) == pytest.approx(0.01, abs=1e-6)  # --gap 0: the recordings end to end
    assert main(command) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*command, "--force"]) == 0
    assert main(["import", "libemg-csv", str(tmp_path / "rec"), "--out", "o", "--rate", "0"]) == 1
    assert "--rate" in capsys.readouterr().err
