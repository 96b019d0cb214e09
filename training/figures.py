"""Figures as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from myosight.paths import replaced_when_done


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_emg_spectrograms(
    spectrograms: np.ndarray, path: str | Path, title: str, clip_seconds: float = 1.0
) -> Path:
    """The Mel spectrograms of one sample, one panel per channel, the two arms as two rows of 8.

    `spectrograms` is (clips, 16, n_mels, frames); the clips are laid side by side along time, with the
    clip boundaries marked.
    """
    plt = _pyplot()
    clips, channels, n_mels, _ = spectrograms.shape
    joined = np.concatenate(list(spectrograms), axis=-1)  # (channels, n_mels, clips * frames)
    arms = ("left", "right")
    fig, axes = plt.subplots(2, channels // 2, figsize=(2.2 * channels // 2, 4.8), sharex=True, sharey=True)
    vmax = float(np.percentile(joined, 99.5)) or 1.0
    for c in range(channels):
        axis = axes[c // 8, c % 8]
        axis.imshow(joined[c], origin="lower", aspect="auto", cmap="magma", vmin=0.0, vmax=vmax,
                    extent=(0, clips * clip_seconds, 0, n_mels))
        for boundary in range(1, clips):
            axis.axvline(boundary * clip_seconds, color="white", linewidth=0.6, alpha=0.7)
        axis.set_title(f"{arms[c // 8]} ch {c % 8 + 1}", fontsize=8)
        if c % 8 == 0:
            axis.set_ylabel("Mel band")
        if c // 8 == 1:
            axis.set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_when_done(path) as temporary:
        fig.savefig(temporary, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(confusion: np.ndarray, classes: list[str], path: str | Path, title: str) -> Path:
    """A row-normalised confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    from myosight.data.activities import short_name

    plt = _pyplot()
    totals = confusion.sum(axis=1, keepdims=True)
    rates = np.divide(confusion, totals, out=np.zeros_like(confusion, dtype=float), where=totals > 0)
    size = max(5.0, 0.42 * len(classes) + 2.5)
    fig, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = [short_name(c)[:28] for c in classes]
    axis.set_xticks(range(len(classes)), names, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(range(len(classes)), names, fontsize=7)
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            axis.text(col, row, str(count), ha="center", va="center", fontsize=6,
                      color="white" if rates[row, col] > 0.5 else "black")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_when_done(path) as temporary:
        fig.savefig(temporary, dpi=110)
    plt.close(fig)
    return path
