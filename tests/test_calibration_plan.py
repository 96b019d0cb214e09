"""The calibration's plan and prompter on a hand-driven clock: what is asked when, and which markers go out."""

from __future__ import annotations

import pytest

from myosight.calibration.plan import CalibrationPlan, Prompter, Repetition, finished_repetitions
from myosight.capture.streams import parse_marker
from myosight.errors import ConfigError


class HandClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(plan: CalibrationPlan, done=()) -> tuple[Prompter, HandClock, list[tuple[str, float]]]:
    clock, sent = HandClock(), []
    prompter = Prompter(plan, clock, lambda text, stamp: sent.append((text, stamp)), done=done)
    return prompter, clock, sent


PLAN = CalibrationPlan(("Slice bread", "Peel a potato"), repetitions=2, seconds=6.0, rest_s=2.0, lead_in_s=3.0,
                       margin_s=0.5)


def test_repetitions_go_round_by_round() -> None:
    assert PLAN.order() == [Repetition("Slice bread", 0), Repetition("Peel a potato", 0),
                            Repetition("Slice bread", 1), Repetition("Peel a potato", 1)]
    assert PLAN.recording_seconds == pytest.approx(3 + 4 * 8)
    assert PLAN.labelled_seconds == pytest.approx(5.0)


@pytest.mark.parametrize("kwargs", [
    {"classes": ()}, {"classes": ("a", "a")}, {"classes": ("a|b",)}, {"classes": ("",)},
    {"classes": ("a",), "repetitions": 0}, {"classes": ("a",), "repetitions": 1.5},
    {"classes": ("a",), "seconds": float("nan")}, {"classes": ("a",), "rest_s": -1},
    {"classes": ("a",), "seconds": 1.5},  # less than 1 s between the margins
])
def test_bad_plans_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        CalibrationPlan(**kwargs)


def test_plan_round_trips_through_its_file(tmp_path) -> None:
    PLAN.save(tmp_path / "plan.json")
    assert CalibrationPlan.load(tmp_path / "plan.json") == PLAN
    (tmp_path / "bad.json").write_text("{]")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        CalibrationPlan.load(tmp_path / "bad.json")


def test_the_prompts_follow_the_clock_and_label_inside_the_margins() -> None:
    prompter, clock, sent = make(PLAN)
    state = prompter.tick()
    assert (state.phase, state.current.activity, state.next.activity) == ("rest", "Slice bread", "Peel a potato")
    assert state.remaining_s == pytest.approx(3.0) and (state.done, state.total) == (0, 4)
    clock.now = 104.0  # 1 s into the first repetition
    state = prompter.tick()
    assert state.phase == "active" and state.progress == pytest.approx(1 / 6)
    assert sent == [("Slice bread|Start", 103.5)]
    clock.now = 109.5  # its end: the Stop was due 0.5 s before it
    state = prompter.tick()
    assert sent[-1] == ("Slice bread|Stop", 108.5)
    assert (state.phase, state.current.activity, state.done, state.can_redo) == ("rest", "Peel a potato", 1, True)
    clock.now = 200.0  # everything else
    state = prompter.tick()
    assert state.phase == "done" and state.done == 4
    texts = [text for text, _ in sent]
    assert texts == ["Slice bread|Start", "Slice bread|Stop", "Peel a potato|Start", "Peel a potato|Stop"] * 2
    stamps = [stamp for _, stamp in sent]
    assert stamps == sorted(stamps)
    assert stamps[2] == pytest.approx(103 + 8 + 0.5)  # second prompt: after 6 s active and 2 s rest


def test_redo_discards_the_last_repetition_and_asks_it_again() -> None:
    prompter, clock, sent = make(PLAN)
    clock.now = 110.0  # first repetition over, resting
    prompter.tick()
    assert prompter.redo()
    assert parse_marker(sent[-1][0]).kind == "Discard" and sent[-1][0].startswith("Slice bread|")
    state = prompter.tick()
    assert state.current == Repetition("Slice bread", 0) and state.done == 0 and not state.can_redo
    assert not prompter.redo()  # only once per finished repetition


def test_pause_cancels_the_repetition_under_way() -> None:
    prompter, clock, sent = make(PLAN)
    clock.now = 105.0
    prompter.tick()
    prompter.pause()
    marker = parse_marker(sent[-1][0])
    assert (marker.activity, marker.kind, marker.validity) == ("Slice bread", "Stop", "Bad")
    clock.now = 500.0
    assert prompter.tick().phase == "paused"  # the plan's clock stands still
    prompter.resume()
    state = prompter.tick()
    assert (state.phase, state.current.activity, state.remaining_s) == ("rest", "Slice bread", pytest.approx(3.0))


def test_abort_keeps_what_was_finished() -> None:
    prompter, clock, sent = make(PLAN)
    clock.now = 113.0  # in the second repetition
    prompter.tick()
    prompter.abort()
    assert prompter.tick().phase == "aborted"
    marker = parse_marker(sent[-1][0])
    assert (marker.activity, marker.kind, marker.validity) == ("Peel a potato", "Stop", "Bad")
    assert prompter.finished == [Repetition("Slice bread", 0)]


def test_a_resumed_calibration_asks_only_what_is_missing() -> None:
    done = finished_repetitions(["Slice bread", "Peel a potato", "Slice bread", "Unknown"], PLAN)
    assert done == [Repetition("Slice bread", 0), Repetition("Peel a potato", 0), Repetition("Slice bread", 1)]
    prompter, _, _ = make(PLAN, done=done)
    state = prompter.tick()
    assert state.current == Repetition("Peel a potato", 1) and (state.done, state.total) == (3, 4)
    everything, _, _ = make(PLAN, done=PLAN.order())
    assert everything.tick().phase == "done"
