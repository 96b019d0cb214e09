"""The Myo armband's Bluetooth LE protocol, as far as myosight needs it: commands out, EMG notifications in.

Pure Python and numpy (no Bluetooth library), so the byte layouts and the time-stamping can be tested
without an armband. Facts from Thalmic Labs' published protocol header (myohw.h):

- Every Myo UUID is the base d506xxxx-a904-deb9-4748-2c7f4a124842 with a 16-bit short id in place of xxxx.
- Control service 0x0001 holds the write-only command characteristic 0x0401. A command is a 2-byte header
  [command, payload size] followed by the payload. Set mode (0x01, 3 bytes): [emg_mode, imu_mode,
  classifier_mode]. Set sleep mode (0x09, 1 byte): 0 = normal (sleeps when idle), 1 = never sleep.
- EMG data service 0x0005 holds four notify characteristics, 0x0105, 0x0205, 0x0305 and 0x0405 (the
  service id in the low byte, the characteristic number in the high byte). Each notification is 16 bytes:
  two consecutive samples of the 8 sensors as int8. The armband fills the four in turn, so in-order
  delivery cycles 0, 1, 2, 3, 0, ...; at the nominal 200 Hz that is one notification every 10 ms.
- EMG modes: 0x00 none, 0x02 filtered ("send_emg"), 0x03 raw ("send_emg_raw"). Both streaming modes run at
  200 Hz in the sensor's own units, -128..127.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from myosight.constants import CHANNELS_PER_ARM, MYO_NOMINAL_RATE_HZ
from myosight.errors import StreamError

MYO_UUID_TEMPLATE = "d506{:04x}-a904-deb9-4748-2c7f4a124842"


def myo_uuid(short_id: int) -> str:
    """The full 128-bit UUID string of a Myo service or characteristic from its 16-bit short id."""
    if not 0 <= short_id <= 0xFFFF:
        raise ValueError(f"a Myo short id is 16 bits, got {short_id:#x}")
    return MYO_UUID_TEMPLATE.format(short_id)


CONTROL_SERVICE = 0x0001
FIRMWARE_VERSION_CHARACTERISTIC = 0x0201
COMMAND_CHARACTERISTIC = 0x0401
EMG_DATA_SERVICE = 0x0005
EMG_DATA_CHARACTERISTICS = (0x0105, 0x0205, 0x0305, 0x0405)

CONTROL_SERVICE_UUID = myo_uuid(CONTROL_SERVICE)  # advertised by the armband: used to find it in a scan
COMMAND_UUID = myo_uuid(COMMAND_CHARACTERISTIC)
EMG_DATA_SERVICE_UUID = myo_uuid(EMG_DATA_SERVICE)
EMG_DATA_UUIDS = tuple(myo_uuid(short) for short in EMG_DATA_CHARACTERISTICS)

COMMAND_SET_MODE = 0x01
COMMAND_SET_SLEEP_MODE = 0x09

EMG_MODE_NONE = 0x00
EMG_MODE_FILTERED = 0x02
EMG_MODE_RAW = 0x03
IMU_MODE_NONE = 0x00
IMU_MODE_SEND_DATA = 0x01
IMU_MODE_SEND_EVENTS = 0x02
IMU_MODE_SEND_ALL = 0x03
IMU_MODE_SEND_RAW = 0x04
CLASSIFIER_DISABLED = 0x00
CLASSIFIER_ENABLED = 0x01
SLEEP_NORMAL = 0x00
SLEEP_NEVER = 0x01

_EMG_MODES = (EMG_MODE_NONE, EMG_MODE_FILTERED, EMG_MODE_RAW)
_IMU_MODES = (IMU_MODE_NONE, IMU_MODE_SEND_DATA, IMU_MODE_SEND_EVENTS, IMU_MODE_SEND_ALL, IMU_MODE_SEND_RAW)
_CLASSIFIER_MODES = (CLASSIFIER_DISABLED, CLASSIFIER_ENABLED)

NOTIFICATION_BYTES = 16
SAMPLES_PER_NOTIFICATION = 2
N_EMG_CHARACTERISTICS = len(EMG_DATA_CHARACTERISTICS)


def _command(command: int, payload: bytes) -> bytes:
    return bytes((command, len(payload))) + payload


def set_mode_command(emg_mode: int, imu_mode: int = IMU_MODE_NONE, classifier_mode: int = CLASSIFIER_DISABLED) -> bytes:
    """The 5 bytes that set the EMG, IMU and classifier modes (write them to the command characteristic).

    Only the documented modes are accepted: an undocumented value (such as the 50 Hz rectified mode 0x01)
    would give data in another layout than the four EMG characteristics carry.
    """
    for name, value, allowed in (("emg_mode", emg_mode, _EMG_MODES), ("imu_mode", imu_mode, _IMU_MODES),
                                 ("classifier_mode", classifier_mode, _CLASSIFIER_MODES)):
        if value not in allowed:
            raise ValueError(f"{name} {value!r} is not one of {[hex(a) for a in allowed]}")
    return _command(COMMAND_SET_MODE, bytes((emg_mode, imu_mode, classifier_mode)))


def sleep_mode_command(sleep_mode: int) -> bytes:
    """The 3 bytes that set the sleep mode (normal: the armband sleeps when it lies still)."""
    if sleep_mode not in (SLEEP_NORMAL, SLEEP_NEVER):
        raise ValueError(f"sleep_mode must be {SLEEP_NORMAL} (normal) or {SLEEP_NEVER} (never), not {sleep_mode!r}")
    return _command(COMMAND_SET_SLEEP_MODE, bytes((sleep_mode,)))


COMMAND_VIBRATE = 0x03
#: The vibrations the armband knows (myohw.h's vibration types), by name.
VIBRATIONS = {"short": 0x01, "medium": 0x02, "long": 0x03}
#: The Bluetooth SIG's Battery Level characteristic (one byte, percent), which the armband carries.
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"
FIRMWARE_VERSION_UUID = myo_uuid(FIRMWARE_VERSION_CHARACTERISTIC)


def vibrate_command(vibration: str = "medium") -> bytes:
    """The 3 bytes that make the armband vibrate (to tell which armband is which arm)."""
    if vibration not in VIBRATIONS:
        raise ValueError(f"vibration must be one of {tuple(VIBRATIONS)}, not {vibration!r}")
    return _command(COMMAND_VIBRATE, bytes((VIBRATIONS[vibration],)))


def decode_firmware_version(payload: bytes | bytearray) -> str:
    """'major.minor.patch (hardware revision N)' from the firmware characteristic's four little-endian uint16."""
    if len(payload) != 8:
        raise ValueError(f"a Myo firmware version is 8 bytes, got {len(payload)}")
    major, minor, patch, hardware = np.frombuffer(bytes(payload), dtype="<u2").tolist()
    return f"{major}.{minor}.{patch} (hardware revision {hardware})"


def never_sleep_command() -> bytes:
    """Keep the armband awake while it streams: a still arm would otherwise put it to sleep mid-session."""
    return sleep_mode_command(SLEEP_NEVER)


def decode_emg_notification(payload: bytes | bytearray | memoryview, where: str = "Myo EMG notification") -> np.ndarray:
    """One EMG notification -> (2, 8) int8, the earlier sample first.

    `where` names the armband or characteristic in the error raised for a payload that is not 16 bytes.
    """
    data = bytes(payload)
    if len(data) != NOTIFICATION_BYTES:
        raise StreamError(f"{where}: expected {NOTIFICATION_BYTES} bytes (two 8-channel int8 samples), "
                          f"got {len(data)}")
    return np.frombuffer(data, dtype=np.int8).reshape(SAMPLES_PER_NOTIFICATION, CHANNELS_PER_ARM).copy()


@dataclass
class AssemblerStats:
    """Counts for one armband: notifications accepted, samples produced, notifications detected as lost."""

    packets: int = 0
    samples: int = 0
    lost: int = 0


class EmgPacketAssembler:
    """Turns one armband's EMG notifications into time-stamped samples and counts lost notifications.

    Time stamps: the Myo sends no device clock, so a pair is stamped on arrival. The later sample of the
    pair gets the arrival time and the earlier one a sample period (1/200 s) before it: arrival is the
    best available bound for the newest sample, and the armband samples at a fixed 200 Hz. Bluetooth
    delivers notifications in bursts (several in one connection event), so that rule alone can put the
    earlier sample before the previous pair; the earlier sample is then moved to the midpoint between the
    previous stamp and the arrival (what the ActionSense recorder did with its pairs), and an arrival at or
    before the previous stamp is moved just after it. Stamps are therefore strictly increasing.

    Lost notifications: in-order delivery cycles through the characteristics 0, 1, 2, 3, 0, ..., so a jump
    from index i to j means (j - i - 1) mod 4 notifications were skipped. An outage of whole cycles (4, 8,
    ... notifications) keeps the order and cannot be seen this way. A notification fed with index None
    (a driver that does not say which characteristic it came from) is not checked.
    """

    MIN_STEP_S = 1e-6  # the smallest step between two stamps when arrivals crowd together

    def __init__(self, arm: str, rate_hz: float = MYO_NOMINAL_RATE_HZ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.arm = arm
        self.period_s = 1.0 / rate_hz
        self.stats = AssemblerStats()
        self._last_index: int | None = None
        self._last_stamp = -math.inf

    def restart(self) -> None:
        """Forget the characteristic order (after a reconnect), keeping the counts and the monotonic stamps."""
        self._last_index = None

    def feed(self, index: int | None, payload: bytes | bytearray | memoryview,
             arrival_s: float) -> tuple[np.ndarray, np.ndarray]:
        """One notification from characteristic `index` (0..3) -> (timestamps (2,) float64, samples (2, 8) float32)."""
        if index is not None and not 0 <= index < N_EMG_CHARACTERISTICS:
            raise ValueError(f"EMG characteristic index must be 0..{N_EMG_CHARACTERISTICS - 1}, got {index}")
        where = f"Myo {self.arm} EMG characteristic {index}" if index is not None else f"Myo {self.arm} EMG"
        samples = decode_emg_notification(payload, where).astype(np.float32)
        if index is not None:
            if self._last_index is not None:
                self.stats.lost += (index - self._last_index - 1) % N_EMG_CHARACTERISTICS
            self._last_index = index
        later = max(float(arrival_s), self._last_stamp + 2 * self.MIN_STEP_S)
        earlier = later - self.period_s
        if earlier <= self._last_stamp:
            earlier = (self._last_stamp + later) / 2
        self._last_stamp = later
        self.stats.packets += 1
        self.stats.samples += SAMPLES_PER_NOTIFICATION
        return np.array([earlier, later], dtype=np.float64), samples
