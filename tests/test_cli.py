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
        f"kgpu fit: error: {bad}, line 3, column 'b': 'oops' is not a number; kgpu clusters numeric columns only "
        "(choose them with --columns)."
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
    monkeypatch.setattr(kgpu, "KMedoids", None)  # as if this installation lacked it
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


# ------------------------------------------------------- outputs never hurt inputs
def _snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_every_output_that_is_an_input_is_refused(tmp_path, capsys, blobs):
    data = tmp_path / "X.npy"
    np.save(data, blobs)
    csv_data, _ = _write(tmp_path, blobs, "csv")
    run = tmp_path / "run"
    assert main(["fit", str(data), "--k", "3", "--out", str(run)]) == 0
    np.save(tmp_path / "C.npy", np.load(run / "centers.npy"))
    (tmp_path / "link.npy").symlink_to(data)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    cases = [
        (["predict", data, "--centers", run / "centers.npy", "--out", data], f"--out {data} is the input DATA {data}"),
        (["predict", data, "--centers", tmp_path / "C.npy", "--out", tmp_path / "C.npy"], "is the input --centers"),
        (["predict", data, "--model", run / "model.kgpu", "--out", tmp_path / "link.npy"], "is the input DATA"),
        (["choose-k", csv_data, "--k", "2:3", "--out", csv_data], f"--out {csv_data} is the input DATA"),
        (["choose-k", csv_data, "--k", "2:3", "--plot", csv_data], "--plot"),
        (["fit", run / "centers.npy", "--k", "2", "--out", run], f"--out {run / 'centers.npy'} is the input DATA"),
        (["fit", data, "--k", "3", "--init", run / "centers.npy", "--out", run], "is the input --init"),
        (["fit", data, "--k", "3", "--out", data], "is the input DATA"),
    ]
    for argv, expected in cases:
        assert main([str(arg) for arg in argv]) == 2, argv
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "refusing to overwrite an input" in lines[0], captured.err
    assert _snapshot(tmp_path) == before


def test_outputs_are_checked_before_the_work(tmp_path, capsys, blobs, monkeypatch):
    data, _ = _write(tmp_path, blobs, "csv")

    def never(*args, **kwargs):
        raise AssertionError("the data was read before the outputs were checked")

    monkeypatch.setattr("kgpu._io.load_table", never)
    assert _error_of(capsys, ["fit", data, "--out", "/dev/null/sub"]) == (
        "kgpu fit: error: /dev/null/sub: cannot be created, /dev/null is not a directory."
    )
    assert _error_of(capsys, ["choose-k", data, "--out", "/dev/null/k.json"]) == (
        "kgpu choose-k: error: /dev/null/k.json: cannot be created, /dev/null is not a directory."
    )
    assert _error_of(capsys, ["predict", data, "--centers", data, "--out", tmp_path]).endswith(
        "is a directory, expected a file name."
    )
    assert _error_of(capsys, ["bench", "--out", "/dev/null/b.md"]).endswith("/dev/null is not a directory.")


def test_an_error_mid_run_leaves_no_partial_file(tmp_path, capsys, blobs, monkeypatch):
    data = tmp_path / "X.npy"
    np.save(data, blobs)
    earlier = tmp_path / "labels.npy"
    np.save(earlier, np.arange(4))
    calls = []

    def fail_on_the_third_chunk(self, chunk):
        calls.append(len(chunk))
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return np.zeros(len(chunk), dtype=np.int64)

    monkeypatch.setattr("kgpu.cli._CentersLabeller.label", fail_on_the_third_chunk)
    np.save(tmp_path / "C.npy", blobs[:3])
    assert _error_of(capsys, ["predict", data, "--centers", tmp_path / "C.npy", "--chunk-rows", "10",
                              "--out", earlier]) == "kgpu predict: error: RuntimeError: disk on fire"
    np.testing.assert_array_equal(np.load(earlier), np.arange(4))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["C.npy", "X.npy", "labels.npy"]


def test_a_failed_fit_leaves_earlier_results_and_no_new_directory(tmp_path, capsys, blobs, monkeypatch):
    data = tmp_path / "X.npy"
    np.save(data, blobs)
    run = tmp_path / "run"
    assert main(["fit", str(data), "--k", "3", "--out", str(run)]) == 0
    before = _snapshot(run)

    def broken_save(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr("kgpu._model.save", broken_save)
    assert "no space left on device" in _error_of(capsys, ["fit", data, "--k", "2", "--out", run])
    assert _snapshot(run) == before  # neither the new labels nor centers replaced the old ones
    assert "no space left" in _error_of(capsys, ["fit", data, "--k", "2", "--out", tmp_path / "new" / "run"])
    assert not (tmp_path / "new").exists()


def _wait_for(predicate, process, timeout=120.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, "the command finished before it could be interrupted"
        assert time.monotonic() < deadline, "the command never started writing"
        time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.parametrize(("command", "signal_name", "status"),
                         [("predict", "SIGTERM", 143), ("predict", "SIGINT", 130), ("fit", "SIGTERM", 143)])
def test_a_killed_command_leaves_no_partial_file(tmp_path, command, signal_name, status):
    import signal as signals

    rng = np.random.default_rng(0)
    data = tmp_path / "X.npy"
    np.save(data, rng.standard_normal((400_000, 16), dtype=np.float32))
    np.save(tmp_path / "C.npy", rng.standard_normal((512, 16), dtype=np.float32))
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "labels.npy"
    np.save(earlier, np.arange(5))
    if command == "predict":
        argv = ["predict", data, "--centers", tmp_path / "C.npy", "--chunk-rows", "2000", "--out", earlier]
    else:  # a streamed mini-batch fit writes its labels chunk by chunk
        argv = ["fit", data, "--algorithm", "minibatch", "--k", "512", "--chunk-rows", "2000", "--out", out]
    # A job that a non-interactive shell starts in the background (as CI may
    # run the suite) inherits SIGINT ignored: run the command as from a terminal.
    process = subprocess.Popen([sys.executable, "-m", "kgpu", *map(str, argv)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL))
    try:
        # The temporary labels file appears when the work starts.
        _wait_for(lambda: any(path.name.startswith(".labels.npy.") for path in out.iterdir()), process)
        process.send_signal(getattr(signals, signal_name))
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == status, stderr
    assert stderr.strip().splitlines() == [
        f"kgpu {command}: {'terminated' if status == 143 else 'interrupted'}; no partial output was left"
    ]
    assert sorted(path.name for path in out.iterdir()) == ["labels.npy"]
    np.testing.assert_array_equal(np.load(earlier), np.arange(5))


@pytest.mark.slow
def test_concurrent_writers_of_one_path_both_succeed(tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "X.npy"
    X = rng.standard_normal((100_000, 8), dtype=np.float32)
    np.save(data, X)
    centers = rng.standard_normal((64, 8), dtype=np.float32)
    np.save(tmp_path / "C.npy", centers)
    argv = [sys.executable, "-m", "kgpu", "predict", str(data), "--centers", str(tmp_path / "C.npy"),
            "--chunk-rows", "5000", "--out", str(tmp_path / "labels.npy")]
    processes = [subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    expected = ((X[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(axis=2).argmin(axis=1)
    assert (np.load(tmp_path / "labels.npy") == expected).mean() > 0.999  # float32 ties aside
    assert sorted(path.name for path in tmp_path.iterdir()) == ["C.npy", "X.npy", "labels.npy"]


# ------------------------------------------------------------- clear errors
def test_input_file_errors_are_one_line_naming_the_file(tmp_path, capsys, blobs):
    out = tmp_path / "run"
    cases = {}
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    cases[empty] = f"{empty}: empty file, not a .npy array."
    np.save(tmp_path / "whole.npy", blobs)
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes((tmp_path / "whole.npy").read_bytes()[:300])
    cases[truncated] = f"{truncated}: truncated .npy file (shorter than the shape in its header)."
    header_only = tmp_path / "header.npy"
    header_only.write_bytes((tmp_path / "whole.npy").read_bytes()[:40])
    cases[header_only] = f"{header_only}: truncated .npy file (it ends inside the header)."
    np.savez(tmp_path / "whole.npz", X=blobs)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes((tmp_path / "whole.npz").read_bytes()[:100])
    cases[bad_npz] = f"{bad_npz}: not a readable .npz archive, truncated or damaged"
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a,b\n1,2\n3,\x80\x81\n")
    cases[binary] = f"{binary}, line 3, byte 0x80: not UTF-8 text; kgpu reads CSV files as UTF-8."
    infinite = tmp_path / "inf.csv"
    infinite.write_text("a,b\n1,2\n\n3,inf\n")
    cases[infinite] = f"{infinite}, line 4, column 'b': inf is not a finite number; remove or replace NaN and infinity first."
    strings = tmp_path / "strings.csv"
    strings.write_text("a,name\n1,x\n2,y\n")
    cases[strings] = f"{strings}, line 2, column 'name': 'x' is not a number; kgpu clusters numeric columns only (choose them with --columns)."
    for path, expected in cases.items():
        line = _error_of(capsys, ["fit", path, "--k", "1", "--out", out])
        assert line.startswith(f"kgpu fit: error: {expected}"), line
    assert not out.exists()


def test_nan_in_init_or_centers_file_names_the_file(tmp_path, capsys, blobs):
    data, _ = _write(tmp_path, blobs, "npy")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[0.0, 1.0, 2.0], [np.nan, 2.0, 3.0], [1.0, 1.0, 1.0]]))
    expected = f"{bad}, row 2, column 1: nan is not a finite number; remove or replace NaN and infinity first."
    assert _error_of(capsys, ["fit", data, "--k", "3", "--init", bad, "--out", tmp_path / "run"]) == f"kgpu fit: error: {expected}"
    assert _error_of(capsys, ["predict", data, "--centers", bad, "--out", tmp_path / "p.npy"]) == f"kgpu predict: error: {expected}"


def test_parquet_string_column_is_dropped_with_one_warning_line(tmp_path, capsys, blobs):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "X.parquet"
    pq.write_table(pa.table({"a": blobs[:, 0], "name": ["x"] * len(blobs), "b": blobs[:, 1]}), path)
    assert main(["fit", str(path), "--k", "2", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"kgpu: warning: {path}: using the 2 numeric columns; ignored non-numeric column(s) 'name' (string) "
        "(choose columns with --columns)."
    ]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["d"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--k", "0"], "kgpu demo: error: --k must be >= 1, got 0."),
        (["demo", "--n", "5", "--k", "8"], "kgpu demo: error: --k 8 is larger than --n 5."),
        (["demo", "--d", "-1"], "kgpu demo: error: --d must be >= 1, got -1."),
        (["bench", "--repeats", "0"], "kgpu bench: error: --repeats must be >= 1, got 0."),
        (["bench", "--backends", "jax"], "kgpu bench: error: --backends: unknown backend 'jax'; choose from numpy, cupy, torch, array_api_strict (optionally NAME:DEVICE)."),
        (["choose-k", "X.csv", "--n-refs", "0"], "kgpu choose-k: error: --n-refs must be >= 1, got 0."),
        (["choose-k", "X.csv", "--criteria", "elbow", "bic"], "kgpu choose-k: error: --criteria: unknown criterion 'bic'; choose from elbow, silhouette, calinski_harabasz, davies_bouldin, gap."),
        (["fit", "X.csv", "--max-iter", "0", "--out", "run"], "kgpu fit: error: --max-iter must be >= 1, got 0."),
        (["fit", "X.csv", "--n-init", "0", "--out", "run"], "kgpu fit: error: --n-init must be >= 1 or 'auto', got 0."),
    ],
)
def test_arguments_are_validated_by_kgpu(tmp_path, capsys, monkeypatch, blobs, argv, message):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, blobs, "csv")
    assert _error_of(capsys, argv) == message


# ------------------------------------------------------------ test output
def test_skips_are_summarised_by_reason(tmp_path):
    from pathlib import Path

    (tmp_path / "test_some.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('i', range(3))\n"
        "def test_gpu(i):\n    pytest.skip('no GPU here')\n"
        "@pytest.mark.skipif(True, reason='no torch')\n"
        "def test_torch():\n    pass\n"
        "def test_runs():\n    pass\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests._skip_summary", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "skipped, by reason" in line)
    assert [line.strip() for line in lines[start + 1:start + 3]] == ["3  no GPU here", "1  no torch"]


def test_iteration_bars_have_a_total_and_an_eta(capsys, blobs):
    KMeans(n_clusters=3, random_state=0, n_init=2, init="random", max_iter=40, progress=True).fit(blobs)
    err = capsys.readouterr().err
    # n/40 and elapsed<remaining (remaining "?" until a rate is measured):
    # the bar knows the most iterations a run can take.
    assert re.search(r"\d+/40 \[\d\d:\d\d<(\d\d:\d\d|\?)", err), err
    kgpu.KMedians(n_clusters=3, random_state=0, max_iter=25, progress=True).fit(blobs)
    assert re.search(r"\d+/25 \[\d\d:\d\d<(\d\d:\d\d|\?)", capsys.readouterr().err)


def test_restarts_count_from_zero_again(capsys):
    from kgpu._lloyd import IterationRecord

    with _progress.progress_bar(True, total=10, description="runs", leave=True) as bar:
        for iteration in (1, 2, 3):
            bar.on_iteration(IterationRecord(iteration, 0.5, 1, 0.01))
        bar.on_iteration(IterationRecord(1, 0.5, 1, 0.01))  # the next run starts
        assert bar._bar.n == 1
    assert "1/10" in capsys.readouterr().err


@pytest.mark.parametrize("columns", ["0", "5"])
def test_a_terminal_without_width_still_gets_a_bar(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    assert _progress.terminal_width(sys.stderr) is None
    with _progress.progress_bar(True, total=3, description="narrow", leave=True) as bar:
        bar.update(3)
    err = capsys.readouterr().err
    assert "narrow" in err and "3/3" in err and "|" in err
    monkeypatch.setenv("COLUMNS", "120")
    assert _progress.terminal_width(sys.stderr) == 120


# ----------------------------------------------------------------- start-up
def _modules_after(code, tmp_path):
    """Names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_version_and_help_import_nothing_heavy(tmp_path):
    for argv in (["--version"], ["--help"], ["fit", "--help"]):
        code = f"from kgpu.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
        loaded = _modules_after(code, tmp_path)
        assert not loaded & {"numpy", "torch", "sklearn", "scipy", "kgpu._kmeans"}, argv


def test_import_kgpu_is_lazy_and_complete(tmp_path):
    assert "numpy" not in _modules_after("import kgpu", tmp_path)
    loaded = _modules_after("from kgpu import KMeans, BisectingKMeans, save, load, metrics", tmp_path)
    assert {"kgpu._kmeans", "kgpu._bisecting", "kgpu._model", "kgpu.metrics"} <= loaded
    assert all(hasattr(kgpu, name) for name in kgpu.__all__)
    assert set(kgpu.__all__) <= set(dir(kgpu))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        kgpu.Nope  # noqa: B018


def test_auto_backend_without_a_gpu_does_not_import_torch(tmp_path):
    from kgpu.cli import cuda_driver_sees_a_device

    if cuda_driver_sees_a_device():
        pytest.skip("a CUDA device is present: torch may rightly be the answer")
    loaded = _modules_after("from kgpu.cli import resolve_backend\nassert resolve_backend('auto') == 'numpy'", tmp_path)
    assert "torch" not in loaded
