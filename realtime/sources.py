"""The inlets of one source, found together and opened before any model is loaded.

A first window needs five seconds of data that arrived after the worker's inlets opened (LSL hands an
inlet only what is sent after it connects). So the worker child opens its inlets first, with nothing heavier
than pylsl imported, and loads torch, the bundle and I3D while the inlets buffer the first seconds: the model
loading then costs nothing on the way to the first prediction.

The streams are resolved together: the child waits (up to `first_timeout_s`) for the source's first stream,
since the source may be starting at the same moment, and gives its other streams `grace_s` more, since a
source announces all of its streams at once. The model's arms decide which EMG streams are opened: an arm the
model reads that the source does not stream is refused, unless the user allowed it (its channels then stay
zero); an arm the model does not read is left alone. An absent label stream is a live source (no true labels).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pylsl

from myosight.arms import BOTH_ARMS, describe_arms
from myosight.capture.inlets import LiveInlet, refuse_shared_source
from myosight.capture.streams import StreamNames, source_predicate
from myosight.constants import ARMS, CHANNELS_PER_ARM
from myosight.errors import StreamError

log = logging.getLogger(__name__)

#: Once a source's first stream is seen, how long its other streams may take to appear.
STREAM_GRACE_S = 1.0
#: How often the network is asked while waiting for a source's streams.
RESOLVE_WAVE_S = 0.1


@dataclass
class SourceInlets:
    """Open inlets of a source: EMG by arm (the arms found), video and labels when they exist."""

    source: str
    emg: dict[str, LiveInlet] = field(default_factory=dict)
    missing_arms: list[str] = field(default_factory=list)
    video: LiveInlet | None = None
    labels: LiveInlet | None = None

    @classmethod
    def open(cls, source: str, *, video: bool, arms: tuple[str, ...] = BOTH_ARMS, allow_missing_arm: bool = False,
             first_timeout_s: float = 10.0, lost_after_s: float = 1.0, stop: threading.Event | None = None,
             emg_buffer_s: int | None = None) -> SourceInlets:
        """Find the source's streams and open the inlets of the model's `arms` (and video, labels); StreamError
        when no EMG stream appears, when an arm of the model is not streamed (unless `allow_missing_arm`), with
        `video` when no video stream appears, or when two sources publish under the same name."""
        names = StreamNames(source)
        found = _resolve_source(source, first_timeout_s, stop)
        emg = {"channels": CHANNELS_PER_ARM, "lost_after_s": lost_after_s}
        if emg_buffer_s is not None:  # the inlet's own buffer: what arrives while the worker is busy elsewhere
            emg["max_buffer_s"] = emg_buffer_s
        wanted = {f"emg-{arm}": dict(emg) for arm in arms}
        if video:
            wanted["video"] = {"lost_after_s": max(lost_after_s, 1.0), "max_chunk": 64}
        wanted["labels"] = {"lost_after_s": 1e9}
        present = {kind: found[names.source_id(kind)] for kind in wanted if names.source_id(kind) in found}
        if not any(kind.startswith("emg-") for kind in present):
            streamed = [arm for arm in ARMS if names.source_id(f"emg-{arm}") in found]
            if streamed:
                raise StreamError(f"source '{source}' streams {describe_arms(streamed)}, but the model reads "
                                  f"{describe_arms(arms)}")
            raise StreamError(f"no EMG stream from source '{source}' within {first_timeout_s:g} s "
                              f"(looked for myosight-{source}-emg-*)")
        absent = [arm for arm in arms if f"emg-{arm}" not in present]
        if video and "video" not in present:
            raise StreamError(f"no video stream from source '{source}' (looked for {names.source_id('video')}); "
                              "start the source with video, or the worker with --emg-only")
        opened, failure = _open_together(source, present, wanted)
        inlets = cls(source, emg={arm: opened[f"emg-{arm}"] for arm in arms if f"emg-{arm}" in opened},
                     video=opened.get("video"), labels=opened.get("labels"))
        if failure is None and absent and not allow_missing_arm:
            failure = StreamError(f"the model reads {describe_arms(arms)} but source '{source}' does not stream the "
                                  f"{absent[0]} arm (--allow-missing-arm runs it with zeros there)")
        if failure is not None:
            inlets.close()
            raise failure
        inlets.missing_arms = [arm for arm in arms if arm not in inlets.emg]
        for arm in inlets.missing_arms:
            log.warning("no %s-arm EMG stream from source '%s': its channels are zero, as asked", arm, source)
        if inlets.labels is None:
            log.info("no label stream from source '%s': predictions carry no true label", source)
        return inlets

    def all(self) -> list[LiveInlet]:
        """Every open inlet, in the order they are closed: labels, video, EMG."""
        return [inlet for inlet in (self.labels, self.video, *self.emg.values()) if inlet is not None]

    def drop_video(self) -> None:
        """Close the video inlet (a model without RGB, found out once the bundle is loaded)."""
        if self.video is not None:
            self.video.close()
            self.video = None

    def close(self) -> None:
        """Close the inlets in a fixed order (labels, video, EMG) while their sources still exist."""
        for inlet in self.all():
            inlet.close()


def _open_together(source: str, present: dict[str, pylsl.StreamInfo],
                   options: dict[str, dict]) -> tuple[dict[str, LiveInlet], BaseException | None]:
    """Open the inlets at once (each waits on a few network round trips: connect, full header, clock offset)
    while checking that no other source publishes under the same name; the opened inlets, and the first
    error (the caller closes what was opened)."""
    ids = [info.source_id() for info in present.values()]
    with ThreadPoolExecutor(max_workers=len(present) + 1, thread_name_prefix="open-inlet") as pool:
        shared = pool.submit(refuse_shared_source, source, ids)
        futures = {kind: pool.submit(LiveInlet, info, **options[kind]) for kind, info in present.items()}
        opened, failure = {}, None
        for kind, future in futures.items():
            try:
                opened[kind] = future.result()
            except Exception as error:
                failure = failure or error
        try:
            shared.result()
        except Exception as error:
            failure = failure or error
    return opened, failure


def _resolve_source(source: str, first_timeout_s: float, stop: threading.Event | None) -> dict[str, pylsl.StreamInfo]:
    """The source's streams by source id: waits for the first, then `STREAM_GRACE_S` for the rest (or until
    every kind a source can publish is there)."""
    predicate = source_predicate(source)
    deadline = time.monotonic() + first_timeout_s
    found: dict[str, pylsl.StreamInfo] = {}
    complete_at: float | None = None
    kinds = 4  # emg-left, emg-right, video, labels
    while True:
        for info in pylsl.resolve_bypred(predicate, 0, RESOLVE_WAVE_S):
            found.setdefault(info.source_id(), info)
        now = time.monotonic()
        if found and complete_at is None:
            complete_at = now + STREAM_GRACE_S
        if len(found) >= kinds or (complete_at is not None and now >= complete_at) or now >= deadline:
            return found
        if stop is not None and stop.is_set():
            return found
