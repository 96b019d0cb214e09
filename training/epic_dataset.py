"""`myosight dataset-epic`: EPIC-Kitchens annotations + frames -> a myosight dataset directory.

Each action segment is one sample: its [start, stop) span is cut into the clip geometry's 5 equal parts
and each clip is sampled densely inside its part, so the 5 clips cover the whole action whatever its
length. The split files store the span (`start_s` and an extra `stop_s` dataset, seconds of the video)
and the frames folder or video file of each sample; `myosight features rgb` then adds the I3D features and
`myosight train --model linear_rgb` trains on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from myosight.data.epic_kitchens import D1_VERBS, EPIC_FRAME_FPS, EpicSegment, locate_video, read_annotations
from myosight.errors import ConfigError, SessionFormatError
from myosight.models.clips import ClipGeometry
from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
from myosight.training.feature_store import SplitData, write_manifest, write_split

#: The split files' extra dataset with each sample's end time (samples of fixed length have none).
STOP_FIELD = "stop_s"


def _locate_all(splits: dict[str, list[EpicSegment]], frames_root: Path) -> dict[tuple[str, str], Path]:
    locations: dict[tuple[str, str], Path] = {}
    missing: list[str] = []
    for part in splits.values():
        for s in part:
            key = (s.participant_id, s.video_id)
            if key in locations or s.video_id in missing:
                continue
            try:
                locations[key] = locate_video(frames_root, *key).resolve()
            except SessionFormatError:
                missing.append(s.video_id)
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise SessionFormatError(frames_root, f"no frames for {len(missing)} video(s): {', '.join(missing[:5])}{more}")
    return locations


def build_epic_dataset(
    train_annotations: str | Path,
    test_annotations: str | Path,
    frames_root: str | Path,
    out_dir: str | Path,
    *,
    fps: float = EPIC_FRAME_FPS,
    classes: Sequence[str] = D1_VERBS,
) -> dict:
    """Write the dataset directory (see training.feature_store) and return its manifest.

    EPIC-Kitchens has no sEMG: the manifest's sEMG entries are the defaults, present only because the
    model bundle format requires them.
    """
    out_dir, frames_root = Path(out_dir), Path(frames_root)
    splits = {"train": read_annotations(train_annotations), "test": read_annotations(test_annotations)}
    for part in splits.values():
        for s in part:
            if not 0 <= s.verb_class < len(classes):
                raise ConfigError(f"segment {s.uid}: verb_class {s.verb_class} is not one of {len(classes)} classes")
    if not splits["train"] or not splits["test"]:
        raise ConfigError("both annotation files must hold at least one segment")
    locations = _locate_all(splits, frames_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        data = SplitData(
            uids=np.array([s.uid for s in part], dtype=str),
            labels=np.array([s.verb_class for s in part], np.int64),
            start_s=np.array([s.start_s(fps) for s in part], np.float64),
            sessions=np.array([f"{s.participant_id}/{s.video_id}" for s in part], dtype=str),
            videos=np.array([str(locations[(s.participant_id, s.video_id)]) for s in part], dtype=str),
        )
        path = out_dir / f"{name}.h5"
        write_split(path, data, {STOP_FIELD: np.array([s.stop_s(fps) for s in part], np.float64)})
    manifest = {
        "format": "myosight-dataset/1",
        "source": "epic-kitchens-55",
        "classes": list(classes),
        "annotations": {"train": str(Path(train_annotations).resolve()), "test": str(Path(test_annotations).resolve())},
        "frames_root": str(frames_root.resolve()),
        "frame_source": {"kind": "epic", "fps": fps},
        "split": {"by": "predefined", "train": len(splits["train"]), "test": len(splits["test"])},
        "sample_span": f"per sample: [start_s, {STOP_FIELD}) of the action segment",
        "clip_geometry": ClipGeometry().to_dict(),
        "emg_pipeline": EmgPipelineConfig().to_dict(),
        "emg_normalisation": EmgNormalisation.full_scale().to_dict(),
    }
    write_manifest(out_dir, manifest)
    return manifest
