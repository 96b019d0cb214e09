"""Paper mode: the sEMG presets against an independent computation on a real session, the live worker's refusal
of an offline preset, the authors' head details, and the labelling of the optimistic best-test selection.

The reference spectrograms are computed here from the raw HDF5 samples with numpy, scipy and librosa only
(the sub-action bounds come from the dataset's uids and the labels from the session reader); no myosight
function computes a value they are compared with. Their parameters are written here as the method and
myosight's documentation state them, so a changed preset parameter fails too.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import SHARED

from myosight.cli import main
from myosight.errors import ConfigError

RATE = 160.0
MAX_GAP_S = 0.1
SESSION = "S01_1_myo.hdf5"  # real per-sample Myo timestamps, both arms, 3 actions
ARMS = ("left", "right")
PAPER = {"paper": {"order": 4, "cutoff": 1.0, "n_fft": 16}, "paper-text": {"order": 5, "cutoff": 5.0, "n_fft": 32}}


# -- the independent reference -------------------------------------------------------------------------------


def raw_arm(path: Path, arm: str) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return handle[f"myo-{arm}/emg/time_s"][:, 0].astype(np.float64), handle[f"myo-{arm}/emg/data"][()].astype(
            np.float64)


def contiguous_runs(t: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) index runs of samples with no silence longer than MAX_GAP_S inside."""
    cuts = np.flatnonzero(np.diff(t) > MAX_GAP_S) + 1
    bounds = [0, *cuts.tolist(), len(t)]
    return list(itertools.pairwise(bounds))


def on_grid(t: np.ndarray, x: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Values at times ks / RATE: linear interpolation inside a contiguous run, zero outside every run."""
    out = np.zeros((len(ks), x.shape[1]))
    times = ks / RATE
    for lo, hi in contiguous_runs(t):
        inside = (times >= t[lo]) & (times <= t[hi - 1])
        for c in range(x.shape[1]):
            out[inside, c] = np.interp(times[inside], t[lo:hi], x[lo:hi, c])
    return out


def moving_mean(values: np.ndarray, width: int) -> np.ndarray:
    """'valid' moving mean of every column, by convolution."""
    kernel = np.ones(width) / width
    return np.column_stack([np.convolve(values[:, c], kernel, mode="valid") for c in range(values.shape[1])])


def paper_reference(path: Path, action, sub_index: int, order: int, cutoff: float, n_fft: int) -> np.ndarray:
    """(5, 16, 10, 81) for one sub-action, following the method's description step by step."""
    from librosa.feature import melspectrogram
    from scipy.signal import butter, filtfilt, get_window

    ks = np.arange(math.ceil(action.start_s * RATE), math.floor(action.stop_s * RATE) + 1)
    arms = []
    for arm in ARMS:
        x = on_grid(*raw_arm(path, arm), ks)
        rms = np.sqrt(moving_mean(np.pad(x**2, ((16, 15), (0, 0)), mode="symmetric"), 32))  # centred, 32 samples
        rectified = np.abs(rms)
        scaled = (rectified - rectified.min()) / (rectified.max() - rectified.min())  # whole action, the arm's 8 ch
        b, a = butter(order, cutoff, btype="low", fs=RATE)
        arms.append(filtfilt(b, a, scaled, axis=0))
    envelope = np.hstack(arms)
    window = np.zeros((800, 16))
    part = envelope[800 * sub_index:800 * (sub_index + 1)]
    window[:len(part)] = part
    energy = np.sum(get_window("hann", n_fft) ** 2)
    clips = [melspectrogram(y=window[160 * i:160 * (i + 1)].T, sr=RATE, n_fft=n_fft, hop_length=2, center=True,
                            pad_mode="reflect", power=2.0, n_mels=10, fmin=0.0, fmax=80.0, htk=True, norm=None,
                            window="hann") / energy for i in range(5)]
    return np.stack(clips)


def live_tracks(path: Path, train_starts: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per arm, the causal envelope on the grid: trailing 32-sample RMS from a steady start, min-max from the
    training samples' RMS, clipped, causal Butterworth order 5 at 5 Hz from steady state; restarted after gaps."""
    from scipy.signal import butter, sosfilt, sosfilt_zi

    sos = butter(5, 5.0, btype="low", fs=RATE, output="sos")
    tracks = {}
    for arm in ARMS:
        t, x = raw_arm(path, arm)
        pieces = []
        for lo, hi in contiguous_runs(t):
            ks = np.arange(math.ceil(t[lo] * RATE), math.floor(t[hi - 1] * RATE) + 1)
            values = on_grid(t[lo:hi], x[lo:hi], ks)
            squared = np.vstack([np.repeat(values[:1] ** 2, 31, axis=0), values**2])
            pieces.append((ks, np.sqrt(moving_mean(squared, 32))))
        grid = np.concatenate([ks for ks, _ in pieces])
        rms = np.vstack([r for _, r in pieces])
        inside = np.zeros(len(grid), bool)
        for start in train_starts:
            inside |= (grid >= start * RATE) & (grid < (start + 5.0) * RATE)
        low, high = rms[inside].min(axis=0), rms[inside].max(axis=0)
        envelope = []
        for _, r in pieces:
            scaled = np.clip((r - low) / np.maximum(high - low, 1e-9), 0.0, 1.0)
            smoothed, _ = sosfilt(sos, scaled, axis=0, zi=sosfilt_zi(sos)[:, :, None] * scaled[0][None, None, :])
            envelope.append(smoothed)
        tracks[arm] = (grid, np.vstack(envelope))
    return tracks


def live_reference(tracks: dict, start_s: float) -> np.ndarray:
    """(5, 16, 10, 17): each 1-s clip's envelope samples (zeros where none), the log of the Mel power spectrogram
    above the live preset's floor (1e-6, models/emg_pipeline.py)."""
    from librosa.feature import melspectrogram

    clips = []
    for i in range(5):
        first = round((start_s + i) * RATE)
        window = np.zeros((160, 16))
        for a, arm in enumerate(ARMS):
            grid, values = tracks[arm]
            hit = (grid >= first) & (grid < first + 160)
            window[grid[hit] - first, 8 * a:8 * (a + 1)] = values[hit]
        mel = melspectrogram(y=window.T, sr=RATE, n_fft=32, hop_length=8, center=False, power=2.0, n_mels=10,
                             fmin=0.0, fmax=80.0, window="hann")
        clips.append(np.log(mel + 1e-6))
    return np.stack(clips)


# -- the datasets myosight builds ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(real_dir_module: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from myosight.training.dataset import build_emg_dataset
    from myosight.training.feature_store import read_split

    root = tmp_path_factory.mktemp("paper-mode")
    out = {}
    for preset in ("live", "paper", "paper-text"):
        manifest = build_emg_dataset([real_dir_module / SESSION], root / preset, preset=preset, progress=False)
        out[preset] = {"dir": root / preset, "manifest": manifest,
                       **{split: read_split(root / preset / f"{split}.h5") for split in ("train", "test")}}
    return out


@pytest.fixture(scope="module")
def real_dir_module() -> Path:
    if not (SHARED / "SPEC.md").is_file():
        pytest.skip(f"reference files not found at {SHARED} (set MYOSIGHT_SHARED_DIR to use another place)")
    return SHARED / "actionsense" / "real"


def _close(ours: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6 * float(np.abs(reference).max()))


@pytest.mark.needs_shared
@pytest.mark.parametrize("preset", ["paper", "paper-text"])
def test_offline_preset_matches_the_method_computed_independently(built: dict, real_dir_module: Path,
                                                                  preset: str) -> None:
    from myosight.data.actionsense import ActionSenseSession

    path = real_dir_module / SESSION
    with ActionSenseSession(path) as session:
        actions = {action.index: action for action in session.activities()}
    data = built[preset]
    assert data["manifest"]["emg_preset"] == preset
    assert data["manifest"]["emg_pipeline"]["preset"] == preset
    for split in ("train", "test"):
        spectrograms = data[split].arrays["spectrograms"]
        assert spectrograms.shape == (len(data[split]), 5, 16, 10, 81)
        for n, uid in enumerate(data[split].uids):
            action_index, sub_index = (int(part) for part in uid.rsplit("/", 2)[1:])
            action = actions[action_index]
            reference = paper_reference(path, action, sub_index, **PAPER[preset])
            _close(spectrograms[n], reference)


@pytest.mark.needs_shared
def test_an_action_shorter_than_a_sub_action_is_zero_padded(real_dir_module: Path) -> None:
    """A 3-s action (kept whole as one sub-action): its 480 envelope samples, then zeros up to 800."""
    from myosight.data.actionsense import Action, ActionSenseSession
    from myosight.data.subactions import cut_subactions
    from myosight.models.clips import ClipGeometry
    from myosight.models.emg_presets import preset_config
    from myosight.training.emg_spectrograms import offline_subaction_spectrograms, session_tracks

    path = real_dir_module / SESSION
    config = preset_config("paper")
    with ActionSenseSession(path) as session:
        first = session.activities()[1]
        resampled = session_tracks(session, config, None, stage="resampled")
    short = Action(first.label, first.start_s + 10.0, first.start_s + 13.0, index=first.index)
    [sub] = cut_subactions([short], "s", None)
    ours = offline_subaction_spectrograms(resampled, {short.index: short}, [sub], ClipGeometry(), config)[0]
    _close(ours, paper_reference(path, short, 0, **PAPER["paper"]))
    assert np.abs(ours[4]).max() == 0.0 and np.abs(ours[2]).max() > 0.0  # clip 5 lies wholly past the action


@pytest.mark.needs_shared
def test_live_preset_matches_the_causal_pipeline_computed_independently(built: dict, real_dir_module: Path) -> None:
    data = built["live"]
    tracks = live_tracks(real_dir_module / SESSION, data["train"].start_s)
    for split in ("train", "test"):
        spectrograms = data[split].arrays["spectrograms"]
        assert spectrograms.shape == (len(data[split]), 5, 16, 10, 17)
        for n, start_s in enumerate(data[split].start_s):
            _close(spectrograms[n], live_reference(tracks, float(start_s)))


@pytest.mark.needs_shared
def test_presets_differ_from_each_other(built: dict) -> None:
    """The two offline presets are not one computation under two names (nor is either the live one)."""
    paper, text = (built[p]["train"].arrays["spectrograms"] for p in ("paper", "paper-text"))
    assert np.abs(paper - text).max() > 0.1 * np.abs(paper).max()
    assert built["live"]["train"].uids.tolist() == built["paper"]["train"].uids.tolist()  # same samples, same split


def test_cli_preset_names_are_the_pipelines() -> None:
    from myosight.models.emg_pipeline import PRESETS
    from myosight.training.commands import PRESET_HELP

    assert tuple(PRESET_HELP) == PRESETS


# -- the paper preset end to end: the CNN, the heads, best-test, the live refusal -----------------------------


@pytest.fixture(scope="module")
def paper_run(built: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    import torch

    torch.set_num_threads(1)
    data = built["paper"]["dir"]
    assert main(["features", "emg", str(data), "--epochs", "3", "--quiet"]) == 0
    run = tmp_path_factory.mktemp("paper-run") / "run"
    return {"data": data, "run": run}


@pytest.mark.needs_shared
def test_the_cnn_adapts_to_the_paper_spectrograms_and_uses_the_final_cnns_features(paper_run: dict) -> None:
    from myosight.training.feature_store import read_split

    meta = json.loads((paper_run["data"] / "emg_cnn.json").read_text())
    assert meta["kwargs"]["frames"] == 81 and meta["kwargs"]["n_mels"] == 10
    assert meta["train_features_cross_fit"] == 1  # the paper preset's default: the final CNN's features
    train = read_split(paper_run["data"] / "train.h5", ("emg",))
    assert train.arrays["emg"].shape == (len(train), 5, 1024)


@pytest.mark.needs_shared
def test_best_test_is_labelled_optimistic_everywhere(paper_run: dict, capsys: pytest.CaptureFixture) -> None:
    from myosight.models.bundle import load_bundle

    data, run = paper_run["data"], paper_run["run"]
    assert main(["train", "--model", "linear_emg", "--data", str(data), "--out", str(run), "--heads", "paper",
                 "--select", "best-test", "--iterations", "12", "--quiet"]) == 0
    assert "OPTIMISTIC" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["optimistic"] is True and metrics["selection"] == "best-test"
    history = metrics["history"]
    assert history[-1]["iterations"] == 12
    assert metrics["top1"] == pytest.approx(max(h["test_accuracy"] for h in history))  # the kept weights are the best
    bundle = load_bundle(run / "bundle.safetensors")
    assert bundle.head_name == "linear_emg" and bundle.head.branch.norm is not None  # --heads paper: batch norm
    assert main(["evaluate", "--bundle", str(run / "bundle.safetensors"), "--data", str(data)]) == 0
    assert "OPTIMISTIC" in capsys.readouterr().out

    report = data / "report-best"
    assert main(["report", "--data", str(data), "--rows", "linear_emg", "--select", "best-test", "--iterations", "6",
                 "--out", str(report), "--quiet"]) == 0
    printed = capsys.readouterr().out
    markdown = (report / "results.md").read_text()
    for text in (printed, markdown):
        assert "top-1 (%), best test: OPTIMISTIC" in text and "the test set chose the weights" in text
        assert "sEMG preset: paper (offline" in text
    assert "best-test (optimistic)" in (report / "results.csv").read_text()

    plain = data / "report-val"
    assert main(["report", "--data", str(data), "--rows", "linear_emg", "--epochs", "2", "--out", str(plain),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert "OPTIMISTIC" not in (plain / "results.md").read_text()
    assert "early stopping on a validation split" in (plain / "results.md").read_text()


@pytest.mark.needs_shared
def test_the_live_worker_refuses_an_offline_preset(paper_run: dict) -> None:
    from myosight.models.bundle import load_bundle
    from myosight.realtime.live import EmgLiveBuffer
    from myosight.realtime.worker import Worker, WorkerConfig

    bundle_path = paper_run["run"] / "bundle.safetensors"
    if not bundle_path.is_file():
        assert main(["train", "--model", "linear_emg", "--data", str(paper_run["data"]), "--out",
                     str(paper_run["run"]), "--epochs", "2", "--quiet"]) == 0
    bundle = load_bundle(bundle_path)  # offline evaluation may load it
    assert bundle.emg_config.preset == "paper"
    with pytest.raises(ConfigError) as refused:
        Worker(bundle, WorkerConfig(source="nothing-here", resolve_timeout_s=0.1), publisher=None)
    message = str(refused.value)
    assert bundle_path.name in message and "'paper'" in message and "cannot run live" in message
    assert "--preset live" in message
    with pytest.raises(ConfigError, match="offline"):
        EmgLiveBuffer(bundle)  # any other live path fails as plainly


def test_paper_head_options() -> None:
    import torch

    from myosight.models.heads import PAPER_HEAD_OPTIONS, build_head, head_options

    attention = build_head("self_attention_lf", num_classes=4, feature_dim=8,
                           **head_options("self_attention_lf", "paper"))
    assert attention.attention["rgb"].alpha == 1.25 and attention.attention["rgb"].attention_dim == 1024
    assert all(branch.norm is not None for branch in attention.branches.values())
    mid = build_head("mid_fusion", num_classes=4, feature_dim=1024, **head_options("mid_fusion", "paper"))
    widths = [(m.in_features, m.out_features) for m in mid.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [(2048, 1024), (1024, 4)]
    assert head_options("linear_rgb", "paper", {"batch_norm": False}) == {"batch_norm": False}  # explicit wins
    assert head_options("lstm_rgb", "paper") == {} and "lstm_emg_raw" not in PAPER_HEAD_OPTIONS
    with pytest.raises(ConfigError, match="linear branches only"):
        build_head("late_fusion_lstm", batch_norm=True)
    linear = build_head("linear_rgb", num_classes=3, feature_dim=6, batch_norm=True).train()
    x = torch.randn(4, 5, 6) * 10 + 3
    normalised = linear.branch.norm(x.reshape(-1, 6))
    assert normalised.mean(0).abs().max() < 1e-5  # statistics over every clip of the batch
