"""`--source camera+lsl-emg`: a camera (or a video file) and EMG streams that another program publishes on LSL
(any EMG device with an LSL app), relayed per arm into myosight's streams."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from myosight.capture.kinds import PickerFields, SourceKind, register
from myosight.capture.kinds._hardware import EmgPart, run_camera_and_emg
from myosight.capture.kinds._options import CAMERA, LSL_EMG_LEFT, LSL_EMG_RIGHT
from myosight.processes import SourceSpec


@dataclass(frozen=True)
class CameraLslEmgSettings:
    camera: str = "0"
    lsl_emg_left: str | None = None  # the EMG stream of each arm worn (name, source id or id)
    lsl_emg_right: str | None = None


@register
class CameraLslEmg(SourceKind):
    name = "camera+lsl-emg"
    title = "Camera + LSL EMG streams"
    order = 20
    options = (CAMERA, LSL_EMG_LEFT, LSL_EMG_RIGHT)
    settings_type = CameraLslEmgSettings
    live_person = True

    def settings_from_picker(self, picked: PickerFields) -> dict:
        return {"camera": picked.camera, "lsl_emg_left": picked.left, "lsl_emg_right": picked.right}

    def arms_from_args(self, args, model_arms: tuple[str, ...] | None) -> tuple[str, ...]:
        """The arms whose streams are named."""
        return _named(args.lsl_emg_left, args.lsl_emg_right) or super().arms_from_args(args, model_arms)

    def arms(self, spec: SourceSpec) -> tuple[str, ...] | None:
        settings = self.settings(spec)
        return _named(settings.lsl_emg_left, settings.lsl_emg_right)

    def run(self, spec: SourceSpec, stop: threading.Event, ready: Any) -> None:
        from myosight.capture.lsl_emg import EmgRelay, find_emg_stream
        from myosight.capture.streams import warn_if_source_name_taken

        warn_if_source_name_taken(spec.source)
        settings = self.settings(spec)
        parts: list[EmgPart] = []
        for arm, name in (("left", settings.lsl_emg_left), ("right", settings.lsl_emg_right)):
            if name:
                relay = EmgRelay(find_emg_stream(name=name), arm, source=spec.source)
                relay.open()
                parts.append((f"emg-{arm}", relay.run))
        run_camera_and_emg(spec, settings.camera, parts, stop, ready)


def _named(left: str | None, right: str | None) -> tuple[str, ...]:
    return tuple(arm for arm, name in (("left", left), ("right", right)) if name)
