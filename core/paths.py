"""Where myosight keeps downloaded and generated files that must never go into git."""

from __future__ import annotations

import os
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
