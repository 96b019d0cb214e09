"""CLI: `myosight bench` (the project's benchmarks, one table, JSON, and the performance page's table) and
`myosight soak`.

Speed targets live here rather than in timed tests. Each benchmark is a module of this package and returns a
list of figures: `name`, `value`, `unit`, optional `target`, `note`, and, where the same run
measured a baseline, `baseline` (the baseline figure's name, or what it stands for) with `ratio` = value /
baseline. `--output FILE.md` writes the table of docs/performance.md from one run: date, command,
machine, table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from myosight import __version__, options
from myosight.errors import ConfigError

#: Distributions whose versions every report names (the first installed spelling of each is used).
PACKAGES: tuple[tuple[str, ...], ...] = (
    ("myosight",), ("torch",), ("numpy",), ("pylsl",), ("pyzmq",), ("PySide6", "PySide6-Essentials"), ("pyqtgraph",),
    ("openvino",), ("onnxruntime",),  # the int8 I3D's runtime and quantiser
)


def _emg(args: argparse.Namespace) -> list[dict]:
    from myosight.bench.emg import benchmark_emg

    figures = benchmark_emg(repeats=args.repeat or 200)
    relate(figures, "emg.new_clip_1s_16ch.p50", "emg.window_5s_16ch.p50")
    relate(figures, "emg.new_clip_1s_16ch.p95", "emg.window_5s_16ch.p95")
    for figure in figures:
        if figure["name"].startswith("emg.offline_") and figure["unit"] == "s":
            minutes = float(figure["name"].split("_")[1].removesuffix("min"))
            figure.update(baseline=f"{minutes:g} min of recording (real time)", ratio=figure["value"] / (60 * minutes))
    return figures


def _i3d(args: argparse.Namespace) -> list[dict]:
    from myosight.bench.i3d import benchmark_i3d

    result = benchmark_i3d(repeats=args.repeat or 10, device=args.device)
    eager, fast = result["eager"], result["fast"]
    figures = [
        {"name": "i3d.clip_16x224.eager.p50", "value": eager["median_s"], "unit": "s"},
        {"name": "i3d.clip_16x224.eager.p95", "value": eager["p95_s"], "unit": "s"},
        {"name": "i3d.clip_16x224.fast.p50", "value": fast["median_s"], "unit": "s", "target": "<= 0.6 s"},
        {"name": "i3d.clip_16x224.fast.p95", "value": fast["p95_s"], "unit": "s"},
        {"name": "i3d.fast_vs_eager", "value": result["speedup"], "unit": "x faster"},
        {"name": "i3d.fast_max_abs_logit_diff", "value": result["max_abs_logit_diff"], "unit": "",
         "target": "<= 1e-4"},
        {"name": "i3d.fast_first_call", "value": result["fast_first_call_s"], "unit": "s (compiles)"},
    ]
    relate(figures, "i3d.clip_16x224.fast.p50", "i3d.clip_16x224.eager.p50")
    relate(figures, "i3d.clip_16x224.fast.p95", "i3d.clip_16x224.eager.p95")
    for path, by_batch in result["throughput_clips_per_s"].items():
        for batch, rate in by_batch.items():
            figures.append({"name": f"i3d.throughput.{path}.batch{batch}", "value": rate, "unit": "clips/s"})
    for batch in result["throughput_clips_per_s"].get("fast", {}):
        relate(figures, f"i3d.throughput.fast.batch{batch}", f"i3d.throughput.eager.batch{batch}")
    for figure in figures:
        figure.setdefault("note", f"{result['weights']} weights, {result['threads']} threads, {result['device']}")
    return figures + _i3d_int8(args)


def _i3d_int8(args: argparse.Namespace) -> list[dict]:
    """The int8 I3D against the float32 fast path (uncompiled and compiled), per input size."""
    from myosight.bench.i3d import benchmark_int8

    if args.device != "cpu":
        return [{"name": "i3d.int8", "value": None, "unit": "",
                 "note": f"not measured: int8 runs on the CPU, not {args.device}"}]
    result = benchmark_int8(repeats=args.repeat or 10)
    if not result["available"]:
        return [{"name": "i3d.int8", "value": None, "unit": "", "note": f"not measured: {result['reason']}"}]
    figures: list[dict] = []
    for size, entry in result["sizes"].items():
        clip = f"i3d.clip_16x{size}"
        for path in ("float", "float_compiled", "int8"):
            if path in entry:
                figures.append({"name": f"{clip}.{path}.p50", "value": entry[path]["median_s"], "unit": "s"})
        relate(figures, f"{clip}.int8.p50", f"{clip}.float.p50")
        figures.append({"name": f"i3d.int8_vs_float.{size}px", "value": entry["int8_vs_float"], "unit": "x faster",
                        "target": ">= 1.8"})
        if "int8_vs_compiled" in entry:
            figures.append({"name": f"i3d.int8_vs_compiled.{size}px", "value": entry["int8_vs_compiled"],
                            "unit": "x faster"})
        figures.append({"name": f"i3d.int8_cosine_min.{size}px", "value": entry["cosine_min"], "unit": "",
                        "target": ">= 0.99"})
    for figure in figures:
        figure.setdefault("note", f"int8: OpenVINO, {result['threads']} threads; float: fast path")
    return figures


def _realtime(args: argparse.Namespace) -> list[dict]:
    from myosight.bench.realtime import benchmark_realtime

    figures = benchmark_realtime(seconds=args.seconds or 60.0, device=args.device)
    for stat in ("latency_p50", "latency_p95"):
        relate(figures, f"realtime.fusion.112px.{stat}", f"realtime.fusion.224px.{stat}")
    relate(figures, "realtime.ring_push.frame_224px.p50", "realtime.ring_push.frame_224px.whole_ring_copy.p50")
    for figure in figures:
        if figure["name"] == "realtime.emg_only.hop50ms.latency_p50":
            figure.update(baseline="the 50-ms hop", ratio=figure["value"] / 50.0)
    return figures


def _gui(args: argparse.Namespace) -> list[dict]:
    try:
        from myosight.bench.gui import benchmark_gui
    except ImportError as error:
        return [{"name": "gui", "value": None, "unit": "", "note": f"MISSING: myosight.bench.gui.benchmark_gui "
                 f"cannot be imported ({error}); install the gui extra or update myosight"}]
    return benchmark_gui()


def _lsl(args: argparse.Namespace) -> list[dict]:
    from myosight.bench.lsl import benchmark_lsl, lsl_figures

    return lsl_figures(benchmark_lsl(seconds=args.seconds or 60.0))


def _train(args: argparse.Namespace) -> list[dict]:
    from myosight.bench.train import benchmark_train, train_figures

    return train_figures(benchmark_train(repeats=args.repeat or 1))


def _calibrate(args: argparse.Namespace) -> list[dict]:
    from myosight.bench.calibrate import CalibrateBenchConfig, benchmark_calibrate, calibrate_figures

    config = CalibrateBenchConfig(live_seconds=args.seconds or 90.0, input_sizes=tuple(args.input_size or (112,)),
                                  work_dir=args.work_dir)
    if args.subject is not None:
        config.subject = args.subject
    result = benchmark_calibrate(config, say=lambda step: print(f"bench calibrate: {step}", file=sys.stderr))
    if args.work_dir is not None:
        (Path(args.work_dir) / "bench-calibrate.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return calibrate_figures(result)


def _people(args: argparse.Namespace) -> list[dict]:
    from myosight.bench.people import (
        EVALUATION_PEOPLE,
        PRETRAINING_PEOPLE,
        PeopleBenchConfig,
        benchmark_people,
        people_figures,
    )

    if args.data is None:
        raise ConfigError("bench people needs the MyoArmbandDataset: --data PATH (its .npz or its original folder)")
    config = PeopleBenchConfig(data=args.data, people=tuple(args.people or EVALUATION_PEOPLE),
                               base_people=tuple(args.base_people or PRETRAINING_PEOPLE), peer=not args.no_peer,
                               work_dir=args.work_dir, top_up=not args.no_top_up)
    if args.speed is not None:
        config.replay_speed = args.speed
    result = benchmark_people(config, say=lambda step: print(f"bench people: {step}", file=sys.stderr),
                              command=command_line(args))
    if args.page is not None:
        from myosight.bench.people import update_page

        print(f"bench people: tables written into {args.page}, results into {update_page(args.page, result)}",
              file=sys.stderr)
    return people_figures(result)


BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[dict]]] = {
    "emg": _emg, "i3d": _i3d, "realtime": _realtime, "gui": _gui, "lsl": _lsl, "train": _train,
    "calibrate": _calibrate, "people": _people,
}
#: Run only when named: they take many minutes.
LONG_BENCHMARKS = ("calibrate", "people")
DEFAULTS = "repetitions: emg 200, i3d 10, train 1; seconds: realtime 60, lsl 60, calibrate 90 (live, per model)"


def relate(figures: list[dict], name: str, baseline: str) -> None:
    """Give figure `name` the ratio of its value to figure `baseline`'s (both from this run), if both exist."""
    by_name = {figure["name"]: figure for figure in figures}
    figure, base = by_name.get(name), by_name.get(baseline)
    if figure is None or base is None or not base.get("value"):
        return
    figure.update(baseline=baseline, ratio=figure["value"] / base["value"])


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the speed of the pipeline's parts on this machine",
        description="Run the benchmarks (all, or the ones named) after a warm-up and print one table of named "
        "figures (median and p95 for latencies, each with its ratio to a baseline measured in the same run) with "
        "the machine's description and the package versions. Targets: sEMG window < 2 ms, offline sEMG pass "
        ">= 1000x real time, I3D 16x224x224 clip <= 0.6 s on a 2-core CPU, LSL: every frame and sample received.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME",
        help=f"benchmarks to run ({', '.join(BENCHMARKS)}; default: all but {', '.join(LONG_BENCHMARKS)}, which "
        "takes about 15 minutes: a whole calibration of an unseen synthetic person, scored before and after)"
    )
    parser.add_argument("--repeat", type=options.int_range(1, 100_000),
                        help=f"repetitions after the warm-up (default per benchmark: {DEFAULTS})")
    parser.add_argument("--seconds", type=options.seconds, help="length of the streaming runs (lsl, realtime)")
    parser.add_argument("--input-size", type=options.pixels, nargs="+", metavar="PIXELS",
                        help="calibrate: the I3D input sizes to calibrate at (default 112)")
    parser.add_argument("--work-dir", type=Path, help="calibrate, people: keep the sessions, bundles and logs here "
                        "(people: a second run into the same folder reuses the imported sessions, the base model and "
                        "the people an earlier run scored with the same settings)")
    parser.add_argument("--subject", metavar="ID",
                        help="calibrate: the unseen synthetic person to calibrate (default S09; never S04, S07, S08, "
                        "the demo model's)")
    parser.add_argument("--data", type=Path, metavar="PATH",
                        help="people: the MyoArmbandDataset (its .npz, or the folder with EvaluationDataset/ and "
                        "PreTrainingDataset/)")
    parser.add_argument("--people", nargs="+", metavar="NAME", help="people: the evaluation people (default all 18)")
    parser.add_argument("--base-people", nargs="+", metavar="NAME",
                        help="people: the pre-training people of the base model (default all 22)")
    parser.add_argument("--no-peer", action="store_true", help="people: leave LibEMG out")
    parser.add_argument("--no-top-up", action="store_true",
                        help="people: leave the next session (a top-up against none and a new calibration) out")
    parser.add_argument("--page", type=Path, metavar="FILE.md",
                        help="people: write the tables into this page (between its bench-people markers, as in "
                        "docs/real-people.md) and the results beside it (results/bench-people.json)")
    parser.add_argument("--speed", type=options.speed, help="people: replay speed of the test rounds (default 16)")
    parser.add_argument("--device", type=options.device, default="cpu",
                        help="i3d, realtime: where the models run (cpu, cuda, cuda:N, mps; default cpu)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--output", type=Path, metavar="FILE.md",
                        help="also write the table of docs/performance.md (date, command, machine, table)")
    parser.set_defaults(handler=run_bench)

    soak = subparsers.add_parser(
        "soak", help="replay a session in a loop for hours of recording through the worker; check memory, "
        "latency and that every window is accounted for",
        description="Replay a session (default: a new synthetic one) in a loop, faster than real time, through "
        "the worker and a headless viewer, for the equivalent of --hours of recording. Reports the worker's "
        "memory (RSS) after the first prediction, after the warm-up and at the end, latency in the first and last "
        "quarter, and whether every window of the replayed span was predicted or reported skipped; writes the "
        "summary as JSON. Exit code 1 when memory grew past the bound or windows are unaccounted for.",
    )
    soak.add_argument("--hours", type=options.float_range(0, 24 * 30), default=2.0,
                      help="hours of recording to replay (default 2)")
    soak.add_argument("--speed", type=options.speed, default=20.0, help="replay speed (default 20)")
    soak.add_argument("--emg-only", action="store_true", help="sEMG only: no video, no I3D")
    soak.add_argument("--model", type=Path, help="model bundle (default: the demo model)")
    soak.add_argument("--session", type=Path, help="session to loop (default: a new synthetic session)")
    soak.add_argument("--hop", type=options.seconds, default=1.0, help="seconds between predictions (default 1)")
    soak.add_argument("--device", type=options.device, default="cpu",
                      help="where the models run: cpu (default), cuda, cuda:N or mps")
    soak.add_argument("--max-rss-growth", type=options.float_range(0, 1e6, open_min=False), default=50.0, metavar="MB",
                      help="memory growth allowed after the warm-up (the first tenth of the run) (default 50 MB)")
    soak.add_argument("--out", type=Path, help="JSON summary file (default soak-<date>-<time>.json)")
    soak.set_defaults(handler=run_soak)


def run_soak(args: argparse.Namespace) -> int:
    from myosight.bench.soak import run_soak_command

    return run_soak_command(args)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str]:
    versions = {}
    for spellings in PACKAGES:
        found = "not installed"
        for name in spellings:
            try:
                found = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
        versions[spellings[0]] = found
    versions["myosight"] = __version__  # the code that ran (an editable install's metadata can be older)
    return versions


def machine_description() -> dict:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": ", ".join(gpus) or None,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "packages": package_versions(),
    }


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    parts = ["myosight", "bench", *args.names]
    if getattr(args, "input_size", None):
        parts += ["--input-size", *map(str, args.input_size)]
    if getattr(args, "subject", None) is not None:
        parts += ["--subject", args.subject]
    if getattr(args, "data", None) is not None:
        parts += ["--data", str(args.data)]
    for option in ("people", "base_people"):
        if getattr(args, option, None):
            parts += [f"--{option.replace('_', '-')}", *getattr(args, option)]
    if getattr(args, "no_peer", False):
        parts.append("--no-peer")
    if getattr(args, "no_top_up", False):
        parts.append("--no-top-up")
    if getattr(args, "speed", None) is not None:
        parts += ["--speed", f"{args.speed:g}"]
    if args.repeat:
        parts += ["--repeat", str(args.repeat)]
    if args.seconds:
        parts += ["--seconds", f"{args.seconds:g}"]
    return " ".join(parts)


def run_bench(args: argparse.Namespace) -> int:
    names = args.names or [name for name in BENCHMARKS if name not in LONG_BENCHMARKS]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if (args.repeat is not None and args.repeat < 1) or (args.seconds is not None and args.seconds <= 0):
        raise ConfigError("--repeat must be at least 1 and --seconds positive")
    from rich.console import Console

    from myosight.models.device import check_device, device_description

    check_device(args.device)
    machine = machine_description()  # before the run: the load average says how busy the machine was
    if args.device != "cpu":
        machine["device"] = device_description(args.device)
    figures: list[dict] = []
    console = Console(stderr=True)
    for name in names:
        with console.status(f"bench {name} ..."):
            figures += BENCHMARKS[name](args)
        console.log(f"bench {name}: done")
    report = {"date": datetime.date.today().isoformat(), "command": command_line(args), "machine": machine,
              "figures": figures}
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(performance_markdown(report), encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        Console().print(_rich_table(report))
    return 0


def _value(figure: dict) -> str:
    value = figure.get("value")
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e12:  # counts: every digit, no exponent
        return str(int(value))
    return f"{value:.4g}"


def _ratio(figure: dict) -> str:
    if figure.get("ratio") is None:
        return ""
    return f"{figure['ratio']:.3g} x {figure['baseline']}"


def _rich_table(report: dict):
    from rich.table import Table

    table = Table(title=f"myosight bench ({report['date']})", caption=machine_line(report["machine"]))
    table.add_column("figure", no_wrap=True)
    for column in ("value", "unit", "ratio to baseline", "target", "note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for figure in report["figures"]:
        table.add_row(figure["name"], _value(figure), figure.get("unit", ""), _ratio(figure),
                      figure.get("target", ""), figure.get("note", ""))
    return table


def machine_line(machine: dict) -> str:
    gpu = machine["gpu"] or "no GPU"
    return (f"{machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), {gpu}, "
            f"torch {machine['packages']['torch']} with {machine['torch_threads']} threads, "
            f"1-min load average {machine['load_avg_1min']} at the start"
            + (f"; models on {machine['device']}" if machine.get("device") else ""))


def performance_markdown(report: dict) -> str:
    """The performance page's table (docs/performance.md), generated from one run."""
    machine = report["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    lines = [
        "## Performance", "",
        f"Generated on {report['date']} by `{report['command']}` (add `--json` for every figure with the machine "
        "description; `ratio` is the figure divided by the baseline named beside it, measured in the same run).",
        "", f"Machine: {machine_line(machine)}; Python {machine['python']} on {machine['system']}.", "",
        f"Packages: {versions}.", "",
        "| figure | value | unit | ratio to baseline | target | note |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    for figure in report["figures"]:
        cells = [figure["name"], _value(figure), figure.get("unit", ""), _ratio(figure), figure.get("target", ""),
                 figure.get("note", "")]
        lines.append("| " + " | ".join(str(cell).replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
