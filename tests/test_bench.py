"""`myosight bench`: the table, the JSON report, the performance table, and the lsl and train benchmarks (short)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from myosight.bench.commands import BENCHMARKS, machine_description, performance_markdown, relate
from myosight.cli import main
from myosight.errors import ConfigError

torch.set_num_threads(1)


def test_every_benchmark_of_the_issue_is_registered() -> None:
    assert set(BENCHMARKS) == {"emg", "i3d", "realtime", "gui", "lsl", "train", "calibrate", "people"}


def test_calibration_figures_score_running_accuracy_against_the_base_model(tmp_path: Path) -> None:
    """The calibration benchmark's arithmetic: running accuracy from a JSONL log (predictions without a true
    label are not scored), and the calibrated figures related to the base model's of the same run."""
    import json

    from myosight.bench.calibrate import calibrate_figures, running_accuracy

    log = tmp_path / "run.jsonl"
    records = [{"label": "a", "true_label": "a", "time": 5.0}, {"label": "b", "true_label": "a", "time": 6.0},
               {"label": "a", "true_label": None, "time": 7.0}, {"label": "b", "true_label": "b", "time": 8.0}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    scores = running_accuracy(log)
    assert (scores["scored"], scores["predictions"], scores["first_time"]) == (3, 4, 5.0)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    result = {"subject": "S09", "classes": 20, "repetitions": 2, "seconds": 6.0, "rest_s": 3.0,
              "base": {"replay": {"accuracy": 0.5, "scored": 10}},
              "calibrated_112": {"replay": {"accuracy": 0.9, "scored": 10}, "held_out_top1": 0.8, "adapt_s": 20.0,
                                 "sEMG_cnn": "frozen", "recording_planned_s": 363.0}}
    figures = {f["name"]: f for f in calibrate_figures(result)}
    assert figures["calibrate.112px.replay"]["value"] == pytest.approx(90.0)
    assert figures["calibrate.112px.replay"]["ratio"] == pytest.approx(1.8)
    assert figures["calibrate.112px.adapt"]["target"] == "<= 60 s"
    assert "calibrate.112px.live" not in figures  # not measured: absent, not faked


def test_machine_description_names_cpu_gpu_threads_and_versions() -> None:
    machine = machine_description()
    assert machine["cpu"] and machine["cores"] >= 1 and machine["torch_threads"] >= 1
    assert "gpu" in machine
    assert set(machine["packages"]) == {"myosight", "torch", "numpy", "pylsl", "pyzmq", "PySide6", "pyqtgraph",
                                        "openvino", "onnxruntime"}
    assert machine["packages"]["torch"] == torch.__version__


def test_relate_sets_the_ratio_only_when_both_figures_exist() -> None:
    figures = [{"name": "fast", "value": 2.0, "unit": "s"}, {"name": "slow", "value": 8.0, "unit": "s"}]
    relate(figures, "fast", "slow")
    relate(figures, "slow", "absent")
    assert figures[0]["ratio"] == 0.25 and figures[0]["baseline"] == "slow"
    assert "ratio" not in figures[1]


def test_lsl_bench_receives_every_frame_and_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Three seconds of 224 x 224 x 3 video at 30 fps and two 200-Hz EMG streams from a source process."""
    output = tmp_path / "performance.md"
    assert main(["bench", "lsl", "--seconds", "3", "--json", "--output", str(output)]) == 0
    report = json.loads(capsys.readouterr().out)
    figures = {f["name"]: f for f in report["figures"]}
    assert figures["lsl.video_224x224x3.frames_sent"]["value"] == 90
    assert figures["lsl.video_224x224x3.frames_received"]["value"] == 90
    assert figures["lsl.emg_2x8ch_200hz.samples_sent"]["value"] == 1200
    assert figures["lsl.emg_2x8ch_200hz.samples_received"]["value"] == 1200
    assert figures["lsl.sequence_gaps"]["value"] == 0
    assert figures["lsl.video_224x224x3.frames_received"]["ratio"] == 1.0
    assert 0 < figures["lsl.source_cpu_share"]["value"] < 200
    assert figures["lsl.video.latency_p50"]["value"] <= figures["lsl.video.latency_p95"]["value"]
    assert report["command"] == "myosight bench lsl --seconds 3"
    text = output.read_text()
    assert text.startswith("## Performance") and "`myosight bench lsl --seconds 3`" in text
    assert "| lsl.video_224x224x3.frames_received | 90 |" in text
    assert report["machine"]["cpu"] in text


def test_train_bench_times_every_row_of_table_2() -> None:
    from myosight.bench.train import benchmark_train, train_figures
    from myosight.training.run import TABLE_ROWS

    result = benchmark_train(repeats=2, epochs=1, train=26, test=13, classes=13, progress=False)
    figures = {f["name"]: f for f in train_figures(result)}
    heads = [head for _title, head, _options in TABLE_ROWS]
    assert all(len(result["heads"][head]["seconds"]) == 2 for head in heads)
    assert {f"train.{head}" for head in heads} | {"train.table2_total", "train.table2_total_per_epoch"} == set(figures)
    assert figures["train.linear_rgb"]["ratio"] == 1.0
    total = sum(figures[f"train.{head}"]["value"] for head in heads)
    assert figures["train.table2_total"]["value"] == pytest.approx(total)


def test_missing_gui_benchmark_is_reported_not_fatal(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "gui", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["figures"]
    try:
        from myosight.bench.gui import benchmark_gui  # noqa: F401
    except ImportError:
        assert figures == [figures[0]] and figures[0]["value"] is None and "MISSING" in figures[0]["note"]
    else:
        assert figures and all("name" in f and "value" in f for f in figures)


def test_unknown_benchmark_and_bad_options_are_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "nonsense"]) == 1
    assert "unknown benchmark(s) nonsense" in capsys.readouterr().err
    assert main(["bench", "emg", "--repeat", "0"]) == 1  # refused by the parser, before any benchmark runs
    assert "myosight bench: error: argument --repeat: expected a whole number from 1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--repeat"):  # and by the handler, when called without the parser
        from argparse import Namespace

        from myosight.bench.commands import run_bench

        run_bench(Namespace(names=["emg"], repeat=0, seconds=None))


def test_markdown_table_keeps_missing_values_and_pipes_readable() -> None:
    report = {"date": "2026-01-01", "command": "myosight bench gui", "machine": machine_description(),
              "figures": [{"name": "gui", "value": None, "unit": "", "note": "MISSING: a | b"},
                          {"name": "x.p50", "value": 1.5, "unit": "ms", "baseline": "y", "ratio": 0.5}]}
    text = performance_markdown(report)
    assert "| gui | - |  |  |  | MISSING: a / b |" in text
    assert "| x.p50 | 1.5 | ms | 0.5 x y |" in text
