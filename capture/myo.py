"""Myo armbands as live LSL EMG sources: one `myosight-emg-<arm>` stream per arm, source "myo".

Two drivers sit behind `MyoSource`:

- "bleak": the computer's own Bluetooth LE adapter (no dongle), through the bleak library. It connects,
  writes never-sleep and set-mode to the command characteristic, subscribes to the four EMG
  characteristics and hands every notification, with its characteristic index, to
  `MyoSource.handle_notification`.
- "pyomyo": the BLED112 USB dongle, through pyomyo. pyomyo reports EMG one sample at a time (the two
  samples of a notification back to back, without saying which characteristic), so pairs are rebuilt
  and handed to the same `handle_notification`, without the lost-notification check.

Both libraries are optional (the `myo` extra) and imported only when a driver starts.
`handle_notification` is where every driver's data enters: it stamps the pair with `pylsl.local_clock()`
on arrival (see `EmgPacketAssembler` for how the pair is spread) and pushes it to the arm's outlet, so
tests drive it with constructed packets and read the result from a real inlet.

A dropped connection, a failed connection or a silent armband (no EMG for `stall_timeout_s`) is retried
with exponential back-off until the stop event is set; the outlets stay up meanwhile, so the worker's
inlets simply see a gap.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pylsl

from myosight.capture.myo_protocol import (
    BATTERY_LEVEL_UUID,
    CLASSIFIER_DISABLED,
    COMMAND_UUID,
    CONTROL_SERVICE_UUID,
    EMG_DATA_UUIDS,
    EMG_MODE_FILTERED,
    EMG_MODE_NONE,
    EMG_MODE_RAW,
    FIRMWARE_VERSION_UUID,
    IMU_MODE_NONE,
    SLEEP_NORMAL,
    AssemblerStats,
    EmgPacketAssembler,
    decode_firmware_version,
    never_sleep_command,
    set_mode_command,
    sleep_mode_command,
    vibrate_command,
)
from myosight.capture.streams import emg_stream_info, open_outlet
from myosight.constants import ARMS
from myosight.errors import ConfigError, StreamError, install_hint

log = logging.getLogger(__name__)

SOURCE = "myo"
BACKENDS = ("bleak", "pyomyo")
EMG_MODES = {"raw": EMG_MODE_RAW, "filtered": EMG_MODE_FILTERED}
INSTALL_HINT = install_hint("myo")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


def reconnect_delays(initial_s: float = 1.0, maximum_s: float = 30.0, factor: float = 2.0) -> Iterator[float]:
    """Waits between reconnection attempts: `initial_s`, doubling, capped at `maximum_s` (an armband that
    is off or out of range is retried without flooding the Bluetooth stack)."""
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * factor, maximum_s)


def import_backend(module: str) -> ModuleType:
    """Import an optional Myo library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(f"the {module!r} Myo backend needs the {module} package, which is not installed "
                          f"({error}); install it with: {INSTALL_HINT}") from error


def bled112_address(address: str, arm: str) -> list[int]:
    """'AA:BB:CC:DD:EE:FF' -> the six bytes the BLED112 dongle expects, least significant first."""
    if not _MAC.match(address):
        raise ConfigError(f"Myo {arm} address {address!r} is not a Bluetooth address like AA:BB:CC:DD:EE:FF")
    return [int(part, 16) for part in reversed(address.split(":"))]


@dataclass
class ArmStats:
    """Per-arm counts: the assembler's, plus connections made and notifications rejected as malformed."""

    assembler: AssemblerStats
    connections: int = 0
    malformed: int = 0
    last_arrival_s: float | None = None

    def as_dict(self) -> dict[str, int]:
        return {"packets": self.assembler.packets, "samples": self.assembler.samples,
                "lost": self.assembler.lost, "connections": self.connections, "malformed": self.malformed}


@dataclass
class _ArmChannel:
    arm: str
    assembler: EmgPacketAssembler
    outlet: pylsl.StreamOutlet | None
    stats: ArmStats
    lock: threading.Lock = field(default_factory=threading.Lock)


class _PairCollector:
    """Rebuilds 16-byte notifications from pyomyo's per-sample EMG callback (two calls per notification)."""

    def __init__(self, deliver: Callable[[bytes], object]) -> None:
        self._deliver = deliver
        self._first: bytes | None = None

    def reset(self) -> None:
        self._first = None

    def on_emg(self, emg: Any, _moving: Any = None) -> None:
        sample = np.asarray(emg, dtype=np.int64).clip(-128, 127).astype(np.int8).tobytes()
        if self._first is None:
            self._first = sample
            return
        payload, self._first = self._first + sample, None
        self._deliver(payload)


class MyoSource:
    """Two (or one) Myo armbands published as the project's LSL EMG streams.

    `arm_addresses` maps "left"/"right" to the armband's Bluetooth address (on macOS, bleak's device UUID),
    or to None to take the first Myo found that the other arm has not taken. `ports` names the BLED112
    serial port per arm for the pyomyo backend (default: the first dongle found).
    """

    def __init__(self, arm_addresses: Mapping[str, str | None], backend: str = "bleak", emg_mode: str = "raw", *,
                 ports: Mapping[str, str | None] | None = None, reconnect_initial_s: float = 1.0,
                 reconnect_max_s: float = 30.0, stall_timeout_s: float = 3.0, scan_timeout_s: float = 10.0,
                 source: str = SOURCE) -> None:
        self.source = source
        if not arm_addresses:
            raise ConfigError("MyoSource needs at least one arm (left and/or right)")
        for arm in arm_addresses:
            if arm not in ARMS:
                raise ConfigError(f"Myo arm {arm!r} is not one of {ARMS}")
        if backend not in BACKENDS:
            raise ConfigError(f"Myo backend {backend!r} is not one of {BACKENDS}")
        if emg_mode not in EMG_MODES:
            raise ConfigError(f"Myo EMG mode {emg_mode!r} is not one of {tuple(EMG_MODES)}")
        if backend == "pyomyo" and len(arm_addresses) > 1 and None in arm_addresses.values():
            # Each dongle connects to the first Myo it hears: two dongles could pick the same armband.
            raise ConfigError("the pyomyo backend with two arms needs both armbands' addresses "
                              "(--left ADDR --right ADDR)")
        if backend == "pyomyo":
            for arm, address in arm_addresses.items():
                if address is not None:
                    bled112_address(address, arm)
        self.arm_addresses = dict(arm_addresses)
        self.backend = backend
        self.emg_mode = emg_mode
        self.ports = dict(ports or {})
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.stall_timeout_s = stall_timeout_s
        self.scan_timeout_s = scan_timeout_s
        self._channels: dict[str, _ArmChannel] = {}
        self._picked: dict[str, str] = {}  # arm -> the address a scan found for it
        self._picked_names: dict[str, str] = {}

    # ---- outlets and the common data path ----

    def open(self) -> None:
        """Create the outlets (idempotent): the streams exist, empty, before any armband connects. Each stream's
        description names its armband where that is known (see `prepare`), so the viewer shows which is which."""
        for arm in self.arm_addresses:
            channel = self._channels.get(arm)
            if channel is None:
                assembler = EmgPacketAssembler(arm)
                channel = self._channels[arm] = _ArmChannel(arm, assembler, None, ArmStats(assembler.stats))
            if channel.outlet is None:
                channel.outlet = open_outlet(emg_stream_info(arm, self.source, device=self.armband(arm)))

    def armband(self, arm: str) -> str | None:
        """Which armband streams `arm`, in words: the address named for it, or the one a scan picked (None: not
        known before it connects, pyomyo's dongle without an address)."""
        address = self.arm_addresses.get(arm)
        if address:
            return f"Myo {address}"
        picked = self._picked.get(arm)
        if picked:
            return f"{self._picked_names.get(arm) or 'Myo'} {picked} (first found: check the arm)"
        return None

    def prepare(self, stop_event: threading.Event) -> None:
        """Decide which armband is which arm before anything streams: with bleak, arms named by no address get the
        armbands a scan finds (said in a warning: a guess is never silent), waiting until there are enough or
        `stop_event`; then the outlets open, each naming its armband."""
        if self.backend == "bleak" and any(address is None for address in self.arm_addresses.values()):
            asyncio.run(self._bleak_pick(import_backend("bleak"), stop_event))
        if not stop_event.is_set():
            self.open()

    def close(self) -> None:
        """Drop the outlets (inlets see the streams end); the counts stay readable."""
        for channel in self._channels.values():
            with channel.lock:
                channel.outlet = None

    def outlet(self, arm: str) -> pylsl.StreamOutlet | None:
        """The arm's outlet, None when closed (KeyError for an arm not configured)."""
        return self._channels[arm].outlet

    def stats(self) -> dict[str, dict[str, int]]:
        return {arm: channel.stats.as_dict() for arm, channel in self._channels.items()}

    def handle_notification(self, arm: str, index: int | None, payload: bytes | bytearray,
                            arrival_s: float | None = None) -> int:
        """One EMG notification from `arm`'s characteristic `index` -> two samples pushed; returns how many.

        Stamped with `pylsl.local_clock()` now unless `arrival_s` is given. A malformed notification is
        logged and counted, not raised: one bad packet must not end a recording.
        """
        if arrival_s is None:
            arrival_s = pylsl.local_clock()
        channel = self._channels.get(arm)
        if channel is None or channel.outlet is None:
            raise StreamError(f"Myo {arm}: no outlet open (call open() first, or the arm is not configured)")
        with channel.lock:
            try:
                stamps, samples = channel.assembler.feed(index, payload, arrival_s)
            except StreamError as error:
                channel.stats.malformed += 1
                log.warning("%s (dropped)", error)
                return 0
            channel.stats.last_arrival_s = arrival_s
            if channel.outlet is not None:  # closed meanwhile by another thread
                channel.outlet.push_chunk(samples, stamps.tolist())
        return len(samples)

    def _connected(self, arm: str) -> None:
        channel = self._channels[arm]
        with channel.lock:
            channel.assembler.restart()
            channel.stats.connections += 1
            channel.stats.last_arrival_s = pylsl.local_clock()  # the stall clock starts at the connection

    def _stalled(self, arm: str) -> bool:
        last = self._channels[arm].stats.last_arrival_s
        return last is not None and pylsl.local_clock() - last > self.stall_timeout_s

    # ---- the run loop ----

    def run(self, stop_event: threading.Event) -> None:
        """Stream until `stop_event` is set, reconnecting as needed; raises ConfigError if the backend is missing."""
        module = import_backend(self.backend)
        self.prepare(stop_event)
        try:
            if self.backend == "bleak":
                asyncio.run(self._bleak_main(module, stop_event))
            else:
                self._pyomyo_main(module, stop_event)
        finally:
            log.info("Myo streams stopped: %s", self.stats())
            self.close()

    # ---- bleak ----

    async def _bleak_main(self, bleak: ModuleType, stop_event: threading.Event) -> None:
        await asyncio.gather(*(self._bleak_arm(bleak, arm, address, stop_event)
                               for arm, address in self.arm_addresses.items()))

    async def _bleak_arm(self, bleak: ModuleType, arm: str, address: str | None, stop_event: threading.Event) -> None:
        delays = reconnect_delays(self.reconnect_initial_s, self.reconnect_max_s)
        while not stop_event.is_set():
            streamed = False
            try:
                streamed = await self._bleak_session(bleak, arm, address, stop_event)
            except _RetryError as error:
                log.warning("Myo %s: %s", arm, error)
            except Exception as error:  # Bluetooth errors of every kind (BleakError, OSError, timeouts): reconnect
                log.warning("Myo %s: %s: %s", arm, type(error).__name__, error)
            if stop_event.is_set():
                break
            if streamed:
                delays = reconnect_delays(self.reconnect_initial_s, self.reconnect_max_s)
            delay = next(delays)
            log.info("Myo %s: reconnecting in %.0f s", arm, delay)
            await _wait_for_stop(stop_event, delay)

    async def _bleak_pick(self, bleak: ModuleType, stop_event: threading.Event) -> None:
        """Give each arm without an address an armband a scan finds (left first), until every arm has one."""
        claimed = {address.upper() for address in self.arm_addresses.values() if address}
        delays = reconnect_delays(self.reconnect_initial_s, self.reconnect_max_s)
        while not stop_event.is_set():
            waiting = [arm for arm, address in self.arm_addresses.items() if not address and arm not in self._picked]
            if not waiting:
                return
            devices = await bleak.BleakScanner.discover(timeout=self.scan_timeout_s,
                                                        service_uuids=[CONTROL_SERVICE_UUID])
            free = [device for device in devices if device.address.upper() not in claimed]
            for arm, device in zip(waiting, free, strict=False):
                claimed.add(device.address.upper())
                self._picked[arm], self._picked_names[arm] = device.address, device.name or "Myo"
                # a warning, not a note: swapped arms give wrong predictions, and a guess must never be silent
                log.warning("Myo %s arm: no address was given, so armband %s (%s), the first found, is the %s arm; "
                            "check it is on the %s forearm (`myosight myo --identify %s` makes it vibrate), or name "
                            "each arm's armband by its address (`myosight myo --scan` lists them)", arm,
                            device.address, device.name, arm, arm, device.address)
            if len(free) < len(waiting):
                log.warning("Myo: looking for %d more armband(s) (is it on, charged and not connected elsewhere?)",
                            len(waiting) - len(free))
                await _wait_for_stop(stop_event, next(delays))

    async def _bleak_find(self, bleak: ModuleType, arm: str, address: str | None) -> Any:
        address = address or self._picked.get(arm)  # an armband found by scanning stays this arm's
        if address is None:
            raise _RetryError("no armband picked for this arm yet")
        device = await bleak.BleakScanner.find_device_by_address(address, timeout=self.scan_timeout_s)
        if device is None:
            raise _RetryError(f"armband {address} not found (is it charged, in range and not connected elsewhere?)")
        return device

    async def _bleak_session(self, bleak: ModuleType, arm: str, address: str | None,
                             stop_event: threading.Event) -> bool:
        """One connection: configure, subscribe, stream until disconnect, stall or stop. True if data came."""
        device = await self._bleak_find(bleak, arm, address)
        disconnected = asyncio.Event()
        client = bleak.BleakClient(device, disconnected_callback=lambda _client: disconnected.set())
        await client.connect()
        packets_before = self._channels[arm].assembler.stats.packets
        try:
            await client.write_gatt_char(COMMAND_UUID, never_sleep_command(), response=True)
            await client.write_gatt_char(COMMAND_UUID, set_mode_command(EMG_MODES[self.emg_mode], IMU_MODE_NONE,
                                                                        CLASSIFIER_DISABLED), response=True)
            self._connected(arm)
            for index, uuid in enumerate(EMG_DATA_UUIDS):
                await client.start_notify(uuid, functools.partial(self._bleak_notification, arm, index))
            log.info("Myo %s: streaming %s EMG from %s", arm, self.emg_mode, getattr(device, "address", device))
            while not stop_event.is_set() and not disconnected.is_set():
                await _wait_for_stop(stop_event, 0.25)
                if self._stalled(arm):
                    raise _RetryError(f"no EMG for {self.stall_timeout_s:.0f} s")
            if disconnected.is_set():
                log.warning("Myo %s: disconnected", arm)
        finally:
            if client.is_connected:
                await _bleak_goodbye(client)
                await client.disconnect()
        return self._channels[arm].assembler.stats.packets > packets_before

    def _bleak_notification(self, arm: str, index: int, _characteristic: Any, data: bytearray) -> None:
        self.handle_notification(arm, index, data)

    # ---- pyomyo ----

    def _pyomyo_main(self, pyomyo: ModuleType, stop_event: threading.Event) -> None:
        errors: list[BaseException] = []

        def arm_thread(arm: str) -> None:
            try:
                self._pyomyo_arm(pyomyo, arm, stop_event)
            except BaseException as error:  # surfaced in the caller's thread below
                errors.append(error)
                stop_event.set()

        threads = [threading.Thread(target=arm_thread, args=(arm,), name=f"myo-{arm}", daemon=True)
                   for arm in self.arm_addresses]
        for thread in threads:
            thread.start()
        # pyomyo's scan and connect block until an armband answers, so a stop may find a thread stuck there:
        # give the threads a moment after the stop, then leave them (they are daemons) rather than hang.
        while any(thread.is_alive() for thread in threads) and not stop_event.wait(0.5):
            pass
        for thread in threads:
            thread.join(timeout=2.0)
            if thread.is_alive():
                log.warning("Myo %s: the dongle did not answer; leaving its thread behind", thread.name)
        if errors:
            raise errors[0]

    def _pyomyo_arm(self, pyomyo: ModuleType, arm: str, stop_event: threading.Event) -> None:
        address = self.arm_addresses[arm]
        mode = getattr(pyomyo.emg_mode, "RAW" if self.emg_mode == "raw" else "FILTERED")
        collector = _PairCollector(lambda payload: self.handle_notification(arm, None, payload))
        delays = reconnect_delays(self.reconnect_initial_s, self.reconnect_max_s)
        while not stop_event.is_set():
            myo = None
            try:
                try:
                    myo = pyomyo.Myo(tty=self.ports.get(arm), mode=mode)
                except ValueError as error:  # pyomyo's "dongle not found"
                    port = self.ports.get(arm) or "(auto-detect)"
                    raise StreamError(f"Myo {arm}: BLED112 dongle {port}: {error}") from error
                myo.add_emg_handler(collector.on_emg)
                myo.connect(addr=bled112_address(address, arm) if address else None)
                serial_port = getattr(getattr(myo, "bt", None), "ser", None)
                if serial_port is not None:
                    serial_port.timeout = 0.5  # so that run() returns and the stop event is seen
                collector.reset()
                self._connected(arm)
                delays = reconnect_delays(self.reconnect_initial_s, self.reconnect_max_s)
                log.info("Myo %s: streaming %s EMG through the dongle", arm, self.emg_mode)
                while not stop_event.is_set():
                    myo.run()
                    if self._stalled(arm):
                        raise _RetryError(f"no EMG for {self.stall_timeout_s:.0f} s")
            except StreamError:
                raise
            except Exception as error:  # serial and protocol errors of the dongle: reconnect
                log.warning("Myo %s: %s: %s", arm, type(error).__name__, error)
            finally:
                if myo is not None:
                    _pyomyo_goodbye(myo)
            if not stop_event.is_set():
                delay = next(delays)
                log.info("Myo %s: reconnecting in %.0f s", arm, delay)
                stop_event.wait(delay)


class _RetryError(Exception):
    """A condition the reconnect loop retries (armband not found, silent)."""


async def _wait_for_stop(stop_event: threading.Event, seconds: float) -> None:
    """Wait up to `seconds`, returning early once the (thread) stop event is set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not stop_event.is_set() and loop.time() < deadline:
        await asyncio.sleep(min(0.1, max(deadline - loop.time(), 0.0)))


async def _bleak_goodbye(client: Any) -> None:
    """Best effort: stop EMG and let the armband sleep again, so it does not drain its battery."""
    try:
        await client.write_gatt_char(COMMAND_UUID, set_mode_command(EMG_MODE_NONE), response=True)
        await client.write_gatt_char(COMMAND_UUID, sleep_mode_command(SLEEP_NORMAL), response=True)
    except Exception as error:  # the link may already be gone
        log.debug("Myo: goodbye commands not sent: %s", error)


def _pyomyo_goodbye(myo: Any) -> None:
    try:
        myo.sleep_mode(SLEEP_NORMAL)
        myo.disconnect()
    except Exception as error:  # the dongle may already be gone
        log.debug("Myo: disconnect failed: %s", error)


__all__ = ["BACKENDS", "EMG_MODES", "MyoSource", "bled112_address", "import_backend",
           "reconnect_delays"]


# ---- checking the armbands: scan and identify (bleak) ----
@dataclass(frozen=True)
class ArmbandFound:
    """An armband in reach, as `myosight myo --scan` lists it."""

    address: str
    name: str
    rssi_dbm: int | None  # signal strength of its advertisement
    battery_percent: int | None  # None: not read (it did not accept a connection)
    firmware: str | None


def scan_armbands(timeout_s: float = 5.0, *, details: bool = True) -> list[ArmbandFound]:
    """The Myo armbands advertising in reach (strongest signal first); with `details`, each is connected to for a
    moment to read its battery level and firmware version."""
    bleak = import_backend("bleak")
    return asyncio.run(_scan(bleak, timeout_s, details))


async def _scan(bleak: ModuleType, timeout_s: float, details: bool) -> list[ArmbandFound]:
    found = await bleak.BleakScanner.discover(timeout=timeout_s, service_uuids=[CONTROL_SERVICE_UUID], return_adv=True)
    armbands = []
    for device, advertisement in found.values():
        battery = firmware = None
        if details:
            battery, firmware = await _read_details(bleak, device)
        armbands.append(ArmbandFound(device.address, device.name or "Myo", getattr(advertisement, "rssi", None),
                                     battery, firmware))
    return sorted(armbands, key=lambda a: -(a.rssi_dbm if a.rssi_dbm is not None else -999))


async def _read_details(bleak: ModuleType, device: Any) -> tuple[int | None, str | None]:
    """Battery level and firmware version, or None for what could not be read (told in the debug log)."""
    client = bleak.BleakClient(device)
    try:
        await client.connect()
        battery = (await client.read_gatt_char(BATTERY_LEVEL_UUID))[0]
        firmware = decode_firmware_version(await client.read_gatt_char(FIRMWARE_VERSION_UUID))
        return int(battery), firmware
    except Exception as error:  # one armband that does not answer must not end the scan
        log.debug("Myo %s: details not read: %s", device.address, error)
        return None, None
    finally:
        if client.is_connected:
            await client.disconnect()


def identify_armband(address: str, vibration: str = "long", timeout_s: float = 10.0) -> None:
    """Make the armband at `address` vibrate, so that its wearer can tell which forearm it is on."""
    bleak = import_backend("bleak")
    asyncio.run(_identify(bleak, address, vibration, timeout_s))


async def _identify(bleak: ModuleType, address: str, vibration: str, timeout_s: float) -> None:
    device = await bleak.BleakScanner.find_device_by_address(address, timeout=timeout_s)
    if device is None:
        raise ConfigError(f"armband {address} not found within {timeout_s:g} s (is it charged, in range and not "
                          "connected to another program?)")
    client = bleak.BleakClient(device)
    await client.connect()
    try:
        await client.write_gatt_char(COMMAND_UUID, vibrate_command(vibration), response=True)
    finally:
        await client.disconnect()
