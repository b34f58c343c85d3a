"""``algorithm="elkan"`` and sparse input against scikit-learn, side by side.

1. Elkan: kgpu's ``algorithm="elkan"`` (Hamerly's bounds) against kgpu's
   Lloyd and scikit-learn's ``"lloyd"`` and ``"elkan"``, on clustered data
   (``make_blobs``) at low / high ``d`` and ``k``. Every contender starts
   from the same centers with ``tol=0`` and the same ``max_iter``; the table
   shows the iterations actually run (kgpu's two give the same count).
2. Sparse: KMeans on a synthetic TF-IDF-like matrix of the shape and density
   of 20 newsgroups (11,314 x 130,107, about 0.1 % non-zeros, Zipf-distributed
   columns, rows L2-normalised), kgpu against scikit-learn, same initial
   centers, same number of Lloyd iterations; MiniBatchKMeans too; and the
   silhouette of the sparse rows (a sample of rows drawn as scikit-learn draws them).

Repeats alternate between the contenders (A, B, C, A, B, C...) and medians are
reported, so a noisy shared machine slows all of them alike; the numbers are
still only as steady as the machine.

    python bench/bench_elkan_sparse.py
    python bench/bench_elkan_sparse.py --repeats 5 --out bench/results/elkan-sparse.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
import sklearn.cluster
import sklearn.metrics
from sklearn.datasets import make_blobs

import kgpu
import kgpu.metrics
from kgpu._bench import machine_description, publish

ELKAN_CASES = [(100_000, 4, 8), (100_000, 4, 128), (50_000, 128, 8), (50_000, 128, 128)]


def interleaved(contenders: dict, repeats: int) -> dict:
    """Median seconds and the last result of every contender, the repeats interleaved."""
    times = {name: [] for name in contenders}
    results = {}
    for _ in range(repeats):
        for name, fit in contenders.items():
            started = time.perf_counter()
            results[name] = fit()
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(times[name]), results[name]) for name in contenders}


def bench_elkan(repeats: int, max_iter: int) -> list[str]:
    lines = [
        "| n x d, k | contender | iterations | fit (s) | vs scikit-learn elkan | vs kgpu lloyd |",
        "|---|---|---|---|---|---|",
    ]
    for n, d, k in ELKAN_CASES:
        X, _ = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=2.0, random_state=0)
        X = X.astype(np.float32)
        init = X[np.random.default_rng(0).choice(n, k, replace=False)]

        def sk(algorithm):
            return lambda: sklearn.cluster.KMeans(k, init=init, n_init=1, tol=0, max_iter=max_iter, algorithm=algorithm).fit(X).n_iter_

        def ours(algorithm):
            return lambda: kgpu.KMeans(k, init=init, n_init=1, tol=0, max_iter=max_iter, algorithm=algorithm).fit(X).n_iter_

        contenders = {"scikit-learn lloyd": sk("lloyd"), "scikit-learn elkan": sk("elkan"),
                      "kgpu lloyd": ours("lloyd"), "kgpu elkan": ours("elkan")}
        timings = interleaved(contenders, repeats)
        sk_elkan, kgpu_lloyd = timings["scikit-learn elkan"][0], timings["kgpu lloyd"][0]
        for name, (seconds, n_iter) in timings.items():
            lines.append(
                f"| {n:,} x {d}, {k} | {name} | {n_iter} | {seconds:.3f} | {seconds / sk_elkan:.2f}x | {seconds / kgpu_lloyd:.2f}x |"
            )
    return lines


def tfidf_like(n_samples: int, n_features: int, density: float, random_state: int = 0) -> sp.csr_matrix:
    """A TF-IDF-shaped CSR matrix: Zipf column frequencies, a topic per row, L2-normalised rows."""
    rng = np.random.default_rng(random_state)
    per_row = rng.poisson(density * n_features, n_samples).clip(1)
    rank_weight = 1.0 / np.arange(1, n_features + 1) ** 1.07
    topics = rng.integers(0, 20, n_samples)
    # Each topic favours its own slice of the vocabulary.
    topic_columns = rng.permutation(n_features).reshape(20, -1) if n_features % 20 == 0 else None
    indptr = np.concatenate([[0], np.cumsum(per_row)])
    columns = rng.choice(n_features, size=indptr[-1], p=rank_weight / rank_weight.sum())
    if topic_columns is not None:
        own = rng.random(indptr[-1]) < 0.3
        rows = np.repeat(np.arange(n_samples), per_row)
        columns[own] = topic_columns[topics[rows[own]], rng.integers(0, topic_columns.shape[1], own.sum())]
    values = rng.exponential(1.0, indptr[-1]) * np.log(n_samples / (1 + rank_weight[columns] * n_samples)).clip(1)
    X = sp.csr_matrix((values, columns, indptr), shape=(n_samples, n_features))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / norms) @ X)


#: Rows of the sparse silhouette (sampled as scikit-learn samples them, same seed).
SILHOUETTE_SAMPLE = 4000


def bench_sparse(repeats: int, max_iter: int, n_clusters: int) -> tuple[list[str], str]:
    X = tfidf_like(11_314, 130_120, 0.001)
    init = X[np.random.default_rng(0).choice(X.shape[0], n_clusters, replace=False)].toarray()
    described = (f"{X.shape[0]:,} x {X.shape[1]:,} CSR float64, {X.nnz:,} non-zeros "
                 f"({100 * X.nnz / (X.shape[0] * X.shape[1]):.3f} %), k={n_clusters}")
    contenders = {
        "scikit-learn KMeans": lambda: sklearn.cluster.KMeans(n_clusters, init=init, n_init=1, tol=0, max_iter=max_iter).fit(X).inertia_,
        "kgpu KMeans": lambda: kgpu.KMeans(n_clusters, init=init, n_init=1, tol=0, max_iter=max_iter).fit(X).inertia_,
        "scikit-learn MiniBatchKMeans": lambda: sklearn.cluster.MiniBatchKMeans(
            n_clusters, init=init, n_init=1, random_state=0, max_iter=max_iter, batch_size=1024).fit(X).inertia_,
        "kgpu MiniBatchKMeans": lambda: kgpu.MiniBatchKMeans(
            n_clusters, init=init, n_init=1, random_state=0, max_iter=max_iter, batch_size=1024).fit(X).inertia_,
    }
    labels = kgpu.KMeans(n_clusters, init=init, n_init=1, max_iter=5).fit(X).labels_
    for metric in ("euclidean", "cosine"):
        contenders[f"scikit-learn silhouette_score {metric}"] = lambda metric=metric: sklearn.metrics.silhouette_score(
            X, labels, metric=metric, sample_size=SILHOUETTE_SAMPLE, random_state=0)
        contenders[f"kgpu silhouette_score {metric}"] = lambda metric=metric: kgpu.metrics.silhouette_score(
            X, labels, metric=metric, sample_size=SILHOUETTE_SAMPLE, random_state=0)
    timings = interleaved(contenders, repeats)
    lines = ["| contender | time (s) | vs scikit-learn (same estimator / score) | inertia or score |", "|---|---|---|---|"]
    for name, (seconds, value) in timings.items():
        reference = timings["scikit-learn " + name.split(" ", 1)[1]][0]
        lines.append(f"| {name} | {seconds:.3f} | {seconds / reference:.2f}x | {value:.6g} |")
    return lines, described


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=30, help="Lloyd iterations at most (tol=0)")
    parser.add_argument("--sparse-k", type=int, default=20)
    parser.add_argument("--skip", choices=["elkan", "sparse"], default=None)
    parser.add_argument("--out", default=None, help="also write the tables (with machine and command) here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    command = " ".join(["python bench/bench_elkan_sparse.py"] + list(argv if argv is not None else sys.argv[1:]))
    lines = [
        f"algorithm='elkan' and sparse input, median of {args.repeats} interleaved repeats",
        "",
        machine_description() + " (a shared machine: other jobs ran at the same time)",
        f"{datetime.date.today().isoformat()}: `{command}`",
    ]
    if args.skip != "elkan":
        lines += ["", f"Elkan: make_blobs float32, cluster_std=2, tol=0, max_iter={args.max_iter}, same initial centers", ""]
        lines += bench_elkan(args.repeats, args.max_iter)
    if args.skip != "sparse":
        sparse_lines, described = bench_sparse(args.repeats, args.max_iter, args.sparse_k)
        lines += ["", f"Sparse (synthetic TF-IDF of 20-newsgroups shape): {described}, max_iter={args.max_iter}, "
                  "tol=0, same initial centers", ""]
        lines += sparse_lines
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines[2] += f"; load average at the end: {load}"
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
