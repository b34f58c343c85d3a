"""Reading data files (kgpu._io): every format, and a clear error for every bad file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kgpu._io import (
    DataError, OutputFiles, atomic_path, check_writable, load_matrix, load_table, open_labels_file, write_results,
)

DATA = np.array([[1.5, -2.0, 3.0], [4.0, 5.25, -6.0], [7.0, 8.0, 9.5], [0.0, 1e-3, 2e6]])


def _write_csv(path, text):
    path.write_text(text)
    return path


def _csv_text(X, header=None, delimiter=","):
    lines = [delimiter.join(header)] if header else []
    lines += [delimiter.join(repr(float(value)) for value in row) for row in X]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ .npy
def test_npy_is_memory_mapped_read_only(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, DATA.astype(np.float32))
    X = load_matrix(path)
    assert isinstance(X, np.memmap)
    assert X.dtype == np.float32
    assert not X.flags.writeable
    np.testing.assert_array_equal(X, DATA.astype(np.float32))


def test_npy_one_dimensional_becomes_one_column(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(5.0))
    assert load_matrix(path).shape == (5, 1)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 3)), "contains no rows"),
        (np.zeros((2, 2, 2)), "expected a 2-D array"),
        (np.array([["a", "b"]]), "real numbers only"),
        (np.array([[1 + 2j]]), "real numbers only"),
    ],
    ids=["empty", "3d", "strings", "complex"],
)
def test_npy_bad_arrays(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=message):
        load_matrix(path)


def test_npy_object_array_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a numeric .npy array"):
        load_matrix(path)


def test_npy_truncated_file(tmp_path):
    path = tmp_path / "broken.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="broken.npy"):
        load_matrix(path)


# ------------------------------------------------------------------ .npz
def test_npz_only_array_and_key(tmp_path):
    single = tmp_path / "one.npz"
    np.savez(single, data=DATA)
    np.testing.assert_array_equal(load_matrix(single), DATA)
    several = tmp_path / "two.npz"
    np.savez(several, train=DATA, test=DATA[:2])
    np.testing.assert_array_equal(load_matrix(several, key="test"), DATA[:2])


def test_npz_several_arrays_lists_the_keys(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, train=DATA, test=DATA[:2])
    with pytest.raises(DataError, match=r"several arrays \(train, test\).*--key"):
        load_matrix(path)
    with pytest.raises(DataError, match="no array 'valid'; it holds train, test"):
        load_matrix(path, key="valid")


def test_key_only_for_npz(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, DATA)
    with pytest.raises(DataError, match="key only applies to .npz"):
        load_matrix(path, key="data")


# ------------------------------------------------------------------ CSV
@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
@pytest.mark.parametrize("header", [None, ["a", "b", "c"]], ids=["no-header", "header"])
def test_csv_header_detection_and_delimiters(tmp_path, delimiter, header):
    path = _write_csv(tmp_path / "X.csv", _csv_text(DATA, header, delimiter))
    X = load_matrix(path)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, DATA)


def test_csv_tsv_quotes_spaces_and_blank_lines(tmp_path):
    tsv = _write_csv(tmp_path / "X.tsv", "x\ty\n1\t2\n\n3\t4\n")
    np.testing.assert_array_equal(load_matrix(tsv), [[1, 2], [3, 4]])
    quoted = _write_csv(tmp_path / "q.csv", '"x", "y"\n"1", "2"\n 3, 4\n')
    np.testing.assert_array_equal(load_matrix(quoted), [[1, 2], [3, 4]])


def test_csv_single_column_and_columns_by_name(tmp_path):
    single = _write_csv(tmp_path / "one.csv", "value\n1\n2\n3\n")
    assert load_matrix(single).shape == (3, 1)
    path = _write_csv(tmp_path / "X.csv", "id,name,a,b\n1,x,2.5,3\n2,y,4,5\n")
    np.testing.assert_array_equal(load_matrix(path, columns=["b", "a"]), [[3, 2.5], [5, 4]])
    with pytest.raises(DataError, match="no column 'z'; the columns are id, name, a, b"):
        load_matrix(path, columns=["z"])


def test_csv_non_numeric_value_names_line_column_and_value(tmp_path):
    path = _write_csv(tmp_path / "mixed.csv", "a,species,c\n1,2,3\n4,setosa,6\n")
    with pytest.raises(DataError, match=r"mixed.csv, line 3, column 'species': 'setosa' is not a number") as info:
        load_matrix(path)
    assert "\n" not in str(info.value)


def test_csv_non_numeric_without_header_names_column_number(tmp_path):
    path = _write_csv(tmp_path / "mixed.csv", "1,2\n3,4\n5,abc\n")
    with pytest.raises(DataError, match=r"line 3, column 2: 'abc' is not a number"):
        load_matrix(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "contains no rows"),
        ("\n\n", "contains no rows"),
        ("a,b,c\n", "a header but no rows"),
        ("a,b\n1,\n", "line 2, column 'b': empty value"),
        ("a,b\n1,2\n3,4,5\n", "line 3: 3 fields, expected 2"),
    ],
    ids=["empty", "blank", "header-only", "missing-value", "ragged"],
)
def test_csv_bad_files(tmp_path, text, message):
    path = _write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=message):
        load_matrix(path)


# -------------------------------------------------------------- Parquet
def _write_parquet(path, columns):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_numeric_columns(tmp_path):
    path = _write_parquet(tmp_path / "X.parquet", {"a": DATA[:, 0], "b": DATA[:, 1].astype(np.int64), "c": DATA[:, 2]})
    X = load_matrix(path)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X[:, [0, 2]], DATA[:, [0, 2]])
    np.testing.assert_array_equal(X[:, 1], DATA[:, 1].astype(np.int64))


def test_parquet_float32_stays_float32_and_columns_choose(tmp_path):
    X32 = DATA.astype(np.float32)
    path = _write_parquet(tmp_path / "X.parquet", {"a": X32[:, 0], "b": X32[:, 1], "label": ["x"] * 4})
    X = load_matrix(path, columns=["b", "a"])
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, X32[:, [1, 0]])


def test_parquet_string_column_is_dropped_with_a_warning_or_refused_when_chosen(tmp_path):
    pa = pytest.importorskip("pyarrow")
    path = _write_parquet(tmp_path / "X.parquet", {"a": [1.0, 2.0], "label": ["x", "y"], "b": [3, 4]})
    with pytest.warns(UserWarning, match=r"using the 2 numeric columns; ignored non-numeric column\(s\) 'label' \(string\)"):
        X, names = load_table(path)
    np.testing.assert_array_equal(X, [[1.0, 3.0], [2.0, 4.0]])
    assert names == ["a", "b"]
    with pytest.raises(DataError, match="column 'label' holds string values; kgpu clusters numeric columns only "
                                        r"\(numeric columns: a, b\)"):
        load_matrix(path, columns=["a", "label"])
    only_strings = _write_parquet(tmp_path / "s.parquet", {"label": ["x", "y"]})
    with pytest.raises(DataError, match="no numeric column; non-numeric columns 'label'"):
        load_matrix(only_strings)
    nulls = _write_parquet(tmp_path / "nulls.parquet", {"a": pa.array([1.0, None])})
    with pytest.raises(DataError, match="column 'a' has 1 missing value"):
        load_matrix(nulls)


def test_parquet_not_a_parquet_file(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "X.parquet"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_matrix(path)


# ------------------------------------------------------------ any format
def test_missing_file_directory_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_matrix(tmp_path / "nope.csv")
    folder = tmp_path / "folder.npy"
    folder.mkdir()
    with pytest.raises(DataError, match="is a directory"):
        load_matrix(folder)
    with pytest.raises(DataError, match="unknown file type '.xlsx'"):
        load_matrix(tmp_path / "X.xlsx")


# --------------------------------------------------------------- writing
def test_write_results_round_trip(tmp_path):
    labels = np.array([0, 1, 1, 0], dtype=np.int32)
    centers = DATA[:2].astype(np.float32)
    with OutputFiles() as outputs:
        paths = write_results(tmp_path / "out" / "run", labels, centers, {"k": 2, "inertia": np.float64(1.5)},
                              outputs=outputs)
        # Nothing is in place before the outputs commit.
        assert not any(path.exists() for path in paths.values())
    stored_labels = np.load(paths["labels"])
    assert stored_labels.dtype == np.int64
    np.testing.assert_array_equal(stored_labels, labels)
    stored_centers = np.load(paths["centers"])
    assert stored_centers.dtype == np.float32
    np.testing.assert_array_equal(stored_centers, centers)
    assert json.loads(paths["summary"].read_text()) == {"k": 2, "inertia": 1.5}
    assert sorted(path.name for path in (tmp_path / "out" / "run").iterdir()) == ["centers.npy", "labels.npy", "summary.json"]


def test_write_results_refuses_a_file_as_directory(tmp_path):
    target = tmp_path / "taken"
    target.write_text("")
    with pytest.raises(DataError, match="not a directory"), OutputFiles() as outputs:
        write_results(target, np.zeros(1), np.zeros((1, 1)), {}, outputs=outputs)


def test_open_labels_file_is_filled_in_chunks(tmp_path):
    with OutputFiles() as outputs:
        labels = open_labels_file(tmp_path / "labels.npy", 5, outputs=outputs)
        labels[:3] = [2, 1, 0]
        labels[3:] = [1, 1]
        labels.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), [2, 1, 0, 1, 1])
    with pytest.raises(DataError, match=r"\.npy"):
        open_labels_file(tmp_path / "labels.csv", 5, outputs=OutputFiles())


def test_an_error_leaves_earlier_files_and_no_temporaries(tmp_path):
    earlier = tmp_path / "labels.npy"
    np.save(earlier, np.arange(3))
    with pytest.raises(RuntimeError, match="midway"), OutputFiles() as outputs:
        labels = open_labels_file(earlier, 5, outputs=outputs)
        labels[:2] = [7, 7]
        outputs.directory(tmp_path / "new" / "deep")
        raise RuntimeError("midway")
    np.testing.assert_array_equal(np.load(earlier), np.arange(3))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["labels.npy"]  # no temporary, no new directory


def test_atomic_path_keeps_the_usual_file_mode(tmp_path):
    with atomic_path(tmp_path / "a.txt") as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".a.txt.")
        temporary.write_text("x")
    plain = tmp_path / "b.txt"
    plain.write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode == plain.stat().st_mode


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "sub" / "file.npy")  # creatable
    check_writable(tmp_path / "dir", directory=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="exists and is not a directory"):
        check_writable(tmp_path / "file", directory=True)
    with pytest.raises(DataError, match="is not a directory"):
        check_writable(tmp_path / "file" / "sub" / "x.npy")
    with pytest.raises(DataError, match="is a directory, expected a file name"):
        check_writable(tmp_path)
    with pytest.raises(DataError, match="/dev/null is not a directory"):
        check_writable("/dev/null/sub", directory=True)
