"""The paper's figures from a dataset directory: fig. 2 (PCA + nearest neighbours of the RGB features),
fig. 3 (sEMG Mel spectrograms), fig. 4 (confusion matrix of the sEMG model) and fig. 6 (per-clip attention).

Fig. 2 answers "do the frozen I3D features separate the actions?": a 2-D PCA of the clip-averaged features
coloured by class, and for a few query samples the central frames of their nearest neighbours in the full
feature space, so a reader sees what the features consider similar. Neighbours use cosine distance: the
features are non-negative averages whose overall scale varies with scene brightness and motion, which
cosine ignores. Fig. 6 shows how much each clip counted in a self-attention head's prediction, per modality.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from myosight.training.figures import _pyplot

#: Longest side of a thumbnail kept in memory for fig. 2 (pixels); the figure shows them small anyway.
THUMBNAIL_SIDE = 160


# -- feature geometry -----------------------------------------------------------------------------------


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> the (N, 2) projection on the first two principal axes and their explained-variance ratios."""
    x = np.asarray(features, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    ratio = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:  # a single sample or a single feature: pad the missing axis
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        ratio = np.pad(ratio, (0, 2 - len(ratio)))
    return coords, ratio


def cosine_distances(features: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(Q, N) cosine distances (1 - cosine similarity) between rows of `queries` and rows of `features`."""
    def unit(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    return 1.0 - unit(queries) @ unit(features).T


def nearest_neighbours(
    features: np.ndarray, query_indices: Sequence[int], k: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest samples (cosine distance) to each query sample, the query itself excluded.

    Returns (indices (Q, k), distances (Q, k)), nearest first; ties keep the lower sample index first.
    """
    features = np.asarray(features)
    queries = np.asarray(query_indices, dtype=np.int64)
    k = min(k, len(features) - 1)
    distances = cosine_distances(features, features[queries])
    distances[np.arange(len(queries)), queries] = np.inf
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, axis=1)


def choose_queries(
    features: np.ndarray, labels: np.ndarray, count: int = 3, eligible: np.ndarray | None = None
) -> list[int]:
    """`count` query samples from different classes, the same on every run.

    The classes are spread evenly over the sorted classes that have an `eligible` sample (default: all);
    each query is its class's most typical eligible sample (nearest, by cosine, to the class mean), so the
    neighbour strips show a class's core rather than an outlier.
    """
    features, labels = np.asarray(features), np.asarray(labels)
    eligible = np.ones(len(labels), bool) if eligible is None else np.asarray(eligible, bool)
    present = np.unique(labels[eligible])
    if len(present) == 0:
        return []
    picks = present[np.unique(np.linspace(0, len(present) - 1, min(count, len(present))).round().astype(int))]
    queries = []
    for label in picks:
        centre = features[labels == label].mean(axis=0, keepdims=True)
        members = np.flatnonzero((labels == label) & eligible)
        queries.append(int(members[np.argmin(cosine_distances(features[members], centre)[0])]))
    return queries


# -- frames ---------------------------------------------------------------------------------------------


def central_frame(
    video_path: str | Path, frame_times: np.ndarray, start_s: float, sample_seconds: float = 5.0
) -> np.ndarray:
    """The RGB uint8 frame nearest the middle of the sample that starts at `start_s`.

    `frame_times` are the epoch times of the video's frames (row i = frame i, as the session stores them),
    so the frame is picked on the recording's clock rather than from the container's nominal rate.
    """
    from myosight.data.video import VideoFile
    from myosight.errors import SessionFormatError

    times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    if len(times) == 0:
        raise SessionFormatError(video_path, "no frame timestamps to locate the sample's central frame")
    centre = float(start_s) + sample_seconds / 2.0
    with VideoFile(video_path) as video:
        last = min(len(times), video.frame_count) - 1
        index = int(np.argmin(np.abs(times[: last + 1] - centre))) if last >= 0 else 0
        frame = video.read([index])[0]
    return np.ascontiguousarray(frame[:, :, ::-1])


def _shrink(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=cv2.INTER_AREA)


# -- figures --------------------------------------------------------------------------------------------


def _class_colours(count: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab20" if count > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(count)]


def _wrap(text: str, width: int = 22, lines: int = 2) -> str:
    """At most `lines` lines of `width` characters, breaking after slashes too (long activity names)."""
    wrapped = textwrap.wrap(text.replace("/", "/ "), width, break_long_words=True)[:lines]
    return "\n".join(line.replace("/ ", "/") for line in wrapped) or text


def plot_feature_pca(
    features: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    thumbnails: Sequence[np.ndarray | None] | None,
    path: str | Path,
    k: int = 5,
    queries: int = 3,
    title: str = "RGB features (I3D, mean over clips)",
) -> Path:
    """Fig. 2: PCA scatter of `features` (N, D) coloured by class, plus nearest-neighbour strips.

    `thumbnails[i]` is sample i's central frame (RGB uint8) or None; only the query samples and their
    neighbours need one. Without any thumbnail the figure is the scatter alone. Neighbours are searched
    in the full D-dimensional space (cosine distance), not in the 2-D projection.
    """
    from myosight.data.activities import short_name

    plt = _pyplot()
    features = np.asarray(features)
    labels = np.asarray(labels)
    coords, ratio = pca_2d(features)
    colours = _class_colours(len(classes))
    present = [t is not None for t in thumbnails] if thumbnails is not None else []
    query_index = []
    if any(present):
        query_index = choose_queries(features, labels, queries, np.array(present))
    k = min(k, len(features) - 1)
    neighbours, distances = nearest_neighbours(features, query_index, k) if query_index else (None, None)

    if query_index:
        # size the strips so each cell fits its thumbnail plus a 3-line caption, without empty bands
        first = next(t for t in thumbnails or [] if t is not None)
        cell_in = 1.45
        row_height = cell_in * first.shape[0] / first.shape[1] + 0.62
        strips = (cell_in * (k + 1) + 0.3, row_height * len(query_index) + 0.45)
        height = max(6.6, strips[1])
        fig = plt.figure(figsize=(7.0 + strips[0], height))
        left, right = fig.subfigures(1, 2, width_ratios=[7.0, strips[0]], wspace=0.0)
    else:
        fig = plt.figure(figsize=(8.0, 6.5))
        left, right = fig, None
    axis = left.add_subplot(1, 1, 1)
    for c, name in enumerate(classes):
        members = labels == c
        if members.any():
            axis.scatter(coords[members, 0], coords[members, 1], s=14, color=colours[c], alpha=0.8,
                         linewidths=0, label=_wrap(short_name(name), 34))
    for q, index in enumerate(query_index):
        axis.scatter(coords[index, 0], coords[index, 1], s=140, marker="*", color=colours[labels[index]],
                     edgecolors="black", linewidths=0.8, zorder=5)
        axis.annotate(f"Q{q + 1}", coords[index], xytext=(6, 6), textcoords="offset points", fontsize=9,
                      fontweight="bold", zorder=6)
    axis.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f} % of variance)")
    axis.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f} % of variance)")
    axis.set_title(f"{title}: {len(features)} samples", fontsize=10)
    axis.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, frameon=False,
                markerscale=1.5)

    if right is not None and neighbours is not None and distances is not None:
        margin = (1.0 - strips[1] / height) / 2  # centre the strips beside the scatter
        right.suptitle(f"{k} nearest neighbours in the {features.shape[1]}-d space (cosine distance d)",
                       fontsize=9, y=1.0 - margin)
        grid = right.subplots(len(query_index), k + 1, squeeze=False)
        right.subplots_adjust(left=0.01, right=0.99, wspace=0.06, hspace=0.5, top=1.0 - margin - 0.45 / height,
                              bottom=margin)
        for q, index in enumerate(query_index):
            cells = [(index, f"query Q{q + 1}\n{_wrap(short_name(classes[labels[index]]), 24)}", "black")]
            for rank, (other, distance) in enumerate(zip(neighbours[q], distances[q], strict=True)):
                colour = "tab:green" if labels[other] == labels[index] else "tab:red"
                caption = f"#{rank + 1}  d = {distance:.3f}\n{_wrap(short_name(classes[labels[other]]), 24)}"
                cells.append((int(other), caption, colour))
            for cell, (sample, caption, colour) in zip(grid[q], cells, strict=True):
                image = thumbnails[sample] if thumbnails is not None else None
                if image is not None:
                    cell.imshow(image)
                else:  # a grey frame of the same shape keeps the strip aligned
                    cell.imshow(np.full(first.shape[:2], 0.85), cmap="gray", vmin=0.0, vmax=1.0)
                    cell.text(0.5, 0.5, "no frame", ha="center", va="center", fontsize=7,
                              transform=cell.transAxes)
                cell.set_xticks([])
                cell.set_yticks([])
                for spine in cell.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2.0 if cell is not grid[q][0] else 1.0)
                cell.set_title(caption, fontsize=6.5, color=colour)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_clip_attention(
    weights_rgb: np.ndarray, weights_emg: np.ndarray, titles: Sequence[str], path: str | Path
) -> Path:
    """Fig. 6: the clip weights a self-attention head gave each of M samples, RGB and sEMG side by side.

    `weights_*` are (M, n) with rows summing to 1; a title may hold line breaks (each line is wrapped).
    Tiles are coloured around the uniform weight 1/n (blue: the clip counted less than average, red: more),
    with the value printed in each tile.
    """
    from matplotlib.colors import TwoSlopeNorm

    plt = _pyplot()
    rgb, emg = np.asarray(weights_rgb, dtype=float), np.asarray(weights_emg, dtype=float)
    if rgb.shape != emg.shape or rgb.ndim != 2:
        raise ValueError(f"weights must both be (M, n), got {rgb.shape} and {emg.shape}")
    samples, clips = rgb.shape
    uniform = 1.0 / clips
    top = max(float(np.max(rgb, initial=0.0)), float(np.max(emg, initial=0.0)), 1.5 * uniform)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=uniform, vmax=top)
    tile = 0.72  # inches per clip tile
    fig, axes = plt.subplots(samples, 2, figsize=(3.2 + 2 * tile * clips + 1.0, (tile + 0.28) * samples + 0.9),
                             squeeze=False)
    fig.subplots_adjust(left=3.0 / (5.2 + 2 * tile * clips), wspace=0.06)
    image = None
    for r, (title, pair) in enumerate(zip(titles, zip(rgb, emg, strict=True), strict=True)):
        for axis, name, weights in zip(axes[r], ("RGB", "sEMG"), pair, strict=True):
            image = axis.imshow(weights[None, :], cmap="coolwarm", norm=norm, aspect="equal")
            for c, value in enumerate(weights):
                axis.text(c, 0, f"{value:.2f}", ha="center", va="center", fontsize=8)
            axis.set_xticks(range(clips), [f"clip {c + 1}" for c in range(clips)] if r == samples - 1 else [],
                            fontsize=7)
            axis.set_yticks([])
            axis.tick_params(length=0)
            if r == 0:
                axis.set_title(f"{name} clip weights", fontsize=9)
        label = "\n".join(_wrap(line, 34) for line in str(title).split("\n"))
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8, labelpad=8)
    if image is not None:
        colourbar = fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02)
        colourbar.set_label(f"clip weight (uniform = {uniform:.2f})", fontsize=8)
        colourbar.ax.tick_params(labelsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# -- the figures of a dataset directory -----------------------------------------------------------------


def _load_thumbnails(split, needed: Sequence[int], sample_seconds: float, log: Callable[[str], None]) -> list:
    """Central frames for the `needed` samples of `split` (None where the sample has no readable video)."""
    from myosight.data.actionsense import ActionSenseSession
    from myosight.errors import MyosightError

    thumbnails: list[np.ndarray | None] = [None] * len(split)
    frame_times: dict[str, np.ndarray | None] = {}
    failures = 0
    for index in needed:
        video, session = str(split.videos[index]), str(split.sessions[index])
        if not video or not Path(video).is_file():
            failures += 1
            continue
        try:
            if session not in frame_times:
                with ActionSenseSession(session) as opened:
                    frame_times[session] = opened.video_frame_times()
            times = frame_times[session]
            if times is None:
                raise MyosightError(f"{session}: no video frame times")
            thumbnails[index] = _shrink(central_frame(video, times, float(split.start_s[index]), sample_seconds))
        except MyosightError as error:
            log(f"  no thumbnail for {split.uids[index]}: {error}")
            failures += 1
    if failures:
        log(f"  {failures} of {len(needed)} samples shown in fig. 2 have no video frame")
    return thumbnails


def _concat_splits(a, b):
    from myosight.training.feature_store import SplitData

    return SplitData(*(np.concatenate([x, y]) for x, y in (
        (a.uids, b.uids), (a.labels, b.labels), (a.start_s, b.start_s), (a.sessions, b.sessions),
        (a.videos, b.videos))), arrays={n: np.concatenate([a.arrays[n], b.arrays[n]]) for n in a.arrays})


def _attention_samples(labels: np.ndarray, count: int = 4) -> list[int]:
    """The first sample of `count` classes spread over the classes present (deterministic)."""
    present = np.unique(labels)
    picks = present[np.unique(np.linspace(0, len(present) - 1, min(count, len(present))).round().astype(int))]
    return [int(np.flatnonzero(labels == label)[0]) for label in picks]


def write_paper_figures(
    data_dir: str | Path,
    out_dir: str | Path,
    run_dir: str | Path | None = None,
    *,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write the paper's figures 2, 3, 4 and 6 for a dataset; figures whose inputs are missing are skipped.

    Fig. 4 trains `linear_emg` with the default configuration; fig. 6 trains `self_attention_lf` unless
    `run_dir` (or a bundle file) of a self-attention head is given.
    """
    import torch

    from myosight.data.activities import short_name
    from myosight.errors import ConfigError
    from myosight.models.clips import ClipGeometry
    from myosight.models.heads import LateFusionHead, build_head
    from myosight.training.feature_store import array_names, read_manifest, read_split
    from myosight.training.figures import plot_confusion, plot_emg_spectrograms
    from myosight.training.run import train_head
    from myosight.training.trainer import TrainConfig, fit, to_tensors

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    manifest = read_manifest(data_dir)
    classes = list(manifest["classes"])
    geometry = ClipGeometry.from_dict(manifest["clip_geometry"]) if "clip_geometry" in manifest else ClipGeometry()
    sample_seconds, clip_seconds = geometry.sample_seconds, geometry.clip_seconds
    available = set(array_names(data_dir / "train.h5")) & set(array_names(data_dir / "test.h5"))
    written: list[Path] = []
    bundle = bundle_path = None
    if run_dir is not None:  # check the run first, before any figure is trained or drawn
        from myosight.models.bundle import load_bundle

        bundle_path = Path(run_dir)
        bundle_path = bundle_path / "bundle.safetensors" if bundle_path.is_dir() else bundle_path
        bundle = load_bundle(bundle_path)
        if not hasattr(bundle.head, "attention_matrices"):
            raise ConfigError(f"{bundle_path}: head '{bundle.head_name}' has no clip self-attention; "
                              "fig. 6 needs a self_attention_lf* run")
        if list(bundle.classes) != classes:
            raise ConfigError(f"{bundle_path}: the bundle's classes differ from those of {data_dir}")
        missing = {"rgb", "emg"} - available
        if missing:
            raise ConfigError(f"{data_dir}: fig. 6 with --run needs the {' and '.join(sorted(missing))} array(s)")

    if "rgb" in available:
        both = _concat_splits(read_split(data_dir / "train.h5", ("rgb",)), read_split(data_dir / "test.h5", ("rgb",)))
        features = both.arrays["rgb"].mean(axis=1)
        thumbnails = None
        if any(both.videos):
            queries = choose_queries(features, both.labels, 3, both.videos != "")
            needed = sorted(set(queries) | {int(i) for i in nearest_neighbours(features, queries, 5)[0].ravel()})
            thumbnails = _load_thumbnails(both, needed, sample_seconds, log)
        else:
            log("  fig. 2: the dataset records no videos; drawing the PCA scatter only")
        written.append(plot_feature_pca(features, both.labels, classes, thumbnails, out_dir / "fig2_pca_knn.png"))
    else:
        log("skipped fig. 2: the dataset has no `rgb` array (run `myosight features rgb` first)")

    if "spectrograms" in available:
        test = read_split(data_dir / "test.h5", ("spectrograms",))
        title = f"test sample 0 ({'/'.join(Path(str(test.uids[0])).parts[-3:])}): {classes[test.labels[0]]}"
        written.append(plot_emg_spectrograms(test.arrays["spectrograms"][0], out_dir / "fig3_emg_spectrograms.png",
                                             title, clip_seconds))
    else:
        log("skipped fig. 3: the dataset has no `spectrograms` array")

    if "emg" in available:
        result = train_head(data_dir, "linear_emg", progress=False)
        written.append(plot_confusion(np.asarray(result.metrics["confusion"]), classes,
                                      out_dir / "fig4_confusion_emg.png",
                                      f"Linear sEMG: top-1 {result.metrics['top1']:.1%} on the test split"))
    else:
        log("skipped fig. 4: the dataset has no `emg` array (run `myosight features emg` first)")

    if bundle is not None or {"rgb", "emg"} <= available:
        test = read_split(data_dir / "test.h5", ("rgb", "emg"))
        if bundle is not None:
            head, source = bundle.head, f"{bundle.head_name} from {bundle_path}"
        else:
            train = read_split(data_dir / "train.h5", ("rgb", "emg"))
            torch.manual_seed(0)
            head = build_head("self_attention_lf", num_classes=len(classes),
                              feature_dim=train.arrays["rgb"].shape[-1])
            fit(head, train.arrays, train.labels, TrainConfig(), progress=False)
            source = "self_attention_lf trained with the default configuration"
        chosen = _attention_samples(test.labels)
        if not isinstance(head, LateFusionHead):  # the heads with clip attention
            raise ConfigError(f"fig. 6 needs a head with clip attention, not {type(head).__name__}")
        head.eval()
        batch = to_tensors({m: test.arrays[m][chosen] for m in ("rgb", "emg")})
        with torch.inference_mode():
            logits, weights = head.forward_with_attention(batch)
        predicted = logits.argmax(1).numpy()
        titles = [f"test sample {i}\ntrue: {short_name(classes[test.labels[i]])}\npredicted: {short_name(classes[p])}"
                  for i, p in zip(chosen, predicted, strict=True)]
        log(f"  fig. 6: {source}")
        written.append(plot_clip_attention(weights["rgb"].numpy(), weights["emg"].numpy(), titles,
                                           out_dir / "fig6_attention.png"))
    else:
        log("skipped fig. 6: needs both `rgb` and `emg` arrays, or --run with a self-attention head")
    for path in written:
        log(f"wrote {path}")
    return written
