"""Model files: ``kgpu.save`` / ``kgpu.load`` and ``kgpu predict --model``.

The promise: predicting with a saved model gives exactly the labels of the
fit on the same data, for every algorithm, and reading a model file never
unpickles anything.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import kgpu
from kgpu._model import ModelFileError
from kgpu.cli import main

from ._helpers import asarray, assert_equal

ESTIMATORS = {
    "kmeans": lambda: kgpu.KMeans(n_clusters=7, random_state=0),
    "minibatch": lambda: kgpu.MiniBatchKMeans(n_clusters=7, random_state=0, batch_size=128),
    "kmedians": lambda: kgpu.KMedians(n_clusters=7, random_state=0),
    "kmedoids": lambda: kgpu.KMedoids(n_clusters=7, random_state=0, metric="manhattan"),
    "bisecting": lambda: kgpu.BisectingKMeans(n_clusters=7, random_state=0),
}


@pytest.fixture(scope="module")
def noise():
    """Unstructured data: many rows near the boundaries, where a wrong rule shows."""
    X = np.random.default_rng(3).standard_normal((1500, 4))
    X.setflags(write=False)
    return X


@pytest.mark.parametrize("algorithm", list(ESTIMATORS))
def test_save_load_round_trip_predicts_the_same(tmp_path, noise, algorithm):
    model = ESTIMATORS[algorithm]().fit(noise)
    path = kgpu.save(model, tmp_path / "m.kgpu")
    loaded = kgpu.load(path)
    assert type(loaded) is type(model)
    # Display settings (progress, verbose) are not part of the model.
    shown = ("progress", "verbose")
    assert {name: value for name, value in loaded.get_params().items() if name not in shown} == {
        name: value for name, value in model.get_params().items() if name not in shown
    }
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_)
    assert loaded.n_features_in_ == 4
    assert_equal(loaded.predict(noise), model.labels_)
    fresh = np.random.default_rng(4).standard_normal((300, 4)) * 2
    assert_equal(loaded.predict(fresh), model.predict(fresh))
    assert loaded.inertia_ == model.inertia_
    metadata = loaded.model_metadata_
    assert metadata["kgpu_version"] == kgpu.__version__
    assert metadata["estimator"] == type(model).__name__
    assert metadata["input_dtype"] == "float64"
    if algorithm == "kmedoids":
        assert metadata["params"]["metric"] == "manhattan"
        assert_equal(loaded.medoid_indices_, model.medoid_indices_)
    if algorithm == "bisecting":
        assert loaded.split_tree_ == model.split_tree_
        assert_equal(loaded.leaf_nodes_, model.leaf_nodes_)


def test_bisecting_model_walks_the_tree_not_the_nearest_leaf(tmp_path, noise):
    model = kgpu.BisectingKMeans(n_clusters=7, random_state=0).fit(noise)
    loaded = kgpu.load(kgpu.save(model, tmp_path / "m.kgpu"))
    nearest_leaf = ((noise[:, None, :] - model.cluster_centers_[None]) ** 2).sum(axis=2).argmin(axis=1)
    # The two rules disagree on this data, so the test can tell them apart.
    assert (nearest_leaf != model.labels_).any()
    assert_equal(loaded.predict(noise), model.labels_)


def test_the_file_is_arrays_and_json_only(tmp_path, noise):
    start = noise[[0, 10, 20]].astype(np.float32)
    model = kgpu.KMeans(n_clusters=3, init=start, n_init=1).fit(noise.astype(np.float32))
    path = kgpu.save(model, tmp_path / "m.kgpu", feature_names=["a", "b", "c", "d"])
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert all(array.dtype.kind in "fiuU" for array in arrays.values())
    metadata = json.loads(str(arrays["metadata"]))
    assert metadata["feature_names"] == ["a", "b", "c", "d"]
    assert metadata["input_dtype"] == "float32"
    assert metadata["array_params"] == {"init": "param_init"}
    loaded = kgpu.load(path)
    np.testing.assert_array_equal(loaded.init, start)  # an array init travels as an array
    assert not hasattr(loaded, "feature_names_in_")  # fitted on an array: none to check
    assert loaded.cluster_centers_.dtype == np.float32


def test_model_fitted_on_another_backend_predicts_on_numpy(tmp_path, xp, noise):
    model = kgpu.KMeans(n_clusters=5, random_state=1).fit(asarray(xp, noise))
    loaded = kgpu.load(kgpu.save(model, tmp_path / "m.kgpu"))
    assert isinstance(loaded.cluster_centers_, np.ndarray)
    assert_equal(loaded.predict(noise), model.labels_)


def test_save_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="not fitted yet"):
        kgpu.save(kgpu.KMeans(n_clusters=2), tmp_path / "m.kgpu")
    with pytest.raises(TypeError, match="kgpu.save writes kgpu estimators"):
        kgpu.save(object(), tmp_path / "m.kgpu")
    model = kgpu.KMeans(n_clusters=2, random_state=0).fit(np.arange(8.0).reshape(4, 2))
    with pytest.raises(ValueError, match="feature_names has 3 names for 2 features"):
        kgpu.save(model, tmp_path / "m.kgpu", feature_names=["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []


def test_load_errors_name_the_file(tmp_path, noise):
    with pytest.raises(ModelFileError, match=r"nope\.kgpu: no such file"):
        kgpu.load(tmp_path / "nope.kgpu")
    good = kgpu.save(kgpu.KMeans(n_clusters=2, random_state=0).fit(noise), tmp_path / "good.kgpu")
    truncated = tmp_path / "truncated.kgpu"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ModelFileError, match=r"truncated\.kgpu: not a kgpu model file"):
        kgpu.load(truncated)
    empty = tmp_path / "empty.kgpu"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"empty\.kgpu: not a kgpu model file"):
        kgpu.load(empty)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, centers=np.zeros((2, 2)))
    with pytest.raises(ModelFileError, match=r"foreign\.npz: not a kgpu model file"):
        kgpu.load(foreign)


def test_a_pickled_object_in_a_model_file_is_never_loaded(tmp_path, noise):
    path = kgpu.save(kgpu.KMeans(n_clusters=2, random_state=0).fit(noise), tmp_path / "m.kgpu")
    # Replace the centers with an object array: reading it would need pickle.
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["cluster_centers"] = np.array([{"payload": 1}], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(ModelFileError, match="evil.npz: not a kgpu model file"):
        kgpu.load(tmp_path / "evil.npz")


def test_unknown_estimator_name_is_refused(tmp_path, noise):
    path = kgpu.save(kgpu.KMeans(n_clusters=2, random_state=0).fit(noise), tmp_path / "m.kgpu")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    metadata = json.loads(str(arrays["metadata"]))
    metadata["estimator"] = "os.system"
    arrays["metadata"] = np.array(json.dumps(metadata))
    np.savez(tmp_path / "odd.npz", **arrays)
    with pytest.raises(ModelFileError, match="unknown estimator 'os.system'"):
        kgpu.load(tmp_path / "odd.npz")
    assert zipfile.is_zipfile(path)


# ------------------------------------------------------------- command line
@pytest.mark.parametrize("algorithm", list(ESTIMATORS))
def test_cli_predict_with_the_model_gives_the_fit_labels(tmp_path, capsys, noise, algorithm):
    data = tmp_path / "X.npy"
    np.save(data, noise.astype(np.float32))
    extra = ["--metric", "manhattan"] if algorithm == "kmedoids" else []
    run = tmp_path / "run"
    assert main(["fit", str(data), "--k", "9", "--algorithm", algorithm, "--seed", "2", "--out", str(run), *extra]) == 0
    assert sorted(path.name for path in run.iterdir()) == ["centers.npy", "labels.npy", "model.kgpu", "summary.json"]
    # Chunks of 400 rows: the labels must not depend on how the file is read.
    assert main(["predict", str(data), "--model", str(run / "model.kgpu"), "--chunk-rows", "400",
                 "--out", str(tmp_path / "again.npy")]) == 0
    assert_equal(np.load(tmp_path / "again.npy"), np.load(run / "labels.npy"))
    model = kgpu.load(run / "model.kgpu")
    assert model.model_metadata_["input_dtype"] == "float32"
    if algorithm == "kmedoids":
        assert model.metric == "manhattan"
    assert f"{type(model).__name__} model with 9 clusters" in capsys.readouterr().out


def test_cli_streamed_minibatch_model_predicts_the_fit_labels(tmp_path, noise):
    data = tmp_path / "X.npy"
    np.save(data, noise)
    run = tmp_path / "run"
    assert main(["fit", str(data), "--k", "4", "--algorithm", "minibatch", "--chunk-rows", "500", "--out", str(run)]) == 0
    assert json.loads((run / "summary.json").read_text())["streamed"] is True
    assert main(["predict", str(data), "--model", str(run / "model.kgpu"), "--out", str(tmp_path / "p.npy")]) == 0
    assert_equal(np.load(tmp_path / "p.npy"), np.load(run / "labels.npy"))


def test_cli_model_records_csv_columns_and_uses_them_by_name(tmp_path, capsys):
    X, _ = make_blobs(n_samples=60, n_features=3, centers=3, random_state=0)
    train = tmp_path / "train.csv"
    np.savetxt(train, X, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
    assert main(["fit", str(train), "--k", "3", "--out", str(tmp_path / "run")]) == 0
    model = tmp_path / "run" / "model.kgpu"
    assert kgpu.load(model).model_metadata_["feature_names"] == ["a", "b", "c"]
    # Columns in another order, and one more: the model's columns are read by name.
    shuffled = tmp_path / "shuffled.csv"
    extra = np.column_stack([X[:, [1, 0, 2]], np.arange(60)])
    np.savetxt(shuffled, extra, delimiter=",", header="b,a,c,row_id", comments="", fmt="%.17g")
    assert main(["predict", str(shuffled), "--model", str(model), "--out", str(tmp_path / "p.npy")]) == 0
    assert_equal(np.load(tmp_path / "p.npy"), np.load(tmp_path / "run" / "labels.npy"))
    # Other names: refused, pointing to --columns, which then chooses them.
    renamed = tmp_path / "renamed.csv"
    np.savetxt(renamed, X, delimiter=",", header="x,y,z", comments="", fmt="%.17g")
    capsys.readouterr()
    status = main(["predict", str(renamed), "--model", str(model), "--out", str(tmp_path / "p.npy")])
    assert status == 1
    assert capsys.readouterr().err.strip() == (
        f"kgpu predict: error: {renamed} has columns x, y, z but the model {model} "
        "was fitted on a, b, c; choose them with --columns."
    )
    assert main(["predict", str(shuffled), "--columns", "b,a,c", "--model", str(model),
                 "--out", str(tmp_path / "p2.npy")]) == 1  # chosen by hand, in the wrong order
    assert "has columns b, a, c but the model" in capsys.readouterr().err


def test_cli_model_and_metric_errors(tmp_path, capsys, noise):
    data = tmp_path / "X.npy"
    np.save(data, noise)
    assert main(["fit", str(data), "--k", "3", "--algorithm", "kmedians", "--out", str(tmp_path / "run")]) == 0
    model = str(tmp_path / "run" / "model.kgpu")
    capsys.readouterr()
    assert main(["predict", str(data), "--model", model, "--metric", "cosine", "--out", str(tmp_path / "p.npy")]) == 1
    assert capsys.readouterr().err.strip() == (
        "kgpu predict: error: --metric and --p come from the model file; they only apply with --centers."
    )
    np.save(tmp_path / "wide.npy", np.zeros((3, 5)))
    assert main(["predict", str(tmp_path / "wide.npy"), "--model", model, "--out", str(tmp_path / "p.npy")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"kgpu predict: error: the model {model} has 4 features but {tmp_path / 'wide.npy'} has 5."
    )
    # K-Means takes --metric cosine (spherical K-Means) and nothing else.
    assert main(["fit", str(data), "--k", "3", "--metric", "manhattan", "--out", str(tmp_path / "r2")]) == 1
    assert capsys.readouterr().err.strip() == (
        "kgpu fit: error: metric must be 'euclidean' or 'cosine' for KMeans; got 'manhattan'."
    )
    assert main(["fit", str(data), "--k", "3", "--algorithm", "kmedoids", "--metric", "hamming",
                 "--out", str(tmp_path / "r2")]) == 1
    assert "metric must be one of" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


@pytest.mark.parametrize("algorithm", list(ESTIMATORS))
def test_cli_n_init_auto_for_every_algorithm(tmp_path, capsys, noise, algorithm):
    data = tmp_path / "X.npy"
    np.save(data, noise)
    assert main(["fit", str(data), "--k", "3", "--algorithm", algorithm, "--n-init", "auto",
                 "--out", str(tmp_path / "run")]) == 0
    expected = type(ESTIMATORS[algorithm]())(n_clusters=3, random_state=0).fit(noise)
    assert_equal(np.load(tmp_path / "run" / "labels.npy"), expected.labels_)
