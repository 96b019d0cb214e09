"""How fast I3D runs on this machine, plain and on the fast path, and proof that the fast path is exact.

The live worker must turn every 16-frame clip into a feature faster than the clips arrive, on a 2-core
CPU; these figures say whether it does. The fast path (`myosight.models.i3d.FastI3d`: batch norm folded,
channels-last-3d, torch.compile with frozen weights) is only worth having if it gives the same answers,
so its largest logit difference to the eager model is part of the result.

`benchmark_int8` times the int8 I3D (`myosight.models.i3d_int8`) against the float32 fast path at each input
size (the `--precision int8` acceptance figures: >= 1.8x faster, feature cosine >= 0.99).

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


def _finished(result: Any) -> Any:
    """`result` once its device has finished computing it (CUDA runs asynchronously: a call returns when the
    work is queued, and a timer would measure the queueing)."""
    import torch

    if isinstance(result, torch.Tensor) and result.is_cuda:
        torch.cuda.synchronize(result.device)
    return result


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
    device: str = "cpu",
) -> dict[str, Any]:
    """Time I3D on one (frames x size x size) clip and on batches, on `device`; returns a dict of figures.

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
        model = model.to(device)

        def clip_batch(batch: int) -> torch.Tensor:
            return (torch.rand(batch, 3, frames, size, size, generator=generator) * 2 - 1).to(device)

        load_before = os.getloadavg()[0]
        x = clip_batch(1)
        fast_path = optimize_for_inference(model, use_compile=use_compile)

        def fast(xb: torch.Tensor) -> torch.Tensor:
            return _finished(fast_path(xb))

        start = time.perf_counter()
        fast_logits = fast(x)
        first_call = time.perf_counter() - start

        def eager(xb: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return _finished(model(xb))

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
            "compiled": fast_path.use_compile,
            "device": device,
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


def benchmark_int8(
    sizes: Sequence[int] = (224, 112),
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    frames: int = 16,
    use_compile: bool = True,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The int8 I3D (`models.i3d_int8`) against the float32 fast path, one clip per call, for each input size.

    Per size: latency summaries of `float` (fast path, uncompiled), `float_compiled` (fast path compiled, if
    `use_compile`) and `int8`, all timed in turns on the same synthetic-kitchen clip; `int8_vs_float` and
    `int8_vs_compiled` (how many times faster int8 is); `cosine_min` of the int8 features to float32 over a
    few synthetic clips; `int8_load_s` (the first load, which builds the quantised network if it is not
    cached). Threads: all cores for both (what the live worker gives I3D). Returns {"available": False,
    "reason": ...} where int8 cannot run or the Kinetics weights are not cached.
    """
    import torch

    from myosight.errors import MyosightError
    from myosight.models.i3d import optimize_for_inference
    from myosight.models.i3d_int8 import int8_available, load_int8_i3d, synthetic_clips
    from myosight.models.i3d_weights import load_i3d

    reason = int8_available()
    if reason is not None:
        return {"available": False, "reason": reason}
    try:
        model = load_i3d(cache_dir)
    except MyosightError as error:
        return {"available": False, "reason": str(error)}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        result: dict[str, Any] = {"available": True, "threads": torch.get_num_threads(), "sizes": {}}
        load_before = os.getloadavg()[0]
        for size in sizes:
            clips = synthetic_clips(size, frames, subjects=("S04",))[:4]
            start = time.perf_counter()
            int8 = load_int8_i3d(size, frames, progress=True, cache_dir=cache_dir)
            loaded = time.perf_counter() - start
            paths: dict[str, Any] = {"float": optimize_for_inference(model, use_compile=False)}
            if use_compile:
                paths["float_compiled"] = optimize_for_inference(model, use_compile=True)
            paths["int8"] = int8
            with torch.inference_mode():
                reference = paths["float"].extract_features(clips)
                cosines = torch.nn.functional.cosine_similarity(int8.extract_features(clips), reference, dim=1)
                x = clips[:1]
                calls: dict[str, Callable[[], Any]] = {
                    name: partial(path.extract_features, x) for name, path in paths.items()}
                times = _time_interleaved(calls, repeats, warmup)
            entry: dict[str, Any] = {name: _summary(t) for name, t in times.items()}
            entry.update(clip=f"{frames}x{size}x{size}", int8_load_s=loaded, cosine_min=float(cosines.min()),
                         int8_vs_float=entry["float"]["median_s"] / entry["int8"]["median_s"])
            if "float_compiled" in entry:
                entry["compiled"] = paths["float_compiled"].use_compile
                entry["int8_vs_compiled"] = entry["float_compiled"]["median_s"] / entry["int8"]["median_s"]
            result["sizes"][size] = entry
        result["load_avg_1min"] = [load_before, os.getloadavg()[0]]
        return result
    finally:
        torch.set_num_threads(previous_threads)
