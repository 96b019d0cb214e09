"""`myosight bench lsl`: can LSL on this machine carry the live streams without loss?

A separate source process publishes the camera stream at the model's frame size (224 x 224 x 3 uint8 at
30 fps) and both EMG streams (8 channels at 200 Hz, in 20-ms chunks as the Myo delivers them), with the
project's own stream definitions, on an absolute schedule. This process pulls them as the worker does
(non-blocking pulls into preallocated buffers, idling a millisecond when nothing came) and checks every
frame and sample by the sequence number it carries. Reported: sent and received counts, sequence gaps,
the source's CPU share (its own `os.times`, so liblsl's sender threads count too), the receiver's, and
the inlet-side latency (receipt minus time stamp, one clock on one host; for EMG, of each chunk's newest
sample, which is stamped with its push time).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from myosight.constants import ARMS

FRAME_SIZE = 224
FPS = 30.0
EMG_RATE = 200.0
EMG_CHUNK = 4  # samples per push: 20 ms at 200 Hz

READY_TIMEOUT_S = 30.0


@dataclass
class _Tally:
    """What the receiver saw on one stream."""

    received: int = 0
    seen: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)

    def add(self, counters: np.ndarray, stamps: np.ndarray, now: float, pushed: np.ndarray) -> None:
        """`pushed` marks the items stamped with their push time (the last sample of an EMG chunk)."""
        self.received += len(counters)
        self.seen.update(int(c) for c in counters)
        self.latencies.extend((now - stamps[pushed]).tolist())

    def gaps(self, sent: int) -> int:
        return sent - len(self.seen & set(range(sent)))


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def source_process(source: str, seconds: float, conn) -> None:
    """Child: open the outlets, wait for 'go', publish for `seconds`, report counts and CPU, wait for 'exit'."""
    import pylsl

    from myosight.capture.streams import emg_stream_info, open_outlet, video_stream_info

    video = open_outlet(video_stream_info(FRAME_SIZE, FPS, source), max_buffered_s=4)
    emg = {arm: open_outlet(emg_stream_info(arm, source, EMG_RATE)) for arm in ARMS}
    conn.send("ready")
    if not conn.poll(READY_TIMEOUT_S) or conn.recv() != "go":
        return
    frame = np.random.default_rng(0).integers(0, 256, FRAME_SIZE * FRAME_SIZE * 3, dtype=np.uint8)
    frames, samples = round(seconds * FPS), round(seconds * EMG_RATE / EMG_CHUNK) * EMG_CHUNK
    cpu0, start = _cpu_seconds(), pylsl.local_clock()
    sent_frames = sent_samples = late = 0
    while sent_frames < frames or sent_samples < samples:
        frame_due = start + sent_frames / FPS if sent_frames < frames else math.inf
        emg_due = start + (sent_samples + EMG_CHUNK - 1) / EMG_RATE if sent_samples < samples else math.inf
        due = min(frame_due, emg_due)
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)  # pacing the sender on its schedule, not synchronisation
        elif -wait > 1 / FPS:
            late += 1
        if frame_due <= emg_due:
            frame[:4] = np.frombuffer(np.uint32(sent_frames).tobytes(), np.uint8)
            video.push_chunk(frame.reshape(1, -1).view(np.int8), frame_due)  # push_sample would copy per value
            sent_frames += 1
        else:
            index = sent_samples + np.arange(EMG_CHUNK)
            chunk = np.zeros((EMG_CHUNK, 8), np.float32)
            chunk[:, 0] = index  # the sample's sequence number (exact in float32 below 2**24)
            stamps = (start + index / EMG_RATE).tolist()
            for outlet in emg.values():
                outlet.push_chunk(chunk, stamps)
            sent_samples += EMG_CHUNK
    wall = pylsl.local_clock() - start
    conn.send({"frames": sent_frames, "samples": sent_samples, "cpu_s": _cpu_seconds() - cpu0, "wall_s": wall,
               "late": late})
    conn.poll(READY_TIMEOUT_S + seconds)  # keep the outlets until the receiver has closed its inlets


class _Receiver:
    """The worker's side: inlets found by source id, pulled without blocking."""

    def __init__(self, source: str) -> None:
        import pylsl

        from myosight.capture.inlets import resolve
        from myosight.capture.streams import StreamNames

        names = StreamNames(source)
        self.inlets = {}
        for kind in ("video", *(f"emg-{arm}" for arm in ARMS)):
            inlet = pylsl.StreamInlet(resolve(names.source_id(kind), READY_TIMEOUT_S), max_buflen=10)
            inlet.open_stream(timeout=READY_TIMEOUT_S)
            inlet.info(timeout=READY_TIMEOUT_S)
            self.inlets[kind] = inlet
        self.buffers = {"video": np.empty((8, FRAME_SIZE * FRAME_SIZE * 3), np.int8)}
        self.buffers.update({f"emg-{arm}": np.empty((256, 8), np.float32) for arm in ARMS})
        self.tallies = {kind: _Tally() for kind in self.inlets}

    def pull_all(self) -> int:
        import pylsl

        got = 0
        for kind, inlet in self.inlets.items():
            buffer = self.buffers[kind]
            _, stamps = inlet.pull_chunk(timeout=0.0, max_samples=len(buffer), dest_obj=buffer)
            n = len(stamps)
            if not n:
                continue
            now = pylsl.local_clock()
            if kind == "video":
                counters = buffer[:n, :4].view(np.uint8).copy().view("<u4").ravel().astype(np.int64)
            else:
                counters = buffer[:n, 0].astype(np.int64)
            pushed = (counters % EMG_CHUNK == EMG_CHUNK - 1) if kind != "video" else np.ones(n, bool)
            self.tallies[kind].add(counters, np.asarray(stamps), now, pushed)
            got += n
        return got

    def close(self) -> None:
        for inlet in self.inlets.values():
            inlet.close_stream()


def benchmark_lsl(seconds: float = 60.0) -> dict:
    """Publish `seconds` of video + 2 x EMG from a child process and receive them here; return the counts."""
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    source = f"lslbench{uuid.uuid4().hex[:8]}"
    process = context.Process(target=source_process, args=(source, seconds, child), name="myosight-lsl-bench")
    process.start()
    receiver = None
    try:
        if not parent.poll(READY_TIMEOUT_S) or parent.recv() != "ready":
            raise RuntimeError("the LSL bench source did not start")
        receiver = _Receiver(source)
        parent.send("go")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = _receive_until_sent(receiver, parent, seconds)
        receiver_cpu, receiver_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        if receiver is not None:
            receiver.close()  # inlets first, while the outlets still exist
        with contextlib.suppress(OSError):
            parent.send("exit")
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    return _summary(receiver, sent, receiver_cpu / receiver_wall)


def _receive_until_sent(receiver: _Receiver, conn, seconds: float) -> dict:
    """Pull until the source reports its totals and everything sent has arrived (or 5 s more passed)."""
    sent: dict | None = None
    deadline = time.monotonic() + seconds + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not receiver.pull_all():
            time.sleep(0.001)
        if sent is None and conn.poll(0):
            sent = conn.recv()
            deadline = min(deadline, time.monotonic() + 5.0)
        if sent is not None and _complete(receiver, sent):
            break
    if sent is None:
        raise RuntimeError(f"the LSL bench source sent nothing back within {seconds + READY_TIMEOUT_S:.0f} s")
    return sent


def _complete(receiver: _Receiver, sent: dict) -> bool:
    tallies = receiver.tallies
    return tallies["video"].received >= sent["frames"] and all(
        tallies[f"emg-{arm}"].received >= sent["samples"] for arm in ARMS)


def _summary(receiver: _Receiver, sent: dict, receiver_cpu_share: float) -> dict:
    video = receiver.tallies["video"]
    emg = [receiver.tallies[f"emg-{arm}"] for arm in ARMS]
    emg_latency = np.concatenate([np.asarray(t.latencies) for t in emg]) * 1e3
    video_latency = np.asarray(video.latencies) * 1e3
    return {
        "seconds": sent["wall_s"], "frame_size": FRAME_SIZE, "fps": FPS, "emg_rate_hz": EMG_RATE,
        "frames_sent": sent["frames"], "frames_received": video.received, "frame_gaps": video.gaps(sent["frames"]),
        "emg_samples_sent": 2 * sent["samples"], "emg_samples_received": sum(t.received for t in emg),
        "emg_gaps": sum(t.gaps(sent["samples"]) for t in emg), "source_late_events": sent["late"],
        "source_cpu_share": sent["cpu_s"] / sent["wall_s"], "receiver_cpu_share": receiver_cpu_share,
        "video_latency_p50_ms": float(np.percentile(video_latency, 50)),
        "video_latency_p95_ms": float(np.percentile(video_latency, 95)),
        "emg_latency_p50_ms": float(np.percentile(emg_latency, 50)),
        "emg_latency_p95_ms": float(np.percentile(emg_latency, 95)),
        "video_megabytes_per_s": video.received * FRAME_SIZE * FRAME_SIZE * 3 / 1e6 / sent["wall_s"],
    }


def lsl_figures(result: dict) -> list[dict]:
    """The `myosight bench lsl` rows of one run."""
    cores = os.cpu_count() or 1
    fps = result["frames_received"] / result["seconds"]
    return [
        {"name": "lsl.video_224x224x3.frames_sent", "value": result["frames_sent"], "unit": "frames",
         "note": f"{result['seconds']:.0f} s at {FPS:g} fps"},
        {"name": "lsl.video_224x224x3.frames_received", "value": result["frames_received"], "unit": "frames",
         "target": "= sent", "baseline": "lsl.video_224x224x3.frames_sent",
         "ratio": result["frames_received"] / max(result["frames_sent"], 1)},
        {"name": "lsl.video_224x224x3.received_fps", "value": fps, "unit": "1/s", "baseline": f"{FPS:g} fps",
         "ratio": fps / FPS},
        {"name": "lsl.emg_2x8ch_200hz.samples_sent", "value": result["emg_samples_sent"], "unit": "samples"},
        {"name": "lsl.emg_2x8ch_200hz.samples_received", "value": result["emg_samples_received"], "unit": "samples",
         "target": "= sent", "baseline": "lsl.emg_2x8ch_200hz.samples_sent",
         "ratio": result["emg_samples_received"] / max(result["emg_samples_sent"], 1)},
        {"name": "lsl.sequence_gaps", "value": result["frame_gaps"] + result["emg_gaps"], "unit": "items",
         "target": "0"},
        {"name": "lsl.video.latency_p50", "value": result["video_latency_p50_ms"], "unit": "ms"},
        {"name": "lsl.video.latency_p95", "value": result["video_latency_p95_ms"], "unit": "ms"},
        {"name": "lsl.emg.latency_p50", "value": result["emg_latency_p50_ms"], "unit": "ms"},
        {"name": "lsl.emg.latency_p95", "value": result["emg_latency_p95_ms"], "unit": "ms"},
        {"name": "lsl.source_cpu_share", "value": 100 * result["source_cpu_share"], "unit": "% of one core",
         "note": f"{100 * result['source_cpu_share'] / cores:.1f} % of the machine's {cores} cores"},
        {"name": "lsl.receiver_cpu_share", "value": 100 * result["receiver_cpu_share"], "unit": "% of one core"},
        {"name": "lsl.video_throughput", "value": result["video_megabytes_per_s"], "unit": "MB/s"},
    ]
