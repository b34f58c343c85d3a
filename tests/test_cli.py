"""The ``kgpu`` command, end to end, and the progress bars it (and KMeans) show.

A few tests run ``python -m kgpu`` in a subprocess (what a user types); the
rest call :func:`kgpu.cli.main`, the same function the console script runs,
in-process, which is much faster.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs

import kgpu
from kgpu import KMeans, _progress
from kgpu.cli import main, parse_k_range

from ._helpers import asarray, assert_equal

K = 3
SEED = 4


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=90, n_features=3, centers=K, cluster_std=1.5, random_state=0)
    X.setflags(write=False)
    return X


def _write(tmp_path, X, fmt):
    """``X`` saved in one of the formats the CLI reads; returns the path and extra arguments."""
    if fmt == "npy":
        path = tmp_path / "X.npy"
        np.save(path, X)
        return path, []
    if fmt == "npz":
        path = tmp_path / "X.npz"
        np.savez(path, train=X, other=X[:5])
        return path, ["--key", "train"]
    if fmt == "csv":
        path = tmp_path / "X.csv"
        np.savetxt(path, X, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
        return path, []
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "X.parquet"
    pq.write_table(pa.table({name: X[:, j] for j, name in enumerate("abc")}), path)
    return path, []


def _kgpu(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "kgpu", *map(str, args)], check=False, capture_output=True, text=True, cwd=cwd,
        timeout=300,
    )


# ------------------------------------------------------------ subprocess
@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "parquet"])
def test_fit_each_format_matches_the_python_api(tmp_path, blobs, fmt):
    path, extra = _write(tmp_path, blobs, fmt)
    init = "k-means++"
    out = tmp_path / "run"
    done = _kgpu("fit", path, "--k", K, "--seed", SEED, "--backend", "numpy", "--init", init, "--out", out, *extra,
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    expected = KMeans(n_clusters=K, init=init, random_state=SEED, backend="numpy").fit(np.array(blobs))
    labels, centers = np.load(out / "labels.npy"), np.load(out / "centers.npy")
    assert labels.dtype == np.int64
    assert_equal(labels, expected.labels_)
    np.testing.assert_allclose(centers, expected.cluster_centers_, rtol=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    assert {key: summary[key] for key in ("backend", "device", "n", "d", "k", "algorithm", "iterations")} == {
        "backend": "numpy", "device": "cpu", "n": 90, "d": 3, "k": K, "algorithm": "kmeans",
        "iterations": expected.n_iter_,
    }
    assert summary["inertia"] == pytest.approx(expected.inertia_, rel=1e-12)
    assert summary["seconds"] >= 0
    assert summary["versions"]["kgpu"] == kgpu.__version__
    assert summary["versions"]["numpy"] == np.__version__
    assert f"inertia     {summary['inertia']}" in done.stdout


def test_fit_npy_with_the_default_init(tmp_path, capsys, blobs):
    path, _ = _write(tmp_path, blobs, "npy")
    assert main(["fit", str(path), "--k", str(K), "--seed", str(SEED), "--out", str(tmp_path / "run")]) == 0
    expected = KMeans(n_clusters=K, random_state=SEED).fit(np.array(blobs))
    assert_equal(np.load(tmp_path / "run" / "labels.npy"), expected.labels_)


def test_bad_file_one_line_error_and_debug_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    done = _kgpu("fit", bad, "--k", 2, "--out", tmp_path / "run", cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"kgpu fit: error: {bad}, line 3, column 'b': 'oops' is not a number; kgpu clusters numeric columns only."
    ]
    assert not (tmp_path / "run").exists()
    debug = _kgpu("fit", bad, "--k", 2, "--out", tmp_path / "run", "--debug", cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "DataError" in debug.stderr


# -------------------------------------------------------------- in-process
def _fields(stdout):
    """``name  value`` lines (names may hold one space) as a dict."""
    return dict(re.match(r"^(\S.*?)\s{2,}(.*)$", line).groups() for line in stdout.strip().splitlines())


def _error_of(capsys, argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    assert status != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_fit_errors_are_one_clear_line(tmp_path, capsys, blobs):
    path, _ = _write(tmp_path, blobs, "npz")
    out = tmp_path / "run"
    assert _error_of(capsys, ["fit", tmp_path / "nope.npy", "--out", out]).endswith("nope.npy: no such file.")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert _error_of(capsys, ["fit", empty, "--out", out]).endswith("empty.csv: contains no rows.")
    assert "several arrays (train, other)" in _error_of(capsys, ["fit", path, "--k", 2, "--out", out])
    assert _error_of(capsys, ["fit", path, "--key", "train", "--k", 0, "--out", out]) == "kgpu fit: error: --k must be >= 1, got 0."
    assert _error_of(capsys, ["fit", path, "--key", "train", "--k", 91, "--out", out]) == (
        f"kgpu fit: error: --k 91 is larger than the number of rows (90) in {path}."
    )
    assert "init must be one of" in _error_of(capsys, ["fit", path, "--key", "train", "--init", "nonsense", "--out", out])
    assert not out.exists()


def test_unavailable_algorithm_is_named(tmp_path, capsys, blobs, monkeypatch):
    path, _ = _write(tmp_path, blobs, "csv")
    monkeypatch.delattr(kgpu, "KMedoids", raising=False)
    message = _error_of(capsys, ["fit", path, "--algorithm", "kmedoids", "--out", tmp_path / "run"])
    assert message == (
        "kgpu fit: error: --algorithm kmedoids needs kgpu.KMedoids, which this installation of kgpu does not provide."
    )


def test_option_the_algorithm_lacks_is_an_error(tmp_path, capsys, blobs, monkeypatch):
    path, _ = _write(tmp_path, blobs, "csv")

    class NoInit(KMeans):
        def __init__(self, n_clusters=8, *, random_state=None, backend=None):
            super().__init__(n_clusters, random_state=random_state, backend=backend)

    monkeypatch.setattr(kgpu, "KMedians", NoInit)
    message = _error_of(capsys, ["fit", path, "--algorithm", "kmedians", "--init", "random", "--out", tmp_path / "run"])
    assert message == "kgpu fit: error: --init does not apply to --algorithm kmedians (NoInit)."


@pytest.mark.parametrize("algorithm", ["minibatch", "kmedians", "kmedoids", "bisecting"])
def test_fit_other_algorithms(tmp_path, capsys, blobs, algorithm):
    estimator = getattr(kgpu, {"minibatch": "MiniBatchKMeans", "kmedians": "KMedians", "kmedoids": "KMedoids",
                               "bisecting": "BisectingKMeans"}[algorithm], None)
    if estimator is None:
        pytest.skip(f"kgpu has no estimator for {algorithm} yet")
    path, _ = _write(tmp_path, blobs, "csv")
    out = tmp_path / "run"
    assert main(["fit", str(path), "--k", str(K), "--seed", str(SEED), "--algorithm", algorithm,
                 "--backend", "numpy", "--out", str(out)]) == 0
    expected = estimator(n_clusters=K, random_state=SEED, backend="numpy").fit(np.array(blobs))
    assert_equal(np.load(out / "labels.npy"), expected.labels_)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == algorithm
    assert summary["inertia"] == pytest.approx(float(expected.inertia_), rel=1e-12)


def test_fit_init_from_a_centers_file(tmp_path, capsys, blobs):
    path, _ = _write(tmp_path, blobs, "csv")
    start = np.array(blobs[[0, 30, 60]])
    np.save(tmp_path / "start.npy", start)
    out = tmp_path / "run"
    assert main(["fit", str(path), "--k", "3", "--init", str(tmp_path / "start.npy"), "--out", str(out)]) == 0
    expected = KMeans(n_clusters=3, init=start, n_init=1).fit(np.array(blobs))
    np.testing.assert_allclose(np.load(out / "centers.npy"), expected.cluster_centers_, rtol=1e-12)


def test_minibatch_streams_a_large_npy_in_chunks(tmp_path, capsys, blobs, monkeypatch):
    MiniBatchKMeans = getattr(kgpu, "MiniBatchKMeans", None)
    if MiniBatchKMeans is None:
        pytest.skip("kgpu.MiniBatchKMeans not available yet")
    path, _ = _write(tmp_path, blobs, "npy")
    chunk_sizes = []
    original = MiniBatchKMeans.partial_fit

    def recording_partial_fit(self, X, *args, **kwargs):
        assert not isinstance(X, np.memmap)
        chunk_sizes.append(X.shape[0])
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(MiniBatchKMeans, "partial_fit", recording_partial_fit)
    out = tmp_path / "run"
    assert main(["fit", str(path), "--algorithm", "minibatch", "--k", "3", "--chunk-rows", "40",
                 "--epochs", "2", "--out", str(out)]) == 0
    assert sorted(chunk_sizes) == sorted([40, 40, 10] * 2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["streamed"] is True
    assert summary["iterations"] == 6
    # Every row is labelled with its nearest final center, and the inertia is theirs.
    centers = np.load(out / "centers.npy")
    sq_dist = ((np.array(blobs)[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    assert_equal(np.load(out / "labels.npy"), sq_dist.argmin(axis=1))
    assert summary["inertia"] == pytest.approx(sq_dist.min(axis=1).sum(), rel=1e-10)


def test_minibatch_below_the_threshold_fits_in_memory(tmp_path, capsys, blobs):
    if getattr(kgpu, "MiniBatchKMeans", None) is None:
        pytest.skip("kgpu.MiniBatchKMeans not available yet")
    path, _ = _write(tmp_path, blobs, "csv")
    out = tmp_path / "run"
    assert main(["fit", str(path), "--algorithm", "minibatch", "--k", "3", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["streamed"] is False


# ---------------------------------------------------------------- predict
@pytest.mark.parametrize("metric", ["sqeuclidean", "manhattan", "cosine"])
def test_predict_nearest_center_in_chunks(tmp_path, capsys, blobs, metric):
    path, _ = _write(tmp_path, blobs, "parquet")
    centers = np.array([[0.0, 0.0, 0.0], [5.0, -5.0, 1.0], [-3.0, 4.0, 2.0]])
    np.save(tmp_path / "centers.npy", centers)
    out = tmp_path / "labels.npy"
    assert main(["predict", str(path), "--centers", str(tmp_path / "centers.npy"), "--metric", metric,
                 "--chunk-rows", "7", "--out", str(out)]) == 0
    X = np.array(blobs)
    if metric == "sqeuclidean":
        distances = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    elif metric == "manhattan":
        distances = np.abs(X[:, None, :] - centers[None, :, :]).sum(axis=2)
    else:
        unit_x = X / np.linalg.norm(X, axis=1, keepdims=True)
        unit_c = centers / np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-300)
        distances = 1 - unit_x @ unit_c.T
    assert_equal(np.load(out), distances.argmin(axis=1))
    assert f"mean {metric} distance to the nearest center" in capsys.readouterr().out


def test_predict_agrees_with_fit(tmp_path, capsys, blobs):
    path, _ = _write(tmp_path, blobs, "csv")
    assert main(["fit", str(path), "--k", "3", "--out", str(tmp_path / "run")]) == 0
    assert main(["predict", str(path), "--centers", str(tmp_path / "run" / "centers.npy"),
                 "--out", str(tmp_path / "again.npy")]) == 0
    assert_equal(np.load(tmp_path / "again.npy"), np.load(tmp_path / "run" / "labels.npy"))


def test_predict_errors(tmp_path, capsys, blobs):
    path, _ = _write(tmp_path, blobs, "csv")
    np.save(tmp_path / "wide.npy", np.zeros((2, 5)))
    np.save(tmp_path / "centers.npy", np.zeros((2, 3)))
    assert _error_of(capsys, ["predict", path, "--centers", tmp_path / "wide.npy", "--out", tmp_path / "l.npy"]) == (
        f"kgpu predict: error: {tmp_path / 'wide.npy'} has 5 features per center but {path} has 3."
    )
    assert "metric must be one of" in _error_of(
        capsys, ["predict", path, "--centers", tmp_path / "centers.npy", "--metric", "hamming", "--out", tmp_path / "l.npy"]
    )
    assert "give a path ending in .npy" in _error_of(
        capsys, ["predict", path, "--centers", tmp_path / "centers.npy", "--out", tmp_path / "l.csv"]
    )


# --------------------------------------------------------------- choose-k
@pytest.mark.parametrize(
    ("text", "values"),
    [("2:5", [2, 3, 4, 5]), ("2:10:4", [2, 6, 10]), ("8,2,4,4", [2, 4, 8]), ("3", [3])],
)
def test_parse_k_range(text, values):
    assert parse_k_range(text) == values


@pytest.mark.parametrize("text", ["5:2", "0:3", "a:b", "1:2:3:4", "2:6:0", ""])
def test_parse_k_range_rejects(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_k_range(text)


def test_choose_k_table_picks_plot_and_json(tmp_path, capsys, blobs):
    select = pytest.importorskip("kgpu.select")
    pytest.importorskip("matplotlib")
    path, _ = _write(tmp_path, blobs, "csv")
    argv = ["choose-k", str(path), "--k", "2:5", "--criteria", "elbow", "silhouette", "gap", "--n-refs", "2",
            "--seed", "0", "--plot", str(tmp_path / "k.png"), "--out", str(tmp_path / "k.json")]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    expected = select.choose_k(np.array(blobs), [2, 3, 4, 5], criteria=("elbow", "silhouette", "gap"), n_refs=2,
                               random_state=0, backend="auto")
    assert expected.to_table() in stdout
    stored = json.loads((tmp_path / "k.json").read_text())
    assert stored["picks"] == {name: k for name, k in expected.picks.items()}
    assert stored["picks"]["silhouette"] == K
    assert (tmp_path / "k.png").read_bytes().startswith(b"\x89PNG")


def test_choose_k_errors(tmp_path, capsys, blobs, monkeypatch):
    path, _ = _write(tmp_path, blobs, "csv")
    assert _error_of(capsys, ["choose-k", path, "--k", "2:200"]) == (
        f"kgpu choose-k: error: --k 200 is larger than the number of rows (90) in {path}."
    )
    monkeypatch.setitem(sys.modules, "kgpu.select", None)  # as if the module were absent
    assert _error_of(capsys, ["choose-k", path, "--k", "2:4"]) == (
        "kgpu choose-k: error: choose-k needs kgpu.select, which this installation of kgpu does not provide."
    )


# ---------------------------------------------------------- bench and demo
def test_bench_tiny(tmp_path, capsys):
    out = tmp_path / "bench.md"
    argv = ["bench", "--n", "300", "--d", "3", "--k", "3", "--iterations", "2", "--repeats", "1",
            "--backends", "numpy", "--out", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "K-Means, 300 x 3 float32, k=3, 2 iterations, median of 1" in stdout
    assert "`kgpu bench --n 300" in stdout
    rows = {line.split("|")[1].strip(): line for line in stdout.splitlines() if line.startswith("| ")}
    assert {"kgpu[numpy]", "scikit-learn"} <= set(rows)
    assert out.read_text().strip() == stdout.strip()


def test_bench_rejects_k_above_n(capsys):
    assert _error_of(capsys, ["bench", "--n", "10", "--k", "20"]) == "kgpu bench: error: --k 20 is larger than --n 10."


def test_demo_prints_the_run(capsys):
    assert main(["demo", "--n", "400", "--d", "4", "--k", "3", "--backend", "numpy"]) == 0
    fields = _fields(capsys.readouterr().out)
    assert {"backend", "device", "n", "d", "k", "iterations", "inertia", "seconds"} <= set(fields)
    assert (fields["backend"], fields["n"], fields["d"], fields["k"]) == ("numpy", "400", "4", "3")


# ---------------------------------------------------------------- quantize
def test_quantize_writes_at_most_n_colours(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert main(["quantize", str(tmp_path / "in.png"), "--colors", "6", "--sample", "500", "--out", str(out)]) == 0
    with Image.open(out) as written:
        assert written.size == (40, 30)
        assert len(written.convert("RGB").getcolors()) <= 6
    fields = _fields(capsys.readouterr().out)
    # 6 colours: 3 bits a pixel, 1200 pixels -> 450 bytes + 18 of palette, against 3600 raw.
    assert fields["raw RGB"] == "3,600 bytes"
    assert fields["indexed"] == "468 bytes (3 bits a pixel + palette)"
    assert fields["ratio"] == f"{3600 / 468:.2f}x smaller"


def test_quantize_errors(tmp_path, capsys):
    assert _error_of(capsys, ["quantize", tmp_path / "in.png", "--colors", "300", "--out", tmp_path / "o.png"]) == (
        "kgpu quantize: error: --colors must be between 1 and 256, got 300."
    )
    assert _error_of(capsys, ["quantize", tmp_path / "missing.png", "--out", tmp_path / "o.png"]).endswith(
        "missing.png: no such file."
    )


# ----------------------------------------------------------- progress bars
def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, capsys, blobs):
    path, _ = _write(tmp_path, blobs, "csv")
    assert main(["fit", str(path), "--k", "3", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal_unless_quiet(tmp_path, capsys, blobs, monkeypatch):
    monkeypatch.setattr(_progress, "stderr_is_terminal", lambda: True)
    path, _ = _write(tmp_path, blobs, "csv")
    assert main(["fit", str(path), "--k", "3", "--out", str(tmp_path / "run")]) == 0
    assert "KMeans" in capsys.readouterr().err
    assert main(["fit", str(path), "--k", "3", "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().err == ""


def test_check_progress(monkeypatch):
    assert _progress.check_progress(True) and _progress.check_progress(1) and _progress.check_progress(np.True_)
    assert not _progress.check_progress(False) and not _progress.check_progress(0) and not _progress.check_progress(None)
    monkeypatch.setattr(_progress, "stderr_is_terminal", lambda: False)
    assert not _progress.check_progress("auto")
    monkeypatch.setattr(_progress, "stderr_is_terminal", lambda: True)
    assert _progress.check_progress("auto")
    for bad in ("yes", 2, 0.5):
        with pytest.raises(ValueError, match="progress must be True, False or 'auto'"):
            _progress.check_progress(bad)


def test_progress_bar_draws_only_when_enabled(capsys):
    from kgpu._lloyd import IterationRecord

    with _progress.progress_bar(False, total=3, description="quiet") as bar:
        bar.update(2, shift=0.5)
        bar.on_iteration(IterationRecord(1, 0.25, 3, 0.01))
        assert not bar.enabled
    assert capsys.readouterr().err == ""
    with _progress.progress_bar(True, total=3, description="sweep", unit="k", leave=True) as bar:
        bar.on_iteration(IterationRecord(1, 0.25, 3, 0.01))
        bar.update(2)
        assert bar.enabled
    err = capsys.readouterr().err
    assert "sweep" in err and "3/3" in err and "center_shift=0.25" in err and "n_changed=3" in err


def test_track_and_chain_callbacks(capsys):
    assert list(_progress.track(range(4), False)) == [0, 1, 2, 3]
    assert list(_progress.track(iter("ab"), True, description="items")) == ["a", "b"]
    assert "items" in capsys.readouterr().err
    seen = []
    assert _progress.chain_callbacks(None, None) is None
    only = seen.append
    assert _progress.chain_callbacks(None, only) is only
    both = _progress.chain_callbacks(seen.append, lambda record: seen.append(record * 10))
    both(2)
    assert seen == [2, 20]


def test_kmeans_progress_parameter(xp, capsys, blobs):
    X = asarray(xp, blobs)
    quiet = KMeans(n_clusters=3, random_state=0).fit(X)
    assert capsys.readouterr().err == ""
    shown = KMeans(n_clusters=3, random_state=0, n_init=2, init="random", progress=True).fit(X)
    err = capsys.readouterr().err
    assert "KMeans run 2/2" in err and "iter" in err
    assert shown.inertia_ == pytest.approx(KMeans(n_clusters=3, random_state=0, n_init=2, init="random").fit(X).inertia_)
    assert quiet.get_params()["progress"] is False
    assert clone(shown).get_params()["progress"] is True
    with pytest.raises(ValueError, match="progress must be True, False or 'auto'"):
        KMeans(n_clusters=3, progress="loud").fit(X)


@pytest.mark.parametrize(
    ("estimator", "unit"),
    [
        (kgpu.KMedians(n_clusters=3, random_state=0), "iter"),
        (kgpu.KMedoids(n_clusters=3, random_state=0), "run"),
        (kgpu.MiniBatchKMeans(n_clusters=3, random_state=0, batch_size=64, max_iter=2), "step"),
        (kgpu.BisectingKMeans(n_clusters=3, random_state=0), "split"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else value,
)
def test_every_estimator_has_the_progress_parameter(estimator, unit, capsys, blobs):
    quiet = clone(estimator).fit(blobs)
    assert capsys.readouterr().err == ""
    shown = clone(estimator).set_params(progress=True).fit(blobs)
    err = capsys.readouterr().err
    assert type(estimator).__name__ in err and unit in err
    # The bar only watches: the fit is the same.
    assert shown.inertia_ == pytest.approx(quiet.inertia_, rel=1e-12)
    assert clone(shown).get_params()["progress"] is True
    with pytest.raises(ValueError, match="progress must be True, False or 'auto'"):
        clone(estimator).set_params(progress="loud").fit(blobs)
