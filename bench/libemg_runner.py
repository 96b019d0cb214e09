"""Score LibEMG's classifiers on one benchmark request, inside the peer environment (see `myosight.bench.peer`).

`myosight bench people` compares myosight's calibrated sEMG models with LibEMG, the EMG library the field uses.
LibEMG pins its own numpy and pulls in many packages myosight must not depend on, so it lives in a virtual
environment of its own, and this script is what that environment's interpreter runs:

    PEER_PYTHON -I libemg_runner.py REQUEST.npz RESULT.json

It therefore imports only the standard library, numpy and LibEMG's documented public API (never myosight, which
is not installed there), and it follows LibEMG's default pipeline: windows from `libemg.utils.get_windows`, the
'HTD' feature group, `EMGClassifier(name)` with its default settings and seed. The request's fields are described
in `myosight.bench.peer.PeerRequest`; the result is JSON: versions, one entry per (classifier, window length) with
its predictions per test recording (-1 where a decision's window would start before the recording), and the
failures of classifiers that raised, so that one failing classifier does not cost the others' results.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from libemg.emg_predictor import EMGClassifier
from libemg.feature_extractor import FeatureExtractor
from libemg.utils import get_windows

#: LibEMG's default feature group: MAV, ZC, SSC, WL (Hudgins' time-domain set).
FEATURE_GROUP = "HTD"
#: The prefix of every progress line on standard error (the caller forwards these lines to its user).
PROGRESS_PREFIX = "libemg: "


def say(text: str) -> None:
    """One progress line on standard error: the caller shows it while a long request runs."""
    print(PROGRESS_PREFIX + text, file=sys.stderr, flush=True)


def load_request(path: Path) -> dict[str, Any]:
    """The request as plain Python values and float64 arrays (no pickled objects are accepted)."""
    with np.load(path, allow_pickle=False) as npz:
        train_count = int(npz["train_count"])
        names = [str(name) for name in npz["test_names"]]
        return {
            "window_samples": [int(length) for length in npz["window_samples"]],
            "increment": int(npz["increment_samples"]),
            "classifiers": [str(name) for name in npz["classifiers"]],
            "train": [(np.asarray(npz[f"train_{i}_data"], np.float64), int(npz[f"train_{i}_label"]))
                      for i in range(train_count)],
            "tests": {name: (np.asarray(npz[f"test_{name}_data"], np.float64),
                             np.asarray(npz[f"test_{name}_ends"], np.int64)) for name in names},
        }


def training_set(train: list[tuple[np.ndarray, int]], length: int, increment: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows (N, channels, length) and their labels, cut from each recording on its own so that no window mixes
    two gestures; a recording shorter than the window gives none."""
    windows, labels = [], []
    for data, label in train:
        if len(data) < length:
            continue
        cut = get_windows(data, length, increment)
        windows.append(cut)
        labels.append(np.full(len(cut), label, np.int64))
    if not windows:
        raise ValueError(f"no training recording is at least {length} samples long")
    return np.concatenate(windows), np.concatenate(labels)


def decision_windows(data: np.ndarray, ends: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows (M, channels, length) of the decisions that have a whole window, and which decisions they are."""
    if len(ends) and (ends.max() > len(data) or ends.min() < 0):
        raise ValueError(f"decision ends must lie in [0, {len(data)}]")
    answered = np.flatnonzero(ends >= length)
    index = ends[answered, None] - length + np.arange(length)
    return data[index].transpose(0, 2, 1), answered


def features(windows: np.ndarray) -> dict[str, np.ndarray]:
    """LibEMG's default feature group of each window, in LibEMG's own dictionary form."""
    return FeatureExtractor().extract_feature_group(FEATURE_GROUP, windows)


def score(name: str, train: tuple[dict, np.ndarray], tests: dict[str, tuple[dict, np.ndarray, int]],
          classes: np.ndarray) -> dict[str, Any]:
    """Fit one classifier and predict every test decision; labels travel as indices into `classes` because
    LibEMG reports the column of the most probable class, which equals the label only for labels 0..K-1."""
    classifier = EMGClassifier(name)
    start = time.perf_counter()
    classifier.fit(feature_dictionary={"training_features": train[0], "training_labels": train[1]})
    fit_seconds = time.perf_counter() - start
    predictions: dict[str, list[int]] = {}
    start = time.perf_counter()
    for test, (test_features, answered, count) in tests.items():
        out = np.full(count, -1, np.int64)
        if len(answered):
            out[answered] = classes[np.asarray(classifier.run(test_features)[0], np.int64)]
        predictions[test] = out.tolist()
    return {"classifier": name, "fit_seconds": fit_seconds, "predict_seconds": time.perf_counter() - start,
            "predictions": predictions}


def one_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def run_length(request: dict[str, Any], length: int, result: dict[str, Any]) -> None:
    """Every classifier at one window length; a failure is recorded in `result["errors"]` and the run goes on."""
    try:
        start = time.perf_counter()
        windows, labels = training_set(request["train"], length, request["increment"])
        classes, indices = np.unique(labels, return_inverse=True)
        train = (features(windows), indices.reshape(-1))
        tests = {}
        for name, (data, ends) in request["tests"].items():
            test_windows, answered = decision_windows(data, ends, length)
            tests[name] = (features(test_windows) if len(answered) else {}, answered, len(ends))
        feature_seconds = time.perf_counter() - start
    except Exception as error:  # the whole length fails: say so for each classifier
        for name in request["classifiers"]:
            result["errors"].append({"classifier": name, "window_samples": length, "error": one_line(error)})
        say(f"window {length}: {one_line(error)}")
        return
    for name in request["classifiers"]:
        try:
            entry = score(name, train, tests, classes)
        except Exception as error:  # one classifier's failure must not cost the others' results
            result["errors"].append({"classifier": name, "window_samples": length, "error": one_line(error)})
            say(f"{name} window {length}: failed: {one_line(error)}")
            continue
        entry.update(window_samples=length, train_windows=len(labels), feature_seconds=feature_seconds)
        result["results"].append(entry)
        say(f"{name} window {length}: fit {entry['fit_seconds']:.2f} s, predict {entry['predict_seconds']:.2f} s")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: libemg_runner.py REQUEST.npz RESULT.json", file=sys.stderr)
        return 2
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = load_request(request_path)
    result: dict[str, Any] = {"libemg_version": metadata.version("libemg"), "numpy_version": np.__version__,
                              "sklearn_version": metadata.version("scikit-learn"), "results": [], "errors": []}
    for length in request["window_samples"]:
        run_length(request, length, result)
    partial = result_path.with_name(result_path.name + ".partial")
    partial.write_text(json.dumps(result), encoding="utf-8")
    os.replace(partial, result_path)  # the caller never reads a half-written result
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
