"""Loopback LSL helpers for tests: find exactly the outlet a test made, pull with a bounded wait."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np
import pylsl


def inlet_for(outlet: pylsl.StreamOutlet, max_buflen: int = 10, timeout: float = 10.0) -> pylsl.StreamInlet:
    """A connected inlet on this very outlet (matched by uid, so other streams on the network never interfere)."""
    uid = outlet.get_info().uid()
    found = pylsl.resolve_bypred(f"uid='{uid}'", 1, timeout)
    assert found, f"outlet {outlet.get_info().name()} (uid {uid}) not resolved on loopback within {timeout} s"
    inlet = pylsl.StreamInlet(found[0], max_buflen=max_buflen)
    inlet.open_stream(timeout)
    # Fetch the full info now: liblsl's first pull otherwise fetches it with no time limit, and hangs if the
    # outlet is already gone by then (a source that published and closed before the test pulled).
    inlet.info(timeout)
    return inlet


def pull_at_least(inlet: pylsl.StreamInlet, count: int, timeout: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Pull chunks until `count` samples have arrived or `timeout` seconds pass; returns what came."""
    chunks: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        # min_samples=1: return as soon as something arrived (by default pylsl waits for max_samples or the
        # timeout); a small max_samples keeps the buffer pylsl allocates small for video frames.
        samples, times = inlet.pull_chunk(timeout=0.2, max_samples=min(count - got, 64), min_samples=1,
                                          as_numpy=True)
        if samples is not None and len(times):
            chunks.append(samples)
            stamps.append(np.asarray(times))
            got += len(times)
    if not chunks:
        return np.zeros((0, inlet.channel_count)), np.zeros(0)
    return np.concatenate(chunks), np.concatenate(stamps)


def unique_source(prefix: str = "test") -> str:
    """A source name no other test uses, so parallel or leftover streams never collide."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def wait_for(condition: Callable[[], object], timeout_s: float, step_s: float = 0.02) -> bool:
    """Poll a condition with a bounded wait (no fixed sleeps as synchronisation)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return bool(condition())
