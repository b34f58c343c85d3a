"""scikit-learn's own K-Means tests pass with kgpu's classes swapped in.

:mod:`tests.sklearn_suite` runs ``sklearn/cluster/tests/test_k_means.py`` and
``test_bisect_k_means.py`` from the installed wheel with kgpu's ``KMeans``,
``MiniBatchKMeans``, ``BisectingKMeans``, ``k_means`` and ``kmeans_plusplus``
(leaving out, with the reason, only the tests of scikit-learn's private
helpers). Every test must pass except those listed in :data:`KNOWN_FAILING`,
each with what kgpu lacks; a listed test that no longer fails must leave the
list, so the list is always the truth.
"""

from __future__ import annotations

import pytest

from . import sklearn_suite

#: Tests (every parametrization) that still fail, with the reason.
KNOWN_FAILING: dict[str, str] = {}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return sklearn_suite.run(tmp_path_factory.mktemp("sklearn_suite"))


@pytest.mark.slow
def test_sklearn_kmeans_suite_passes(outcomes):
    assert len(outcomes) > 250, f"only {len(outcomes)} tests collected"
    unexpected = {
        node: outcome.message
        for node, outcome in outcomes.items()
        if outcome.status == "failed"
        and sklearn_suite.test_name(node) not in KNOWN_FAILING
    }
    assert not unexpected, "scikit-learn tests failing with kgpu:\n" + "\n".join(f"{n}: {m}" for n, m in unexpected.items())
    skipped = {node: outcome.message for node, outcome in outcomes.items() if outcome.status == "skipped"}
    assert not skipped, f"skipped: {skipped}"


@pytest.mark.slow
def test_known_failures_are_current(outcomes):
    failing_names = {sklearn_suite.test_name(n) for n, o in outcomes.items() if o.status == "failed"}
    fixed = sorted(set(KNOWN_FAILING) - failing_names)
    assert not fixed, f"these pass now, take them out of KNOWN_FAILING: {fixed}"


@pytest.mark.slow
def test_left_out_tests_exist_and_are_not_run(outcomes):
    collected_names = {sklearn_suite.test_name(node) for node in outcomes}
    assert not set(sklearn_suite.LEFT_OUT) & collected_names
    for name in sklearn_suite.LEFT_OUT:
        file_name, test = name.split("::")
        assert f"def {test}(" in (sklearn_suite.SKLEARN_TESTS / file_name).read_text(), name
