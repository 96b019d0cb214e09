"""The prediction panel: the action in large type, the top classes as bars, the recent history, the true
label and running accuracy of a labelled replay, and the Kinetics top-3 of the frozen I3D."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from myosight.data.activities import short_name
from myosight.gui.qt import QtCore, QtGui, QtWidgets, pg
from myosight.realtime.messages import PredictionMessage

TOP_CLASSES = 5


def class_colour(index: int, count: int) -> QtGui.QColor:
    return pg.intColor(index, hues=max(count, 1), values=1, maxValue=220, sat=160)


class ProbabilityBars(QtWidgets.QWidget):
    """Horizontal bars of the top classes with their probabilities; the true class is outlined."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.bars: list[tuple[str, float, int]] = []  # (class, probability, class index)
        self.classes: list[str] = []
        self.true_label: str | None = None
        self.setFixedHeight(TOP_CLASSES * 24 + 4)

    def set_probabilities(self, classes: Sequence[str], probs: np.ndarray, true_label: str | None) -> None:
        self.classes = list(classes)
        order = np.argsort(-probs)[:TOP_CLASSES]
        self.bars = [(self.classes[i], float(probs[i]), int(i)) for i in order]
        self.true_label = true_label
        self.update()

    def values(self) -> dict[str, float]:
        """Shown class -> probability."""
        return {name: p for name, p, _ in self.bars}

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QtGui.QPainter(self)
        row = max(16, min(26, (self.height() - 4) // TOP_CLASSES))
        name_width = int(self.width() * 0.42)
        bar_room = self.width() - name_width - 52
        for k, (name, p, index) in enumerate(self.bars):
            top = 2 + k * row
            painter.setPen(QtGui.QColor("#dfe6ec"))
            text = painter.fontMetrics().elidedText(short_name(name), QtCore.Qt.TextElideMode.ElideRight,
                                                     name_width - 6)
            painter.drawText(QtCore.QRect(0, top, name_width - 6, row), _right_centre(), text)
            box = QtCore.QRectF(name_width, top + 3, max(1.0, p * bar_room), row - 6)
            painter.fillRect(box, class_colour(index, len(self.classes)))
            if name == self.true_label:
                painter.setPen(QtGui.QPen(QtGui.QColor("#ffffff"), 2))
                painter.drawRect(QtCore.QRectF(name_width, top + 3, bar_room, row - 6))
            painter.setPen(QtGui.QColor("#dfe6ec"))
            painter.drawText(QtCore.QRect(self.width() - 50, top, 50, row), _right_centre(), f"{100 * p:.0f} %")
        painter.end()


def _right_centre() -> QtCore.Qt.AlignmentFlag:
    return QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter


class HistoryStrip(QtWidgets.QWidget):
    """The recent predictions, oldest left: one chip per window in its class colour; a tick or a cross
    underneath when the true label is known."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[tuple[str, str | None]] = []
        self.classes: list[str] = []
        self.setFixedHeight(30)

    def set_history(self, items: list[tuple[str, str | None]], classes: Sequence[str]) -> None:
        self.items, self.classes = list(items), list(classes)
        self.setToolTip("\n".join(f"{label}" + (f"  (true: {true})" if true else "") for label, true in self.items))
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QtGui.QPainter(self)
        slots = max(len(self.items), 12)
        width = self.width() / slots
        for k, (label, true) in enumerate(self.items):
            index = self.classes.index(label) if label in self.classes else 0
            box = QtCore.QRectF(k * width + 1, 2, width - 2, 16)
            painter.fillRect(box, class_colour(index, len(self.classes)))
            if true:
                painter.setPen(QtGui.QColor("#7ee081" if true == label else "#ff6b6b"))
                painter.drawText(QtCore.QRectF(k * width, 18, width, 12), QtCore.Qt.AlignmentFlag.AlignCenter,
                                 "✓" if true == label else "✗")
        painter.end()


class PredictionPanel(QtWidgets.QWidget):
    """Everything about the newest prediction."""

    def __init__(self, kinetics_labels: Sequence[str] | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.kinetics_labels = list(kinetics_labels) if kinetics_labels else None
        self.shown: PredictionMessage | None = None  # the message on screen now
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        self.label = QtWidgets.QLabel("waiting for the first prediction …")
        self.label.setObjectName("predictionLabel")
        self.label.setWordWrap(True)
        self.confidence = QtWidgets.QLabel("")
        self.truth = QtWidgets.QLabel("")
        self.accuracy = QtWidgets.QLabel("")
        self.bars = ProbabilityBars()
        self.history = HistoryStrip()
        self.kinetics = QtWidgets.QLabel("")
        self.kinetics.setObjectName("small")
        self.detail = QtWidgets.QLabel("")
        self.detail.setObjectName("small")
        line = QtWidgets.QHBoxLayout()
        line.addWidget(self.confidence)
        line.addStretch(1)
        line.addWidget(self.accuracy)
        layout.addWidget(self.label)
        layout.addLayout(line)
        layout.addWidget(self.truth)
        layout.addWidget(self.bars)
        layout.addWidget(self.history)
        layout.addWidget(self.kinetics)
        layout.addWidget(self.detail)
        layout.addStretch(1)

    def show_prediction(self, message: PredictionMessage | None, history: list[tuple[str, str | None]], scored: int,
                        correct: int) -> None:
        self.shown = message
        if message is None:
            self.label.setText("waiting for the first prediction …")
            for widget in (self.confidence, self.truth, self.accuracy, self.kinetics, self.detail):
                widget.setText("")
            self.bars.set_probabilities([], np.zeros(0), None)
            self.history.set_history([], [])
            return
        probs, true_label = message.probs, message.true_label
        self.label.setText(short_name(message.label))
        self.label.setToolTip(message.label)
        self.confidence.setText(f"p = {float(probs.max()):.2f} · {message.mode}")
        self.truth.setText(f"true: {short_name(true_label)}" if true_label else "true: –")
        colour = "#7ee081" if true_label == message.label else "#ff8a80"
        self.truth.setStyleSheet(f"color: {colour};" if true_label else "")
        self.accuracy.setText(f"running accuracy {100 * correct / scored:.1f} % of {scored}" if scored else "")
        self.bars.set_probabilities(message.classes, probs, true_label)
        self.history.set_history(history, message.classes)
        self.kinetics.setText(self._kinetics_text(message))
        self.detail.setText(f"latency {message.latency_ms:.0f} ms · compute {message.compute_ms:.0f} ms · "
                            f"window ends {message.window_end:.1f} s")

    def _kinetics_text(self, message: PredictionMessage) -> str:
        """The Kinetics top classes, or why there are none (the message leaves them out; none is faked)."""
        if message.kinetics is None:
            why = "sEMG only" if message.mode == "emg" else "no new clip"
            return f"I3D (Kinetics-400) sees: – ({why})"
        kinetics = message.kinetics
        names = [self._kinetics_name(int(i)) for i in kinetics.indices]
        return "I3D (Kinetics-400) sees: " + " · ".join(f"{n} {p:.2f}"
                                                        for n, p in zip(names, kinetics.probs, strict=True))

    def _kinetics_name(self, index: int) -> str:
        if self.kinetics_labels and 0 <= index < len(self.kinetics_labels):
            return self.kinetics_labels[index]
        return f"class {index}"
