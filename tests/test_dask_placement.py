"""Where a Dask fit's chunks live and where its tasks go (kgpu/_dask_placement.py): pure functions."""

from __future__ import annotations

import pytest

from kgpu._dask_placement import balanced_placement, chunk_groups

A, B, C = "tcp://a:1", "tcp://b:1", "tcp://c:1"


def _rows_per_worker(placement, sizes):
    rows = {}
    for worker, size in zip(placement, sizes):
        rows[worker] = rows.get(worker, 0) + size
    return rows


def test_a_balanced_input_stays_where_it_is():
    holders = [[A], [B], [B], [A], [A], [B], [A], [B]]
    assert balanced_placement(holders, [100] * 8, {A: 1, B: 1}) == [h[0] for h in holders]


def test_only_the_excess_chunks_of_a_crowded_worker_move():
    # Five of eight chunks on A: the last of them goes to B, the rest stay.
    holders = [[A], [A], [B], [A], [A], [B], [A], [B]]
    placement = balanced_placement(holders, [100] * 8, {A: 1, B: 1})
    assert placement == [A, A, B, A, A, B, B, B]
    assert _rows_per_worker(placement, [100] * 8) == {A: 400, B: 400}


def test_the_share_follows_the_thread_counts_and_the_chunk_sizes():
    sizes = [300, 100, 100, 100, 100, 100, 100, 100]  # 1,000 rows
    placement = balanced_placement([[]] * 8, sizes, {A: 3, B: 1, C: 1})
    rows = _rows_per_worker(placement, sizes)
    assert rows == {A: 600, B: 200, C: 200}


def test_an_input_not_in_memory_is_spread_evenly_in_row_order():
    assert balanced_placement([[]] * 6, [10] * 6, {B: 1, A: 1}) == [A, B, A, B, A, B]


def test_holders_that_left_the_cluster_are_ignored():
    placement = balanced_placement([[C], [C], [A], [A]], [10] * 4, {A: 1, B: 1})
    assert _rows_per_worker(placement, [10] * 4) == {A: 20, B: 20}
    assert C not in placement


def test_a_cluster_without_workers_is_reported():
    with pytest.raises(ValueError, match="no workers"):
        balanced_placement([[A]], [10], {})


def test_one_task_per_worker_thread_in_order_of_the_first_chunk():
    holders = [[B], [A], [A], [B], [A], [B]]
    groups = chunk_groups(holders, [10] * 6, {A: 1, B: 1})
    assert groups == [(B, [0, 3, 5]), (A, [1, 2, 4])]
    # Two threads on A: its chunks in two runs.
    groups = chunk_groups(holders, [10] * 6, {A: 2, B: 1})
    assert groups == [(B, [0, 3, 5]), (A, [1]), (A, [2, 4])]


def test_a_chunk_held_twice_goes_to_the_less_loaded_worker_and_a_lost_one_anywhere():
    holders = [[A], [A, B], [], [B]]
    assert chunk_groups(holders, [10] * 4, {A: 1, B: 1}) == [(A, [0]), (B, [1, 3]), (None, [2])]
