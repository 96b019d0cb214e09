"""CameraSource: a video file played as a camera into a real inlet on loopback, and the device faults."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from lsl_helpers import inlet_for, pull_at_least

from myosight.capture.camera import CameraSource, parse_device
from myosight.errors import StreamError
from myosight.models.clips import short_side_for
from myosight.models.i3d_input import model_frame

cv2 = pytest.importorskip("cv2")

ARM_WRESTLING = SHARED / "media" / "arm_wrestling.mp4"


def reference_frame(path: Path, size: int) -> np.ndarray:
    """The file's first frame made independently of camera.py: bilinear short-side resize, centre crop, RGB."""
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    height, width = frame.shape[:2]
    short = round(size * 256 / 224)
    scale = short / min(height, width)
    new_size = (round(width * scale), round(height * scale))
    if new_size != (width, height):
        frame = cv2.resize(frame, new_size, interpolation=cv2.INTER_LINEAR)
    top, left = (frame.shape[0] - size) // 2, (frame.shape[1] - size) // 2
    return frame[top:top + size, left:left + size, ::-1]


def play(source: CameraSource, frames: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run `source` in a thread until `frames` are published; return what a real inlet received."""
    source.open()
    assert source.outlet is not None
    inlet = inlet_for(source.outlet, max_buflen=4)
    stop = threading.Event()
    result: dict = {}

    def run() -> None:
        try:
            result["stats"] = source.run(stop, max_frames=frames)
        except BaseException as error:
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        samples, stamps = pull_at_least(inlet, frames, timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert "error" not in result, result.get("error")
    return samples, stamps, result["stats"]


@pytest.mark.needs_shared
@pytest.mark.parametrize("size", [224, 112])
def test_video_file_plays_as_a_camera(size: int) -> None:
    if not ARM_WRESTLING.is_file():
        pytest.skip(f"{ARM_WRESTLING} not found (the reference media beside the repository)")
    source = CameraSource(str(ARM_WRESTLING), size=size)
    frames = 6
    samples, stamps, stats = play(source, frames)
    assert source.fps == pytest.approx(28.0, abs=0.01)  # the file's own rate
    assert samples.shape == (frames, size * size * 3) and samples.dtype == np.int8
    received = samples.view(np.uint8).reshape(frames, size, size, 3)
    expected = reference_frame(ARM_WRESTLING, size)
    diff = np.abs(received[0].astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1, f"first frame differs by up to {diff.max()}"
    # Paced by the file's rate on an absolute schedule: stamps lie on the 1/28-s grid, and a frame missing from it
    # is one the source counted as dropped (behind schedule on a busy machine, it skips rather than falls behind).
    steps = np.diff(stamps) * 28
    np.testing.assert_allclose(steps, np.round(steps), atol=28e-6)
    assert np.all(np.round(steps) >= 1)
    assert stats.published == frames and stats.read == stats.published + stats.dropped
    assert int(np.round(steps).sum()) - (frames - 1) == stats.dropped


def write_test_video(path: Path, frames: int = 6) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    assert writer.isOpened()
    for k in range(frames):
        writer.write(np.full((48, 64, 3), 40 * k, dtype=np.uint8))
    writer.release()


def test_loop_replays_a_file(tmp_path: Path) -> None:
    video = tmp_path / "steps.avi"
    write_test_video(video)
    samples, _, stats = play(CameraSource(str(video), size=32, fps=300.0, loop=True), 15)
    assert stats.loops >= 2 and stats.read == stats.published + stats.dropped
    levels = samples.view(np.uint8).reshape(len(samples), -1).mean(axis=1) / 40
    assert np.allclose(levels, np.round(levels), atol=0.1)  # every frame is one of the file's six levels


def test_file_without_loop_ends(tmp_path: Path) -> None:
    video = tmp_path / "steps.avi"
    write_test_video(video, frames=3)
    stats = CameraSource(str(video), size=32, fps=300.0).run(threading.Event())
    assert stats.read == 3 and stats.loops == 0


def test_bad_device_names_it() -> None:
    with pytest.raises(StreamError, match=re.escape("'/no/such/camera.mp4'")):
        CameraSource("/no/such/camera.mp4").open()


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(StreamError, match=re.escape("junk.mp4")):
        CameraSource(str(junk)).run(threading.Event())


class SilentCapture:
    """A camera that opens and then delivers nothing (unplugged, or held by another program)."""

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def get(self, _prop: int) -> float:
        return 30.0

    def set(self, _prop: int, _value: float) -> bool:
        return True

    def read(self) -> tuple[bool, None]:
        return False, None

    def release(self) -> None:
        pass


def test_camera_returning_no_frames_raises() -> None:
    class SilentCamera(CameraSource):
        def _open_capture(self) -> SilentCapture:
            return SilentCapture()

    source = SilentCamera(3, no_frame_timeout_s=0.2)
    with pytest.raises(StreamError, match=r"camera 3 returned no frames for 0\.\d s"):
        source.run(threading.Event())
    assert source.outlet is None  # closed on the way out


def test_helpers() -> None:
    assert parse_device("0") == 0 and parse_device("clip.mp4") == "clip.mp4"
    assert short_side_for(224) == 256 and short_side_for(112) == 128
    frame = np.zeros((240, 426, 3), dtype=np.uint8)
    frame[..., 0] = 255  # blue in BGR
    out = model_frame(frame, 224)
    assert out.shape == (224, 224, 3) and out[..., 2].min() == 255 and out[..., 0].max() == 0
