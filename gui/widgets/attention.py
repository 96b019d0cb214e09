"""Per-clip attention of a self-attention head (the paper's figure 6): 2 rows (RGB, sEMG) x 5 tiles.

A clip's weight is the mean attention it receives; with 5 clips a uniform head gives 0.2 each. Tiles are
coloured on a fixed scale from 0 to twice the uniform weight, so colours compare across windows.
"""

from __future__ import annotations

import numpy as np

from myosight.gui.qt import QtCore, QtGui, QtWidgets, pg
from myosight.realtime.messages import Message

ROWS = (("rgb", "RGB"), ("emg", "sEMG"))


class AttentionTiles(QtWidgets.QWidget):
    """Coloured tiles with their values; a note when the model has no attention."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.weights: dict[str, np.ndarray] = {}
        self.colormap = pg.colormap.get("inferno")
        self.setMinimumHeight(64)

    def show_attention(self, message: Message | None) -> None:
        arrays = message.arrays if message is not None else {}
        self.weights = {key: np.asarray(arrays[f"attention_{key}"], np.float32).reshape(-1)
                        for key, _ in ROWS if f"attention_{key}" in arrays}
        self.update()

    def tile_text(self, modality: str) -> list[str]:
        """The values as drawn on the tiles of one row."""
        return [f"{w:.2f}" for w in self.weights.get(modality, [])]

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QtGui.QPainter(self)
        painter.setPen(QtGui.QColor("#c8d0d8"))
        if not self.weights:
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter,
                             "clip attention: this model has none")
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
