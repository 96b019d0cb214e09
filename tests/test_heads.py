"""Classifier and fusion heads: shapes, gradients, the math of each family, the registry, a tiny learning run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812  (the usual PyTorch alias)

from myosight.errors import ConfigError
from myosight.models.heads import HEADS, LateFusionHead, build_head

B, N, T_RAW = 3, 5, 160
SMALL = {"feature_dim": 12, "num_classes": 4}  # small sizes for the math tests
NON_LSTM = [
    "linear_rgb",
    "linear_emg",
    "late_fusion",
    "late_fusion_par_const",
    "late_fusion_par_learnable",
    "mid_fusion",
    "self_attention_lf",
]


def make_batch(feature_dim: int = 1024, n: int = N, b: int = B, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "rgb": torch.randn(b, n, feature_dim, generator=g),
        "emg": torch.randn(b, n, feature_dim, generator=g),
        "emg_raw": torch.rand(b, n, T_RAW, 16, generator=g),
    }


@pytest.fixture(autouse=True)
def one_thread():
    """The models here are tiny: one thread is fastest, and much faster than two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_head(name, **SMALL, dropout=0.0, **kwargs).eval()


def test_registry_names_and_modalities():
    expected = {
        "linear_rgb": ("rgb",),
        "linear_emg": ("emg",),
        "lstm_rgb": ("rgb",),
        "lstm_emg": ("emg",),
        "lstm_emg_raw": ("emg_raw",),
        "rms_mav_emg": ("emg_raw",),
        "late_fusion": ("rgb", "emg"),
        "late_fusion_par_const": ("rgb", "emg"),
        "late_fusion_par_learnable": ("rgb", "emg"),
        "late_fusion_lstm": ("rgb", "emg"),
        "mid_fusion": ("rgb", "emg"),
        "self_attention_lf": ("rgb", "emg"),
        "self_attention_lf_lstm": ("rgb", "emg"),
    }
    assert {name: spec.modalities for name, spec in HEADS.items()} == expected
    for name, modalities in expected.items():
        assert build_head(name, num_classes=3, feature_dim=8).modalities == modalities


@pytest.mark.parametrize("name", list(HEADS))
def test_output_shapes_with_defaults(name):
    head = build_head(name).eval()
    batch = make_batch()
    with torch.no_grad():
        assert head(batch).shape == (B, 20)
        assert head.clip_logits(batch).shape == (B, N, 20)


@pytest.mark.parametrize("name", list(HEADS))
def test_every_trainable_parameter_gets_a_gradient(name):
    head = build_head(name, num_classes=6, feature_dim=24, dropout=0.0)
    batch = make_batch(24)
    loss = F.cross_entropy(head(batch), torch.tensor([0, 3, 5]))
    loss.backward()
    params = dict(head.named_parameters())
    assert params
    for pname, param in params.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"


@pytest.mark.parametrize("name", ["linear_rgb", "linear_emg"])
def test_linear_head_is_the_mean_of_per_clip_linear_predictions(name):
    head = small(name)
    batch = make_batch(12)
    x = batch[head.modality]
    by_hand = x @ head.branch.fc.weight.T + head.branch.fc.bias
    torch.testing.assert_close(head.clip_logits(batch), by_hand)
    torch.testing.assert_close(head(batch), by_hand.mean(dim=1))


@pytest.mark.parametrize("name", NON_LSTM)
def test_permuting_clips_permutes_clip_logits(name):
    head = small(name)
    batch = make_batch(12)
    perm = torch.tensor([3, 0, 4, 1, 2])
    permuted = {k: v[:, perm] for k, v in batch.items()}
    with torch.no_grad():
        torch.testing.assert_close(head.clip_logits(permuted), head.clip_logits(batch)[:, perm])
        torch.testing.assert_close(head(permuted), head(batch))


@pytest.mark.parametrize("name", ["lstm_rgb", "lstm_emg"])
def test_lstm_head_reads_clips_in_order(name):
    head = small(name, hidden_size=16)
    batch = make_batch(12)
    modality = head.modality
    with torch.no_grad():
        clips = head.clip_logits(batch)
        torch.testing.assert_close(head(batch), clips.mean(dim=1))
        changed = {modality: batch[modality].clone()}
        changed[modality][:, -1] += 3.0
        after = head.clip_logits(changed)
        torch.testing.assert_close(after[:, :-1], clips[:, :-1])  # step t sees clips 1..t only
        assert not torch.allclose(after[:, -1], clips[:, -1])
        reversed_clips = {modality: batch[modality].flip(1)}
        assert not torch.allclose(head(reversed_clips), head(batch), atol=1e-5)  # order matters


def test_raw_emg_lstm_classifies_each_clip_on_its_own():
    head = small("lstm_emg_raw", hidden_size=8)
    batch = make_batch(12)
    with torch.no_grad():
        clips = head.clip_logits(batch)
        changed = {"emg_raw": batch["emg_raw"].clone()}
        changed["emg_raw"][:, 2] = torch.rand(B, T_RAW, 16, generator=torch.Generator().manual_seed(5))
        after = head.clip_logits(changed)
    others = [0, 1, 3, 4]
    torch.testing.assert_close(after[:, others], clips[:, others])
    assert not torch.allclose(after[:, 2], clips[:, 2])
    torch.testing.assert_close(head(batch), clips.mean(dim=1))


def test_late_fusion_is_the_mean_of_the_two_branches():
    head = small("late_fusion")
    batch = make_batch(12)
    branches = head.branch_logits(batch)
    torch.testing.assert_close(head(batch), (branches["rgb"] + branches["emg"]) / 2)
    torch.testing.assert_close(head(batch), head.clip_logits(batch).mean(dim=1))
    # The branches are the single-modality linear heads.
    for modality in ("rgb", "emg"):
        single = small(f"linear_{modality}")
        single.branch.load_state_dict(head.branches[modality].state_dict())
        torch.testing.assert_close(single(batch), branches[modality])


def test_probability_fusion_mixes_probabilities():
    head = small("late_fusion_par_const", p=0.3, fuse="probs")
    batch = make_batch(12)
    branches = head.branch_logits(batch)
    mixture = 0.3 * branches["rgb"].softmax(-1) + 0.7 * branches["emg"].softmax(-1)
    torch.testing.assert_close(head(batch).softmax(-1), mixture)
    torch.testing.assert_close(head(batch).exp(), mixture)


def test_par_constant_p_is_fixed():
    head = small("late_fusion_par_const", p=0.3)
    assert isinstance(head.p, float) and head.p == pytest.approx(0.3)
    assert "mix.p_const" not in dict(head.named_parameters())
    assert not head.mix.p_const.requires_grad
    batch = make_batch(12)
    branches = head.branch_logits(batch)
    torch.testing.assert_close(head(batch), 0.3 * branches["rgb"] + 0.7 * branches["emg"])
    F.cross_entropy(head(batch), torch.tensor([0, 1, 2])).backward()
    assert head.mix.p_const.grad is None
    assert head.p == pytest.approx(0.3)


@pytest.mark.parametrize("fuse", ["logits", "probs"])
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_par_learnable_p_stays_in_unit_interval(fuse, direction):
    head = small("late_fusion_par_learnable", p=0.5, fuse=fuse)
    assert isinstance(head.p, float) and head.p == pytest.approx(0.5)
    for modality, bias in (("rgb", 10.0), ("emg", -10.0)):  # class 0 favoured by RGB, disfavoured by sEMG
        head.branches[modality].fc.bias.data.fill_(0.0)
        head.branches[modality].fc.bias.data[0] = bias
        head.branches[modality].requires_grad_(False)
    optimiser = torch.optim.SGD([head.mix.theta], lr=50.0, momentum=0.9)
    batch = make_batch(12)
    for _ in range(200):
        optimiser.zero_grad()
        (-direction * head(batch)[:, 0].sum()).backward()  # pushes p up (towards RGB) or down (towards sEMG)
        optimiser.step()
        assert 0.0 <= head.p <= 1.0
        assert torch.isfinite(head(batch)).all()
    assert head.p > 0.99 if direction > 0 else head.p < 0.01


def small_attention_head(**kwargs) -> LateFusionHead:
    torch.manual_seed(0)
    return build_head("self_attention_lf", feature_dim=8, num_classes=3, attention_dim=8, dropout=0.0, **kwargs)


def test_masked_attention_gives_a_clip_nothing_from_itself():
    head = small_attention_head()
    for attention in head.attention.values():
        attention.query.weight.data.copy_(torch.eye(8))
        attention.key.weight.data.copy_(torch.eye(8))
    batch = make_batch(8, seed=1)
    for modality in ("rgb", "emg"):
        batch[modality][:, 2] = 10.0  # clip 2 has a huge norm: q_2 . k_2 would top its row without the mask
    matrices = head.attention_matrices(batch)
    raw = (batch["rgb"] @ batch["rgb"].transpose(1, 2))[:, 2]
    assert (raw.argmax(dim=-1) == 2).all()  # the construction does make clip 2 score itself highest
    _, weights = head.forward_with_attention(batch)
    for modality, S in matrices.items():
        assert S.shape == (B, N, N)
        assert (torch.diagonal(S, dim1=1, dim2=2) == 0).all()
        torch.testing.assert_close(S.sum(dim=-1), torch.ones(B, N))
        assert (weights[modality] >= 0).all()
        torch.testing.assert_close(weights[modality].sum(dim=-1), torch.ones(B))
        torch.testing.assert_close(weights[modality], S.mean(dim=1))


def test_attention_prediction_is_the_weighted_sum_of_clip_predictions():
    head = small_attention_head()
    batch = make_batch(8, seed=2)
    logits, weights = head.forward_with_attention(batch)
    clips = head.branch_clip_logits(batch)
    expected = {m: (weights[m].unsqueeze(-1) * clips[m]).sum(dim=1) for m in ("rgb", "emg")}
    torch.testing.assert_close(logits, (expected["rgb"] + expected["emg"]) / 2)
    assert not torch.allclose(weights["rgb"], torch.full((B, N), 1 / N))  # the weighting does something
    head(batch)
    assert set(head.last_attention) == {"rgb", "emg"}
    for modality in ("rgb", "emg"):
        assert head.last_attention[modality].shape == (B, N)
        assert not head.last_attention[modality].requires_grad
        torch.testing.assert_close(head.last_attention[modality], weights[modality].detach())


def test_zero_temperature_gives_uniform_weights():
    batch = make_batch(8, seed=3)
    _, weights = small_attention_head(alpha=0.0).forward_with_attention(batch)
    for w in weights.values():
        torch.testing.assert_close(w, torch.full((B, N), 1 / N))
    _, sharp = small_attention_head(alpha=1.0).forward_with_attention(batch)
    assert not torch.allclose(sharp["rgb"], torch.full((B, N), 1 / N))


@pytest.mark.parametrize("cross_modal", [True, False])
def test_cross_modal_keys_come_from_the_other_modality(cross_modal):
    head = small_attention_head(cross_modal=cross_modal)
    batch = make_batch(8, seed=4)
    _, before = head.forward_with_attention(batch)
    changed = dict(batch, emg=torch.randn(B, N, 8, generator=torch.Generator().manual_seed(9)))
    _, after = head.forward_with_attention(changed)
    assert torch.allclose(after["rgb"], before["rgb"]) != cross_modal


def test_attention_head_with_lstm_branches_weights_step_predictions():
    torch.manual_seed(0)
    head = build_head("self_attention_lf_lstm", feature_dim=8, num_classes=3, hidden_size=6, dropout=0.0)
    batch = make_batch(8, seed=5)
    logits, weights = head.forward_with_attention(batch)
    clips = head.branch_clip_logits(batch)
    expected = sum((weights[m].unsqueeze(-1) * clips[m]).sum(dim=1) for m in ("rgb", "emg")) / 2
    torch.testing.assert_close(logits, expected)


def test_mid_fusion_depends_on_both_modalities():
    head = small("mid_fusion", fusion_dims=(16, 8))
    batch = make_batch(12)
    assert head.fused_features(batch).shape == (B, N, 8)
    base = head(batch)
    for modality in ("rgb", "emg"):
        changed = dict(batch, **{modality: batch[modality] + 1.0})
        assert not torch.allclose(head(changed), base)


def test_errors_are_config_errors():
    with pytest.raises(ConfigError, match="known heads: linear_rgb"):
        build_head("transformer")
    with pytest.raises(ConfigError, match="no option hidden"):
        build_head("linear_rgb", hidden=3)
    with pytest.raises(ConfigError, match="fixes modality"):
        build_head("linear_rgb", modality="emg")
    with pytest.raises(ConfigError, match="fixes learnable_p"):
        build_head("late_fusion_par_const", learnable_p=True)
    with pytest.raises(ConfigError, match="p must be"):
        build_head("late_fusion_par_const", p=1.5)
    with pytest.raises(ConfigError, match="strictly inside"):
        build_head("late_fusion_par_learnable", p=1.0)
    with pytest.raises(ConfigError, match="fuse must be"):
        build_head("late_fusion", fuse="votes")
    with pytest.raises(ConfigError, match="alpha"):
        build_head("self_attention_lf", alpha=-1.0)
    with pytest.raises(ConfigError, match="LSTM branches only"):
        build_head("late_fusion", hidden_size=64)
    with pytest.raises(ConfigError, match="num_classes"):
        build_head("mid_fusion", num_classes=0)
    head = small("late_fusion")
    batch = make_batch(12)
    with pytest.raises(ConfigError, match=r"needs batch\['emg'\]"):
        head({"rgb": batch["rgb"]})
    with pytest.raises(ConfigError, match="last size of 12"):
        head(dict(batch, emg=batch["emg"][..., :6]))
    with pytest.raises(ConfigError, match="same"):
        head(dict(batch, emg=batch["emg"][:, :4]))
    with pytest.raises(ConfigError, match="at least 2 clips"):
        small("self_attention_lf")(make_batch(12, n=1))


def test_head_config_rebuilds_the_head():
    head = build_head("self_attention_lf", num_classes=7, feature_dim=16, alpha=2.0, cross_modal=True)
    again = build_head(**head.head_config)
    assert type(again) is type(head) and again.cross_modal and again.attention["rgb"].alpha == 2.0
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in head.state_dict().items()}
    raw = build_head("lstm_emg_raw", num_classes=5, channels=16)
    assert build_head(**raw.head_config).channels == 16


def toy_problem(n_samples: int = 80, classes: int = 4, dim: int = 16) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Separable clips: each class has a prototype per modality; clips are the prototype plus noise."""
    g = torch.Generator().manual_seed(42)
    labels = torch.arange(n_samples) % classes
    batch = {}
    for modality in ("rgb", "emg"):
        prototypes = torch.randn(classes, dim, generator=g)
        batch[modality] = prototypes[labels].unsqueeze(1) + 0.5 * torch.randn(n_samples, N, dim, generator=g)
    return batch, labels


@pytest.mark.parametrize("name", ["late_fusion", "self_attention_lf"])
def test_learns_a_separable_toy_problem(name):
    batch, labels = toy_problem()
    torch.manual_seed(0)
    head = build_head(name, num_classes=4, feature_dim=16, dropout=0.1)
    optimiser = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-7)
    with torch.no_grad():
        start = (head.eval()(batch).argmax(-1) == labels).float().mean()
    head.train()
    for _ in range(300):
        optimiser.zero_grad()
        F.cross_entropy(head(batch), labels).backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = (head.eval()(batch).argmax(-1) == labels).float().mean()
    assert start < 0.6 and accuracy >= 0.95


def test_rms_mav_baseline_features_are_per_clip():
    """The baseline sees only each clip's own RMS and MAV: a change in clip 2 changes clip 2's logits only."""
    head = build_head("rms_mav_emg", num_classes=4, channels=16).eval()
    batch = {"emg_raw": torch.randn(2, 5, 160, 16)}
    changed = {"emg_raw": batch["emg_raw"].clone()}
    changed["emg_raw"][:, 2] *= 3.0
    with torch.no_grad():
        before, after = head.clip_logits(batch), head.clip_logits(changed)
    unchanged = [0, 1, 3, 4]
    assert torch.allclose(before[:, unchanged], after[:, unchanged])
    assert not torch.allclose(before[:, 2], after[:, 2])
