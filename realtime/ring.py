"""The ring buffer of the live path: preallocated, written in place, read by key.

A live stream keeps only its last seconds: sEMG envelopes in the worker (keyed by their index on the
sample grid), camera frames in the worker (keyed by timestamp), and raw sEMG in the viewer. All of them
are one `SampleRing`: keys and values live in arrays allocated once; a push copies the new samples into
the slots after the newest (wrapping around) and nothing else, so its cost depends on what arrives, never
on how much is kept. Reads return the samples of a key range oldest first: views of the storage when the
range does not wrap, a copy of just that range when it does. A view is valid until the next push: a reader
that keeps samples longer (the viewer's snapshot) copies them.

Keys must not decrease from one push to the next (timestamps and grid indices do not); a read relies on
it to find a range by binary search.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    """The last `capacity` samples of one stream: keys (capacity,) and values (capacity, *shape)."""

    def __init__(self, capacity: int, shape: tuple[int, ...] = (), dtype: np.dtype | type = np.float32,
                 key_dtype: np.dtype | type = np.float64) -> None:
        if capacity < 1:
            raise ValueError(f"a ring needs room for at least one sample, got capacity {capacity}")
        self.capacity = int(capacity)
        self.shape = tuple(shape)
        # Written once here so that the memory is committed now (np.zeros would leave the pages to be faulted
        # in by the first pushes, a cost on the hot path and a resident size that grows for a while).
        self.keys = np.empty(self.capacity, key_dtype)
        self.values = np.empty((self.capacity, *self.shape), dtype)
        self.keys.fill(0)
        self.values.fill(0)
        self.count = 0  # samples ever pushed

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.values.nbytes

    # -- writing -----------------------------------------------------------------------------------------
    def push(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Append samples (keys not before the newest held), overwriting the oldest when full."""
        n = len(keys)
        if n == 0:
            return
        if values.shape[1:] != self.shape:
            raise ValueError(f"samples of shape {values.shape[1:]} pushed into a ring of {self.shape}")
        if n > self.capacity:  # only the newest `capacity` can be kept
            keys, values = keys[-self.capacity:], values[-self.capacity:]
            self.count += n - self.capacity
            n = self.capacity
        start = self.count % self.capacity
        first = min(n, self.capacity - start)
        self.keys[start:start + first] = keys[:first]
        self.values[start:start + first] = values[:first]
        if first < n:
            self.keys[:n - first] = keys[first:]
            self.values[:n - first] = values[first:]
        self.count += n

    def clear(self) -> None:
        self.count = 0

    # -- reading -----------------------------------------------------------------------------------------
    @property
    def newest_key(self) -> float | None:
        """The key of the newest sample (None when empty)."""
        return self.keys[(self.count - 1) % self.capacity].item() if self.count else None

    @property
    def oldest_key(self) -> float | None:
        return self.keys[self._slot(0)].item() if self.count else None

    def ordered_keys(self) -> np.ndarray:
        """The keys held, oldest first (a copy; keys are small)."""
        return self._ordered(self.keys, 0, len(self))

    def between(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """(keys, values) of the samples with lo <= key < hi, oldest first."""
        first, stop = self._search(lo), self._search(hi)
        return self._ordered(self.keys, first, stop), self._ordered(self.values, first, stop)

    def since(self, lo: float) -> tuple[np.ndarray, np.ndarray]:
        """(keys, values) of the samples with key >= lo, oldest first."""
        first = self._search(lo)
        return self._ordered(self.keys, first, len(self)), self._ordered(self.values, first, len(self))

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Values at positions counted from the oldest held sample (0 .. len - 1), as a new array."""
        return self.values[(np.asarray(positions) + self.count - len(self)) % self.capacity]

    # -- internals ---------------------------------------------------------------------------------------
    def _slot(self, position: int) -> int:
        """Storage index of the sample at `position` from the oldest held."""
        return (self.count - len(self) + position) % self.capacity

    def _search(self, key: float) -> int:
        """Position (from the oldest) of the first sample whose key is >= `key`."""
        held = len(self)
        start = self._slot(0)
        tail = min(held, self.capacity - start)  # samples from `start` to the end of the storage
        position = int(np.searchsorted(self.keys[start:start + tail], key, side="left"))
        if position < tail or tail == held:
            return position
        return tail + int(np.searchsorted(self.keys[:held - tail], key, side="left"))

    def _ordered(self, array: np.ndarray, first: int, stop: int) -> np.ndarray:
        """array[positions first .. stop - 1], a view when they do not wrap around the storage's end."""
        if stop <= first:
            return array[:0]
        lo, hi = self._slot(first), self._slot(stop - 1) + 1
        if lo < hi:
            return array[lo:hi]
        return np.concatenate([array[lo:], array[:hi]])
