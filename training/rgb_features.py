"""`myosight features rgb`: the frozen I3D's 1024-d feature of every clip of every sample -> `rgb` (N, 5, 1024).

Frames: each clip's frame instants come from `models.clips` (the same sampler the live worker uses) and
each instant takes the latest video frame not after it, by the video's own timestamps (for ActionSense the
world-camera timestamps in the session HDF5, for EPIC-Kitchens the 60 fps frame numbering or the video
file's times). Frames are then prepared exactly as live (`prepare_frames`: the model frame of the clip
geometry, short side resized at I3D's 256/224 ratio and centre-cropped, then area-downscaled to the input
size when that is smaller). The sizes, sampling mode and I3D weights used are stored in the dataset
manifest (`clip_geometry`, `i3d_sha256`), from where they travel into the model bundle, and features of
different settings are never mixed in one dataset.

Speed: every video is read once, front to back: samples of one video are processed in time order, a
sample's frames are decoded in index order, and prepared frames shared by neighbouring samples are reused.
Clips of several samples are batched through I3D (the inference path of `models.i3d.FastI3d` by default).

Resumability: extracting a few thousand clips takes hours on a laptop CPU, so progress goes to a side
file per split (`DIR/<split>.rgb_partial.h5`: features so far and a done mask, flushed after every batch).
A re-run skips finished samples; when a split is complete its features are written into the split file as
`arrays/rgb` and the side file is deleted. The split file itself is only opened for writing at that
moment, because an HDF5 file open for writing when the process dies can be left unreadable, and the split
file also holds the sEMG arrays.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np
import torch

from myosight.errors import ConfigError, MyosightError, SessionFormatError
from myosight.models.clips import ClipGeometry, latest_not_after, resolve_geometry, sample_frame_times
from myosight.models.device import check_device
from myosight.models.i3d import FEATURE_DIM, optimize_for_inference
from myosight.models.i3d_input import prepare_frames
from myosight.models.i3d_weights import load_i3d, verify_weights
from myosight.training.epic_dataset import STOP_FIELD
from myosight.training.feature_store import (
    RGB_PARTIAL_SUFFIX,
    SPLITS,
    read_manifest,
    read_text,
    write_array,
    write_manifest,
)

ARRAY = "rgb"
PARTIAL_SUFFIX = RGB_PARTIAL_SUFFIX
#: Settings a feature array is tied to; features that differ in any of them are never mixed.
SETTING_KEYS = ("crop_size", "short_side", "input_size", "sampling", "frames_per_clip", "fps", "clips_per_sample",
                "i3d_sha256", "precision")


def settings_of(geometry: ClipGeometry, i3d_sha256: str, precision: str = "float32") -> dict[str, Any]:
    values = {**geometry.to_dict(), "i3d_sha256": i3d_sha256, "precision": precision}
    return {key: values[key] for key in SETTING_KEYS}


def _stored(settings: dict[str, Any]) -> dict[str, Any]:
    """Stored settings as they read today: features stored before `input_size` existed read their frames
    at `crop_size` (see ClipGeometry.from_dict), and those stored before `precision` existed are float32."""
    if settings and "input_size" not in settings:
        settings = {**settings, "input_size": settings.get("crop_size")}
    if settings and "precision" not in settings:
        settings = {**settings, "precision": "float32"}
    return settings


# ---------------------------------------------------------------------------------------------------------
# Frame sources


class FrameSource(Protocol):
    """A video's frames by index (BGR uint8) and their timestamps."""

    def read(self, indices: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass
class OpenVideo:
    """An open frame source with the timestamps (same clock as the samples' times) of its frames."""

    source: FrameSource
    times: np.ndarray
    name: str


def open_video(video: str, session: str, frame_source: dict[str, Any]) -> OpenVideo:
    """Open the frames of a sample: ActionSense (times from the session HDF5) or EPIC (frames folder / video)."""
    from myosight.data.video import VideoFile

    kind = frame_source.get("kind", "actionsense")
    if kind == "actionsense":
        from myosight.data.actionsense import ActionSenseSession

        if not video:
            raise SessionFormatError(session, "no world-camera video was found beside this session")
        with ActionSenseSession(session) as handle:
            times = handle.video_frame_times()
        return OpenVideo(VideoFile(video), times, video)
    if kind == "epic":
        from myosight.data.epic_kitchens import EPIC_FRAME_FPS, FrameFolder

        if Path(video).is_dir():
            folder = FrameFolder(video, float(frame_source.get("fps", EPIC_FRAME_FPS)))
            return OpenVideo(folder, folder.timestamps(), video)
        file = VideoFile(video)
        return OpenVideo(file, file.timestamps(), video)
    raise ConfigError(f"unknown frame source kind {kind!r} in the dataset manifest")


def sample_frame_indices(
    frame_times: np.ndarray, start_s: float, geometry: ClipGeometry, stop_s: float | None = None
) -> np.ndarray:
    """The (clips, frames) video frame indices of a sample: the offline twin of the live worker's choice."""
    return latest_not_after(frame_times, sample_frame_times(start_s, geometry, stop_s=stop_s))


class ClipReader:
    """Builds a sample's clips from one open video, reusing prepared frames shared with the previous sample.

    Samples must come in time order for the reuse (and the forward-only decoding) to pay off; any order
    still gives the right frames.
    """

    def __init__(self, video: OpenVideo, geometry: ClipGeometry) -> None:
        self.video = video
        self.geometry = geometry
        self._prepared: dict[int, torch.Tensor] = {}
        self.frames_decoded = 0

    def clips(self, start_s: float, stop_s: float | None) -> torch.Tensor:
        """(clips, 3, frames, size, size) float32 I3D input of one sample."""
        indices = sample_frame_indices(self.video.times, start_s, self.geometry, stop_s)
        first = int(indices.min())
        for key in [k for k in self._prepared if k < first]:  # behind this sample: not needed again
            del self._prepared[key]
        new = sorted(set(indices.reshape(-1).tolist()) - self._prepared.keys())
        if new:
            frames = self.video.source.read(np.asarray(new, dtype=np.int64))
            prepared = prepare_frames(frames, self.geometry)
            self.frames_decoded += len(new)
            for position, index in enumerate(new):
                self._prepared[index] = prepared[:, position]
        return torch.stack([
            torch.stack([self._prepared[int(i)] for i in clip], dim=1) for clip in indices
        ])

    def close(self) -> None:
        self._prepared.clear()
        self.video.source.close()


# ---------------------------------------------------------------------------------------------------------
# Progress side file


def _uids_digest(uids: np.ndarray) -> str:
    return hashlib.sha256("\n".join(map(str, uids)).encode()).hexdigest()


class Progress:
    """The per-split side file: `rgb` (N, clips, 1024) float32 and `done` (N,) bool, plus the settings."""

    def __init__(self, path: Path, rows: int, clips: int, settings: dict[str, Any], uids_digest: str) -> None:
        self.path = path
        self.settings = settings
        self._file: h5py.File | None = None
        if path.exists():
            try:
                self._file = h5py.File(path, "a")
                stored = _stored(json.loads(self._file.attrs.get("settings", "{}")))
                stale = (stored != settings or self._file.attrs.get("uids_sha256") != uids_digest
                         or self._file["rgb"].shape[0] != rows)
            except (OSError, KeyError, ValueError):
                stale = True  # unreadable: the process died while writing it
            if stale:  # (the caller refuses other settings before getting here; this is a rebuilt split)
                self.close()
                path.unlink()
        if self._file is None:
            self._file = h5py.File(path, "w")
            chunks = (1, clips, FEATURE_DIM) if rows else None
            self._file.create_dataset("rgb", (rows, clips, FEATURE_DIM), np.float32, chunks=chunks)
            self._file.create_dataset("done", (rows,), bool)
            self._file.attrs["settings"] = json.dumps(settings)
            self._file.attrs["uids_sha256"] = uids_digest
            self._file.flush()

    @staticmethod
    def stored_settings(path: Path) -> dict[str, Any] | None:
        """The settings of an existing side file, or None if there is none (or it is unreadable)."""
        try:
            with h5py.File(path, "r") as handle:
                return _stored(json.loads(handle.attrs["settings"]))
        except (OSError, KeyError, ValueError):
            return None

    @property
    def done(self) -> np.ndarray:
        assert self._file is not None
        return self._file["done"][()]

    def write(self, rows: list[int], features: np.ndarray) -> None:
        assert self._file is not None
        for row, feature in zip(rows, features, strict=True):
            self._file["rgb"][row] = feature
            self._file["done"][row] = True
        self._file.flush()

    def features(self) -> np.ndarray:
        assert self._file is not None
        return self._file["rgb"][()]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# ---------------------------------------------------------------------------------------------------------
# Extraction


@dataclass
class SplitPlan:
    """What is left to do in one split."""

    name: str
    path: Path
    uids: np.ndarray
    start_s: np.ndarray
    stop_s: np.ndarray | None
    videos: np.ndarray
    sessions: np.ndarray
    todo: list[int] = field(default_factory=list)


@dataclass
class RgbResult:
    """Summary of one `extract_rgb_features` run."""

    samples: int = 0
    clips: int = 0
    seconds: float = 0.0
    complete: bool = False
    bad: list[dict[str, str]] = field(default_factory=list)
    splits_done: list[str] = field(default_factory=list)
    #: Time and clips of the first batch, which includes torch.compile's warm-up on the fast path.
    warmup_seconds: float = 0.0
    warmup_clips: int = 0

    @property
    def clips_per_second(self) -> float:
        """Overall rate of this run, warm-up included."""
        return self.clips / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_clips_per_second(self) -> float:
        """Rate after the first batch (what a long extraction runs at); the overall rate if one batch ran."""
        clips, seconds = self.clips - self.warmup_clips, self.seconds - self.warmup_seconds
        return clips / seconds if clips > 0 and seconds > 0 else self.clips_per_second


def _read_plan(path: Path, name: str) -> SplitPlan:
    if not path.is_file():
        raise ConfigError(f"{path}: no such split file (run `myosight dataset` first)")
    with h5py.File(path, "r") as handle:
        return SplitPlan(
            name=name, path=path, uids=read_text(handle, "uid"), start_s=handle["start_s"][()],
            stop_s=handle[STOP_FIELD][()] if STOP_FIELD in handle else None,
            videos=read_text(handle, "video"), sessions=read_text(handle, "session"),
        )


def _array_settings(path: Path) -> dict[str, Any] | None:
    with h5py.File(path, "r") as handle:
        key = f"arrays/{ARRAY}"
        if key not in handle:
            return None
        return _stored(json.loads(handle[key].attrs.get("settings", "{}")))


def _mismatch(stored: dict[str, Any], wanted: dict[str, Any], where: str) -> ConfigError:
    diffs = ", ".join(f"{k} {stored.get(k)!r} (now {wanted[k]!r})" for k in SETTING_KEYS if stored.get(k) != wanted[k])
    return ConfigError(
        f"{where} holds RGB features made with other settings: {diffs}; features of different sizes, sampling "
        "or weights are never mixed. Re-run with the same settings to continue, or pass --force to discard them "
        "and extract everything again."
    )


def _load_model(fast: bool, use_compile: bool, device: str, cache_dir: str | Path | None,
                precision: str = "float32", geometry: ClipGeometry | None = None, progress: bool = True) -> Any:
    check_device(device, precision=precision)
    if precision == "int8":
        from myosight.models.i3d_int8 import load_int8_i3d

        geometry = geometry or ClipGeometry()
        return load_int8_i3d(geometry.input_side, geometry.frames_per_clip, progress=progress, cache_dir=cache_dir)
    model = load_i3d(cache_dir)
    return (optimize_for_inference(model, use_compile=use_compile) if fast else model).to(device)


def _video_runs(plan: SplitPlan, order: list[int]) -> Iterator[tuple[str, str, list[int]]]:
    """Consecutive runs of `order` that share one video (and session)."""
    run: list[int] = []
    for row in order:
        if run and (plan.videos[row], plan.sessions[row]) != (plan.videos[run[0]], plan.sessions[run[0]]):
            yield plan.videos[run[0]], plan.sessions[run[0]], run
            run = []
        run.append(row)
    if run:
        yield plan.videos[run[0]], plan.sessions[run[0]], run


def extract_rgb_features(
    data_dir: str | Path,
    *,
    size: int = 224,
    batch_size: int = 10,
    fast: bool = True,
    use_compile: bool = True,
    sampling: str | None = None,
    limit: int | None = None,
    skip_bad: bool = False,
    force: bool = False,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    precision: str = "float32",
) -> RgbResult:
    """Add `rgb` (N, clips, 1024) float32 to both split files of a dataset directory (see module docstring).

    `batch_size` counts clips (rounded down to whole samples, at least one sample); `limit` stops after that
    many samples this run (the rest is picked up by the next run); `skip_bad` zero-fills the samples whose
    video is missing or corrupt and lists them instead of stopping. `precision` "int8" runs the quantised
    I3D (models/i3d_int8.py; `fast` and `use_compile` then do not apply); it is part of the stored settings,
    so int8 and float32 features are never mixed in one dataset.
    """
    from myosight.progress import ProgressBar

    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    geometry = resolve_geometry(ClipGeometry.from_dict(manifest["clip_geometry"]), size, sampling)
    frame_source = manifest.get("frame_source", {"kind": "actionsense"})
    wanted = settings_of(geometry, verify_weights(cache_dir)["weights_sha256"], precision)
    plans = [_read_plan(data_dir / f"{name}.h5", name) for name in SPLITS]

    # Settings check before anything is written: never mix sizes, sampling modes or weights. --force discards
    # the progress of earlier runs, but existing features stay in their split file until new ones replace them.
    redo: set[str] = set()
    for plan in plans:
        partial = data_dir / f"{plan.name}{PARTIAL_SUFFIX}"
        stored = _array_settings(plan.path)
        if force:
            partial.unlink(missing_ok=True)
            redo.add(plan.name)
            continue
        side = Progress.stored_settings(partial) if partial.exists() else None
        if side is not None and side != wanted:
            raise _mismatch(side, wanted, str(partial))
        if stored is not None and stored != wanted and side is None:
            raise _mismatch(stored, wanted, str(plan.path))
        if stored is not None and stored != wanted:
            redo.add(plan.name)  # a forced run that stopped early: its progress continues

    model = _load_model(fast, use_compile, device, cache_dir, precision, geometry, progress)
    manifest["clip_geometry"] = geometry.to_dict()
    manifest["i3d_sha256"] = wanted["i3d_sha256"]
    record = manifest.setdefault("rgb_features", {})
    if force or record.get("settings") != wanted:
        record.clear()
    record.update({"settings": wanted, "complete": False})
    write_manifest(data_dir, manifest)

    result = RgbResult()
    progresses: dict[str, Progress] = {}
    try:
        for plan in plans:
            if plan.name not in redo and _array_settings(plan.path) == wanted:
                result.splits_done.append(plan.name)
                continue
            progress_file = Progress(data_dir / f"{plan.name}{PARTIAL_SUFFIX}", len(plan.uids),
                                     geometry.clips_per_sample, wanted, _uids_digest(plan.uids))
            progresses[plan.name] = progress_file
            done = progress_file.done
            plan.todo = sorted((r for r in range(len(plan.uids)) if not done[r]),
                               key=lambda r: (plan.videos[r], plan.sessions[r], plan.start_s[r], r))
        remaining = sum(len(p.todo) for p in plans)
        budget = remaining if limit is None else min(limit, remaining)
        per_batch = max(1, batch_size // geometry.clips_per_sample)
        # one input shape: compiled once (torch.compile, or OpenVINO's per-batch-size compile for int8)
        pad_to = per_batch if (fast and use_compile) or precision == "int8" else None
        started = time.perf_counter()
        with ProgressBar(budget, desc="I3D features", unit="sample", enabled=progress) as bar:
            for plan in plans:
                if plan.name not in progresses:
                    continue
                left = budget - result.samples
                if left > 0 and plan.todo:
                    _extract_split(plan, plan.todo[:left], progresses[plan.name], model, geometry, frame_source,
                                   per_batch, pad_to, device, skip_bad, result, bar, started)
                if not progresses[plan.name].done.all():
                    continue
                features = progresses[plan.name].features()
                progresses.pop(plan.name).close()
                write_array(plan.path, ARRAY, features, {"settings": json.dumps(wanted)})
                (data_dir / f"{plan.name}{PARTIAL_SUFFIX}").unlink()
                result.splits_done.append(plan.name)
        result.seconds = time.perf_counter() - started
    finally:
        for progress_file in progresses.values():
            progress_file.close()

    result.complete = len(result.splits_done) == len(plans)
    manifest = read_manifest(data_dir)
    record = manifest.setdefault("rgb_features", {})
    record["complete"] = result.complete
    if result.bad:
        record["bad_samples"] = record.get("bad_samples", []) + result.bad
    write_manifest(data_dir, manifest)
    if log is not None:
        by_error: dict[str, list[str]] = {}
        for bad in result.bad:
            by_error.setdefault(bad["error"], []).append(f"{bad['split']}:{bad['uid']}")
        for error, samples in by_error.items():
            shown = ", ".join(samples[:3]) + (f" and {len(samples) - 3} more" if len(samples) > 3 else "")
            log(f"zero-filled {len(samples)} sample(s) ({shown}): {error}")
    return result


def _extract_split(
    plan: SplitPlan,
    rows: list[int],
    progress_file: Progress,
    model: Any,
    geometry: ClipGeometry,
    frame_source: dict[str, Any],
    per_batch: int,
    pad_to: int | None,
    device: str,
    skip_bad: bool,
    result: RgbResult,
    bar: Any,
    started: float,
) -> None:
    pending_rows: list[int] = []
    pending_clips: list[torch.Tensor] = []

    def flush() -> None:
        if not pending_rows:
            return
        batch = torch.cat(pending_clips)
        count = len(pending_rows)
        if pad_to is not None and count < pad_to:
            batch = torch.cat([batch, batch.new_zeros((pad_to - count) * geometry.clips_per_sample, *batch.shape[1:])])
        with torch.inference_mode():
            features = model.extract_features(batch.to(device)).float().cpu().numpy()
        features = features[: count * geometry.clips_per_sample].reshape(count, geometry.clips_per_sample, -1)
        progress_file.write(pending_rows, features)
        result.samples += count
        result.clips += count * geometry.clips_per_sample
        if not result.warmup_clips:
            result.warmup_clips, result.warmup_seconds = result.clips, time.perf_counter() - started
        bar.update(count)
        bar.set_postfix(clips_per_s=f"{result.clips / max(time.perf_counter() - started, 1e-9):.2f}")
        pending_rows.clear()
        pending_clips.clear()

    def bad(row: int, error: MyosightError) -> None:
        if not skip_bad:
            raise error
        zeros = np.zeros((1, geometry.clips_per_sample, FEATURE_DIM), np.float32)
        progress_file.write([row], zeros)
        result.samples += 1
        result.bad.append({"split": plan.name, "uid": str(plan.uids[row]), "error": str(error)})
        bar.update(1)

    for video, session, group in _video_runs(plan, rows):
        try:
            reader = ClipReader(open_video(video, session, frame_source), geometry)
        except MyosightError as error:
            for row in group:
                bad(row, error)
            continue
        try:
            for row in group:
                stop = None if plan.stop_s is None else float(plan.stop_s[row])
                try:
                    clips = reader.clips(float(plan.start_s[row]), stop)
                except (MyosightError, ValueError) as error:
                    failure = error if isinstance(error, MyosightError) else SessionFormatError(video, str(error))
                    bad(row, failure)
                    continue
                pending_rows.append(row)
                pending_clips.append(clips)
                if len(pending_rows) >= per_batch:
                    flush()
        finally:
            reader.close()
    flush()
