"""Which streams a consumer takes, by role: the choice itself, and the command-line options that make it.

A myosight source publishes up to four streams, one per **role** (EMG of each arm, video, labels), each with the
source id `myosight-<source>-<role>` (capture/streams.py). A `StreamChoice` says, per role, which source gives it:
a name, or None for "whichever myosight source streams it". Finding the streams is capture/discovery.py's; this
module imports no LSL, so that every command's options can use it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, fields

from myosight.errors import ConfigError

#: The LSL query for every stream of every myosight source.
ANY_MYOSIGHT_STREAM = "starts-with(source_id,'myosight-')"
ROLES = ("emg-left", "emg-right", "video", "labels")
SOURCE_ID_PREFIX = "myosight-"


def parse_source_id(source_id: str) -> tuple[str, str] | None:
    """(source, role) of a myosight stream's source id, or None for another program's stream."""
    if not source_id.startswith(SOURCE_ID_PREFIX):
        return None
    rest = source_id[len(SOURCE_ID_PREFIX):]
    for role in ROLES:
        if rest.endswith(f"-{role}") and len(rest) > len(role) + 1:
            return rest[: -len(role) - 1], role
    return None


def check_source_name(name: str, option: str = "--source") -> str:
    """A source name as typed (it goes into LSL queries and source ids): ConfigError for an empty one or quotes."""
    if not name or not name.strip() or any(c in name for c in "'\"") or name != name.strip():
        raise ConfigError(f"{option} {name!r}: a source name is a non-empty word without quotes or spaces around it")
    return name


@dataclass(frozen=True)
class StreamChoice:
    """Per role, the source that gives it (None: any myosight source that streams it, if only one does)."""

    emg_left: str | None = None
    emg_right: str | None = None
    video: str | None = None
    labels: str | None = None

    @classmethod
    def of(cls, source: str | StreamChoice | None) -> StreamChoice:
        """Every role from one source (None: every role found on the network); a choice stays as it is."""
        if isinstance(source, StreamChoice):
            return source
        return cls(source, source, source, source)

    @classmethod
    def from_options(cls, source: str | None = None, *, emg: str | None = None, emg_left: str | None = None,
                     emg_right: str | None = None, video: str | None = None,
                     labels: str | None = None) -> StreamChoice:
        """The choice of a command's options: `--source` for every role, `--emg` for both arms, and each role's
        own option over both (`--emg-left` over `--emg` over `--source`)."""
        typed = {"--source": source, "--emg": emg, "--emg-left": emg_left, "--emg-right": emg_right,
                 "--video": video, "--labels": labels}
        for option, name in typed.items():
            if name is not None:
                check_source_name(name, option)
        arms = emg if emg is not None else source
        return cls(emg_left if emg_left is not None else arms, emg_right if emg_right is not None else arms,
                   video if video is not None else source, labels if labels is not None else source)

    def source_of(self, role: str) -> str | None:
        return getattr(self, role.replace("-", "_"))

    @property
    def single(self) -> str | None:
        """The one source every role comes from, when there is one."""
        names = {self.source_of(role) for role in ROLES}
        return names.pop() if len(names) == 1 else None

    @property
    def explicit(self) -> bool:
        """Whether every role names its source (the streams can be asked for by source id)."""
        return all(self.source_of(role) is not None for role in ROLES)

    def source_id(self, role: str) -> str | None:
        source = self.source_of(role)
        return None if source is None else f"{SOURCE_ID_PREFIX}{source}-{role}"

    def predicate(self) -> str:
        """The LSL query of the streams this choice can take."""
        if not self.explicit:
            return ANY_MYOSIGHT_STREAM
        return " or ".join(f"source_id='{self.source_id(role)}'" for role in ROLES)

    def describe(self, roles: Sequence[str] = ROLES) -> str:
        """'source 'x'' for one source, else role by role ('any' where the network decides)."""
        single = self.single
        if single is not None:
            return f"source '{single}'"
        if not any(self.source_of(role) for role in roles):
            return "any myosight source"
        return ", ".join(f"{role} from {repr(self.source_of(role)) if self.source_of(role) else 'any source'}"
                         for role in roles)

    def to_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- the options of a consumer ------------------------------------------------------------------------------
#: How long a consumer waits for its streams by default (a source started at the same moment, on a loaded
#: machine, may take several seconds to announce itself).
DEFAULT_WAIT_S = 10.0


def add_choice_options(parser: argparse.ArgumentParser, *, what: str = "take", wait: bool = True) -> None:
    """The options that choose a consumer's streams by role (see the module text), and how long to wait."""
    from myosight import options

    parser.add_argument("--source", metavar="NAME",
                        help=f"{what} every stream of this source (its streams are myosight-NAME-*); without it and "
                        "the options below, whichever myosight source streams each role (refused, with the list, "
                        "where several do: `myosight streams` lists them)")
    parser.add_argument("--emg", metavar="SOURCE", help="the source of both arms' EMG (e.g. myo, from `myosight myo`)")
    parser.add_argument("--emg-left", metavar="SOURCE", help="the source of the left arm's EMG")
    parser.add_argument("--emg-right", metavar="SOURCE", help="the source of the right arm's EMG")
    parser.add_argument("--video", metavar="SOURCE", help="the source of the video (e.g. camera, from `myosight "
                        "camera`)")
    parser.add_argument("--labels", metavar="SOURCE", help="the source of the label markers")
    if wait:
        parser.add_argument("--wait", type=options.seconds, default=DEFAULT_WAIT_S, metavar="SECONDS",
                            help=f"how long to wait for the streams to appear (default {DEFAULT_WAIT_S:g})")


def choice_from_args(args: argparse.Namespace) -> StreamChoice:
    """The StreamChoice of a command's `add_choice_options`."""
    return StreamChoice.from_options(args.source, emg=args.emg, emg_left=args.emg_left, emg_right=args.emg_right,
                                     video=args.video, labels=args.labels)


# -- `--streams`: a command that starts sources may take other programs' streams instead -----------------------
#: `--streams` given without a source name: each role from whichever myosight source streams it.
ANY_SOURCE = ""
_ROLE_OPTIONS = {"--emg": "emg_streams", "--emg-left": "emg_left_stream", "--emg-right": "emg_right_stream",
                 "--video": "video_stream"}


def add_streams_options(parser: argparse.ArgumentParser, what: str) -> None:
    """`--streams [SOURCE]` and its role options, for a command whose `--source` starts a source: `what` says
    what the streams are for. `streams_from_args` reads them."""
    parser.add_argument("--streams", metavar="SOURCE", nargs="?", const=ANY_SOURCE,
                        help=f"{what} the LSL streams other programs publish (`myosight myo`, `myosight camera`, a "
                        "replay started apart): this source name's, or with no name whichever myosight source "
                        "streams each role (`myosight streams` lists them)")
    parser.add_argument("--emg", metavar="SOURCE", dest="emg_streams", help="with --streams: both arms' EMG source")
    parser.add_argument("--emg-left", metavar="SOURCE", dest="emg_left_stream", help="with --streams: the left arm's")
    parser.add_argument("--emg-right", metavar="SOURCE", dest="emg_right_stream",
                        help="with --streams: the right arm's")
    parser.add_argument("--video", metavar="SOURCE", dest="video_stream", help="with --streams: the video's source")


def streams_from_args(args: argparse.Namespace) -> StreamChoice | None:
    """The choice of `add_streams_options`, None without `--streams` (ConfigError for a role option alone)."""
    given = [option for option, dest in _ROLE_OPTIONS.items() if getattr(args, dest) is not None]
    if args.streams is None:
        if given:
            raise ConfigError(f"{', '.join(given)}: these choose the streams of --streams; add --streams")
        return None
    source = check_source_name(args.streams, "--streams") if args.streams != ANY_SOURCE else None
    return StreamChoice.from_options(source, emg=args.emg_streams, emg_left=args.emg_left_stream,
                                     emg_right=args.emg_right_stream, video=args.video_stream)
