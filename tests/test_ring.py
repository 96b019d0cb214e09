"""The live ring buffer: what it holds and returns, checked against a plain list of everything pushed."""

from __future__ import annotations

import numpy as np
import pytest

from myosight.realtime.ring import SampleRing


def _push_random(ring: SampleRing, rng: np.random.Generator, pushes: int, max_chunk: int):
    """Push chunks of random sizes (some larger than the ring) with increasing keys; return all pushed."""
    keys, values, next_key = [], [], 0
    for _ in range(pushes):
        n = int(rng.integers(0, max_chunk + 1))
        chunk_keys = next_key + np.arange(n)
        chunk_values = rng.standard_normal((n, *ring.shape)).astype(ring.values.dtype)
        ring.push(chunk_keys.astype(ring.keys.dtype), chunk_values)
        keys.append(chunk_keys)
        values.append(chunk_values)
        next_key += n
    return np.concatenate(keys), np.concatenate(values)


@pytest.mark.parametrize("capacity", [1, 7, 64])
def test_the_ring_holds_the_newest_samples_in_order(capacity: int) -> None:
    rng = np.random.default_rng(capacity)
    ring = SampleRing(capacity, (3,), np.float32, np.int64)
    keys_storage, values_storage = ring.keys, ring.values
    for _ in range(20):
        keys, values = _push_random(ring, rng, pushes=5, max_chunk=2 * capacity)
    keys, values = _push_random(ring, rng, pushes=40, max_chunk=capacity + 3)
    all_keys = np.arange(len(keys))
    held = min(len(keys), capacity)
    np.testing.assert_array_equal(ring.ordered_keys(), keys[-held:])
    assert len(ring) == held and ring.newest_key == keys[-1] and ring.oldest_key == keys[-held]
    # any key range, inside, across and beyond what is held
    for lo, hi in [(keys[-held], keys[-1] + 1), (keys[-1] - 2, keys[-1] + 5), (-5, keys[-held] + 1), (0, 0),
                   (keys[-1] + 1, keys[-1] + 9)]:
        got_keys, got_values = ring.between(lo, hi)
        expected = (keys >= max(lo, keys[-held])) & (keys < hi)
        np.testing.assert_array_equal(got_keys, keys[expected])
        np.testing.assert_array_equal(got_values, values[expected])
    got_keys, got_values = ring.since(keys[-1] - 1)
    np.testing.assert_array_equal(got_keys, keys[-min(2, held):])
    positions = np.arange(held)[::-1]
    np.testing.assert_array_equal(ring.take(positions), values[-held:][positions])
    assert ring.keys is keys_storage and ring.values is values_storage  # written in place, never reallocated
    assert len(all_keys) == len(keys)


def test_a_range_that_does_not_wrap_is_a_view_and_one_that_wraps_is_a_copy_of_just_that_range() -> None:
    ring = SampleRing(10, (2,), np.float64, np.float64)
    ring.push(np.arange(10.0), np.zeros((10, 2)))
    keys, values = ring.between(2.0, 6.0)
    assert np.shares_memory(values, ring.values) and len(values) == 4
    ring.push(np.arange(10.0, 14.0), np.ones((4, 2)))  # wraps: slots 0-3 now hold keys 10-13
    keys, values = ring.between(8.0, 12.0)
    np.testing.assert_array_equal(keys, [8.0, 9.0, 10.0, 11.0])
    np.testing.assert_array_equal(values[:, 0], [0, 0, 1, 1])
    assert not np.shares_memory(values, ring.values) and len(values) == 4


def test_empty_and_misshapen_input() -> None:
    ring = SampleRing(5, (8,))
    assert len(ring) == 0 and ring.newest_key is None and ring.oldest_key is None
    keys, values = ring.between(0.0, 10.0)
    assert keys.shape == (0,) and values.shape == (0, 8)
    ring.push(np.zeros(0), np.zeros((0, 8), np.float32))
    assert ring.count == 0
    with pytest.raises(ValueError, match="shape"):
        ring.push(np.zeros(2), np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError, match="capacity"):
        SampleRing(0)
