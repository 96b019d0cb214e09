"""MyoSource without an armband: constructed notifications through the drivers' code path to a real LSL inlet.

The bleak and pyomyo libraries are replaced by small fakes that behave like their published APIs (connect,
write the command characteristic, subscribe, deliver notifications, drop the link), so the reconnect loop
and the byte sequence sent to the armband are tested too.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import types
from itertools import islice

import numpy as np
import pytest
from lsl_helpers import inlet_for, pull_at_least

from myosight.capture import myo_protocol as mp
from myosight.capture.myo import MyoSource, _PairCollector, bled112_address, reconnect_delays
from myosight.errors import ConfigError


def notification(n: int) -> bytes:
    return np.array([n % 128] * 8 + [-(n % 128)] * 8, dtype=np.int8).tobytes()


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="'middle'"):
        MyoSource({"middle": None})
    with pytest.raises(ConfigError, match="backend 'serial'"):
        MyoSource({"left": None}, backend="serial")
    with pytest.raises(ConfigError, match="mode 'rectified'"):
        MyoSource({"left": None}, emg_mode="rectified")
    with pytest.raises(ConfigError, match="both armbands' addresses"):
        MyoSource({"left": None, "right": "AA:BB:CC:DD:EE:FF"}, backend="pyomyo")
    with pytest.raises(ConfigError, match="Myo right address 'nope'"):
        MyoSource({"right": "nope"}, backend="pyomyo")


def test_missing_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bleak", None)  # makes `import bleak` fail as if not installed
    with pytest.raises(ConfigError, match=r"bleak.*pip install -e '\.\[myo\]' in the myosight checkout"):
        MyoSource({"left": None}).run(threading.Event())


def test_helpers() -> None:
    assert list(islice(reconnect_delays(0.5, 3.0), 5)) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert bled112_address("01:23:45:67:89:AB", "left") == [0xAB, 0x89, 0x67, 0x45, 0x23, 0x01]
    delivered: list[bytes] = []
    collector = _PairCollector(delivered.append)
    collector.on_emg((1, 2, 3, 4, 5, 6, 7, -128), 0)
    assert delivered == []
    collector.on_emg((0,) * 8, 0)
    assert delivered == [bytes([1, 2, 3, 4, 5, 6, 7, 0x80]) + bytes(8)]


def test_notifications_reach_an_inlet() -> None:
    source = MyoSource({"left": None, "right": None})
    source.open()
    try:
        inlets = {arm: inlet_for(source.outlet(arm)) for arm in ("left", "right")}
        assert inlets["left"].info().name() == "myosight-emg-left"
        assert inlets["right"].info().source_id() == "myosight-myo-emg-right"
        for k, index in enumerate([0, 1, 2, 3, 0, 2]):  # index 1 skipped before the last one
            callback = functools.partial(source._bleak_notification, "left", index)  # as bleak holds it
            callback(object(), bytearray(notification(k)))
            source.handle_notification("right", index, notification(100 + k), arrival_s=50.0 + 0.01 * k)
        source.handle_notification("right", 3, bytes(10), arrival_s=51.0)  # malformed: counted, not raised
        left, left_t = pull_at_least(inlets["left"], 12)
        right, right_t = pull_at_least(inlets["right"], 12)
    finally:
        source.close()
    assert left.shape == (12, 8) and left.dtype == np.float32
    assert left[::2, 0].tolist() == [0, 1, 2, 3, 4, 5] and left[1::2, 0].tolist() == [0, -1, -2, -3, -4, -5]
    assert np.all(np.diff(left_t) > 0)
    expected = np.repeat(50.0 + 0.01 * np.arange(6), 2) - np.tile([1 / 200, 0.0], 6)
    np.testing.assert_allclose(right_t, expected, atol=1e-9)
    assert right[0, 0] == 100
    assert source.stats()["left"] == {"packets": 6, "samples": 12, "lost": 1, "connections": 0, "malformed": 0}
    assert source.stats()["right"]["malformed"] == 1


class FakeBleak:
    """Enough of bleak's API for MyoSource: a scanner, and clients that stream `notifications` then drop."""

    def __init__(self, sessions_with_data: int, notifications: int) -> None:
        self.sessions_with_data = sessions_with_data
        self.notifications = notifications
        self.clients: list[FakeBleak.Client] = []
        self.idle_subscribed = threading.Event()  # a client without data has subscribed: the driver waits
        self.module = types.ModuleType("bleak")
        self.module.BleakScanner = self.Scanner
        self.module.BleakClient = self._make_client

    class Scanner:
        @staticmethod
        async def find_device_by_address(address: str, timeout: float) -> object:
            return types.SimpleNamespace(address=address, name="Myo")

        @staticmethod
        async def discover(timeout: float, service_uuids: list[str]) -> list[object]:
            assert service_uuids == [mp.CONTROL_SERVICE_UUID]
            return [types.SimpleNamespace(address="C0:FF:EE:00:00:01", name="Myo")]

    def _make_client(self, device: object, disconnected_callback: object) -> FakeBleak.Client:
        client = self.Client(self, device, disconnected_callback, with_data=len(self.clients) < self.sessions_with_data)
        self.clients.append(client)
        return client

    class Client:
        def __init__(self, owner: FakeBleak, device: object, disconnected_callback: object, with_data: bool) -> None:
            self.owner, self.device, self.with_data = owner, device, with_data
            self.on_disconnect = disconnected_callback
            self.is_connected = False
            self.writes: list[tuple[str, bytes]] = []
            self.subscribed: dict[str, object] = {}

        async def connect(self) -> None:
            self.is_connected = True

        async def write_gatt_char(self, uuid: str, data: bytes, response: bool = False) -> None:
            self.writes.append((uuid, bytes(data)))

        async def start_notify(self, uuid: str, callback: object) -> None:
            self.subscribed[uuid] = callback
            if len(self.subscribed) == 4 and self.with_data:
                asyncio.get_running_loop().create_task(self._stream())
            elif len(self.subscribed) == 4:
                self.owner.idle_subscribed.set()

        async def _stream(self) -> None:
            for n in range(self.owner.notifications):
                uuid = mp.EMG_DATA_UUIDS[n % 4]
                self.subscribed[uuid](object(), bytearray(notification(n)))
                await asyncio.sleep(0)
            self.is_connected = False
            self.on_disconnect(self)

        async def disconnect(self) -> None:
            self.is_connected = False


def test_bleak_driver_streams_and_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeBleak(sessions_with_data=2, notifications=8)
    monkeypatch.setitem(sys.modules, "bleak", fake.module)
    source = MyoSource({"left": None}, reconnect_initial_s=0.01, stall_timeout_s=60)
    source.open()
    inlet = inlet_for(source.outlet("left"))
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            source.run(stop)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        samples, stamps = pull_at_least(inlet, 32, timeout=20)
        assert fake.idle_subscribed.wait(timeout=20)
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive() and not errors
    assert len(samples) == 32 and np.all(np.diff(stamps) > 0)
    assert samples[:16:2, 0].tolist() == list(range(8))
    assert len(fake.clients) >= 3  # two sessions that dropped, the third connected when stopped
    first = fake.clients[0]
    assert first.device.address == "C0:FF:EE:00:00:01"
    assert first.writes[:2] == [(mp.COMMAND_UUID, b"\x09\x01\x01"), (mp.COMMAND_UUID, b"\x01\x03\x03\x00\x00")]
    assert set(first.subscribed) == set(mp.EMG_DATA_UUIDS)
    assert fake.clients[1].device.address == "C0:FF:EE:00:00:01"  # the scanned armband is kept on reconnect
    last = fake.clients[-1]
    assert last.writes[-2:] == [(mp.COMMAND_UUID, b"\x01\x03\x00\x00\x00"), (mp.COMMAND_UUID, b"\x09\x01\x00")]
    assert not last.is_connected
    assert source.outlet("left") is None  # outlets closed by run()
    assert source.stats()["left"]["connections"] == len(fake.clients)
    assert source.stats()["left"]["lost"] == 0


def test_pyomyo_driver_rebuilds_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeMyo] = []
    stop = threading.Event()
    pulled = threading.Event()  # the test has read the samples: the fake may end the session

    class FakeMyo:
        def __init__(self, tty: str | None = None, mode: object = None) -> None:
            self.tty, self.mode, self.handlers, self.addr, self.sent = tty, mode, [], None, 0
            made.append(self)

        def add_emg_handler(self, handler: object) -> None:
            self.handlers.append(handler)

        def connect(self, addr: list[int] | None = None) -> None:
            self.addr = addr

        def run(self) -> None:
            if self.sent == 5:
                pulled.wait(timeout=20)
                stop.set()
                return
            values = np.frombuffer(notification(self.sent), dtype=np.int8)
            for handler in self.handlers:
                handler(tuple(values[:8].tolist()), 0)
                handler(tuple(values[8:].tolist()), 0)
            self.sent += 1

        def sleep_mode(self, mode: int) -> None:
            self.slept = mode

        def disconnect(self) -> None:
            self.disconnected = True

    fake = types.ModuleType("pyomyo")
    fake.Myo = FakeMyo
    fake.emg_mode = types.SimpleNamespace(RAW="RAW", FILTERED="FILTERED")
    monkeypatch.setitem(sys.modules, "pyomyo", fake)
    source = MyoSource({"right": "01:23:45:67:89:AB"}, backend="pyomyo", emg_mode="filtered",
                       ports={"right": "/dev/ttyACM1"})
    source.open()
    inlet = inlet_for(source.outlet("right"))
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    thread.start()
    try:
        samples, _ = pull_at_least(inlet, 10)
    finally:
        pulled.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert len(made) == 1 and made[0].tty == "/dev/ttyACM1" and made[0].mode == "FILTERED"
    assert made[0].addr == [0xAB, 0x89, 0x67, 0x45, 0x23, 0x01]
    assert made[0].slept == mp.SLEEP_NORMAL and made[0].disconnected
    assert samples[:, 0].tolist() == [0, 0, 1, -1, 2, -2, 3, -3, 4, -4]
