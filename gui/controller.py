"""Starts and stops what the window shows: the source, the worker and the recorder, each its own process.

The processes are those of `myosight run` (a `myosight.processes.ProcessGroup` of `source_process` and
`worker_process`, plus `recorder_process`), and they stop in the same order: the viewer's own inlets
first, then the worker, then the recorder, then the source, so every inlet closes while its outlet still
exists. Stopping runs in a background thread and starting waits for it, so the window never freezes;
`poll()` (from the window's timer) drives the rest: it starts the worker once the source is up, restarts
it when the model or the sEMG-only switch changes, and turns a process that died into a notice for the
banner.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pylsl

from myosight.capture.choice import StreamChoice
from myosight.capture.kinds import EXTERNAL_KIND, external_spec, source_kind, spec_streams, with_settings
from myosight.capture.launch import source_process
from myosight.capture.recorder import RecorderSpec, recorder_process
from myosight.errors import ConfigError
from myosight.gui.receivers import StreamReceiver
from myosight.gui.replay_link import ReplayLink
from myosight.gui.state import GuiState
from myosight.models.bundle_header import read_bundle_geometry, read_bundle_metadata
from myosight.models.clips import ClipGeometry, resolve_geometry
from myosight.processes import (
    EXIT_SOURCE_FAILED,
    EXIT_WORKER_FAILED,
    ProcessGroup,
    RunSpec,
    SourceSpec,
    stop_child,
)
from myosight.realtime.child import worker_process

log = logging.getLogger(__name__)

_names = itertools.count(1)


#: The source name of the viewer's label presses (`myosight record --labels gui`).
VIEWER_LABEL_SOURCE = "gui"


def unique_source_name(prefix: str = "gui") -> str:
    """An LSL source name no other viewer or test on this network uses at the same time."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


def free_tcp_address() -> str:
    """A loopback address with a port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@dataclass
class WorkerSettings:
    bundle: str | None = None
    emg_only: bool = False
    hop_s: float = 1.0
    input_size: int | None = None  # the user's override of the bundle's I3D input size
    use_compile: bool = False
    device: str = "cpu"
    precision: str = "float32"
    allow_missing_arm: bool = False  # run the model on a source without one of its arms (zeros there)

    def geometry(self) -> ClipGeometry:
        """The clip geometry of a run with these settings (I3D's own when no model is chosen yet)."""
        return resolve_geometry(read_bundle_geometry(self.bundle) if self.bundle else None, self.input_size)


@dataclass
class Controller:
    """The window's processes. Every public method returns at once; `poll()` does the waiting."""

    state: GuiState
    address: str
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    record_dir: Path = Path("recordings")
    subject: str = "S00"
    processes: ProcessGroup = field(default_factory=ProcessGroup)
    source_spec: SourceSpec | None = None
    streams: StreamReceiver | None = None
    replay: ReplayLink | None = None
    notices: dict[str, tuple[str, str]] = field(default_factory=dict)
    worker_generation: int = 0
    label_source: str | None = None  # the viewer's label stream's source ("gui", or its own name when taken)
    label_outlet: pylsl.StreamOutlet | None = None
    open_label: str | None = None
    _pending_source: SourceSpec | None = None
    _worker_dirty: bool = False
    _stopper: threading.Thread | None = None
    _ever_failed: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # each child that failed, in words, in order

    # -- requests from the window ---------------------------------------------------------------------
    def start_source(self, spec: SourceSpec) -> None:
        """Stop whatever runs and start this source (and the worker after it); its frames are the model's."""
        spec.frame_size = self.worker.geometry().crop_size  # checks the bundle too
        if spec.kind != EXTERNAL_KIND and source_kind(spec).controllable:
            spec = with_settings(spec, control_address=free_tcp_address())
        self._pending_source = spec
        self._stop_in_background(["recorder", "worker", "source"], streams=True)
        self.notices.pop("source", None)

    def attach(self, streams: str | StreamChoice) -> None:
        """Use LSL streams other programs publish (no source process): one source's, or chosen by role."""
        self.start_source(external_spec(streams))

    def stop_all(self) -> None:
        self._pending_source = None
        self._stop_in_background(["recorder", "worker", "source"], streams=True)

    def set_bundle(self, bundle: str) -> list[str]:
        """Switch the model (the worker restarts); returns the bundle's classes. Raises ConfigError."""
        meta = read_bundle_metadata(bundle)
        self.worker.bundle = bundle
        self._worker_dirty = True
        return list(meta["classes"])

    def set_emg_only(self, emg_only: bool) -> None:
        if emg_only != self.worker.emg_only:
            self.worker.emg_only = emg_only
            self._worker_dirty = True

    def replay_command(self, command: str, *args: float) -> bool:
        """play / pause / set_speed / seek; False when the source has no replay control."""
        if self.replay is None:
            return False
        self.replay.send(command, *args)
        return True

    # -- recording ------------------------------------------------------------------------------------
    def start_recording(self, classes: list[str] | None = None) -> Path:
        if self.source_spec is None or not self._running("source", allow_external=True):
            raise ConfigError("start a source before recording")
        self.open_label_stream()
        out_dir = Path(self.record_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        spec = RecorderSpec(out_dir=str(out_dir), streams=spec_streams(self.source_spec).to_dict(),
                            label_source=self.label_source,
                            subject=self.subject, classes=classes)
        self.processes.start("recorder", recorder_process, asdict(spec))
        return out_dir

    def mark_label(self, activity: str, start: bool) -> None:
        """Publish "<activity>|Start" or "|Stop" on the viewer's marker stream.

        The press is stamped with the newest sEMG sample on screen rather than the clock: a replay that was
        paused, seeked or runs faster than real time has stamps apart from the clock, and the label belongs
        to the data the user sees. Before any sEMG has arrived it is stamped with the clock.
        """
        outlet = self.open_label_stream()
        if start and self.open_label is not None:
            self.mark_label(self.open_label, start=False)
        stamp = self.state.newest_emg_time()
        stamp = pylsl.local_clock() if stamp is None else stamp
        outlet.push_sample([f"{activity}|{'Start' if start else 'Stop'}"], stamp)
        self.open_label = activity if start else None

    def open_label_stream(self) -> pylsl.StreamOutlet:
        """The viewer's label stream (opened at the first need): the presses of the label button, for the viewer's
        own recording and for `myosight record --labels gui` run beside it. Published as source "gui", or under a
        name of its own (said in a notice) when another viewer has that name already."""
        if self.label_outlet is None:
            from myosight.capture.streams import marker_stream_info, open_outlet, warn_if_source_name_taken

            if self.label_source is None:
                taken = warn_if_source_name_taken(VIEWER_LABEL_SOURCE, timeout_s=0.3)
                self.label_source = unique_source_name(VIEWER_LABEL_SOURCE) if taken else VIEWER_LABEL_SOURCE
                if taken:
                    self.notices["labels"] = ("warning", f"another viewer publishes labels as '{VIEWER_LABEL_SOURCE}': "
                                              f"this one's are '{self.label_source}' (record --labels "
                                              f"{self.label_source})")
            self.label_outlet = open_outlet(marker_stream_info(source=self.label_source))
        return self.label_outlet

    def stop_recording(self) -> None:
        if self.open_label is not None:
            self.mark_label(self.open_label, start=False)
        self._stop_in_background(["recorder"], streams=False)

    @property
    def source_ready(self) -> bool:
        """Whether the source is up (its streams exist), so that a recorder can start on it."""
        if self.source_spec is not None and self.source_spec.kind == EXTERNAL_KIND:
            return True
        child = self.processes.get("source")
        return child is not None and child.alive and child.ready.is_set()

    @property
    def source_request(self) -> SourceSpec | None:
        """The source asked for last: the one waiting to start, else the one running."""
        return self._pending_source or self.source_spec

    def wait_stopped(self, timeout_s: float) -> None:
        """Wait until what was asked to stop has stopped (the window is closing)."""
        if self._stopper is not None:
            self._stopper.join(timeout_s)

    @property
    def recording(self) -> bool:
        child = self.processes.get("recorder")
        return child is not None and child.alive and not child.stopping

    # -- the timer's part -----------------------------------------------------------------------------
    def poll(self) -> None:
        if self._stopper is not None and self._stopper.is_alive():
            return
        self._stopper = None
        self._report_deaths()
        if self._pending_source is not None:
            self._launch_source(self._pending_source)
            self._pending_source = None
            return
        if self._worker_dirty and self.processes.get("worker") is not None:
            self._stop_in_background(["worker"], streams=False)
            return
        if self._source_started() and self.worker.bundle and (self.processes.get("worker") is None
                                                              or self._worker_dirty):
            self._launch_worker()
        self._starting_notice()
        if self.replay is not None and self.replay.error:
            self.notices["replay"] = ("warning", self.replay.error)
        else:
            self.notices.pop("replay", None)

    def exit_code(self) -> int:
        """As `myosight run`: 4 when the worker failed, 3 when the source failed, else 0."""
        if self._ever_failed.get("worker"):
            return EXIT_WORKER_FAILED
        if self._ever_failed.get("source"):
            return EXIT_SOURCE_FAILED
        return 0

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop everything in order and wait for it (the window is closing)."""
        self.stop_all()
        self.wait_stopped(timeout_s)
        if self.label_outlet is not None:
            self.label_outlet = None

    # -- internals ------------------------------------------------------------------------------------
    def _launch_source(self, spec: SourceSpec) -> None:
        self.state.reset_predictions()
        self.state.drop_stream_views()
        self.source_spec = spec
        if spec.kind != EXTERNAL_KIND:
            self.processes.start("source", source_process, asdict(spec))
        self.streams = StreamReceiver(spec_streams(spec), self.state)
        self.streams.start()
        control = spec.settings.get("control_address")
        if control:
            self.replay = ReplayLink(control, self.state)
            self.replay.start()

    def _launch_worker(self) -> None:
        if self.source_spec is None:  # no source chosen: nothing to follow
            return
        run = RunSpec(bundle=str(self.worker.bundle), sources=self.source_spec, address=self.address,
                      emg_only=self.worker.emg_only, hop_s=self.worker.hop_s, input_size=self.worker.input_size,
                      geometry=self.worker.geometry().to_dict(), use_compile=self.worker.use_compile,
                      device=self.worker.device, precision=self.worker.precision,
                      allow_missing_arm=self.worker.allow_missing_arm)
        self.state.reset_predictions()
        self.processes.start("worker", worker_process, asdict(run))
        self._worker_dirty = False
        self.worker_generation += 1
        self.notices.pop("worker", None)

    def _source_started(self) -> bool:
        """The source is starting or up: the worker may start too (it waits for the source's streams and loads
        its models meanwhile, see `myosight.realtime.child`)."""
        if self.source_spec is None:
            return False
        if self.source_spec.kind == EXTERNAL_KIND:
            return True
        child = self.processes.get("source")
        return child is not None and child.alive

    def _running(self, role: str, allow_external: bool = False) -> bool:
        if allow_external and role == "source" and self.source_spec is not None \
                and self.source_spec.kind == EXTERNAL_KIND:
            return True
        child = self.processes.get(role)
        return child is not None and child.alive

    def _report_deaths(self) -> None:
        for child in self.processes.ended():
            role, code = child.role, child.exitcode
            if role == "source" and code == 0:
                self.notices["source"] = ("info", "Replay finished")
                continue
            if code is not None and code != 0:
                self._ever_failed[role] = code
            what = {"source": f"the {self.source_spec.kind if self.source_spec else ''} source",
                    "worker": "the worker", "recorder": "the recorder"}[role]
            why = child.error or f"exit code {code}; see the terminal"
            self.notices[role] = ("error", f"{what.capitalize()} stopped ({why})")
            if code is not None and code != 0:
                self.failures.append(f"{what} stopped ({why})")

    def _starting_notice(self) -> None:
        child = self.processes.get("worker")
        waiting = child is not None and child.alive and self.state.health_arrival is None
        if waiting:
            self.notices["starting"] = ("info", "Starting the worker (loading the model) …")
        else:
            self.notices.pop("starting", None)

    def _stop_in_background(self, roles: list[str], streams: bool) -> None:
        """Stop the viewer's inlets (if `streams`) and the children named, in this order, off the GUI thread."""
        children = self.processes.take(roles)
        receiver = self.streams if streams else None
        replay = self.replay if streams else None
        label_outlet = None  # the viewer's label stream outlives its recordings (record --labels gui uses it)
        if streams:
            self.streams, self.replay = None, None
        if "recorder" in roles:
            self.open_label = None
        previous = self._stopper
        parts = {"outlet": label_outlet}

        def stop() -> None:
            if previous is not None:
                previous.join()
            for part in (replay, receiver):
                if part is not None:
                    part.stop()
            for child in children:
                stop_child(child)
            parts.clear()  # the label outlet goes last: the recorder's inlet on it is closed by now

        self._stopper = threading.Thread(target=stop, name="myosight-gui-stopper", daemon=True)
        self._stopper.start()

