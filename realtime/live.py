"""The live computation, independent of LSL: bounded buffers, per-clip features computed once, predictions.

`EmgLiveBuffer` runs each arm through the same streaming sEMG processor that training used offline and
keeps a bounded ring of envelope samples. `FrameRing` keeps the last seconds of model frames.
`LivePredictor` turns a window end time into a prediction over the 5 clips before it, computing each
clip's sEMG and RGB features once and caching them by clip start, so a window reuses the features of
the clips it shares with earlier windows.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from myosight.data.actionsense import ARMS
from myosight.models.bundle import Bundle
from myosight.models.clips import clip_frame_times, clip_segments
from myosight.models.emg_pipeline import EmgStreamProcessor, EnvelopeChunk, log_mel_spectrogram

CHANNELS_PER_ARM = 8


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
    """Both arms' envelopes on the shared grid, the last `keep_s` seconds only (memory stays flat)."""

    def __init__(self, bundle: Bundle, keep_s: float = 30.0) -> None:
        self.config = bundle.emg_config
        self.processors = {arm: EmgStreamProcessor(self.config, bundle.normalisation.arm(i), name=f"emg-{arm}")
                           for i, arm in enumerate(ARMS)}
        self.keep = int(keep_s * self.config.rate_hz)
        self.grid = {arm: np.zeros(0, np.int64) for arm in ARMS}
        self.values = {arm: np.zeros((0, CHANNELS_PER_ARM)) for arm in ARMS}

    def push(self, arm: str, time_s: np.ndarray, samples: np.ndarray) -> None:
        chunk: EnvelopeChunk = self.processors[arm].push(time_s, samples)
        if len(chunk.grid):
            grid = np.concatenate([self.grid[arm], chunk.grid])[-self.keep:]
            values = np.concatenate([self.values[arm], chunk.values])[-self.keep:]
            self.grid[arm], self.values[arm] = grid, values

    def covered_until(self, arm: str) -> float | None:
        """Time of the newest envelope sample of an arm (None before the first)."""
        return float(self.grid[arm][-1] / self.config.rate_hz) if len(self.grid[arm]) else None

    def clip_window(self, start_s: float, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(length, 16) envelopes of both arms from `start_s` and the per-arm coverage."""
        first = round(start_s * self.config.rate_hz)
        window = np.zeros((length, 2 * CHANNELS_PER_ARM))
        coverage = np.zeros(2)
        for index, arm in enumerate(ARMS):
            grid = self.grid[arm]
            lo, hi = np.searchsorted(grid, [first, first + length])
            if hi > lo:
                window[grid[lo:hi] - first, index * 8:(index + 1) * 8] = self.values[arm][lo:hi]
            coverage[index] = (hi - lo) / length
        return window, coverage

    def clip_spectrogram(self, start_s: float, clip_seconds: float) -> tuple[np.ndarray, np.ndarray]:
        window, coverage = self.clip_window(start_s, self.config.samples_in(clip_seconds))
        return log_mel_spectrogram(window, self.config).astype(np.float32), coverage


class FrameRing:
    """The last frames (RGB uint8, model size) with their timestamps; bounded by count."""

    def __init__(self, size: int, max_frames: int = 450) -> None:
        self.size = size
        self.max_frames = max_frames
        self.times = np.zeros(0)
        self.frames = np.zeros((0, size, size, 3), np.uint8)

    def push(self, time_s: np.ndarray, flat_frames: np.ndarray) -> None:
        if len(time_s) == 0:
            return
        frames = np.asarray(flat_frames).view(np.uint8).reshape(-1, self.size, self.size, 3)
        self.times = np.concatenate([self.times, time_s])[-self.max_frames:]
        self.frames = np.concatenate([self.frames, frames])[-self.max_frames:]

    @property
    def latest_time(self) -> float | None:
        return float(self.times[-1]) if len(self.times) else None

    def frames_at(self, wanted_s: np.ndarray, max_stale_s: float = 0.25) -> np.ndarray | None:
        """For each wanted time, the latest frame not after it; None if the ring does not cover the times
        (starts later, or its newest frame is more than `max_stale_s` older than the last wanted time)."""
        if len(self.times) == 0 or wanted_s[0] < self.times[0] or wanted_s[-1] - self.times[-1] > max_stale_s:
            return None
        index = np.searchsorted(self.times, wanted_s, side="right") - 1
        return self.frames[np.clip(index, 0, len(self.times) - 1)]


@dataclass
class Prediction:
    window_end: float
    clip_starts: np.ndarray
    probs: np.ndarray
    label_index: int
    mode: str  # "fusion" or "emg"
    attention: dict[str, np.ndarray] = field(default_factory=dict)
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


class LivePredictor:
    """Window -> prediction with per-clip features computed once (keyed by the clip's start on the grid)."""

    def __init__(self, bundle: Bundle, emg: EmgLiveBuffer, frames: FrameRing | None = None,
                 i3d: torch.nn.Module | None = None, video_size: int = 224, cache_clips: int = 200) -> None:
        self.bundle = bundle
        self.geometry = bundle.geometry
        self.emg = emg
        self.frames = frames
        self.i3d = i3d
        self.video_size = video_size
        self.emg_cache = _LruCache(cache_clips)
        self.rgb_cache = _LruCache(cache_clips)
        self.kinetics_cache = _LruCache(16)
        self.spectrogram_cache = _LruCache(16)
        self.emg_features_computed = 0
        self.i3d_threads = os.cpu_count() or 1
        self.rgb_features_computed = 0

    @property
    def can_fuse(self) -> bool:
        return "rgb" in self.bundle.modalities and self.i3d is not None and self.frames is not None

    def clip_starts(self, window_end: float) -> np.ndarray:
        return clip_segments(window_end - self.geometry.sample_seconds, self.geometry)[:, 0]

    def _key(self, start_s: float) -> int:
        return round(start_s * self.bundle.emg_config.rate_hz)

    def emg_feature(self, start_s: float) -> tuple[torch.Tensor, np.ndarray]:
        key = self._key(start_s)
        if key not in self.emg_cache:
            spectrogram, coverage = self.emg.clip_spectrogram(start_s, self.geometry.clip_seconds)
            with torch.inference_mode(), torch_threads(1):
                feature = self.bundle.emg_cnn.features(torch.from_numpy(spectrogram)[None])[0]
            self.emg_cache.put(key, (feature, coverage))
            self.spectrogram_cache.put(key, spectrogram)
            self.emg_features_computed += 1
        return self.emg_cache[key]

    def rgb_feature(self, start_s: float) -> torch.Tensor | None:
        """The clip's I3D feature, computing it if its frames are in the ring (None otherwise)."""
        key = self._key(start_s)
        if key not in self.rgb_cache:
            times = clip_frame_times(start_s, start_s + self.geometry.clip_seconds, self.geometry)
            frames = self.frames.frames_at(times) if self.frames is not None else None
            if frames is None:
                return None
            from myosight.models.i3d_input import frames_to_tensor

            clip = frames_to_tensor(frames, self.video_size)[None]
            with torch.inference_mode(), torch_threads(self.i3d_threads):
                feature = self.i3d.extract_features(clip)[0]
                logits_layer = getattr(getattr(self.i3d, "model", self.i3d), "logits", None)
                if logits_layer is not None:
                    self.kinetics_cache.put(key, logits_layer(feature[None, :, None, None, None]).flatten().numpy())
            self.rgb_cache.put(key, feature)
            self.rgb_features_computed += 1
        return self.rgb_cache[key]

    def predict(self, window_end: float, *, compute_rgb_for: str = "newest") -> Prediction:
        """Predict the window ending at `window_end`.

        `compute_rgb_for="newest"`: only the newest clip's I3D feature may be computed now; an older clip
        without one (skipped under backpressure) reuses the nearest clip's feature and is counted.
        """
        started = time.perf_counter()
        starts = self.clip_starts(window_end)
        emg = [self.emg_feature(s) for s in starts]
        batch = {"emg": torch.stack([f for f, _ in emg])[None]}
        coverage = np.stack([c for _, c in emg])
        mode, reused = "emg", 0
        if self.can_fuse:
            rgb = []
            for i, start in enumerate(starts):
                key = self._key(start)
                if key in self.rgb_cache or compute_rgb_for == "all" or i == len(starts) - 1:
                    rgb.append(self.rgb_feature(start))
                else:
                    rgb.append(None)
            available = [i for i, f in enumerate(rgb) if f is not None]
            if available:
                for i, feature in enumerate(rgb):
                    if feature is None:
                        nearest = min(available, key=lambda j, i=i: abs(j - i))
                        rgb[i] = rgb[nearest]
                        reused += 1
                batch["rgb"] = torch.stack(rgb)[None]
                mode = "fusion"
        probs, attention = self._run_head(batch, mode)
        newest = self._key(starts[-1])
        return Prediction(
            window_end=window_end, clip_starts=starts, probs=probs, label_index=int(np.argmax(probs)), mode=mode,
            attention=attention, emg_coverage=coverage, rgb_reused=reused,
            kinetics_logits=self.kinetics_cache.get(newest), spectrogram=self.spectrogram_cache.get(newest),
            compute_s=time.perf_counter() - started,
        )

    def _run_head(self, batch: dict[str, torch.Tensor], mode: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        head = self.bundle.head
        attention: dict[str, np.ndarray] = {}
        with torch.inference_mode(), torch_threads(1):
            if mode == "emg" and "rgb" in self.bundle.modalities:
                if not hasattr(head, "branch_logits"):
                    raise RuntimeError(f"head '{self.bundle.head_name}' cannot predict from sEMG alone")
                logits = head.branch_logits(batch | {"rgb": torch.zeros_like(batch["emg"])})["emg"]
            elif hasattr(head, "forward_with_attention"):
                logits, weights = head.forward_with_attention(batch)
                attention = {k: v[0].numpy() for k, v in weights.items()}
            else:
                logits = head(batch)
        return torch.softmax(logits, dim=-1)[0].numpy(), attention
