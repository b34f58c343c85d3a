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

import contextlib
import csv
import json
import os
import warnings
from collections.abc import Iterator, Sequence
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
    """Read a 2-D numeric matrix from a file (:func:`load_table` without the column names)."""
    return load_table(path, key=key, columns=columns)[0]


def load_table(
    path: str | os.PathLike, *, key: str | None = None, columns: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """Read a 2-D numeric matrix from a file, with the names of its columns.

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
    names : list of str or None
        The column names of a CSV with a header or a Parquet file, else None.

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
    names = None
    if suffix == ".npy":
        X = _load_npy(path)
    elif suffix == ".npz":
        X = _load_npz(path, key)
    elif suffix == ".parquet":
        X, names = _load_parquet(path, columns)
    else:
        try:
            X, names = _load_csv(path, columns)
        except UnicodeDecodeError:
            raise DataError(f"{path}, {_first_undecodable(path)}: not UTF-8 text; kgpu reads CSV files as UTF-8.") from None
    X = _as_matrix(X, path)
    _check_finite(X, path, csv_columns=columns if suffix in (".csv", ".tsv", ".txt") else False)
    return X, names


#: Rows checked at a time for NaN and infinity (bounds the memory of a memory-mapped file's check).
_FINITE_BLOCK_ROWS = 65_536


def _check_finite(X: np.ndarray, path: Path, *, csv_columns: Any) -> None:
    """Fail on the first NaN or infinity, naming the row and column (the line, for CSV).

    A memory-mapped ``.npy`` is read block by block: one extra pass over the file.
    """
    if X.dtype.kind != "f":
        return
    for start in range(0, X.shape[0], _FINITE_BLOCK_ROWS):
        block = np.asarray(X[start:start + _FINITE_BLOCK_ROWS])
        if np.isfinite(block).all():
            continue
        row, column = (int(index) for index in np.argwhere(~np.isfinite(block))[0])
        row += start
        value = X[row, column]
        if csv_columns is False:
            where = f"row {row + 1}, column {column + 1}"
        else:
            where = _csv_position(path, row, column, csv_columns)
        raise DataError(f"{path}, {where}: {value} is not a finite number; remove or replace NaN and infinity first.")


def _csv_position(path: Path, row: int, column: int, columns: Sequence[str] | None) -> str:
    """``line L, column 'name'`` of a data row of a CSV file (blank lines and the header counted)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(_SNIFF_BYTES)
    delimiter = _csv_dialect(path, "\n".join(line for line in sample.splitlines()[:50] if line.strip()))
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
        header = None
        data_rows = -1
        for line_number, fields in enumerate(reader, start=1):
            if not any(field.strip() for field in fields):
                continue
            if header is None and data_rows == -1 and not all(_is_number(field) for field in fields):
                header = [field.strip() for field in fields]
                continue
            data_rows += 1
            if data_rows == row:
                name = columns[column] if columns else (header[column] if header else None)
                return f"line {line_number}, " + (f"column {name!r}" if name else f"column {column + 1}")
    return f"row {row + 1}, column {column + 1}"


def _first_undecodable(path: Path) -> str:
    """``line L, byte 0xNN`` where a file first stops being UTF-8."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            for position in range(0, len(chunk), 4096):
                piece = chunk[position:position + 4096]
                try:
                    text = decoder.decode(piece)
                except UnicodeDecodeError as exc:
                    # exc.object: the bytes handed to this call, a pending partial character included
                    line += exc.object[:exc.start].count(b"\n")
                    return f"line {line}, byte 0x{exc.object[exc.start]:02x}"
                line += text.count("\n")
    return f"line {line}"


def _load_npy(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file, not a .npy array.")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except EOFError:
        raise DataError(f"{path}: truncated .npy file (it ends inside the header).") from None
    except ValueError as exc:
        if "EOF" in str(exc):
            raise DataError(f"{path}: truncated .npy file (it ends inside the header).") from None
        if "mmap length is greater than file size" in str(exc):
            raise DataError(f"{path}: truncated .npy file (shorter than the shape in its header).") from None
        # Object arrays need pickle; other files fail to parse.
        raise DataError(f"{path}: not a numeric .npy array ({exc}).") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc}).") from None


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    import zipfile

    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file, not a .npz archive.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive, truncated or damaged ({exc}).") from None
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
            raise DataError(f"{path}: array {key!r} is not numeric ({exc}).") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: array {key!r} is truncated or damaged ({exc}).") from None


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


def _load_csv(path: Path, columns: Sequence[str] | None) -> tuple[np.ndarray, list[str] | None]:
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
    if header is None:
        return X, None
    return X, [header[column] for column in usecols] if usecols is not None else header


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
                        "kgpu clusters numeric columns only (choose them with --columns)."
                    )
                values.append(float(value))
            rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _column_name(header: list[str] | None, column: int) -> str:
    return f"column {header[column]!r}" if header else f"column {column + 1}"


# -------------------------------------------------------------- Parquet
def _load_parquet(path: Path, columns: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'kgpu[io]'.") from exc
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}).") from exc
    def is_numeric(name: str) -> bool:
        kind = schema.field(name).type
        return pa.types.is_integer(kind) or pa.types.is_floating(kind)

    if columns is None:
        # Every numeric column; the others are named, so nothing is dropped silently.
        names = [name for name in schema.names if is_numeric(name)]
        dropped = [f"{name!r} ({schema.field(name).type})" for name in schema.names if not is_numeric(name)]
        if dropped and names:
            warnings.warn(
                f"{path}: using the {len(names)} numeric columns; ignored non-numeric column(s) "
                f"{', '.join(dropped)} (choose columns with --columns).",
                UserWarning, stacklevel=3,
            )
        elif dropped:
            raise DataError(f"{path}: no numeric column; non-numeric columns {', '.join(dropped)}.")
    else:
        names = list(columns)
    for name in names:
        if name not in schema.names:
            raise DataError(f"{path}: no column {name!r}; the columns are {', '.join(schema.names)}.")
        if not is_numeric(name):
            numeric = [other for other in schema.names if is_numeric(other)]
            raise DataError(
                f"{path}: column {name!r} holds {schema.field(name).type} values; kgpu clusters numeric columns "
                f"only (numeric columns: {', '.join(numeric) or 'none'})."
            )
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
    return X, names


# -------------------------------------------------------------- writing
class OutputFiles:
    """A command's output files, written as temporaries and moved into place together.

    Every output is first written to a hidden temporary file in its target
    directory; :meth:`commit` moves each into place with :func:`os.replace`
    (atomic on one file system), so a reader sees the old file or the whole
    new one, never a partial file, and of two concurrent writers the last to
    finish wins. :meth:`discard` (run on any error, ``KeyboardInterrupt`` or
    termination when used as a context manager) removes the temporaries and
    the directories this object created, leaving earlier files untouched.
    """

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}
        self._created_dirs: list[Path] = []

    def __enter__(self) -> "OutputFiles":
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()

    def directory(self, path: str | os.PathLike) -> Path:
        """Create ``path`` (and missing parents) unless it exists; removed again on discard if left empty."""
        path = Path(path)
        missing = []
        ancestor = path
        while not ancestor.exists():
            missing.append(ancestor)
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise DataError(f"{ancestor}: exists and is not a directory.")
        for directory in reversed(missing):
            self._created_dirs.append(directory)  # recorded first, like temporaries
            try:
                directory.mkdir()
            except FileExistsError:  # made meanwhile by someone else: not ours to remove
                self._created_dirs.remove(directory)
        return path

    def path_for(self, path: str | os.PathLike) -> Path:
        """A new temporary file beside ``path`` that :meth:`commit` will move onto ``path``."""
        import secrets

        path = Path(path)
        while True:
            temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
            # Recorded before it exists: Ctrl-C or SIGTERM at any point after
            # this line still finds it (removing a file not yet made is a no-op).
            self._pending[path] = temporary
            try:
                # O_EXCL: never someone else's file; mode 0o666 less the umask, as open() gives.
                os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            return temporary

    def commit(self) -> None:
        """Move every temporary onto its target."""
        while self._pending:
            path, temporary = next(iter(self._pending.items()))
            os.replace(temporary, path)
            del self._pending[path]
        self._created_dirs = []

    def discard(self) -> None:
        """Remove every temporary not yet committed, and the directories created for them when empty."""
        for temporary in self._pending.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
        self._pending = {}
        for directory in reversed(self._created_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self._created_dirs = []


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write ``path`` through: moved into place if the block succeeds, removed if not."""
    with OutputFiles() as outputs:
        yield outputs.path_for(path)


def check_writable(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Fail now, before any work, if ``path`` could not be written later.

    Parameters
    ----------
    path : str or path-like
        An output file (or, with ``directory=True``, an output directory).
        Missing parent directories are fine when they can be created.

    Raises
    ------
    DataError
        When ``path`` (or the nearest existing ancestor) is of the wrong kind
        or not writable.
    """
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise DataError(f"{path}: exists and is not a directory.")
        if not directory and path.is_dir():
            raise DataError(f"{path}: is a directory, expected a file name.")
        target = path if directory else path.parent
    else:
        target = path.parent
        while not target.exists():
            target = target.parent
        if not target.is_dir():
            raise DataError(f"{path}: cannot be created, {target} is not a directory.")
    if not os.access(target, os.W_OK | os.X_OK):
        raise DataError(f"{path}: cannot write into {target} (permission denied).")


def same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two paths name the same existing file (links and relative paths resolved)."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist
        return os.path.realpath(first) == os.path.realpath(second)


#: File names ``kgpu fit`` writes into its output directory.
RESULT_FILES = {"labels": "labels.npy", "centers": "centers.npy", "summary": "summary.json", "model": "model.kgpu"}


def result_paths(out_dir: str | os.PathLike) -> dict[str, Path]:
    """The paths :func:`write_results` writes, by kind."""
    out = Path(out_dir)
    return {kind: out / name for kind, name in RESULT_FILES.items()}


def write_results(
    out_dir: str | os.PathLike, labels: Any | None, centers: Any, summary: dict, *, outputs: OutputFiles,
    model: Any = None, feature_names: Any = None, input_dtype: Any = None,
) -> dict[str, Path]:
    """Write ``labels.npy``, ``centers.npy``, ``summary.json`` and ``model.kgpu`` into ``out_dir``.

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
    outputs : OutputFiles
        Every file goes through it: nothing is in place before it commits.
    model : fitted estimator or None
        Saved as ``model.kgpu`` (:func:`kgpu.save`) when given.
    feature_names, input_dtype :
        Recorded in the model file.

    Returns
    -------
    paths : dict
        ``{"labels": ..., "centers": ..., "summary": ..., "model": ...}``.
    """
    from ._backend import to_numpy

    paths = result_paths(outputs.directory(out_dir))
    if labels is not None:
        with open(outputs.path_for(paths["labels"]), "wb") as handle:
            np.save(handle, np.asarray(to_numpy(labels), dtype=np.int64))
    with open(outputs.path_for(paths["centers"]), "wb") as handle:
        np.save(handle, np.asarray(to_numpy(centers)))
    outputs.path_for(paths["summary"]).write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    if model is not None:
        from ._model import save

        save(model, outputs.path_for(paths["model"]), feature_names=feature_names, input_dtype=input_dtype)
    else:
        del paths["model"]
    return paths


def open_labels_file(path: str | os.PathLike, n_rows: int, *, outputs: OutputFiles) -> np.ndarray:
    """A writable int64 ``.npy`` memory map of ``n_rows`` labels (filled chunk by chunk).

    The map is a temporary of ``outputs``: ``path`` only appears, whole, when
    it commits.
    """
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise DataError(f"{path}: labels are written as .npy; give a path ending in .npy.")
    if path.parent and not path.parent.exists():
        raise DataError(f"{path.parent}: no such directory.")
    return np.lib.format.open_memmap(outputs.path_for(path), mode="w+", dtype=np.int64, shape=(n_rows,))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


__all__ = [
    "FORMATS", "RESULT_FILES", "DataError", "OutputFiles", "atomic_path", "check_writable", "load_matrix", "load_table",
    "open_labels_file", "result_paths", "same_file", "write_results",
]
