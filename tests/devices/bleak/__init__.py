"""A simulated Myo armband behind bleak's API, for tests that run `myosight myo` (and every command that opens
armbands) exactly as a user types them.

Put the folder that holds this package first on a child's PYTHONPATH: `import bleak` in myosight then finds this
module instead of the real library, and everything above the BLE API (the driver, the byte parsing, the LSL
outlets, the commands) is the code a user runs. The armbands are described by the environment variable
MYOSIGHT_SIMULATED_ARMBANDS, a JSON list of objects:

- "address", "name", "rssi" (dBm), "battery" (percent): what a scan sees and reads;
- "npz" and "keys": real recordings to play, in order and then again (int8 arrays of 8 channels, as the
  MyoArmbandDataset's), at the armband's 200 Hz;
- "log": a file where every command written to the armband is appended (one JSON line: address, bytes in hex),
  so that a test can check what the driver sent (the mode, the vibration).

What is simulated, from the armband's published BLE protocol: it advertises its control service; one central at a
time may connect; the command characteristic takes set-mode, sleep-mode and vibrate commands; EMG flows only once
a raw or filtered EMG mode is set and all four EMG characteristics are subscribed, two samples per 16-byte
notification, the four characteristics in turn; battery level and firmware version can be read.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "0.0-simulated"

_BASE = "d506{:04x}-a904-deb9-4748-2c7f4a124842"
CONTROL_SERVICE = _BASE.format(0x0001)
FIRMWARE = _BASE.format(0x0201)
COMMAND = _BASE.format(0x0401)
EMG_CHARACTERISTICS = tuple(_BASE.format(short) for short in (0x0105, 0x0205, 0x0305, 0x0405))
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
RATE_HZ = 200.0
SAMPLES_PER_NOTIFICATION = 2


class BleakError(Exception):
    """bleak's error type (bleak.exc.BleakError)."""


class exc:  # noqa: N801 (bleak.exc is a module)
    BleakError = BleakError


@dataclass
class BLEDevice:
    address: str
    name: str | None
    details: Any = None


@dataclass
class AdvertisementData:
    local_name: str | None
    rssi: int
    service_uuids: list[str]


def _armbands() -> dict[str, dict]:
    described = json.loads(os.environ.get("MYOSIGHT_SIMULATED_ARMBANDS", "[]"))
    return {armband["address"].upper(): armband for armband in described}


_connected: set[str] = set()  # one central at a time per armband (this process)


class BleakScanner:
    @staticmethod
    async def discover(timeout: float = 5.0, service_uuids: list[str] | None = None, return_adv: bool = False,
                       **_: Any) -> Any:
        await asyncio.sleep(min(timeout, 0.2))
        found = {}
        for address, armband in _armbands().items():
            if service_uuids and CONTROL_SERVICE not in [uuid.lower() for uuid in service_uuids]:
                continue
            device = BLEDevice(address, armband.get("name", "Myo"))
            found[address] = (device, AdvertisementData(device.name, int(armband.get("rssi", -60)), [CONTROL_SERVICE]))
        return found if return_adv else [device for device, _ in found.values()]

    @staticmethod
    async def find_device_by_address(address: str, timeout: float = 10.0, **_: Any) -> BLEDevice | None:
        armband = _armbands().get(address.upper())
        if armband is None:
            await asyncio.sleep(min(timeout, 0.5))
            return None
        return BLEDevice(address.upper(), armband.get("name", "Myo"))


class BleakClient:
    def __init__(self, address_or_device: BLEDevice | str, disconnected_callback: Any = None, **_: Any) -> None:
        address = address_or_device.address if isinstance(address_or_device, BLEDevice) else address_or_device
        self.address = address.upper()
        self._armband = _armbands().get(self.address)
        self._on_disconnect = disconnected_callback
        self._connected = False
        self._emg_mode = 0
        self._subscribed: dict[str, Any] = {}
        self._stream: asyncio.Task | None = None

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, **_: Any) -> bool:
        if self._armband is None:
            raise BleakError(f"Device with address {self.address} was not found")
        if self.address in _connected:
            raise BleakError(f"{self.address}: already connected to another central")
        _connected.add(self.address)
        self._connected = True
        return True

    async def disconnect(self) -> bool:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        if self._connected:
            _connected.discard(self.address)
            self._connected = False
        return True

    def _require_connection(self) -> None:
        if not self._connected:
            raise BleakError("Not connected")

    async def write_gatt_char(self, char: str, data: bytes | bytearray, response: bool = False) -> None:
        self._require_connection()
        data = bytes(data)
        if char.lower() != COMMAND:
            raise BleakError(f"characteristic {char} is not writable")
        log = self._armband.get("log")
        if log:
            with Path(log).open("a", encoding="utf-8") as out:
                out.write(json.dumps({"address": self.address, "command": data.hex(), "time": time.time()}) + "\n")
        if len(data) < 2 or len(data) != 2 + data[1]:
            raise BleakError(f"malformed command {data.hex()}")
        if data[0] == 0x01:  # set mode: EMG, IMU, classifier
            self._emg_mode = data[2]
            self._maybe_stream()

    async def read_gatt_char(self, char: str, **_: Any) -> bytearray:
        self._require_connection()
        if char.lower() == BATTERY_LEVEL:
            return bytearray([int(self._armband.get("battery", 87))])
        if char.lower() == FIRMWARE:
            return bytearray(np.array([1, 5, 1970, 2], "<u2").tobytes())
        raise BleakError(f"characteristic {char} is not readable")

    async def start_notify(self, char: str, callback: Any, **_: Any) -> None:
        self._require_connection()
        if char.lower() not in EMG_CHARACTERISTICS:
            raise BleakError(f"characteristic {char} does not notify")
        self._subscribed[char.lower()] = callback
        self._maybe_stream()

    async def stop_notify(self, char: str) -> None:
        self._subscribed.pop(char.lower(), None)

    def _maybe_stream(self) -> None:
        if self._stream is None and self._emg_mode in (0x02, 0x03) and len(self._subscribed) == 4:
            self._stream = asyncio.get_running_loop().create_task(self._play())
        elif self._stream is not None and self._emg_mode not in (0x02, 0x03):
            self._stream.cancel()
            self._stream = None

    def _recording(self) -> np.ndarray:
        with np.load(self._armband["npz"], allow_pickle=False) as data:
            parts = [np.asarray(data[key], np.int8).reshape(-1, 8) for key in self._armband["keys"]]
        samples = np.concatenate(parts)
        return samples[: len(samples) // SAMPLES_PER_NOTIFICATION * SAMPLES_PER_NOTIFICATION]

    async def _play(self) -> None:
        """Notifications at the armband's pace: 100 a second, two samples each, the four characteristics in turn."""
        samples = self._recording()
        payloads = samples.reshape(-1, 16)
        period = SAMPLES_PER_NOTIFICATION / RATE_HZ
        start = time.monotonic()
        sent = 0
        while self._connected:
            due = int((time.monotonic() - start) / period) + 1
            while sent < due:
                index = sent % len(payloads)
                callback = self._subscribed.get(EMG_CHARACTERISTICS[sent % 4])
                if callback is not None:
                    callback(self, bytearray(payloads[index].tobytes()))
                sent += 1
            await asyncio.sleep(0.01)
