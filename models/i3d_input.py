"""Turning video frames into I3D input: resampling to 25 fps by timestamps, resize, crop, scale.

I3D was trained on 25 fps RGB frames whose shorter side was resized to 256 (bilinear), centre-cropped to
224 x 224 at test time and scaled to [-1, 1]. Cameras deliver other rates (the ActionSense world camera
about 30 fps, with jitter), BGR order from OpenCV and other sizes, so every frame path in myosight (the
offline feature extractor, `myosight i3d classify` and the live worker) goes through these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

I3D_FPS = 25.0


def resample_indices(timestamps: np.ndarray | list[float], target_fps: float = I3D_FPS) -> np.ndarray:
    """Source frame indices that show the video at `target_fps`, chosen by timestamp.

    Target instant k is t0 + k / target_fps; it takes the latest source frame whose timestamp is not after
    that instant (the frame on screen then). Latest-not-after rather than nearest keeps the choice causal,
    so the live worker, which cannot see future frames, picks exactly what offline extraction picks.
    Instants run while they fall before the end of the last frame (its timestamp plus the median frame
    interval). Timestamps must be non-decreasing; jitter and dropped frames are handled naturally.
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
    instants = times[0] + np.arange(count, dtype=np.float64) / target_fps
    # A tolerance of 1 microsecond absorbs rounding in timestamps that were stored in milliseconds.
    indices = np.searchsorted(times, instants + 1e-6, side="right") - 1
    return np.clip(indices, 0, len(times) - 1).astype(np.int64)


def centre_window(available: int, wanted: int) -> slice:
    """The `wanted` consecutive positions centred in `available` ones (all of them if `wanted` is 0)."""
    if wanted <= 0 or wanted >= available:
        return slice(0, available)
    start = (available - wanted) // 2
    return slice(start, start + wanted)


def resize_short_side(frame: np.ndarray, short_side: int = 256) -> np.ndarray:
    """Bilinear resize so that the shorter side is `short_side`, keeping the aspect ratio."""
    import cv2

    height, width = frame.shape[:2]
    scale = short_side / min(height, width)
    new_w = short_side if width <= height else max(round(width * scale), short_side)
    new_h = short_side if height < width else max(round(height * scale), short_side)
    if (new_h, new_w) == (height, width):
        return frame
    return cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def prepare_frames(frames_bgr: np.ndarray, short_side: int = 256, crop: int = 224) -> torch.Tensor:
    """(T, H, W, 3) BGR uint8 frames -> (3, T, crop, crop) float32 RGB in [-1, 1] for `InceptionI3d`.

    Shorter side resized to `short_side` (bilinear), centre crop `crop` x `crop`, BGR -> RGB, x / 127.5 - 1.
    """
    import torch

    frames = np.asarray(frames_bgr)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 BGR frames, got {frames.shape} {frames.dtype}")
    if crop > short_side:
        raise ValueError(f"crop {crop} is larger than the resized short side {short_side}")
    out = np.empty((len(frames), crop, crop, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        resized = resize_short_side(frame, short_side)
        top = (resized.shape[0] - crop) // 2
        left = (resized.shape[1] - crop) // 2
        out[i] = resized[top : top + crop, left : left + crop]
    tensor = torch.from_numpy(out).permute(3, 0, 1, 2).flip(0)  # (3, T, H, W), BGR -> RGB
    return tensor.to(torch.float32).div_(127.5).sub_(1.0).contiguous()


def model_frame(frame_bgr: np.ndarray, size: int = 224) -> np.ndarray:
    """One camera frame as the live model sees it: RGB uint8 (size, size, 3).

    The shorter side is resized to round(size * 256 / 224) and the centre `size` x `size` is kept, the
    geometry the I3D weights expect scaled to `size`; sources publish frames in this form so that the
    worker only has to scale pixels.
    """
    resized = resize_short_side(np.asarray(frame_bgr), round(size * 256 / 224))
    top = (resized.shape[0] - size) // 2
    left = (resized.shape[1] - size) // 2
    return np.ascontiguousarray(resized[top:top + size, left:left + size, ::-1])


def frames_to_tensor(frames_rgb: np.ndarray, size: int | None = None) -> torch.Tensor:
    """(T, S, S, 3) RGB uint8 model frames -> (3, T, size, size) float32 in [-1, 1] (resized when size differs)."""
    import cv2
    import torch

    frames = np.asarray(frames_rgb)
    if size is not None and frames.shape[1] != size:
        frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).to(torch.float32).div_(127.5).sub_(1.0)
