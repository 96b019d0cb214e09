"""The kinds of source myosight starts, declared once each: one file per kind, found by this registry.

A *source kind* is what `--source KIND` names in `myosight run`, `gui` and `calibrate`, and what the viewer's
source picker lists: a replay of a recording, the synthetic person, a camera with Myo armbands, a camera with
EMG streams that another program publishes. Each kind's file declares, in one class, everything about it:

- its name, the title the viewer shows and whether it takes a file (`replay FILE`);
- the streams it publishes (`publishes`: the roles `emg`, `video`, `labels` of `myosight.capture.choice`);
- its own command-line options and the typed settings they fill (`options`, `settings_type`); the settings
  travel to the source's child process inside `SourceSpec.settings` and are decoded there strictly;
- whether a calibration can record from it (a live person) and whether that person follows prompts by
  themselves (the synthetic one);
- the arms it streams, known before it starts, and how it starts (`run`, in the source's child process).

The command line (`add_source_options`, `source_spec_from_args` in `myosight.capture.launch`), the viewer's
picker and `calibrate` read this registry; none of them names a kind. Adding a kind is adding a file here:
every module of this package is imported when the registry is first used, and each registers its class.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from myosight.arms import BOTH_ARMS, arm_layout
from myosight.capture.choice import StreamChoice
from myosight.errors import ConfigError
from myosight.processes import SourceSpec

#: The kind of a `SourceSpec` whose streams run elsewhere (other programs: `myosight myo`, `myosight camera`, a
#: replay started apart): nothing is started. Its settings are its streams by role (`external_spec`).
EXTERNAL_KIND = "lsl"


@dataclass(frozen=True)
class SourceOption:
    """One command-line option of a kind: its flags, the settings field it fills and argparse's keywords. Kinds
    that share an option share the object (`SPEED`, `CAMERA`, ...): the parser gets it once, its help saying
    which kinds read it."""

    flags: tuple[str, ...]
    setting: str
    argparse: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.flags[0].lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class PickerFields:
    """What the viewer's source picker holds when Start is pressed; each kind takes the fields it uses."""

    kind: str
    session: str | None = None
    camera: str = "0"
    left: str | None = None
    right: str | None = None
    speed: float = 1.0
    loop: bool = True


class SourceKind:
    """A kind of source. Subclasses set the class attributes and implement `run`; the rest has defaults."""

    name: ClassVar[str]
    title: ClassVar[str]  # the viewer's source picker
    file: ClassVar[str | None] = None  # the file `--source KIND FILE` takes (its settings field), if any
    publishes: ClassVar[tuple[str, ...]] = ("emg", "video")
    options: ClassVar[tuple[SourceOption, ...]] = ()
    settings_type: ClassVar[type]
    live_person: ClassVar[bool] = False  # a calibration can record from it
    follows_prompts: ClassVar[bool] = False  # the person performs the prompts by themselves (no screen needed)
    faster_than_real_time: ClassVar[bool] = False  # it takes --speed
    controllable: ClassVar[bool] = False  # play/pause/seek over a control address (its `control_address` setting)
    order: ClassVar[int] = 100  # where the picker and the help list it

    # -- settings -------------------------------------------------------------------------------------
    def settings(self, spec: SourceSpec) -> Any:
        """The spec's settings as this kind's typed settings; an unknown or missing field is a ConfigError."""
        try:
            return self.settings_type(**spec.settings)
        except TypeError as error:
            known = ", ".join(f.name for f in dataclasses.fields(self.settings_type))
            raise ConfigError(f"source {self.name}: bad settings {sorted(spec.settings)} ({error}); it takes "
                              f"{known}") from None

    def settings_from_args(self, args: argparse.Namespace, file: str | None) -> dict:
        """The settings the command line gives: the kind's options, and its file."""
        values = {option.setting: getattr(args, option.dest) for option in self.options
                  if hasattr(args, option.dest)}
        if self.file is not None:
            values[self.file] = file
        return values

    def settings_from_picker(self, picked: PickerFields) -> dict:
        """The settings the viewer's picker gives (only the fields this kind reads)."""
        return {}

    def arms_from_args(self, args: argparse.Namespace, model_arms: tuple[str, ...] | None) -> tuple[str, ...]:
        """The arms the person wears, for kinds that cannot tell by themselves: `--arms`, else the model's, else
        both."""
        return tuple(getattr(args, "arms", None) or model_arms or BOTH_ARMS)

    # -- before and while it runs ---------------------------------------------------------------------
    def check(self, spec: SourceSpec) -> None:
        """Refuse, before any process starts, what cannot work (a missing file, say)."""

    def arms(self, spec: SourceSpec) -> tuple[str, ...] | None:
        """The arms it will stream, known before it starts (None: only its streams will tell)."""
        return arm_layout(spec.arms)

    def video_missing(self, spec: SourceSpec) -> str | None:
        """Why it will stream no video, known before it starts (None: it will, or only its streams will tell)."""
        return None

    def describe(self, spec: SourceSpec) -> str:
        """The source in a message: 'the replay of FILE', 'the camera+myo source'."""
        return f"the {self.name} source"

    def with_prompts(self, spec: SourceSpec, *, labels: str, clock_origin: float, speed: float,
                     classes: tuple[str, ...], subject: str) -> SourceSpec:
        """The spec of this source during a calibration whose prompts are published under `labels`. A real person
        reads them on the screen: nothing changes; a kind that `follows_prompts` is told where they are."""
        return spec

    def run(self, spec: SourceSpec, stop: threading.Event, ready: Any) -> None:
        """Publish until `stop` (or until a recording ends); set `ready` once the streams are up. Runs in the
        source's child process."""
        raise NotImplementedError


_REGISTRY: dict[str, SourceKind] = {}
_loaded = False


def register(kind_class: type[SourceKind]) -> type[SourceKind]:
    """Class decorator: add a kind to the registry (one instance per kind)."""
    if kind_class.name in _REGISTRY or kind_class.name == EXTERNAL_KIND:
        raise ValueError(f"source kind {kind_class.name!r} is registered twice")
    _REGISTRY[kind_class.name] = kind_class()
    return kind_class


def _load() -> dict[str, SourceKind]:
    """Import every kind's module once (each registers itself)."""
    global _loaded
    if not _loaded:
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return _REGISTRY


def source_kinds() -> tuple[SourceKind, ...]:
    """Every kind, in the order the picker and the help list them (each file's `order`, then the name)."""
    return tuple(sorted(_load().values(), key=lambda kind: (kind.order, kind.name)))


def kind_usage(kinds: Iterable[SourceKind] | None = None) -> str:
    """'replay FILE | synthetic | ...', for help and errors."""
    return " | ".join(kind.name + (" FILE" if kind.file else "") for kind in (kinds or source_kinds()))


def source_kind(name: str | SourceSpec) -> SourceKind:
    """The kind a name (or a spec) names; ConfigError listing the kinds otherwise."""
    name = name.kind if isinstance(name, SourceSpec) else name
    kind = _load().get(name)
    if kind is None:
        raise ConfigError(f"unknown --source {name!r}: {kind_usage()}")
    return kind


def external_spec(streams: str | StreamChoice) -> SourceSpec:
    """The source of streams other programs publish: one source name, or a choice per role (its fields are the
    spec's settings); `spec_streams` gives the choice back to whoever opens the streams."""
    choice = StreamChoice.of(streams)
    return SourceSpec(kind=EXTERNAL_KIND, settings=choice.to_dict(), source=choice.single or "streams")


def spec_streams(spec: SourceSpec) -> StreamChoice:
    """The streams a source spec's consumers open by role: an external spec's choice, else every role of the
    source it starts."""
    if spec.kind == EXTERNAL_KIND and spec.settings:
        return StreamChoice(**spec.settings)
    return StreamChoice.of(spec.source)


def decoded(spec: SourceSpec) -> SourceSpec:
    """The spec with its settings decoded strictly by its kind and written out whole (every field, defaults
    included), as it travels to the source's process."""
    return dataclasses.replace(spec, settings=dataclasses.asdict(source_kind(spec).settings(spec)))


def with_settings(spec: SourceSpec, **changes: Any) -> SourceSpec:
    """The spec with some of its kind's settings changed (a field the kind does not have is a ConfigError)."""
    kind = source_kind(spec)
    try:
        settings = dataclasses.replace(kind.settings(spec), **changes)
    except TypeError as error:
        raise ConfigError(f"source {kind.name}: bad settings {sorted(changes)} ({error})") from None
    return dataclasses.replace(spec, settings=dataclasses.asdict(settings))


def source_options() -> list[tuple[SourceOption, list[str]]]:
    """Every kind's options once, each with the kinds that read it (the parser's help says which)."""
    found: dict[tuple[str, ...], tuple[SourceOption, list[str]]] = {}
    for kind in source_kinds():
        for option in kind.options:
            entry = found.setdefault(option.flags, (option, []))
            if entry[0] != option:
                raise ValueError(f"option {option.flags[0]} is declared differently by two source kinds")
            entry[1].append(kind.name)
    return list(found.values())
