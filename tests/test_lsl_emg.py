"""Using another program's LSL EMG stream: finding it, refusing the wrong shape, relaying it on loopback."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pylsl
import pytest
from lsl_helpers import inlet_for, pull_at_least

from myosight.capture.lsl_emg import EmgRelay, emg_predicate, find_emg_stream
from myosight.errors import StreamError


def other_program_outlet(channels: int = 8, name: str | None = None,
                         fmt: int = pylsl.cf_int16) -> tuple[pylsl.StreamOutlet, str]:
    """An EMG stream as another program would publish it (its own name, format and source id)."""
    name = name or f"OtherMyo-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "EMG", channels, 200.0, fmt, f"other-{name}")
    return pylsl.StreamOutlet(info), name


def test_find_by_name_and_source_id() -> None:
    outlet, name = other_program_outlet()
    info = find_emg_stream(name=name, timeout=5.0)
    assert info.name() == name and info.channel_count() == 8
    assert find_emg_stream(source_id=f"other-{name}", type=None, timeout=5.0).name() == name
    del outlet


def test_wrong_channel_count_is_refused() -> None:
    outlet, name = other_program_outlet(channels=4)
    with pytest.raises(StreamError, match=rf"'{name}'.* has 4 channels, expected 8"):
        find_emg_stream(name=name, timeout=5.0)
    del outlet


def test_string_stream_is_refused() -> None:
    outlet, name = other_program_outlet(fmt=pylsl.cf_string)
    with pytest.raises(StreamError, match=rf"'{name}'.* carries strings"):
        find_emg_stream(name=name, timeout=5.0)
    del outlet


def test_missing_stream_names_the_query() -> None:
    name = f"absent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(StreamError, match=rf"no LSL stream matching \[name='{name}' and type='EMG'"):
        find_emg_stream(name=name, timeout=0.3)


def test_predicate_quoting_and_relay_exclusion() -> None:
    assert emg_predicate("it's", None, None) == "name=\"it's\" and not(starts-with(source_id,'myosight-lsl-'))"
    with pytest.raises(StreamError, match="both quote"):
        emg_predicate("a'b\"c")


def test_relay_republishes_with_conventions_and_time_stamps() -> None:
    outlet, name = other_program_outlet()
    info = find_emg_stream(name=name, timeout=5.0)
    relay = EmgRelay(info, "right", source=f"lsltest{uuid.uuid4().hex[:8]}")
    relay.open()
    assert relay.outlet is not None
    out_info = relay.outlet.get_info()
    assert out_info.name() == "myosight-emg-right" and out_info.channel_format() == pylsl.cf_float32
    assert out_info.nominal_srate() == 200.0
    inlet = inlet_for(relay.outlet)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        sent = np.arange(40 * 8, dtype=np.int16).reshape(40, 8) - 160
        stamps = 1000.0 + np.arange(40) / 200.0
        outlet.push_chunk(sent, stamps.tolist())
        received, received_t = pull_at_least(inlet, 40)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    np.testing.assert_array_equal(received, sent.astype(np.float32))
    # Same host: LSL's clock offset is (close to) zero, so the stamps come through unchanged.
    np.testing.assert_allclose(received_t, stamps, atol=5e-3)
    assert np.all(np.diff(received_t) > 0)
    assert relay.stats.samples == 40
    del outlet
