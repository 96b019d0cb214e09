"""Scrolling sEMG traces: one plot per stream (arm), all its channels stacked and labelled.

Drawing cost, not data, limits a live plot: one curve per channel with its own `setData` falls to about
10 frames per second at 16 x 2000 points. Here each stream is a single curve: its channels are
concatenated with a NaN between them (pyqtgraph then breaks the line there) and shifted to their own
row, and each channel is first reduced to at most two points (min and max) per horizontal pixel, so the
work per frame depends on the plot's width rather than on the sampling rate. Ranges are fixed: nothing
autoscales per frame.

The viewer shows the sEMG streams its source has (one armband or two): `present_streams` says which, and
`EmgTraces.show_streams` lays the plots out again only when that set changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from myosight.gui.qt import QtWidgets, pg

STREAM_COLOURS = ("#4fc3c9", "#f0a050", "#a0d060", "#d080e0")
FULL_SCALE = 128.0  # Myo units: int8 samples
#: The sEMG streams of a source, in the order they are drawn (left above right).
EMG_STREAMS = ("emg-left", "emg-right")


def present_streams(names: Iterable[str]) -> tuple[str, ...]:
    """The sEMG streams to draw, from the names of the streams the viewer has (inlets and sample rings).

    Left above right, any other sEMG stream after them. Before any stream is there both arms are drawn
    (empty), so the window does not look broken while a source starts."""
    found = {name for name in names if name.startswith("emg-")}
    if not found:
        return EMG_STREAMS
    return (*(name for name in EMG_STREAMS if name in found), *sorted(found - set(EMG_STREAMS)))


def peak_decimate(times: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce to at most `max_points` points per channel: each bin's minimum, then its maximum."""
    n = len(times)
    if n <= max_points or max_points < 2:
        return times, values
    per_bin = -(-n // (max_points // 2))
    bins = -(-n // per_bin)
    pad = bins * per_bin - n  # the oldest bin is filled up with copies of the oldest sample
    if pad:
        times = np.concatenate([np.full(pad, times[0]), times])
        values = np.concatenate([np.repeat(values[:1], pad, axis=0), values])
    shaped = values.reshape(bins, per_bin, -1)
    low, high = shaped.min(axis=1), shaped.max(axis=1)
    bin_times = times.reshape(bins, per_bin)
    out_t = np.stack([bin_times[:, 0], bin_times[:, -1]], axis=1).reshape(-1)
    out_v = np.stack([low, high], axis=1).reshape(2 * bins, -1)
    return out_t, out_v


def stacked_curve(times: np.ndarray, values: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y of all channels in one NaN-separated line; channel c is centred on row (channels - 1 - c)."""
    n, channels = values.shape
    rows = channels - 1 - np.arange(channels)
    x = np.empty((channels, n + 1))
    y = np.empty((channels, n + 1))
    x[:, :n] = times
    x[:, n] = np.nan
    y[:, :n] = values.T * (0.5 / scale) + rows[:, None]
    y[:, n] = np.nan
    return x.reshape(-1), y.reshape(-1)


class EmgTraces(pg.GraphicsLayoutWidget):
    """Traces of several streams of `channels` channels each, the last `seconds` seconds, newest at 0."""

    def __init__(self, streams: Sequence[str] = EMG_STREAMS, channels: int = 8, seconds: float = 10.0,
                 titles: Sequence[str] | None = None, naive: bool = False, parent: QtWidgets.QWidget | None = None,
                 ) -> None:
        super().__init__(parent=parent)
        self.channels, self.seconds, self.naive = channels, seconds, naive
        self.scale = FULL_SCALE
        self.streams: list[str] = []
        self.plots: dict[str, pg.PlotItem] = {}
        self.titles: dict[str, str] = {}
        self.curves: dict[str, list[pg.PlotCurveItem]] = {}
        self.points_drawn = 0
        self._build(streams, titles)

    def show_streams(self, streams: Sequence[str], devices: Mapping[str, str | None] | None = None) -> bool:
        """Draw these streams (one plot each, in this order), each titled with its arm and, where its stream
        says, the armband streaming it; True when that changed the plots.

        Called from every frame: the plots and curves are built again only when the streams differ from
        those drawn (a source with one armband, or another source), a title only when it changes."""
        titles = [_title(stream, (devices or {}).get(stream)) for stream in streams]
        if list(streams) == self.streams:
            for stream, title in zip(streams, titles, strict=True):
                if self.titles.get(stream) != title:
                    self.plots[stream].setTitle(title)
                    self.titles[stream] = title
            return False
        self.clear()
        self._build(streams, titles)
        return True

    def _build(self, streams: Sequence[str], titles: Sequence[str] | None) -> None:
        self.streams, self.plots, self.curves = list(streams), {}, {}
        titles = list(titles or [_title(s) for s in self.streams])
        self.titles = dict(zip(self.streams, titles, strict=True))
        for index, (stream, title) in enumerate(zip(self.streams, titles, strict=True)):
            plot = self.addPlot(row=index, col=0, title=title)
            self._configure(plot, stream, index == len(self.streams) - 1)
            colour = _colour(stream, index)
            count = self.channels if self.naive else 1
            self.curves[stream] = [pg.PlotCurveItem(pen=pg.mkPen(colour, width=1), skipFiniteCheck=not self.naive)
                                   for _ in range(count)]
            for curve in self.curves[stream]:
                plot.addItem(curve)
            self.plots[stream] = plot

    def _configure(self, plot: pg.PlotItem, stream: str, last: bool) -> None:
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.disableAutoRange()
        plot.setXRange(-self.seconds, 0, padding=0)
        plot.setYRange(-0.6, self.channels - 0.4, padding=0)
        prefix = "L" if "left" in stream else ("R" if "right" in stream else stream[:1].upper())
        step = max(1, self.channels // 16)
        ticks = [(self.channels - 1 - c, f"{prefix}{c + 1}") for c in range(0, self.channels, step)]
        plot.getAxis("left").setTicks([ticks, []])
        plot.getAxis("left").setWidth(34)
        plot.showAxis("bottom", last)
        if last:
            plot.setLabel("bottom", "seconds")

    def update_traces(self, emg: dict[str, tuple[np.ndarray, np.ndarray]], newest: float | None) -> None:
        """Draw the latest samples; `newest` (the newest timestamp of all streams) is time zero."""
        self.points_drawn = 0
        if newest is None:
            return
        for stream, curves in self.curves.items():
            times, values = emg.get(stream, (np.zeros(0), np.zeros((0, self.channels))))
            if len(times) < 2:
                for curve in curves:
                    curve.setData([], [])
                continue
            width = max(64, int(self.plots[stream].vb.width()))
            times, values = peak_decimate(times - newest, values[:, :self.channels], 2 * width)
            self._draw(curves, times, values)

    def _draw(self, curves: list[pg.PlotCurveItem], times: np.ndarray, values: np.ndarray) -> None:
        if self.naive:
            rows = self.channels - 1 - np.arange(self.channels)
            for channel, curve in enumerate(curves):
                curve.setData(times, values[:, channel] * (0.5 / self.scale) + rows[channel])
        else:
            x, y = stacked_curve(times, values, self.scale)
            curves[0].setData(x, y, connect="finite")
        self.points_drawn += values.size

    def curve_points(self, stream: str) -> int:
        """How many finite points the stream's curve holds now (for tests and the benchmark)."""
        return sum(int(np.isfinite(c.getData()[1]).sum()) for c in self.curves[stream] if c.getData()[1] is not None)


def _colour(stream: str, index: int) -> str:
    """An arm keeps its colour whether or not the other arm is drawn; other streams take theirs by position."""
    position = EMG_STREAMS.index(stream) if stream in EMG_STREAMS else index
    return STREAM_COLOURS[position % len(STREAM_COLOURS)]


def _title(stream: str, device: str | None = None) -> str:
    """'sEMG · left arm', and which armband streams it where its stream says (a wrong arm shows here)."""
    title = {"emg-left": "sEMG · left arm", "emg-right": "sEMG · right arm"}.get(stream, stream)
    return f"{title} · {device}" if device else title
