"""Classifier and fusion heads over per-clip features, and the registry that builds them by name.

A sample is ``n`` clips (5 in the paper). The inputs of a head are a dict batch:

- ``"rgb"``: (B, n, feature_dim) frozen I3D features, one vector per clip;
- ``"emg"``: (B, n, feature_dim) features of the sEMG spectrogram CNN, one vector per clip;
- ``"emg_raw"``: (B, n, T_raw, channels) raw sEMG samples of each clip (16 channels, resampled to the
  model's 160 Hz grid and scaled to [-1, 1]; not envelopes).

Every head predicts per clip (:meth:`Head.clip_logits`, (B, n, C)) and aggregates the clip predictions into
one prediction per sample (:meth:`Head.forward`, (B, C) logits): by the mean, or by attention weights for
the self-attention heads. Training code builds any head with :func:`build_head` from its registry name and
feeds it the same batch dict; each head lists the keys it reads in ``modalities``.

Design decisions:

- Fusion space. Late fusion mixes the two modalities' predictions as logits by default:
  ``p * Y_rgb + (1 - p) * Y_emg`` with Y the clip-averaged logits of each branch, and one cross-entropy on
  the result. Mixing logits keeps the output a plain logit vector (the same loss, argmax and softmax
  code for every head) and is a normalised geometric mean of the two branches' probabilities.
  ``fuse="probs"`` mixes probabilities instead and returns ``log(p * softmax(Y_rgb) + (1 - p) *
  softmax(Y_emg))``, which are also valid logits (their softmax is the mixture itself).
- LSTM readout. The clip LSTM is unidirectional; a linear classifier reads every step's output and the
  step predictions are averaged, so the LSTM heads keep the paper's "predict per clip, then average"
  scheme and give per-clip predictions for display. Step t has seen clips 1..t, so later clips carry
  more context. The raw-sEMG LSTM runs over the samples of each clip separately and classifies the clip
  from its last hidden state.
- Attention weights. S = softmax(alpha * Q K^T / sqrt(d_k)) is normalised over each row (a query clip
  spreads one unit of attention over the other clips; the diagonal is masked). The literal mean of a row
  of a row-normalised matrix is 1/n for every clip, which would make the weighting a no-op, so the
  weight of clip j is the mean attention it *receives*, ``w_j = mean_i S_ij`` (the mean of column j,
  the diagonal zero included). The weights are non-negative, sum to 1, and a clip gets nothing from
  itself. Q and K are computed from the clip features (also in the LSTM variant) by bias-free linear
  maps: a key bias adds the same amount to a whole row of scores and the softmax removes it.
- Defaults and the authors' details. The defaults are myosight's; :data:`PAPER_HEAD_OPTIONS` holds the
  options that reproduce the authors' heads where they differ (``--heads paper``): batch norm before the
  linear classifier, self-attention with alpha 1.25 and d_k 1024, mid fusion 2048 -> 1024 -> classes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812  (the usual PyTorch alias)
from torch import Tensor, nn

from myosight.errors import ConfigError

FEATURE_MODALITIES = ("rgb", "emg")
FUSION_SPACES = ("logits", "probs")
BRANCH_KINDS = ("linear", "lstm")
_SHAPES = {
    "rgb": "(B, n_clips, feature_dim)",
    "emg": "(B, n_clips, feature_dim)",
    "emg_raw": "(B, n_clips, T_raw, channels)",
}


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _dropout_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(f"dropout must be a number in [0, 1), got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def _feature_modality(value: Any) -> str:
    if value not in FEATURE_MODALITIES:
        raise ConfigError(f"modality must be one of {', '.join(FEATURE_MODALITIES)}, got {value!r}")
    return value


class Head(nn.Module):
    """Base of every head: a batch dict in, (B, num_classes) logits out, per-clip logits on request.

    Subclasses implement :meth:`clip_logits`; the default :meth:`forward` averages it over the clips.
    """

    modalities: tuple[str, ...] = ()
    #: Whether the head weights its clips by attention it computes (the live viewer shows those weights;
    #: heads that average their clips have none to show).
    has_clip_attention: bool = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = _positive_int("num_classes", num_classes)
        self.head_config: dict[str, Any] | None = None  # set by build_head: what rebuilds this head

    def clip_logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Per-clip logits (B, n_clips, num_classes)."""
        raise NotImplementedError

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Sample logits (B, num_classes): the mean of the clip predictions."""
        return self.clip_logits(batch).mean(dim=1)

    def _take(self, batch: Mapping[str, Tensor], key: str, last_dim: int) -> Tensor:
        """batch[key], checked: present, a tensor, the documented rank and trailing size, at least one clip."""
        name = type(self).__name__
        if key not in batch:
            raise ConfigError(f"{name} needs batch[{key!r}] {_SHAPES[key]}; the batch has keys {sorted(batch)}")
        x = batch[key]
        ndim = 4 if key == "emg_raw" else 3
        if not isinstance(x, Tensor) or x.ndim != ndim or x.shape[-1] != last_dim or 0 in x.shape[1:]:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(
                f"{name}: batch[{key!r}] must be {_SHAPES[key]} with a last size of {last_dim}, got {shape}"
            )
        return x

    def _take_pair(self, batch: Mapping[str, Tensor], feature_dim: int) -> dict[str, Tensor]:
        """The RGB and sEMG features of a batch, checked to describe the same samples and clips."""
        x = {m: self._take(batch, m, feature_dim) for m in FEATURE_MODALITIES}
        if x["rgb"].shape[:2] != x["emg"].shape[:2]:
            raise ConfigError(
                f"{type(self).__name__}: rgb and emg must have the same (B, n_clips), "
                f"got {tuple(x['rgb'].shape[:2])} and {tuple(x['emg'].shape[:2])}"
            )
        return x


# Per-clip classifiers (branches): (B, n, d) -> (B, n, C). Heads combine them.


class LinearClipClassifier(nn.Module):
    """Dropout and one linear layer applied to every clip on its own; the paper's linear classifier.

    ``batch_norm=True`` puts a batch norm over the feature dimension (statistics over all clips of the batch)
    before the dropout and the linear layer, as the authors' classifier has it.
    """

    def __init__(self, feature_dim: int, num_classes: int, dropout: float = 0.5, batch_norm: bool = False) -> None:
        super().__init__()
        feature_dim = _positive_int("feature_dim", feature_dim)
        self.norm = nn.BatchNorm1d(feature_dim) if _flag("batch_norm", batch_norm) else None
        self.dropout = nn.Dropout(_dropout_rate(dropout))
        self.fc = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.norm is not None:
            x = self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        return self.fc(self.dropout(x))


class LSTMClipClassifier(nn.Module):
    """A unidirectional LSTM over the clip sequence; a linear layer classifies every step's output."""

    def __init__(
        self, feature_dim: int, num_classes: int, hidden_size: int = 512, num_layers: int = 1, dropout: float = 0.5
    ) -> None:
        super().__init__()
        rate = _dropout_rate(dropout)
        num_layers = _positive_int("num_layers", num_layers)
        self.lstm = nn.LSTM(
            _positive_int("feature_dim", feature_dim),
            _positive_int("hidden_size", hidden_size),
            num_layers=num_layers,
            batch_first=True,
            dropout=rate if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(rate)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        steps, _ = self.lstm(x)
        return self.fc(self.dropout(steps))


class RawEMGClipClassifier(LSTMClipClassifier):
    """An LSTM over the sEMG samples of each clip; the last hidden state classifies the clip.

    (B, n, T, channels) -> (B, n, C): clips are independent sequences (folded into the batch).
    """

    def __init__(
        self, channels: int, num_classes: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.5
    ) -> None:
        super().__init__(channels, num_classes, hidden_size, num_layers, dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, n, T, channels = x.shape
        _, (h, _) = self.lstm(x.reshape(B * n, T, channels))
        return self.fc(self.dropout(h[-1])).reshape(B, n, -1)


def _make_branch(kind: str, feature_dim: int, num_classes: int, hidden_size: int | None, dropout: float,
                 batch_norm: bool = False) -> nn.Module:
    if kind == "linear":
        if hidden_size is not None:
            raise ConfigError("hidden_size applies to LSTM branches only; the linear branch has no hidden layer")
        return LinearClipClassifier(feature_dim, num_classes, dropout, batch_norm)
    if kind == "lstm":
        if batch_norm:
            raise ConfigError("batch_norm applies to linear branches only (the batch norm before the linear layer)")
        return LSTMClipClassifier(feature_dim, num_classes, 512 if hidden_size is None else hidden_size, 1, dropout)
    raise ConfigError(f"branch must be one of {', '.join(BRANCH_KINDS)}, got {kind!r}")


# Single-modality heads.


class LinearHead(Head):
    """Linear classifier per clip on one modality's features, clip logits averaged (Linear RGB / sEMG)."""

    def __init__(self, modality: str = "rgb", num_classes: int = 20, feature_dim: int = 1024, dropout: float = 0.5,
                 batch_norm: bool = False):
        super().__init__(num_classes)
        self.modality = _feature_modality(modality)
        self.modalities = (self.modality,)
        self.feature_dim = _positive_int("feature_dim", feature_dim)
        self.branch = LinearClipClassifier(feature_dim, num_classes, dropout, batch_norm)

    def clip_logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.branch(self._take(batch, self.modality, self.feature_dim))


class LSTMHead(Head):
    """LSTM over the clip features of one modality, step predictions averaged (LSTM RGB / sEMG)."""

    def __init__(
        self,
        modality: str = "rgb",
        num_classes: int = 20,
        feature_dim: int = 1024,
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_classes)
        self.modality = _feature_modality(modality)
        self.modalities = (self.modality,)
        self.feature_dim = _positive_int("feature_dim", feature_dim)
        self.branch = LSTMClipClassifier(feature_dim, num_classes, hidden_size, num_layers, dropout)

    def clip_logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.branch(self._take(batch, self.modality, self.feature_dim))


class RawEMGLSTMHead(Head):
    """LSTM over each clip's raw sEMG samples, clip predictions averaged (LSTM sEMG raw).

    Reads ``batch["emg_raw"]`` (B, n, T_raw, channels); it uses no feature vectors, so it takes
    ``channels`` where the other heads take ``feature_dim``.
    """

    modalities = ("emg_raw",)

    def __init__(
        self,
        num_classes: int = 20,
        channels: int = 16,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_classes)
        self.channels = _positive_int("channels", channels)
        self.branch = RawEMGClipClassifier(channels, num_classes, hidden_size, num_layers, dropout)

    def clip_logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.branch(self._take(batch, "emg_raw", self.channels))



class RmsMavBaselineHead(Head):
    """A simple sEMG baseline: per clip, the RMS and mean absolute value of each channel into a linear layer.

    Not a row of the paper: it is the yardstick the spectrogram-CNN pipeline must beat clearly. Reads
    ``batch["emg_raw"]``; the features are log-compressed and standardised by a batch norm without scale.
    """

    modalities = ("emg_raw",)

    def __init__(self, num_classes: int = 20, channels: int = 16, dropout: float = 0.2) -> None:
        super().__init__(num_classes)
        self.channels = _positive_int("channels", channels)
        self.norm = nn.BatchNorm1d(2 * self.channels, affine=False)
        self.dropout = nn.Dropout(_dropout_rate(dropout))
        self.classifier = nn.Linear(2 * self.channels, num_classes)

    def clip_logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        x = self._take(batch, "emg_raw", self.channels)
        rms = x.pow(2).mean(dim=2).add(1e-8).sqrt()
        mav = x.abs().mean(dim=2)
        features = torch.log(torch.cat([rms, mav], dim=-1) + 1e-3)  # (B, n, 2 * channels)
        b, n, f = features.shape
        features = self.norm(features.reshape(b * n, f)).reshape(b, n, f)
        return self.classifier(self.dropout(features))


# Fusion.


class ModalityMix(nn.Module):
    """``p * Y_rgb + (1 - p) * Y_emg`` with a constant p, or a learnable p = sigmoid(theta) in [0, 1].

    A constant p is a buffer (stored with the model, never trained). A learnable p is the sigmoid of a
    free parameter, so no optimiser step can push it out of [0, 1]. ``space`` says whether logits or
    probabilities are mixed (see the module docstring); the output is logits either way.
    """

    p_const: Tensor  # the constant p's buffer (absent when p is learnable)

    def __init__(self, p: float = 0.5, learnable: bool = False, space: str = "logits") -> None:
        super().__init__()
        if space not in FUSION_SPACES:
            raise ConfigError(f"fuse must be one of {', '.join(FUSION_SPACES)}, got {space!r}")
        self.space = space
        self.learnable = bool(learnable)
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ConfigError(f"the fusion weight p must be a number in [0, 1], got {p!r}")
        if self.learnable:
            if not 0.0 < p < 1.0:
                raise ConfigError(f"a learnable p starts strictly inside (0, 1) (it is a sigmoid), got {p!r}")
            self.theta = nn.Parameter(torch.tensor(math.log(p / (1.0 - p))))
        else:
            self.register_buffer("p_const", torch.tensor(float(p)))

    def weight(self) -> Tensor:
        """p as a 0-d tensor (differentiable when learnable)."""
        return torch.sigmoid(self.theta) if self.learnable else self.p_const

    @property
    def p(self) -> float:
        return float(self.weight().detach())

    def forward(self, y_rgb: Tensor, y_emg: Tensor) -> Tensor:
        if self.space == "logits":
            p = self.weight()
            return p * y_rgb + (1.0 - p) * y_emg
        if self.learnable:  # log p and log(1 - p) without rounding p to 0 or 1 first
            log_p, log_q = F.logsigmoid(self.theta), F.logsigmoid(-self.theta)
        else:
            log_p, log_q = torch.log(self.p_const), torch.log1p(-self.p_const)
        return torch.logaddexp(log_p + F.log_softmax(y_rgb, dim=-1), log_q + F.log_softmax(y_emg, dim=-1))


class LateFusionHead(Head):
    """One classifier branch per modality; the clip-averaged predictions are mixed (Late Fusion, PAR).

    ``branch`` picks linear or LSTM branches (Late-Fusion LSTM); ``p`` and ``learnable_p`` give the PAR
    variants (plain late fusion is p = 0.5, constant); ``fuse`` picks logit or probability mixing. One
    cross-entropy on the output trains both branches (and p) together.
    """

    modalities = FEATURE_MODALITIES

    def __init__(
        self,
        num_classes: int = 20,
        feature_dim: int = 1024,
        branch: str = "linear",
        p: float = 0.5,
        learnable_p: bool = False,
        fuse: str = "logits",
        hidden_size: int | None = None,
        dropout: float = 0.5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(num_classes)
        self.feature_dim = _positive_int("feature_dim", feature_dim)
        self.branches = nn.ModuleDict({
            m: _make_branch(branch, feature_dim, num_classes, hidden_size, dropout, batch_norm)
            for m in FEATURE_MODALITIES
        })
        self.mix = ModalityMix(p, learnable_p, fuse)

    @property
    def p(self) -> float:
        """The current weight of the RGB prediction (sEMG gets 1 - p)."""
        return self.mix.p

    def branch_clip_logits(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-clip logits of each modality's branch: {"rgb": (B, n, C), "emg": (B, n, C)}."""
        x = self._take_pair(batch, self.feature_dim)
        return {m: self.branches[m](x[m]) for m in FEATURE_MODALITIES}

    def _pool(self, clip_preds: dict[str, Tensor], batch: Mapping[str, Tensor]) -> tuple[dict, dict]:
        """Clip predictions -> one per modality, and the clip weights used (here uniform)."""
        n = clip_preds["rgb"].shape[1]
        weights = {m: clip_preds[m].new_full(clip_preds[m].shape[:2], 1.0 / n) for m in FEATURE_MODALITIES}
        return {m: clip_preds[m].mean(dim=1) for m in FEATURE_MODALITIES}, weights

    def branch_logits(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's aggregated prediction before fusion, (B, C) each (for per-modality reports)."""
        return self._pool(self.branch_clip_logits(batch), batch)[0]

    def clip_logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Per-clip fused logits: each clip's two branch predictions mixed like the sample's."""
        preds = self.branch_clip_logits(batch)
        return self.mix(preds["rgb"], preds["emg"])

    def forward_with_attention(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits (B, C) and the clip weights each modality used, {"rgb": (B, n), "emg": (B, n)}."""
        pooled, weights = self._pool(self.branch_clip_logits(batch), batch)
        return self.mix(pooled["rgb"], pooled["emg"]), weights

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.forward_with_attention(batch)[0]


class ClipAttention(nn.Module):
    """Clip-to-clip attention S = softmax(alpha * Q K^T / sqrt(d_k)) with the diagonal masked.

    Rows are query clips and sum to 1; ``S[i, i] = 0``. :meth:`clip_weights` turns S into one weight per
    clip: the mean attention the clip receives (the mean of its column).
    """

    def __init__(self, feature_dim: int, attention_dim: int = 128, alpha: float = 1.0) -> None:
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha < math.inf:
            raise ConfigError(f"the attention temperature alpha must be a finite number >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.attention_dim = _positive_int("attention_dim", attention_dim)
        self.query = nn.Linear(feature_dim, attention_dim, bias=False)
        self.key = nn.Linear(feature_dim, attention_dim, bias=False)

    def forward(self, x_query: Tensor, x_key: Tensor) -> Tensor:
        """(B, n, d) query-side and key-side clip features -> S (B, n, n)."""
        n = x_query.shape[1]
        if n < 2:
            raise ConfigError(f"self-attention over clips needs at least 2 clips (the diagonal is masked), got {n}")
        scores = self.query(x_query) @ self.key(x_key).transpose(1, 2)
        scores = scores * (self.alpha / math.sqrt(self.attention_dim))
        diagonal = torch.eye(n, dtype=torch.bool, device=scores.device)
        return scores.masked_fill(diagonal, float("-inf")).softmax(dim=-1)

    @staticmethod
    def clip_weights(attention: Tensor) -> Tensor:
        """S (B, n, n) -> (B, n) clip weights, non-negative and summing to 1."""
        return attention.mean(dim=1)


class SelfAttentionLateFusionHead(LateFusionHead):
    """Late fusion where each modality weights its clip predictions by self-attention over the clips.

    Per modality, C = sum_i w_i * P_i with P_i the branch's clip prediction (linear or LSTM step) and w
    from :class:`ClipAttention`. With ``cross_modal=True`` the keys come from the other modality (the RGB
    weights use RGB queries and sEMG keys, and vice versa). ``alpha`` scales the scores: 0 gives uniform
    weights, larger values sharper ones. After each forward, ``last_attention`` holds the detached clip
    weights {"rgb": (B, n), "emg": (B, n)} for display; :meth:`forward_with_attention` returns them.
    """

    has_clip_attention = True

    def __init__(
        self,
        num_classes: int = 20,
        feature_dim: int = 1024,
        branch: str = "linear",
        attention_dim: int = 128,
        alpha: float = 1.0,
        cross_modal: bool = False,
        p: float = 0.5,
        learnable_p: bool = False,
        fuse: str = "logits",
        hidden_size: int | None = None,
        dropout: float = 0.5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(num_classes, feature_dim, branch, p, learnable_p, fuse, hidden_size, dropout, batch_norm)
        self.cross_modal = bool(cross_modal)
        self.attention = nn.ModuleDict(
            {m: ClipAttention(feature_dim, attention_dim, alpha) for m in FEATURE_MODALITIES}
        )
        self.last_attention: dict[str, Tensor] | None = None

    def attention_matrices(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """S per modality, {"rgb": (B, n, n), "emg": (B, n, n)}."""
        x = self._take_pair(batch, self.feature_dim)
        other = {"rgb": "emg", "emg": "rgb"}
        return {m: self.attention[m](x[m], x[other[m] if self.cross_modal else m]) for m in FEATURE_MODALITIES}

    def _pool(self, clip_preds: dict[str, Tensor], batch: Mapping[str, Tensor]) -> tuple[dict, dict]:
        matrices = self.attention_matrices(batch)
        weights = {m: ClipAttention.clip_weights(matrices[m]) for m in FEATURE_MODALITIES}
        pooled = {m: (weights[m].unsqueeze(-1) * clip_preds[m]).sum(dim=1) for m in FEATURE_MODALITIES}
        return pooled, weights

    def forward_with_attention(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits, weights = super().forward_with_attention(batch)
        self.last_attention = {m: w.detach() for m, w in weights.items()}
        return logits, weights


class MidFusionHead(Head):
    """Mid fusion: per clip, [Z_rgb, Z_emg] -> linear layers (the fusion layer) -> Z_fusion -> classifier.

    ``fusion_dims`` are the widths of the fusion layers (ReLU and dropout after each); the last one is k,
    the size of Z_fusion. Clip predictions are averaged.
    """

    modalities = FEATURE_MODALITIES

    def __init__(
        self,
        num_classes: int = 20,
        feature_dim: int = 1024,
        fusion_dims: Sequence[int] = (1024, 512),
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_classes)
        self.feature_dim = _positive_int("feature_dim", feature_dim)
        rate = _dropout_rate(dropout)
        if isinstance(fusion_dims, int | str) or len(fusion_dims) == 0:
            raise ConfigError(f"fusion_dims must be a non-empty list of layer widths, got {fusion_dims!r}")
        layers: list[nn.Module] = []
        width = 2 * feature_dim
        for k in fusion_dims:
            layers += [nn.Linear(width, _positive_int("fusion_dims entry", k)), nn.ReLU(), nn.Dropout(rate)]
            width = k
        self.fusion = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def fused_features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Z_fusion, (B, n, k)."""
        x = self._take_pair(batch, self.feature_dim)
        return self.fusion(torch.cat([x["rgb"], x["emg"]], dim=-1))

    def clip_logits(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.classifier(self.fused_features(batch))


# Registry.


@dataclass(frozen=True)
class HeadSpec:
    """A registry entry: the class, the constructor arguments the name fixes, and what the head reads."""

    name: str
    cls: type[Head]
    modalities: tuple[str, ...]
    summary: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def options(self) -> list[str]:
        """Constructor arguments a caller may set for this head."""
        params = inspect.signature(self.cls).parameters
        return [name for name in params if name not in self.fixed]


HEADS: dict[str, HeadSpec] = {
    spec.name: spec
    for spec in (
        HeadSpec("linear_rgb", LinearHead, ("rgb",), "linear classifier per clip on RGB", {"modality": "rgb"}),
        HeadSpec("linear_emg", LinearHead, ("emg",), "linear classifier per clip on sEMG", {"modality": "emg"}),
        HeadSpec("lstm_rgb", LSTMHead, ("rgb",), "LSTM over the RGB clips", {"modality": "rgb"}),
        HeadSpec("lstm_emg", LSTMHead, ("emg",), "LSTM over the sEMG clips", {"modality": "emg"}),
        HeadSpec("lstm_emg_raw", RawEMGLSTMHead, ("emg_raw",), "LSTM over each clip's raw sEMG samples"),
        HeadSpec("rms_mav_emg", RmsMavBaselineHead, ("emg_raw",), "baseline: per-clip RMS + MAV per channel, linear"),
        HeadSpec(
            "late_fusion",
            LateFusionHead,
            FEATURE_MODALITIES,
            "mean of the linear RGB and sEMG predictions",
            {"branch": "linear", "p": 0.5, "learnable_p": False},
        ),
        HeadSpec(
            "late_fusion_par_const",
            LateFusionHead,
            FEATURE_MODALITIES,
            "p * RGB + (1 - p) * sEMG, p constant",
            {"branch": "linear", "learnable_p": False},
        ),
        HeadSpec(
            "late_fusion_par_learnable",
            LateFusionHead,
            FEATURE_MODALITIES,
            "p * RGB + (1 - p) * sEMG, p learnt in [0, 1]",
            {"branch": "linear", "learnable_p": True},
        ),
        HeadSpec(
            "late_fusion_lstm",
            LateFusionHead,
            FEATURE_MODALITIES,
            "mean of the LSTM RGB and LSTM sEMG predictions",
            {"branch": "lstm", "p": 0.5, "learnable_p": False},
        ),
        HeadSpec("mid_fusion", MidFusionHead, FEATURE_MODALITIES, "fusion layers on concatenated clip features"),
        HeadSpec(
            "self_attention_lf",
            SelfAttentionLateFusionHead,
            FEATURE_MODALITIES,
            "late fusion with clip self-attention weights, linear branches",
            {"branch": "linear"},
        ),
        HeadSpec(
            "self_attention_lf_lstm",
            SelfAttentionLateFusionHead,
            FEATURE_MODALITIES,
            "late fusion with clip self-attention weights, LSTM branches",
            {"branch": "lstm"},
        ),
    )
}


#: How the heads' options are chosen: myosight's defaults, or the authors' details where they differ.
HEAD_STYLES = ("default", "paper")
_PAPER_ATTENTION = {"alpha": 1.25, "attention_dim": 1024}
#: The options that reproduce the authors' heads where they differ from myosight's defaults: batch norm before
#: every linear classifier (linear heads and the linear branches of late fusion), self-attention with alpha
#: 1.25 and d_k 1024, mid fusion 2048 -> 1024 -> classes. Heads not listed are the same in both styles.
PAPER_HEAD_OPTIONS: dict[str, dict[str, Any]] = {
    "linear_rgb": {"batch_norm": True},
    "linear_emg": {"batch_norm": True},
    "late_fusion": {"batch_norm": True},
    "late_fusion_par_const": {"batch_norm": True},
    "late_fusion_par_learnable": {"batch_norm": True},
    "mid_fusion": {"fusion_dims": [1024]},
    "self_attention_lf": {"batch_norm": True, **_PAPER_ATTENTION},
    "self_attention_lf_lstm": dict(_PAPER_ATTENTION),
}


def head_options(name: str, style: str = "default", options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A head's constructor options in a style ("default" or "paper"), with `options` taking precedence."""
    if style not in HEAD_STYLES:
        raise ConfigError(f"unknown head style {style!r}; choose from {', '.join(HEAD_STYLES)}")
    base = PAPER_HEAD_OPTIONS.get(name, {}) if style == "paper" else {}
    return {**base, **(options or {})}


def build_head(name: str, num_classes: int = 20, feature_dim: int = 1024, **kwargs: Any) -> Head:
    """Build the head registered as ``name``; ``kwargs`` are its constructor options.

    ``feature_dim`` is passed to heads over feature vectors only (``lstm_emg_raw`` takes ``channels``).
    The head's ``head_config`` records the name and arguments, so ``build_head(**head.head_config)``
    rebuilds it (for model bundles).
    """
    spec = HEADS.get(name)
    if spec is None:
        raise ConfigError(f"unknown head {name!r}; known heads: {', '.join(HEADS)}")
    options = spec.options()
    fixed = sorted(set(kwargs) & set(spec.fixed))
    if fixed:
        raise ConfigError(f"head {name!r} fixes {', '.join(fixed)}; pick another head name to change it")
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        accepted = [o for o in options if o not in ("num_classes", "feature_dim")]
        raise ConfigError(f"head {name!r} has no option {', '.join(unknown)}; its options: {', '.join(accepted)}")
    arguments = {"num_classes": num_classes, **kwargs}
    if "feature_dim" in options:
        arguments["feature_dim"] = feature_dim
    head = spec.cls(**spec.fixed, **arguments)
    head.head_config = {"name": name, **arguments}
    return head
