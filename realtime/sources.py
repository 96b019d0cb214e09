"""The inlets of one source, found together and opened before any model is loaded.

A first window needs five seconds of data that arrived after the worker's inlets opened (LSL hands an inlet only
what is sent after it connects). So the worker child opens its inlets first, with nothing heavier than pylsl
imported, and loads torch, the bundle and I3D while the inlets buffer the first seconds: the model loading then
costs nothing on the way to the first prediction.

The streams are found by role (capture/discovery.py): from one source by name, from several (`--emg myo --video
camera`), or from whichever myosight source streams each role. The child waits (up to `first_timeout_s`) for a first
stream, since the sources may be starting at the same moment, and gives the others `grace_s` more. The model's arms
decide which EMG streams are opened: an arm the model reads that the source does not stream is refused, unless the
user allowed it (its channels then stay zero); an arm the model does not read is left alone. An absent label stream
is a live source (no true labels).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pylsl

from myosight.arms import BOTH_ARMS, describe_arms
from myosight.capture.choice import StreamChoice
from myosight.capture.discovery import find_chosen_streams
from myosight.capture.inlets import LiveInlet, refuse_shared_source
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
    def open(cls, source: str | StreamChoice | None, *, video: bool, arms: tuple[str, ...] = BOTH_ARMS,
             allow_missing_arm: bool = False, first_timeout_s: float = 10.0, lost_after_s: float = 1.0,
             stop: threading.Event | None = None, emg_buffer_s: int | None = None) -> SourceInlets:
        """Find the streams `source` chooses (a source name, a choice per role, or None: whichever myosight
        source streams each role) and open the inlets of the model's `arms` (and video, labels); StreamError
        when no EMG stream appears, when an arm of the model is not streamed (unless `allow_missing_arm`), with
        `video` when no video stream appears, when a role is streamed by several sources the choice does not
        tell apart, or when two sources publish under the same name."""
        choice = StreamChoice.of(source)
        where = choice.describe()
        roles = [f"emg-{arm}" for arm in arms] + (["video"] if video else []) + ["labels"]
        found = find_chosen_streams(choice, roles, first_timeout_s, grace_s=STREAM_GRACE_S, wave_s=RESOLVE_WAVE_S,
                                    stop=stop, optional=("labels",))  # only for the true labels shown
        emg = {"channels": CHANNELS_PER_ARM, "lost_after_s": lost_after_s}
        if emg_buffer_s is not None:  # the inlet's own buffer: what arrives while the worker is busy elsewhere
            emg["max_buffer_s"] = emg_buffer_s
        wanted = {f"emg-{arm}": dict(emg) for arm in arms}
        if video:
            wanted["video"] = {"lost_after_s": max(lost_after_s, 1.0), "max_chunk": 64}
        wanted["labels"] = {"lost_after_s": 1e9}
        present = {kind: found[kind] for kind in wanted if kind in found}
        if not any(kind.startswith("emg-") for kind in present):
            others = [f"emg-{arm}" for arm in ARMS if arm not in arms]
            elsewhere = find_chosen_streams(choice, others, 0.0) if others else {}
            streamed = [role.removeprefix("emg-") for role in elsewhere]
            if streamed:
                raise StreamError(f"{where} streams {describe_arms(streamed)}, but the model reads "
                                  f"{describe_arms(arms)}")
            looked = ", ".join(choice.source_id(f"emg-{arm}") or f"any myosight-*-emg-{arm}" for arm in arms)
            raise StreamError(f"no EMG stream from {where} within {first_timeout_s:g} s (looked for {looked}; "
                              "myosight streams lists what is on the network)")
        absent = [arm for arm in arms if f"emg-{arm}" not in present]
        if video and "video" not in present:
            looked = choice.source_id("video") or "any myosight-*-video"
            raise StreamError(f"no video stream from {where} (looked for {looked}); start the source with video, or "
                              "the worker with --emg-only")
        opened, failure = _open_together(present, wanted)
        inlets = cls(where, emg={arm: opened[f"emg-{arm}"] for arm in arms if f"emg-{arm}" in opened},
                     video=opened.get("video"), labels=opened.get("labels"))
        if failure is None and absent and not allow_missing_arm:
            failure = StreamError(f"the model reads {describe_arms(arms)} but {where} does not stream the "
                                  f"{absent[0]} arm (--allow-missing-arm runs it with zeros there)")
        if failure is not None:
            inlets.close()
            raise failure
        inlets.missing_arms = [arm for arm in arms if arm not in inlets.emg]
        for arm in inlets.missing_arms:
            log.warning("no %s-arm EMG stream from %s: its channels are zero, as asked", arm, where)
        if not choice.single:
            log.warning("streams: %s", "; ".join(f"{kind} from {info.source_id()} on {info.hostname()}"
                                                 for kind, info in present.items()))
        if inlets.labels is None:
            log.info("no label stream from %s: predictions carry no true label", where)
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


def _open_together(present: dict[str, pylsl.StreamInfo],
                   options: dict[str, dict]) -> tuple[dict[str, LiveInlet], BaseException | None]:
    """Open the inlets at once (each waits on a few network round trips: connect, full header, clock offset)
    while checking that no other program publishes under the same source ids; the opened inlets, and the first
    error (the caller closes what was opened)."""
    ids = [info.source_id() for info in present.values()]
    with ThreadPoolExecutor(max_workers=len(present) + 1, thread_name_prefix="open-inlet") as pool:
        shared = pool.submit(refuse_shared_source, ids)
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
