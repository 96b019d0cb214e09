"""`--source synthetic`: a synthetic person (sEMG of one or two arms, egocentric video, labels) rendered live."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from myosight.capture.kinds import SourceKind, register
from myosight.capture.kinds._options import SPEED
from myosight.processes import SourceSpec


@dataclass(frozen=True)
class SyntheticSettings:
    subject: str = "S00"  # which synthetic person (S00-S09)
    speed: float = 1.0
    classes: tuple[str, ...] | None = None  # the activities it performs (default: the 20 of ActionSense)
    prompts: str | None = None  # perform what this LSL source's label markers ask (a calibration)
    clock_origin: float | None = None  # the LSL time its clock starts from (shared with the prompts)


@register
class Synthetic(SourceKind):
    name = "synthetic"
    title = "Synthetic person"
    order = 30
    publishes = ("emg", "video", "labels")
    options = (SPEED,)
    settings_type = SyntheticSettings
    live_person = True
    follows_prompts = True
    faster_than_real_time = True

    def settings_from_args(self, args, file: str | None) -> dict:
        """`--subject` names the synthetic person to render (S00-S09)."""
        return {"subject": args.subject, "speed": args.speed}

    def with_prompts(self, spec: SourceSpec, *, labels: str, clock_origin: float, speed: float,
                     classes: tuple[str, ...], subject: str) -> SourceSpec:
        from myosight.capture.kinds import with_settings

        return with_settings(spec, prompts=labels, clock_origin=clock_origin, speed=speed, classes=tuple(classes),
                             subject=subject)

    def run(self, spec: SourceSpec, stop: threading.Event, ready: Any) -> None:
        from myosight.capture.clock import SourceClock
        from myosight.capture.synthetic import SyntheticSource
        from myosight.data.activities import ACTIVITIES

        settings = self.settings(spec)
        origin = settings.clock_origin if settings.clock_origin is not None else SourceClock.starting_now().origin
        source = SyntheticSource(classes=tuple(settings.classes or ACTIVITIES), video=spec.video,
                                 frame_size=spec.frame_size, subject=settings.subject, source=spec.source,
                                 prompts=settings.prompts, clock=SourceClock(origin, settings.speed),
                                 arms=tuple(spec.arms))
        ready.set()
        source.run(stop)
