"""scikit-learn's own estimator checks, for every kgpu estimator (NumPy input).

One expected failure (on dense and, for the estimators that declare sparse
support, on sparse data), the same scikit-learn declares for its own KMeans,
MiniBatchKMeans and BisectingKMeans: with a random initialisation (or random
batches) the draws for weighted data and for the same data with repeated rows
differ, so ``sample_weight`` is not exactly equivalent to repeating samples.
From a fixed initialisation it is, and each estimator's test file checks that.
"""

from __future__ import annotations

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from kgpu import BisectingKMeans, KMeans, KMedians, KMedoids, MiniBatchKMeans

ESTIMATORS = [
    KMeans(),
    MiniBatchKMeans(),
    KMedians(),
    KMedoids(),
    KMedoids(method="pam", metric="manhattan"),
    BisectingKMeans(),
]


def _expected_failed_checks(estimator):
    draws = "random batches" if isinstance(estimator, MiniBatchKMeans) else "a random init"
    reason = f"sample_weight is not equivalent to removing/repeating samples under {draws}."
    expected = {"check_sample_weight_equivalence_on_dense_data": reason}
    if estimator.__sklearn_tags__().input_tags.sparse:
        expected["check_sample_weight_equivalence_on_sparse_data"] = reason
    return expected


@pytest.mark.slow
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    # Tiny check data sets with fewer distinct points than clusters warn, as
    # scikit-learn's own estimators do; the checks are about the API.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
