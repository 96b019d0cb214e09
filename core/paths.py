"""Where myosight keeps downloaded and generated files that must never go into git, and how it replaces
output files (under a temporary name first, so a failed run never leaves a half-written file)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "MYOSIGHT_CACHE_DIR"


def cache_dir(override: str | Path | None = None) -> Path:
    """Return the cache directory: `override`, else $MYOSIGHT_CACHE_DIR, else $XDG_CACHE_HOME/myosight."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "myosight"


@contextmanager
def replaced_when_done(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name beside `path`; on success it replaces `path` (os.replace), on failure it is removed.

    An interrupted or failing write then leaves the previous file as it was, never a truncated one. The
    temporary name keeps the suffix, so writers that pick a format by extension (PNG, HDF5) still work.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_replacing(path: str | Path, text: str) -> None:
    """Write a text file (UTF-8) under a temporary name and move it into place when complete."""
    with replaced_when_done(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def not_a_file_reason(path: str | Path) -> str:
    """Why `path` cannot be read as a file, in words that are true: a directory is not "missing"."""
    path = Path(path)
    if path.is_dir():
        return "is a directory, not a file"
    if path.exists():
        return "is not a regular file"
    return "no such file"
