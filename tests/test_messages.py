"""The ZeroMQ result protocol: round trips over real sockets, and hostile input."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from myosight.realtime.messages import MessageError, ResultPublisher, ResultSubscriber, decode, encode


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
        (lambda f: [f[0], f[1].replace(b'"v": 1', b'"v": 2'), *f[2:]], "unknown protocol version 2"),
        (lambda f: [b"prediction", *f[1:]], "does not match topic"),
        (lambda f: [*f[:2], f[2][:-1]], "bytes for shape"),
        (lambda f: f[:2], "declares 1 arrays but 0"),
        (lambda f: [f[0], f[1].replace(b'"float64"', b'"object"'), *f[2:]], "dtype in"),
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
