"""The live Mel spectrograms of the model's sEMG channels (per arm, as in the paper's figure 3), clip after clip.

Each prediction carries the spectrogram of its newest clip (8 channels per arm of the model, left first,
x 10 Mel bands x 17 frames). The panel keeps the last clips side by side, so each channel reads as a
scrolling spectrogram; all channels of an arm are tiled into one image (one `ImageItem` per arm, one
texture upload per new clip). The plots follow the model's arms: one armband, one plot; they are built
again only when the arms change (another model), never per clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from myosight.arms import BOTH_ARMS
from myosight.gui.qt import QtCore, QtWidgets, pg

ARM_TITLES = {"left": "Mel spectrograms · left arm", "right": "Mel spectrograms · right arm"}
MEL_BANDS, CLIP_FRAMES = 10, 17  # the shape drawn before the first clip (the demo model's)


def tile_channels(clips: Sequence[np.ndarray], channels: range, width_clips: int) -> np.ndarray:
    """(rows, columns) image: each channel a band of Mel rows (lowest band at the bottom), clips left to right,
    the newest at the right; NaN (drawn transparent) between bands and where no clip is yet."""
    mel, frames = clips[0].shape[1:] if clips else (MEL_BANDS, CLIP_FRAMES)
    count = len(channels)
    image = np.full((count * (mel + 1) - 1, width_clips * frames), np.nan, np.float32)
    shown = list(clips)[-width_clips:]
    first_column = (width_clips - len(shown)) * frames
    for position, channel in enumerate(channels):
        row = (count - 1 - position) * (mel + 1)
        for index, clip in enumerate(shown):
            column = first_column + index * frames
            image[row:row + mel, column:column + frames] = clip[channel]
    return image


class SpectrogramPanel(pg.GraphicsLayoutWidget):
    """One image per arm of the model; x is seconds (one clip per second), newest clip ending at 0."""

    def __init__(self, arms: Sequence[str] = BOTH_ARMS, channels_per_arm: int = 8, clips: int = 10,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.channels_per_arm, self.clips = channels_per_arm, clips
        self.arms: tuple[str, ...] = ()
        self.plots: dict[str, pg.PlotItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.levels = (0.0, 1.0)
        self.clips_shown = 0
        self.show_arms(arms)

    def show_arms(self, arms: Sequence[str]) -> bool:
        """Lay the panel out for a model's arms (in channel order); True when that changed the layout.

        Called on every new prediction: the plots are rebuilt only when the arms differ from those shown,
        so a model of one armband shows one plot, and a worker restarted with another model gets its own."""
        arms = tuple(arms)
        if arms == self.arms:
            return False
        self.clear()
        self.arms, self.plots, self.images, self.clips_shown = arms, {}, {}, 0
        for index, arm in enumerate(arms):
            self._add_arm(index, arm)
        return True

    def _add_arm(self, index: int, arm: str) -> None:
        plot = self.addPlot(row=0, col=index, title=ARM_TITLES.get(arm, arm))
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        image = pg.ImageItem(axisOrder="row-major")
        image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        plot.addItem(image)
        prefix = arm[:1].upper()
        ticks = [((self.channels_per_arm - 1 - c) * (MEL_BANDS + 1) + MEL_BANDS / 2, f"{prefix}{c + 1}")
                 for c in range(self.channels_per_arm)]
        plot.getAxis("left").setTicks([ticks, []])
        plot.getAxis("left").setWidth(34)
        plot.setLabel("bottom", "seconds")
        plot.disableAutoRange()
        self.plots[arm], self.images[arm] = plot, image
        self._set_rect(arm, MEL_BANDS)

    def _set_rect(self, arm: str, mel: int) -> None:
        rows = self.channels_per_arm * (mel + 1) - 1
        self.images[arm].setRect(QtCore.QRectF(-self.clips, 0, self.clips, rows))
        self.plots[arm].setXRange(-self.clips, 0, padding=0)
        self.plots[arm].setYRange(0, rows, padding=0)

    def update_clips(self, clips: list[np.ndarray]) -> None:
        """Redraw from the latest clips (call only when a new one has arrived, after `show_arms`).

        Only clips with 8 channels per arm shown are drawn: while a worker restarts with a model of other
        arms, a clip of the old layout may still arrive, and it belongs to no plot here."""
        valid = [c for c in clips if c.ndim == 3 and c.shape[0] == self.channels_per_arm * len(self.arms)]
        self.clips_shown = min(len(valid), self.clips)
        if not valid:
            if not clips:
                for image in self.images.values():
                    image.clear()
            return
        high = float(np.percentile(np.stack(valid[-self.clips:]), 99.5))
        self.levels = (0.0, max(high, 1e-6))
        for index, arm in enumerate(self.arms):
            channels = range(index * self.channels_per_arm, (index + 1) * self.channels_per_arm)
            image = tile_channels(valid, channels, self.clips)
            self.images[arm].setImage(image, autoLevels=False, levels=self.levels)
            self._set_rect(arm, valid[-1].shape[1])
