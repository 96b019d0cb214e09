"""`myosight bench`: the project's benchmarks, one table, optional JSON.

Speed targets live here rather than in timed tests. Each benchmark returns a list of figures
(`name`, `value`, `unit`, optional `target` and `note`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable

from myosight.errors import ConfigError


def _emg(args: argparse.Namespace) -> list[dict]:
    from myosight.models.emg_bench import benchmark_emg

    return benchmark_emg(repeats=args.repeat)


def _i3d(args: argparse.Namespace) -> list[dict]:
    from myosight.models.i3d_bench import benchmark_i3d

    result = benchmark_i3d(repeats=min(args.repeat, 10))
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
    for path, by_batch in result["throughput_clips_per_s"].items():
        for batch, rate in by_batch.items():
            figures.append({"name": f"i3d.throughput.{path}.batch{batch}", "value": rate, "unit": "clips/s"})
    return figures


def _realtime(args: argparse.Namespace) -> list[dict]:
    from myosight.realtime.bench import benchmark_realtime

    return benchmark_realtime()


BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[dict]]] = {"emg": _emg, "i3d": _i3d, "realtime": _realtime}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the speed of the pipeline's parts on this machine",
        description="Run the benchmarks (all, or the ones named) after a warm-up and print median/p95 "
        "figures with the machine's description. Targets: sEMG window < 2 ms, offline sEMG pass >= 1000x "
        "real time, I3D 16x224x224 clip <= 0.6 s on a 2-core CPU.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run ({', '.join(BENCHMARKS)}; default: all)"
    )
    parser.add_argument("--repeat", type=int, default=200, help="repetitions after warm-up (default 200)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run_bench)


def machine_description() -> dict:
    import numpy
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }


def run_bench(args: argparse.Namespace) -> int:
    names = args.names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    figures: list[dict] = []
    for name in names:
        figures += BENCHMARKS[name](args)
    report = {"machine": machine_description(), "figures": figures}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="myosight bench", caption=json.dumps(report["machine"]))
    for column in ("figure", "value", "unit", "target"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for figure in figures:
        table.add_row(figure["name"], f"{figure['value']:.4g}", figure["unit"], figure.get("target", ""))
    Console().print(table)
    return 0
