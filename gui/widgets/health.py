"""Health: each stream's rate, gaps, dropouts and clock offset, the worker's latency and load, and a banner
that says when a stream is lost, when it is back, and when a process stopped."""

from __future__ import annotations

from dataclasses import dataclass, field

from myosight.gui.qt import QtCore, QtWidgets
from myosight.gui.state import Snapshot, StreamView
from myosight.realtime.messages import StreamStatus

COLUMNS = ("stream", "state", "rate (Hz)", "gaps", "dropouts", "clock offset (ms)")
LEVELS = {"info": 0, "ok": 1, "warning": 2, "error": 3}
BANNER_STYLES = {"info": "background:#23415a; color:#e8f1f8;", "ok": "background:#1f5a32; color:#eafbe9;",
                 "warning": "background:#6b5312; color:#fff6dc;", "error": "background:#7a1f1f; color:#ffecec;"}


@dataclass
class BannerModel:
    """Turns successive health views into banner lines; a stream that comes back is announced for
    `back_visible_s` seconds, then the banner clears."""

    back_visible_s: float = 4.0
    silent_after_s: float = 5.0
    lost: set[str] = field(default_factory=set)
    back: dict[str, float] = field(default_factory=dict)

    def update(self, now: float, snapshot: Snapshot, notices: list[tuple[str, str]], expect_worker: bool,
               ) -> tuple[str, str] | None:
        lost_now, missing, troubled = self._stream_states(snapshot)
        paused = bool(snapshot.replay and snapshot.replay.get("paused"))
        for name in self.lost - lost_now:
            self.back[name] = now
        self.lost = set() if paused else lost_now
        self.back = {name: t for name, t in self.back.items()
                     if now - t < self.back_visible_s and name not in self.lost}
        lines = list(notices)
        if paused:
            lines.append(("info", "Replay paused"))
        if self.lost:
            lines.append(("error", "Stream lost: " + ", ".join(sorted(self.lost)) + " (no data)"))
        if missing:
            lines.append(("warning", "Stream missing: " + ", ".join(sorted(missing))))
        for name, problem in sorted(troubled.items()):
            lines.append(("warning", f"{name} {problem}"))
        if self.back:
            lines.append(("ok", "Stream back: " + ", ".join(sorted(self.back))))
        age = snapshot.health_age_s
        if expect_worker and age is not None and age > self.silent_after_s:
            lines.append(("error", f"No results from the worker for {age:.0f} s"))
        if not lines:
            return None
        level = max((lvl for lvl, _ in lines), key=LEVELS.__getitem__)
        return level, " · ".join(text for _, text in lines)

    def _stream_states(self, snapshot: Snapshot) -> tuple[set[str], set[str], dict[str, str]]:
        """The streams lost, missing, and delivering with a problem (stuck channels), as the worker last said."""
        lost = {name for name, view in snapshot.streams.items() if view.lost}
        missing: set[str] = set()
        troubled: dict[str, str] = {}
        health = snapshot.health
        fresh = health is not None and (snapshot.health_age_s or 0) <= self.silent_after_s
        for name, stream in (health.streams if health is not None and fresh else {}).items():
            if stream.missing:
                missing.add(name)
            elif stream.lost and started(stream):
                lost.add(name)
            elif (problem := stream.problem()) is not None:
                troubled[name] = problem
        return lost - missing, missing, troubled


def started(stream: StreamStatus) -> bool:
    """Whether the worker has had data on a stream (one that has not started yet is waited for, not lost)."""
    return stream.samples != 0


class Banner(QtWidgets.QLabel):
    """A full-width line above everything; hidden when there is nothing to say."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setMinimumHeight(28)
        self.level: str | None = None
        self.hide()

    def show_line(self, line: tuple[str, str] | None) -> None:
        if line is None:
            self.level = None
            self.hide()
            return
        level, text = line
        if level != self.level:
            self.setStyleSheet(BANNER_STYLES[level] + "font-weight:bold; padding:4px; border-radius:3px;")
            self.level = level
        if text != self.text():
            self.setText(text)
        self.show()


class HealthPanel(QtWidgets.QWidget):
    """A table of streams and a line of worker figures (both refreshed at most a few times a second)."""

    WORKER_FIELDS = (("latency_p50_ms", "latency p50 (ms)"), ("latency_p95_ms", "latency p95 (ms)"),
                     ("realtime_factor", "real-time factor"), ("windows_predicted", "windows predicted"),
                     ("windows_skipped", "windows skipped"), ("mode", "mode"), ("hop_s", "decision hop"))

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.table.setMaximumHeight(118)
        layout.addWidget(self.table)
        grid = QtWidgets.QGridLayout()
        self.worker_values: dict[str, QtWidgets.QLabel] = {}
        for index, (key, title) in enumerate(self.WORKER_FIELDS):
            value = QtWidgets.QLabel("–")
            value.setObjectName("value")
            grid.addWidget(QtWidgets.QLabel(title), index // 3 * 2, index % 3)
            grid.addWidget(value, index // 3 * 2 + 1, index % 3)
            self.worker_values[key] = value
        layout.addLayout(grid)
        self.display = QtWidgets.QLabel("")
        self.display.setObjectName("small")
        layout.addWidget(self.display)

    def show_health(self, snapshot: Snapshot) -> None:
        health = snapshot.health
        rows = self._rows(health.streams if health is not None else {}, snapshot)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = self.table.item(r, c)
                if item is None:
                    self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
                elif item.text() != text:
                    item.setText(text)
        for key, label in self.worker_values.items():
            label.setText(_format(key, getattr(health, key) if health is not None else None))
        hop = self.worker_values["hop_s"]
        coarsened = health.hop_coarsened if health is not None else 0
        hop.setToolTip(f"made coarser {coarsened} time(s) to keep up" if coarsened > 0 else "")

    def cell(self, stream: str, column: str) -> str | None:
        """The text shown for a stream in a column (None when the stream has no row)."""
        for r in range(self.table.rowCount()):
            name, cell = self.table.item(r, 0), self.table.item(r, COLUMNS.index(column))
            if name is not None and name.text() == stream:
                return cell.text() if cell is not None else None
        return None

    def _rows(self, worker_streams: dict[str, StreamStatus], snapshot: Snapshot) -> list[list[str]]:
        names = sorted(set(worker_streams) | set(snapshot.streams))
        return [_row(name, worker_streams.get(name), snapshot.streams.get(name)) for name in names]

    def show_display_rate(self, fps: float, slowest_ms: float) -> None:
        self.display.setText(f"display {fps:.0f} fps · slowest frame {slowest_ms:.0f} ms (last 5 s)")


def _row(name: str, stream: StreamStatus | None, local: StreamView | None) -> list[str]:
    """A stream's cells: the worker's figures where it sent them, the viewer's own rate otherwise."""
    worker = stream if stream is not None else StreamStatus(lost=False)
    rate = worker.rate_hz if worker.rate_hz is not None else (local.rate_hz if local else None)
    dropped = worker.backwards_dropped
    dropouts = "–" if worker.lost_events is None else str(worker.lost_events) + (
        f" (+{dropped} samples)" if dropped else "")
    return [name, _state(stream, local), _number(rate, 1), _number(worker.gaps, 0), dropouts,
            _number(worker.clock_offset_ms, 2)]


def _state(stream: StreamStatus | None, local: StreamView | None) -> str:
    """The worker's view of a stream where it has one, the viewer's own inlet otherwise."""
    if stream is not None and stream.missing:
        return "missing"
    if (stream is not None and stream.lost and started(stream)) or (local is not None and local.lost):
        return "lost"
    if (stream is not None and not started(stream)) or (stream is None and local is not None and local.samples == 0):
        return "waiting"
    return (stream.problem() if stream is not None else None) or "ok"


def _number(value: object, digits: int) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return "–"


def _format(key: str, value: object) -> str:
    if key == "mode":
        return str(value) if value else "–"
    if key == "realtime_factor":
        return _number(value, 2)
    if key == "hop_s":
        return "–" if value is None else f"{value:.2f} s"
    if key.startswith("windows"):
        return _number(value, 0)
    return _number(value, 1)
