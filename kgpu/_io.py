"""Reading data matrices from files and writing clustering results.

Formats, picked by the file's suffix:

- ``.npy``: memory-mapped (``np.load(mmap_mode="r")``), so a file larger than
  memory is only read as rows are used;
- ``.npz``: one array by name (``key``), or the only array it holds;
- ``.csv`` (also ``.tsv``, ``.txt``): a header row is detected, every column
  must be numeric;
- ``.parquet``: numeric columns (needs pyarrow, the ``io`` extra).

Every problem a user can fix (missing file, empty data, a non-numeric value)
raises :class:`DataError` with one line naming the file and the problem.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Suffixes :func:`load_matrix` reads.
FORMATS = (".npy", ".npz", ".csv", ".tsv", ".txt", ".parquet")

#: Bytes of a CSV file read to guess its delimiter and header.
_SNIFF_BYTES = 64 * 1024


class DataError(ValueError):
    """A data file that cannot be clustered, with a message naming the problem."""


def load_matrix(path: str | os.PathLike, *, key: str | None = None, columns: Sequence[str] | None = None) -> np.ndarray:
    """Read a 2-D numeric matrix from a file.

    Parameters
    ----------
    path : str or path-like
        A ``.npy``, ``.npz``, ``.csv`` / ``.tsv`` / ``.txt`` or ``.parquet`` file.
    key : str or None
        Array to read from a ``.npz`` file; ``None`` reads its only array.
    columns : sequence of str or None
        CSV (with a header) and Parquet only: the columns to read, in this
        order; ``None`` reads them all.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        A read-only memory map for ``.npy`` files (in the file's dtype); for
        the other formats a float64 array (float32 when every Parquet column is
        float32). A 1-D array is read as one feature per row.

    Raises
    ------
    DataError
        Missing or unreadable file, unknown suffix, no rows, more than two
        dimensions, a non-numeric column or value.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unknown file type {suffix or '(no suffix)'!r}; kgpu reads {', '.join(FORMATS)}.")
    if not path.exists():
        raise DataError(f"{path}: no such file.")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file.")
    if columns is not None and suffix not in (".csv", ".tsv", ".txt", ".parquet"):
        raise DataError(f"{path}: columns can only be chosen in CSV and Parquet files.")
    if key is not None and suffix != ".npz":
        raise DataError(f"{path}: key only applies to .npz files.")
    if suffix == ".npy":
        X = _load_npy(path)
    elif suffix == ".npz":
        X = _load_npz(path, key)
    elif suffix == ".parquet":
        X = _load_parquet(path, columns)
    else:
        X = _load_csv(path, columns)
    return _as_matrix(X, path)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        # Object arrays need pickle, and empty or truncated files fail to parse.
        raise DataError(f"{path}: not a numeric .npy array ({exc}).") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc}).") from exc


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc}).") from exc
    with archive:
        names = list(archive.files)
        if not names:
            raise DataError(f"{path}: the archive holds no arrays.")
        if key is None:
            if len(names) > 1:
                raise DataError(f"{path}: holds several arrays ({', '.join(names)}); choose one with --key.")
            key = names[0]
        if key not in names:
            raise DataError(f"{path}: no array {key!r}; it holds {', '.join(names)}.")
        try:
            return archive[key]
        except ValueError as exc:
            raise DataError(f"{path}: array {key!r} is not numeric ({exc}).") from exc


def _as_matrix(X: np.ndarray, path: Path) -> np.ndarray:
    """Check shape and dtype of a loaded array; 1-D becomes one column."""
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: holds {X.dtype} values; kgpu clusters real numbers only.")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise DataError(f"{path}: expected a 2-D array (rows x features), got shape {X.shape}.")
    if X.shape[0] == 0:
        raise DataError(f"{path}: contains no rows.")
    if X.shape[1] == 0:
        raise DataError(f"{path}: contains no columns.")
    return X


# ------------------------------------------------------------------ CSV
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_dialect(path: Path, sample: str) -> str:
    """The delimiter: tab for ``.tsv``, else sniffed among ``,``, ``;``, tab, space."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t ").delimiter
    except csv.Error:  # one column: nothing to sniff
        return ","


def _load_csv(path: Path, columns: Sequence[str] | None) -> np.ndarray:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(_SNIFF_BYTES)
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: contains no rows.")
    delimiter = _csv_dialect(path, "\n".join(lines[:50]))
    first_row = next(csv.reader([lines[0]], delimiter=delimiter, skipinitialspace=True))
    # A header is a first row with any field that is not a number.
    has_header = not all(_is_number(field) for field in first_row)
    header = [name.strip() for name in first_row] if has_header else None
    usecols = _csv_columns(path, header, columns)
    try:
        with warnings.catch_warnings():
            # A header without rows is reported below, not as NumPy's warning.
            warnings.simplefilter("ignore", UserWarning)
            X = np.loadtxt(
                path, delimiter=delimiter, skiprows=1 if has_header else 0, ndmin=2,
                dtype=np.float64, usecols=usecols, comments=None, quotechar='"', encoding="utf-8-sig",
            )
    except ValueError:
        X = _parse_csv_slowly(path, delimiter, has_header, header, usecols)
    if X.shape[0] == 0:
        raise DataError(f"{path}: contains a header but no rows.")
    return X


def _csv_columns(path: Path, header: list[str] | None, columns: Sequence[str] | None) -> list[int] | None:
    if columns is None:
        return None
    if header is None:
        raise DataError(f"{path}: has no header row, so columns cannot be chosen by name.")
    missing = [name for name in columns if name not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; the columns are {', '.join(header)}.")
    return [header.index(name) for name in columns]


def _parse_csv_slowly(path: Path, delimiter: str, has_header: bool, header: list[str] | None, usecols: list[int] | None) -> np.ndarray:
    """Row-by-row parse with the csv module, for what NumPy's fast reader refuses.

    Reads quoting styles NumPy does not (a space before a quote); otherwise
    finds the first value that is not a number and names it.
    """
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
        n_fields = None
        for line_number, row in enumerate(reader, start=1):
            if line_number == 1 and has_header or not any(field.strip() for field in row):
                continue
            n_fields = len(row) if n_fields is None else n_fields
            if len(row) != n_fields:
                raise DataError(f"{path}, line {line_number}: {len(row)} fields, expected {n_fields}.")
            values = []
            for column in usecols if usecols is not None else range(len(row)):
                value = row[column].strip()
                if not value:
                    raise DataError(f"{path}, line {line_number}, {_column_name(header, column)}: empty value; fill or drop missing values first.")
                if not _is_number(value):
                    raise DataError(
                        f"{path}, line {line_number}, {_column_name(header, column)}: {value!r} is not a number; "
                        "kgpu clusters numeric columns only."
                    )
                values.append(float(value))
            rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _column_name(header: list[str] | None, column: int) -> str:
    return f"column {header[column]!r}" if header else f"column {column + 1}"


# -------------------------------------------------------------- Parquet
def _load_parquet(path: Path, columns: Sequence[str] | None) -> np.ndarray:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'kgpu[io]'.") from exc
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}).") from exc
    names = list(schema.names) if columns is None else list(columns)
    for name in names:
        if name not in schema.names:
            raise DataError(f"{path}: no column {name!r}; the columns are {', '.join(schema.names)}.")
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise DataError(f"{path}: column {name!r} holds {kind} values; kgpu clusters numeric columns only.")
    if not names:
        raise DataError(f"{path}: contains no columns.")
    table = pq.read_table(path, columns=names)
    if table.num_rows == 0:
        raise DataError(f"{path}: contains no rows.")
    all_float32 = all(pa.types.is_float32(table.schema.field(name).type) for name in names)
    dtype = np.float32 if all_float32 else np.float64
    X = np.empty((table.num_rows, len(names)), dtype=dtype)
    for position, name in enumerate(names):
        column = table.column(name)
        if column.null_count:
            raise DataError(f"{path}: column {name!r} has {column.null_count} missing value(s); fill or drop them first.")
        X[:, position] = column.to_numpy()
    return X


# -------------------------------------------------------------- writing
def write_results(out_dir: str | os.PathLike, labels: Any | None, centers: Any, summary: dict) -> dict[str, Path]:
    """Write ``labels.npy``, ``centers.npy`` and ``summary.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str or path-like
        Created when missing.
    labels : array of shape (n_samples,) or None
        Written as int64; ``None`` when ``labels.npy`` was already written
        (chunk by chunk, see :func:`open_labels_file`).
    centers : array of shape (n_clusters, n_features)
    summary : dict
        JSON-serialisable facts about the run.

    Returns
    -------
    paths : dict
        ``{"labels": ..., "centers": ..., "summary": ...}``.
    """
    from ._backend import to_numpy

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory.")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"labels": out / "labels.npy", "centers": out / "centers.npy", "summary": out / "summary.json"}
    if labels is not None:
        np.save(paths["labels"], np.asarray(to_numpy(labels), dtype=np.int64))
    np.save(paths["centers"], np.asarray(to_numpy(centers)))
    paths["summary"].write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return paths


def open_labels_file(path: str | os.PathLike, n_rows: int) -> np.ndarray:
    """A writable int64 ``.npy`` memory map of ``n_rows`` labels (filled chunk by chunk)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise DataError(f"{path}: labels are written as .npy; give a path ending in .npy.")
    if path.parent and not path.parent.exists():
        raise DataError(f"{path.parent}: no such directory.")
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.int64, shape=(n_rows,))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


__all__ = ["FORMATS", "DataError", "load_matrix", "open_labels_file", "write_results"]
