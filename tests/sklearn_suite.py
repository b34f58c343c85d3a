"""scikit-learn's own K-Means test files, run with kgpu's classes in place of scikit-learn's.

The test files ship in the scikit-learn wheel (``sklearn/cluster/tests/``).
Each is copied to a temporary directory with its import of the public
estimators rewritten to import kgpu's, then run by pytest in a subprocess
(with scikit-learn's own ``conftest`` loaded as a plugin, for its
``global_random_seed`` fixture). Everything else in the files -- scikit-learn's
data sets, metrics and assertion helpers -- stays scikit-learn's.

Left out (:data:`LEFT_OUT`) are only the tests that exercise scikit-learn's
private helpers instead of the estimators; each entry says which.

Run as a script to print where kgpu stands::

    python -m tests.sklearn_suite            # summary, and every failure
    python -m tests.sklearn_suite -k elkan   # extra pytest arguments pass through
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import NamedTuple

import sklearn

SKLEARN_TESTS = Path(sklearn.__file__).parent / "cluster" / "tests"

#: Test file -> (the import line to rewrite, its kgpu replacement).
FILES = {
    "test_k_means.py": (
        "from sklearn.cluster import KMeans, MiniBatchKMeans, k_means, kmeans_plusplus",
        "from kgpu import KMeans, MiniBatchKMeans, k_means, kmeans_plusplus",
    ),
    "test_bisect_k_means.py": (
        "from sklearn.cluster import BisectingKMeans",
        "from kgpu import BisectingKMeans",
    ),
}

#: Tests not run, by node name (every parametrization), with the reason.
LEFT_OUT = {
    "test_k_means.py::test_relocate_empty_clusters": (
        "calls scikit-learn's private Cython helpers _relocate_empty_clusters_dense/_sparse directly"
    ),
    "test_k_means.py::test_minibatch_update_consistency": (
        "calls scikit-learn's private _mini_batch_step and _labels_inertia directly"
    ),
    "test_k_means.py::test_minibatch_reassign": (
        "calls scikit-learn's private _mini_batch_step directly"
    ),
    "test_k_means.py::test_euclidean_distance": (
        "calls scikit-learn's private _euclidean_dense_dense_wrapper / _euclidean_sparse_dense_wrapper"
    ),
    "test_k_means.py::test_inertia": (
        "calls scikit-learn's private _inertia_dense / _inertia_sparse"
    ),
    "test_k_means.py::test_is_same_clustering": (
        "tests scikit-learn's private _is_same_clustering helper, no estimator involved"
    ),
    "test_k_means.py::test_sample_weight_init": (
        "calls the private method KMeans._init_centroids of scikit-learn's class"
    ),
    "test_k_means.py::test_sample_weight_zero": (
        "calls the private method KMeans._init_centroids of scikit-learn's class"
    ),
}


class Outcome(NamedTuple):
    """Result of one test node: ``"passed"``, ``"failed"`` or ``"skipped"``, and the message."""

    status: str
    message: str


def prepare(directory: Path) -> list[Path]:
    """Copy the test files into ``directory`` with kgpu's imports; the copies' paths.

    Raises
    ------
    RuntimeError
        When a file no longer holds the import line it should (a new
        scikit-learn release): the swap would silently test scikit-learn.
    """
    copies = []
    for name, (original, replacement) in FILES.items():
        source = (SKLEARN_TESTS / name).read_text()
        if original not in source:
            raise RuntimeError(f"{name} of scikit-learn {sklearn.__version__} has no line {original!r}")
        copy = directory / name
        copy.write_text(source.replace(original, replacement))
        copies.append(copy)
    return copies


def run(directory: Path, extra_args: list[str] | None = None, timeout: float = 900) -> dict[str, Outcome]:
    """Run the swapped test files under ``directory``; the outcome of every test node.

    Node ids are ``"<file>::<test>[<params>]"``.
    """
    copies = prepare(directory)
    report = directory / "report.xml"
    deselect = [arg for node in LEFT_OUT for arg in ("--deselect", node)]
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "sklearn.conftest", "-p", "no:cacheprovider",
        "--rootdir", str(directory), "-o", "addopts=", "--junitxml", str(report),
        *deselect, *(extra_args or []), *map(str, copies),
    ]
    env = dict(os.environ)
    # The tree under test must win over any installed kgpu, in the child too.
    repository = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repository, env.get("PYTHONPATH")]))
    env.setdefault("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42")
    # The float32 parametrizations run too (scikit-learn skips them by default).
    env["SKLEARN_RUN_FLOAT32_TESTS"] = "1"
    completed = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    return _parse(report)


def _parse(report: Path) -> dict[str, Outcome]:
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        node = f"{module}.py::{case.get('name')}"
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, message = "failed", (child.get("message") or "")[:300]
                break
            if child.tag == "skipped":
                status, message = "skipped", (child.get("message") or "")[:300]
        if status == "failed" or node not in outcomes:
            outcomes[node] = Outcome(status, message)
    return outcomes


def test_name(node: str) -> str:
    """``"file.py::test_x[params]"`` without its parameters."""
    return re.sub(r"\[.*\]$", "", node)


def main(argv: list[str]) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        outcomes = run(Path(directory), argv)
    counts = {status: sum(o.status == status for o in outcomes.values()) for status in ("passed", "failed", "skipped")}
    for node, outcome in sorted(outcomes.items()):
        if outcome.status == "failed":
            print(f"FAILED {node}: {outcome.message}")
    print(
        f"scikit-learn {sklearn.__version__} K-Means tests with kgpu: {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped, {len(LEFT_OUT)} tests left out"
    )
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
