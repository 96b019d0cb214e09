"""Would a smoothed decision help? Scores smoothers of the fused decisions in a worker's `--jsonl` log.

Reads a log written while replaying a labelled session (`myosight run ... --source replay SESSION --jsonl
LOG`), so each fused line has `probs` and the replayed `true_label`, and compares, for the raw decision
and for smoothers over the recent decisions:

- running accuracy: the share of decisions equal to the replayed activity;
- label changes: how often the shown label changes (the true activity changes far less often);
- delay: after each change of the true activity, the seconds until the decision first names it.

Smoothers: a sticky hidden Markov model filtered forward (stay probability s), an exponential moving average
of the probabilities (weight a of the past), and a majority vote over the last n decisions.

    python scripts/smoothing_study.py LOG.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np


def read_log(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities (N, C), true class index (N,) and window ends (N,) of the fused, labelled lines."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["mode"] == "fusion" and r["true_label"] is not None]
    if not rows:
        raise SystemExit(f"{path}: no fused line with a true_label (replay a labelled session)")
    names = {r["label"]: r["label_index"] for r in rows}
    probs = np.array([r["probs"] for r in rows])
    truth = np.array([names.get(r["true_label"], -1) for r in rows])  # -1: a class never predicted
    return probs, truth, np.array([r["window_end"] for r in rows])


def hmm(probs: np.ndarray, stay: float) -> np.ndarray:
    """Forward filter of a Markov chain that keeps its class with probability `stay` per decision."""
    classes = probs.shape[1]
    posterior, decisions = np.full(classes, 1.0 / classes), []
    for p in probs:
        prior = stay * posterior + (1 - stay) * (1 - posterior) / (classes - 1)
        posterior = prior * np.maximum(p, 1e-6)
        posterior /= posterior.sum()
        decisions.append(int(posterior.argmax()))
    return np.array(decisions)


def moving_average(probs: np.ndarray, past: float) -> np.ndarray:
    state, decisions = probs[0].copy(), []
    for p in probs:
        state = past * state + (1 - past) * p
        decisions.append(int(state.argmax()))
    return np.array(decisions)


def majority(probs: np.ndarray, n: int) -> np.ndarray:
    votes = probs.argmax(1)
    return np.array([np.bincount(votes[max(0, k - n + 1):k + 1]).argmax() for k in range(len(votes))])


def delays(decisions: np.ndarray, truth: np.ndarray, ends: np.ndarray) -> list[float]:
    """Seconds from each change of the true activity until the decision first names the new one."""
    found = []
    for k in np.flatnonzero(truth[1:] != truth[:-1]) + 1:
        for j in range(k, len(truth)):
            if truth[j] != truth[k]:
                break
            if decisions[j] == truth[k]:
                found.append(float(ends[j] - ends[k]))
                break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    probs, truth, ends = read_log(parser.parse_args().log)
    smoothers: list[tuple[str, Callable[[], np.ndarray]]] = [("raw", lambda: probs.argmax(1))]
    smoothers += [(f"hmm s={s}", lambda s=s: hmm(probs, s)) for s in (0.9, 0.97, 0.99)]
    smoothers += [(f"moving average a={a}", lambda a=a: moving_average(probs, a)) for a in (0.5, 0.7, 0.9)]
    smoothers += [(f"majority n={n}", lambda n=n: majority(probs, n)) for n in (3, 5, 9)]
    print(f"{len(truth)} fused decisions, hop {np.median(np.diff(ends)):.2f} s, "
          f"{int((truth[1:] != truth[:-1]).sum())} changes of the true activity")
    print("| decision | running accuracy (%) | label changes | delay after a change, mean (s) |")
    print("| --- | ---: | ---: | ---: |")
    for name, smooth in smoothers:
        decisions = smooth()
        late = delays(decisions, truth, ends)
        print(f"| {name} | {100 * np.mean(decisions == truth):.1f} | {int((decisions[1:] != decisions[:-1]).sum())} "
              f"| {np.mean(late) if late else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
