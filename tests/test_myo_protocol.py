"""The Myo protocol layer on constructed packets: command bytes, EMG decoding, stamping, loss counting."""

from __future__ import annotations

import numpy as np
import pytest

from myosight.capture import myo_protocol as mp
from myosight.capture.myo_protocol import EmgPacketAssembler, decode_emg_notification
from myosight.errors import StreamError

PERIOD = 1 / 200


def packet(first: list[int], second: list[int]) -> bytes:
    return np.array(first + second, dtype=np.int8).tobytes()


def counting_packet(n: int) -> bytes:
    """A notification whose 16 values identify it: n*2 and n*2+1 in every channel (kept in int8 range)."""
    return packet([(2 * n) % 100] * 8, [(2 * n + 1) % 100] * 8)


def test_uuids_follow_the_published_base() -> None:
    assert mp.COMMAND_UUID == "d5060401-a904-deb9-4748-2c7f4a124842"
    assert mp.CONTROL_SERVICE_UUID == "d5060001-a904-deb9-4748-2c7f4a124842"
    assert mp.EMG_DATA_SERVICE_UUID == "d5060005-a904-deb9-4748-2c7f4a124842"
    expected = tuple(f"d506{n}05-a904-deb9-4748-2c7f4a124842" for n in ("01", "02", "03", "04"))
    uuids = mp.EMG_DATA_UUIDS
    assert uuids == expected


def test_command_bytes() -> None:
    assert mp.set_mode_command(mp.EMG_MODE_RAW, mp.IMU_MODE_NONE, mp.CLASSIFIER_DISABLED) == b"\x01\x03\x03\x00\x00"
    assert mp.set_mode_command(mp.EMG_MODE_FILTERED, mp.IMU_MODE_SEND_DATA, mp.CLASSIFIER_ENABLED) == \
        b"\x01\x03\x02\x01\x01"
    assert mp.set_mode_command(mp.EMG_MODE_NONE) == b"\x01\x03\x00\x00\x00"
    assert mp.never_sleep_command() == b"\x09\x01\x01"
    assert mp.sleep_mode_command(mp.SLEEP_NORMAL) == b"\x09\x01\x00"
    with pytest.raises(ValueError, match="emg_mode"):
        mp.set_mode_command(0x01)  # the undocumented 50 Hz mode is refused
    with pytest.raises(ValueError, match="sleep_mode"):
        mp.sleep_mode_command(2)


def test_decode_signed_bytes() -> None:
    raw = bytes([0x80, 0x7F, 0xFF, 0x00, 0x01, 0xFE, 0x81, 0x7E]) + bytes(range(8))
    samples = decode_emg_notification(raw)
    assert samples.dtype == np.int8 and samples.shape == (2, 8)
    assert samples[0].tolist() == [-128, 127, -1, 0, 1, -2, -127, 126]
    assert samples[1].tolist() == list(range(8))


@pytest.mark.parametrize("length", [0, 8, 15, 17, 20])
def test_decode_wrong_length(length: int) -> None:
    with pytest.raises(StreamError, match=rf"expected 16 bytes .* got {length}"):
        decode_emg_notification(bytes(length))


def test_assembler_wrong_length_names_arm_and_characteristic() -> None:
    assembler = EmgPacketAssembler("right")
    with pytest.raises(StreamError, match="Myo right EMG characteristic 2: expected 16 bytes"):
        assembler.feed(2, bytes(12), 1.0)
    assert assembler.stats.packets == 0


def test_pair_spreading_and_values() -> None:
    assembler = EmgPacketAssembler("left")
    stamps, samples = assembler.feed(0, packet([-128] * 8, [127] * 8), 10.0)
    assert stamps.tolist() == pytest.approx([10.0 - PERIOD, 10.0], abs=1e-12)
    assert samples.dtype == np.float32
    assert samples[0].tolist() == [-128.0] * 8 and samples[1].tolist() == [127.0] * 8
    stamps, _ = assembler.feed(1, counting_packet(1), 10.0 + 2 * PERIOD)
    assert stamps.tolist() == pytest.approx([10.0 + PERIOD, 10.0 + 2 * PERIOD], abs=1e-12)


def test_stamps_stay_monotonic_under_bursts() -> None:
    """Notifications arriving together (one Bluetooth connection event) or with a clock step back."""
    assembler = EmgPacketAssembler("left")
    arrivals = [1.0, 1.0001, 1.0002, 1.0002, 0.999, 1.05, 1.06]
    stamps = np.concatenate([assembler.feed(i % 4, counting_packet(i), t)[0] for i, t in enumerate(arrivals)])
    assert np.all(np.diff(stamps) > 0)
    # A pair is never stamped after its arrival unless that arrival was at or before the previous stamp.
    assert stamps[1] == 1.0 and stamps[3] == 1.0001 and stamps[5] == 1.0002
    # After a normal gap the earlier sample is back at arrival - 1/200 s.
    assert stamps[-2] == pytest.approx(1.06 - PERIOD)


@pytest.mark.parametrize("dropped", [[], [3], [5, 6], [2, 9], [1, 2, 3]])
def test_lost_notifications_are_counted(dropped: list[int]) -> None:
    assembler = EmgPacketAssembler("left")
    sequence = [n for n in range(12) if n not in dropped]
    for k, n in enumerate(sequence):
        assembler.feed(n % 4, counting_packet(n), 1.0 + k * 2 * PERIOD)
    assert assembler.stats.lost == len(dropped)
    assert assembler.stats.packets == len(sequence)
    assert assembler.stats.samples == 2 * len(sequence)


def test_restart_forgets_order_but_keeps_counts() -> None:
    assembler = EmgPacketAssembler("left")
    assembler.feed(0, counting_packet(0), 1.0)
    assembler.feed(1, counting_packet(1), 1.01)
    assembler.restart()  # a reconnect: the next characteristic can be any
    stamps, _ = assembler.feed(3, counting_packet(2), 0.5)  # and a stamp earlier than before stays monotonic
    assert assembler.stats.lost == 0 and assembler.stats.packets == 3
    assert stamps[0] > 1.01


def test_unchecked_index_and_bad_index() -> None:
    assembler = EmgPacketAssembler("left")
    for n in (0, 5, 1):
        assembler.feed(None, counting_packet(n), 1.0 + n)
    assert assembler.stats.lost == 0
    with pytest.raises(ValueError, match=r"0\.\.3"):
        assembler.feed(4, counting_packet(0), 9.0)


def test_vibrate_and_firmware_follow_the_vendors_protocol() -> None:
    """Vibrate is command 0x03 with one byte, the vibration (1 short, 2 medium, 3 long); the firmware version is
    four little-endian uint16: major, minor, patch, hardware revision."""
    assert mp.vibrate_command("short") == b"\x03\x01\x01" and mp.vibrate_command("long") == b"\x03\x01\x03"
    with pytest.raises(ValueError, match="vibration"):
        mp.vibrate_command("buzz")
    assert mp.decode_firmware_version(bytes([1, 0, 5, 0, 0xB2, 0x07, 2, 0])) == "1.5.1970 (hardware revision 2)"
    with pytest.raises(ValueError, match="8 bytes"):
        mp.decode_firmware_version(b"\x01\x00")
