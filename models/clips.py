"""Clip geometry shared by training and the live worker.

A sample is a time span (5 s in ActionSense) cut into `clips_per_sample` equal segments. Clip i of the
sample covers segment i: the RGB frames of the clip are sampled inside it and the sEMG window of the clip
is the whole segment, so both modalities of a clip describe the same moment. The geometry is stored in
the model bundle so that training and live inference can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClipGeometry:
    """How a sample is cut into clips and how each clip's frames are prepared for I3D."""

    clips_per_sample: int = 5
    sample_seconds: float = 5.0
    frames_per_clip: int = 16
    fps: float = 25.0  # the frame rate I3D was trained at; video is resampled to it by timestamps
    short_side: int = 256
    crop_size: int = 224
    sampling: str = "dense"  # "dense": consecutive frames; "uniform": spread over the segment

    @property
    def clip_seconds(self) -> float:
        return self.sample_seconds / self.clips_per_sample

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ClipGeometry:
        return cls(**values)


def clip_segments(start_s: float, geometry: ClipGeometry) -> np.ndarray:
    """Return the (clips_per_sample, 2) [start, stop) times of the clips of a sample starting at `start_s`."""
    edges = start_s + geometry.clip_seconds * np.arange(geometry.clips_per_sample + 1)
    return np.stack([edges[:-1], edges[1:]], axis=1)
