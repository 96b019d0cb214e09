"""A simulated camera at OpenCV's capture call, for tests that run `myosight camera 0` (and every command whose
camera is an index) exactly as a user types them.

With this folder first on a child's PYTHONPATH and the environment variable MYOSIGHT_SIMULATED_CAMERAS set to a
JSON object mapping camera indices to video files (`{"0": "/path/world.mp4"}`), `cv2.VideoCapture(0)` opens a
camera that shows that video: frames come at the video's own rate, in real time, as a webcam delivers them, and
the video starts again at its end (a camera has no end). Every other device (a file, a URL, an index not in the
map) is OpenCV's own. Without the variable nothing is changed and OpenCV is not imported here.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

_CAMERAS = os.environ.get("MYOSIGHT_SIMULATED_CAMERAS")


class SimulatedCamera:
    """The part of cv2.VideoCapture that a camera reader uses, over a video file paced in real time."""

    def __init__(self, cv2: Any, path: str) -> None:
        self._cv2, self._path = cv2, path
        self._capture = cv2.VideoCapture(path)
        rate = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = rate if 0 < rate <= 240 else 30.0
        self._next = time.monotonic()

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self._capture is not None and self._capture.isOpened()

    def read(self) -> tuple[bool, Any]:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + 1.0 / self._fps, time.monotonic() - 1.0)
        ok, frame = self._capture.read()
        if not ok:  # the video's end: a camera goes on
            self._capture.release()
            self._capture = self._cv2.VideoCapture(self._path)
            ok, frame = self._capture.read()
        return ok, frame

    def get(self, prop: int) -> float:
        return self._fps if prop == self._cv2.CAP_PROP_FPS else float(self._capture.get(prop))

    def set(self, prop: int, value: float) -> bool:
        return False  # a camera may ignore what is asked of it

    def release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _install(cameras: dict[str, str]) -> None:
    import cv2

    opencv_capture = cv2.VideoCapture

    def video_capture(device: Any, *args: Any) -> Any:
        if isinstance(device, int) and str(device) in cameras:
            return SimulatedCamera(cv2, cameras[str(device)])
        return opencv_capture(device, *args)

    cv2.VideoCapture = video_capture


if _CAMERAS:
    _install(json.loads(_CAMERAS))
