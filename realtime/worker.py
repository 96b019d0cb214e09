"""The live worker: LSL inlets -> buffers -> sliding 5-clip windows -> predictions on ZeroMQ.

Windows end on a fixed grid of the LSL clock (`hop_s`, default one clip). A window is ready when every
live stream it needs has data past its end (a lost stream is not waited for). The worker always predicts
the newest ready window: when inference is slower than the data (I3D on a small CPU), the windows in
between are skipped and counted, and only the newest clip's I3D feature is computed (older clips without
one reuse their neighbour's and are counted), so predictions stay current and nothing queues without bound.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from myosight.capture.inlets import LiveInlet, refuse_shared_source, resolve
from myosight.capture.streams import StreamNames, parse_marker
from myosight.constants import ARMS
from myosight.errors import StreamError
from myosight.models.bundle import Bundle
from myosight.models.clips import ClipGeometry, resolve_geometry
from myosight.processes import RunSpec
from myosight.realtime.live import EmgLiveBuffer, FrameRing, LivePredictor, Prediction
from myosight.realtime.messages import (
    HealthMessage,
    KineticsTop,
    PredictionMessage,
    ResultPublisher,
    StreamStatus,
)

log = logging.getLogger(__name__)


@dataclass
class WorkerConfig:
    source: str = "synthetic"  # the LSL source name: streams are found by `myosight-<source>-<kind>`
    hop_s: float = 1.0
    emg_only: bool = False
    input_size: int | None = None  # I3D input size; None: the bundle's (112 is the reduced-resolution mode)
    geometry: ClipGeometry | None = None  # resolved by the caller; None: resolved here from the bundle
    resolve_timeout_s: float = 10.0
    lost_after_s: float = 1.0
    health_every_s: float = 1.0
    use_compile: bool = False  # torch.compile: ~1.8x faster I3D, but 10-30 s of compiling at start


class LabelTrack:
    """The true activity at a time, from a replay's marker stream ("<activity>|Start" / "|Stop")."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str | None]] = []

    def push(self, time_s: np.ndarray, markers: list) -> None:
        for t, marker in zip(time_s, markers, strict=True):
            parsed = parse_marker(marker[0] if isinstance(marker, list | tuple | np.ndarray) else marker)
            if parsed is not None and parsed.kind in ("Start", "Stop"):
                self.events.append((float(t), parsed.activity if parsed.kind == "Start" else None))
        self.events = self.events[-200:]

    def at(self, time_s: float) -> str | None:
        current = None
        for t, label in self.events:
            if t > time_s:
                break
            current = label
        return current


class Worker:
    """Resolves the source's streams, runs the live loop, publishes predictions and health."""

    def __init__(self, bundle: Bundle, config: WorkerConfig, publisher: ResultPublisher) -> None:
        self.bundle, self.config, self.publisher = bundle, config, publisher
        names = StreamNames(config.source)
        self.emg_inlets: dict[str, LiveInlet] = {}
        self.missing_arms: list[str] = []
        for arm in ARMS:
            try:
                info = resolve(names.source_id(f"emg-{arm}"), config.resolve_timeout_s)
            except StreamError:
                self.missing_arms.append(arm)  # a one-arm set-up: that arm's channels stay zero
                log.warning("no %s-arm EMG stream from source '%s': its channels are zero", arm, config.source)
                continue
            self.emg_inlets[arm] = LiveInlet(info, channels=8, lost_after_s=config.lost_after_s)
        if not self.emg_inlets:
            raise StreamError(
                f"no EMG stream from source '{config.source}' (looked for myosight-{config.source}-emg-*)"
            )
        self.geometry = config.geometry or resolve_geometry(bundle.geometry, config.input_size)
        if self.geometry.input_size != bundle.geometry.input_size:
            log.warning("I3D runs at %d px but the bundle's RGB features were extracted at %d px",
                        self.geometry.input_size, bundle.geometry.input_size)
        self.video_inlet: LiveInlet | None = None
        self.frames: FrameRing | None = None
        i3d = None
        if not config.emg_only and "rgb" in bundle.modalities:
            info = resolve(names.source_id("video"), config.resolve_timeout_s)
            self.video_inlet = LiveInlet(info, lost_after_s=max(config.lost_after_s, 1.0), max_chunk=64)
            self.frames = FrameRing(_checked_frame_shape(self.video_inlet, self.geometry))
            i3d = load_live_i3d(bundle, self.geometry, use_compile=config.use_compile)
        self.label_inlet: LiveInlet | None = None
        try:
            self.label_inlet = LiveInlet(resolve(names.source_id("labels"), 0.5), lost_after_s=1e9)
        except StreamError:
            log.info("no label stream from source '%s': predictions carry no true label", config.source)
        self._refuse_shared_source(names)
        self.labels = LabelTrack()
        self.emg = EmgLiveBuffer(bundle)
        self.predictor = LivePredictor(bundle, self.emg, self.frames, i3d, self.geometry)
        self.last_window: float | None = None
        self._first_time: float | None = None
        self.windows_predicted = 0
        self.windows_skipped = 0
        self.latencies: deque[float] = deque(maxlen=200)
        self.compute_times: deque[float] = deque(maxlen=200)
        self._ready_since: dict[float, float] = {}
        self._next_health = 0.0
        self.nonfinite_predictions = 0  # windows withheld because their probabilities were not finite

    def _refuse_shared_source(self, names: StreamNames) -> None:
        """Two sources under one name would feed this worker one arm of each session: refuse (inlets closed)."""
        inlets = [*self.emg_inlets.values(), self.video_inlet, self.label_inlet]
        try:
            refuse_shared_source(names.source, [inlet.source_id for inlet in inlets if inlet is not None])
        except StreamError:
            self.close()
            raise

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event, max_windows: int | None = None) -> None:
        while not stop.is_set():
            produced = self.step()
            if max_windows is not None and self.windows_predicted >= max_windows:
                return
            if not produced:
                stop.wait(0.005)

    def step(self) -> list[Prediction]:
        """Pull every inlet once; predict the newest ready window if there is a new one."""
        self._pull()
        now = time.monotonic()
        predictions = []
        ready_end = self._newest_ready_window()
        if ready_end is not None:
            self._ready_since.setdefault(ready_end, now)
            previous = self.last_window
            if previous is None:  # windows that became ready before the first prediction count as skipped
                previous = math.ceil(self._first_data_time() / self.config.hop_s - 1e-9) * self.config.hop_s \
                    + self.bundle.geometry.sample_seconds - self.config.hop_s
            self.windows_skipped += max(0, round((ready_end - previous) / self.config.hop_s) - 1)
            prediction = self.predictor.predict(ready_end)
            self.last_window = ready_end
            self.windows_predicted += 1
            latency = time.monotonic() - self._ready_since.pop(ready_end)
            self.latencies.append(latency)
            self.compute_times.append(prediction.compute_s)
            self._publish(prediction, latency)
            predictions.append(prediction)
        if now >= self._next_health:
            self._next_health = now + self.config.health_every_s
            self.publisher.publish(self.health())
        return predictions

    def _pull(self) -> None:
        for arm, inlet in self.emg_inlets.items():
            stamps, samples = inlet.pull()
            if len(stamps):
                self.emg.push(arm, stamps, samples)
        if self.video_inlet is not None:
            self.video_inlet.pull_into(self.frames.push)
        if self.label_inlet is not None:
            stamps, markers = self.label_inlet.pull_markers()
            self.labels.push(stamps, markers)

    def _newest_ready_window(self) -> float | None:
        covered = [self.emg.covered_until(arm) for arm, inlet in self.emg_inlets.items()
                   if not inlet.health.lost]
        covered = [c for c in covered if c is not None]
        if not covered:
            return None
        until = min(covered)
        if self.video_inlet is not None and not self.video_inlet.health.lost and self.frames.latest_time is not None:
            until = min(until, self.frames.latest_time)
        hop = self.config.hop_s
        end = math.floor(until / hop + 1e-9) * hop
        first_possible = self._first_data_time() + self.bundle.geometry.sample_seconds
        if end < first_possible or (self.last_window is not None and end <= self.last_window + 1e-9):
            return None
        return end

    def _first_data_time(self) -> float:
        """Time of the first EMG sample seen (remembered: the ring forgets old samples)."""
        if self._first_time is None:
            starts = [t for t in (self.emg.oldest(arm) for arm in self.emg_inlets) if t is not None]
            if not starts:
                return math.inf
            self._first_time = min(starts)
        return self._first_time

    # -- output ------------------------------------------------------------------------------------
    def _publish(self, p: Prediction, latency: float) -> None:
        """Send the prediction as a typed message: the optional parts only where they exist (clip attention of
        a self-attention head, the newest clip's Kinetics top-3 and spectrogram, the replayed true label).
        A prediction with non-finite probabilities is withheld (its label would mean nothing) and counted in health."""
        if not _finite_prediction(p):
            self.nonfinite_predictions += 1
            if self.nonfinite_predictions == 1:
                log.error("window ending at %.2f s: the model gives NaN or infinite probabilities; no prediction is "
                          "published for such windows (counted in health as nonfinite_predictions)", p.window_end)
            return
        classes = list(self.bundle.classes)
        kinetics = None
        if p.kinetics_logits is not None:
            top = np.argsort(-p.kinetics_logits)[:3]
            scores = np.exp(p.kinetics_logits - p.kinetics_logits.max())
            kinetics = KineticsTop(top.astype(np.int32), (scores[top] / scores.sum()).astype(np.float32))
        self.publisher.publish(PredictionMessage(
            label=classes[p.label_index], label_index=int(p.label_index), classes=classes,
            probs=p.probs.astype(np.float32), window_end=float(p.window_end), clip_starts=p.clip_starts.tolist(),
            mode=p.mode, latency_ms=1e3 * latency, compute_ms=1e3 * p.compute_s, rgb_reused=int(p.rgb_reused),
            windows_skipped=self.windows_skipped, emg_coverage=p.emg_coverage.mean(axis=0).tolist(),
            true_label=self.labels.at(p.window_end - self.bundle.geometry.sample_seconds / 2) or None,
            attention={m: w.astype(np.float32) for m, w in p.attention.items()} or None,
            kinetics=kinetics, spectrogram=p.spectrogram,
        ))

    def health(self) -> HealthMessage:
        """The worker's health report; the latency and load figures are None before the first prediction."""
        streams = {}
        for arm, inlet in self.emg_inlets.items():
            processor = self.emg.processors[arm].health
            streams[f"emg-{arm}"] = StreamStatus(
                lost=inlet.health.lost, samples=inlet.health.samples,
                rate_hz=round(processor.measured_rate_hz, 1), gaps=len(processor.gaps),
                stuck_channels=list(processor.stuck_channels), nonfinite=processor.nonfinite_values,
                backwards_dropped=processor.backwards_dropped,
                clock_offset_ms=round(1e3 * inlet.health.clock_offset_s, 3),
                lost_events=inlet.health.lost_events, recovered_events=inlet.health.recovered_events,
            )
        if self.video_inlet is not None:
            h = self.video_inlet.health
            streams["video"] = StreamStatus(lost=h.lost, samples=h.samples, rate_hz=round(h.arrival_rate_hz(), 1),
                                            clock_offset_ms=round(1e3 * h.clock_offset_s, 3),
                                            lost_events=h.lost_events, recovered_events=h.recovered_events)
        for arm in self.missing_arms:
            streams[f"emg-{arm}"] = StreamStatus(lost=True, missing=True)
        latencies = np.array(self.latencies) * 1e3 if self.latencies else None
        video_lost = self.video_inlet is not None and self.video_inlet.health.lost
        return HealthMessage(
            streams=streams, mode="emg" if (self.predictor.frames is None or video_lost) else "fusion",
            video_lost=video_lost, windows_predicted=self.windows_predicted, windows_skipped=self.windows_skipped,
            rgb_features=self.predictor.rgb_features_computed, emg_features=self.predictor.emg_features_computed,
            latency_p50_ms=None if latencies is None else float(np.percentile(latencies, 50)),
            latency_p95_ms=None if latencies is None else float(np.percentile(latencies, 95)),
            realtime_factor=float(np.mean(self.compute_times)) / self.config.hop_s if self.compute_times else None,
            nonfinite_predictions=self.nonfinite_predictions,
        )

    def close(self) -> None:
        """Close inlets in a fixed order (labels, video, EMG) while their sources still exist."""
        for inlet in [self.label_inlet, self.video_inlet, *self.emg_inlets.values()]:
            if inlet is not None:
                inlet.close()


def worker_process(spec: dict, stop: threading.Event, ready: Any) -> None:
    """Child target (see `myosight.processes`): the live worker on the spec's source until `stop`."""
    from myosight.models.bundle import load_bundle

    run = RunSpec.from_dict(spec)
    publisher = ResultPublisher(run.address)
    geometry = ClipGeometry.from_dict(run.geometry) if run.geometry else None
    config = WorkerConfig(source=run.sources.source, hop_s=run.hop_s, emg_only=run.emg_only,
                          input_size=run.input_size, geometry=geometry, use_compile=run.use_compile)
    worker = Worker(load_bundle(run.bundle), config, publisher)
    ready.set()
    try:
        worker.run(stop)
    finally:
        worker.close()
        publisher.close()


def _finite_prediction(p: Prediction) -> bool:
    """Whether every probability and attention weight of a prediction is a finite number."""
    arrays = [p.probs, *p.attention.values()]
    return all(np.isfinite(np.asarray(array, dtype=np.float64)).all() for array in arrays)


def _checked_frame_shape(inlet: LiveInlet, geometry: ClipGeometry) -> tuple[int, int, int]:
    """The video stream's frame shape (from its description); square, and warned about when it is not the
    model frame of the geometry (the frames are then resized, and live features differ from offline ones)."""
    height, width, channels = inlet.sample_shape
    if height != width:
        raise StreamError(f"video stream '{inlet.name}' ({inlet.source_id}) sends {width} x {height} frames; the "
                          "worker reads square model frames (myosight sources publish them)")
    if width != geometry.crop_size:
        log.warning("video stream '%s' sends %d-px frames but the model's frames are %d px: they are resized, "
                    "so live RGB features differ from offline ones (start the source with --frame-size %d)",
                    inlet.name, width, geometry.crop_size, geometry.crop_size)
    return height, width, channels


def load_live_i3d(bundle: Bundle, geometry: ClipGeometry, *, use_compile: bool = False):
    """The frozen I3D for live clips: the cached weights checked (and checked against the ones the bundle's
    heads were trained on), the inference path, and one clip run through it so that the first window does
    not pay for set-up."""
    import torch

    from myosight.errors import ConfigError
    from myosight.models.i3d import optimize_for_inference
    from myosight.models.i3d_weights import load_i3d, verify_weights

    manifest = verify_weights()
    if bundle.i3d_sha256 and manifest.get("weights_sha256") != bundle.i3d_sha256:
        raise ConfigError("the bundle's heads were trained on other I3D weights than the cached ones")
    i3d = optimize_for_inference(load_i3d(), use_compile=use_compile)
    size = geometry.input_size
    with torch.inference_mode():
        i3d.extract_features(torch.zeros(1, 3, geometry.frames_per_clip, size, size))
    return i3d
