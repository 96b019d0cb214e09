"""The live computation, independent of LSL: bounded buffers, per-clip features computed once, predictions.

`EmgLiveBuffer` runs each arm through the same streaming sEMG processor that training used offline and
keeps the envelope of the last seconds in a ring; a clip's spectrogram comes from the offline function
(`clip_spectrograms`) applied to the ring's samples of that clip. `FrameRing` keeps the last seconds of
model frames; a clip's frames are chosen by the offline rule (`latest_not_after`) and made into I3D input
by the offline function (`clip_input`). `LivePredictor` turns a window end time into a prediction over
the 5 clips before it, computing each clip's sEMG and RGB features once and caching them by clip start,
so a window reuses the features of the clips it shares with earlier windows.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from myosight.constants import CHANNELS_PER_ARM
from myosight.models.bundle import Bundle
from myosight.models.clips import ClipGeometry, clip_frame_times, clip_segments, latest_not_after
from myosight.models.emg_pipeline import EmgStreamProcessor, EnvelopeChunk, clip_spectrograms
from myosight.models.heads import LateFusionHead
from myosight.models.i3d_input import clip_input
from myosight.realtime.ring import SampleRing

#: Frames the worker keeps: 15 s of a 30-fps camera (a window needs the last 5 s).
FRAME_RING_CAPACITY = 450
#: A clip is computed only when the newest frame is at most this much older than its last wanted instant.
MAX_STALE_FRAME_S = 0.25


@contextmanager
def torch_threads(count: int):
    """Run a block with `count` intra-op threads: 1 for the tiny sEMG and head models (threads only add
    synchronisation there, badly so on a loaded CPU), all cores for I3D."""
    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != previous:
            torch.set_num_threads(previous)


class EmgLiveBuffer:
    """The model's arms' envelopes on the shared grid, the last `keep_s` seconds only (memory stays flat)."""

    def __init__(self, bundle: Bundle, keep_s: float = 30.0) -> None:
        self.config = bundle.emg_config
        self.arms = bundle.arms
        self.processors = {arm: EmgStreamProcessor(self.config, bundle.normalisation.arm(i), name=f"emg-{arm}")
                           for i, arm in enumerate(self.arms)}
        capacity = int(keep_s * self.config.rate_hz)
        self.rings = {arm: SampleRing(capacity, (CHANNELS_PER_ARM,), np.float64, np.int64) for arm in self.arms}

    def push(self, arm: str, time_s: np.ndarray, samples: np.ndarray) -> None:
        chunk: EnvelopeChunk = self.processors[arm].push(time_s, samples)
        self.rings[arm].push(chunk.grid, chunk.values)

    def covered_until(self, arm: str) -> float | None:
        """Time of the newest envelope sample of an arm (None before the first)."""
        newest = self.rings[arm].newest_key
        return None if newest is None else newest / self.config.rate_hz

    def oldest(self, arm: str) -> float | None:
        """Time of the oldest envelope sample still held (None before the first)."""
        oldest = self.rings[arm].oldest_key
        return None if oldest is None else oldest / self.config.rate_hz

    def clip_spectrogram(self, segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (channels, n_mels, frames) spectrogram of the clip [start, stop) and its per-arm coverage (arms,).

        The same function as offline, on the rings' samples of the clip (an arm without samples there
        gives zeros and coverage 0, as a missing arm does offline)."""
        bounds = np.asarray(segment, np.float64).reshape(1, 2)
        first = round(bounds[0, 0] * self.config.rate_hz)
        stop = first + self.config.samples_in(bounds[0, 1] - bounds[0, 0])
        tracks = [EnvelopeChunk(*self.rings[arm].between(first, stop)) for arm in self.arms]
        spectrograms, coverage = clip_spectrograms(tracks, bounds, self.config)
        return spectrograms[0], coverage[0]


class FrameRing:
    """The last frames of the video stream (model frames, RGB uint8) with their timestamps."""

    def __init__(self, frame_shape: tuple[int, int, int], capacity: int = FRAME_RING_CAPACITY) -> None:
        self.frame_shape = tuple(frame_shape)
        self.ring = SampleRing(capacity, self.frame_shape, np.uint8)

    def push(self, time_s: np.ndarray, frames: np.ndarray) -> None:
        """Frames as the inlet gives them (any 1-byte type, one row per frame); copied once, into the ring."""
        if len(time_s):
            self.ring.push(time_s, np.asarray(frames).view(np.uint8).reshape(-1, *self.frame_shape))

    @property
    def latest_time(self) -> float | None:
        return self.ring.newest_key

    def frames_at(self, wanted_s: np.ndarray, max_stale_s: float = MAX_STALE_FRAME_S) -> np.ndarray | None:
        """For each wanted time, the latest frame not after it; None if the ring does not cover the times
        (starts later, or its newest frame is more than `max_stale_s` older than the last wanted time)."""
        if len(self.ring) == 0:
            return None
        times = self.ring.ordered_keys()
        if wanted_s[0] < times[0] or wanted_s[-1] - times[-1] > max_stale_s:
            return None
        return self.ring.take(latest_not_after(times, wanted_s))


@dataclass
class Prediction:
    window_end: float
    clip_starts: np.ndarray
    probs: np.ndarray
    label_index: int
    mode: str  # "fusion" or "emg"
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # empty: the head has no clip attention
    emg_coverage: np.ndarray | None = None
    rgb_reused: int = 0
    kinetics_logits: np.ndarray | None = None
    spectrogram: np.ndarray | None = None
    compute_s: float = 0.0


class _LruCache(OrderedDict):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, key: int, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


@dataclass
class ComputeClock:
    """Time spent in I3D: wall seconds, and CPU seconds of this process (all its threads) meanwhile."""

    calls: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @contextmanager
    def measure(self):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.calls += 1
            self.wall_s += time.perf_counter() - wall
            self.cpu_s += time.process_time() - cpu


class LivePredictor:
    """Window -> prediction with per-clip features computed once (keyed by the clip's start on the grid)."""

    def __init__(self, bundle: Bundle, emg: EmgLiveBuffer, frames: FrameRing | None = None,
                 i3d: torch.nn.Module | None = None, geometry: ClipGeometry | None = None,
                 cache_clips: int = 200, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        if self.device.type != "cpu":  # the heads and the sEMG CNN live there; I3D is moved by its loader
            bundle.head.to(self.device)
            if bundle.emg_cnn is not None:
                bundle.emg_cnn.to(self.device)
        self.geometry = geometry or bundle.geometry
        self.emg = emg
        self.frames = frames
        self.i3d = i3d
        self.emg_cache = _LruCache(cache_clips)
        self.rgb_cache = _LruCache(cache_clips)
        self.kinetics_cache = _LruCache(16)
        self.spectrogram_cache = _LruCache(16)
        self.emg_features_computed = 0
        self.i3d_threads = os.cpu_count() or 1
        self.rgb_features_computed = 0
        self.i3d_clock = ComputeClock()
        self.has_attention = bool(getattr(bundle.head, "has_clip_attention", False))

    @property
    def can_fuse(self) -> bool:
        return "rgb" in self.bundle.modalities and self.i3d is not None and self.frames is not None

    def clip_segments(self, window_end: float) -> np.ndarray:
        """The (clips, 2) [start, stop) segments of the window ending at `window_end`."""
        return clip_segments(window_end - self.geometry.sample_seconds, self.geometry)

    def _key(self, start_s: float) -> int:
        return round(start_s * self.bundle.emg_config.rate_hz)

    def emg_feature(self, segment: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        key = self._key(segment[0])
        if key not in self.emg_cache:
            spectrogram, coverage = self.emg.clip_spectrogram(segment)
            with torch.inference_mode(), torch_threads(1):
                spectrogram_tensor = torch.from_numpy(spectrogram)[None].to(self.device)
                assert self.bundle.emg_cnn is not None  # a bundle with sEMG features has its CNN (checked at load)
                feature = self.bundle.emg_cnn.features(spectrogram_tensor)[0]
            self.emg_cache.put(key, (feature, coverage))
            self.spectrogram_cache.put(key, spectrogram)
            self.emg_features_computed += 1
        return self.emg_cache[key]

    def rgb_feature(self, segment: np.ndarray) -> torch.Tensor | None:
        """The clip's I3D feature, computing it if its frames are in the ring (None otherwise)."""
        key = self._key(segment[0])
        if key not in self.rgb_cache:
            times = clip_frame_times(segment[0], segment[1], self.geometry)
            frames = self.frames.frames_at(times) if self.frames is not None else None
            if frames is None:
                return None
            clip = clip_input(frames, self.geometry.input_side)[None].to(self.device)  # the clip's one transfer
            with torch.inference_mode(), torch_threads(self.i3d_threads), self.i3d_clock.measure():
                # every I3D variant (plain, fast path, int8) has extract_features; nn.Module's typing hides it
                feature = self.i3d.extract_features(clip)[0]  # type: ignore[union-attr, operator]
                logits_layer = getattr(self.i3d, "logits", None) or getattr(getattr(self.i3d, "model", None),
                                                                             "logits", None)
                if logits_layer is not None:
                    logits = logits_layer(feature[None, :, None, None, None]).flatten()
                    self.kinetics_cache.put(key, logits.float().cpu().numpy())
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)  # the clock measures the clip, not its launch
            self.rgb_cache.put(key, feature)
            self.rgb_features_computed += 1
        return self.rgb_cache[key]

    def predict(self, window_end: float, *, compute_rgb_for: str = "newest") -> Prediction:
        """Predict the window ending at `window_end`.

        `compute_rgb_for="newest"`: only the newest clip's I3D feature may be computed now; an older clip
        without one (skipped under backpressure) reuses the nearest clip's feature and is counted.
        """
        started = time.perf_counter()
        segments = self.clip_segments(window_end)
        emg = [self.emg_feature(segment) for segment in segments]
        batch = {"emg": torch.stack([f for f, _ in emg])[None]}
        coverage = np.stack([c for _, c in emg])
        mode, reused = "emg", 0
        if self.can_fuse:
            rgb = [self.rgb_feature(segment)
                   if self._key(segment[0]) in self.rgb_cache or compute_rgb_for == "all" or i == len(segments) - 1
                   else None for i, segment in enumerate(segments)]
            available = [i for i, f in enumerate(rgb) if f is not None]
            if available:
                for i, feature in enumerate(rgb):
                    if feature is None:
                        nearest = available[int(np.argmin(np.abs(np.asarray(available) - i)))]  # first on ties
                        rgb[i] = rgb[nearest]
                        reused += 1
                batch["rgb"] = torch.stack([f for f in rgb if f is not None])[None]  # none left: all filled
                mode = "fusion"
        probs, attention = self._run_head(batch, mode)
        newest = self._key(segments[-1, 0])
        return Prediction(
            window_end=window_end, clip_starts=segments[:, 0], probs=probs, label_index=int(np.argmax(probs)),
            mode=mode, attention=attention, emg_coverage=coverage, rgb_reused=reused,
            kinetics_logits=self.kinetics_cache.get(newest), spectrogram=self.spectrogram_cache.get(newest),
            compute_s=time.perf_counter() - started,
        )

    def _run_head(self, batch: dict[str, torch.Tensor], mode: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Probabilities, and the clip attention of a head that has one (none for the others: their clip
        weights are uniform by construction, not a measurement)."""
        head = self.bundle.head
        attention: dict[str, np.ndarray] = {}
        with torch.inference_mode(), torch_threads(1):
            if mode == "emg" and "rgb" in self.bundle.modalities:
                if not isinstance(head, LateFusionHead):  # the heads with a branch per modality
                    raise RuntimeError(f"head '{self.bundle.head_name}' cannot predict from sEMG alone")
                logits = head.branch_logits(batch | {"rgb": torch.zeros_like(batch["emg"])})["emg"]
            elif self.has_attention and isinstance(head, LateFusionHead):  # attention heads are late-fusion ones
                logits, weights = head.forward_with_attention(batch)
                attention = {k: v[0].cpu().numpy() for k, v in weights.items()}
            else:
                logits = head(batch)
        return torch.softmax(logits.float(), dim=-1)[0].cpu().numpy(), attention
