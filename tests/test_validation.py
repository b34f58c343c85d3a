"""Bad input (SPEC §6): a clear ValueError / TypeError naming the problem.

Array inputs run on every backend: NumPy input goes through scikit-learn's
validation, arrays of other namespaces through kgpu's own
(``kgpu._validation._check_foreign``); both must name the problem.
Also: the caller's arrays are never modified, and read-only arrays work.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

from kgpu import KMeans, kmeans_plusplus
from kgpu._validation import non_finite_message

from ._helpers import asarray, assert_close, assert_equal, dtype_name, to_numpy


@functools.lru_cache(maxsize=None)
def _data(n_samples=40, n_features=3, seed=0):
    X = np.random.default_rng(seed).normal(size=(n_samples, n_features))
    X[: n_samples // 2] += 5.0  # two groups
    X.setflags(write=False)
    return X


def _fitted(X, n_clusters=2):
    return KMeans(n_clusters=n_clusters, random_state=0).fit(X)


# -------------------------------------------------------------- X itself ---


def _with_value(value):
    X = np.array(_data(), copy=True)
    X[3, 1] = value
    return X


BAD_ARRAYS = [
    pytest.param(lambda: _with_value(np.nan), ValueError, "NaN", id="nan"),
    pytest.param(lambda: _with_value(np.inf), ValueError, "infinity", id="inf"),
    pytest.param(lambda: _with_value(-np.inf), ValueError, "infinity", id="-inf"),
    pytest.param(lambda: np.empty((0, 3)), ValueError, r"0 sample\(s\)", id="no-rows"),
    pytest.param(lambda: np.empty((5, 0)), ValueError, r"0 feature\(s\)", id="no-columns"),
    pytest.param(lambda: np.array(_data()[:, 0]), ValueError, "Expected 2D array, got 1D", id="1-D"),
    pytest.param(lambda: np.array(_data()).reshape(40, 3, 1), ValueError, "(dim 3|3D)", id="3-D"),
    pytest.param(lambda: _data().astype(np.complex128), ValueError, "[Cc]omplex", id="complex"),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD_ARRAYS)
def test_bad_X_in_fit(xp, make, error, match):
    X = asarray(xp, make())
    with pytest.raises(error, match=match):
        KMeans(n_clusters=2).fit(X)


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", [0, 21, 39])
@pytest.mark.parametrize(
    "params",
    [
        dict(init="k-means++"),
        dict(init=np.zeros((2, 3)), n_init=1, copy_x=False),
        dict(init="random", algorithm="elkan", n_init=2),
    ],
    ids=["k-means++", "array-uncentered", "elkan"],
)
def test_non_finite_X_in_kmeans_fit_has_one_message_on_every_path(xp, value, problem, dtype, row, params):
    # A Euclidean K-Means fit finds non-finite values in its first pass over
    # X (the working frame's largest |x|), not in a scan of its own: that
    # pass must refuse them wherever they are, with one message on every backend.
    values = np.array(_data(), dtype=dtype)
    values[row, 2] = value
    X = asarray(xp, values)
    with pytest.raises(ValueError, match=f"^{re.escape(non_finite_message(problem))}$"):
        KMeans(n_clusters=2, random_state=0, **params).fit(X)
    np.testing.assert_array_equal(to_numpy(X)[row], values[row])


def test_nan_beside_an_infinity_is_named_as_nan(xp):
    values = _with_value(np.inf)
    values[30, 0] = np.nan
    with pytest.raises(ValueError, match=f"^{re.escape(non_finite_message('NaN'))}$"):
        KMeans(n_clusters=2, random_state=0).fit(asarray(xp, values))


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "NaN"), (-np.inf, "infinity")])
def test_non_finite_memory_mapped_X_is_refused(tmp_path, value, problem):
    path = tmp_path / "X.npy"
    np.save(path, _with_value(value).astype(np.float32))
    with pytest.raises(ValueError, match=f"^{re.escape(non_finite_message(problem))}$"):
        KMeans(n_clusters=2, random_state=0).fit(np.load(path, mmap_mode="r"))


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "NaN"), (np.inf, "infinity")])
def test_non_finite_X_in_cosine_fit(xp, value, problem):
    with pytest.raises(ValueError, match=problem):
        KMeans(n_clusters=2, metric="cosine", random_state=0).fit(asarray(xp, _with_value(value)))


@pytest.mark.parametrize(("make", "error", "match"), BAD_ARRAYS)
@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_bad_X_after_fit(xp, make, error, match, method):
    km = _fitted(asarray(xp, _data()))
    bad = make()
    if bad.ndim == 2 and bad.shape[1] == 0:
        match = "(0 feature|features)"
    with pytest.raises(error, match=match):
        getattr(km, method)(asarray(xp, bad))


@pytest.mark.parametrize(("make", "error", "match"), BAD_ARRAYS)
def test_bad_X_in_kmeans_plusplus(xp, make, error, match):
    with pytest.raises(error, match=match):
        kmeans_plusplus(asarray(xp, make()), 2, random_state=0)


def test_non_numeric_numpy_dtypes():
    strings = np.array([["a", "b"], ["c", "d"], ["e", "f"]])
    with pytest.raises(TypeError, match="non-numeric dtype"):
        KMeans(n_clusters=2).fit(strings)
    with pytest.raises(TypeError, match="non-numeric dtype"):
        KMeans(n_clusters=2).fit(strings.astype(bytes))
    with pytest.raises(TypeError, match="non-numeric dtype"):
        KMeans(n_clusters=2).fit(np.array([["2020-01-01"], ["2021-01-01"]], dtype="datetime64[D]"))
    objects = np.array([["a", 1.0], [2.0, 3.0], [4.0, 5.0]], dtype=object)
    with pytest.raises((TypeError, ValueError), match="(non-numeric|string)"):
        KMeans(n_clusters=2).fit(objects)
    # An object array that holds numbers is fine (scikit-learn converts it).
    km = KMeans(n_clusters=2, random_state=0).fit(_data().astype(object))
    assert_equal(km.labels_, _fitted(_data()).labels_)


def test_boolean_input_is_clustered_as_float64(xp):
    # Every backend follows scikit-learn, which converts bool to float64.
    flags = _data() > 0
    km = KMeans(n_clusters=2, random_state=0).fit(asarray(xp, flags))
    reference = KMeans(n_clusters=2, random_state=0).fit(flags.astype(np.float64))
    assert dtype_name(km.cluster_centers_) == "float64"
    assert_equal(km.labels_, reference.labels_)


def test_sparse_input_is_rejected_without_sparse_support():
    # The K-Means family takes sparse rows (tests/test_sparse.py); K-Medians does not.
    from kgpu import KMedians

    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="Sparse input is not supported"):
        KMedians(n_clusters=2).fit(scipy_sparse.csr_matrix(_data()))


def test_fewer_samples_than_clusters(xp):
    X = asarray(xp, _data()[:5])
    with pytest.raises(ValueError, match=r"n_samples=5 should be >= n_clusters=6"):
        KMeans(n_clusters=6).fit(X)
    with pytest.raises(ValueError, match=r"n_samples=5 should be >= n_clusters=6"):
        kmeans_plusplus(X, 6)


def test_mismatched_feature_count(xp):
    km = _fitted(asarray(xp, _data()))
    narrow = asarray(xp, _data()[:, :2])
    wide = asarray(xp, np.hstack([_data(), _data()[:, :1]]))
    for method in ("predict", "transform", "score"):
        with pytest.raises(ValueError, match="X has 2 features, but KMeans is expecting 3 features"):
            getattr(km, method)(narrow)
        with pytest.raises(ValueError, match="X has 4 features, but KMeans is expecting 3 features"):
            getattr(km, method)(wide)


def test_methods_before_fit():
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "transform", "score"):
        with pytest.raises(NotFittedError):
            getattr(KMeans(n_clusters=2), method)(_data())


# ----------------------------------------------------------- parameters ---


@pytest.mark.parametrize(
    ("n_clusters", "error", "match"),
    [
        (0, ValueError, "n_clusters must be >= 1, got 0"),
        (-3, ValueError, "n_clusters must be >= 1, got -3"),
        (2.5, TypeError, "n_clusters must be an int, got 2.5"),
        (2.0, TypeError, "n_clusters must be an int"),
        ("3", TypeError, "n_clusters must be an int"),
        (True, TypeError, "n_clusters must be an int"),
        (None, TypeError, "n_clusters must be an int"),
    ],
)
def test_bad_n_clusters(n_clusters, error, match):
    with pytest.raises(error, match=match):
        KMeans(n_clusters=n_clusters).fit(_data())
    with pytest.raises(error, match=match):
        kmeans_plusplus(_data(), n_clusters)


def test_numpy_integer_n_clusters_is_accepted():
    assert to_numpy(KMeans(n_clusters=np.int64(2), random_state=0).fit(_data()).cluster_centers_).shape == (2, 3)


@pytest.mark.parametrize(
    ("param", "value", "error", "match"),
    [
        ("max_iter", 0, ValueError, "max_iter must be >= 1"),
        ("max_iter", -5, ValueError, "max_iter must be >= 1"),
        ("max_iter", 1.5, TypeError, "max_iter must be an int"),
        ("max_iter", "10", TypeError, "max_iter must be an int"),
        ("max_iter", None, TypeError, "max_iter must be an int"),
        ("tol", -1e-3, ValueError, "tol must be finite and >= 0"),
        ("tol", np.nan, ValueError, "tol must be finite and >= 0"),
        ("tol", np.inf, ValueError, "tol must be finite and >= 0"),
        ("tol", "small", TypeError, "tol must be a real number"),
        ("tol", None, TypeError, "tol must be a real number"),
        ("n_init", 0, ValueError, "n_init must be >= 1"),
        ("n_init", -2, ValueError, "n_init must be >= 1"),
        ("n_init", 1.5, TypeError, "n_init must be an int"),
        ("n_init", "many", TypeError, "n_init must be an int"),
        ("n_init", None, TypeError, "n_init must be an int"),
        ("backend", "tensorflow", ValueError, "backend must be one of"),
    ],
)
def test_bad_parameters(param, value, error, match):
    with pytest.raises(error, match=match):
        KMeans(n_clusters=2, **{param: value}).fit(_data())


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan")])
def test_non_positive_working_memory(value):
    with pytest.raises(ValueError, match="working_memory must be a positive, finite number of MiB"):
        KMeans(n_clusters=2, working_memory=value).fit(_data())


def test_non_numeric_working_memory_is_named():
    with pytest.raises(TypeError, match="working_memory must be a number of MiB"):
        KMeans(n_clusters=2, working_memory="8MiB").fit(_data())


@pytest.mark.parametrize("init", ["kmeans++", "Random", "", "forgy"])
def test_unknown_init_string(init):
    with pytest.raises(ValueError, match=rf"init must be one of \(.*'k-means\+\+'.*'random'.*\).*got {re.escape(repr(init))}"):
        KMeans(n_clusters=2, init=init).fit(_data())


def test_init_array_of_wrong_shape(xp):
    X = asarray(xp, _data())
    shape_message = r"shape of the initial centers \({}, {}\) does not match .*\(n_clusters, n_features\) = \(2, 3\) for centers given by init"
    with pytest.raises(ValueError, match=shape_message.format(3, 3)):
        KMeans(n_clusters=2, init=asarray(xp, _data()[:3])).fit(X)
    with pytest.raises(ValueError, match=shape_message.format(2, 2)):
        KMeans(n_clusters=2, init=asarray(xp, _data()[:2, :2])).fit(X)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D"):
        KMeans(n_clusters=2, init=asarray(xp, _data()[0])).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        KMeans(n_clusters=2, init=asarray(xp, np.full((2, 3), np.nan))).fit(X)


def test_init_callable_returning_wrong_shape(xp):
    def init(X, n_clusters, random_state):
        return np.zeros((n_clusters + 1, 3))

    with pytest.raises(ValueError, match=r"initial centers \(3, 3\) does not match the number of clusters 2.*given by the init callable"):
        KMeans(n_clusters=2, init=init).fit(asarray(xp, _data()))


def test_kmeans_plusplus_bad_arguments():
    with pytest.raises(ValueError, match="n_local_trials must be >= 1"):
        kmeans_plusplus(_data(), 2, n_local_trials=0)
    with pytest.raises(ValueError, match=r"length of x_squared_norms \(3,\) should be equal to the length of n_samples 40"):
        kmeans_plusplus(_data(), 2, x_squared_norms=np.ones(3))


# -------------------------------------------------------- sample_weight ---


def _weights_with(value, index=4):
    weights = np.ones(40)
    weights[index] = value
    return weights


BAD_WEIGHTS = [
    pytest.param(lambda: np.ones(39), ValueError, r"sample_weight.shape == \(39,\), expected \(40,\)", id="too-short"),
    pytest.param(lambda: np.ones(41), ValueError, r"sample_weight.shape == \(41,\), expected \(40,\)", id="too-long"),
    pytest.param(lambda: np.ones((40, 1)), ValueError, r"sample_weight.shape == \(40, 1\)", id="2-D"),
    pytest.param(lambda: _weights_with(-0.5), ValueError, "Negative values in data passed to sample_weight", id="negative"),
    pytest.param(lambda: _weights_with(np.nan), ValueError, "sample_weight contains NaN", id="nan"),
    pytest.param(lambda: _weights_with(np.inf), ValueError, "sample_weight contains NaN or infinity", id="inf"),
    pytest.param(lambda: np.zeros(40), ValueError, "sample_weight sums to zero", id="all-zero"),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD_WEIGHTS)
def test_bad_sample_weight(xp, make, error, match):
    X = asarray(xp, _data())
    weights = asarray(xp, make())
    with pytest.raises(error, match=match):
        KMeans(n_clusters=2).fit(X, sample_weight=weights)
    with pytest.raises(error, match=match):
        kmeans_plusplus(X, 2, sample_weight=weights)
    km = _fitted(X)
    with pytest.raises(error, match=match):
        km.score(X, sample_weight=weights)


@pytest.mark.parametrize(
    ("weight", "match"),
    [(-1.0, "Negative values"), (0.0, "sums to zero"), (np.nan, "NaN")],
)
def test_bad_scalar_sample_weight(weight, match):
    with pytest.raises(ValueError, match=match):
        KMeans(n_clusters=2).fit(_data(), sample_weight=weight)


def test_non_numeric_sample_weight():
    with pytest.raises(TypeError, match="sample_weight must be numeric"):
        KMeans(n_clusters=2).fit(_data(), sample_weight=np.array(["a"] * 40))


# ------------------------------------------- the caller's data is kept ---


def _snapshot(array):
    return np.array(to_numpy(array), copy=True)


@pytest.mark.parametrize("copy_x", [True, False], ids=["copy_x", "no-copy_x"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_callers_arrays_are_never_modified(xp, copy_x, dtype):
    X = asarray(xp, _data().astype(dtype))
    X_new = asarray(xp, _data(seed=1).astype(dtype))
    weights = asarray(xp, np.linspace(0.5, 2.0, 40))
    init = asarray(xp, _data()[[0, 39]].astype(dtype))
    originals = [(array, _snapshot(array)) for array in (X, X_new, weights, init)]

    km = KMeans(n_clusters=2, init=init, copy_x=copy_x)
    km.fit(X, sample_weight=weights)
    km.predict(X_new)
    km.transform(X_new)
    km.score(X_new, sample_weight=weights)
    km.fit_predict(X, sample_weight=weights)
    km.fit_transform(X, sample_weight=weights)
    KMeans(n_clusters=2, random_state=0, copy_x=copy_x, init="random").fit(X, sample_weight=weights)
    kmeans_plusplus(X, 2, sample_weight=weights, random_state=0)

    for array, before in originals:
        assert_equal(array, before, err_msg="kgpu modified an input array")


@pytest.mark.parametrize("backend", ["torch", "array_api_strict"])
@pytest.mark.parametrize("copy_x", [True, False], ids=["copy_x", "no-copy_x"])
def test_numpy_input_computed_elsewhere_is_never_modified(backend, copy_x):
    # torch.asarray aliases a NumPy buffer: moving the data must not let a
    # kernel write into the caller's array.
    if backend == "torch":
        pytest.importorskip("torch")
    X = np.array(_data(), copy=True)
    weights = np.linspace(0.5, 2.0, 40)
    saved_X, saved_weights = X.copy(), weights.copy()
    km = KMeans(n_clusters=2, random_state=0, backend=backend, copy_x=copy_x).fit(X, sample_weight=weights)
    km.predict(X)
    km.transform(X)
    km.score(X, sample_weight=weights)
    assert_equal(X, saved_X)
    assert_equal(weights, saved_weights)


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable:UserWarning")
@pytest.mark.parametrize("backend", [None, "torch", "array_api_strict"])
def test_read_only_numpy_input(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    X = np.array(_data(), copy=True)
    weights = np.linspace(0.5, 2.0, 40)
    init = np.array(X[[0, 39]], copy=True)
    expected = KMeans(n_clusters=2, init=init).fit(X, sample_weight=weights)
    for array in (X, weights, init):
        array.setflags(write=False)

    km = KMeans(n_clusters=2, init=init, backend=backend).fit(X, sample_weight=weights)
    assert_equal(km.labels_, expected.labels_)
    assert km.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)
    assert_close(km.cluster_centers_, expected.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_equal(km.predict(X), expected.labels_)
    assert_close(km.transform(X), expected.transform(X), rtol=1e-10, atol=1e-12)
    assert km.score(X, sample_weight=weights) == pytest.approx(expected.score(X, sample_weight=weights), rel=1e-10)
    kmeans_plusplus(X, 2, sample_weight=weights, random_state=0, backend=backend)
    assert not X.flags.writeable and not weights.flags.writeable


@pytest.mark.parametrize(
    "init",
    [
        "k-means++",
        "random",
        "random-partition",
        "k-means||",
        "array",
    ],
)
def test_read_only_memmap(tmp_path, init):
    path = tmp_path / "X.npy"
    np.save(path, _data())
    X = np.load(path, mmap_mode="r")
    init = np.array(_data()[[0, 39]]) if init == "array" else init
    weights = np.linspace(0.5, 2.0, 40)
    km = KMeans(n_clusters=2, init=init, random_state=0).fit(X, sample_weight=weights)
    expected = KMeans(n_clusters=2, init=init, random_state=0).fit(_data(), sample_weight=weights)
    assert_equal(km.labels_, expected.labels_)
    assert km.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)
    assert_equal(km.predict(X), expected.labels_)
    assert_close(km.transform(X), expected.transform(_data()), rtol=1e-10, atol=1e-12)
    assert km.score(X) == pytest.approx(expected.score(_data()), rel=1e-10)
    assert_equal(np.load(path), _data())


def test_list_input():
    km = KMeans(n_clusters=2, random_state=0).fit(_data().tolist())
    assert_equal(km.labels_, _fitted(_data()).labels_)
    assert isinstance(km.cluster_centers_, np.ndarray)
