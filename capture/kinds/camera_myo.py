"""`--source camera+myo`: a camera (or a video file) and one or two Myo armbands over Bluetooth."""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from typing import Any

from myosight.arms import describe_arms
from myosight.capture.kinds import PickerFields, SourceKind, SourceOption, register
from myosight.capture.kinds._hardware import run_camera_and_emg
from myosight.capture.kinds._options import CAMERA
from myosight.errors import ConfigError
from myosight.processes import SourceSpec

MYO_LEFT = SourceOption(("--myo-left",), "myo_left", {"metavar": "ADDR", "help": "left armband address"})
MYO_RIGHT = SourceOption(("--myo-right",), "myo_right", {"metavar": "ADDR", "help": "right armband address"})
BACKEND = SourceOption(("--backend",), "backend", {
    "choices": ("bleak", "pyomyo"), "default": "bleak",
    "help": "bleak, the computer's Bluetooth (default), or pyomyo, a BLED112 dongle per armband"})


@dataclass(frozen=True)
class CameraMyoSettings:
    camera: str = "0"
    myo_left: str | None = None  # armband addresses; none: the armbands found by scanning, said before streaming
    myo_right: str | None = None
    backend: str = "bleak"


@register
class CameraMyo(SourceKind):
    name = "camera+myo"
    title = "Camera + Myo armbands"
    order = 10
    options = (CAMERA, MYO_LEFT, MYO_RIGHT, BACKEND)
    settings_type = CameraMyoSettings
    live_person = True

    def settings_from_picker(self, picked: PickerFields) -> dict:
        return {"camera": picked.camera, "myo_left": picked.left, "myo_right": picked.right}

    def arms_from_args(self, args: argparse.Namespace, model_arms: tuple[str, ...] | None) -> tuple[str, ...]:
        """Armbands named by address are the arms named (and `--arms` must agree); else as every kind."""
        named = tuple(arm for arm, address in (("left", args.myo_left), ("right", args.myo_right)) if address)
        if not named:
            return super().arms_from_args(args, model_arms)
        if getattr(args, "arms", None) and tuple(args.arms) != named:
            raise ConfigError(f"--arms {','.join(args.arms)} but armbands are named for {describe_arms(named)}")
        return named

    def run(self, spec: SourceSpec, stop: threading.Event, ready: Any) -> None:
        from myosight.capture.myo import MyoSource
        from myosight.capture.streams import warn_if_source_name_taken

        warn_if_source_name_taken(spec.source)
        settings = self.settings(spec)
        addresses = {"left": settings.myo_left, "right": settings.myo_right}
        myo = MyoSource({arm: addresses[arm] for arm in spec.arms}, backend=settings.backend, source=spec.source)
        myo.prepare(stop)  # which armband is which arm, said before anything (the camera too) streams
        if not stop.is_set():
            run_camera_and_emg(spec, settings.camera, [("myo", myo.run)], stop, ready)
