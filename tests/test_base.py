"""What every estimator checks before it works: init callables, init_size, working_memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kgpu import BisectingKMeans, KMeans, KMedians, KMedoids, MiniBatchKMeans

CENTROID_ESTIMATORS = [KMeans, KMedians, MiniBatchKMeans, BisectingKMeans]

ALL_ESTIMATORS = {
    "KMeans": lambda **kw: KMeans(n_clusters=2, **kw),
    "KMedians": lambda **kw: KMedians(n_clusters=2, **kw),
    "MiniBatchKMeans": lambda **kw: MiniBatchKMeans(n_clusters=2, **kw),
    "BisectingKMeans": lambda **kw: BisectingKMeans(n_clusters=2, **kw),
    "KMedoids-pam": lambda **kw: KMedoids(n_clusters=2, method="pam", **kw),
    "KMedoids-alternate": lambda **kw: KMedoids(n_clusters=2, method="alternate", **kw),
}


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(40, 3))


@pytest.mark.parametrize("estimator", CENTROID_ESTIMATORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize(
    "returned,error",
    [(None, TypeError), ("abc", TypeError), (5, ValueError), ([["a", "b", "c"], ["d", "e", "f"]], ValueError),
     ([[np.nan, 0.0, 0.0], [1.0, 1.0, 1.0]], ValueError)],
    ids=["None", "str", "scalar", "strings", "nan"],
)
def test_an_init_callable_returning_garbage_is_named(X, estimator, returned, error):
    with pytest.raises(error, match="init callable"):
        estimator(n_clusters=2, n_init=1, init=lambda data, k, random_state: returned).fit(X)


@pytest.mark.parametrize("returned", [None, "abc", 5, [0.5, 1.5]], ids=["None", "str", "scalar", "floats"])
def test_a_kmedoids_init_callable_returning_garbage_is_named(X, returned):
    with pytest.raises((TypeError, ValueError), match="init callable"):
        KMedoids(n_clusters=2, init=lambda data, k, random_state: returned).fit(X)


def test_an_init_array_of_strings_is_named(X):
    with pytest.raises(ValueError, match="given by init"):
        KMeans(n_clusters=2, init=[["a", "b", "c"], ["d", "e", "f"]]).fit(X)


def test_a_good_init_callable_is_still_used(X):
    chosen = X[[0, 1]]
    model = KMeans(n_clusters=2, n_init=1, max_iter=1, init=lambda data, k, random_state: chosen).fit(X)
    assert model.cluster_centers_.shape == (2, 3)


# ------------------------------------------------------------ init_size
def test_minibatch_init_size_below_n_clusters_warns_and_uses_three_k(X, monkeypatch):
    from kgpu import _minibatch

    seen = []
    original = _minibatch.MiniBatchKMeans._seed

    def spy(self, placement, X_rows, sample_weight, n_clusters, init_size, *args, **kwargs):
        seen.append(init_size)
        return original(self, placement, X_rows, sample_weight, n_clusters, init_size, *args, **kwargs)

    monkeypatch.setattr(_minibatch.MiniBatchKMeans, "_seed", spy)
    with pytest.warns(RuntimeWarning, match=r"init_size=2 should be larger than n_clusters=5"):
        MiniBatchKMeans(n_clusters=5, init_size=2, n_init=1, random_state=0).fit(X)
    assert seen == [15]  # 3 * n_clusters, as scikit-learn does
    seen.clear()
    with pytest.warns(RuntimeWarning, match="init_size"):
        MiniBatchKMeans(n_clusters=20, init_size=3, n_init=1, random_state=0).fit(X)
    assert seen == [40]  # min(3 * n_clusters, n_samples)


def test_minibatch_init_size_at_least_n_clusters_is_silent(X):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        MiniBatchKMeans(n_clusters=2, init_size=5, n_init=1, random_state=0).fit(X)


# -------------------------------------------------------- working_memory
@pytest.mark.parametrize("name", list(ALL_ESTIMATORS))
@pytest.mark.parametrize(
    "working_memory,error,match",
    [(0, ValueError, "positive"), (-1, ValueError, "positive"), (float("nan"), ValueError, "finite"),
     (float("inf"), ValueError, "finite"), ("abc", TypeError, "number of MiB"), ("1" * 5000, TypeError, "number of MiB"),
     (True, TypeError, "number of MiB")],
    ids=["zero", "negative", "nan", "inf", "string", "long-string", "bool"],
)
def test_every_estimator_validates_working_memory(X, name, working_memory, error, match):
    with pytest.raises(error, match=f"working_memory.*{match}|{match}.*working_memory|working_memory must be a {match}"):
        ALL_ESTIMATORS[name](working_memory=working_memory).fit(X)


@pytest.mark.parametrize("name", list(ALL_ESTIMATORS))
def test_predict_validates_working_memory_too(X, name):
    model = ALL_ESTIMATORS[name](random_state=0).fit(X)
    model.set_params(working_memory=-5)
    with pytest.raises(ValueError, match="working_memory"):
        model.predict(X)
