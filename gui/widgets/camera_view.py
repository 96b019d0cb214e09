"""The camera view: the frames the model sees, and a strip marking the 5 clips of the last prediction.

The strip spans the last prediction's window (its 5 clips, from `clip_starts` to `window_end`) and runs on to
the time of the frame shown, so a user sees where the model's window lies relative to "now" (the gap is
the decision latency plus the hop between windows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from myosight.gui.qt import QtCore, QtGui, QtWidgets

CLIP_COLOURS = ("#3d7ea6", "#5a9bc4", "#3d7ea6", "#5a9bc4", "#3d7ea6")


class FrameView(QtWidgets.QWidget):
    """Paints the newest RGB frame, scaled to fit and centred; a note when there is none."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QtGui.QImage | None = None
        self.note = "no video stream"
        self.setMinimumSize(160, 160)

    def set_frame(self, frame: np.ndarray | None) -> None:
        if frame is None:
            self.image = None
        else:
            frame = np.ascontiguousarray(frame)
            height, width = frame.shape[:2]
            self.image = QtGui.QImage(frame.data, width, height, 3 * width, QtGui.QImage.Format.Format_RGB888).copy()
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor("#06080a"))
        if self.image is None:
            painter.setPen(QtGui.QColor("#7a8590"))
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, self.note)
        else:
            side = min(self.width(), self.height())
            target = QtCore.QRect((self.width() - side) // 2, (self.height() - side) // 2, side, side)
            painter.drawImage(target, self.image)
        painter.end()


class ClipStrip(QtWidgets.QWidget):
    """Five clip boxes of the last prediction's window, and a line at the shown frame's time."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.clip_starts: list[float] = []
        self.clip_seconds = 1.0
        self.window_end: float | None = None
        self.now: float | None = None
        self.setFixedHeight(34)

    def set_window(self, clip_starts: Sequence[float], window_end: float | None, now: float | None) -> None:
        self.clip_starts = [float(s) for s in clip_starts]
        self.window_end = window_end
        if window_end is not None and self.clip_starts and window_end > self.clip_starts[-1]:
            self.clip_seconds = window_end - self.clip_starts[-1]  # the last clip ends with the window
        self.now = now
        self.update()

    @property
    def lag_s(self) -> float | None:
        """How far the shown frame is past the end of the predicted window."""
        return None if self.now is None or self.window_end is None else self.now - self.window_end

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor("#101418"))
        if not self.clip_starts or self.window_end is None:
            painter.setPen(QtGui.QColor("#7a8590"))
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "clips of the next window")
            painter.end()
            return
        start = self.clip_starts[0]
        stop = max(self.window_end, self.now if self.now is not None else self.window_end) + 0.05
        scale = (self.width() - 4) / max(stop - start, 1e-6)
        for index, clip in enumerate(self.clip_starts):
            left = 2 + (clip - start) * scale
            box = QtCore.QRectF(left, 4, self.clip_seconds * scale - 2, self.height() - 18)
            painter.fillRect(box, QtGui.QColor(CLIP_COLOURS[index % len(CLIP_COLOURS)]))
            painter.setPen(QtGui.QColor("#e8eef2"))
            painter.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, str(index + 1))
        if self.now is not None:
            x = 2 + (self.now - start) * scale
            painter.setPen(QtGui.QPen(QtGui.QColor("#ff5a5a"), 2))
            painter.drawLine(QtCore.QPointF(x, 2), QtCore.QPointF(x, self.height() - 12))
        lag = self.lag_s
        painter.setPen(QtGui.QColor("#9aa5b0"))
        caption = "last window" + (f" · frame {lag:+.1f} s after it" if lag is not None else "")
        painter.drawText(QtCore.QRectF(2, self.height() - 13, self.width() - 4, 12),
                         QtCore.Qt.AlignmentFlag.AlignLeft, caption)
        painter.end()


class CameraView(QtWidgets.QWidget):
    """Frame on top, clip strip below."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.frame = FrameView()
        self.strip = ClipStrip()
        layout.addWidget(self.frame, 1)
        layout.addWidget(self.strip)
        self.frames_shown = 0

    def show_frame(self, frame: np.ndarray | None) -> None:
        self.frame.set_frame(frame)
        self.frames_shown += frame is not None
