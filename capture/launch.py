"""A source as a child process: what `myosight run`, `demo`, `calibrate` and the desktop viewer start.

`source_process` is the child's target (see `myosight.processes`): it publishes the source a `SourceSpec`
names until it is told to stop or a replay ends. The command-line options that choose a source are built
here from the kinds' own declarations (`myosight.capture.kinds`), once, for every command that starts one;
nothing here names a kind.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from myosight.arms import describe_arms
from myosight.capture.kinds import decoded, kind_usage, source_kind, source_kinds, source_options
from myosight.capture.kinds._options import COMMON
from myosight.errors import ConfigError
from myosight.processes import SourceSpec


def source_process(fields: dict, stop: threading.Event, ready: Any) -> None:
    """Child target: publish the chosen source until `stop` (a replay ends by itself)."""
    spec = SourceSpec(**fields)
    source_kind(spec).run(spec, stop, ready)


# -- command-line options ----------------------------------------------------------------------------------


def add_source_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """`--source KIND [FILE]` and every kind's options, each once, its help naming the kinds that read it."""
    parser.add_argument("--source", nargs="+", required=required, metavar="KIND [FILE]", help=kind_usage())
    for option in COMMON:
        parser.add_argument(*option.flags, dest=option.dest, **option.argparse)
    for option, readers in source_options():
        keywords = dict(option.argparse)
        keywords["help"] = f"{keywords.get('help', '')} ({', '.join(readers)})".strip()
        parser.add_argument(*option.flags, dest=option.dest, **keywords)


def source_spec_from_args(args: argparse.Namespace, source_name: str, frame_size: int,
                          model_arms: tuple[str, ...] | None = None) -> SourceSpec:
    """The source the options name, checked (a bad file is one error line before anything starts); its frames are
    published at `frame_size` (the resolved geometry's). The arms a kind cannot tell by itself are `--arms`, else
    the model's (`model_arms`), else both (see `SourceKind.arms_from_args`)."""
    name, *rest = args.source
    kind = source_kind(name)
    if kind.file is not None and len(rest) != 1:
        raise ConfigError(f"--source {name} needs its file: --source {name} FILE")
    if kind.file is None and rest:
        raise ConfigError(f"--source {name} takes no file (got {' '.join(rest)})")
    spec = SourceSpec(kind=name, settings=kind.settings_from_args(args, rest[0] if rest else None),
                      video=not getattr(args, "emg_only", False), frame_size=frame_size, source=source_name,
                      arms=kind.arms_from_args(args, model_arms))
    spec = decoded(spec)
    kind.check(spec)
    return spec


def source_arms(spec: SourceSpec) -> tuple[str, ...] | None:
    """The armbands a source will stream, known before it starts (None: only its streams will tell)."""
    return source_kind(spec).arms(spec)


def require_model_video(reads_video: bool, spec: SourceSpec, *, model: str = "the model") -> None:
    """Refuse, in one line and before anything starts, a model that reads video on a source known to have none
    (a replayed session whose video file is missing), rather than a worker waiting for frames that never come."""
    why = source_kind(spec).video_missing(spec) if reads_video else None
    if why is not None:
        raise ConfigError(f"{model} reads video, but {why}: put the video back, or add --emg-only")


def require_model_arms(model_arms: tuple[str, ...], spec: SourceSpec, *, allow_missing_arm: bool,
                       model: str = "the model") -> None:
    """Refuse, in one line and before anything starts, a model whose arm the source will not stream (unless the
    user allowed it: zeros there). A source streaming an arm the model does not read is fine (it is not used)."""
    streamed = source_arms(spec)
    if not streamed:  # unknown until the streams appear, or none at all: the source itself says what is wrong
        return
    absent = [arm for arm in model_arms if arm not in streamed]
    if absent and not allow_missing_arm:
        raise ConfigError(
            f"{model} reads {describe_arms(model_arms)} but {source_kind(spec).describe(spec)} streams "
            f"{describe_arms(streamed)}: use a model of {describe_arms(streamed)} (myosight calibrate makes one), or "
            f"--allow-missing-arm to run this one with zeros in place of the {absent[0]} arm")


def spec_of_kind(kind: str, *, source: str, frame_size: int = 224, video: bool = True,
                 arms: tuple[str, ...] | None = None, **settings: Any) -> SourceSpec:
    """A spec built in code (the demo, the viewer's picker, tests): the kind's settings checked strictly."""
    return decoded(SourceSpec(kind=kind, settings=settings, video=video, frame_size=frame_size, source=source,
                              **({"arms": tuple(arms)} if arms is not None else {})))


__all__ = ["add_source_options", "require_model_arms", "source_arms", "source_kinds", "source_process",
           "source_spec_from_args", "spec_of_kind"]
