"""BisectingKMeans: the tree of 2-means splits, its labels, and walking down it.

References: scikit-learn's ``BisectingKMeans`` (the same seed draws the same
seeds, so with ``tol=0`` the same tree), a plain NumPy walk down the recorded
tree for ``predict``, and the NumPy backend for parity across backends.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import sklearn.cluster
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

import kgpu
from kgpu import BisectingKMeans, KMeans

from ._helpers import asarray, assert_close, assert_equal, assert_namespace, dtype_name, reference_inertia, rtol_for, to_numpy

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
STRATEGIES = ["biggest_inertia", "largest_cluster"]


@functools.lru_cache(maxsize=None)
def _blobs(n_samples=1500, n_features=4, centers=6, cluster_std=1.5, seed=0):
    X, _ = make_blobs(
        n_samples=n_samples, n_features=n_features, centers=centers,
        cluster_std=cluster_std, random_state=seed,
    )
    X.setflags(write=False)  # cached: no test may change it
    return X


def _extremes_init(X, n_clusters, random_state):
    """Deterministic seeds: the rows of smallest and largest first coordinate."""
    X = to_numpy(X)
    assert n_clusters == 2
    return np.array(X[[np.argmin(X[:, 0]), np.argmax(X[:, 0])]])


# ------------------------------------------------------------------- parity ---


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_parity_with_numpy_backend(xp, dtype, strategy):
    X_np = _blobs().astype(dtype)
    estimator = BisectingKMeans(n_clusters=6, init="k-means++", n_init=2, bisecting_strategy=strategy, random_state=0)
    expected = clone(estimator).fit(X_np)
    result = clone(estimator).fit(asarray(xp, X_np))

    rtol = rtol_for(dtype)
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=rtol)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=rtol, atol=rtol)
    assert [(s.parent, s.left, s.right, s.left_size, s.right_size) for s in result.split_tree_] == [
        (s.parent, s.left, s.right, s.left_size, s.right_size) for s in expected.split_tree_
    ]
    assert_equal(result.leaf_nodes_, expected.leaf_nodes_)
    assert result.n_iter_ == expected.n_iter_
    for array in (result.cluster_centers_, result.labels_, result.predict(asarray(xp, X_np))):
        assert_namespace(array, xp)
    assert dtype_name(result.cluster_centers_) == np.dtype(dtype).name
    assert dtype_name(result.transform(asarray(xp, X_np))) == np.dtype(dtype).name
    assert result.inertia_ == pytest.approx(reference_inertia(X_np, result.cluster_centers_, result.labels_), rel=10 * rtol)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("init", ["random", "k-means++"])
def test_same_tree_as_sklearn_with_tol_zero(xp, strategy, init):
    # Same seeding draws, Lloyd to convergence: scikit-learn's tree exactly.
    X_np = _blobs(n_samples=2000, n_features=5, centers=8, cluster_std=2.0, seed=1)
    X_new = _blobs(n_samples=300, n_features=5, centers=8, cluster_std=3.0, seed=9)
    params = dict(n_clusters=8, init=init, tol=0.0, bisecting_strategy=strategy, random_state=3)
    expected = sklearn.cluster.BisectingKMeans(**params).fit(X_np)
    result = BisectingKMeans(**params).fit(asarray(xp, X_np))
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=1e-10, atol=1e-10)
    assert_equal(result.predict(asarray(xp, X_new)), expected.predict(X_new))
    assert result.score(asarray(xp, X_new)) == pytest.approx(expected.score(X_new), rel=1e-10)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_inertia_comparable_to_sklearn(xp, strategy):
    X_np = _blobs(n_samples=3000, n_features=6, centers=10, cluster_std=1.0, seed=4)
    for seed in range(3):
        ours = BisectingKMeans(n_clusters=10, bisecting_strategy=strategy, random_state=seed).fit(asarray(xp, X_np))
        theirs = sklearn.cluster.BisectingKMeans(n_clusters=10, bisecting_strategy=strategy, random_state=seed).fit(X_np)
        assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=0.03), f"seed {seed}"
    # And about what a full K-Means finds on separated blobs.
    assert ours.inertia_ <= 1.3 * KMeans(n_clusters=10, random_state=0).fit(X_np).inertia_


# --------------------------------------------------------------------- tree ---


def _leaves(splits):
    """Leaf node ids in left-to-right order, rebuilt from the split records."""
    children = {split.parent: (split.left, split.right) for split in splits}

    def walk(node):
        if node not in children:
            return [node]
        left, right = children[node]
        return walk(left) + walk(right)

    return walk(0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_split_tree_consistent_with_labels(xp, strategy):
    X_np = _blobs(n_samples=1200, n_features=3, centers=7, cluster_std=2.0, seed=2)
    sample_weight = np.random.default_rng(0).uniform(0.5, 3.0, X_np.shape[0])
    model = BisectingKMeans(n_clusters=7, bisecting_strategy=strategy, random_state=0).fit(
        asarray(xp, X_np), sample_weight=asarray(xp, sample_weight)
    )
    splits = model.split_tree_
    labels = to_numpy(model.labels_)
    centers = to_numpy(model.cluster_centers_)

    assert len(splits) == 6
    assert [split.step for split in splits] == list(range(6))
    assert [(split.left, split.right) for split in splits] == [(2 * s + 1, 2 * s + 2) for s in range(6)]
    assert np.array_equal(model.leaf_nodes_, _leaves(splits))
    assert np.array_equal(np.unique(labels), np.arange(7))

    # Each node's statistics, as recorded when it was made.
    made = {0: (X_np.shape[0], sample_weight.sum(), splits[0].parent_inertia)}
    for split in splits:
        assert split.parent in made, "a node was split before it was made"
        assert (split.parent_size, split.parent_weight, split.parent_inertia) == pytest.approx(made.pop(split.parent))
        assert split.left_size + split.right_size == split.parent_size
        assert split.left_weight + split.right_weight == pytest.approx(split.parent_weight, rel=1e-12)
        assert split.inertia_after == pytest.approx(split.left_inertia + split.right_inertia)
        assert split.inertia_after < split.parent_inertia
        made[split.left] = (split.left_size, split.left_weight, split.left_inertia)
        made[split.right] = (split.right_size, split.right_weight, split.right_inertia)
    # What is left are the leaves: they match the labels, centers and inertia.
    assert sorted(made) == sorted(model.leaf_nodes_.tolist())
    total_inertia = 0.0
    for label, node in enumerate(model.leaf_nodes_):
        size, weight, inertia = made[int(node)]
        members = labels == label
        assert members.sum() == size
        assert sample_weight[members].sum() == pytest.approx(weight, rel=1e-12)
        mean = np.average(X_np[members], axis=0, weights=sample_weight[members])
        assert_close(centers[label], mean, rtol=1e-9, atol=1e-9)
        assert reference_inertia(X_np[members], centers[label][None], np.zeros(size, dtype=int), sample_weight[members]) == (
            pytest.approx(inertia, rel=1e-9)
        )
        total_inertia += inertia
    assert model.inertia_ == pytest.approx(total_inertia, rel=1e-9)
    assert splits[0].parent_inertia == pytest.approx(
        reference_inertia(X_np, np.average(X_np, axis=0, weights=sample_weight)[None], np.zeros(X_np.shape[0], dtype=int), sample_weight),
        rel=1e-9,
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_split_takes_the_leaf_the_strategy_names(strategy):
    X = _blobs(n_samples=1000, n_features=2, centers=5, cluster_std=2.5, seed=6)
    sample_weight = np.random.default_rng(1).uniform(0.1, 5.0, X.shape[0])
    splits = BisectingKMeans(n_clusters=8, bisecting_strategy=strategy, random_state=0).fit(
        X, sample_weight=sample_weight
    ).split_tree_
    leaves = {0: (splits[0].parent_inertia, splits[0].parent_weight)}
    order = [0]  # leaves left to right
    for split in splits:
        score = {node: leaves[node][0 if strategy == "biggest_inertia" else 1] for node in order}
        best = max(score.values())
        assert split.parent == next(node for node in order if score[node] == best)
        position = order.index(split.parent)
        order[position:position + 1] = [split.left, split.right]
        del leaves[split.parent]
        leaves[split.left] = (split.left_inertia, split.left_weight)
        leaves[split.right] = (split.right_inertia, split.right_weight)


def test_largest_cluster_counts_weight():
    # A small heavy group and a large light one: by weight, the small one is
    # larger and is split first; unweighted, the large one is.
    rng = np.random.default_rng(0)
    heavy = rng.normal(size=(50, 2)) * 0.5 + np.array([0.0, 0.0])
    light = rng.normal(size=(400, 2)) * 0.5 + np.array([30.0, 0.0])
    X = np.concatenate([heavy, light])
    sample_weight = np.concatenate([np.full(50, 20.0), np.ones(400)])
    weighted = BisectingKMeans(n_clusters=3, init=_extremes_init, bisecting_strategy="largest_cluster").fit(
        X, sample_weight=sample_weight
    )
    unweighted = BisectingKMeans(n_clusters=3, init=_extremes_init, bisecting_strategy="largest_cluster").fit(X)
    first = weighted.split_tree_[0]
    assert {first.left_size, first.right_size} == {50, 400}
    heavy_node = first.left if first.left_size == 50 else first.right
    assert weighted.split_tree_[1].parent == heavy_node
    assert unweighted.split_tree_[1].parent != heavy_node


# ------------------------------------------------------------------ predict ---


def _reference_descent(X, X_train, model):
    """Walk down the recorded tree in NumPy, one row at a time.

    A node's center is the mean of the training rows under it (true at
    Lloyd's fixed point, so the model is fitted with ``tol=0``).
    """
    children = {split.parent: (split.left, split.right) for split in model.split_tree_}
    labels_train = to_numpy(model.labels_)
    label_of = {int(node): label for label, node in enumerate(model.leaf_nodes_)}

    def leaf_labels(node):
        if node not in children:
            return [label_of[node]]
        left, right = children[node]
        return leaf_labels(left) + leaf_labels(right)

    center_of = {
        node: X_train[np.isin(labels_train, leaf_labels(node))].mean(axis=0)
        for node in range(2 * len(model.split_tree_) + 1)
    }
    labels = []
    for row in X:
        node = 0
        while node in children:
            left, right = children[node]
            d_left = ((row - center_of[left]) ** 2).sum()
            d_right = ((row - center_of[right]) ** 2).sum()
            node = right if d_right < d_left else left
        labels.append(label_of[node])
    return np.array(labels), np.array([center_of[node] for node in sorted(center_of)])


def test_predict_walks_down_the_tree(xp):
    X_np = _blobs(n_samples=800, n_features=3, centers=6, cluster_std=2.5, seed=3)
    X_new = np.random.default_rng(0).uniform(X_np.min(axis=0) - 5, X_np.max(axis=0) + 5, size=(2000, 3))
    model = BisectingKMeans(n_clusters=9, tol=0.0, random_state=0).fit(asarray(xp, X_np))
    expected_labels, expected_node_centers = _reference_descent(X_new, X_np, model)
    predicted = to_numpy(model.predict(asarray(xp, X_new)))
    assert_equal(predicted, expected_labels)
    assert_namespace(model.node_centers_, xp)
    assert_close(model.node_centers_, expected_node_centers, rtol=1e-9, atol=1e-9)
    assert_close(to_numpy(model.node_centers_)[model.leaf_nodes_], model.cluster_centers_, rtol=0)
    # The walk is not the nearest leaf center everywhere: the test can tell them apart.
    nearest = to_numpy(model.transform(asarray(xp, X_new))).argmin(axis=1)
    assert np.any(predicted != nearest)
    assert_equal(model.predict(asarray(xp, X_np)), model.labels_)


def test_predict_with_one_cluster(xp):
    X_np = _blobs(n_samples=100)
    model = BisectingKMeans(n_clusters=1).fit(asarray(xp, X_np))
    assert model.split_tree_ == []
    assert_equal(model.predict(asarray(xp, X_np)), np.zeros(100, dtype=np.int64))
    assert_close(model.cluster_centers_, X_np.mean(axis=0)[None], rtol=1e-12)
    assert model.inertia_ == pytest.approx(reference_inertia(X_np, X_np.mean(axis=0)[None], np.zeros(100, dtype=int)), rel=1e-12)


# ------------------------------------------------------------ sample_weight ---


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_integer_weights_equal_repeated_rows(xp, strategy):
    X_np = _blobs(n_samples=300, n_features=2, centers=4, cluster_std=2.0, seed=8)
    repeats = np.random.default_rng(0).integers(1, 4, size=X_np.shape[0])
    first_copy = np.concatenate([[0], np.cumsum(repeats)[:-1]])
    params = dict(n_clusters=5, init=_extremes_init, bisecting_strategy=strategy)
    weighted = BisectingKMeans(**params).fit(asarray(xp, X_np), sample_weight=asarray(xp, repeats.astype(float)))
    repeated = BisectingKMeans(**params).fit(asarray(xp, np.repeat(X_np, repeats, axis=0)))
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)
    assert_close(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_equal(weighted.labels_, to_numpy(repeated.labels_)[first_copy])
    unweighted = BisectingKMeans(**params).fit(asarray(xp, X_np))
    assert not np.allclose(to_numpy(unweighted.cluster_centers_), to_numpy(weighted.cluster_centers_))


def test_zero_weight_rows_do_not_move_centers(xp):
    X_np = _blobs(n_samples=400, n_features=2, centers=3, cluster_std=1.0, seed=5)
    far = np.random.default_rng(0).normal(size=(40, 2)) + 200.0
    sample_weight = np.concatenate([np.ones(400), np.zeros(40)])
    model = BisectingKMeans(n_clusters=3, random_state=0).fit(
        asarray(xp, np.concatenate([X_np, far])), sample_weight=asarray(xp, sample_weight)
    )
    assert np.max(np.abs(to_numpy(model.cluster_centers_))) < 100
    assert model.split_tree_[0].parent_weight == pytest.approx(400.0)


def test_fewer_distinct_points_than_clusters_warns(xp):
    X_np = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(3\).*n_clusters \(5\)"):
        model = BisectingKMeans(n_clusters=5, random_state=0).fit(asarray(xp, X_np))
    assert np.all(np.isfinite(to_numpy(model.cluster_centers_)))
    assert model.inertia_ == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert BisectingKMeans(n_clusters=3, random_state=0).fit(asarray(xp, X_np)).inertia_ == 0.0


# ------------------------------------------------------------ init, params ---


def test_callable_init_gets_the_rows_of_each_cluster(xp):
    X_np = _blobs(n_samples=500, n_features=3, centers=4)
    calls = []

    def init(X_cluster, n_clusters, random_state):
        assert_namespace(X_cluster, xp)
        calls.append(to_numpy(X_cluster).shape[0])
        return _extremes_init(X_cluster, n_clusters, random_state)

    model = BisectingKMeans(n_clusters=4, init=init, n_init=2).fit(asarray(xp, X_np))
    assert calls[:2] == [500, 500]
    assert calls[2::2] == [split.parent_size for split in model.split_tree_[1:]]
    assert len(calls) == 2 * 3


def test_methods_consistent(xp):
    X_np = _blobs(n_samples=600, n_features=3, centers=4)
    X = asarray(xp, X_np)
    model = BisectingKMeans(n_clusters=4, random_state=0).fit(X)
    distances = to_numpy(model.transform(X))
    assert distances.shape == (600, 4)
    assert model.score(X) == pytest.approx(-(distances.min(axis=1) ** 2).sum(), rel=1e-8)
    assert_equal(BisectingKMeans(n_clusters=4, random_state=0).fit_predict(X), model.labels_)


def test_backend_parameter_returns_numpy():
    pytest.importorskip("torch")
    X = _blobs(n_samples=500)
    expected = BisectingKMeans(n_clusters=4, random_state=0).fit(X)
    model = BisectingKMeans(n_clusters=4, random_state=0, backend="torch").fit(X)
    assert model.backend_ == "torch"
    for array in (model.cluster_centers_, model.labels_, model.predict(X)):
        assert isinstance(array, np.ndarray)
    assert_equal(model.labels_, expected.labels_)
    assert_equal(model.predict(X), expected.predict(X))


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(init=np.zeros((2, 2))), TypeError, "takes no array of centers"),
        (dict(init="random-partition"), ValueError, "init must be one of"),
        (dict(bisecting_strategy="smallest"), ValueError, "bisecting_strategy must be one of"),
        (dict(n_init=0), ValueError, "n_init must be >= 1"),
        (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
        (dict(tol=-1.0), ValueError, "tol must be finite and >= 0"),
        (dict(n_clusters=0), ValueError, "n_clusters must be >= 1"),
        (dict(n_clusters=20), ValueError, "n_samples=10 should be >= n_clusters=20"),
    ],
)
def test_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        BisectingKMeans(**{"n_clusters": 2, **params}).fit(_blobs(n_samples=10, n_features=2))


def test_bad_input():
    model = BisectingKMeans(n_clusters=2)
    with pytest.raises(ValueError, match="2D"):
        model.fit(np.arange(10.0))
    X = np.array(_blobs(n_samples=20, n_features=2))
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.fit(X)
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(_blobs(n_samples=20, n_features=2), sample_weight=np.ones(3))
    fitted = BisectingKMeans(n_clusters=2, random_state=0).fit(_blobs(n_samples=20, n_features=2))
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.ones((3, 5)))


def test_caller_array_untouched(xp):
    X_np = np.array(_blobs(n_samples=300))
    X = asarray(xp, X_np)
    BisectingKMeans(n_clusters=4, random_state=0).fit(X)
    BisectingKMeans(n_clusters=4, random_state=0, copy_x=False).fit(X)
    assert_close(X, X_np, rtol=0)


def test_public_name():
    assert "BisectingKMeans" in kgpu.__all__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strategy", ["biggest_inertia", "largest_cluster"])
def test_compiled_splits_build_the_reference_tree(monkeypatch, dtype, strategy):
    # The NumPy fast path (operation "bisect") against the array-API reference (KGPU_FAST=0).
    X, _ = make_blobs(n_samples=6000, n_features=5, centers=6, cluster_std=1.5, random_state=3)
    X = X.astype(dtype)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0])
    params = dict(n_clusters=6, init="random", random_state=0, tol=0, bisecting_strategy=strategy)
    fast = BisectingKMeans(**params).fit(X, sample_weight=weights)
    monkeypatch.setenv("KGPU_FAST", "0")
    reference = BisectingKMeans(**params).fit(X, sample_weight=weights)
    np.testing.assert_array_equal(fast.labels_, reference.labels_)
    assert [(s.parent, s.left_size, s.right_size, s.n_iter) for s in fast.split_tree_] == [
        (s.parent, s.left_size, s.right_size, s.n_iter) for s in reference.split_tree_
    ]
    rtol = 1e-5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(fast.cluster_centers_, reference.cluster_centers_, rtol=rtol, atol=rtol * 10)
    assert fast.inertia_ == pytest.approx(reference.inertia_, rel=1e-6)
