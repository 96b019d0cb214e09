"""I3D with int8 convolutions on the CPU: clip features 3x faster than the compiled float32 fast path.

`myosight bench i3d` on a 2-core Xeon with AVX-512 VNNI and AMX (torch 2.13 CPU), one 16-frame clip: 224 px
0.20 s against 1.36 s (fast path, uncompiled) and 0.60 s (compiled), 112 px 0.038 s against 0.28 s and
0.10 s; feature cosine to float32 >= 0.997 on real and synthetic clips. Why this route (same machine, one
interleaved run per candidate at 224 px): torch's own PT2E x86 quantizer (torchao) annotates no Conv3d, so
it leaves I3D in float; torch's FX quantisation (onednn) runs Conv3d in int8 but the network only 1.9x
faster than the uncompiled float path, with a feature cosine down to 0.984; the same QDQ model runs 2.3x
faster in ONNX Runtime and 4.8x in OpenVINO (cosine 0.998). So the network is exported to ONNX, quantised
statically by ONNX Runtime's quantiser (QDQ format: int8 per-channel weights, uint8 per-tensor activations,
min/max ranges from calibration clips) and run by OpenVINO, which turns the QDQ pairs into int8 VNNI / AMX
convolutions.

What stays float: the first convolution (3 input channels, ~5 % of the operations; quantising it cost the most
accuracy: the worst synthetic-clip cosine fell from 0.996 to 0.988), the 1024-d feature's time mean and the
Kinetics logits layer (`Int8I3d.logits`, the float32 layer of the checkpoint).

The quantised network is built once per (weights sha256, input size, frames per clip, toolkit versions,
calibration set) and cached under `cache_dir()/i3d/int8/` as an ONNX file with a JSON manifest holding its
sha256; a file that does not match is rebuilt, never used. Each build checks the result against the float
model on held-out clips (feature cosine >= MIN_COSINE) and refuses to cache a worse one.

Calibration clips: synthetic kitchen scenes rendered in memory (always available), plus real video clips
when there are any: `calibration_videos`, else the videos in $MYOSIGHT_INT8_CALIBRATION (a folder or files,
separated by os.pathsep), else those of the reference media folder beside the checkout (../shared/media).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812  (the usual PyTorch alias)
from torch import nn

from myosight.errors import MyosightError
from myosight.models.i3d import MIN_FRAMES, InceptionI3d, MaxPool3dSame, Unit3d, _dynamic_pad
from myosight.paths import cache_dir as _cache_root
from myosight.paths import replaced_when_done, sha256_file

log = logging.getLogger(__name__)

#: Bump when the recipe changes (export wrapper, quantiser options, calibration clips): old artefacts rebuild.
RECIPE_VERSION = 2
TOOLKIT = "openvino+onnxruntime-qdq"
#: A build whose features are less similar than this to the float model's is refused (the acceptance bar).
MIN_COSINE = 0.99
CALIBRATION_ENV = "MYOSIGHT_INT8_CALIBRATION"
#: The layer left in float32 (its weight's name in the exported graph).
FLOAT_LAYER = "Conv3d_1a_7x7"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")
#: Real calibration clips taken per video (spread over its length) and synthetic scenes per subject.
CLIPS_PER_VIDEO = 8
SYNTH_SUBJECTS = ("S00", "S01")
_RUNTIME_MODULES = ("openvino", "onnxruntime", "onnx", "onnxscript")
_CPU_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


class Int8Error(MyosightError):
    """The int8 I3D cannot be built or run here."""


# ---------------------------------------------------------------------------------------------------------
# Availability


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux), or None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def int8_available() -> str | None:
    """None when the int8 I3D can run fast here, else a one-line reason (for a clear error or a log line).

    Needs x86 int8 dot products (AVX-512 VNNI, AVX-VNNI or AMX): without them the int8 convolutions are
    emulated and no faster than float. Also needs the runtime packages (openvino, onnxruntime, onnx,
    onnxscript), which are myosight dependencies but may be missing from an older environment.
    """
    flags = _cpu_flags()
    if flags is not None:
        if not flags & set(_CPU_INT8_FLAGS):
            return "this CPU has no int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX); use float32"
    elif platform.machine().lower() not in ("x86_64", "amd64") or not getattr(torch.cpu, "_is_vnni_supported",
                                                                               lambda: False)():
        return "this CPU has no AVX-512 VNNI int8 instructions; use float32"
    import importlib.util

    missing = [name for name in _RUNTIME_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"int8 I3D needs {', '.join(missing)} (pip install {' '.join(missing)}); use float32"
    return None


# ---------------------------------------------------------------------------------------------------------
# The float network, made exportable


class _ZeroPaddedMaxPool(MaxPool3dSame):
    """The SAME max-pool padded with 0 instead of -inf: identical results in I3D, finite value ranges.

    Every max-pool of I3D reads a ReLU output (>= 0) and every SAME window holds at least one real element,
    so a padded 0 never changes a maximum. A -inf pad would make the calibrated range of the padded tensor
    infinite, and with it the int8 scale.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static is not None:
            return F.max_pool3d(x, self.kernel, self.stride, padding=self.static)
        return F.max_pool3d(_dynamic_pad(x, self.kernel, self.stride, 0.0), self.kernel, self.stride)


class ExportableI3d(nn.Module):
    """`extract_features` of a BN-folded copy of `model`, with zero-padded max-pools; the module exported."""

    def __init__(self, model: InceptionI3d) -> None:
        super().__init__()
        fused = copy.deepcopy(model).eval().fuse_batchnorm()
        for name, module in list(fused.features.named_children()):
            if isinstance(module, MaxPool3dSame):
                pool = _ZeroPaddedMaxPool(module.kernel, module.stride)
                setattr(fused.features, name, pool)
        for parameter in fused.parameters():
            parameter.requires_grad_(False)
        self.model = fused.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x)


# ---------------------------------------------------------------------------------------------------------
# Calibration clips


def default_calibration_videos() -> list[Path]:
    """Real videos for calibration: $MYOSIGHT_INT8_CALIBRATION, else the reference media beside the checkout."""
    if os.environ.get(CALIBRATION_ENV):
        places = [Path(p).expanduser() for p in os.environ[CALIBRATION_ENV].split(os.pathsep) if p]
    else:
        shared = os.environ.get("MYOSIGHT_SHARED_DIR")
        root = Path(shared) if shared else Path(__file__).resolve().parents[1].parent / "shared"
        places = [root / "media"]
    videos: list[Path] = []
    for place in places:
        if place.is_dir():
            videos.extend(sorted(p for p in place.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES))
        elif place.is_file():
            videos.append(place)
    return videos


def video_clips(video: str | Path, input_size: int, frames_per_clip: int, count: int | None = None) -> torch.Tensor:
    """(n, 3, frames, size, size) I3D input: consecutive clips of `video` at 25 fps, prepared as everywhere else
    (`prepare_frames`); `count` keeps that many, spread evenly over the video."""
    from myosight.data.video import VideoFile
    from myosight.models.clips import ClipGeometry
    from myosight.models.i3d_input import prepare_frames, resample_indices

    crop = max(input_size, ClipGeometry().crop_size)
    geometry = ClipGeometry(crop_size=crop, input_size=input_size)
    with VideoFile(video) as clip:
        indices = resample_indices(clip.timestamps(exact=True))
        n = len(indices) // frames_per_clip
        if n == 0:
            return torch.zeros(0, 3, frames_per_clip, input_size, input_size)
        chosen = range(n) if count is None or count >= n else np.linspace(0, n - 1, count).round().astype(int)
        starts = [int(i) * frames_per_clip for i in chosen]
        wanted = np.concatenate([indices[s:s + frames_per_clip] for s in starts])
        pixels = prepare_frames(clip.read(wanted), geometry)
    return pixels.reshape(3, len(starts), frames_per_clip, input_size, input_size).permute(1, 0, 2, 3, 4).contiguous()


def synthetic_clips(input_size: int, frames_per_clip: int, subjects: Sequence[str] = SYNTH_SUBJECTS,
                    seed: int = 0) -> torch.Tensor:
    """(n, 3, frames, size, size): synthetic kitchen scenes rendered in memory (the frames `myosight synth`
    records), prepared as live frames are. The activities are shared out over the subjects (each subject's
    lighting differs) and each subject adds one clip at rest."""
    from myosight.constants import I3D_CROP, I3D_FPS
    from myosight.data.activities import ACTIVITIES
    from myosight.data.synth import draw_motion, render_frame
    from myosight.data.synth_scene import SceneRenderer
    from myosight.models.i3d_input import clip_input, model_frame

    crop = max(input_size, I3D_CROP)
    rng = np.random.default_rng(seed)
    clips = []
    for index, subject in enumerate(subjects):
        renderer = SceneRenderer(crop, crop, subject)
        for label in (*ACTIVITIES[index::len(subjects)], None):
            start = 100.0 + float(rng.uniform(0, 5))
            motion = draw_motion(label, start - 1.0, rng) if label else None
            frames = [model_frame(render_frame(renderer, motion, start + k / I3D_FPS), crop)
                      for k in range(frames_per_clip)]
            clips.append(clip_input(np.stack(frames), input_size))
    return torch.stack(clips)


@dataclass
class CalibrationSet:
    """Clips the quantiser reads ranges from, clips the build is checked on, and what they came from."""

    calibrate: list[torch.Tensor]
    check: list[torch.Tensor]
    sources: list[str]


def calibration_set(input_size: int, frames_per_clip: int, videos: Sequence[str | Path]) -> CalibrationSet:
    """Real clips (every other one for calibration, the rest held out for the check) plus synthetic clips."""
    calibrate: list[torch.Tensor] = []
    check: list[torch.Tensor] = []
    sources: list[str] = []
    for video in videos:
        clips = video_clips(video, input_size, frames_per_clip, CLIPS_PER_VIDEO + 1)
        calibrate.extend(clips[0::2])
        check.extend(clips[1::2][:1])
        sources.append(f"{Path(video).name}:{Path(video).stat().st_size}")
    synthetic = synthetic_clips(input_size, frames_per_clip)
    calibrate.extend(synthetic[1:])
    check.append(synthetic[0])
    sources.append(f"synthetic:{','.join(SYNTH_SUBJECTS)}")
    return CalibrationSet(calibrate, check, sources)


# ---------------------------------------------------------------------------------------------------------
# Building the artefact


def toolkit_versions() -> dict[str, str]:
    """Versions that shape the artefact (exporter, quantiser, runtime): part of the cache key."""
    from importlib import metadata

    versions: dict[str, str] = {"torch": str(torch.__version__)}
    for name in _RUNTIME_MODULES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _export_onnx(model: InceptionI3d, path: Path, input_size: int, frames_per_clip: int) -> None:
    """The float network -> ONNX with a free batch dimension (torch's exporter; its chatter kept off stdout)."""
    example = torch.zeros(2, 3, frames_per_clip, input_size, input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(quiet), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes are for torch's developers, not users
        torch.onnx.export(ExportableI3d(model).eval(), (example,), str(path), dynamo=True, input_names=["clips"],
                          output_names=["features"], dynamic_shapes={"x": {0: batch}}, optimize=True,
                          external_data=False, verbose=False)


def _quantise(float_path: Path, out_path: Path, clips: list[torch.Tensor], work: Path) -> None:
    """Static QDQ quantisation by ONNX Runtime: int8 per-channel weights, uint8 activations, min/max ranges."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.clips = iter(clips)

        def get_next(self) -> dict[str, np.ndarray] | None:
            clip = next(self.clips, None)
            return None if clip is None else {"clips": clip[None].numpy()}

    prepared = work / "prepared.onnx"
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    graph = onnx.load(str(prepared), load_external_data=False).graph
    first = [node.name for node in graph.node if node.op_type == "Conv" and FLOAT_LAYER in node.input[1]]
    if len(first) != 1:
        raise Int8Error(f"the exported I3D has {len(first)} convolutions named {FLOAT_LAYER} (expected 1)")
    quantize_static(
        str(prepared), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, nodes_to_exclude=first,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        # (CalibMaxIntermediateOutputs, which would bound memory by merging ranges every few clips, gave
        # ranges that cost 0.1 of feature cosine in onnxruntime 1.32: all clips are collected, then ranged.)
        extra_options={"ActivationSymmetric": False},
    )


def _cosines(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [float(c) for c in F.cosine_similarity(a.double(), b.double(), dim=1)]


@dataclass(frozen=True)
class ArtefactPaths:
    model: Path
    manifest: Path


def artefact_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the quantised networks are cached: `cache_dir()/i3d/int8`."""
    return _cache_root(cache_dir) / "i3d" / "int8"


def _key(weights_sha256: str, input_size: int, frames_per_clip: int, sources: list[str]) -> dict[str, Any]:
    return {"recipe": RECIPE_VERSION, "toolkit": TOOLKIT, "weights_sha256": weights_sha256, "input_size": input_size,
            "frames_per_clip": frames_per_clip, "versions": toolkit_versions(), "calibration": sources}


def _paths(directory: Path, key: dict[str, Any]) -> ArtefactPaths:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = f"i3d_int8_{key['input_size']}px_{key['frames_per_clip']}f_{digest}"
    return ArtefactPaths(directory / f"{stem}.onnx", directory / f"{stem}.json")


def _cached(paths: ArtefactPaths, key: dict[str, Any], say: Callable[[str], None]) -> bool:
    """True when a complete artefact for `key` is cached; says why an existing one is not used."""
    if not paths.manifest.is_file() and not paths.model.is_file():
        return False
    try:
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
        if manifest.get("key") != key:
            say(f"{paths.manifest.name}: built for other settings; rebuilding")
            return False
        if not paths.model.is_file() or sha256_file(paths.model) != manifest.get("sha256"):
            say(f"int8 I3D: cached {paths.model} is missing or corrupt (sha256 does not match "
                f"{paths.manifest.name}); rebuilding it")
            return False
    except (OSError, ValueError, AttributeError) as error:
        say(f"int8 I3D: cached manifest {paths.manifest} is unreadable ({error}); rebuilding")
        return False
    return True


def _remove_superseded(paths: ArtefactPaths) -> None:
    """Delete the networks of the same size and frames built with other keys (older weights or toolkits)."""
    prefix = paths.model.stem.rsplit("_", 1)[0] + "_"
    for old in paths.model.parent.glob(f"{prefix}*"):
        if old.suffix in (".onnx", ".json") and old.stem != paths.model.stem:
            old.unlink(missing_ok=True)


def build_int8_onnx(
    model: InceptionI3d, out: Path, input_size: int, frames_per_clip: int, calibration: CalibrationSet,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Export, calibrate, quantise, check against the float model; write `out` only if the check passes.

    Returns the build record (clip counts, seconds, the check's cosines). Raises Int8Error when the
    quantised features are less similar than MIN_COSINE to the float ones.
    """
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".int8-build-", dir=out.parent) as tmp:
        work = Path(tmp)
        say(f"int8 I3D: exporting the network ({input_size} px, {frames_per_clip} frames)")
        _export_onnx(model, work / "float.onnx", input_size, frames_per_clip)
        say(f"int8 I3D: calibrating on {len(calibration.calibrate)} clips and quantising")
        _quantise(work / "float.onnx", work / "int8.onnx", calibration.calibrate, work)
        say(f"int8 I3D: checking against float32 on {len(calibration.check)} held-out clips")
        check = torch.stack(calibration.check)
        runner = OpenVinoRunner(work / "int8.onnx", input_size, frames_per_clip)
        with torch.inference_mode():
            reference = ExportableI3d(model)(check)
        cosines = _cosines(runner(check), reference)
        del runner
        if min(cosines) < MIN_COSINE:
            raise Int8Error(f"the quantised I3D is not faithful (feature cosine {min(cosines):.4f} < {MIN_COSINE} "
                            "on a held-out clip); not cached; use float32")
        with replaced_when_done(out) as temporary:
            os.replace(work / "int8.onnx", temporary)
    return {"calibration_clips": len(calibration.calibrate), "check_clips": len(calibration.check),
            "check_cosine_min": min(cosines), "build_seconds": round(time.perf_counter() - started, 1)}


# ---------------------------------------------------------------------------------------------------------
# Running it


class OpenVinoRunner:
    """An int8 ONNX network compiled by OpenVINO for the CPU, one static batch size at a time.

    Static shapes are what OpenVINO's CPU plugin runs fastest; a new batch size costs one compile (about a
    second) and the last few compiled sizes are kept. Threads: all cores (as the live worker gives I3D),
    no pinning (the worker's other threads share the cores), float32 for what is not int8 (no bf16, so the
    features do not depend on whether the CPU has AMX).
    """

    KEEP = 4

    def __init__(self, path: str | Path, input_size: int, frames_per_clip: int) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = self.core.read_model(str(path))
        self.shape = (3, frames_per_clip, input_size, input_size)
        self.config = {"INFERENCE_NUM_THREADS": os.cpu_count() or 1, "PERFORMANCE_HINT": "LATENCY",
                       "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False, "NUM_STREAMS": 1}
        self._requests: OrderedDict[int, Any] = OrderedDict()

    def _request(self, batch: int) -> Any:
        if batch in self._requests:
            self._requests.move_to_end(batch)
            return self._requests[batch]
        model = self.model.clone()
        model.reshape({model.inputs[0].get_any_name(): [batch, *self.shape]})
        request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        self._requests[batch] = request
        while len(self._requests) > self.KEEP:
            self._requests.popitem(last=False)
        return request

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        result = self._request(array.shape[0]).infer({0: array})
        return torch.from_numpy(np.array(result[0], dtype=np.float32, copy=True))


class Int8I3d:
    """The int8 I3D: `extract_features` (B, 3, T, H, W) in [-1, 1] -> (B, 1024) float32, and the float32
    Kinetics `logits` layer (applied to `feature[None, :, None, None, None]`, as `InceptionI3d.logits`)."""

    precision = "int8"

    def __init__(self, path: Path, input_size: int, frames_per_clip: int, logits: Unit3d, record: dict) -> None:
        self.path = path
        self.input_size = input_size
        self.frames_per_clip = frames_per_clip
        self.logits = logits
        self.record = record
        self._runner = OpenVinoRunner(path, input_size, frames_per_clip)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless `x` is (B, 3, frames_per_clip, input_size, input_size): the shape built for."""
        wanted = (3, self.frames_per_clip, self.input_size, self.input_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != wanted or x.shape[0] < 1:
            raise ValueError(f"the int8 I3D was built for (B, {', '.join(map(str, wanted))}) clips, got shape "
                             f"{tuple(x.shape)}")

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1024) float32 clip features, as `InceptionI3d.extract_features` (to int8 rounding)."""
        self.check_input(x)
        return self._runner(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 400) Kinetics logits: the float32 logits layer on the int8 features."""
        features = self.extract_features(x)
        with torch.inference_mode():
            return self.logits(features[:, :, None, None, None]).flatten(1)

    forward = __call__

    def to(self, device: str | torch.device) -> Int8I3d:
        """The int8 network runs on the CPU only."""
        if torch.device(device).type != "cpu":
            raise Int8Error(f"the int8 I3D runs on the CPU only, not on {device}; use float32 there")
        return self

    def eval(self) -> Int8I3d:
        return self


def _logits_layer(model: InceptionI3d) -> Unit3d:
    layer = copy.deepcopy(model.logits).eval()
    for parameter in layer.parameters():
        parameter.requires_grad_(False)
    return layer


def _say_to_stderr(progress: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        log.info(message)
        if progress:
            print(message, file=sys.stderr, flush=True)

    return say


def int8_ready(input_size: int, frames_per_clip: int = 16, *, cache_dir: str | Path | None = None) -> bool:
    """Whether the int8 I3D for this setting runs here and is built already (so loading it takes a second, not the
    minutes of a build): what a process that must not wait, such as a calibration's feature child, asks first."""
    if int8_available() is not None or frames_per_clip < MIN_FRAMES:
        return False
    from myosight.models.i3d_weights import WeightsError, verify_weights

    try:
        weights_sha256 = verify_weights(cache_dir)["weights_sha256"]
    except WeightsError:
        return False
    videos = list(default_calibration_videos())
    sources = [f"{Path(v).name}:{Path(v).stat().st_size}" for v in videos] + [f"synthetic:{','.join(SYNTH_SUBJECTS)}"]
    key = _key(weights_sha256, input_size, frames_per_clip, sources)
    return _cached(_paths(artefact_dir(cache_dir), key), key, lambda _text: None)


def load_int8_i3d(
    input_size: int,
    frames_per_clip: int = 16,
    *,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    artefacts: str | Path | None = None,
    calibration_videos: Sequence[str | Path] | None = None,
) -> Int8I3d:
    """The int8 Kinetics I3D for (B, 3, frames_per_clip, input_size, input_size) clips, built on first use.

    `cache_dir` holds the I3D weights (as for `load_i3d`); `artefacts` the quantised networks (default
    `artefact_dir(cache_dir)`). The first call for a setting takes about a minute (export, calibration,
    quantisation, check), saying so on stderr when `progress`; later calls load the cached file in a second.
    Raises Int8Error when int8 cannot run here (`int8_available`) or the build fails its check.
    """
    reason = int8_available()
    if reason is not None:
        raise Int8Error(reason)
    if frames_per_clip < MIN_FRAMES:
        raise Int8Error(f"the int8 I3D needs at least {MIN_FRAMES} frames per clip, got {frames_per_clip}")
    from myosight.models.i3d_weights import load_i3d, verify_weights

    say = _say_to_stderr(progress)
    weights_sha256 = verify_weights(cache_dir)["weights_sha256"]
    model = load_i3d(cache_dir)
    videos = list(default_calibration_videos() if calibration_videos is None else calibration_videos)
    sources = [f"{Path(v).name}:{Path(v).stat().st_size}" for v in videos] + [f"synthetic:{','.join(SYNTH_SUBJECTS)}"]
    key = _key(weights_sha256, input_size, frames_per_clip, sources)
    paths = _paths(Path(artefacts) if artefacts is not None else artefact_dir(cache_dir), key)
    if _cached(paths, key, say):
        record = json.loads(paths.manifest.read_text(encoding="utf-8"))
    else:
        say(f"int8 I3D: building the quantised network for {input_size} px (once; 1-5 minutes) into {paths.model}")
        calibration = calibration_set(input_size, frames_per_clip, videos)
        build = build_int8_onnx(model, paths.model, input_size, frames_per_clip, calibration, say)
        record = {"key": key, "sha256": sha256_file(paths.model), "build": build}
        with replaced_when_done(paths.manifest) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _remove_superseded(paths)
        say(f"int8 I3D: ready (feature cosine to float32 >= {build['check_cosine_min']:.4f} on held-out clips, "
            f"{build['build_seconds']:.0f} s)")
    return Int8I3d(paths.model, input_size, frames_per_clip, _logits_layer(model), record)


__all__ = ["Int8Error", "Int8I3d", "int8_available", "load_int8_i3d"]
