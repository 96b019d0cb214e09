"""`myosight bench calibrate`: does a calibration give an unseen person predictions that mean something?

Everything runs as a user would type it, each step a `myosight` command in its own process:

1. a new session of the unseen synthetic subject (another seed than the calibration's person) is written;
2. the base model (default: the demo model) is scored on it: `myosight run --model BASE --source replay
   SESSION --headless --jsonl F`, and against the live-rendered synthetic person (`--source synthetic`);
3. `myosight calibrate --source synthetic --subject S09 --headless` records the person (every class of the
   base model, 2 repetitions of 6 s, with rests) faster than real time and adapts the base model;
4. the calibrated bundle is scored the same two ways;
5. an sEMG-only calibration from the same recording (`myosight calibrate --from ... --emg-only`) is scored
   on the replay.

Running accuracy is the share of predictions whose label equals the true label of the window (the activity
being performed at the window's middle), over every prediction that has one, as the terminal viewer shows
it. The adaptation time is measured by the calibration itself: from the end of the recording (the rest after
the last repetition) to the bundle being written; the worker's start on a new bundle (model loading and
warm-up, without the first window's data) is measured on the calibrated replay and reported beside it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from myosight.bench.steps import CommandSteps, free_address, running_accuracy

__all__ = ["CalibrateBenchConfig", "benchmark_calibrate", "calibrate_figures", "running_accuracy"]


@dataclass
class CalibrateBenchConfig:
    subject: str = "S09"  # never a training subject of the demo model (S04, S07, S08)
    classes: Sequence[str] | None = None  # default: the base model's
    repetitions: int = 2
    seconds: float = 6.0
    rest_s: float = 3.0
    record_speed: float = 2.0  # the synthetic person performs this much faster than real time
    replay_speed: float = 2.0
    live_seconds: float = 90.0  # per model, against the live-rendered person (real time)
    eval_seed: int = 7
    input_sizes: Sequence[int] = (112,)
    emg_only: bool = True  # also the sEMG-only calibration
    base: Path | None = None
    work_dir: Path | None = None


def benchmark_calibrate(config: CalibrateBenchConfig, say: Callable[[str], None] = print) -> dict:
    """Run the steps of the module docstring; return every measurement (see `calibrate_figures`)."""
    from myosight.models.bundle_header import read_bundle_metadata
    from myosight.training.demo_model import demo_bundle

    base = Path(config.base) if config.base else demo_bundle()
    classes = list(config.classes or read_bundle_metadata(base)["classes"])
    work = Path(config.work_dir or tempfile.mkdtemp(prefix="myosight-bench-calibrate-"))
    work.mkdir(parents=True, exist_ok=True)
    steps = CommandSteps(work, say, "bench calibrate")
    result: dict = {"work_dir": str(work), "subject": config.subject, "classes": len(classes),
                    "repetitions": config.repetitions, "seconds": config.seconds, "rest_s": config.rest_s}
    steps.myosight("synth", "synth", "--out", str(work / "eval"), "--subjects", config.subject, "--seed",
                   str(config.eval_seed), "--actions-per-class", "1", "--seconds", "8", "--quiet", "--classes",
                   *classes)
    session = next((work / "eval").glob("*.hdf5"))
    result["base"] = _score(steps, "base", base, session, config, emg_only=False)
    for size in config.input_sizes:
        out = work / f"calibration-{size}px"
        started = time.monotonic()
        plan = ["--reps", str(config.repetitions), "--seconds", f"{config.seconds:g}", "--rest", f"{config.rest_s:g}"]
        calibrated = steps.myosight(
            f"calibrate-{size}px", "calibrate", "--source", "synthetic", "--subject", config.subject,
            "--base", str(base), *plan, "--speed", f"{config.record_speed:g}", "--input-size", str(size),
            "--out", str(out), "--headless", "--json", "--classes", *classes)
        recorded_and_adapted_s = time.monotonic() - started
        outcome = json.loads(calibrated.stdout[calibrated.stdout.index("{"):])
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        result[f"calibrated_{size}"] = {
            **_score(steps, f"calibrated-{size}px", out / "bundle.safetensors", session, config, emg_only=False,
                     live=size == config.input_sizes[0]),
            "adapt_s": outcome["adapt_wall_s"], "held_out_top1": outcome["held_out_top1"],
            "command_wall_s": recorded_and_adapted_s, "sEMG_cnn": report.get("sEMG_cnn"),
            "windows_with_live_rgb": report.get("windows_with_live_rgb"), "samples": report.get("samples"),
            "recording_planned_s": outcome["recording_seconds_planned"]}
    if config.emg_only:
        recordings = sorted((work / f"calibration-{config.input_sizes[0]}px" / "recordings").glob("*.hdf5"))
        out = work / "calibration-emg-only"
        adapted = steps.myosight("calibrate-emg-only", "calibrate", "--from", *map(str, recordings), "--base",
                                 str(base), "--emg-only", "--out", str(out), "--json", "--classes", *classes)
        outcome = json.loads(adapted.stdout[adapted.stdout.index("{"):])
        result["emg_only"] = {**_score(steps, "calibrated-emg-only", out / "bundle.safetensors", session, config,
                                       emg_only=True, live=False),
                              "adapt_s": outcome["adapt_wall_s"], "held_out_top1": outcome["held_out_top1"]}
    result["timings"] = steps.timings
    return result


def _score(steps: CommandSteps, name: str, bundle: Path, session: Path, config: CalibrateBenchConfig, *, emg_only: bool,
           live: bool = True) -> dict:
    """Running accuracy of `bundle` on the replayed session and (if `live`) on the live synthetic person."""
    flags = ["--emg-only"] if emg_only else []
    replay_log = steps.work / f"{name}-replay.jsonl"
    started = time.time()
    steps.myosight(f"{name}-replay", "run", "--model", str(bundle), "--source", "replay", str(session), "--speed",
                   f"{config.replay_speed:g}", "--headless", "--jsonl", str(replay_log), "--address", free_address(),
                   *flags)
    scores = {"replay": running_accuracy(replay_log)}
    first = scores["replay"].pop("first_time")
    if first is not None:  # the first window needs a whole sample of data before it can be predicted
        scores["first_prediction_s"] = first - started
    if live:
        live_log = steps.work / f"{name}-live.jsonl"
        steps.myosight(f"{name}-live", "run", "--model", str(bundle), "--source", "synthetic", "--subject",
                       config.subject, "--headless", "--duration", f"{config.live_seconds:g}", "--jsonl",
                       str(live_log), "--address", free_address(), *flags)
        scores["live"] = running_accuracy(live_log)
        scores["live"].pop("first_time")
    return scores


def calibrate_figures(result: dict) -> list[dict]:
    """The benchmark's table rows."""
    figures: list[dict] = []
    base = result["base"]
    people = f"unseen synthetic subject {result['subject']}, {result['classes']} classes"

    def accuracy(name: str, scores: dict | None, target: str = "", baseline: str | None = None) -> None:
        if scores is None or scores.get("accuracy") is None:
            return
        figure = {"name": name, "value": 100 * scores["accuracy"], "unit": "% running accuracy", "target": target,
                  "note": f"{scores['scored']} predictions, {people}"}
        if baseline is not None and base.get(baseline, {}).get("accuracy"):
            figure.update(baseline=f"calibrate.base.{baseline}", ratio=scores["accuracy"] / base[baseline]["accuracy"])
        figures.append(figure)

    accuracy("calibrate.base.replay", base["replay"])
    accuracy("calibrate.base.live", base.get("live"))
    for key, values in result.items():
        if not key.startswith("calibrated_"):
            continue
        size = key.removeprefix("calibrated_")
        accuracy(f"calibrate.{size}px.replay", values["replay"], ">= 90 %", "replay")
        accuracy(f"calibrate.{size}px.live", values.get("live"), ">= 90 %", "live")
        figures += [
            {"name": f"calibrate.{size}px.held_out", "value": 100 * (values["held_out_top1"] or 0.0),
             "unit": "% top-1", "note": "leave one repetition out, on the calibration's own windows"},
            {"name": f"calibrate.{size}px.adapt", "value": values["adapt_s"], "unit": "s",
             "target": "<= 60 s" if size == "112" else "",
             "note": f"end of recording -> bundle written; sEMG CNN {values['sEMG_cnn']}"},
            {"name": f"calibrate.{size}px.recording", "value": values["recording_planned_s"], "unit": "s of recording",
             "note": f"{result['classes']} x {result['repetitions']} x {result['seconds']:g} s, rest "
                     f"{result['rest_s']:g} s (recorded faster than real time here)"},
        ]
        if "first_prediction_s" in values:
            figures.append({"name": f"calibrate.{size}px.first_prediction", "value": values["first_prediction_s"],
                            "unit": "s", "note": "`myosight run` on the new bundle: start -> first prediction "
                            "(loading, warm-up and the first window's data at the replay speed)"})
    emg = result.get("emg_only")
    if emg is not None:
        accuracy("calibrate.emg_only.replay", emg["replay"])
        figures.append({"name": "calibrate.emg_only.held_out", "value": 100 * (emg["held_out_top1"] or 0.0),
                        "unit": "% top-1", "note": "sEMG-only calibration from the same recording"})
    return figures
