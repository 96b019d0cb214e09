"""RGB live = offline: a synthetic session replayed over LSL through the worker gives, for its clips that align
with offline samples, the I3D features `myosight features rgb` computes for those samples, and the same
predictions, at the reduced 112-px input and at 224 px.

Live windows end on whole seconds of the LSL clock, and a replay shifts recorded time by whole seconds, so
the offline samples here start on whole recorded seconds: clip i of the sample starting at s is the live
clip starting at s + i.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from replay_helpers import run_replay_through_worker

from myosight.cli import main
from myosight.constants import ARMS
from myosight.data.actionsense import ActionSenseSession
from myosight.models.bundle import load_bundle, save_bundle
from myosight.models.clips import ClipGeometry, clip_segments
from myosight.models.emg_pipeline import clip_spectrograms
from myosight.models.heads import build_head
from myosight.models.i3d_weights import weights_path
from myosight.training.emg_spectrograms import session_tracks
from myosight.training.feature_store import SplitData, read_manifest, read_split, write_split

pytestmark = pytest.mark.slow

REPLAY_SECONDS = 24.0
SAMPLE_OFFSETS = (6, 11, 16)  # whole seconds after the replay's first: every live clip of 15 s has a twin


@pytest.fixture(scope="module")
def weights() -> Path:
    if not weights_path().is_file():
        pytest.skip("I3D weights not cached (run `myosight weights fetch`)")
    return weights_path()


def _parity_dataset(root: Path, data_dir: Path, session: Path, starts: np.ndarray, size: int) -> Path:
    """A dataset of the session's samples starting at `starts` (test split; one of them in train), with the
    RGB features `myosight features rgb` extracts at `size`."""
    out = root / f"parity{size}"
    out.mkdir()
    shutil.copy(data_dir / "dataset.json", out / "dataset.json")
    with ActionSenseSession(session) as handle:
        video = str(handle.video_path)
    for name, chosen in (("test", starts), ("train", starts[:1])):
        n = len(chosen)
        write_split(out / f"{name}.h5", SplitData(
            uids=np.array([f"parity-{k}" for k in range(n)]), labels=np.zeros(n, np.int64), start_s=chosen,
            sessions=np.array([str(session)] * n), videos=np.array([video] * n)))
    assert main(["features", "rgb", str(out), "--input-size", str(size), "--no-compile", "--quiet"]) == 0
    return out


def _fusion_bundle(out: Path, emg_bundle_path: Path) -> Path:
    """A late-fusion bundle on the parity dataset's geometry, with the fixture's sEMG CNN and a seeded head."""
    emg_bundle = load_bundle(emg_bundle_path)
    manifest = read_manifest(out)
    torch.manual_seed(0)
    head = build_head("late_fusion", num_classes=len(emg_bundle.classes))
    return save_bundle(
        out / "fusion.safetensors", head_name="late_fusion", head=head,
        head_kwargs={k: v for k, v in head.head_config.items() if k != "name"}, classes=emg_bundle.classes,
        geometry=ClipGeometry.from_dict(manifest["clip_geometry"]), emg_config=emg_bundle.emg_config,
        normalisation=emg_bundle.normalisation, emg_cnn=emg_bundle.emg_cnn,
        emg_cnn_kwargs=emg_bundle.metadata["emg_cnn_kwargs"], i3d_sha256=manifest["i3d_sha256"])


def _offline_probs(bundle, session: Path, start_s: float, rgb: np.ndarray) -> np.ndarray:
    """The head's probabilities for the sample at `start_s` from offline sEMG and the given RGB features."""
    with ActionSenseSession(session) as handle:
        tracks = session_tracks(handle, bundle.emg_config, bundle.normalisation)
    spectrograms, _ = clip_spectrograms(tracks.ordered(), clip_segments(start_s, bundle.geometry), bundle.emg_config)
    with torch.inference_mode():
        emg = bundle.emg_cnn.features(torch.from_numpy(spectrograms))
        logits = bundle.head({"emg": emg[None], "rgb": torch.from_numpy(rgb)[None]})
    return torch.softmax(logits, dim=-1)[0].numpy()


@pytest.mark.parametrize(("size", "hop"), [(112, 1.0), (224, 1.0), (112, 0.2)])
def test_live_rgb_clips_and_predictions_equal_offline(size: int, hop: float, synthetic_emg_model: dict,
                                                        weights: Path, tmp_path: Path) -> None:
    """At a one-clip hop and at a 0.2-s hop (five decisions a second over the same once-computed clips). The
    worker decides every window (as `run --every-window`): on a busy machine a live worker skips windows to stay
    current, and the clips of a skipped window are never computed, so there would be fewer to compare."""
    session = synthetic_emg_model["sessions"][1].hdf5_path
    with ActionSenseSession(session) as handle:
        first = min(float(handle.emg(arm).time_s[0]) for arm in ARMS)
    starts = np.ceil(first) + np.array(SAMPLE_OFFSETS, dtype=np.float64)
    out = _parity_dataset(tmp_path, synthetic_emg_model["data"], session, starts, size)
    offline_rgb = read_split(out / "test.h5", ("rgb",)).arrays["rgb"]
    geometry = ClipGeometry.from_dict(read_manifest(out)["clip_geometry"])
    assert (geometry.crop_size, geometry.input_size) == (max(224, size), size)
    bundle_path = _fusion_bundle(out, synthetic_emg_model["bundle"])

    replay, worker, predictions, _, _ = run_replay_through_worker(
        session, bundle_path, speed=1.0, emg_only=False, max_seconds=REPLAY_SECONDS, hop_s=hop, every_window=True)
    to_recorded = replay.first_s - replay._t0  # whole seconds: live and recorded clips start on the same grid
    rate = worker.bundle.emg_config.rate_hz
    offline_clips = {round((s + i) * rate): offline_rgb[j, i] for j, s in enumerate(starts) for i in range(5)}

    compared = []
    for key, feature in worker.predictor.rgb_cache.items():
        recorded = round((key / rate + to_recorded) * rate)
        if recorded in offline_clips:
            compared.append(float(np.abs(feature.numpy() - offline_clips[recorded]).max()))
    print(f"{size} px: {len(compared)} clips compared, max abs difference {max(compared, default=np.nan):.2e}")
    assert len(compared) >= 10
    assert max(compared) <= 1e-3

    bundle = load_bundle(bundle_path)
    windows = 0
    cache = worker.predictor.rgb_cache
    for p in predictions:
        if p.mode != "fusion" or p.rgb_reused:
            continue
        start = p.window_end - geometry.sample_seconds + to_recorded
        match = np.flatnonzero(np.abs(starts - start) < 1e-6)
        if len(match):  # a window of the offline dataset: its offline RGB features
            rgb = offline_rgb[match[0]]
        else:  # any other window: the live clips' features (the ones compared above equal the offline ones)
            keys = [round(t * rate) for t in p.clip_starts]
            if not all(key in cache for key in keys):
                continue
            rgb = np.stack([cache[key].numpy() for key in keys])
        expected = _offline_probs(bundle, session, float(start), rgb)
        assert np.abs(p.probs - expected).max() < 1e-3 and int(np.argmax(expected)) == p.label_index
        windows += 1
    assert windows >= 2
    grid = np.array([p.window_end for p in predictions]) / worker.hops.steps[0]
    assert np.abs(grid - np.round(grid)).max() < 1e-6  # every decision on the hop's grid (or a coarser step)
    # one new clip at most per decision: the other four come from the cache
    assert worker.predictor.rgb_features_computed <= worker.windows_predicted
    if hop < 1:  # decisions between whole seconds happened
        assert any(abs(p.window_end - round(p.window_end)) > 1e-6 for p in predictions)
