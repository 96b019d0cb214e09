"""Progress bars for long commands: one implementation, drawn with rich, the project's terminal library.

A bar is drawn on standard error only when that is a terminal: a log file or a pipe gets nothing (one
line per refresh would flood it), and the command's own summary says what was done. Bars may nest or run
side by side (a dataset bar while a training bar runs, a recording bar fed from another thread): they share
one live display, since a terminal has room for one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sized
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

T = TypeVar("T")

_lock = threading.Lock()
_display: Progress | None = None  # the live display the open bars share
_open = 0  # how many bars use it


def _acquire() -> Progress | None:
    """The shared display (started with the first bar), or None when standard error is not a terminal."""
    global _display, _open
    from rich import progress as bars
    from rich.console import Console

    with _lock:
        if _display is None:
            console = Console(stderr=True)
            if not console.is_terminal:
                return None
            _display = bars.Progress(
                bars.TextColumn("{task.description}"), bars.BarColumn(), bars.MofNCompleteColumn(),
                bars.TextColumn("{task.fields[unit]}"), bars.TimeElapsedColumn(), bars.TimeRemainingColumn(),
                bars.TextColumn("{task.fields[postfix]}"), console=console,
                redirect_stdout=False)  # standard output stays where it goes (a pipe, a file)
            _display.start()
        _open += 1
        return _display


def _release() -> None:
    global _display, _open
    with _lock:
        _open -= 1
        if _open == 0 and _display is not None:
            _display.stop()
            _display = None


class ProgressBar:
    """A progress bar over `total` units (`update` advances it), or over an iterable (`iterate`).

    `enabled=False` draws nothing (the counting still works, so callers need no second code path);
    `leave=False` removes the bar when it closes. Use it as a context manager, iterate to the end, or call
    `close()` (closing twice is harmless).
    """

    def __init__(self, total: float | None = None, *, desc: str = "", unit: str = "", enabled: bool = True,
                 leave: bool = True) -> None:
        self._leave = leave
        self._closed = False
        self.n: float = 0.0
        self._display = _acquire() if enabled else None
        self._task: TaskID | None = None
        if self._display is not None:
            self._task = self._display.add_task(desc, total=total or None, unit=unit, postfix="")

    def update(self, amount: float = 1) -> None:
        """Advance by `amount` units."""
        self.n += amount
        if self._display is not None and self._task is not None:
            self._display.update(self._task, advance=amount)

    def set_postfix(self, fields: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Show `name=value` pairs after the bar (a loss, rows written so far)."""
        if self._display is not None and self._task is not None:
            shown = {**(fields or {}), **more}
            self._display.update(self._task, postfix=" ".join(f"{key}={value}" for key, value in shown.items()))

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Yield `items`, advancing one unit after each; closes the bar at the end or on `break`."""
        try:
            for item in items:
                yield item
                self.update(1)
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._display is not None and self._task is not None:
            if not self._leave:
                self._display.remove_task(self._task)
            _release()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def track(items: Iterable[T], desc: str, *, unit: str = "", enabled: bool = True, leave: bool = True) -> Iterator[T]:
    """Yield `items` under a progress bar (its total is their length where they have one)."""
    total = len(items) if isinstance(items, Sized) else None
    yield from ProgressBar(total, desc=desc, unit=unit, enabled=enabled, leave=leave).iterate(items)
