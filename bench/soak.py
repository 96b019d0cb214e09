"""`myosight soak`: hours of use compressed into minutes, to show the worker neither leaks nor slows down.

A session is replayed in a loop, faster than real time, by a source process (its own LSL outlets, as with
`myosight replay --loop`), into a worker in this process, whose results a headless viewer subscribes to.
Each pass starts a whole number of seconds after the previous one ends, so LSL time keeps increasing and
the worker sees one long recording with a short gap between passes. Checked at the end:

- memory: the worker process's resident size (VmRSS from /proc) when the first prediction is out, after the
  first tenth of the run (the warm-up: I3D's buffers and the feature caches fill to their bounds) and at
  the end; the growth after the warm-up must stay under a bound (memory is flat by design);
- latency: window-ready -> published, in the first and the last quarter of the predictions;
- windows: every window of the replayed span, on the hop grid from the first possible window to the last
  covered one (computed from the replayed time stamps, not from the worker), is predicted or counted as
  skipped by the worker's own report.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

READY_TIMEOUT_S = 60.0


@dataclass
class SoakConfig:
    hours: float = 2.0
    speed: float = 20.0
    emg_only: bool = False
    hop_s: float = 1.0
    device: str = "cpu"
    max_rss_growth_mb: float = 50.0
    drain_s: float = 10.0  # after the last pass: how long to wait for the last windows


@dataclass
class _Progress:
    """What the main loop has seen so far."""

    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: list[tuple[float, float, float | None]] = field(default_factory=list)  # (wall s, worker, source)
    rss_start_mb: float | None = None
    last_window: float | None = None


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident set size of a process in MB, from /proc (None where /proc is not available)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the source process ---------------------------------------------------------------------------------


def replay_passes(session: str, speed: float, source: str, include_video: bool, hours: float, conn) -> None:
    """Child: replay passes back to back for `hours` of recording; report the span, each pass's start, the counts."""
    from myosight.capture.replay import SessionReplay

    replay = SessionReplay(session, speed=speed, source=source, include_video=include_video)
    replay.open()
    period = math.ceil(replay.duration_s) + 1.0
    passes = max(1, math.ceil(hours * 3600 / period))
    conn.send({"first_s": replay.first_s, "period_s": period, "passes": passes,
               "emg": {arm: [float(s.time_s[0]), float(s.time_s[-1])] for arm, s in replay.emg.items() if len(s)}})
    stop = threading.Event()
    if not conn.poll(READY_TIMEOUT_S) or conn.recv() != "go":
        return
    threading.Thread(target=_stop_on_message, args=(conn, stop), daemon=True).start()
    t0 = None
    for index in range(passes):
        if stop.is_set():
            break
        replay.run(stop, start_lsl=None if t0 is None else t0 + index * period)
        t0 = replay._t0 if t0 is None else t0
        conn.send({"pass": index, "t0": replay._t0, "complete": not stop.is_set()})
    conn.send({"done": True, "emg_samples": replay.stats.emg_samples, "frames": replay.stats.frames})
    stop.wait(READY_TIMEOUT_S)  # keep the outlets until the worker has closed its inlets


def _stop_on_message(conn, stop: threading.Event) -> None:
    with contextlib.suppress(EOFError, OSError):
        conn.recv()
    stop.set()


# -- the run --------------------------------------------------------------------------------------------


def window_grid(span: dict, passes: list[dict], rate_hz: float, hop_s: float, sample_s: float) -> tuple[float, float]:
    """End times of the first possible window and of the last one both arms' replayed data cover."""
    first_pass, last_pass = passes[0]["t0"], passes[-1]["t0"]
    first_grid = min(math.ceil((first_pass + t[0] - span["first_s"]) * rate_hz - 1e-6) / rate_hz
                     for t in span["emg"].values())
    last_grid = min(math.floor((last_pass + t[1] - span["first_s"]) * rate_hz + 1e-6) / rate_hz
                    for t in span["emg"].values())
    first_end = math.ceil(first_grid / hop_s - 1e-9) * hop_s + sample_s
    return first_end, math.floor(last_grid / hop_s + 1e-9) * hop_s


def expected_windows(first_end: float, last_end: float, hop_s: float) -> int:
    return max(0, round((last_end - first_end) / hop_s) + 1)


def run_soak(bundle_path: str | Path, session: str | Path, config: SoakConfig, *, progress: bool = True) -> dict:
    """Replay `session` in a loop for `config.hours` of recorded time through a worker; return the summary."""
    from myosight.models.bundle import load_bundle
    from myosight.realtime.headless import HeadlessViewer
    from myosight.realtime.messages import ResultPublisher
    from myosight.realtime.worker import Worker, WorkerConfig

    bundle = load_bundle(bundle_path)
    source = f"soak{uuid.uuid4().hex[:8]}"
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=replay_passes, name="myosight-soak-source",
                              args=(str(session), config.speed, source, not config.emg_only, config.hours, child))
    process.start()
    publisher = worker = viewer = None
    viewer_thread: threading.Thread | None = None
    stop_viewer = threading.Event()
    try:
        if not parent.poll(READY_TIMEOUT_S):
            raise RuntimeError("the soak's replay process did not start")
        span = parent.recv()
        publisher = ResultPublisher("tcp://127.0.0.1:0")
        # A fixed hop: the soak accounts for every window of the grid (a coarser hop would leave some out).
        worker = Worker(bundle, WorkerConfig(source=source, emg_only=config.emg_only, hop_s=config.hop_s,
                                             device=config.device, adapt_hop=False), publisher)
        viewer = HeadlessViewer(publisher.address)
        viewer_thread = threading.Thread(target=viewer.run, args=(stop_viewer,), kwargs={"live": False}, daemon=True)
        viewer_thread.start()
        parent.send("go")
        started = time.monotonic()
        grid = (bundle.emg_config.rate_hz, config.hop_s, bundle.geometry.sample_seconds)
        assert process.pid is not None  # started above
        state, passes, counts = _drive(worker, parent, process.pid, config, span, grid, progress)
        wall = time.monotonic() - started
        stop_viewer.set()
        viewer_thread.join(timeout=5)
        summary = _summary(config, grid, session, span, passes, counts, state, worker, viewer, wall)
    finally:
        stop_viewer.set()
        if viewer_thread is not None:  # it polls the viewer's socket: done before the socket closes (Ctrl-C)
            viewer_thread.join(timeout=5)
        if worker is not None:
            worker.close()  # inlets first, while the outlets exist
        if viewer is not None:
            viewer.close()
        if publisher is not None:
            publisher.close()
        with contextlib.suppress(OSError):
            parent.send("exit")
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    return summary


def _drive(worker, conn, source_pid: int, config: SoakConfig, span: dict, grid: tuple, progress: bool):
    """Step the worker until the source is done and the last window is out (or `drain_s` passed); sample the
    RSS of the worker (this process) and of the source once a second."""
    from myosight.progress import ProgressBar

    state, passes, counts = _Progress(), [], None
    next_sample = drain_until = 0.0
    first_window = None
    total = round(span["passes"] * span["period_s"])
    # a bar on a terminal only (a log file would get one line per refresh)
    with ProgressBar(total, desc="soak (recorded seconds)", unit="s", enabled=progress) as bar:
        while True:
            now = time.monotonic()
            for prediction in worker.step():
                state.latencies_ms.append(1e3 * worker.latencies[-1])
                state.last_window = prediction.window_end
                first_window = first_window if first_window is not None else prediction.window_end
                if state.rss_start_mb is None:
                    state.rss_start_mb = rss_mb()
                bar.update(max(0, min(round(prediction.window_end - first_window), total) - bar.n))
            while conn.poll(0):
                message = conn.recv()
                if "pass" in message:
                    passes.append(message)
                elif message.get("done"):
                    counts, drain_until = message, now + config.drain_s
            if now >= next_sample:
                next_sample = now + 1.0
                state.rss_mb.append((now, rss_mb() or math.nan, rss_mb(source_pid)))
            if counts is not None and (now > drain_until or (_caught_up(state, span, passes, grid)
                                                             and _all_samples_in(worker, counts))):
                return state, passes, counts
            time.sleep(0.002)


def _caught_up(state: _Progress, span: dict, passes: list[dict], grid: tuple) -> bool:
    """True once the worker has predicted the last window the replayed data cover."""
    complete = [p for p in passes if p["complete"]]
    if state.last_window is None or not complete:
        return False
    return state.last_window >= window_grid(span, complete, *grid)[1] - 1e-6


def _all_samples_in(worker, counts: dict) -> bool:
    """True once the worker's inlets have every EMG sample the source sent."""
    return sum(inlet.health.samples for inlet in worker.emg_inlets.values()) >= sum(counts["emg_samples"].values())


def _quarter(values: list[float], which: str) -> dict:
    quarter = max(1, len(values) // 4)
    part = np.asarray(values[:quarter] if which == "first" else values[-quarter:])
    if not len(part):
        return {"p50": math.nan, "p95": math.nan, "count": 0}
    return {"p50": float(np.percentile(part, 50)), "p95": float(np.percentile(part, 95)), "count": len(part)}


def _summary(config, grid, session, span, passes, counts, state, worker, viewer, wall) -> dict:
    complete = [p for p in passes if p["complete"]]
    expected = expected_windows(*window_grid(span, complete, *grid), config.hop_s) if complete else 0
    rss_end = rss_mb() or math.nan  # nan where /proc is not available
    sources = [s for _t, _w, s in state.rss_mb if s is not None]
    warm = state.rss_mb[len(state.rss_mb) // 10][1] if state.rss_mb else math.nan
    summary = {
        "config": asdict(config), "bundle": str(worker.bundle.metadata.get("head", "")), "session": str(session),
        "mode": "emg" if config.emg_only or worker.video_inlet is None else "fusion",
        "passes": len(complete), "replayed_hours": len(complete) * span["period_s"] / 3600, "wall_s": wall,
        "windows": {"expected": expected, "predicted": worker.windows_predicted, "skipped": worker.windows_skipped,
                    "unaccounted": expected - worker.windows_predicted - worker.windows_skipped,
                    "received_by_viewer": viewer.predictions},
        "emg_samples": {"sent": int(sum(counts["emg_samples"].values())),
                        "received": int(sum(i.health.samples for i in worker.emg_inlets.values()))},
        "rss_mb": {"start": state.rss_start_mb, "end": rss_end, "max": max(w for _t, w, _s in state.rss_mb),
                   "growth": rss_end - state.rss_start_mb if state.rss_start_mb else math.nan,
                   "after_warmup": warm, "growth_after_warmup": rss_end - warm,
                   "bound": config.max_rss_growth_mb, "source_start": sources[0] if sources else None,
                   "source_end": sources[-1] if sources else None, "deciles": _deciles(state.rss_mb)},
        "latency_ms": {"first_quarter": _quarter(state.latencies_ms, "first"),
                       "last_quarter": _quarter(state.latencies_ms, "last")},
    }
    summary["problems"] = _problems(summary)
    summary["ok"] = not summary["problems"]
    return summary


def _deciles(samples: list[tuple[float, float, float | None]]) -> list[dict]:
    """The worker's and the source's RSS at every tenth of the run: flat, or still growing at the end?"""
    if not samples:
        return []
    picks = sorted({round(i * (len(samples) - 1) / 10) for i in range(11)})
    start = samples[0][0]
    return [{"wall_s": round(wall - start, 1), "worker_mb": round(worker, 1),
             "source_mb": None if source is None else round(source, 1)}
            for wall, worker, source in (samples[i] for i in picks)]


def _problems(summary: dict) -> list[str]:
    problems = []
    windows, rss = summary["windows"], summary["rss_mb"]
    if windows["unaccounted"] != 0:
        problems.append(f"{windows['unaccounted']} of {windows['expected']} windows neither predicted nor skipped")
    if not rss["growth_after_warmup"] <= rss["bound"]:
        problems.append(f"memory grew by {rss['growth_after_warmup']:.1f} MB after the warm-up "
                        f"(bound {rss['bound']:g} MB)")
    if summary["passes"] == 0:
        problems.append("no complete pass of the session was replayed")
    return problems


# -- command --------------------------------------------------------------------------------------------


def soak_session(directory: Path, bundle_classes: list[str], video: bool) -> Path:
    """A synthetic session (about two minutes) of the bundle's classes that the generator knows."""
    from myosight.data.activities import ACTIVITIES
    from myosight.data.synth import SynthConfig, write_session

    classes = tuple(c for c in bundle_classes if c in ACTIVITIES)[:8] or ACTIVITIES[:8]
    config = SynthConfig(subjects=("S09",), actions_per_class=1, seconds_per_action=(10.0, 14.0), classes=classes,
                         write_video=video, seed=21)
    return write_session(config, directory, "S09", progress=False).hdf5_path


def summary_lines(summary: dict) -> list[str]:
    windows, rss, latency = summary["windows"], summary["rss_mb"], summary["latency_ms"]
    first, last = latency["first_quarter"], latency["last_quarter"]
    return [
        f"soak: {summary['replayed_hours']:.2f} h of recording in {summary['wall_s'] / 60:.1f} min "
        f"({summary['passes']} passes, {summary['mode']} mode, speed {summary['config']['speed']:g}x)",
        f"windows: {windows['expected']} expected = {windows['predicted']} predicted + {windows['skipped']} skipped"
        f" + {windows['unaccounted']} unaccounted; {windows['received_by_viewer']} predictions reached the viewer",
        f"EMG samples: {summary['emg_samples']['sent']} sent, {summary['emg_samples']['received']} received",
        f"worker RSS: {rss['start']:.1f} MB after the first prediction, {rss['after_warmup']:.1f} MB after the "
        f"first tenth of the run, {rss['end']:.1f} MB at the end (growth after the warm-up "
        f"{rss['growth_after_warmup']:+.1f} MB, bound {rss['bound']:g} MB; max {rss['max']:.1f} MB); by tenths of the "
        f"run: {' '.join(str(round(d['worker_mb'])) for d in rss['deciles'])} MB",
        f"latency median / p95: first quarter {first['p50']:.1f} / {first['p95']:.1f} ms, "
        f"last quarter {last['p50']:.1f} / {last['p95']:.1f} ms",
        "result: " + ("OK" if summary["ok"] else "FAILED: " + "; ".join(summary["problems"])),
    ]


def run_soak_command(args) -> int:
    from myosight.errors import ConfigError
    from myosight.models.bundle_header import read_bundle_metadata

    if args.hours <= 0 or args.speed <= 0 or args.hop <= 0:
        raise ConfigError("--hours, --speed and --hop must be positive")
    if args.model is None:
        from myosight.training.demo_model import demo_bundle

        args.model = demo_bundle()
    from myosight.models.device import check_device

    config = SoakConfig(hours=args.hours, speed=args.speed, emg_only=args.emg_only, hop_s=args.hop,
                        device=check_device(args.device), max_rss_growth_mb=args.max_rss_growth)
    with tempfile.TemporaryDirectory(prefix="myosight-soak-") as tmp:
        session = args.session or soak_session(Path(tmp), read_bundle_metadata(args.model)["classes"],
                                               video=not args.emg_only)
        summary = run_soak(args.model, session, config)
    for line in summary_lines(summary):
        print(line)
    out = args.out or Path(f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.write_text(json.dumps(summary, indent=2))
    print(f"summary written to {out}")
    return 0 if summary["ok"] else 1
