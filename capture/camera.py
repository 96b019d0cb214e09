"""A camera (or a video file played as one) published as the project's LSL video stream.

Each frame is made into the model frame before it is sent (`models.i3d_input.model_frame`: shorter side
resized at I3D's 256/224 ratio, centre crop size x size, RGB), the function offline feature extraction
uses, so live and offline frames match. Sending the crop rather than the camera frame keeps the stream
small (147 kB a frame at 224) and does the resize where the frames are captured.

Time stamps are `pylsl.local_clock()` seconds: the read time for a camera; for a video file, its frame's
scheduled time t0 + i / fps, which is what a camera's own clock would have said. A file is paced against
that absolute schedule, so waiting never accumulates drift; when the publisher falls more than a frame
behind (slow decoding, a busy machine) it skips frames, as a real camera would, and counts them dropped.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from myosight.capture.streams import VIDEO_TYPE, open_outlet, push_frame, video_stream_info
from myosight.constants import I3D_CROP
from myosight.errors import StreamError
from myosight.models.i3d_input import model_frame

log = logging.getLogger(__name__)

SOURCE = "camera"
DEFAULT_FPS = 30.0
def parse_device(text: str) -> int | str:
    """A command-line DEVICE: digits are a camera index, anything else a file path or URL."""
    return int(text) if text.isdigit() else text


@dataclass
class CameraStats:
    """Frames read from the device, published, and skipped to keep pace; passes over a looping file."""

    read: int = 0
    published: int = 0
    dropped: int = 0
    loops: int = 0


class CameraSource:
    """A camera index or a video file, published as `myosight-video` (source "camera").

    `fps`: for a camera, the rate requested from it (default: what it reports); for a file, the playback
    rate (default: the file's own). `loop` replays a file from the start at its end. A camera that gives
    no frame for `no_frame_timeout_s` seconds raises StreamError; so do a device that cannot be opened
    and a file without frames.
    """

    def __init__(self, device: int | str, size: int = I3D_CROP, fps: float | None = None, loop: bool = False, *,
                 no_frame_timeout_s: float = 5.0, source: str = SOURCE, max_buffered_s: int = 4) -> None:
        if size < 8:
            raise ValueError(f"frame size must be at least 8 pixels, got {size}")
        if fps is not None and not 0 < fps <= 1000:
            raise ValueError(f"fps must be in (0, 1000], got {fps}")
        self.device = device
        self.size = size
        self.requested_fps = fps
        self.loop = loop
        self.no_frame_timeout_s = no_frame_timeout_s
        self.source = source
        self.max_buffered_s = max_buffered_s
        self.is_file = isinstance(device, str) and Path(device).is_file()
        self.stats = CameraStats()
        self.fps: float = fps or DEFAULT_FPS
        self.outlet: pylsl.StreamOutlet | None = None
        self._capture: Any = None

    @property
    def name(self) -> str:
        return f"video file {self.device}" if self.is_file else f"camera {self.device!r}"

    def _open_capture(self) -> Any:
        """The OpenCV capture for the device (a seam: tests substitute a capture that fails on purpose)."""
        import cv2

        return cv2.VideoCapture(self.device)

    def open(self) -> None:
        """Open the device and create the outlet; raises StreamError naming the device when it cannot open."""
        if self.outlet is not None:
            return
        if isinstance(self.device, str) and "://" not in self.device and not Path(self.device).exists():
            raise StreamError(f"cannot open {self.device!r}: no such file or device (a camera can also be given by "
                              "its index)")
        capture = self._open_capture()
        if not capture.isOpened():
            capture.release()
            raise StreamError(f"cannot open {self.name}")
        self._capture = capture
        import cv2

        reported = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not self.is_file and self.requested_fps:
            capture.set(cv2.CAP_PROP_FPS, self.requested_fps)
        if self.requested_fps:
            self.fps = self.requested_fps
        elif math.isfinite(reported) and 0 < reported <= 1000:
            self.fps = reported
        else:
            log.warning("%s reports no usable frame rate (%s); assuming %g fps", self.name, reported, DEFAULT_FPS)
            self.fps = DEFAULT_FPS
        self.outlet = open_outlet(video_stream_info(self.size, self.fps, self.source),
                                  max_buffered_s=self.max_buffered_s)
        log.info("publishing %s as myosight-video: %dx%d RGB at %g fps", self.name, self.size, self.size, self.fps)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self.outlet = None

    def _publish(self, frame_bgr: np.ndarray, stamp: float) -> None:
        assert self.outlet is not None
        rgb = model_frame(frame_bgr, self.size)
        push_frame(self.outlet, rgb, stamp)
        self.stats.published += 1

    def _rewind(self, frames_this_pass: int) -> bool:
        """At the end of a file: start it again (True) or stop (False)."""
        if frames_this_pass == 0:
            raise StreamError(f"{self.name} has no readable frames")
        if not self.loop:
            return False
        self._capture.release()
        self._capture = self._open_capture()  # reopening is exact where seeking to frame 0 is not always
        if not self._capture.isOpened():
            raise StreamError(f"cannot reopen {self.name} to loop it")
        self.stats.loops += 1
        return True

    def run(self, stop_event: threading.Event, max_frames: int | None = None) -> CameraStats:
        """Publish until `stop_event` is set, the file ends (without `loop`) or `max_frames` are published."""
        self.open()
        try:
            if self.is_file:
                self._run_file(stop_event, max_frames)
            else:
                self._run_camera(stop_event, max_frames)
        finally:
            log.info("%s: %s", self.name, asdict(self.stats))
            self.close()
        return self.stats

    def _run_file(self, stop_event: threading.Event, max_frames: int | None) -> None:
        period = 1.0 / self.fps
        start = pylsl.local_clock()
        index = 0  # position in the playback schedule: frame `index` is due at start + index * period
        this_pass = 0
        while not stop_event.is_set() and (max_frames is None or self.stats.published < max_frames):
            due = start + index * period
            wait = due - pylsl.local_clock()
            if wait > 0 and stop_event.wait(wait):
                break
            if self.stats.published and pylsl.local_clock() - due > period:
                ok = self._capture.grab()  # behind schedule: skip this frame without decoding it
                if ok:
                    self.stats.read += 1
                    self.stats.dropped += 1
                    this_pass += 1
                    index += 1
                    continue
            else:
                ok, frame = self._capture.read()
                if ok:
                    self.stats.read += 1
                    this_pass += 1
                    self._publish(frame, due)
                    index += 1
                    continue
            if not self._rewind(this_pass):
                break
            this_pass = 0

    def _run_camera(self, stop_event: threading.Event, max_frames: int | None) -> None:
        last_frame = time.monotonic()
        while not stop_event.is_set() and (max_frames is None or self.stats.published < max_frames):
            ok, frame = self._capture.read()
            stamp = pylsl.local_clock()
            if ok and frame is not None:
                self.stats.read += 1
                last_frame = time.monotonic()
                self._publish(frame, stamp)
                continue
            silent = time.monotonic() - last_frame
            if silent > self.no_frame_timeout_s:
                raise StreamError(f"{self.name} returned no frames for {silent:.1f} s "
                                  f"(limit {self.no_frame_timeout_s:g} s): unplugged, or used by another program?")
            stop_event.wait(0.01)  # a failed read can return at once: do not spin


def measure_video_throughput(seconds: float = 10.0, size: int = I3D_CROP, fps: float = 30.0) -> dict[str, float]:
    """Send `seconds` of size x size x 3 uint8 frames at `fps` through a loopback outlet -> inlet and count.

    The sender follows an absolute schedule, each frame carries its sequence number in its first bytes,
    and a receiver thread pulls as the worker would. Returns frames sent / received / dropped (sent and
    never received), sequence gaps seen by the receiver, mean and max latency (receipt minus time stamp),
    the sender's late frames, and the process CPU time (both ends plus liblsl's threads) per second.
    """
    n_values = size * size * 3
    info = pylsl.StreamInfo("myosight-video-throughput", VIDEO_TYPE, n_values, fps, pylsl.cf_int8,
                            f"myosight-throughput-{uuid.uuid4().hex[:12]}")
    outlet = open_outlet(info, max_buffered_s=4)
    found = pylsl.resolve_bypred(f"uid='{outlet.get_info().uid()}'", 1, 5.0)
    if not found:
        raise StreamError("the throughput test could not resolve its own outlet on loopback")
    inlet = pylsl.StreamInlet(found[0], max_buflen=4)
    inlet.open_stream(5.0)
    inlet.info(5.0)  # fetched now, so that no pull waits for it
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, n_values), dtype=np.uint8)
    received: list[int] = []
    latencies: list[float] = []
    done = threading.Event()

    def receive() -> None:
        # As a worker would: poll into a preallocated buffer (no per-frame allocation), idling 5 ms when empty.
        buffer = np.empty((8, n_values), dtype=np.int8)
        while True:
            _, stamps = inlet.pull_chunk(timeout=0.0, max_samples=len(buffer), dest_obj=buffer)
            now = pylsl.local_clock()
            if len(stamps):
                counters = buffer[:len(stamps), :4].view(np.uint8).copy().view("<u4").ravel()
                received.extend(int(c) for c in counters)
                latencies.extend(now - float(s) for s in stamps)
            elif done.is_set():
                return
            else:
                time.sleep(0.005)

    receiver = threading.Thread(target=receive, name="throughput-receiver", daemon=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    receiver.start()
    total = max(round(seconds * fps), 1)
    start = pylsl.local_clock()
    late = 0
    for index in range(total):
        due = start + index / fps
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)  # pacing the sender against an absolute schedule, not synchronisation
        elif -wait > 1.0 / fps:
            late += 1
        frame = frames[index % len(frames)].copy()
        frame[:4] = np.frombuffer(np.uint32(index).tobytes(), dtype=np.uint8)
        push_frame(outlet, frame, due)
    deadline = time.monotonic() + 3.0
    while len(received) < total and time.monotonic() < deadline and receiver.is_alive():
        receiver.join(timeout=0.1)
    done.set()
    receiver.join(timeout=2.0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    inlet.close_stream()
    unique = sorted(set(received))
    gaps = sum(1 for a, b in itertools.pairwise(unique) if b != a + 1)
    return {
        "size": size, "fps": fps, "seconds": seconds, "sent": total, "received": len(unique),
        "dropped": total - len(unique), "sequence_gaps": gaps, "sender_late": late,
        "mean_latency_ms": 1000 * float(np.mean(latencies)) if latencies else math.nan,
        "max_latency_ms": 1000 * float(np.max(latencies)) if latencies else math.nan,
        "cpu_s": cpu, "wall_s": wall, "cpu_per_s": cpu / wall if wall else math.nan,
        "megabytes_per_s": total * n_values / 1e6 / wall if wall else math.nan,
    }
