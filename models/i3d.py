"""The RGB Inception-I3D backbone (Carreira & Zisserman, 2017), written for myosight in plain PyTorch.

myosight uses I3D frozen: one 1024-d feature per 16-frame clip (the average pool after Mixed_5c) feeds the
RGB and fusion heads. The network must reproduce DeepMind's Kinetics-400 checkpoint exactly, so three
details of the original TensorFlow model are kept on purpose:

* TensorFlow "SAME" padding: the total padding of a dimension is computed from the input size and split
  with the extra element at the end. It is asymmetric for stride 2, so the strided layers pad explicitly;
  max-pools pad with -inf (a padded element never wins), convolutions with zeros.
* Batch norm with eps = 1e-3 and no learned scale (gamma = 1, only the shift is learned).
* Logits: an average pool of window (2, 7, 7), stride 1, over Mixed_5c, a 1x1x1 convolution with bias on
  every pooled time step, then the mean over time. Here the spatial window is the whole map (identical at
  224 x 224, and it lets any frame size work) and `extract_features` returns the time mean of the pooled
  steps, so `forward(x)` equals the logits layer applied to `extract_features(x)`.

Input: (B, 3, T, H, W) RGB in [-1, 1], T >= 9 (fewer frames leave less than the two time steps the
logits pool needs). A 16-frame clip gives one pooled time step, 64 frames give seven.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812  (the usual PyTorch alias)
from torch import nn

from myosight.paths import cache_dir

#: Frames below which Mixed_5c has fewer than the two time steps of the logits pool.
MIN_FRAMES = 9
FEATURE_DIM = 1024
BN_EPS = 1e-3

Triple = tuple[int, int, int]

# name -> (branch 0 1x1, branch 1 (1x1 reduce, 3x3), branch 2 (1x1 reduce, 3x3), branch 3 pool-proj 1x1)
_MIXED: dict[str, tuple[int, tuple[int, int], tuple[int, int], int]] = {
    "Mixed_3b": (64, (96, 128), (16, 32), 32),
    "Mixed_3c": (128, (128, 192), (32, 96), 64),
    "Mixed_4b": (192, (96, 208), (16, 48), 64),
    "Mixed_4c": (160, (112, 224), (24, 64), 64),
    "Mixed_4d": (128, (128, 256), (24, 64), 64),
    "Mixed_4e": (112, (144, 288), (32, 64), 64),
    "Mixed_4f": (256, (160, 320), (32, 128), 128),
    "Mixed_5b": (256, (160, 320), (32, 128), 128),
    "Mixed_5c": (384, (192, 384), (48, 128), 128),
}


def _triple(value: int | Sequence[int]) -> Triple:
    if isinstance(value, int):
        return (value, value, value)
    t, h, w = value
    return (int(t), int(h), int(w))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one dimension: (before, after), the odd element going after.

    The output has ceil(size / stride) elements; the padding is whatever makes the last window fit.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _static_padding(kernel: Triple, stride: Triple) -> Triple | None:
    """The symmetric padding PyTorch can apply itself, or None when SAME depends on the input size.

    With stride 1 the SAME padding is k - 1 whatever the input, symmetric for odd k.
    """
    if all(s == 1 and k % 2 == 1 for k, s in zip(kernel, stride, strict=True)):
        return (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
    return None


def _dynamic_pad(x: torch.Tensor, kernel: Triple, stride: Triple, value: float) -> torch.Tensor:
    pads: list[int] = []
    # F.pad takes the last dimension first: (W_before, W_after, H_before, H_after, T_before, T_after).
    for dim in (4, 3, 2):
        pads.extend(same_padding(x.shape[dim], kernel[dim - 2], stride[dim - 2]))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class BatchNorm3dNoScale(nn.BatchNorm3d):
    """Batch norm with a learned shift but a fixed scale of 1, as in DeepMind's I3D.

    Keeping gamma out of the parameters (rather than a weight frozen at 1) means the checkpoint maps onto
    the module one to one and a fine-tuning run cannot start learning a scale the original never had.
    """

    def __init__(self, num_features: int, eps: float = BN_EPS, momentum: float = 0.01) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False)
        self.bias = nn.Parameter(torch.zeros(num_features))


class Unit3d(nn.Module):
    """Conv3d with TF SAME padding, then batch norm (no scale) and ReLU; the building block of I3D."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | Sequence[int] = 1,
        stride: int | Sequence[int] = 1,
        batch_norm: bool = True,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.kernel = _triple(kernel)
        self.stride = _triple(stride)
        static = _static_padding(self.kernel, self.stride)
        self.dynamic = static is None
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            self.kernel,
            self.stride,
            padding=static or 0,
            bias=not batch_norm,
        )
        self.bn: nn.Module = BatchNorm3dNoScale(out_channels) if batch_norm else nn.Identity()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            x = _dynamic_pad(x, self.kernel, self.stride, 0.0)
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max-pool with TF SAME padding; padded elements are -inf so they never win a window."""

    def __init__(self, kernel: int | Sequence[int], stride: int | Sequence[int]) -> None:
        super().__init__()
        self.kernel = _triple(kernel)
        self.stride = _triple(stride)
        self.static = _static_padding(self.kernel, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static is not None:
            # PyTorch's own max-pool padding is already implicit -inf.
            return F.max_pool3d(x, self.kernel, self.stride, padding=self.static)
        x = _dynamic_pad(x, self.kernel, self.stride, float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """The four-branch Inception block of I3D; the branch outputs are concatenated on channels."""

    def __init__(
        self,
        in_channels: int,
        b0: int,
        b1: tuple[int, int],
        b2: tuple[int, int],
        b3: int,
    ) -> None:
        super().__init__()
        self.branch0 = Unit3d(in_channels, b0, 1)
        self.branch1 = nn.Sequential(Unit3d(in_channels, b1[0], 1), Unit3d(b1[0], b1[1], 3))
        self.branch2 = nn.Sequential(Unit3d(in_channels, b2[0], 1), Unit3d(b2[0], b2[1], 3))
        self.branch3 = nn.Sequential(MaxPool3dSame(3, 1), Unit3d(in_channels, b3, 1))
        self.out_channels = b0 + b1[1] + b2[1] + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class InceptionI3d(nn.Module):
    """RGB Inception-I3D: `extract_features` gives the (B, 1024) clip feature, `forward` the logits.

    The layer names follow the endpoints of the original model (Conv3d_1a_7x7 ... Mixed_5c), which keeps the
    checkpoint conversion a plain renaming.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["Conv3d_1a_7x7"] = Unit3d(in_channels, 64, 7, stride=2)
        layers["MaxPool3d_2a_3x3"] = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        layers["Conv3d_2b_1x1"] = Unit3d(64, 64, 1)
        layers["Conv3d_2c_3x3"] = Unit3d(64, 192, 3)
        layers["MaxPool3d_3a_3x3"] = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, spec in _MIXED.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPool3dSame(3, 2)
            elif name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPool3dSame(2, 2)
            module = InceptionModule(channels, *spec)
            layers[name] = module
            channels = module.out_channels
        self.features = nn.Sequential(layers)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.logits = Unit3d(FEATURE_DIM, num_classes, 1, batch_norm=False, activation=False)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless `x` is (B, in_channels, T >= 9, H, W)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"I3D expects (B, 3, T, H, W) frames, got shape {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]}")

    def _pooled_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c averaged over space and over time windows of 2 (stride 1): (B, 1024, T')."""
        self.check_input(x)
        y = self.features(x).mean(dim=(3, 4))
        return F.avg_pool1d(y, kernel_size=2, stride=1)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, 1024) clip feature: Mixed_5c average-pooled as the logits layer sees it."""
        return self._pooled_steps(x).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics logits (B, num_classes): 1x1x1 conv on each pooled time step, then the time mean."""
        steps = self.dropout(self._pooled_steps(x))[:, :, :, None, None]
        return self.logits(steps).mean(dim=(2, 3, 4))

    @torch.no_grad()
    def fuse_batchnorm(self) -> InceptionI3d:
        """Fold every batch norm into its convolution (in place) for inference; returns self.

        With frozen statistics, BN is an affine map per channel, so conv -> BN equals a conv with scaled
        weights and a bias; this removes one full pass over every activation. Use only for inference:
        the fused model has no BN statistics left to train.
        """
        for unit in list(self.modules()):
            if isinstance(unit, Unit3d) and isinstance(unit.bn, nn.BatchNorm3d):
                _fold(unit)
        return self


def _fold(unit: Unit3d) -> None:
    bn = unit.bn
    assert isinstance(bn, nn.BatchNorm3d) and bn.running_mean is not None and bn.running_var is not None
    conv = unit.conv
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    scale = inv_std if bn.weight is None else bn.weight.double() * inv_std
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    if conv.bias is not None:
        shift = shift + conv.bias.double() * scale
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1, 1)
    assert not isinstance(conv.padding, str)  # a Unit3d pads by numbers (or dynamically, before the conv)
    fused = nn.Conv3d(
        conv.in_channels,
        conv.out_channels,
        _triple(conv.kernel_size),
        _triple(conv.stride),
        padding=_triple(conv.padding),
        bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(weight.to(conv.weight.dtype))
    assert fused.bias is not None  # made with bias=True
    fused.bias.copy_(shift.to(conv.weight.dtype))
    unit.conv = fused
    unit.bn = nn.Identity()


def fuse_batchnorm(model: InceptionI3d) -> InceptionI3d:
    """Fold the batch norms of `model` into its convolutions (in place); see `InceptionI3d.fuse_batchnorm`."""
    return model.fuse_batchnorm()


class FastI3d(nn.Module):
    """Inference-only I3D: batch norm folded, channels-last-3d layout, optionally compiled by torch.compile.

    Each step is exact up to float rounding (max logit difference to the eager model about 3e-5): folding
    BN removes a pass over every activation, the channels-last layout is what the oneDNN 3-D convolutions
    run fastest on, and compiling with weight freezing pre-packs the convolution weights once instead of
    on every call and fuses the pads, ReLUs and concatenations. Compiling costs 10-30 s on first use of
    each input shape (cached on disk afterwards) and needs a C++ compiler; without one, or if compiling
    fails for any reason, the model runs uncompiled and says so once in the log.
    """

    def __init__(self, model: InceptionI3d, use_compile: bool = True, channels_last: bool = True,
                 copy: bool = True) -> None:
        super().__init__()
        import copy as copying

        fused = (copying.deepcopy(model) if copy else model).eval().fuse_batchnorm()
        for parameter in fused.parameters():
            parameter.requires_grad_(False)
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        # Module.to takes memory_format at run time; torch's type hints for its overloads leave it out
        self.model = fused.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.use_compile = use_compile
        self._compiled: dict[str, object] = {}

    def _run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        self.model.check_input(x)  # a bad shape is the caller's error, not a reason to stop compiling
        x = x.contiguous(memory_format=self.memory_format)
        method = getattr(self.model, name)
        with torch.inference_mode():
            if self.use_compile:
                use_persistent_compile_cache()
                import torch._inductor.config as inductor_config

                if name not in self._compiled:
                    self._compiled[name] = torch.compile(method, dynamic=False)
                try:
                    # Freezing makes inductor treat the weights as constants, so it pre-packs them for
                    # oneDNN once. It is read when a shape is compiled, i.e. inside the call.
                    with inductor_config.patch(freezing=True):
                        return self._compiled[name](x)  # type: ignore[operator]
                except Exception as error:  # no compiler, unsupported platform, ...: stay correct, go eager
                    import logging

                    logging.getLogger(__name__).warning(
                        "torch.compile failed (%s); running I3D uncompiled",
                        str(error).splitlines()[0] if str(error) else error,
                    )
                    self.use_compile = False
            return method(x)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1024) clip features, as `InceptionI3d.extract_features`."""
        return self._run("extract_features", x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) logits, as `InceptionI3d.forward`."""
        return self._run("forward", x)


COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def use_persistent_compile_cache() -> Path:
    """Keep torch.compile's kernel cache in myosight's cache folder (`cache_dir()/torch-inductor`) unless the user
    chose a folder with $TORCHINDUCTOR_CACHE_DIR; the default under the temporary folder does not survive a
    reboot. With the weights frozen, inductor recompiles the graph each run but reuses the compiled C++ kernels
    from here: about half of the compile time (39 s -> 20 s at 112 px on a 2-core CPU)."""
    chosen = os.environ.get(COMPILE_CACHE_ENV)
    if not chosen or os.path.abspath(chosen) == _inductor_default_cache():  # torch filled in its default
        os.environ[COMPILE_CACHE_ENV] = str(cache_dir() / "torch-inductor")
    return Path(os.environ[COMPILE_CACHE_ENV])


def _inductor_default_cache() -> str | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # moved in another torch version: only an unset variable is replaced then
        return None
    return os.path.abspath(default_cache_dir())


def optimize_for_inference(model: InceptionI3d, use_compile: bool = True, channels_last: bool = True,
                           copy: bool = True) -> FastI3d:
    """The fastest exact inference path for `model` (see `FastI3d`); `model` itself is left as is unless
    `copy=False` (then it is folded in place: cheaper, for a caller that does not keep it)."""
    return FastI3d(model, use_compile=use_compile, channels_last=channels_last, copy=copy)
