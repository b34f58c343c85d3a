"""kgpu's metrics and choose_k against the same work written with scikit-learn.

Two problems, each timed side by side in one process with the repeats
interleaved (kgpu, scikit-learn, kgpu, scikit-learn...) so that a noisy
machine slows both alike; medians are reported as a Markdown table.

1. ``silhouette_score`` on all rows of blobs (default 20,000 x 32, float64):
   :func:`kgpu.metrics.silhouette_score` vs :func:`sklearn.metrics.silhouette_score`.
2. Choosing k over ``k = 2..12`` on blobs (default 200,000 x 16, float32):
   :func:`kgpu.select.choose_k` vs the loop a scikit-learn user writes --
   ``KMeans(n_clusters=k)`` then ``silhouette_score`` (same ``sample_size``
   and seed), ``calinski_harabasz_score``, ``davies_bouldin_score`` and the
   knee of the inertia; with ``--n-refs B > 0`` both also compute the gap
   statistic from ``B`` uniform reference sets per k.

    python bench/bench_metrics_select.py
    python bench/bench_metrics_select.py --backend cupy --n 2000000 --out bench/results/metrics_select_gpu.md
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np
from sklearn.datasets import make_blobs


def silhouette_contenders(X: np.ndarray, labels: np.ndarray, backend: str | None) -> dict[str, Callable[[], Any]]:
    import sklearn.metrics

    from kgpu._backend import move_to, resolve_compute, synchronize
    from kgpu.metrics import silhouette_score

    xp, device = resolve_compute(backend, None, X)
    X_device, labels_device = move_to(X, xp, device), move_to(labels, xp, device)
    name = backend or "numpy"

    def kgpu_score() -> float:
        score = silhouette_score(X_device, labels_device)
        synchronize(name)
        return score

    return {
        f"kgpu[{name}]": kgpu_score,
        "scikit-learn": lambda: sklearn.metrics.silhouette_score(X, labels),
    }


def choose_k_contenders(
    X: np.ndarray, k_values: list[int], sample_size: int, n_refs: int, seed: int, backend: str | None
) -> dict[str, Callable[[], Any]]:
    import sklearn.cluster
    import sklearn.metrics

    from kgpu._backend import move_to, resolve_compute, synchronize
    from kgpu.select import choose_k, find_knee, gap_pick

    criteria = ("elbow", "silhouette", "calinski_harabasz", "davies_bouldin") + (("gap",) if n_refs else ())
    xp, device = resolve_compute(backend, None, X)
    X_device = move_to(X, xp, device)
    name = backend or "numpy"

    def kgpu_loop() -> dict:
        result = choose_k(
            X_device, k_values, criteria=criteria, n_refs=max(n_refs, 1),
            sample_size=sample_size, random_state=seed,
        )
        synchronize(name)
        return result.picks

    def sklearn_loop() -> dict:
        inertia, silhouette, ch, db = [], [], [], []
        for k in k_values:
            model = sklearn.cluster.KMeans(n_clusters=k, n_init="auto", random_state=seed).fit(X)
            inertia.append(model.inertia_)
            silhouette.append(sklearn.metrics.silhouette_score(X, model.labels_, sample_size=sample_size, random_state=seed))
            ch.append(sklearn.metrics.calinski_harabasz_score(X, model.labels_))
            db.append(sklearn.metrics.davies_bouldin_score(X, model.labels_))
        picks = {
            "elbow": find_knee(k_values, inertia).knee,
            "silhouette": k_values[int(np.argmax(silhouette))],
            "calinski_harabasz": k_values[int(np.argmax(ch))],
            "davies_bouldin": k_values[int(np.argmin(db))],
        }
        if n_refs:
            picks["gap"] = sklearn_gap(X, k_values, np.log(inertia), n_refs, seed)
        picks["elbow"] = None if picks["elbow"] is None else int(picks["elbow"])
        return picks

    def sklearn_gap(X: np.ndarray, k_values: list[int], log_w: np.ndarray, n_refs: int, seed: int) -> int:
        rng = np.random.RandomState(seed)
        low, high = X.min(axis=0), X.max(axis=0)
        ref_log_w = np.empty((n_refs, len(k_values)))
        for b in range(n_refs):
            reference = rng.uniform(low, high, size=X.shape).astype(X.dtype)
            for i, k in enumerate(k_values):
                model = sklearn.cluster.KMeans(n_clusters=k, n_init="auto", random_state=seed).fit(reference)
                ref_log_w[b, i] = np.log(model.inertia_)
        gap = ref_log_w.mean(axis=0) - log_w
        s_k = ref_log_w.std(axis=0) * np.sqrt(1 + 1 / n_refs)
        return gap_pick(np.asarray(k_values), gap, s_k)

    return {f"kgpu[{name}]": kgpu_loop, "scikit-learn": sklearn_loop}


def interleaved_medians(contenders: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Median seconds and last result of each contender, repeats interleaved.

    No warm-up run: every run takes seconds, so one-off costs (thread pools,
    imports) are noise, and the defaults must finish in a few minutes.
    """
    results: dict[str, Any] = {}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            results[name] = fn()
            seconds[name].append(time.perf_counter() - start)
    return {name: (statistics.median(seconds[name]), results[name]) for name in contenders}


def table(title: str, timings: dict[str, tuple[float, Any]], what: str) -> str:
    reference = timings["scikit-learn"][0]
    lines = [
        f"**{title}**", "",
        f"| contender | median s | speed-up vs scikit-learn | {what} |",
        "|---|--:|--:|---|",
    ]
    for name, (seconds, result) in timings.items():
        shown = f"{result:.10f}" if isinstance(result, float) else str(result)
        lines.append(f"| {name} | {seconds:.3f} | {reference / seconds:.2f}x | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--silhouette-n", type=int, default=20_000, help="rows of the silhouette problem")
    parser.add_argument("--silhouette-d", type=int, default=32, help="features of the silhouette problem")
    parser.add_argument("--n", type=int, default=200_000, help="rows of the choose-k problem")
    parser.add_argument("--d", type=int, default=16, help="features of the choose-k problem")
    parser.add_argument("--centers", type=int, default=8, help="planted clusters in both problems")
    parser.add_argument("--k-min", type=int, default=2)
    parser.add_argument("--k-max", type=int, default=12)
    parser.add_argument("--sample-size", type=int, default=10_000, help="silhouette rows in the choose-k loop (both sides)")
    parser.add_argument("--n-refs", type=int, default=0, help="gap-statistic reference sets per k in both loops (0: no gap)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="kgpu backend (default: NumPy, where the data is)")
    parser.add_argument("--skip", choices=("silhouette", "choose-k"), default=None, help="leave one problem out")
    parser.add_argument("--out", default=None, help="also write the tables here")
    args = parser.parse_args(argv)

    from kgpu._bench import machine_description, publish

    sections = [
        f"{machine_description()}",
        f"{datetime.date.today().isoformat()}: `python bench/bench_metrics_select.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`, median of {args.repeats} interleaved repeats",
    ]
    if args.skip != "silhouette":
        X, labels = make_blobs(n_samples=args.silhouette_n, n_features=args.silhouette_d, centers=args.centers, random_state=args.seed)
        timings = interleaved_medians(silhouette_contenders(X, labels, args.backend), args.repeats)
        sections.append(table(
            f"silhouette_score, {args.silhouette_n:,} x {args.silhouette_d} float64, all rows", timings, "score"
        ))
    if args.skip != "choose-k":
        X, _ = make_blobs(n_samples=args.n, n_features=args.d, centers=args.centers, cluster_std=2.0, random_state=args.seed)
        X = X.astype(np.float32)
        k_values = list(range(args.k_min, args.k_max + 1))
        timings = interleaved_medians(
            choose_k_contenders(X, k_values, args.sample_size, args.n_refs, args.seed, args.backend), args.repeats
        )
        gap = f", gap with {args.n_refs} reference sets" if args.n_refs else ""
        sections.append(table(
            f"choose k = {args.k_min}..{args.k_max}, {args.n:,} x {args.d} float32: KMeans + inertia knee, "
            f"silhouette (sample {args.sample_size:,}), Calinski-Harabasz, Davies-Bouldin{gap}",
            timings, "picks",
        ))
    report = "\n\n".join(sections)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
