"""Where myosight keeps downloaded and generated files that must never go into git, how it replaces output
files (under a temporary name first, so a failed run never leaves a half-written file), and how a recorder
makes sure a file can grow before it writes (on every system: see `reserve_room`)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "MYOSIGHT_CACHE_DIR"
#: Errors that mean "no room": a full disk, a file-size limit, a quota (names missing on a system are left out).
FULL_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EFBIG", "EDQUOT") if hasattr(errno, name))
_NO_FALLOCATE = frozenset(getattr(errno, name) for name in ("EOPNOTSUPP", "ENOTSUP", "ENOSYS", "EINVAL")
                          if hasattr(errno, name))


def cache_dir(override: str | Path | None = None) -> Path:
    """Return the cache directory: `override`, else $MYOSIGHT_CACHE_DIR, else $XDG_CACHE_HOME/myosight, else the
    system's place for caches: ~/.cache/myosight (Linux), %LOCALAPPDATA%\\myosight\\Cache (Windows),
    ~/Library/Caches/myosight (macOS)."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "myosight"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "myosight" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "myosight"
    return Path.home() / ".cache" / "myosight"


#: Characters Windows refuses in a file name (and / everywhere), control characters included.
_UNSAFE_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_RESERVED_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def file_name_problem(part: str) -> str | None:
    """Why `part` (a piece of a file name the user chose, such as a subject id) cannot be part of a file name on
    every system, or None when it can: the same recording must be possible on Linux, Windows and macOS."""
    if not part:
        return "it is empty"
    bad = sorted(set(_UNSAFE_NAME.findall(part)))
    if bad:
        return f"it contains {' '.join(repr(c) for c in bad)}, which Windows does not allow in file names"
    if part.rstrip(" .") != part:
        return "it ends in a dot or a space, which Windows drops from file names"
    if part.split(".")[0].upper() in _RESERVED_NAMES:
        return f"{part.split('.')[0]!r} is a reserved device name on Windows"
    return None


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


def reserve_room(path: str | Path, size: int) -> None:
    """Make sure the file `path` can grow to `size` bytes before anything is written, or raise OSError (ENOSPC,
    EFBIG, EDQUOT: see FULL_ERRNOS).

    Where the system has posix_fallocate (Linux, the BSDs) the file is extended to `size` with it: the file
    system itself says yes or no, a file-size limit included, and the room is then really there. Where it
    does not (Windows, macOS) or the file system does not support it, the disk's free space must cover the
    growth; a file-size limit (macOS's RLIMIT_FSIZE) then shows only when a write fails."""
    path = Path(path)
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        fd = os.open(path, os.O_WRONLY)
        try:
            fallocate(fd, 0, size)
            return
        except OSError as error:
            if error.errno not in _NO_FALLOCATE:
                raise
        finally:
            os.close(fd)
    # No second handle on the file here: on Windows the writer's own handle may not share write access.
    growth = size - path.stat().st_size
    if growth > 0 and shutil.disk_usage(path.parent).free < growth:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def sha256_file(path: str | Path) -> str:
    """The file's SHA-256 (hex), read in 1-MiB blocks: what says a model or weights file is the one recorded."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
