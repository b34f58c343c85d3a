"""Dask arrays (kgpu/_dask.py): KMeans as map-reduce over row chunks on a dask.distributed cluster.

One ``LocalCluster`` (two worker processes, one thread each) serves the whole
module. Results must equal the in-memory NumPy fit from the same initial
centers (or the same seed): SPEC §3 parity, 1e-10 in float64.
"""

from __future__ import annotations

import functools
import os
import signal
import threading

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import array_api_compat.numpy as NP

from kgpu import KMeans, KMedians, MiniBatchKMeans
from kgpu._backend import cuda_available
from kgpu._dask import ChunkContext, DaskCandidateRows, DaskRows, initial_centers
from kgpu._init_parallel import BlockRows, kmeans_parallel_candidates, parallel_candidates, parallel_centers

from ._helpers import assert_close, assert_equal, to_numpy


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    with distributed.Client(cluster) as dask_client:
        yield dask_client
    cluster.close()


@functools.lru_cache(maxsize=None)
def _blobs(n_samples=2000, n_features=4, centers=5, seed=0):
    X, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=2.5, random_state=seed)
    X.setflags(write=False)
    return X


def _chunked(X, rows=300):
    return da.from_array(np.array(X), chunks=(rows, X.shape[1]))


def _assert_same_fit(result, expected, rtol=1e-10):
    assert_equal(result.labels_.compute(), expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=rtol)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=rtol, atol=rtol)
    assert result.n_iter_ == expected.n_iter_


# ------------------------------------------------------------ same answers


def test_fit_equals_in_memory_fit_from_the_same_centers(client):
    X = np.array(_blobs())
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    init = X[[0, 400, 800, 1200, 1600]]
    expected = KMeans(5, init=init, tol=0.0).fit(X, sample_weight=weights)
    result = KMeans(5, init=init, tol=0.0).fit(_chunked(X), sample_weight=da.from_array(weights, chunks=500))
    assert expected.n_iter_ > 3  # enough iterations to compare
    _assert_same_fit(result, expected)
    assert isinstance(result.labels_, da.Array)  # lazy
    assert isinstance(result.cluster_centers_, np.ndarray)
    assert result.backend_ == "dask"
    # predict / transform stay lazy; score is a number.
    X_dask = _chunked(X, rows=700)
    labels = result.predict(X_dask)
    distances = result.transform(X_dask)
    assert isinstance(labels, da.Array) and isinstance(distances, da.Array)
    assert_equal(labels.compute(), expected.predict(X))
    assert_close(distances.compute(), expected.transform(X), rtol=1e-10, atol=1e-10)
    assert result.score(X_dask, sample_weight=weights) == pytest.approx(expected.score(X, sample_weight=weights), rel=1e-10)


def test_kmeans_parallel_gives_the_same_candidates_and_centers_as_in_memory(client):
    X = np.array(_blobs(n_samples=3000, centers=8, seed=2))
    weights = np.ones(X.shape[0])
    rows = DaskRows(_chunked(X, rows=450), None, ChunkContext(None, None, None, None))
    ids, candidates = parallel_candidates(DaskCandidateRows(rows), 8, np.random.RandomState(3))
    assert_equal(ids, kmeans_parallel_candidates(X, 8, weights, np.random.RandomState(3), xp=NP))
    assert_equal(candidates, X[ids])

    expected = KMeans(8, init="k-means||", random_state=3).fit(X)
    result = KMeans(8, init="k-means||", random_state=3).fit(_chunked(X, rows=450))
    _assert_same_fit(result, expected)


def test_random_init_with_several_runs_equals_in_memory(client):
    X = np.array(_blobs())
    expected = KMeans(5, init="random", n_init=3, random_state=5).fit(X)
    result = KMeans(5, init="random", n_init=3, random_state=5).fit(_chunked(X))
    _assert_same_fit(result, expected)


def test_kmeans_plusplus_on_dask_seeds_from_the_kmeans_parallel_candidates():
    # Documented: on Dask, init="k-means++" is weighted greedy k-means++ on the
    # k-means|| candidates (no Lloyd refinement). Dask's local threads suffice here.
    X = np.array(_blobs())
    rows = DaskRows(_chunked(X), None, ChunkContext(None, None, None, None))
    centers = initial_centers("k-means++", rows, None, 5, np.random.RandomState(0))
    expected = parallel_centers(BlockRows(X, np.ones(X.shape[0]), xp=NP), 5, np.random.RandomState(0), reduce_max_iter=0)
    assert_close(centers, expected, rtol=1e-12, atol=1e-12)
    km = KMeans(5, init="k-means++", random_state=0).fit(_chunked(X))
    assert np.all(np.isfinite(km.cluster_centers_))


def test_empty_clusters_are_reseeded_as_in_memory(client):
    X = np.array(_blobs())
    # Two centers far from every point: both clusters are empty at once.
    init = np.vstack([X[[0, 1, 2]], np.full((2, 4), 100.0)])
    init[4] = 200.0
    weights = np.ones(X.shape[0])
    weights[::7] = 0.0  # zero-weight rows may never re-seed a cluster
    expected = KMeans(5, init=init, tol=0.0).fit(X, sample_weight=weights)
    result = KMeans(5, init=init, tol=0.0).fit(_chunked(X, rows=250), sample_weight=weights)
    _assert_same_fit(result, expected)
    assert len(np.unique(result.labels_.compute())) == 5


def test_float32_stays_float32(client):
    X = np.array(_blobs(), dtype=np.float32)
    init = X[[0, 400, 800, 1200, 1600]]
    expected = KMeans(5, init=init, tol=0.0).fit(X)
    result = KMeans(5, init=init, tol=0.0).fit(_chunked(X))
    assert result.cluster_centers_.dtype == np.float32
    assert result.transform(_chunked(X)).dtype == np.float32
    _assert_same_fit(result, expected, rtol=1e-5)


def test_minibatch_fit_feeds_the_chunks_to_partial_fit_in_order(client):
    X = np.array(_blobs())
    result = MiniBatchKMeans(5, random_state=0).fit(_chunked(X, rows=500))
    reference = MiniBatchKMeans(5, random_state=0)
    for start in range(0, X.shape[0], 500):
        reference.partial_fit(X[start : start + 500])
    assert result.n_steps_ == 4
    assert_close(result.cluster_centers_, reference.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert isinstance(result.labels_, da.Array)
    assert_equal(result.labels_.compute(), reference.predict(X))
    assert result.inertia_ == pytest.approx(-reference.score(X), rel=1e-10)
    # partial_fit of a Dask array continues from there, one step per chunk.
    result.partial_fit(_chunked(X[:1000], rows=500))
    assert result.n_steps_ == 6


def test_far_from_the_origin_and_at_extreme_scales_on_a_cluster_as_in_memory(client):
    # The fit's working frame (origin and power-of-two scale) comes from the
    # first pass over the chunks; the Lloyd passes, labels_ and predict use it.
    X, y = make_blobs(n_samples=600, n_features=4, centers=3, cluster_std=1.0, center_box=(-20, 20), random_state=0)
    for data in ((X + 1e5).astype(np.float32), X * 1e300, X * 1e-300, (X * 1e30).astype(np.float32)):
        init = data[[0, 200, 400]]
        expected = KMeans(3, init=init, tol=0.0).fit(data)
        result = KMeans(3, init=init, tol=0.0).fit(_chunked(data, rows=150))
        labels = result.labels_.compute()
        assert_equal(labels, expected.labels_)
        assert adjusted_rand_score(y, labels) == 1.0
        assert result.n_iter_ == expected.n_iter_
        rtol = 1e-5 if data.dtype == np.float32 else 1e-10
        assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=rtol, atol=0.0)
        assert result.inertia_ == pytest.approx(expected.inertia_, rel=rtol)
        assert_equal(result.predict(_chunked(data, rows=250)).compute(), labels)


def test_more_chunks_than_the_fan_in_are_reduced_in_a_tree_as_in_memory(client):
    # 23 chunks: each pass reduces in two levels (the next pass takes the top
    # three partial sums), converged or stopped by max_iter.
    X = np.array(_blobs())
    init = X[[0, 400, 800, 1200, 1600]]
    for max_iter in (300, 2):
        expected = KMeans(5, init=init, tol=0.0, max_iter=max_iter).fit(X)
        result = KMeans(5, init=init, tol=0.0, max_iter=max_iter).fit(_chunked(X, rows=90))
        _assert_same_fit(result, expected)


def test_one_task_per_worker_per_iteration_on_the_worker_holding_its_chunks(client):
    # max_iter stops the fit before it converges. The working copy is
    # persisted balanced (4 chunks per worker), then every pass is one task
    # per worker (one thread each) that runs that worker's chunks; the next
    # pass takes the means itself (no task of its own), and the pass for the
    # final inertia is the only one after the last iteration.
    X = np.array(_blobs(n_samples=4000, centers=20, seed=4))
    init = X[:20]
    expected = KMeans(20, init=init, max_iter=3, tol=0.0).fit(X)
    X_dask = client.persist(_chunked(X, rows=500))  # 8 chunks
    distributed.wait(X_dask)
    with distributed.get_task_stream(client) as stream:
        result = KMeans(20, init=init, max_iter=3, tol=0.0).fit(X_dask)
    _assert_same_fit(result, expected)
    assert result.n_iter_ == 3
    tasks = {}
    for task in stream.data:
        key = str(task["key"][0] if isinstance(task["key"], tuple) else task["key"])
        name = key.split("-")[1] if key.startswith("kgpu-") else key.split("-")[0]
        tasks.setdefault(name, []).append(task["worker"])
    workers = sorted(client.scheduler_info()["workers"])
    assert len(tasks["run_on_chunk"]) == 8  # the first pass (a Dask graph)
    assert sorted(tasks["_working_copy_block"]) == sorted(workers * 4)  # balanced
    assert sorted(tasks["chunk_lloyd_sums"]) == sorted(workers * 3)
    assert sorted(tasks["chunk_objective"]) == workers  # the final inertia
    assert len(tasks["context"]) == len(tasks["centers"]) == 1  # sent once, as tasks
    assert "lloyd_update" not in tasks and "add_parts" not in tasks


@pytest.mark.parametrize("grouping", ["one task per chunk, last chunk first", "one task for every chunk"])
def test_the_result_has_the_same_bits_however_the_chunks_are_grouped(client, monkeypatch, grouping):
    # The per-chunk sums are added in row order, in the same tree, whichever
    # task ran which chunk: so the same bits on any number of workers.
    import kgpu._dask_lloyd

    X = np.array(_blobs(n_samples=3000, centers=6, seed=5))
    init = X[[0, 500, 1000, 1500, 2000, 2500]]
    X_dask = _chunked(X, rows=250)  # 12 chunks: two levels of additions
    reference = KMeans(6, init=init, tol=0.0).fit(X_dask)

    def groups(holders, sizes, threads):
        ids = list(range(len(sizes)))
        return [(None, [i]) for i in reversed(ids)] if grouping.startswith("one task per chunk") else [(None, ids)]

    monkeypatch.setattr(kgpu._dask_lloyd, "chunk_groups", groups)
    result = KMeans(6, init=init, tol=0.0).fit(X_dask)
    assert result.n_iter_ == reference.n_iter_ > 3
    assert_equal(result.cluster_centers_, reference.cluster_centers_)
    assert result.inertia_ == reference.inertia_
    assert_equal(result.labels_.compute(), reference.labels_.compute())


# ------------------------------------------------------------- robustness


def test_a_worker_killed_mid_fit_does_not_change_the_result(client, monkeypatch):
    X = np.array(_blobs(n_samples=4000))
    init = X[[0, 800, 1600, 2400, 3200]]
    expected = KMeans(5, init=init, tol=0.0).fit(X)
    first_iteration_done, worker_killed = threading.Event(), threading.Event()

    def printer(self, run):
        def on_iteration(record):
            if record.iteration == 1:
                first_iteration_done.set()
                worker_killed.wait(60)

        return on_iteration

    monkeypatch.setattr(KMeans, "_printer", printer)
    outcome = {}

    def fit():
        try:
            outcome["model"] = KMeans(5, init=init, tol=0.0).fit(_chunked(X, rows=500))
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=fit)
    thread.start()
    assert first_iteration_done.wait(60)
    # Dask's active memory manager keeps one copy of a value (it runs every
    # 2 s, sooner here): the worker killed is the one holding the fit's
    # context, which must then be computed again, not lost. The data is
    # persisted on the workers: killing one loses half of it as well.
    client.amm.run_once()
    held = [addresses for key, addresses in client.who_has().items() if "-context-" in str(key) and addresses]
    assert held, "the fit's context is held by a worker"
    nanny = next(nanny for nanny in client.cluster.workers.values() if nanny.worker_address in held[0])
    killed_address = nanny.worker_address
    assert killed_address in client.scheduler_info()["workers"]
    os.kill(nanny.process.process.pid, signal.SIGKILL)
    worker_killed.set()
    thread.join(120)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    _assert_same_fit(outcome["model"], expected)
    client.wait_for_workers(2, timeout=60)
    assert killed_address not in client.scheduler_info()["workers"]  # it really died


# -------------------------------------------------------------- bad input


def test_nan_in_a_chunk_is_reported():
    X = np.array(_blobs())
    X[1234, 2] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        KMeans(3).fit(_chunked(X))
    X[1234, 2] = np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        KMeans(3).fit(_chunked(X))
    model = KMeans(3, random_state=0).fit(_chunked(np.array(_blobs())))
    with pytest.raises(ValueError, match="contains infinity"):
        model.predict(_chunked(X)).compute()


def test_bad_shapes_and_dtypes_are_reported():
    X = np.array(_blobs())
    with pytest.raises(ValueError, match="Expected 2D array, got 1D"):
        KMeans(3).fit(da.from_array(X[:, 0], chunks=500))
    with pytest.raises(ValueError, match="Expected 2D array, got 3D"):
        KMeans(3).fit(da.from_array(X.reshape(2000, 2, 2), chunks=500))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        dask_X = _chunked(X)
        KMeans(3).fit(dask_X[dask_X[:, 0] > 0])
    with pytest.raises(ValueError, match="Complex"):
        KMeans(3).fit(_chunked(X.astype(np.complex128)))
    with pytest.raises(ValueError, match="n_samples=2000 should be >= n_clusters=2001"):
        KMeans(2001).fit(_chunked(X))
    model = KMeans(3, random_state=0).fit(_chunked(X))
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 4"):
        model.predict(_chunked(X[:, :3]))


def test_bad_sample_weight_is_reported():
    X_dask = _chunked(np.array(_blobs()))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(5,\), expected \(2000,\)"):
        KMeans(3).fit(X_dask, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(1999,\), expected \(2000,\)"):
        KMeans(3).fit(X_dask, sample_weight=da.ones(1999, chunks=500))
    negative = np.ones(2000)
    negative[1500] = -1.0
    with pytest.raises(ValueError, match="Negative values"):
        KMeans(3).fit(X_dask, sample_weight=da.from_array(negative, chunks=500))
    with pytest.raises(ValueError, match="sums to zero"):
        KMeans(3).fit(X_dask, sample_weight=da.zeros(2000, chunks=500))


def test_unsupported_uses_say_what_to_do():
    X_dask = _chunked(np.array(_blobs()))
    with pytest.raises(ValueError, match="not available for Dask input"):
        KMeans(3, init="random-partition").fit(X_dask)
    with pytest.raises(TypeError, match=r"KMedians does not take Dask arrays.*X.compute\(\)"):
        KMedians(3).fit(X_dask)


@pytest.mark.skipif(not cuda_available(), reason="CuPy with a CUDA device not found")
def test_cupy_chunks_give_cupy_results():
    import cupy

    X = np.array(_blobs())
    init = X[[0, 400, 800, 1200, 1600]]
    expected = KMeans(5, init=init, tol=0.0).fit(X)
    X_gpu = _chunked(X).map_blocks(cupy.asarray)
    result = KMeans(5, init=init, tol=0.0).fit(X_gpu)
    assert isinstance(result.cluster_centers_, cupy.ndarray)
    labels = result.labels_.compute()
    assert isinstance(labels, cupy.ndarray)
    assert_equal(to_numpy(labels), expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)
