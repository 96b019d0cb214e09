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
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from myosight.interrupts import deferred_stops, raise_if_stopped

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


#: How much of an output's name its temporary name keeps: a name as long as the system allows must still leave
#: room for the temporary name's additions (255 bytes is the limit on most file systems).
_KEPT_NAME_BYTES = 100


def temporary_name(path: Path) -> Path:
    """The hidden name `path` is written under until it is complete: `.NAME.partial-PID.SUFFIX`, with NAME cut
    short enough that the temporary name is valid wherever the final one is."""
    stem = os.fsencode(path.stem)[:_KEPT_NAME_BYTES].decode(errors="ignore")
    return path.with_name(f".{stem}.partial-{os.getpid()}{path.suffix}")


@contextmanager
def replaced_when_done(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name beside `path`; on success it replaces `path` (os.replace), on failure it is removed.

    An interrupted or failing write then leaves the previous file as it was, never a truncated one. The
    temporary name keeps the suffix, so writers that pick a format by extension (PNG, HDF5) still work. A stop
    signal received during the write keeps the new file out even where a library swallowed its exception.
    """
    with replaced_together([path]) as (temporary,):
        yield temporary


@contextmanager
def replaced_together(paths: Sequence[str | Path],
                      before_replacing: Callable[[], None] | None = None) -> Iterator[list[Path]]:
    """`replaced_when_done` for files that belong together (a dataset's split files and its manifest; a CNN and
    the features it made): temporary names that replace `paths` only once every one of them is written, so a
    failed write (a full disk, an error) leaves every previous file as it was. The replacing itself runs with
    stop signals held back until it is done (`deferred_stops`), so that a stop never leaves half of the new files
    beside half of the old. `before_replacing` runs there too (removing files the new ones make stale)."""
    finals = [Path(path) for path in paths]
    temporaries = [temporary_name(path) for path in finals]
    try:
        yield temporaries
        raise_if_stopped()
        with deferred_stops():
            if before_replacing is not None:
                before_replacing()
            for temporary, final in zip(temporaries, finals, strict=True):
                os.replace(temporary, final)
    except OSError as error:
        named: dict[str | None, Path] = {str(t): final for t, final in zip(temporaries, finals, strict=True)}
        if len(finals) == 1:
            named[None] = finals[0]  # a write through an open handle names no file: it was this one
        if error.filename not in named:
            raise
        raise OSError(error.errno, error.strerror, str(named[error.filename])) from error  # the user's name, not ours
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


def write_bytes_replacing(path: str | Path, data: bytes) -> None:
    """Write a file whole, under a temporary name moved into place when complete (flushed to the disk first, so
    a power cut after the rename cannot leave an empty file under the final name)."""
    with replaced_when_done(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_replacing(path: str | Path, text: str) -> None:
    """Write a text file (UTF-8) under a temporary name and move it into place when complete."""
    with replaced_when_done(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def output_problem(path: str | Path) -> str | None:
    """Why a file or folder a command is about to write at `path` cannot be written, or None when it can: a name
    longer than the file system allows, a file where a folder must be, a read-only or unwritable folder. Asked
    before the work starts, so that a long computation does not end in an error about where to put it."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    existing = path
    while not _exists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    folder = existing if existing.is_dir() else existing.parent
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf; NTFS allows 255 characters
        longest = 255
    for part in path.relative_to(folder).parts:
        if len(os.fsencode(part)) > longest:
            return f"the name {part[:40]}... is {len(os.fsencode(part))} bytes long, the limit here is {longest}"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"cannot write in {folder} ({error.strerror or error})"
    return None


def _exists(path: Path) -> bool:
    """Path.exists, but False for a name the system cannot even look up (too long, say) instead of an error."""
    try:
        return path.exists()
    except OSError:
        return False


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
