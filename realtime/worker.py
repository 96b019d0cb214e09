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

from myosight.arms import describe_arms
from myosight.capture.choice import StreamChoice
from myosight.capture.inlets import LiveInlet
from myosight.capture.streams import parse_marker
from myosight.errors import StreamError
from myosight.models.bundle import Bundle
from myosight.models.clips import ClipGeometry, resolve_geometry
from myosight.realtime.live import FRAME_RING_CAPACITY, EmgLiveBuffer, FrameRing, LivePredictor, Prediction
from myosight.realtime.messages import (
    HealthMessage,
    KineticsTop,
    PredictionMessage,
    ResultPublisher,
    StreamStatus,
)
from myosight.realtime.sources import SourceInlets

log = logging.getLogger(__name__)

#: Seconds of sEMG envelope the worker keeps: live, a window needs its last seconds only; deciding every window
#: of a replay faster than real time, it may be that far behind (model loading at the start, a busy machine).
LIVE_KEEP_S = 30.0
EVERY_WINDOW_KEEP_S = 300.0
#: Seconds of sEMG the worker's inlets hold when it decides every window of a replay faster than real time: the
#: replay goes on while the worker loads its models (a few seconds: a minute of data at 16 times real time).
EVERY_WINDOW_BUFFER_S = 600
#: Seconds of video frames kept when deciding every window (frames are large: 30 s of 224-px frames at 30 fps
#: take 135 MB); a worker further behind than this decides its windows without their video.
EVERY_WINDOW_VIDEO_KEEP_S = 30.0


@dataclass
class WorkerConfig:
    # the streams: a source name (`myosight-<source>-<role>`), a choice per role, or None: whichever myosight
    # source streams each role (capture/discovery.py)
    source: str | StreamChoice | None = "synthetic"
    hop_s: float = 1.0  # seconds between decisions; below one clip, each new clip's feature is still computed once
    emg_only: bool = False
    input_size: int | None = None  # I3D input size; None: the bundle's (112 is the reduced-resolution mode)
    geometry: ClipGeometry | None = None  # resolved by the caller; None: resolved here from the bundle
    resolve_timeout_s: float = 10.0  # how long to wait for the source's first stream
    lost_after_s: float = 1.0
    health_every_s: float = 1.0
    use_compile: bool = False  # torch.compile: ~1.8x faster I3D, but 20-40 s of compiling at start
    device: str = "cpu"  # where I3D, the sEMG CNN and the head run (checked by models.device.check_device)
    precision: str = "float32"  # "int8": the quantised I3D (CPU only)
    adapt_hop: bool = True  # coarsen the hop when the models cannot keep up (see HopLadder), never queue
    allow_missing_arm: bool = False  # run a model whose arm the source does not stream, with zeros there
    every_window: bool = False  # decide every window in order, however far behind (replays faster than real time)


class HopLadder:
    """The decision hops the worker may use, finest first, and the one in use.

    The finest is the configured hop; the coarser ones are its multiples that divide one clip (for a 0.2-s hop
    on 1-s clips: 0.2 and 1.0; for 0.1: 0.1, 0.2, 0.5, 1.0). On such a grid every clip of a window was the
    newest clip of an earlier window, so each window still computes one new I3D feature and reuses four:
    a coarser hop costs proportionally less. When the mean compute time of the recent decisions takes more
    than `BUSY` of the hop, the worker moves one step coarser (counted, and shown in the viewer); when it
    would take less than `RELAXED` of the next finer hop, one step back. Skipping windows remains the last
    resort for a machine too slow even at the coarsest hop.
    """

    BUSY = 0.8
    RELAXED = 0.4
    #: Decisions observed at a step before it may change again.
    SETTLE = 5

    def __init__(self, hop_s: float, clip_s: float, adapt: bool = True) -> None:
        steps = [hop_s]
        if adapt:
            k = 2
            while hop_s * k <= clip_s + 1e-9:
                ratio = clip_s / (hop_s * k)
                if abs(ratio - round(ratio)) < 1e-6:
                    steps.append(round(hop_s * k, 9))
                k += 1
        self.steps = tuple(steps)
        self.level = 0
        self.coarsened = 0  # times the hop was made coarser
        self._recent: deque[float] = deque(maxlen=self.SETTLE)

    @property
    def hop_s(self) -> float:
        return self.steps[self.level]

    def observe(self, compute_s: float) -> bool:
        """Take one decision's compute time; True when the hop changed."""
        self._recent.append(compute_s)
        if len(self._recent) < self.SETTLE:
            return False
        mean = sum(self._recent) / len(self._recent)
        if mean > self.BUSY * self.hop_s and self.level + 1 < len(self.steps):
            self.level += 1
            self.coarsened += 1
        elif self.level > 0 and mean < self.RELAXED * self.steps[self.level - 1]:
            self.level -= 1
        else:
            return False
        self._recent.clear()
        return True


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
    """Runs the live loop on a source's inlets and publishes predictions and health.

    `inlets`: the source's inlets, already open (the worker child opens them before loading any model); by
    default the worker finds and opens them itself."""

    def __init__(self, bundle: Bundle, config: WorkerConfig, publisher: ResultPublisher,
                 inlets: SourceInlets | None = None) -> None:
        bundle.require_live()  # a model of an offline sEMG preset cannot run live: refused with the reason
        self.bundle, self.config, self.publisher = bundle, config, publisher
        wants_video = not config.emg_only and "rgb" in bundle.modalities
        if inlets is None:
            inlets = SourceInlets.open(config.source, video=wants_video, arms=bundle.arms,
                                       allow_missing_arm=config.allow_missing_arm,
                                       first_timeout_s=config.resolve_timeout_s, lost_after_s=config.lost_after_s,
                                       emg_buffer_s=EVERY_WINDOW_BUFFER_S if config.every_window else None)
        elif not wants_video:
            inlets.drop_video()
        if set(inlets.emg) - set(bundle.arms) or (inlets.missing_arms and not config.allow_missing_arm):
            inlets.close()
            raise StreamError(f"the inlets were opened for {describe_arms(inlets.emg)}, the model reads "
                              f"{describe_arms(bundle.arms)}")
        self.inlets = inlets
        self.emg_inlets, self.missing_arms = inlets.emg, inlets.missing_arms
        self.video_inlet, self.label_inlet = inlets.video, inlets.labels
        try:
            self.geometry = config.geometry or resolve_geometry(bundle.geometry, config.input_size)
            if self.geometry.input_size != bundle.geometry.input_size:
                log.warning("I3D runs at %d px but the bundle's RGB features were extracted at %d px",
                            self.geometry.input_size, bundle.geometry.input_size)
            self.frames: FrameRing | None = None
            i3d = None
            if self.video_inlet is not None:
                self.frames = FrameRing(_checked_frame_shape(self.video_inlet, self.geometry),
                                        capacity=self._frame_capacity(self.video_inlet))
                i3d = load_live_i3d(bundle, self.geometry, use_compile=config.use_compile, device=config.device,
                                    precision=config.precision)
        except BaseException:
            self.close()
            raise
        self.labels = LabelTrack()
        # a worker that decides every window may fall behind a fast replay: it keeps more of the past
        self.emg = EmgLiveBuffer(bundle, keep_s=EVERY_WINDOW_KEEP_S if config.every_window else LIVE_KEEP_S)
        self.predictor = LivePredictor(bundle, self.emg, self.frames, i3d, self.geometry, device=config.device)
        self.hops = HopLadder(config.hop_s, self.geometry.clip_seconds,
                              adapt=config.adapt_hop and not config.every_window)
        self.last_window: float | None = None
        self._first_time: float | None = None
        self.windows_predicted = 0
        self.windows_skipped = 0
        self.latencies: deque[float] = deque(maxlen=200)
        self.compute_times: deque[float] = deque(maxlen=200)
        self._ready_since: dict[float, float] = {}
        self._next_health = 0.0
        self.nonfinite_predictions = 0  # windows withheld because their probabilities were not finite

    def _frame_capacity(self, video: LiveInlet) -> int:
        """Live, the ring holds the last seconds a window needs; deciding every window, as many as the video
        stream sends in EVERY_WINDOW_VIDEO_KEEP_S (the worker may be that far behind)."""
        if not self.config.every_window:
            return FRAME_RING_CAPACITY
        return max(FRAME_RING_CAPACITY, math.ceil(EVERY_WINDOW_VIDEO_KEEP_S * (video.nominal_rate or 30.0)))

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event, max_windows: int | None = None) -> None:
        """Decide windows until `stop` (or `max_windows`); deciding every window, also once the source's streams
        have ended and every window of their data is decided (a replay decided to its end)."""
        while not stop.is_set():
            produced = self.step()
            if max_windows is not None and self.windows_predicted >= max_windows:
                return
            if not produced:
                if self.config.every_window and self._source_ended():
                    self.publisher.publish(self.health())
                    log.info("the source's streams ended: every window decided (%d)", self.windows_predicted)
                    return
                stop.wait(0.005)

    def _source_ended(self) -> bool:
        """Every EMG stream lost after it sent data: nothing more will come (a replay ended)."""
        return bool(self.emg_inlets) and all(inlet.health.lost and inlet.health.samples > 0
                                             for inlet in self.emg_inlets.values())

    def step(self) -> list[Prediction]:
        """Pull every inlet once; predict the newest ready window if there is a new one."""
        self._pull()
        now = time.monotonic()
        predictions = []
        ready_end = self._newest_ready_window()
        if ready_end is not None:
            self._ready_since.setdefault(ready_end, now)
            hop = self.hops.hop_s
            previous = self.last_window
            if previous is None:  # windows that became ready before the first prediction count as skipped
                previous = math.ceil(self._first_data_time() / hop - 1e-9) * hop \
                    + self.bundle.geometry.sample_seconds - hop
            self.windows_skipped += max(0, round((ready_end - previous) / hop) - 1)
            prediction = self.predictor.predict(ready_end)
            if self.hops.observe(prediction.compute_s):
                log.info("decisions every %.2f s now (compute %.0f ms per decision)", self.hops.hop_s,
                         1e3 * prediction.compute_s)
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
        if self.video_inlet is not None and self.frames is not None:  # made together
            self.video_inlet.pull_into(self.frames.push)
        if self.label_inlet is not None:
            stamps, markers = self.label_inlet.pull_markers()
            self.labels.push(stamps, markers)

    def _newest_ready_window(self) -> float | None:
        covered = [end for arm, inlet in self.emg_inlets.items()
                   if (self.config.every_window or not inlet.health.lost)
                   and (end := self.emg.covered_until(arm)) is not None]
        if not covered:
            return None
        until = min(covered)
        frames = self.frames
        if self.video_inlet is not None and not self.video_inlet.health.lost and frames is not None \
                and frames.latest_time is not None:
            until = min(until, frames.latest_time)
        hop = self.hops.hop_s
        end = math.floor(until / hop + 1e-9) * hop
        first_possible = self._first_data_time() + self.bundle.geometry.sample_seconds
        if end < first_possible or (self.last_window is not None and end <= self.last_window + 1e-9):
            return None
        if self.config.every_window:  # the oldest window not decided yet, not the newest
            oldest = math.ceil(first_possible / hop - 1e-9) * hop if self.last_window is None \
                else self.last_window + hop
            return round(round(oldest / hop) * hop, 9)
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
        assert p.emg_coverage is not None  # the live predictor always measures it
        kinetics = None
        if p.kinetics_logits is not None:
            top = np.argsort(-p.kinetics_logits)[:3]
            scores = np.exp(p.kinetics_logits - p.kinetics_logits.max())
            kinetics = KineticsTop(top.astype(np.int32), (scores[top] / scores.sum()).astype(np.float32))
        self.publisher.publish(PredictionMessage(
            label=classes[p.label_index], label_index=int(p.label_index), classes=classes,
            probs=p.probs.astype(np.float32), window_end=float(p.window_end), clip_starts=p.clip_starts.tolist(),
            mode=p.mode, latency_ms=1e3 * latency, compute_ms=1e3 * p.compute_s, rgb_reused=int(p.rgb_reused),
            windows_skipped=self.windows_skipped, arms=list(self.bundle.arms),
            emg_coverage=p.emg_coverage.mean(axis=0).tolist(),
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
            realtime_factor=float(np.mean(self.compute_times)) / self.hops.hop_s if self.compute_times else None,
            nonfinite_predictions=self.nonfinite_predictions, hop_s=self.hops.hop_s,
            hop_coarsened=self.hops.coarsened,
        )

    def close(self) -> None:
        """Close inlets in a fixed order (labels, video, EMG) while their sources still exist."""
        self.inlets.close()


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


def load_live_i3d(bundle: Bundle, geometry: ClipGeometry, *, use_compile: bool = False, device: str = "cpu",
                  precision: str = "float32"):
    """The frozen I3D for live clips: the cached weights checked (and checked against the ones the bundle's
    heads were trained on), the inference path on `device` in `precision`, and one clip run through it so
    that the first window does not pay for set-up."""
    import torch

    from myosight.errors import ConfigError
    from myosight.models.device import check_device
    from myosight.models.i3d import optimize_for_inference
    from myosight.models.i3d_weights import load_i3d, verify_weights

    check_device(device, precision=precision)
    manifest = verify_weights()
    if bundle.i3d_sha256 and manifest.get("weights_sha256") != bundle.i3d_sha256:
        raise ConfigError("the bundle's heads were trained on other I3D weights than the cached ones")
    size = geometry.input_side
    i3d: Any
    if precision == "int8":
        from myosight.models.i3d_int8 import int8_available, load_int8_i3d

        reason = int8_available()
        if reason is not None:
            raise ConfigError(f"--precision int8: {reason}")
        i3d = load_int8_i3d(size, geometry.frames_per_clip)
    else:  # batch norm folded and channels-last: faster on every device (cuDNN likes the layout too)
        model = load_i3d(verify=False)  # verified just above
        i3d = optimize_for_inference(model.to(device), use_compile=use_compile, copy=False)
    with torch.inference_mode():
        i3d.extract_features(torch.zeros(1, 3, geometry.frames_per_clip, size, size, device=device))
    return i3d
