"""The world video of a recorded session: JPEG frames inside the HDF5 file, and the mp4 made from them.

An mp4 is only readable once its index is written at the end, so an mp4 cut short by a crash is lost. The
recorder therefore keeps every frame as a JPEG row of `eye-tracking-video-world/frame_jpeg` in the session
file (flushed with the rest), and writes the mp4 under a partial name (`<session>.video-partial.mp4`, which
the reader never picks up) while recording. A clean stop checks that the mp4 holds exactly the frames of
the file and renames it to the name the reader finds (`<date>_<time>_<subject>_eye-tracking-video-world_
frame.mp4`); otherwise, and after a crash, `recover_session` rebuilds it from the JPEG rows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from myosight.data.actionsense import ActionSenseSession
from myosight.data.layout import VIDEO_TIMESTAMP_GROUP
from myosight.errors import MyosightError, SessionFormatError

if TYPE_CHECKING:
    import cv2

log = logging.getLogger(__name__)

JPEG_GROUP = "eye-tracking-video-world/frame_jpeg"
JPEG_DTYPE = h5py.vlen_dtype(np.dtype(np.uint8))
JPEG_QUALITY = 90
PARTIAL_SUFFIX = ".video-partial.mp4"
BLOCK_FRAMES = 256


def encode_jpeg(frame_bgr: np.ndarray) -> np.ndarray:
    import cv2

    ok, buffer = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise MyosightError(f"cannot encode a {frame_bgr.shape} frame as JPEG")
    return buffer.reshape(-1)


def partial_video_path(session_path: str | Path) -> Path:
    session_path = Path(session_path)
    return session_path.with_name(session_path.stem + PARTIAL_SUFFIX)


def world_video_path(session_path: str | Path, subject: str) -> Path:
    """The name the reader finds: the session's date-time prefix, the subject, the world-camera suffix."""
    session_path = Path(session_path)
    return session_path.with_name(f"{session_path.name[:19]}_{subject}_eye-tracking-video-world_frame.mp4")


class LiveVideo:
    """The mp4 written while recording, under the partial name; frames of another size are resized."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps if fps > 0 else 30.0
        self.count = 0
        self.failed = False
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the video, once the first frame set it."""
        return self._size

    def write(self, frame_bgr: np.ndarray) -> None:
        import cv2

        if self.failed:
            return
        if self._writer is None:
            self._size = (frame_bgr.shape[1], frame_bgr.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                self.failed = True
                log.warning("%s: OpenCV cannot write an mp4 here; the video will be made at the end", self.path)
                return
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self._size:
            frame_bgr = cv2.resize(frame_bgr, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame_bgr)
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def finish_video(session_path: Path, live: LiveVideo | None, frames_in_file: int, subject: str) -> Path | None:
    """Put the session's mp4 in place: the live one when it holds exactly the file's frames, else rebuilt."""
    partial = partial_video_path(session_path)
    if live is not None:
        live.close()
    if frames_in_file == 0:
        partial.unlink(missing_ok=True)
        return None
    if live is not None and not live.failed and live.count == frames_in_file \
            and _frame_count(partial) == frames_in_file:
        final = world_video_path(session_path, subject)
        os.replace(partial, final)
        return final
    return rebuild_video(session_path, subject)


@dataclass(frozen=True)
class Recovery:
    """What `recover_session` found and did: the session's video (None without frames), and whether it was
    rebuilt (False: the session was already whole)."""

    video: Path | None
    rebuilt: bool


def recover_session(session_path: str | Path) -> Recovery:
    """Make a session whole after a crash: the mp4 is rebuilt from the JPEG frames when it is missing or
    does not hold them all."""
    session_path = Path(session_path)
    with ActionSenseSession(session_path) as session:
        subject = session.subject or "S00"
        streams = session.streams()
    partial = partial_video_path(session_path)
    frames = min(streams.get(JPEG_GROUP, 0), streams.get(VIDEO_TIMESTAMP_GROUP, 0))
    if frames == 0:
        partial.unlink(missing_ok=True)
        return Recovery(None, rebuilt=False)
    final = world_video_path(session_path, subject)
    if final.is_file() and _frame_count(final) == frames:
        partial.unlink(missing_ok=True)
        return Recovery(final, rebuilt=False)
    return Recovery(rebuild_video(session_path, subject), rebuilt=True)


def unfinished_sessions(folder: str | Path) -> list[Path]:
    """Sessions in `folder` whose recording did not end cleanly (a partial mp4 is left) and that no recorder
    has open now (an open session file is locked)."""
    found = []
    for partial in sorted(Path(folder).glob(f"*{PARTIAL_SUFFIX}")):
        session = partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)] + ".hdf5")
        if not session.is_file():
            continue
        try:
            h5py.File(session, "r").close()
        except OSError:
            continue  # being written (locked) or unreadable: not ours to touch now
        found.append(session)
    return found


def rebuild_video(session_path: Path, subject: str) -> Path:
    """Write the mp4 from the session's JPEG rows (row i -> frame i), check it and move it into place."""
    from myosight.progress import ProgressBar

    partial = partial_video_path(session_path)
    with ActionSenseSession(session_path) as session:
        times = session.video_frame_times()
    try:
        with h5py.File(session_path, "r") as file:
            rows = file[f"{JPEG_GROUP}/data"]
            count = min(len(rows), len(times))
            fps = 1.0 / float(np.median(np.diff(times[:count]))) if count > 1 else 30.0
            live = LiveVideo(partial, fps)
            with ProgressBar(count, desc="world video", unit="frame", leave=False) as bar:
                for start in range(0, count, BLOCK_FRAMES):
                    _write_block(live, rows[start:min(start + BLOCK_FRAMES, count)], session_path)
                    bar.update(min(BLOCK_FRAMES, count - start))
    except (OSError, KeyError) as error:
        raise SessionFormatError(session_path, f"cannot read the JPEG frames ({error})", JPEG_GROUP) from error
    live.close()
    if live.failed or _frame_count(partial) != count:
        partial.unlink(missing_ok=True)
        raise MyosightError(f"{partial}: the world video could not be written completely (disk full?); the "
                            f"frames are safe in {session_path.name}: run `myosight record --recover "
                            f"{session_path}` once there is room")
    final = world_video_path(session_path, subject)
    os.replace(partial, final)
    return final


def _write_block(live: LiveVideo, jpegs: np.ndarray, session_path: Path) -> None:
    import cv2

    previous = None
    for jpeg in jpegs:
        frame = cv2.imdecode(np.asarray(jpeg, np.uint8), cv2.IMREAD_COLOR) if len(jpeg) else None
        if frame is None:  # keep row i = frame i: the previous frame (or black) stands in
            log.warning("%s: a damaged JPEG frame in the world video", session_path)
            width, height = live.size or (16, 16)
            frame = previous if previous is not None else np.zeros((height, width, 3), np.uint8)
        live.write(frame)
        previous = frame


def _frame_count(path: Path) -> int:
    """Frames in an mp4 (0 when it is missing or unreadable)."""
    from myosight.data.video import VideoFile

    if not path.is_file():
        return 0
    try:
        with VideoFile(path) as video:
            return video.frame_count
    except SessionFormatError:
        return 0

