"""Out-of-core data (kgpu/_stream.py): memory-mapped .npy files streamed through row blocks.

A memmap is never copied whole: every pass reads it one row block at a time
(:class:`kgpu._stream.StreamedRows`). The results must equal the in-memory
fit's, and the peak memory must stay near the block budget.
"""

from __future__ import annotations

import functools
import tracemalloc

import array_api_compat.numpy as NP
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from kgpu import KMeans, MiniBatchKMeans, _minibatch, _stream
from kgpu._stream import StreamedRows, should_stream, take_rows, working_copy

from ._helpers import assert_close, assert_equal, assert_namespace, peak_traced_bytes

INITS = ["k-means++", "k-means||", "random", "random-partition", "array", "callable"]


@functools.lru_cache(maxsize=None)
def _blobs(n_samples=3000, n_features=4, centers=6, seed=0):
    X, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=2.0, random_state=seed)
    X.setflags(write=False)
    return X


def _memmap(tmp_path, X, name="X.npy"):
    path = tmp_path / name
    np.save(path, X)
    return np.load(path, mmap_mode="r")


def _init_param(init, X):
    if init == "array":
        return np.array(X[[0, 500, 1000, 1500, 2000, 2500]])
    if init == "callable":
        return lambda data, n_clusters, random_state: np.array(data[:n_clusters]) + random_state.uniform(size=(n_clusters, 1))
    return init


def _assert_same_fit(result, expected, rtol=1e-10):
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=rtol)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=rtol, atol=rtol)
    assert result.n_iter_ == expected.n_iter_


# ---------------------------------------------------------- same results


@pytest.mark.parametrize("init", INITS)
def test_memmap_fit_equals_in_memory_fit(tmp_path, init):
    X = np.array(_blobs())
    X_map = _memmap(tmp_path, X)
    weights = np.linspace(0.5, 2.0, X.shape[0])
    params = dict(n_clusters=6, init=_init_param(init, X), random_state=0, working_memory=0.01)
    expected = KMeans(**params).fit(X, sample_weight=weights)
    result = KMeans(**params).fit(X_map, sample_weight=weights)
    _assert_same_fit(result, expected)
    assert_namespace(result.cluster_centers_, NP)


def test_memmap_float32_stays_float32(tmp_path):
    X = np.array(_blobs(), dtype=np.float32)
    params = dict(n_clusters=6, init="k-means||", random_state=1, working_memory=0.01)
    expected = KMeans(**params).fit(X)
    result = KMeans(**params).fit(_memmap(tmp_path, X))
    assert result.cluster_centers_.dtype == np.float32
    _assert_same_fit(result, expected, rtol=1e-6)


def test_memmap_predict_transform_score(tmp_path):
    X = np.array(_blobs())
    X_map = _memmap(tmp_path, X)
    km = KMeans(n_clusters=6, random_state=0, working_memory=0.01).fit(X)
    assert_equal(km.predict(X_map), km.predict(X))
    assert_close(km.transform(X_map), km.transform(X), rtol=1e-12)
    weights = np.linspace(1.0, 2.0, X.shape[0])
    assert km.score(X_map, sample_weight=weights) == pytest.approx(km.score(X, sample_weight=weights), rel=1e-12)


@pytest.mark.parametrize("init", ["k-means||", "array"])
def test_memmap_streams_to_every_backend(tmp_path, xp_name, init):
    X = np.array(_blobs())
    params = dict(n_clusters=6, init=_init_param(init, X), random_state=0, working_memory=0.01)
    expected = KMeans(**params).fit(X)
    result = KMeans(backend=xp_name, **params).fit(_memmap(tmp_path, X))
    _assert_same_fit(result, expected)
    # Computed on the backend, handed back as the input's type (NumPy).
    assert result.backend_ == xp_name
    assert_namespace(result.labels_, NP)


def test_host_data_too_big_for_the_device_streams(monkeypatch):
    X = np.array(_blobs())
    expected = KMeans(n_clusters=6, random_state=0).fit(X)
    assert not should_stream(X, NP, "cpu")
    # A device with 1 kB free cannot hold the working copy.
    monkeypatch.setattr(_stream, "free_memory_bytes", lambda xp, device: 1000)
    assert should_stream(X, NP, "cpu")
    placement = KMeans(n_clusters=6)._place(X, reset=True, streamable=True)
    assert isinstance(placement.X, StreamedRows)
    _assert_same_fit(KMeans(n_clusters=6, random_state=0).fit(X), expected)


def test_a_memmap_is_placed_as_streamed_rows(tmp_path):
    X_map = _memmap(tmp_path, np.array(_blobs()))
    assert should_stream(X_map, NP, "cpu")
    assert should_stream(X_map[100:200], NP, "cpu")  # a view of a memmap is one too
    placement = KMeans(n_clusters=6)._place(X_map, reset=True, streamable=True)
    assert isinstance(placement.X, StreamedRows)
    assert not isinstance(KMeans(n_clusters=6)._place(X_map, reset=True).X, StreamedRows)


# ----------------------------------------------------------- StreamedRows


def test_streamed_rows_read_blocks_rows_and_the_working_copy(xp):
    host = np.arange(24, dtype=np.float64).reshape(8, 3)
    rows = StreamedRows(host, xp, None)
    assert rows.shape == (8, 3) and rows.ndim == 2 and rows.dtype == xp.float64
    assert_close(rows[2:5, :], host[2:5], rtol=0)
    assert_close(take_rows(rows, np.array([6, 1, 1]), xp=xp), host[[6, 1, 1]], rtol=0)

    offset = xp.asarray(np.array([1.0, 2.0, 3.0]))
    design = working_copy(rows, xp=xp, offset=offset)
    assert isinstance(design, StreamedRows) and design.shape == (8, 4)
    expected = np.hstack([host - [1.0, 2.0, 3.0], np.ones((8, 1))])
    assert_close(design[0:8, :], expected, rtol=0)
    assert_close(design[:, :-1][3:4, :], expected[3:4, :3], rtol=0)
    assert_close(take_rows(design, np.array([7]), xp=xp), expected[[7]], rtol=0)
    with pytest.raises(TypeError, match="StreamedRows supports"):
        rows[::2, :]
    with pytest.raises(TypeError, match="StreamedRows supports"):
        rows[0:2, 1:]


def test_the_memmap_is_never_written(tmp_path):
    X = np.array(_blobs())
    X_map = _memmap(tmp_path, X)
    KMeans(n_clusters=6, random_state=0, working_memory=0.01).fit(X_map)
    assert_equal(np.load(tmp_path / "X.npy"), X)


# ----------------------------------------------------------- peak memory

_N_ROWS, _N_FEATURES = 200_000, 64  # 51.2 MB of float32
_DATA_BYTES = _N_ROWS * _N_FEATURES * 4


@pytest.fixture(scope="module")
def big_data(tmp_path_factory):
    """The data in memory and as a memory-mapped .npy (written once per module)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((_N_ROWS, _N_FEATURES), dtype=np.float32)
    X += 4.0 * rng.integers(0, 8, size=(_N_ROWS, 1)).astype(np.float32)
    X.setflags(write=False)
    path = tmp_path_factory.mktemp("big") / "X.npy"
    np.save(path, X)
    X_map = np.load(path, mmap_mode="r")
    # Compile the native kernels first: the compiler's one-time allocations
    # (numba's) would otherwise be counted as the first measured fit's.
    for init in _PEAK_INITS:
        small = X_map[:4096]
        model = KMeans(n_clusters=8, init=np.array(X[:8]) if init == "array" else init, n_init=1, max_iter=2,
                       random_state=0, working_memory=0.25)
        model.fit(small).predict(small)
        model.fit(np.array(small)).score(np.array(small))
    return X, X_map


_PEAK_INITS = [
    "k-means||",
    "random",
    "random-partition",
    "array",
    "k-means++",
]


@pytest.mark.slow
@pytest.mark.parametrize("init", _PEAK_INITS)
def test_memmap_fit_peaks_far_below_the_data_size(big_data, init):
    # NumPy reports its allocations to tracemalloc; the memmap's pages are the
    # file's, not allocations. What a streamed fit allocates is one 0.25 MiB
    # block per worker, the centers, and a few per-row vectors (labels, the
    # previous labels, weights, the init's draw probabilities: under 50 bytes
    # a row, against the data's 256).
    X, X_map = big_data
    init_param = np.array(X[:: _N_ROWS // 8][:8]) if init == "array" else init
    params = dict(n_clusters=8, init=init_param, n_init=1, max_iter=5, random_state=0, working_memory=0.25)
    assert peak_traced_bytes(lambda: KMeans(**params).fit(X_map)) < 0.25 * _DATA_BYTES
    if init == "array":
        # The in-memory fit holds its working copy [x - mean, 1]: more than the data.
        assert peak_traced_bytes(lambda: KMeans(**params).fit(X)) > _DATA_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_in_memory_float32_fit_holds_one_working_copy(big_data, init):
    # The working copy [x - mean, 1] (65/64 of the data here) plus per-row
    # vectors (labels, weights, k-means++ costs) and one small block per worker:
    # at most 1.25x the data and the blocks' budget, whatever the seeding.
    X, _ = big_data
    budget_mib = 0.25
    blocks_budget = 4 * budget_mib * 2**20 * 2  # a block and its temporaries, per worker
    params = dict(n_clusters=8, init=init, n_init=1, max_iter=5, random_state=0, working_memory=budget_mib)
    assert peak_traced_bytes(lambda: KMeans(**params).fit(X)) <= 1.25 * _DATA_BYTES + blocks_budget


@pytest.mark.slow
def test_memmap_predict_and_score_peak_far_below_the_data_size(big_data):
    X, X_map = big_data
    km = KMeans(n_clusters=8, init=np.array(X[:8]), n_init=1, max_iter=2, working_memory=0.25).fit(X[:5000])
    # Per-row vectors only (labels, distances, weights: under 30 bytes a row
    # with the block results they are concatenated from).
    assert peak_traced_bytes(lambda: km.predict(X_map)) < 0.15 * _DATA_BYTES
    assert peak_traced_bytes(lambda: km.score(X_map)) < 0.15 * _DATA_BYTES


# ----------------------------------------------------------- mini-batches


def test_minibatch_fit_on_a_memmap_equals_in_memory(tmp_path, monkeypatch):
    X = np.array(_blobs())
    X_map = _memmap(tmp_path, X)
    weights = np.linspace(0.5, 2.0, X.shape[0])
    params = dict(n_clusters=6, batch_size=256, max_iter=3, random_state=0, working_memory=0.01)
    expected = MiniBatchKMeans(**params).fit(X, sample_weight=weights)
    sources = []

    def recording_take_rows(X, indices, *, xp):
        sources.append(type(X))
        return take_rows(X, indices, xp=xp)

    monkeypatch.setattr(_minibatch, "take_rows", recording_take_rows)
    result = MiniBatchKMeans(**params).fit(X_map, sample_weight=weights)
    # Every batch (and the subsamples) was read from the file, not from a copy of it.
    assert sources.count(StreamedRows) >= result.n_steps_ + 2
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=1e-12)
    assert result.n_steps_ == expected.n_steps_


def test_minibatch_partial_fit_over_memmap_chunks_equals_in_memory(tmp_path):
    X = np.array(_blobs())
    X_map = _memmap(tmp_path, X)
    streamed = MiniBatchKMeans(n_clusters=6, random_state=0)
    reference = MiniBatchKMeans(n_clusters=6, random_state=0)
    for start in range(0, X.shape[0], 500):
        streamed.partial_fit(X_map[start : start + 500])
        reference.partial_fit(X[start : start + 500])
    assert streamed.n_steps_ == reference.n_steps_ == 6
    assert_close(streamed.cluster_centers_, reference.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert_equal(streamed.labels_, reference.labels_)
    assert_equal(streamed.predict(X_map), reference.predict(X))


def test_take_rows_of_a_strided_view_reads_only_those_rows():
    """``design[:, :-1]`` is a strided view: gathering rows must not copy all of it."""
    design = np.ones((200_000, 33), dtype=np.float32)  # 26 MB
    view = design[:, :-1]
    assert not view.flags.c_contiguous
    tracemalloc.start()
    try:
        rows = take_rows(view, np.array([5, 7, 199_999]), xp=NP)
        device_rows = take_rows(view, NP.asarray([1, 2]), xp=NP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows.shape == (3, 32) and device_rows.shape == (2, 32)
    assert peak < 1_000_000, f"take_rows allocated {peak} bytes for 5 rows"
