"""Turning video frames into I3D input: resampling to 25 fps by timestamps, the model frame, the input tensor.

I3D was trained on 25 fps RGB frames whose shorter side was resized to 256 (bilinear), centre-cropped to
224 x 224 at test time and scaled to [-1, 1]. Cameras deliver other rates (the ActionSense world camera
about 30 fps, with jitter), BGR order from OpenCV and other sizes. Every frame path in myosight (sources
publishing live frames, offline feature extraction, `myosight i3d classify` and the live worker) goes
through two functions here, so that live and offline clips are made of the same pixels:

- `model_frame`: one camera frame -> the square RGB frame of the clip geometry (`crop_size`); sources
  publish these, offline extraction computes the same from the decoded video;
- `clip_input`: model frames -> the I3D input tensor (`input_size`: the frames area-downscaled when the
  input is smaller, as in the 112-px mode), scaled to [-1, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from myosight.constants import I3D_CROP, I3D_FPS
from myosight.models.clips import ClipGeometry, latest_not_after, short_side_for

if TYPE_CHECKING:
    import torch


def resample_indices(timestamps: np.ndarray | list[float], target_fps: float = I3D_FPS) -> np.ndarray:
    """Source frame indices that show the video at `target_fps`, chosen by timestamp.

    Target instant k is t0 + k / target_fps; it takes the latest source frame whose timestamp is not after
    that instant (the frame on screen then; `latest_not_after`). Instants run while they fall before the end
    of the last frame (its timestamp plus the median frame interval). Timestamps must be non-decreasing;
    jitter and dropped frames are handled naturally.
    """
    times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if target_fps <= 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(np.diff(times) < 0) or not np.all(np.isfinite(times)):
        raise ValueError("timestamps must be finite and non-decreasing")
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / target_fps
    end = times[-1] + max(step, 0.0)
    count = max(int(np.ceil((end - times[0]) * target_fps - 1e-9)), 1)
    return latest_not_after(times, times[0] + np.arange(count, dtype=np.float64) / target_fps)


def centre_window(available: int, wanted: int) -> slice:
    """The `wanted` consecutive positions centred in `available` ones (all of them if `wanted` is 0)."""
    if wanted <= 0 or wanted >= available:
        return slice(0, available)
    start = (available - wanted) // 2
    return slice(start, start + wanted)


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Bilinear resize so that the shorter side is `short_side`, keeping the aspect ratio."""
    import cv2

    height, width = frame.shape[:2]
    scale = short_side / min(height, width)
    new_w = short_side if width <= height else max(round(width * scale), short_side)
    new_h = short_side if height < width else max(round(height * scale), short_side)
    if (new_h, new_w) == (height, width):
        return frame
    return cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def model_frame(frame_bgr: np.ndarray, size: int = I3D_CROP) -> np.ndarray:
    """One BGR camera frame -> the model frame: RGB uint8 (size, size, 3).

    The shorter side is resized (bilinear) to `short_side_for(size)` (256 for 224) and the centre square
    kept: the geometry the I3D weights expect, scaled to `size`.
    """
    frame = np.asarray(frame_bgr)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR frame, got {frame.shape} {frame.dtype}")
    resized = resize_short_side(frame, short_side_for(size))
    top = (resized.shape[0] - size) // 2
    left = (resized.shape[1] - size) // 2
    return np.ascontiguousarray(resized[top:top + size, left:left + size, ::-1])


def clip_input(frames_rgb: np.ndarray, input_size: int) -> torch.Tensor:
    """(T, S, S, 3) RGB uint8 model frames -> (3, T, input_size, input_size) float32 in [-1, 1].

    Frames larger than the input are area-downscaled (each input pixel the mean of the frame pixels it
    covers), the reduced-resolution mode's one resize.
    """
    import cv2
    import torch

    frames = np.asarray(frames_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[1] != frames.shape[2]:
        raise ValueError(f"expected (T, S, S, 3) uint8 RGB model frames, got {frames.shape} {frames.dtype}")
    if frames.shape[1] != input_size:
        frames = np.stack([cv2.resize(f, (input_size, input_size), interpolation=cv2.INTER_AREA) for f in frames])
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)
    return tensor.to(torch.float32).div_(127.5).sub_(1.0).contiguous()


def prepare_frames(frames_bgr: np.ndarray, geometry: ClipGeometry | None = None) -> torch.Tensor:
    """(T, H, W, 3) BGR uint8 camera frames -> (3, T, input, input) I3D input: `model_frame` then `clip_input`."""
    geometry = geometry or ClipGeometry()
    frames = np.asarray(frames_bgr)
    if frames.ndim != 4:
        raise ValueError(f"expected (T, H, W, 3) uint8 BGR frames, got {frames.shape} {frames.dtype}")
    return clip_input(np.stack([model_frame(f, geometry.crop_size) for f in frames]), geometry.input_side)
