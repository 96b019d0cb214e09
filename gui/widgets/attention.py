"""Per-clip attention of a self-attention head (the paper's figure 6): 2 rows (RGB, sEMG) x 5 tiles.

A clip's weight is the mean attention it receives; with 5 clips a uniform head gives 0.2 each. Tiles are
coloured on a fixed scale from 0 to twice the uniform weight, so colours compare across windows. Only weights a
prediction carries are drawn: a head without clip attention (the Late Fusion heads, PAR included, average their
clips) sends none, and the panel says so in words, never with tiles of 0.2 that would look measured.
"""

from __future__ import annotations

import numpy as np

from myosight.gui.qt import QtCore, QtGui, QtWidgets, pg
from myosight.realtime.messages import PredictionMessage

ROWS = (("rgb", "RGB"), ("emg", "sEMG"))
NO_ATTENTION = "this model has no clip attention"
WAITING = "clip attention: waiting for the first prediction"


class AttentionTiles(QtWidgets.QWidget):
    """Coloured tiles with their values; a note instead when the prediction has no attention."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.weights: dict[str, np.ndarray] = {}
        self.note: str | None = WAITING  # the text drawn instead of tiles (None while tiles are drawn)
        self.colormap = pg.colormap.get("inferno")
        self.setMinimumHeight(64)

    def show_attention(self, message: PredictionMessage | None) -> None:
        self.weights = dict(message.attention) if message is not None and message.attention else {}
        self.note = _note(message)
        self.update()

    def tile_text(self, modality: str) -> list[str]:
        """The values as drawn on the tiles of one row."""
        return [f"{w:.2f}" for w in self.weights.get(modality, [])]

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QtGui.QPainter(self)
        painter.setPen(QtGui.QColor("#c8d0d8"))
        if not self.weights:
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, self.note or NO_ATTENTION)
            painter.end()
            return
        label_width, row_height = 46, (self.height() - 2) / len(ROWS)
        for row, (key, title) in enumerate(ROWS):
            top = 1 + row * row_height
            painter.setPen(QtGui.QColor("#c8d0d8"))
            painter.drawText(QtCore.QRectF(0, top, label_width - 4, row_height),
                             QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter, title)
            self._paint_row(painter, self.weights.get(key), label_width, top, row_height)
        painter.end()

    def _paint_row(self, painter: QtGui.QPainter, weights: np.ndarray | None, left: float, top: float,
                   height: float) -> None:
        if weights is None or len(weights) == 0:
            return
        width = (self.width() - left) / len(weights)
        top_of_scale = 2.0 / len(weights)
        for index, weight in enumerate(weights):
            colour = self.colormap.map(float(np.clip(weight / top_of_scale, 0, 1)), mode="qcolor")
            box = QtCore.QRectF(left + index * width + 1, top + 1, width - 2, height - 2)
            painter.fillRect(box, colour)
            painter.setPen(QtGui.QColor("#000000" if colour.lightness() > 128 else "#ffffff"))
            painter.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, f"{weight:.2f}")


def _note(message: PredictionMessage | None) -> str | None:
    """What the panel says instead of tiles: why there are no weights (None when there are)."""
    if message is None:
        return WAITING
    if message.attention is not None:
        return None
    if message.mode == "emg":  # an attention head's sEMG-only fallback has none either
        return f"{NO_ATTENTION} while it predicts from sEMG alone"
    return NO_ATTENTION
