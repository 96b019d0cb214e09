"""Benchmark of the sEMG pipeline: one live 5-s window, one live clip, and the offline pass."""

from __future__ import annotations

import time

import numpy as np

from myosight.models.clips import ClipGeometry, clip_segments
from myosight.models.emg_pipeline import (
    EmgNormalisation,
    EmgPipelineConfig,
    EmgStreamProcessor,
    clip_spectrograms,
    process_recording,
)


def myo_like_stream(seconds: float, rate_hz: float, rng: np.random.Generator, start_s: float = 1.7e9):
    """Int8-range noise with the Myo's timing: pairs of samples sharing one jittered timestamp."""
    pairs = int(seconds * rate_hz / 2)
    stamps = start_s + np.cumsum(rng.normal(2 / rate_hz, 0.002, pairs).clip(0.001))
    time_s = np.repeat(stamps, 2)
    data = np.clip(np.round(rng.normal(0, 25, (2 * pairs, 8))), -128, 127)
    return time_s, data


def _percentiles(samples_s: list[float]) -> tuple[float, float]:
    values = np.asarray(samples_s) * 1e3
    return float(np.median(values)), float(np.percentile(values, 95))


def benchmark_emg(repeats: int = 200, warmup: int = 20, offline_minutes: float = 10.0) -> list[dict]:
    """Figures for `myosight bench emg` (latencies in ms, the offline real-time factor)."""
    config, geometry = EmgPipelineConfig(), ClipGeometry()
    rng = np.random.default_rng(0)
    normalisation = EmgNormalisation.full_scale()
    total_s = (warmup + repeats) * geometry.sample_seconds + 2
    streams = [myo_like_stream(total_s, config.rate_hz, rng) for _ in range(2)]
    processors = [EmgStreamProcessor(config, normalisation.arm(i)) for i in range(2)]
    tracks: list = [None, None]

    def push_until(until_s: float, cursor: list[int]) -> None:
        for arm, (time_s, data) in enumerate(streams):
            stop = int(np.searchsorted(time_s, until_s))
            tracks[arm] = processors[arm].push(time_s[cursor[arm]:stop], data[cursor[arm]:stop])
            cursor[arm] = stop

    window_times, clip_times = [], []
    cursor = [0, 0]
    t0 = streams[0][0][0] + 1.0
    for i in range(warmup + repeats):  # one 5-s window of both arms per iteration
        end = t0 + (i + 1) * geometry.sample_seconds
        started = time.perf_counter()
        push_until(end, cursor)
        clip_spectrograms(tracks, clip_segments(end - geometry.sample_seconds, geometry), config)
        if i >= warmup:
            window_times.append(time.perf_counter() - started)
    processors = [EmgStreamProcessor(config, normalisation.arm(i)) for i in range(2)]
    cursor = [0, 0]
    for i in range(warmup + repeats):  # one new 1-s clip per iteration (the live hop)
        end = t0 + (i + 1) * geometry.clip_seconds
        started = time.perf_counter()
        push_until(end, cursor)
        clip_spectrograms(tracks, np.array([[end - geometry.clip_seconds, end]]), config)
        if i >= warmup:
            clip_times.append(time.perf_counter() - started)

    offline_s = offline_minutes * 60
    session = [myo_like_stream(offline_s, config.rate_hz, rng) for _ in range(2)]
    started = time.perf_counter()
    offline_tracks = [process_recording(t, d, config, normalisation.arm(i))[0] for i, (t, d) in enumerate(session)]
    first = session[0][0][0] + 1.0
    for k in range(int((offline_s - 2) // geometry.sample_seconds)):
        clip_spectrograms(offline_tracks, clip_segments(first + k * geometry.sample_seconds, geometry), config)
    offline_elapsed = time.perf_counter() - started

    window_p50, window_p95 = _percentiles(window_times)
    clip_p50, clip_p95 = _percentiles(clip_times)
    return [
        {"name": "emg.window_5s_16ch.p50", "value": window_p50, "unit": "ms", "target": "< 2 ms"},
        {"name": "emg.window_5s_16ch.p95", "value": window_p95, "unit": "ms"},
        {"name": "emg.new_clip_1s_16ch.p50", "value": clip_p50, "unit": "ms"},
        {"name": "emg.new_clip_1s_16ch.p95", "value": clip_p95, "unit": "ms"},
        {"name": f"emg.offline_{offline_minutes:g}min_session", "value": offline_elapsed, "unit": "s"},
        {
            "name": "emg.offline_realtime_factor",
            "value": offline_s / offline_elapsed,
            "unit": "x real time",
            "target": ">= 1000x",
        },
    ]
