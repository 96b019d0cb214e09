"""The one place the viewer imports Qt from: PySide6, pyqtgraph's settings, and a reference-count guard.

PySide6 6.12.0 on Python 3.11 returns `None` (and `True`) from many C++ methods without taking a reference:
each call lowers the singleton's count by one, and after a few thousand calls Python aborts with
"deallocating None". Python 3.12 made these singletons immortal, so the bug is harmless there. The guard
measures the leak once at import and, where there is one, raises the singletons' counts far out of reach
(as 3.12 does), so the viewer can run for days. It changes nothing where the bindings are correct.
"""

from __future__ import annotations

import ctypes
import logging
import sys

import pyqtgraph as pg
import PySide6
from PySide6 import QtCore, QtGui, QtWidgets

log = logging.getLogger(__name__)

__all__ = ["QtCore", "QtGui", "QtWidgets", "application", "guard_singleton_refcounts", "pg"]

_HEADROOM = 1 << 40  # a decrement per Qt call at a million calls per second lasts twelve days


def _leaks_none(calls: int = 64) -> bool:
    probe = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - calls // 2


def guard_singleton_refcounts() -> bool:
    """Make None, True and False unreachable by the bindings' missing references; True if it was needed."""
    if sys.version_info >= (3, 12) or not _leaks_none():
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += _HEADROOM
    log.info("PySide6 %s loses references to None on Python %d.%d; guarded", PySide6.__version__,
             *sys.version_info[:2])
    return True


def application(argv: list[str]) -> QtWidgets.QApplication:
    """The process's QApplication: the one already running (a test's, a host program's), else a new one."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        return QtWidgets.QApplication(argv)
    if not isinstance(app, QtWidgets.QApplication):
        raise RuntimeError("a Qt application without widgets is already running in this process")
    return app


GUARDED = guard_singleton_refcounts()
pg.setConfigOptions(antialias=False, imageAxisOrder="row-major", background="#101418", foreground="#c8d0d8")
