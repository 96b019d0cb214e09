"""The project's own exception types.

Every error a user can cause (a bad file, a stream with the wrong shape, a missing download) is raised as
a :class:`MyosightError` subclass whose message names the file, stream or field at fault, so the CLI can
print it without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class MyosightError(Exception):
    """Base class for errors caused by input, configuration or environment rather than by a bug."""


class SessionFormatError(MyosightError):
    """A session file (HDF5 or video) is unreadable or does not follow the ActionSense layout."""

    def __init__(self, path: str | Path, message: str, field: str | None = None) -> None:
        self.path = Path(path)
        self.field = field
        where = f"{self.path}" + (f" [{field}]" if field else "")
        super().__init__(f"{where}: {message}")


class MissingStreamError(SessionFormatError):
    """A stream the caller asked for (for example `myo-right/emg`) is not in the session file."""


class StreamError(MyosightError):
    """A live stream delivers data the pipeline cannot use (wrong channel count, bad rate, ...)."""


class ConfigError(MyosightError):
    """An option, a model bundle or a configuration value is invalid."""


def install_hint(extra: str) -> str:
    """The command that installs an optional extra. myosight is installed from its repository checkout (no
    package index has it), so the hint is an editable install of the checkout, which `make install` makes."""
    return f"pip install -e '.[{extra}]' in the myosight checkout"
