"""MiniBatchKMeans: the mini-batch step, early stopping, reassignment and streaming.

References: scikit-learn's ``MiniBatchKMeans`` (same draws, so the same result
for the same seed when reassignment is off), a plain NumPy implementation of
the documented streaming update (``partial_fit``), and the NumPy backend for
parity across backends (SPEC §3: relative 1e-5 in float32, 1e-10 in float64).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sklearn.cluster
from sklearn.base import clone
from sklearn.datasets import make_blobs

import kgpu
from kgpu import KMeans, MiniBatchKMeans

from ._helpers import asarray, assert_close, assert_equal, assert_namespace, dtype_name, reference_inertia, rtol_for, to_numpy

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@functools.lru_cache(maxsize=None)
def _blobs(n_samples=2000, n_features=4, centers=5, cluster_std=1.5, seed=0):
    X, _ = make_blobs(
        n_samples=n_samples, n_features=n_features, centers=centers,
        cluster_std=cluster_std, random_state=seed,
    )
    X.setflags(write=False)  # cached: no test may change it
    return X


# ------------------------------------------------------------------- parity ---


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_parity_with_numpy_backend(xp, dtype, weighted):
    X_np = _blobs().astype(dtype)
    sample_weight = np.random.default_rng(3).uniform(0.5, 2.0, X_np.shape[0]) if weighted else None
    # More centers than blobs and a high ratio: starved centers get reassigned.
    estimator = MiniBatchKMeans(n_clusters=8, batch_size=64, reassignment_ratio=0.5, random_state=0)
    expected = clone(estimator).fit(X_np, sample_weight=sample_weight)
    result = clone(estimator).fit(
        asarray(xp, X_np), sample_weight=None if sample_weight is None else asarray(xp, sample_weight)
    )

    assert expected.n_steps_ > 10
    assert sum(record.n_reassigned for record in expected.history_) > 0, "precondition: reassignment happens"
    rtol = rtol_for(dtype)
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=rtol)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=rtol, atol=rtol)
    assert (result.n_steps_, result.n_iter_) == (expected.n_steps_, expected.n_iter_)
    for array in (result.cluster_centers_, result.labels_, result.predict(asarray(xp, X_np))):
        assert_namespace(array, xp)
    assert dtype_name(result.cluster_centers_) == np.dtype(dtype).name
    assert dtype_name(result.transform(asarray(xp, X_np))) == np.dtype(dtype).name
    assert isinstance(result.inertia_, float)
    assert result.inertia_ == pytest.approx(
        reference_inertia(X_np, result.cluster_centers_, result.labels_, sample_weight), rel=10 * rtol
    )


@pytest.mark.parametrize("init", ["k-means++", "random"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_same_seed_same_result_as_sklearn_without_reassignment(xp, init, weighted):
    # Draw for draw as scikit-learn: validation subsample, seeding subsample,
    # seeding, batches. Only the reassigned rows are drawn differently (∝ D^2).
    X_np = _blobs(n_samples=3000, n_features=5, centers=6, cluster_std=2.5)
    sample_weight = np.random.default_rng(1).uniform(0.5, 2.0, X_np.shape[0]) if weighted else None
    params = dict(n_clusters=6, init=init, batch_size=128, reassignment_ratio=0.0, random_state=2)
    expected = sklearn.cluster.MiniBatchKMeans(**params).fit(X_np, sample_weight=sample_weight)
    result = MiniBatchKMeans(**params).fit(
        asarray(xp, X_np), sample_weight=None if sample_weight is None else asarray(xp, sample_weight)
    )
    assert expected.n_steps_ > 10
    assert result.n_steps_ == expected.n_steps_
    assert result.n_iter_ == expected.n_iter_
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=1e-10, atol=1e-10)


def test_inertia_close_to_kmeans_on_separated_blobs(xp):
    X_np = _blobs(n_samples=6000, n_features=6, centers=8, cluster_std=1.0, seed=4)
    X = asarray(xp, X_np)
    full = KMeans(n_clusters=8, random_state=0).fit(X)
    for seed in range(3):
        mini = MiniBatchKMeans(n_clusters=8, batch_size=256, random_state=seed).fit(X)
        assert mini.n_steps_ < 100 * 6000 // 256, "early stopping should end the fit"
        assert mini.inertia_ <= 1.03 * full.inertia_, f"seed {seed}"


# ---------------------------------------------------------------- streaming ---


def _reference_stream(chunks, weights, init, *, seed, reassignment_ratio, batch_size=1024, init_size=None):
    """The streaming update documented in MiniBatchKMeans, in float64 NumPy.

    Returns the centers after every chunk and the number of centers reassigned.
    """
    random_state = np.random.RandomState(seed)
    n_clusters = init.shape[0]
    centers, counts, rows_since, step_batch = None, None, 0, None
    history, n_reassigned = [], 0
    for chunk, chunk_weight in zip(chunks, weights):
        X = np.asarray(chunk, dtype=np.float64)
        n_rows = X.shape[0]
        w = np.ones(n_rows) if chunk_weight is None else np.asarray(chunk_weight, dtype=np.float64)
        if centers is None:
            step_batch = min(batch_size, n_rows)
            size = 3 * step_batch if init_size is None else init_size
            if size < n_clusters:
                size = 3 * n_clusters
            size = min(size, n_rows)
            if size < n_rows:
                random_state.randint(0, n_rows, size)  # the seeding subsample, drawn even for an array
            centers = np.array(init, dtype=np.float64)
            counts = np.zeros(n_clusters)
        rows_since += step_batch
        due = bool((counts == 0).any()) or rows_since >= 10 * n_clusters
        if due:
            rows_since = 0
        sq_dist = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        labels = sq_dist.argmin(axis=1)
        min_sq_dist = sq_dist[np.arange(n_rows), labels]
        batch_weight = np.bincount(labels, weights=w, minlength=n_clusters)
        batch_sum = np.zeros_like(centers)
        np.add.at(batch_sum, labels, w[:, None] * X)
        counts = counts + batch_weight
        fed = batch_weight > 0
        centers[fed] += (batch_sum[fed] - batch_weight[fed, None] * centers[fed]) / counts[fed, None]
        if due and reassignment_ratio > 0:
            starved = counts < reassignment_ratio * counts.max()
            limit = int(0.5 * n_rows)
            if starved.sum() > limit:
                starved[np.argsort(counts, kind="stable")[limit:]] = False
            targets = np.flatnonzero(starved)
            probabilities = w * min_sq_dist
            n_candidates = int(np.count_nonzero(probabilities > 0))
            if n_candidates < targets.size:
                targets = targets[np.argsort(counts[targets], kind="stable")[:n_candidates]]
            if targets.size:
                chosen = random_state.choice(n_rows, size=targets.size, replace=False, p=probabilities / probabilities.sum())
                centers[targets] = X[chosen]
                staying = np.setdiff1d(np.arange(n_clusters), targets)
                if staying.size:
                    counts[targets] = counts[staying].min()
                n_reassigned += targets.size
        history.append(centers.copy())
    return history, n_reassigned


def _memmapped(tmp_path, X):
    path = tmp_path / "stream.npy"
    np.save(path, X)
    return np.load(path, mmap_mode="r"), path


def _chunk_as(xp, chunk):
    """A memmap slice as the backend's array (NumPy gets the memmap slice itself)."""
    from kgpu._backend import backend_name

    return chunk if backend_name(xp) == "numpy" else asarray(xp, chunk)


@pytest.mark.parametrize(
    "reassignment_ratio", [pytest.param(0.0, id="no-reassignment"), pytest.param(0.3, id="reassignment")]
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_partial_fit_over_memmap_chunks_matches_reference(xp, tmp_path, reassignment_ratio, weighted):
    X_np = np.array(_blobs(n_samples=1500, n_features=3, centers=4, cluster_std=2.0, seed=5))
    mapped, path = _memmapped(tmp_path, X_np)
    bounds = [(0, 300), (300, 420), (420, 900), (900, 1150), (1150, 1500)]  # uneven chunks
    rng = np.random.default_rng(7)
    weights = [rng.uniform(0.2, 3.0, stop - start) if weighted else None for start, stop in bounds]
    # Three centers in the data and one far away: starved from the first chunk.
    init = np.concatenate([X_np[[0, 1, 2]], [[60.0, 60.0, 60.0]]])
    expected, n_reassigned = _reference_stream(
        [mapped[start:stop] for start, stop in bounds], weights, init,
        seed=11, reassignment_ratio=reassignment_ratio,
    )
    if reassignment_ratio > 0:
        assert n_reassigned >= 2, "precondition: the stream reassigns centers"

    model = MiniBatchKMeans(n_clusters=4, init=asarray(xp, init), random_state=11, reassignment_ratio=reassignment_ratio)
    for (start, stop), chunk_weight, expected_centers in zip(bounds, weights, expected):
        model.partial_fit(
            _chunk_as(xp, mapped[start:stop]),
            sample_weight=None if chunk_weight is None else asarray(xp, chunk_weight),
        )
        assert_namespace(model.cluster_centers_, xp)
        assert_close(model.cluster_centers_, expected_centers, rtol=1e-10, atol=1e-10)
        chunk64 = np.asarray(mapped[start:stop], dtype=np.float64)
        assert model.inertia_ == pytest.approx(
            reference_inertia(chunk64, model.cluster_centers_, model.labels_, chunk_weight), rel=1e-10
        )
        assert_equal(model.labels_, model.predict(_chunk_as(xp, mapped[start:stop])))
    assert model.n_steps_ == len(bounds)
    if reassignment_ratio == 0:
        assert_close(to_numpy(model.cluster_centers_)[3], init[3], rtol=0)  # never fed, never moved
    assert np.array_equal(np.load(path), X_np), "the memmapped file was modified"


def test_partial_fit_seeds_from_the_first_chunk(xp):
    first = np.array(_blobs(n_samples=900)[:500])
    streamed = MiniBatchKMeans(n_clusters=5, random_state=3, reassignment_ratio=0.0).partial_fit(asarray(xp, first))
    # 500 rows <= init_size: k-means++ runs on the whole chunk, as kmeans_plusplus does.
    seeds, _ = kgpu.kmeans_plusplus(first, 5, random_state=3)
    expected, _ = _reference_stream([first], [None], seeds, seed=3, reassignment_ratio=0.0)
    assert_close(streamed.cluster_centers_, expected[0], rtol=1e-10, atol=1e-10)
    assert not np.allclose(expected[0], seeds), "precondition: the step moved the seeds"


def test_partial_fit_integer_weights_equal_repeated_rows(xp):
    X_np = np.array(_blobs(n_samples=400, n_features=2, centers=3))
    counts = np.random.default_rng(0).integers(1, 4, size=X_np.shape[0])
    init = np.array(X_np[:3])
    weighted = MiniBatchKMeans(n_clusters=3, init=asarray(xp, init), reassignment_ratio=0.0)
    repeated = MiniBatchKMeans(n_clusters=3, init=asarray(xp, init), reassignment_ratio=0.0)
    for start in range(0, 400, 100):
        rows = X_np[start:start + 100]
        weighted.partial_fit(asarray(xp, rows), sample_weight=asarray(xp, counts[start:start + 100].astype(float)))
        repeated.partial_fit(asarray(xp, np.repeat(rows, counts[start:start + 100], axis=0)))
    assert_close(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10, atol=1e-12)
    plain = MiniBatchKMeans(n_clusters=3, init=asarray(xp, init), reassignment_ratio=0.0)
    for start in range(0, 400, 100):
        plain.partial_fit(asarray(xp, X_np[start:start + 100]))
    assert not np.allclose(to_numpy(plain.cluster_centers_), to_numpy(weighted.cluster_centers_))


def test_partial_fit_over_dask_blocks_equals_numpy_chunks():
    da = pytest.importorskip("dask.array")
    X = np.array(_blobs(n_samples=1000, n_features=3, centers=4))
    streamed = MiniBatchKMeans(n_clusters=4, random_state=0, reassignment_ratio=0.3)
    for block in da.from_array(X, chunks=(250, 3)).blocks:
        streamed.partial_fit(block)
    reference = MiniBatchKMeans(n_clusters=4, random_state=0, reassignment_ratio=0.3)
    for start in range(0, 1000, 250):
        reference.partial_fit(X[start:start + 250])
    assert streamed.n_steps_ == 4
    assert_close(np.asarray(streamed.cluster_centers_), reference.cluster_centers_, rtol=1e-12, atol=1e-12)


def test_partial_fit_rejects_a_chunk_of_another_width():
    model = MiniBatchKMeans(n_clusters=2, random_state=0).partial_fit(_blobs(n_samples=50))
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(np.ones((10, 7)))


# ------------------------------------------------------------- reassignment ---


def test_starved_center_moves_to_a_row_drawn_by_squared_distance(xp):
    # Every row sits on one of the first two centers except one: it is the only
    # row with D^2 > 0, so the never-fed third center must land exactly on it.
    a, b, outlier = np.array([0.0, 0.0]), np.array([5.0, 0.0]), np.array([2.0, 3.0])
    chunk = np.concatenate([np.repeat(a[None], 30, axis=0), np.repeat(b[None], 30, axis=0), outlier[None]])
    init = np.array([a, b, [100.0, 100.0]])
    model = MiniBatchKMeans(n_clusters=3, init=asarray(xp, init), random_state=0)
    model.partial_fit(asarray(xp, chunk))
    assert_close(to_numpy(model.cluster_centers_)[2], outlier, rtol=0)

    off = MiniBatchKMeans(n_clusters=3, init=asarray(xp, init), random_state=0, reassignment_ratio=0.0)
    off.partial_fit(asarray(xp, chunk))
    assert_close(to_numpy(off.cluster_centers_)[2], init[2], rtol=0)


def test_reassignment_rescues_a_far_center_in_fit(xp):
    # Three separated blobs, seeds in two of them and one far from everything.
    rng = np.random.default_rng(2)
    blob_centers = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    X_np = np.concatenate([rng.normal(size=(500, 2)) + center for center in blob_centers])
    init = np.array([X_np[0], X_np[500], [1e3, 1e3]])
    on = MiniBatchKMeans(n_clusters=3, init=asarray(xp, init), batch_size=100, random_state=0).fit(asarray(xp, X_np))
    off = MiniBatchKMeans(
        n_clusters=3, init=asarray(xp, init), batch_size=100, random_state=0, reassignment_ratio=0.0
    ).fit(asarray(xp, X_np))

    assert on.history_[0].n_reassigned >= 1
    assert np.max(np.abs(to_numpy(on.cluster_centers_))) < 100
    assert_close(to_numpy(off.cluster_centers_)[2], init[2], rtol=0)
    assert all(record.n_reassigned == 0 for record in off.history_)
    assert on.inertia_ < 0.5 * off.inertia_
    assert on.inertia_ <= 1.03 * KMeans(n_clusters=3, random_state=0).fit(X_np).inertia_


# ----------------------------------------------------------- early stopping ---


def _expected_stop_step(batch_inertias, n_samples, batch_size, max_no_improvement):
    """1-based step at which scikit-learn's no-improvement rule stops, or None."""
    alpha = min(2.0 * batch_size / (n_samples + 1), 1.0)
    ewa = ewa_min = None
    no_improvement = 0
    for step, inertia in enumerate(batch_inertias, start=1):
        if step == 1:
            continue
        ewa = inertia if ewa is None else ewa * (1 - alpha) + inertia * alpha
        if ewa_min is None or ewa < ewa_min:
            ewa_min, no_improvement = ewa, 0
        else:
            no_improvement += 1
        if no_improvement >= max_no_improvement:
            return step
    return None


def test_early_stop_on_no_improvement(xp):
    X_np = _blobs(n_samples=2000, n_features=3, centers=4, cluster_std=1.0)
    max_steps = 50 * 2000 // 50
    stopped = MiniBatchKMeans(n_clusters=4, batch_size=50, max_iter=50, max_no_improvement=3, random_state=0).fit(
        asarray(xp, X_np)
    )
    assert stopped.n_steps_ < max_steps
    batch_inertias = [record.batch_inertia for record in stopped.history_]
    assert _expected_stop_step(batch_inertias, 2000, 50, 3) == stopped.n_steps_
    assert stopped.n_iter_ == int(np.ceil(stopped.n_steps_ * 50 / 2000))

    never = MiniBatchKMeans(n_clusters=4, batch_size=50, max_iter=2, max_no_improvement=None, random_state=0).fit(
        asarray(xp, X_np)
    )
    assert never.n_steps_ == 2 * 2000 // 50
    assert never.n_iter_ == 2


def test_early_stop_on_small_center_shift(xp):
    X_np = _blobs(n_samples=2000, n_features=3, centers=4, cluster_std=1.0)
    model = MiniBatchKMeans(
        n_clusters=4, batch_size=100, tol=1e-3, max_no_improvement=None, random_state=0
    ).fit(asarray(xp, X_np))
    assert model.n_steps_ < 100 * 2000 // 100
    variance = float(np.mean(np.var(X_np, axis=0)))
    assert model.history_[-1].center_shift <= 1e-3 * variance
    assert all(record.center_shift > 1e-3 * variance for record in model.history_[1:-1])


def test_compute_labels_false_reports_smoothed_inertia():
    X = _blobs()
    model = MiniBatchKMeans(n_clusters=5, batch_size=100, compute_labels=False, random_state=0).fit(X)
    assert not hasattr(model, "labels_")
    assert model.inertia_ == pytest.approx(model.history_[-1].ewa_inertia * X.shape[0], rel=1e-12)
    with_labels = MiniBatchKMeans(n_clusters=5, batch_size=100, random_state=0).fit(X)
    assert model.inertia_ == pytest.approx(with_labels.inertia_, rel=0.2)


# ------------------------------------------------------------ sample_weight ---


def test_zero_weight_rows_are_never_drawn(xp):
    # A far blob of zero weight: no batch row and no seed comes from it.
    X_near = _blobs(n_samples=600, n_features=2, centers=3, cluster_std=0.5)
    X_far = np.random.default_rng(0).normal(size=(300, 2)) + 500.0
    X_np = np.concatenate([X_near, X_far])
    sample_weight = np.concatenate([np.ones(600), np.zeros(300)])
    model = MiniBatchKMeans(n_clusters=3, batch_size=64, random_state=0).fit(
        asarray(xp, X_np), sample_weight=asarray(xp, sample_weight)
    )
    assert np.max(np.abs(to_numpy(model.cluster_centers_))) < 100
    assert model.inertia_ == pytest.approx(
        reference_inertia(X_np, model.cluster_centers_, model.labels_, sample_weight), rel=1e-9
    )


# ------------------------------------------------------------- init, n_init ---


def test_every_init_works(xp):
    X_np = _blobs(n_samples=800, n_features=3, centers=4)
    X = asarray(xp, X_np)
    calls = []

    def init_callable(X_sample, n_clusters, random_state):
        calls.append((tuple(X_sample.shape), n_clusters))
        assert_namespace(X_sample, xp)
        return np.array(to_numpy(X_sample)[:n_clusters])

    for init in ["k-means++", "random", asarray(xp, X_np[:4]), init_callable]:
        model = MiniBatchKMeans(n_clusters=4, init=init, batch_size=100, random_state=0).fit(X)
        centers = to_numpy(model.cluster_centers_)
        assert centers.shape == (4, 3) and np.all(np.isfinite(centers))
        assert np.array_equal(np.unique(to_numpy(model.labels_)), np.arange(4))
    # init_size defaults to 3 * batch_size rows; n_init="auto" is 3 for a callable.
    assert calls == [((300, 3), 4)] * 3


def test_n_init_keeps_the_best_seeding():
    X = _blobs(n_samples=1500, n_features=2, centers=10, cluster_std=1.0, seed=3)
    auto = MiniBatchKMeans(n_clusters=10, init="random", random_state=0).fit(X)
    three = MiniBatchKMeans(n_clusters=10, init="random", n_init=3, random_state=0).fit(X)
    assert_close(auto.cluster_centers_, three.cluster_centers_, rtol=0)
    with pytest.warns(RuntimeWarning, match="Explicit initial center position passed"):
        MiniBatchKMeans(n_clusters=10, init=X[:10], n_init=3).fit(X)


def test_init_size_smaller_than_n_clusters_warns():
    with pytest.warns(RuntimeWarning, match="init_size=2 should be larger than n_clusters=4"):
        MiniBatchKMeans(n_clusters=4, init_size=2, random_state=0).fit(_blobs(n_samples=200))


# --------------------------------------------------------------- estimator ---


def test_methods_consistent(xp):
    X_np = _blobs(n_samples=600, n_features=3, centers=4)
    X = asarray(xp, X_np)
    model = MiniBatchKMeans(n_clusters=4, batch_size=100, random_state=0).fit(X)
    assert_equal(model.predict(X), model.labels_)
    distances = to_numpy(model.transform(X))
    assert_equal(distances.argmin(axis=1), model.labels_)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-10)
    assert_equal(MiniBatchKMeans(n_clusters=4, batch_size=100, random_state=0).fit_predict(X), model.labels_)


def test_backend_parameter_returns_numpy():
    pytest.importorskip("torch")
    X = _blobs(n_samples=500)
    expected = MiniBatchKMeans(n_clusters=5, batch_size=64, random_state=0).fit(X)
    model = MiniBatchKMeans(n_clusters=5, batch_size=64, random_state=0, backend="torch").fit(X)
    assert model.backend_ == "torch"
    assert isinstance(model.cluster_centers_, np.ndarray) and isinstance(model.labels_, np.ndarray)
    assert_equal(model.labels_, expected.labels_)
    assert_close(model.cluster_centers_, expected.cluster_centers_, rtol=1e-10, atol=1e-12)
    model.partial_fit(X[:100])
    assert isinstance(model.cluster_centers_, np.ndarray)


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=2.5), TypeError, "batch_size must be an int"),
        (dict(reassignment_ratio=-0.1), ValueError, "reassignment_ratio must be finite and >= 0"),
        (dict(max_no_improvement=-1), ValueError, "max_no_improvement must be >= 0"),
        (dict(tol=-1.0), ValueError, "tol must be finite and >= 0"),
        (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
        (dict(init="k-means||"), ValueError, "init must be one of"),
        (dict(n_init=0), ValueError, "n_init must be >= 1"),
        (dict(init_size=0), ValueError, "init_size must be >= 1"),
        (dict(n_clusters=0), ValueError, "n_clusters must be >= 1"),
        (dict(n_clusters=20), ValueError, "n_samples=10 should be >= n_clusters=20"),
        (dict(init=np.zeros((3, 2))), ValueError, "does not match"),
    ],
)
def test_bad_parameters(params, error, match):
    X = _blobs(n_samples=10, n_features=2)
    with pytest.raises(error, match=match):
        MiniBatchKMeans(**{"n_clusters": 2, **params}).fit(X)


def test_bad_input():
    model = MiniBatchKMeans(n_clusters=2)
    with pytest.raises(ValueError, match="2D"):
        model.fit(np.arange(10.0))
    X = np.array(_blobs(n_samples=20, n_features=2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(X)
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(_blobs(n_samples=20, n_features=2), sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="Negative"):
        model.partial_fit(_blobs(n_samples=20, n_features=2), sample_weight=-np.ones(20))
    fitted = MiniBatchKMeans(n_clusters=2, random_state=0).fit(_blobs(n_samples=20, n_features=2))
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.ones((3, 5)))


def test_caller_array_untouched(xp):
    X_np = np.array(_blobs(n_samples=300))
    X = asarray(xp, X_np)
    model = MiniBatchKMeans(n_clusters=3, batch_size=50, random_state=0).fit(X)
    model.partial_fit(X)
    assert_close(X, X_np, rtol=0)


def test_public_name():
    assert "MiniBatchKMeans" in kgpu.__all__
