"""LibEMG as the peer of `myosight bench people`: its own environment, the runner, and the strict reading of its
answers (a comparison made on a malformed answer would be wrong without anyone noticing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from myosight.bench.peer import (
    CLASSIFIERS,
    PeerEnvironment,
    PeerInstallError,
    PeerRequest,
    PeerResult,
    PeerRun,
    parse_result,
    peer_accuracy,
)
from myosight.errors import ConfigError

RATE_HZ = 200.0
GESTURE_SAMPLES = 600
DECISION_HOP = 40
WINDOWS = (40, 200)


def held_gestures(seed: int = 7) -> tuple[list[tuple[np.ndarray, int]], np.ndarray, np.ndarray]:
    """Three classes of 8-channel noise whose per-channel amplitudes (in Myo-like raw units) differ by class:
    two training recordings per class, and one test recording of the three gestures held in turn."""
    rng = np.random.default_rng(seed)
    amplitudes = rng.uniform(5.0, 40.0, (3, 8))
    train = [(rng.normal(size=(GESTURE_SAMPLES, 8)) * amplitudes[label], label) for label in range(3)
             for _ in range(2)]
    test = np.concatenate([rng.normal(size=(GESTURE_SAMPLES, 8)) * amplitudes[label] for label in range(3)])
    ends = np.arange(20, len(test) + 1, DECISION_HOP)  # starts mid-window so the longer window skips some
    return train, test, ends


def install_or_skip() -> PeerEnvironment:
    """The shared environment in myosight's cache (built once per machine); skipped only without a package index."""
    environment = PeerEnvironment()
    try:
        environment.ensure(progress=lambda text: print(f"peer: {text}", file=sys.stderr))
    except PeerInstallError as error:
        if error.index_unreachable:
            pytest.skip(f"the package index cannot be reached to install LibEMG: {error}")
        raise
    return environment


@pytest.mark.slow
def test_libemg_scores_held_gestures_in_its_own_environment(tmp_path: Path) -> None:
    environment = install_or_skip()
    assert environment.ready() and environment.stamp_contents()["libemg_version"] == "2.0.3"
    train, test, ends = held_gestures()
    request = PeerRequest(RATE_HZ, train, {"held": (test, ends)}, WINDOWS, increment_samples=10)
    result = environment.run(request, tmp_path)
    assert result.version == "2.0.3" and result.numpy_version.startswith("1.")
    answered = {(run.classifier, run.window_samples) for run in result.results}
    failed = {(failure.classifier, failure.window_samples) for failure in result.errors}
    assert answered | failed == {(name, length) for name in CLASSIFIERS for length in WINDOWS}
    assert all(failure.error.strip() for failure in result.errors)
    assert ("LDA", 40) in answered and ("LDA", 200) in answered
    for run in result.results:
        predicted = run.predictions["held"]
        assert len(predicted) == len(ends)
        assert np.all((predicted == -1) == (ends < run.window_samples))
    truth = {"held": (ends - 1) // GESTURE_SAMPLES}
    for length in WINDOWS:  # decisions whose whole window lies inside one gesture
        inside = {"held": (ends >= length) & ((ends - length) // GESTURE_SAMPLES == (ends - 1) // GESTURE_SAMPLES)}
        lda = [row for row in peer_accuracy(result, truth, inside)
               if row["classifier"] == "LDA" and row["window_samples"] == length]
        assert lda[0]["accuracy"] >= 0.9 and lda[0]["unanswered"] == 0, lda


def small_request() -> PeerRequest:
    rng = np.random.default_rng(0)
    train = [(rng.normal(size=(50, 8)), label) for label in (0, 1)]
    return PeerRequest(RATE_HZ, train, {"a": (rng.normal(size=(100, 8)), np.array([10, 50, 100]))}, (20,),
                       increment_samples=5, classifiers=("LDA", "QDA"))


def answer(predictions: object, errors: list | None = None, tests: dict | None = None) -> str:
    """A runner result: LDA answers with `predictions` for test "a" (or with `tests`); QDA failed."""
    return json.dumps({
        "libemg_version": "2.0.3", "numpy_version": "1.26.4",
        "results": [{"classifier": "LDA", "window_samples": 20, "fit_seconds": 0.1, "predict_seconds": 0.2,
                     "predictions": {"a": predictions} if tests is None else tests}],
        "errors": [{"classifier": "QDA", "window_samples": 20, "error": "LinAlgError: not full rank"}]
        if errors is None else errors,
    })


def test_malformed_libemg_answers_are_refused_and_sound_ones_read() -> None:
    request = small_request()
    result = parse_result(answer([-1, 1, 0]), request)
    assert result.version == "2.0.3" and result.errors[0].error.startswith("LinAlgError")
    assert result.results[0].predictions["a"].tolist() == [-1, 1, 0]
    refused = {
        "a prediction too few": answer([-1, 1]),
        "a class never trained": answer([-1, 1, 2]),
        "-1 where the window fits": answer([-1, -1, 0]),
        "a class where the window does not fit": answer([0, 1, 0]),
        "not ints": answer([-1, 1.0, 0]),
        "a test missing": answer(None, tests={}),
        "a test never asked": answer(None, tests={"a": [-1, 1, 0], "b": [0]}),
        "a classifier unanswered": answer([-1, 1, 0], errors=[]),
        "not JSON": "{",
    }
    for why, text in refused.items():
        with pytest.raises(ConfigError, match="LibEMG result"):
            parse_result(text, request)
            pytest.fail(why)


def test_requests_libemg_cannot_answer_are_refused() -> None:
    good = small_request()
    with pytest.raises(ConfigError, match="ends must lie"):
        PeerRequest(RATE_HZ, good.train, {"a": (good.tests["a"][0], np.array([101]))}, (20,), 5)
    with pytest.raises(ConfigError, match="channels"):
        PeerRequest(RATE_HZ, good.train, {"a": (np.zeros((100, 4)), np.array([50]))}, (20,), 5)
    with pytest.raises(ConfigError, match="label"):
        PeerRequest(RATE_HZ, [(np.zeros((50, 8)), -1)], good.tests, (20,), 5)


def test_accuracy_counts_unanswered_decisions_as_wrong() -> None:
    run = PeerRun("LDA", 20, 0.0, 0.0, {"a": np.array([-1, 1, 0, 2]), "b": np.array([0, 0])})
    result = PeerResult(version="2.0.3", numpy_version="1.26.4", results=[run])
    truth = {"a": np.array([0, 1, 1, 2]), "b": np.array([0, 1])}
    (row,) = peer_accuracy(result, truth)
    assert row["accuracy"] == pytest.approx(3 / 6) and row["decisions"] == 6 and row["unanswered"] == 1
    (row,) = peer_accuracy(result, truth, {"a": np.array([False, True, True, True])})
    assert row["accuracy"] == pytest.approx(3 / 5) and row["unanswered"] == 0
    (row,) = peer_accuracy(result, truth, {"a": np.zeros(4, bool), "b": np.zeros(2, bool)})
    assert row["accuracy"] is None and row["decisions"] == 0
    with pytest.raises(ConfigError, match="decisions"):
        peer_accuracy(result, {"a": np.zeros(3), "b": np.zeros(2)})


def test_a_runner_that_fails_is_one_line_with_its_output(tmp_path: Path) -> None:
    """The runner started by an interpreter without LibEMG (myosight's own) fails; the error says why."""

    class WithoutLibemg(PeerEnvironment):
        @property
        def python(self) -> Path:
            return Path(sys.executable)

        def ready(self) -> bool:
            return True

    with pytest.raises(ConfigError, match="libemg") as caught:
        WithoutLibemg(tmp_path / "env").run(small_request(), tmp_path / "work")
    assert "\n" not in str(caught.value) and (tmp_path / "work" / "libemg-request.npz").is_file()


def test_install_failures_tell_an_unreachable_index_from_a_broken_package() -> None:
    offline = ("WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(...: Failed to "
               "establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/libemg/\n"
               "ERROR: No matching distribution found for libemg==2.0.3\n")
    error = PeerInstallError(["pip", "install", "libemg==2.0.3"], 1, offline)
    assert error.index_unreachable and "No matching distribution" in str(error) and "\n" not in str(error)
    broken = PeerInstallError(["pip", "install", "libemg==9"], 1, "ERROR: No matching distribution found\n")
    assert not broken.index_unreachable and str(broken).startswith("`pip install libemg==9` exited with 1")
