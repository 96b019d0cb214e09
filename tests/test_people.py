"""`myosight bench people`: real people (the MyoArmbandDataset in ../shared/realemg) through the live path, beside
LibEMG; and the scoring it rests on, checked on logs made by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from myosight.bench.people import Activity, label_at, read_decisions
from myosight.data.layout import SessionWriter, session_filename
from myosight.errors import ConfigError

RATE = 200.0
GESTURES = ("Neutral", "Hand close", "Hand open")


@pytest.fixture
def held_gestures(tmp_path: Path) -> Path:
    """A one-arm session of three 5-s gestures laid end to end (as the MyoArmbandDataset's rounds are)."""
    start = 1_546_336_800.0
    path = tmp_path / session_filename(start, "hand")
    times = start + np.arange(int(15 * RATE)) / RATE
    with SessionWriter(path) as writer:
        writer.add_emg_stream("right")
        writer.add_activity_stream(list(GESTURES))
        writer.append("myo-right/emg", np.zeros((len(times), 8), np.int32), times)
        for index, gesture in enumerate(GESTURES):
            first, last = times[int(index * 5 * RATE)], times[int((index + 1) * 5 * RATE) - 1]
            writer.append_activity(gesture, "Start", first)
            writer.append_activity(gesture, "Stop", last)
    return path


def _log(path: Path, ends: np.ndarray, truth: list[str | None], predicted: list[str]) -> Path:
    with path.open("w") as handle:
        for end, label, true_label in zip(ends, predicted, truth, strict=True):
            handle.write(json.dumps({"window_end": float(end), "label": label, "true_label": true_label}) + "\n")
    return path


def test_decisions_are_moved_onto_the_recording_clock_and_scored(held_gestures: Path, tmp_path: Path) -> None:
    """The replay's clock is the recording's plus a whole number of seconds: the shift is the one under which
    the recording's labels give the logged ones; a 1-s window is inside a repetition except across a change."""
    start = 1_546_336_800.0
    activities = [Activity(g, start + 5 * i, start + 5 * (i + 1) - 1 / RATE) for i, g in enumerate(GESTURES)]
    recorded_ends = start + np.arange(1.0, 15.0 + 1e-9, 0.5)
    truth = label_at(activities, recorded_ends - 0.5)
    predicted = [t or "Neutral" for t in truth]
    predicted[3] = "Hand open"  # one wrong decision (window ending at 2.5 s: inside the first repetition)
    shift = 4321.0
    log = _log(tmp_path / "log.jsonl", recorded_ends + shift, truth, predicted)
    decisions = read_decisions(log, held_gestures, window_s=1.0)
    assert np.allclose(decisions.ends, recorded_ends)
    scores = decisions.scores()
    # a window [end - 1, end] is inside a repetition [5 k, 5 k + 5 - 1/RATE] unless it reaches over a change
    relative = recorded_ends - start
    inside = [any(5 * k <= end - 1 and end <= 5 * k + 5 - 1 / RATE for k in range(3)) for end in relative]
    assert sum(inside) == 24  # of 29 windows: those ending at 5, 5.5, 10, 10.5 and 15 s reach over a change
    assert scores["inside_decisions"] == sum(inside)
    assert scores["inside"] == pytest.approx((sum(inside) - 1) / sum(inside))
    labelled = [t is not None for t in truth]
    assert scores["decisions"] == sum(labelled)
    assert scores["every"] == pytest.approx((sum(labelled) - 1) / sum(labelled))


def test_a_label_change_logged_a_rounding_late_still_finds_the_shift(held_gestures: Path, tmp_path: Path) -> None:
    """A window whose middle falls on a label change may be logged with the neighbouring label (the clock offset's
    rounding): a few such decisions do not hide the shift, which stands out from every other."""
    start = 1_546_336_800.0
    activities = [Activity(g, start + 5 * i, start + 5 * (i + 1) - 1 / RATE) for i, g in enumerate(GESTURES)]
    recorded_ends = start + np.arange(1.0, 15.0 + 1e-9, 0.2)
    truth = label_at(activities, recorded_ends - 0.5)
    logged = list(truth)
    for index in range(1, len(truth)):
        if truth[index] != truth[index - 1]:
            logged[index] = truth[index - 1]  # the first decision after each change logged with the one before
    assert sum(a != b for a, b in zip(logged, truth, strict=True)) >= 2
    decisions = read_decisions(_log(tmp_path / "log.jsonl", recorded_ends + 77.0, logged, ["Neutral"] * len(truth)),
                               held_gestures, window_s=1.0)
    assert np.allclose(decisions.ends, recorded_ends)


def test_a_log_that_matches_the_recording_under_no_shift_is_refused(held_gestures: Path, tmp_path: Path) -> None:
    ends = 1_546_336_800.0 + np.arange(1.0, 15.0, 0.5) + 17.0
    wrong = ["Hand open"] * len(ends)  # no shift gives these labels
    with pytest.raises(ConfigError, match="match the recording's under no whole-second shift"):
        read_decisions(_log(tmp_path / "bad.jsonl", ends, wrong, wrong), held_gestures, window_s=1.0)


@pytest.mark.slow
def test_bench_people_on_two_people(shared_dir: Path, tmp_path: Path) -> None:
    """The whole benchmark on two evaluation people and a base of three others, LibEMG included: every model is
    scored on both test rounds through the live worker, every decision of each replay, and the peer answers the
    same decisions."""
    from myosight.bench.people import MODELS, PeopleBenchConfig, benchmark_people, people_figures

    config = PeopleBenchConfig(data=shared_dir / "realemg" / "myoarmband.npz", people=("Male0", "Female1"),
                               base_people=("Female0", "Male0", "Male1"), peer_classifiers=("LDA", "QDA"),
                               work_dir=tmp_path / "work", base_epochs=10)
    result = benchmark_people(config, say=lambda step: None)
    assert [p["person"] for p in result["people"]] == ["Male0", "Female1"]
    for person in result["people"]:
        for model in MODELS:
            for round_name in ("Test0", "Test1"):
                scores = person["rounds"][f"{model}/{round_name}"]
                # a 140-s round at a 0.2-s hop: every window decided (the first needs 1 s of data)
                assert scores["decisions"] > 500 and scores["inside_decisions"] > 400
            assert 0.0 <= person["models"][model]["inside"] <= 1.0
        assert person["models"]["calibrated"]["inside"] > person["models"]["base"]["inside"]
        assert person["models"]["calibrated"]["inside"] > 0.8
        assert {(row["classifier"], round(row["window_s"], 1)) for row in person["peer"]} == \
            {("LDA", 0.2), ("LDA", 1.0), ("QDA", 0.2), ("QDA", 1.0)}
        assert all(0.5 < row["inside"] <= 1.0 for row in person["peer"])  # LibEMG learns these people too
        assert person["adapt_s"]["calibrated"] > 0
    names = {figure["name"] for figure in people_figures(result)}
    assert {"people.calibrated.inside", "people.libemg_best.inside", "people.libemg_default.every"} <= names
    assert (Path(result["work_dir"]) / "bench-people.json").is_file()


def test_the_real_people_page_shows_the_figures_of_its_results_file() -> None:
    """docs/real-people.md's tables are generated from docs/results/bench-people.json (`bench people --page`):
    the same figures cannot be quoted two ways."""
    from conftest import REPO_ROOT

    from myosight.bench.people import RESULTS_NAME, page_section, people_markdown

    page = (REPO_ROOT / "docs" / "real-people.md").read_text(encoding="utf-8")
    result = json.loads((REPO_ROOT / "docs" / "results" / RESULTS_NAME).read_text(encoding="utf-8"))
    assert page_section(page).strip() == people_markdown(result).strip()
    assert result["date"] in page and result["machine"]["cpu"] in page


def test_the_tables_go_between_the_markers_and_nowhere_else(tmp_path: Path) -> None:
    """update_page replaces only what lies between the markers (an empty section included), run after run."""
    from conftest import REPO_ROOT

    from myosight.bench.people import PAGE_END, RESULTS_NAME, page_section, people_markdown, update_page

    result = json.loads((REPO_ROOT / "docs" / "results" / RESULTS_NAME).read_text(encoding="utf-8"))
    page = tmp_path / "people.md"
    before, after = "# Title\n\nText before.\n\n", "\nText after.\n"
    page.write_text(f"{before}<!-- bench-people:start (generated) -->\n{PAGE_END}{after}", encoding="utf-8")
    for _ in range(2):
        results = update_page(page, result)
        text = page.read_text(encoding="utf-8")
        assert text.startswith(before + "<!-- bench-people:start (generated) -->") and text.endswith(PAGE_END + after)
        assert page_section(text).strip() == people_markdown(result).strip()
    assert json.loads(results.read_text(encoding="utf-8")) == result


def test_a_run_keeps_the_people_an_earlier_run_scored_with_the_same_settings(tmp_path: Path) -> None:
    """A second run into the same folder goes on from the first (an interrupted 18-person run, or more people):
    it keeps the people scored under the same settings, and only those."""
    from dataclasses import replace

    from conftest import REPO_ROOT

    from myosight.bench.people import RESULTS_NAME, PeopleBenchConfig, earlier_people

    earlier = json.loads((REPO_ROOT / "docs" / "results" / RESULTS_NAME).read_text(encoding="utf-8"))
    path = tmp_path / RESULTS_NAME
    path.write_text(json.dumps(earlier), encoding="utf-8")
    scored = [p["person"] for p in earlier["people"]]
    settings = earlier["config"]
    config = PeopleBenchConfig(data=Path(settings["data"]), people=(*scored, "Someone new"),
                               base_people=tuple(settings["base_people"]), replay_speed=settings["replay_speed"],
                               top_up=False)
    kept = earlier_people(path, config)
    assert sorted(kept) == sorted(scored) and "Someone new" not in kept
    assert kept[scored[0]].models == earlier["people"][0]["models"]
    timings = kept.timings_of(scored[0])
    assert timings and all(step.startswith(f"{scored[0]}-") for step in timings)
    assert sorted(earlier_people(path, replace(config, people=scored[:1]))) == scored[:1]
    relative = Path(os.path.relpath(settings["data"]))
    assert sorted(earlier_people(path, replace(config, data=relative))) == sorted(scored)  # the same file
    assert not earlier_people(path, replace(config, replay_speed=settings["replay_speed"] / 2))  # other settings
    assert not earlier_people(path, replace(config, base_people=tuple(settings["base_people"][:3])))
    with_top_up = sorted(p["person"] for p in earlier["people"] if p["top_up"])
    # the next session wanted: only the people it was measured for are kept
    assert sorted(earlier_people(path, replace(config, top_up=True))) == with_top_up
    path.write_text("{not json", encoding="utf-8")
    assert not earlier_people(path, config)  # never trusted: measured again
