"""How fast I3D runs on this machine, plain and on the fast path, and proof that the fast path is exact.

The live worker must turn every 16-frame clip into a feature faster than the clips arrive, on a 2-core
CPU; these figures say whether it does. The fast path (`myosight.models.i3d.FastI3d`: batch norm folded,
channels-last-3d, torch.compile with frozen weights) is only worth having if it gives the same answers,
so its largest logit difference to the eager model is part of the result.

The figures are wall-clock times and so depend on what else runs: the 1-minute load average before and
after is reported, and a load well above the thread count means the numbers are pessimistic.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


def _time_interleaved(calls: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Time several callables in turns (a, b, a, b, ...), so that a burst of load from other processes
    slows all of them alike instead of spoiling one path's figures."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    return {
        "median_s": float(np.median(times)),
        "p95_s": float(np.percentile(times, 95)),
        "min_s": float(np.min(times)),
        "runs": len(times),
    }


def benchmark_i3d(
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = 2,
    batch_sizes: Sequence[int] = (1, 4, 16),
    frames: int = 16,
    size: int = 224,
    use_compile: bool = True,
    eager_throughput: bool = True,
    cache_dir: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time I3D on one (frames x size x size) clip and on batches; returns a dict of figures.

    Keys: `eager` and `fast` latency summaries of one clip (median_s, p95_s, min_s, runs);
    `fast_first_call_s` (includes compiling); `speedup`; `max_abs_logit_diff` (fast vs eager over every
    batch size); `throughput_clips_per_s` per path and batch size; and the context (weights used,
    threads, torch version, load average before and after). Uses the Kinetics weights when cached, else
    random weights (speed does not depend on the values).
    """
    import torch

    from myosight.errors import MyosightError
    from myosight.models.i3d import InceptionI3d, optimize_for_inference
    from myosight.models.i3d_weights import load_i3d

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        try:
            model, weights = load_i3d(cache_dir), "kinetics400"
        except MyosightError:
            torch.manual_seed(seed)
            model, weights = InceptionI3d().eval(), "random"
        generator = torch.Generator().manual_seed(seed)

        def clip_batch(batch: int) -> torch.Tensor:
            return torch.rand(batch, 3, frames, size, size, generator=generator) * 2 - 1

        load_before = os.getloadavg()[0]
        x = clip_batch(1)
        fast = optimize_for_inference(model, use_compile=use_compile)
        start = time.perf_counter()
        fast_logits = fast(x)
        first_call = time.perf_counter() - start

        def eager(xb: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return model(xb)

        diffs = [float((fast_logits - eager(x)).abs().max())]
        single = _time_interleaved({"eager": lambda: eager(x), "fast": lambda: fast(x)}, repeats, warmup)
        eager_times, fast_times = single["eager"], single["fast"]

        throughput: dict[str, dict[int, float]] = {"fast": {}, "eager": {}} if eager_throughput else {"fast": {}}
        for batch in batch_sizes:
            if batch == 1:
                timed = single
            else:
                xb = clip_batch(batch)
                diffs.append(float((fast(xb) - eager(xb)).abs().max()))  # also compiles this shape
                calls: dict[str, Callable[[], Any]] = {"fast": partial(fast, xb)}
                if eager_throughput:
                    calls["eager"] = partial(eager, xb)
                timed = _time_interleaved(calls, max(2, math.ceil(repeats / batch)), 0)
            for path in throughput:
                throughput[path][batch] = batch / float(np.median(timed[path]))
        eager_summary, fast_summary = _summary(eager_times), _summary(fast_times)
        return {
            "clip": f"{frames}x{size}x{size}",
            "weights": weights,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "compiled": fast.use_compile,
            "eager": eager_summary,
            "fast": fast_summary,
            "fast_first_call_s": first_call,
            "speedup": eager_summary["median_s"] / fast_summary["median_s"],
            "max_abs_logit_diff": max(diffs),
            "throughput_clips_per_s": throughput,
            "load_avg_1min": [load_before, os.getloadavg()[0]],
        }
    finally:
        torch.set_num_threads(previous_threads)
