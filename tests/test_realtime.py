"""The live path on loopback: replay over LSL, the worker, ZeroMQ results, and stream faults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pylsl
import pytest
from lsl_helpers import unique_source, wait_for
from replay_helpers import run_replay_through_worker

from myosight.capture.streams import emg_stream_info, open_outlet
from myosight.data.actionsense import ARMS, ActionSenseSession
from myosight.errors import StreamError
from myosight.models.bundle import load_bundle
from myosight.models.clips import clip_segments
from myosight.models.emg_pipeline import clip_spectrograms
from myosight.realtime.live import EmgLiveBuffer, LivePredictor
from myosight.realtime.messages import JSONL_KEYS, HealthMessage, PredictionMessage, ResultPublisher
from myosight.realtime.worker import Worker, WorkerConfig
from myosight.training.emg_spectrograms import session_tracks


def test_streaming_features_equal_offline(synthetic_emg_model: dict) -> None:
    """The live buffer fed in random chunks gives the offline pass's clip spectrograms, also while its rings
    wrap around (it keeps only the last 8 s, and each window is read just behind the newest sample)."""
    bundle = load_bundle(synthetic_emg_model["bundle"])
    session_path = synthetic_emg_model["sessions"][1].hdf5_path
    with ActionSenseSession(session_path) as session:
        offline = session_tracks(session, bundle.emg_config, bundle.normalisation)
        streams = {arm: session.emg(arm) for arm in ARMS}
    live = EmgLiveBuffer(bundle, keep_s=8.0)
    rng = np.random.default_rng(0)
    position = dict.fromkeys(ARMS, 0)
    now = min(s.time_s[0] for s in streams.values())
    next_start = np.ceil(max(s.time_s[0] for s in streams.values())) + 1
    compared = 0
    while any(position[arm] < len(streams[arm]) for arm in ARMS):
        now += rng.uniform(0.005, 1.0)  # both arms arrive up to `now`, in chunks of 1 to ~160 samples
        for arm, series in streams.items():
            stop = int(np.searchsorted(series.time_s, now, side="right"))
            live.push(arm, series.time_s[position[arm]:stop], series.data[position[arm]:stop])
            position[arm] = stop
        covered = min(live.covered_until(arm) or -np.inf for arm in ARMS)
        while next_start + bundle.geometry.sample_seconds < covered - 0.5:
            segments = clip_segments(next_start, bundle.geometry)
            offline_spec, offline_cover = clip_spectrograms(offline.ordered(), segments, bundle.emg_config)
            live_clips = [live.clip_spectrogram(segment) for segment in segments]
            assert np.abs(np.stack([spec for spec, _ in live_clips]) - offline_spec).max() < 1e-5
            np.testing.assert_array_equal(np.stack([cover for _, cover in live_clips]), offline_cover)
            compared += 1
            next_start += 1.7
    assert compared > 50
    assert all(live.rings[arm].count > live.rings[arm].capacity for arm in ARMS)  # the rings did wrap


def test_replay_end_to_end_matches_offline(synthetic_emg_model: dict) -> None:
    session = synthetic_emg_model["sessions"][1].hdf5_path
    bundle = load_bundle(synthetic_emg_model["bundle"])
    replay, worker, predictions, messages, _ = run_replay_through_worker(
        session, synthetic_emg_model["bundle"], speed=6.0)
    assert replay.stats.passes == 1
    first = worker._first_data_time()
    last = min(worker.emg.covered_until(arm) for arm in ARMS)
    expected_windows = np.floor(last) - np.ceil(first + bundle.geometry.sample_seconds) + 1  # one per second
    assert worker.windows_predicted + worker.windows_skipped >= expected_windows - 1
    assert predictions[-1].window_end >= replay._t0 + replay.duration_s - 2.0  # up to the end of the session
    assert len(messages) >= 0.9 * worker.windows_predicted
    # every live prediction equals the offline prediction of the same window
    offline_buffer = EmgLiveBuffer(bundle, keep_s=10_000)
    with ActionSenseSession(session) as recorded:
        for arm in ARMS:
            series = recorded.emg(arm)
            offline_buffer.push(arm, series.time_s, series.data)
        actions = recorded.activities()
    offline = LivePredictor(bundle, offline_buffer)
    live_to_recorded = replay.first_s - replay._t0  # the replay shifted recorded time onto the LSL clock
    differences = np.array([np.abs(p.probs - offline.predict(p.window_end + live_to_recorded).probs).max()
                            for p in predictions])
    print("max prob difference live vs offline: median", np.median(differences), "max", differences.max())
    assert np.mean(differences < 1e-4) > 0.97
    # accuracy against the replayed labels, as the offline evaluation of the bundle on this session
    def truth(t: float) -> str | None:
        return next((a.label for a in actions if a.start_s <= t < a.stop_s), None)

    labelled = [(p, truth(p.window_end + live_to_recorded - 2.5)) for p in predictions]
    live_acc = np.mean([bundle.classes[p.label_index] == label for p, label in labelled if label])
    typed = [PredictionMessage.from_message(m) for m in messages]  # every message the worker sent is valid
    marker_acc = np.mean([m.label == m.true_label for m in typed if m.true_label])
    assert live_acc > 0.5 and abs(marker_acc - live_acc) < 0.1
    message = typed[-1]
    assert message.probs.shape == (len(bundle.classes),)
    assert message.spectrogram.shape == (16, 10, 17)
    assert message.mode == "emg" and message.latency_ms >= 0
    assert message.attention is None and message.kinetics is None  # a linear sEMG head, no camera: none sent


def test_real_one_arm_session_with_gaps(real_dir: Path, synthetic_emg_model: dict) -> None:
    """Real Myo EMG (left arm only, ~160 Hz, gaps between actions) runs through the worker of a two-arm model when
    the user allows the missing arm: it is reported missing, its channels zero."""
    _replay, worker, predictions, _, received = run_replay_through_worker(
        real_dir / "S06_1_myo.hdf5", synthetic_emg_model["bundle"], speed=25.0, max_seconds=150,
        resolve_timeout_s=1.0, allow_missing_arm=True)
    health = worker.health()
    assert worker.missing_arms == ["right"]
    assert health.streams["emg-right"].missing is True and health.streams["emg-right"].samples is None
    assert 150 < health.streams["emg-left"].rate_hz < 170
    assert health.streams["emg-left"].gaps >= 1
    assert len(predictions) > 10
    # the worker's health messages (not the test's empty ping) decode, with the missing arm in them
    reports = [HealthMessage.from_message(m) for m in received if m.kind == "health" and m.fields]
    assert reports and all(r.streams["emg-right"].missing for r in reports)


def test_emg_gap_is_reported_and_recovered(synthetic_emg_model: dict) -> None:
    """The EMG stream stops (3 s of missing data), comes back, and the worker goes on predicting."""
    source = unique_source()
    outlets = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    worker = Worker(load_bundle(synthetic_emg_model["bundle"]),
                    WorkerConfig(source=source, emg_only=True, lost_after_s=0.3), publisher)
    rng = np.random.default_rng(0)
    t = pylsl.local_clock() - 20.0

    def send(seconds: float) -> None:
        nonlocal t
        n = int(seconds * 160)
        stamps = t + np.arange(n) / 160
        for outlet in outlets.values():
            outlet.push_chunk(rng.normal(0, 20, (n, 8)).astype(np.float32), stamps.tolist())
        t = stamps[-1] + 1 / 160

    try:
        send(8.0)
        assert wait_for(lambda: bool(worker.step()) or worker.windows_predicted > 0, 10)
        assert wait_for(lambda: (worker.step(), worker.emg_inlets["left"].health.lost)[1], 5)  # no data: lost
        t += 3.0  # three seconds with no samples
        send(8.0)
        before = worker.windows_predicted
        assert wait_for(lambda: (worker.step(), worker.windows_predicted > before)[1], 10)
        health = worker.health()
        left = health.streams["emg-left"]
        assert left.gaps == 1 and left.lost_events >= 1 and left.recovered_events >= 1
        assert not left.lost
        assert health.latency_p50_ms is not None and health.realtime_factor is not None
    finally:
        worker.close()
        publisher.close()


def test_wrong_channel_count_is_refused(synthetic_emg_model: dict) -> None:
    source = unique_source()
    info = pylsl.StreamInfo("myosight-emg-left", "EMG", 7, 200, pylsl.cf_float32, f"myosight-{source}-emg-left")
    outlet = pylsl.StreamOutlet(info)
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    try:
        with pytest.raises(StreamError, match="has 7 channels, expected 8"):
            Worker(load_bundle(synthetic_emg_model["bundle"]), WorkerConfig(source=source, emg_only=True,
                                                                           resolve_timeout_s=2.0), publisher)
    finally:
        publisher.close()
        del outlet


def test_run_command_replays_headless_and_logs(synthetic_emg_model: dict, tmp_path: Path) -> None:
    """`myosight run` starts source and worker processes, logs predictions, and ends with the replay."""
    import json
    import subprocess
    import sys

    session = synthetic_emg_model["sessions"][0].hdf5_path
    log = tmp_path / "predictions.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "myosight", "run", "--model", str(synthetic_emg_model["bundle"]), "--source", "replay",
         str(session), "--speed", "10", "--emg-only", "--headless", "--jsonl", str(log), "--address",
         "tcp://127.0.0.1:5591"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) > 50
    assert all(list(record) == list(JSONL_KEYS) for record in records)  # docs/messages.md, JSONL
    assert "running accuracy" in result.stdout


def test_run_command_reports_a_failed_source(synthetic_emg_model: dict, tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "broken.hdf5"
    bad.write_text("not a session")
    result = subprocess.run(
        [sys.executable, "-m", "myosight", "run", "--model", str(synthetic_emg_model["bundle"]), "--source", "replay",
         str(bad), "--emg-only", "--headless", "--address", "tcp://127.0.0.1:5592"],
        capture_output=True, text=True, timeout=120,
    )
    # refused before any process starts (a source that fails once running exits 3: test_careless_processes)
    assert result.returncode == 1
    assert "broken.hdf5" in result.stderr and "Traceback" not in result.stderr


def test_video_loss_switches_to_emg_only(tmp_path: Path) -> None:
    """The camera stops: the worker goes on with sEMG alone and says so; fusion resumes when frames return."""
    import torch

    from myosight.capture.streams import video_stream_info
    from myosight.models.bundle import save_bundle
    from myosight.models.clips import ClipGeometry
    from myosight.models.emg_cnn import EmgSpectrogramCNN
    from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
    from myosight.models.heads import build_head
    from myosight.models.i3d_weights import weights_path

    if not weights_path().is_file():
        pytest.skip("I3D weights not cached (run `myosight weights fetch`)")
    torch.manual_seed(0)
    classes = ["Slice bread", "Peel a potato", "Clean a pan with a towel"]
    head = build_head("late_fusion", num_classes=3)
    bundle_path = save_bundle(
        tmp_path / "fusion.safetensors", head_name="late_fusion", head=head,
        head_kwargs={k: v for k, v in head.head_config.items() if k != "name"}, classes=classes,
        geometry=ClipGeometry(crop_size=112, short_side=128), emg_config=EmgPipelineConfig(),
        normalisation=EmgNormalisation.full_scale(), emg_cnn=EmgSpectrogramCNN(num_classes=3),
        emg_cnn_kwargs={"num_classes": 3},
    )
    source = unique_source()
    emg_outlets = {arm: open_outlet(emg_stream_info(arm, source)) for arm in ARMS}
    video_outlet = open_outlet(video_stream_info(112, 25, source))
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    worker = Worker(load_bundle(bundle_path), WorkerConfig(source=source, lost_after_s=0.5), publisher)
    rng = np.random.default_rng(1)
    clock = {"t": pylsl.local_clock() - 30.0}

    def send(seconds: float, video: bool) -> None:
        t = clock["t"]
        n = int(seconds * 160)
        stamps = t + np.arange(n) / 160
        for outlet in emg_outlets.values():
            outlet.push_chunk(rng.normal(0, 20, (n, 8)).astype(np.float32), stamps.tolist())
        if video:
            for k in range(int(seconds * 25)):
                frame = rng.integers(0, 255, 112 * 112 * 3, dtype=np.uint8).view(np.int8)
                video_outlet.push_sample(frame, t + k / 25)
        clock["t"] = stamps[-1] + 1 / 160

    try:
        send(7.0, video=True)
        assert wait_for(lambda: any(p.mode == "fusion" for p in worker.step()), 30)
        send(4.0, video=False)  # the camera died
        assert wait_for(lambda: (worker.step(), worker.video_inlet.health.lost)[1], 10)
        send(2.0, video=False)
        modes = []
        assert wait_for(lambda: (modes.extend(p.mode for p in worker.step()), "emg" in modes)[1], 10)
        health = worker.health()
        assert health.video_lost is True and health.mode == "emg"
        assert "video" in health.streams and health.streams["video"].gaps is None
    finally:
        worker.close()
        publisher.close()
