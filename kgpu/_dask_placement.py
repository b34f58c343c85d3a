"""Where a fit's chunks live on a ``dask.distributed`` cluster, and where its tasks go.

A Lloyd pass on a cluster is one task per worker thread, run on the worker
that holds its chunks (:mod:`kgpu._dask_lloyd`): no chunk moves, and the
scheduler and the client handle a few tasks per iteration instead of one per
chunk. The pass then takes as long as its busiest worker, so the working
copy of an input persisted on the workers is persisted balanced: about the
same number of rows per worker thread (:func:`balanced_placement`), each
chunk kept where its input already is whenever that keeps the balance, so
that few chunks cross the network, and only once per fit. (A lazy input's
chunks are read and copied wherever the scheduler runs them.) :func:`chunk_groups` turns the chunks' locations into
the tasks of a pass.

Both are pure functions of the locations, the chunk sizes and the workers'
thread counts (sorted addresses break ties), so the same cluster gives the
same plan.
"""

from __future__ import annotations

from typing import Sequence


def balanced_placement(
    holders: Sequence[Sequence[str]], sizes: Sequence[int], threads: dict[str, int]
) -> list[str]:
    """A worker for each chunk, about the same rows per worker thread.

    Parameters
    ----------
    holders : sequence of sequences of str
        For each chunk, the workers that hold its input (empty when the input
        is not in a worker's memory).
    sizes : sequence of int
        Rows of each chunk.
    threads : dict of str to int
        The cluster's workers and their thread counts.

    Returns
    -------
    list of str
        A worker address per chunk. A chunk stays on a worker holding its
        input while the middle of the chunk falls within that worker's share
        of the rows (its share of the threads); the other chunks go, in row
        order, to the worker least loaded relative to its share.
    """
    workers = sorted(threads)
    if not workers:
        raise ValueError("The cluster has no workers.")
    total_rows = max(1, sum(int(size) for size in sizes))
    total_threads = sum(max(1, int(threads[worker])) for worker in workers)
    share = {worker: total_rows * max(1, int(threads[worker])) / total_threads for worker in workers}
    load = dict.fromkeys(workers, 0)
    placement: list[str | None] = [None] * len(sizes)
    for index, size in enumerate(sizes):
        for worker in sorted((h for h in holders[index] if h in load), key=lambda h: (load[h], h)):
            if load[worker] + size / 2 <= share[worker]:
                placement[index] = worker
                load[worker] += int(size)
                break
    for index, size in enumerate(sizes):
        if placement[index] is None:
            worker = min(workers, key=lambda w: ((load[w] + size) / share[w], w))
            placement[index] = worker
            load[worker] += int(size)
    return placement  # type: ignore[return-value]


def chunk_groups(
    holders: Sequence[Sequence[str]], sizes: Sequence[int], threads: dict[str, int]
) -> list[tuple[str | None, list[int]]]:
    """The tasks of a pass: ``(worker, chunk indices)``, one per worker thread holding chunks.

    A chunk held by several workers goes to the one with the fewest rows so
    far; a worker's chunks are cut into as many runs (in row order) as it has
    threads. Chunks held by no worker (lost with a worker, being computed
    again) form one group with worker ``None``: a task that may run anywhere.
    Groups are returned in the order of their first chunk.
    """
    load: dict[str, int] = {}
    by_worker: dict[str | None, list[int]] = {}
    for index, size in enumerate(sizes):
        candidates = sorted(holders[index])
        worker = min(candidates, key=lambda address: (load.get(address, 0), address)) if candidates else None
        if worker is not None:
            load[worker] = load.get(worker, 0) + int(size)
        by_worker.setdefault(worker, []).append(index)
    groups: list[tuple[str | None, list[int]]] = []
    for worker, ids in by_worker.items():
        n_runs = 1 if worker is None else min(len(ids), max(1, int(threads.get(worker, 1))))
        for run in range(n_runs):
            # Runs of about equal length, in row order.
            part = ids[len(ids) * run // n_runs : len(ids) * (run + 1) // n_runs]
            groups.append((worker, part))
    return sorted(groups, key=lambda group: group[1][0])
