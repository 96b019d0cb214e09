"""The ZeroMQ result protocol: round trips over real sockets, hostile input, and the typed messages' strict
decoders (every way a field can be wrong is refused with an error that names the field)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from myosight.realtime.headless import HeadlessViewer
from myosight.realtime.messages import (
    JSONL_KEYS,
    PROTOCOL_VERSION,
    HealthMessage,
    KineticsTop,
    Message,
    MessageError,
    PredictionMessage,
    ResultPublisher,
    ResultSubscriber,
    StreamStatus,
    decode,
    decode_result,
    encode,
)


def test_round_trip_frames() -> None:
    probs = np.array([0.1, 0.7, 0.2], np.float32)
    spectrogram = np.arange(16 * 10 * 17, dtype=np.float32).reshape(16, 10, 17)
    message = decode(encode("prediction", 7, {"label": "Slice bread", "latency_ms": 3.5},
                            {"probs": probs, "spectrogram": spectrogram}))
    assert message.kind == "prediction" and message.seq == 7
    assert message.fields == {"label": "Slice bread", "latency_ms": 3.5}
    np.testing.assert_array_equal(message.arrays["probs"], probs)
    np.testing.assert_array_equal(message.arrays["spectrogram"], spectrogram)


def _frames() -> list[bytes]:
    return encode("health", 1, {"ok": True}, {"rates": np.ones(3)})


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f[:1], "at least 2 frames"),
        (lambda f: [f[0], b"\xff\xfe", *f[2:]], "not UTF-8 JSON"),
        (lambda f: [f[0], b"[1, 2]", *f[2:]], "JSON object"),
        (lambda f: [f[0], f[1].replace(b'"v": 4', b'"v": 3'), *f[2:]], "unknown protocol version 3"),
        (lambda f: [b"prediction", *f[1:]], "does not match topic"),
        (lambda f: [*f[:2], f[2][:-1]], "bytes for shape"),
        (lambda f: f[:2], "declares 1 arrays but 0"),
        (lambda f: [f[0], f[1].replace(b'"float64"', b'"object"'), *f[2:]], "dtype in"),
        (lambda f: [f[0], re.sub(rb'"time": [0-9.e+]+', b'"time": 1' + b"0" * 400, f[1]), *f[2:]], "finite number"),
    ],
)
def test_malformed_messages_are_rejected(mutate, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode(mutate(_frames()))


def test_no_pickle_dtype_can_be_sent() -> None:
    with pytest.raises(MessageError, match="not allowed"):
        encode("prediction", 1, arrays={"bad": np.array([object()], dtype=object)})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_random_bytes_never_crash_the_decoder(frames: list[bytes]) -> None:
    with contextlib.suppress(MessageError):
        decode(frames)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none(),
                                                      st.lists(st.integers(), max_size=3)), max_size=6))
def test_random_headers_never_crash_the_decoder(header: dict) -> None:
    with contextlib.suppress(MessageError):
        decode([b"prediction", json.dumps(header).encode(), b"\x00" * 8])


#: A peer that subscribes to a megabyte topic, in its own process (libzmq's own socket keeps the topic in a
#: trie one level per byte, which overflows that peer's stack when it closes).
HUGE_SUBSCRIBER = """
import sys, time, zmq
socket = zmq.Context.instance().socket(zmq.SUB)
socket.connect(sys.argv[1])
socket.setsockopt(zmq.SUBSCRIBE, b"p" * (1 << 20))
print("subscribed", flush=True)
time.sleep(600)
"""


def test_subscriptions_a_peer_sends_cannot_grow_the_publisher() -> None:
    """Peers on the result port that subscribe to a megabyte topic are disconnected, and thousands of distinct
    topics are ignored (a plain publisher would keep them all); a viewer beside them gets every message."""
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    viewer = ResultSubscriber(publisher.address, kinds=("prediction",))
    huge = subprocess.Popen([sys.executable, "-c", HUGE_SUBSCRIBER, publisher.address], stdout=subprocess.PIPE,
                            text=True)
    many = zmq.Context.instance().socket(zmq.SUB)
    many.setsockopt(zmq.LINGER, 0)
    many.connect(publisher.address)
    for index in range(5000):
        many.setsockopt(zmq.SUBSCRIBE, f"topic{index}".encode())
    try:
        assert huge.stdout.readline().strip() == "subscribed"
        got = None
        for attempt in range(400):  # the viewer joins slowly: repeat until it receives
            publisher.send("prediction", {"attempt": attempt})
            publisher.send("health", {"attempt": attempt})
            got = viewer.receive(timeout_ms=20) or got
            if got is not None and publisher.ignored_subscriptions >= 500:
                break
        assert got is not None and got.kind == "prediction"
        assert publisher.ignored_subscriptions >= 500  # read and dropped (what the queue holds beyond is dropped
        assert not many.poll(200)  # by ZeroMQ); no topic of theirs matched anything sent
        assert huge.poll() is None  # the megabyte subscription never got past the size limit
    finally:
        huge.kill()
        huge.wait()
        many.close(linger=0)
        viewer.close()
        publisher.close()


def test_publisher_binds_loopback_and_flood_of_garbage_does_not_stop_receiver() -> None:
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    assert publisher.address.startswith("tcp://127.0.0.1:")
    subscriber = ResultSubscriber(publisher.address)
    rogue = zmq.Context.instance().socket(zmq.PUB)  # a second sender on the same subscriber
    port = rogue.bind_to_random_port("tcp://127.0.0.1")
    subscriber.socket.connect(f"tcp://127.0.0.1:{port}")
    try:
        received = None
        for attempt in range(400):  # slow joiners: repeat until both connections deliver
            rogue.send_multipart([b"prediction", b"{garbage"])
            rogue.send_multipart([b"x"])
            publisher.send("prediction", {"attempt": attempt}, {"probs": np.ones(2, np.float32)})
            message = subscriber.receive(timeout_ms=20)
            while message is not None:
                received = message if message.kind == "prediction" else received
                message = subscriber.receive(timeout_ms=0)
            if received is not None and subscriber.rejected > 0:
                break
        assert received is not None and received.arrays["probs"].tolist() == [1.0, 1.0]
        assert subscriber.rejected > 0 and subscriber.last_error
        for _ in range(500):
            rogue.send_multipart([b"prediction", b"\x00\x01"])
        publisher.send("prediction", {"final": True})
        final = None
        for _ in range(200):
            final = subscriber.receive(timeout_ms=50)
            if final is not None and final.fields.get("final"):
                break
        assert final is not None and final.fields["final"] is True
    finally:
        rogue.close(linger=0)
        subscriber.close()
        publisher.close()


# -- the typed messages ----------------------------------------------------------------------------------------
CLASSES = ["Slice bread", "Peel a potato", "Clean a pan with a towel"]


def prediction(**changes) -> PredictionMessage:
    """A fusion prediction of a self-attention head, with every optional part."""
    values = dict(
        label="Peel a potato", label_index=1, classes=list(CLASSES), probs=np.array([0.2, 0.7, 0.1], np.float32),
        window_end=105.0, clip_starts=[100.0, 101.0, 102.0, 103.0, 104.0], mode="fusion", latency_ms=12.5,
        compute_ms=10.0, rgb_reused=1, windows_skipped=3, arms=["left", "right"], emg_coverage=[1.0, 0.5],
        true_label="Slice bread",
        attention={"rgb": np.array([0.1, 0.15, 0.2, 0.25, 0.3], np.float32),
                   "emg": np.array([0.3, 0.25, 0.2, 0.15, 0.1], np.float32)},
        kinetics=KineticsTop(np.array([3, 1, 399], np.int32), np.array([0.7, 0.2, 0.1], np.float32)),
        spectrogram=np.arange(16 * 10 * 17, dtype=np.float32).reshape(16, 10, 17) / 1000,
    )
    return PredictionMessage(**(values | changes))


def bare_prediction() -> PredictionMessage:
    """An sEMG-only prediction of a head without clip attention: no optional part at all."""
    return prediction(mode="emg", true_label=None, attention=None, kinetics=None, spectrogram=None)


def emg_stream(**changes) -> StreamStatus:
    values = dict(lost=False, samples=1600, rate_hz=160.2, clock_offset_ms=0.125, lost_events=1, recovered_events=1,
                  gaps=2, stuck_channels=[3], nonfinite=0, backwards_dropped=4)
    return StreamStatus(**(values | changes))


def health(**changes) -> HealthMessage:
    values = dict(
        streams={"emg-left": emg_stream(), "emg-right": StreamStatus(lost=True, missing=True),
                 "video": StreamStatus(lost=False, samples=250, rate_hz=25.0, clock_offset_ms=-0.5, lost_events=0,
                                       recovered_events=0)},
        mode="fusion", video_lost=False, windows_predicted=10, windows_skipped=2, rgb_features=12, emg_features=14,
        latency_p50_ms=40.0, latency_p95_ms=95.5, realtime_factor=0.3,
    )
    return HealthMessage(**(values | changes))


def envelope(message: PredictionMessage | HealthMessage) -> Message:
    return decode(message.encode(5, timestamp=1234.5))


@pytest.mark.parametrize("make", [prediction, bare_prediction, health,
                                  lambda: health(streams={}, latency_p50_ms=None, latency_p95_ms=None,
                                                 realtime_factor=None)])
def test_typed_round_trip(make) -> None:
    message = make()
    received = decode_result(decode(message.encode(7, timestamp=1234.5)))
    assert type(received) is type(message) and received == message
    assert (received.seq, received.time) == (7, 1234.5)


def test_inequality_is_seen_in_arrays_and_nested_parts() -> None:
    assert prediction() != prediction(probs=np.array([0.2, 0.6, 0.2], np.float32))
    assert prediction() != prediction(kinetics=KineticsTop(np.array([3, 1, 2], np.int32),
                                                           np.array([0.7, 0.2, 0.1], np.float32)))
    assert health() != health(streams={"emg-left": emg_stream(gaps=3)})
    assert prediction() != health()


def test_absent_parts_are_left_out_of_the_wire_not_faked() -> None:
    message = envelope(bare_prediction())
    assert "true_label" not in message.fields
    assert set(message.arrays) == {"probs"}
    decoded = decode_result(message)
    assert decoded.attention is None and decoded.kinetics is None and decoded.spectrogram is None
    assert decoded.true_label is None
    assert prediction(attention={}).attention is None  # no weights is no attention
    fields = envelope(health(latency_p50_ms=None)).fields
    assert "latency_p50_ms" not in fields and fields["streams"]["emg-right"] == {"lost": True, "missing": True}
    assert set(fields["streams"]["video"]) == {"lost", "samples", "rate_hz", "clock_offset_ms", "lost_events",
                                               "recovered_events"}


def test_the_envelope_carries_the_protocol_version() -> None:
    header = json.loads(prediction().encode(1)[1])
    assert header["v"] == PROTOCOL_VERSION == 4 and header["kind"] == "prediction"


def _drop(name: str):
    return lambda fields, arrays: fields.pop(name)


def _set(name: str, value: object):
    return lambda fields, arrays: fields.__setitem__(name, value)


def _array(name: str, value: np.ndarray | None):
    return lambda fields, arrays: arrays.pop(name) if value is None else arrays.__setitem__(name, value)


REQUIRED_PREDICTION_FIELDS = ("label", "label_index", "classes", "window_end", "clip_starts", "mode", "latency_ms",
                              "compute_ms", "rgb_reused", "windows_skipped", "arms", "emg_coverage")
BAD_PREDICTIONS = [
    *[(_drop(name), f"'{name}': missing") for name in REQUIRED_PREDICTION_FIELDS],
    (_array("probs", None), "'probs': missing"),
    # wrong types
    (_set("label", 3), "'label': expected non-empty text"),
    (_set("label", ""), "'label': expected non-empty text"),
    (_set("label_index", "1"), "'label_index': expected an integer"),
    (_set("label_index", 1.0), "'label_index': expected an integer"),
    (_set("label_index", True), "'label_index': expected an integer"),
    (_set("label_index", -1), "'label_index': expected an integer >= 0"),
    (_set("classes", "Slice bread"), "'classes': expected a non-empty list"),
    (_set("classes", []), "'classes': expected a non-empty list"),
    (_set("classes", [*CLASSES[:2], 3]), r"'classes\[2\]': expected non-empty text"),
    (_set("classes", [CLASSES[0], CLASSES[1], CLASSES[1]]), "'classes': names repeat"),
    (_set("window_end", "105"), "'window_end': expected a number"),
    (_set("window_end", None), "'window_end': expected a number, got null"),
    (_set("clip_starts", 100.0), "'clip_starts': expected a non-empty list"),
    (_set("clip_starts", []), "'clip_starts': expected a non-empty list"),
    (_set("clip_starts", [100.0, "101"]), r"'clip_starts\[1\]': expected a number"),
    (_set("mode", "both"), "'mode': 'both' is not one of"),
    (_set("mode", 1), "'mode': expected non-empty text"),
    (_set("latency_ms", -1.0), "'latency_ms': -1.0 is outside"),
    (_set("compute_ms", [1.0]), "'compute_ms': expected a number"),
    (_set("rgb_reused", 0.5), "'rgb_reused': expected an integer"),
    (_set("windows_skipped", -2), "'windows_skipped': expected an integer >= 0"),
    (_set("emg_coverage", [1.0]), "'emg_coverage': 1 items, expected 2"),
    (_set("arms", ["right"]), "'emg_coverage': 2 items, expected 1"),
    (_set("arms", ["right", "left"]), "'arms': expected arms in the order left, right"),
    (_set("arms", ["right", "right"]), "'arms': names repeat"),
    (_set("arms", ["up"]), "'arms': .*'up' is not an arm"),
    (_set("arms", []), "'arms': expected a non-empty list"),
    (_set("arms", "right"), "'arms': expected a non-empty list"),
    (_set("emg_coverage", [1.0, 1.5]), r"'emg_coverage\[1\]': 1.5 is outside"),
    (_set("true_label", None), "'true_label': expected non-empty text, got null"),  # absent, never null
    (_set("true_label", 7), "'true_label': expected non-empty text"),
    # non-finite numbers
    (_set("window_end", float("nan")), "'window_end': expected a finite number"),
    (_set("latency_ms", float("inf")), "'latency_ms': expected a finite number"),
    (_set("clip_starts", [100.0, float("nan"), 102.0, 103.0, 104.0]), r"'clip_starts\[1\]': expected a finite"),
    (_set("emg_coverage", [float("nan"), 1.0]), r"'emg_coverage\[0\]': expected a finite"),
    (_set("window_end", 10**400), "'window_end': expected a finite number, got a huge integer"),
    # consistency
    (_set("label", "Make a sandwich"), "'label': 'Make a sandwich' is not one of the classes"),
    (_set("label_index", 0), "'label_index': 0 is not the index of label"),
    (_set("label_index", 3), "'label_index': 3 is not the index of label"),
    # unknown parts
    (_set("confidence", 0.7), "'confidence': unknown field"),
    (_array("logits", np.zeros(3, np.float32)), "'logits': unknown array"),
    (_array("attention_audio", np.full(5, 0.2, np.float32)), "'attention_audio': unknown array"),
    # arrays of the wrong dtype, rank or length, or with bad values
    (_array("probs", np.array([0.2, 0.7, 0.1])), "'probs': dtype float64, expected float32"),
    (_array("probs", np.full((1, 3), 0.3, np.float32)), "'probs': 2-D, expected 1-D"),
    (_array("probs", np.full(4, 0.25, np.float32)), r"'probs': 4 values, expected 3 \(one per class\)"),
    (_array("probs", np.array([0.2, np.nan, 0.1], np.float32)), "'probs': non-finite values"),
    (_array("probs", np.array([0.2, 1.7, 0.1], np.float32)), r"'probs': values outside \[0, 1\]"),
    (_array("attention_rgb", np.full(4, 0.25, np.float32)), r"'attention_rgb': 4 values, expected 5 \(one per clip"),
    (_array("attention_emg", np.full((5, 5), 0.2, np.float32)), "'attention_emg': 2-D, expected 1-D"),
    (_array("attention_rgb", np.full(5, 0.2)), "'attention_rgb': dtype float64"),
    (_array("attention_emg", np.array([0.2, 0.2, np.inf, 0.2, 0.2], np.float32)), "'attention_emg': non-finite"),
    (_array("kinetics_probs", None), "'kinetics_probs': missing"),
    (_array("kinetics_top", None), "'kinetics_top': missing"),
    (_array("kinetics_top", np.array([3, 1, 399], np.int64)), "'kinetics_top': dtype int64, expected int32"),
    (_array("kinetics_top", np.array([3, -1, 399], np.int32)), "'kinetics_top': expected at least one class index"),
    (_array("kinetics_probs", np.array([0.7, 0.3], np.float32)), "'kinetics_probs': 2 values, expected 3"),
    (_array("spectrogram", np.zeros((16, 170), np.float32)), "'spectrogram': 2-D, expected 3-D"),
    (_array("spectrogram", np.zeros((8, 10, 17), np.float32)), "'spectrogram': 8 values, expected 16"),
    (_array("spectrogram", np.full((16, 10, 17), np.nan, np.float32)), "'spectrogram': non-finite values"),
]


@pytest.mark.parametrize(("mutate", "reason"), BAD_PREDICTIONS)
def test_strict_decoder_refuses_a_bad_prediction(mutate, reason: str) -> None:
    message = envelope(prediction())
    mutate(message.fields, message.arrays)
    with pytest.raises(MessageError, match=reason):
        PredictionMessage.from_message(message)
    with pytest.raises(MessageError, match=reason):
        decode_result(message)


def _stream(name: str, mutate):
    return lambda fields, arrays: mutate(fields["streams"][name])


BAD_HEALTH = [
    *[(_drop(name), f"'{name}': missing") for name in ("streams", "mode", "video_lost", "windows_predicted",
                                                       "windows_skipped", "rgb_features", "emg_features")],
    (_set("streams", ["emg-left"]), "'streams': expected an object"),
    (_set("streams", {"emg-left": [1]}), "'streams.emg-left': expected an object"),
    (_stream("emg-left", lambda s: s.update(lost="no")), "'streams.emg-left.lost': expected true or false"),
    (_stream("emg-left", lambda s: s.pop("gaps")), "'streams.emg-left.gaps': missing"),
    (_stream("emg-left", lambda s: s.pop("samples")), "'streams.emg-left.samples': missing"),
    (_stream("emg-left", lambda s: s.update(rate_hz=float("nan"))), "'streams.emg-left.rate_hz': expected a finite"),
    (_stream("emg-left", lambda s: s.update(stuck_channels=[8])), r"'streams.emg-left.stuck_channels\[0\]'"),
    (_stream("emg-left", lambda s: s.update(colour="red")), "'streams.emg-left.colour': unknown field"),
    (_stream("video", lambda s: s.update(gaps=0)), "'streams.video.gaps': unknown field"),
    (_stream("emg-right", lambda s: s.update(samples=0)), "'streams.emg-right.samples': not sent for a missing"),
    (_stream("emg-right", lambda s: s.update(lost=False)), "'streams.emg-right.lost': a missing stream is lost"),
    (lambda fields, arrays: fields["streams"].update(audio={"lost": False}), "'streams.audio': unknown stream"),
    (_set("mode", "rgb"), "'mode': 'rgb' is not one of"),
    (_set("video_lost", 0), "'video_lost': expected true or false"),
    (_set("windows_predicted", 1.5), "'windows_predicted': expected an integer"),
    (_set("latency_p50_ms", float("nan")), "'latency_p50_ms': expected a finite number"),
    (_set("latency_p95_ms", None), "'latency_p95_ms': expected a number, got null"),
    (_set("realtime_factor", -0.1), "'realtime_factor': -0.1 is outside"),
    (_set("uptime_s", 3), "'uptime_s': unknown field"),
    (_array("rates", np.ones(3)), "'rates': unknown array"),
]


@pytest.mark.parametrize(("mutate", "reason"), BAD_HEALTH)
def test_strict_decoder_refuses_a_bad_health_report(mutate, reason: str) -> None:
    message = envelope(health())
    mutate(message.fields, message.arrays)
    with pytest.raises(MessageError, match=reason):
        decode_result(message)


def test_a_non_finite_number_passes_the_envelope_but_not_the_decoder() -> None:
    """JSON readers accept NaN; the envelope keeps it, the typed decoder refuses it by name."""
    frames = prediction().encode(3)
    header = json.loads(frames[1])
    header["fields"]["window_end"] = float("nan")
    message = decode([frames[0], json.dumps(header).encode(), *frames[2:]])
    with pytest.raises(MessageError, match="'window_end': expected a finite number"):
        decode_result(message)


def test_decoders_refuse_the_other_kind_and_unknown_kinds() -> None:
    with pytest.raises(MessageError, match="expected a prediction message"):
        PredictionMessage.from_message(envelope(health()))
    with pytest.raises(MessageError, match="unknown message kind 'spectrogram'"):
        decode_result(Message("spectrogram", 1, 0.0))


def test_a_one_arm_prediction_carries_its_arm_and_eight_channels() -> None:
    """A model of one armband: its coverage and spectrogram follow the one arm, and a two-arm array is refused."""
    one_arm = prediction(arms=["right"], emg_coverage=[0.75],
                         spectrogram=np.arange(8 * 10 * 17, dtype=np.float32).reshape(8, 10, 17) / 1000)
    decoded = decode_result(envelope(one_arm))
    assert decoded.arms == ["right"] and decoded.emg_coverage == [0.75]
    assert decoded.spectrogram is not None and decoded.spectrogram.shape == (8, 10, 17)
    with pytest.raises(MessageError, match="'spectrogram': 16 values, expected 8"):
        decode_result(envelope(prediction(arms=["right"], emg_coverage=[1.0])))


def test_jsonl_record_has_exactly_the_documented_keys(tmp_path) -> None:
    documented = ["seq", "time", "label", "label_index", "true_label", "probs", "window_end", "clip_starts", "mode",
                  "latency_ms", "compute_ms", "rgb_reused", "windows_skipped", "arms", "emg_coverage", "attention",
                  "kinetics"]
    assert list(JSONL_KEYS) == documented
    docs = (Path(__file__).resolve().parents[1] / "docs" / "messages.md").read_text()
    assert all(f"`{key}`" in docs for key in documented)
    log = tmp_path / "predictions.jsonl"
    viewer = HeadlessViewer("tcp://127.0.0.1:1", log)  # only `handle` is used: nothing needs to listen
    try:
        viewer.handle(decode_result(envelope(prediction())))
        viewer.handle(decode_result(envelope(health())))  # health is not logged
        viewer.handle(decode_result(envelope(bare_prediction())))
    finally:
        viewer.close()
    full, bare = (json.loads(line) for line in log.read_text().splitlines())
    assert list(full) == documented and list(bare) == documented
    assert full["seq"] == 5 and full["time"] == 1234.5 and full["label"] == "Peel a potato"
    assert full["probs"] == pytest.approx([0.2, 0.7, 0.1]) and full["emg_coverage"] == [1.0, 0.5]
    assert full["attention"]["rgb"] == pytest.approx([0.1, 0.15, 0.2, 0.25, 0.3])
    assert full["kinetics"]["indices"] == [3, 1, 399] and full["kinetics"]["probs"] == pytest.approx([0.7, 0.2, 0.1])
    assert bare["attention"] is None and bare["kinetics"] is None and bare["true_label"] is None
    assert viewer.scored == 1 and viewer.correct == 0 and viewer.predictions == 2


def _table_text(viewer: HeadlessViewer) -> dict[str, str]:
    """The terminal table as its rows read on screen: first cell -> second cell."""
    from rich.console import Console

    console = Console(width=160, record=True, file=io.StringIO(), color_system=None)
    console.print(viewer.render())
    rows = [line.strip("│ ").split("│") for line in console.export_text().splitlines() if line.count("│") == 3]
    return {cells[0].strip(): cells[1].strip() if len(cells) > 1 else "" for cells in rows}  # "": an empty cell


def test_the_terminal_table_shows_just_the_model_arms() -> None:
    """A model of the right armband: its coverage and its stream, no row for a left arm it does not read."""
    viewer = HeadlessViewer("tcp://127.0.0.1:1")  # only `handle` and `render` are used: nothing needs to listen
    one_arm = prediction(arms=["right"], emg_coverage=[0.75],
                         spectrogram=np.zeros((8, 10, 17), np.float32))
    video = health().streams["video"]
    try:
        viewer.handle(decode_result(envelope(one_arm)))
        sound = emg_stream(stuck_channels=[])
        viewer.handle(decode_result(envelope(health(streams={"emg-right": sound, "video": video}))))
        rows = _table_text(viewer)
        assert rows["sEMG coverage"] == "right 75 %"
        assert rows["emg-right"] == "ok, 160.2 Hz, gaps 2" and rows["video"] == "ok, 25.0 Hz"
        assert "emg-left" not in rows and not any("left" in text for text in rows.values())
        waiting = emg_stream(lost=True, samples=0, rate_hz=0.0)  # the model's arm before its first sample
        viewer.handle(decode_result(envelope(health(streams={"emg-right": waiting}))))
        assert _table_text(viewer)["emg-right"] == "waiting, 0.0 Hz, gaps 2"
        viewer.handle(decode_result(envelope(health(streams={"emg-right": StreamStatus(lost=True, missing=True)}))))
        assert _table_text(viewer)["emg-right"] == "MISSING"
        viewer.handle(decode_result(envelope(prediction())))
        assert _table_text(viewer)["sEMG coverage"] == "left 100 % · right 50 %"
    finally:
        viewer.close()


def test_the_terminal_table_says_an_armband_is_stuck_or_sent_nan() -> None:
    """A stream that delivers samples is not "ok" when channels repeat one value (a dead armband; NaN values held
    at the last finite one look so too); NaN that were held while the channels moved are counted."""
    viewer = HeadlessViewer("tcp://127.0.0.1:1")  # only `handle` and `render` are used: nothing needs to listen
    try:
        dead = emg_stream(stuck_channels=list(range(8)), nonfinite=12800)
        viewer.handle(decode_result(envelope(health(streams={"emg-left": dead}))))
        assert _table_text(viewer)["emg-left"] == \
            "STUCK: CHANNELS 1-8 (12800 NON-FINITE), 160.2 Hz, gaps 2"
        viewer.handle(decode_result(envelope(health(streams={"emg-left": emg_stream(stuck_channels=[3, 5, 6])}))))
        assert _table_text(viewer)["emg-left"] == "STUCK: CHANNELS 4, 6-7, 160.2 Hz, gaps 2"
        dropped = emg_stream(stuck_channels=[], nonfinite=7)
        viewer.handle(decode_result(envelope(health(streams={"emg-left": dropped}))))
        assert _table_text(viewer)["emg-left"] == "ok, 160.2 Hz, gaps 2, 7 non-finite held"
    finally:
        viewer.close()


def test_typed_messages_over_sockets_and_bad_ones_are_counted_not_raised() -> None:
    publisher = ResultPublisher("tcp://127.0.0.1:0")
    subscriber = ResultSubscriber(publisher.address)
    try:
        first = None
        for _ in range(200):  # slow joiner: repeat until the subscription is live
            publisher.publish(health())
            first = subscriber.receive_result(timeout_ms=20)
            if first is not None:
                break
        assert first == health()
        publisher.send("prediction", {"label": "Slice bread"})  # a valid envelope, not a valid prediction
        publisher.send("spectrogram", {})  # a kind no viewer reads
        publisher.publish(prediction())
        received = None
        for _ in range(100):
            received = subscriber.receive_result(timeout_ms=50)
            if isinstance(received, PredictionMessage):
                break
        assert received == prediction() and received.seq == publisher.seq
        assert subscriber.rejected == 2 and "unknown message kind" in subscriber.last_error
    finally:
        subscriber.close()
        publisher.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([prediction, health]), st.data())
def test_any_value_in_any_field_gives_a_decoded_message_or_a_message_error(make, data) -> None:
    """The typed decoders never fail otherwise: a viewer survives whatever a sender puts in a field."""
    message = envelope(make())
    names = [*sorted(message.fields), "streams.emg-left", "streams.video", "unknown"]
    name = data.draw(st.sampled_from(names))
    value = data.draw(json_values)
    if name.startswith("streams.") and "streams" in message.fields:
        message.fields["streams"][name.split(".", 1)[1]] = value
    else:
        message.fields[name] = value
    with contextlib.suppress(MessageError):
        decode_result(message)
