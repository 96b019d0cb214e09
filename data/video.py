"""Reading frames from a video file (world-camera recordings, test clips) with OpenCV.

Timestamps: `VideoFile.timestamps()` by default gives `index / fps` for the container's frame count: free,
and right for the constant-rate files the recorder and most cameras write. `timestamps(exact=True)`
decodes the file once and returns each frame's presentation time (OpenCV's CAP_PROP_POS_MSEC after
grabbing the frame), which also replaces the container's frame count by the true one: some containers
(Matroska in particular) only estimate the count and can overstate it. For an ActionSense session the
frame times come from the HDF5 file instead (frame i has timestamp row i), not from here.

Every problem a user's file can cause (missing, not a video, corrupt, truncated, too short) raises
`SessionFormatError` naming the file and, where it applies, the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from myosight.errors import SessionFormatError
from myosight.paths import not_a_file_reason

#: A forward jump of more frames than this is done by seeking; shorter gaps are decoded through, which is
#: cheaper than a seek (a seek decodes from the previous key frame anyway) and never lands on a wrong frame.
SEEK_THRESHOLD = 48


class VideoFile:
    """An open video: size, frame rate, frame count, timestamps, and frames by index (BGR uint8)."""

    def __init__(self, path: str | Path) -> None:
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise SessionFormatError(self.path, f"video: {not_a_file_reason(self.path)}")
        self._cv2 = cv2
        self._cap: Any = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SessionFormatError(self.path, "cannot open the video: not a video file, or corrupt")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._exact_times: np.ndarray | None = None
        self._next = 0  # index of the frame the next read() returns
        if not (self.fps > 0 and np.isfinite(self.fps)) or self.width <= 0 or self.height <= 0:
            self.close()
            raise SessionFormatError(self.path, "the video reports no frame rate or frame size (corrupt?)")

    # -- metadata ---------------------------------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        """Number of frames: exact once `timestamps(exact=True)` ran, else the container's count."""
        return self._count

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def duration_s(self) -> float:
        return self._count / self.fps

    def timestamps(self, exact: bool = False) -> np.ndarray:
        """Per-frame times in seconds from the first frame: `index / fps`, or decoded times if `exact`."""
        if not exact:
            if self._exact_times is not None:
                return self._exact_times.copy()
            return np.arange(self._count, dtype=np.float64) / self.fps
        if self._exact_times is None:
            self._exact_times = self._scan_times()
            self._count = len(self._exact_times)
        return self._exact_times.copy()

    def _scan_times(self) -> np.ndarray:
        cv2 = self._cv2
        self._seek(0)
        times: list[float] = []
        while self._cap.grab():
            times.append(self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        self._next = len(times)
        if not times:
            raise SessionFormatError(self.path, "the video has no decodable frame", field="frame 0")
        out = np.asarray(times, dtype=np.float64)
        out -= out[0]
        if np.any(np.diff(out) <= 0):
            # Some files carry no usable per-frame times; fall back to the nominal rate.
            out = np.arange(len(out), dtype=np.float64) / self.fps
        return out

    # -- frames -----------------------------------------------------------------------------------------

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at `indices` (any order, repeats allowed) as (N, H, W, 3) BGR uint8.

        Decodes forward through the file and seeks only for backward or long forward jumps.
        """
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(wanted), self.height, self.width, 3), dtype=np.uint8)
        if len(wanted) == 0:
            return out
        if wanted.min() < 0:
            first = int(wanted.min())
            raise SessionFormatError(self.path, "negative frame index requested", field=f"frame {first}")
        order = np.argsort(wanted, kind="stable")
        previous_index = -1
        for position in order:
            index = int(wanted[position])
            if index != previous_index:  # always true at the first position
                frame = self._read_one(index)
                previous_index = index
            out[position] = frame
        return out

    def _read_one(self, index: int) -> np.ndarray:
        if index < self._next or index - self._next > SEEK_THRESHOLD:
            self._seek(index)
        while self._next < index:  # decode through a short gap
            if not self._cap.grab():
                self._fail_short(index)
            self._next += 1
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._fail_short(index)
        self._next += 1
        if frame.shape[:2] != (self.height, self.width):
            raise SessionFormatError(
                self.path,
                f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the header's {self.width}x{self.height}",
                field=f"frame {index}",
            )
        return frame

    def _seek(self, index: int) -> None:
        cv2 = self._cv2
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        if int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) != index:
            # The container could not seek exactly: reopen and decode from the start instead.
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self.path))
            self._next = 0
            return
        self._next = index

    def _fail_short(self, index: int) -> None:
        known = self._exact_times is not None
        count = f"has {self._count} frames" if known else f"header says {self._count} frames"
        raise SessionFormatError(
            self.path,
            f"cannot decode frame {index}: the video {count} and ends or breaks before it "
            "(truncated or corrupt file, or fewer frames than requested)",
            field=f"frame {index}",
        )

    # -- lifetime ---------------------------------------------------------------------------------------

    def close(self) -> None:
        if getattr(self, "_cap", None) is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        size = f"{self.width}x{self.height}"
        return f"VideoFile({str(self.path)!r}, {size}, {self.fps:g} fps, {self._count} frames)"
