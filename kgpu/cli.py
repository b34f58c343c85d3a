"""The ``kgpu`` command: fit, predict, choose-k, bench, demo and quantize.

Built on :mod:`argparse` (standard library: no extra dependency, and the
``--help`` of every subcommand is generated from the same definitions).
Errors a user can fix are reported as one line on standard error with a
non-zero exit status; ``--debug`` shows the traceback instead.

Outputs never hurt inputs: an output path that is one of the command's input
files is refused before any work (exit 2), every output location is checked
for writing before the work starts, and files are written as temporaries
moved into place at the end (:class:`kgpu._io.OutputFiles`), so an error,
Ctrl-C (exit 130) or SIGTERM (exit 143) leaves no partial file and earlier
files untouched.

Nothing heavy (NumPy, the estimators, torch) is imported until a command
needs it, so ``kgpu --version`` and ``--help`` start at once.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: ``--algorithm`` names and the kgpu estimator each one maps to.
ALGORITHMS = {
    "kmeans": "KMeans",
    "minibatch": "MiniBatchKMeans",
    "kmedians": "KMedians",
    "kmedoids": "KMedoids",
    "bisecting": "BisectingKMeans",
}

BACKEND_CHOICES = ("auto", "numpy", "cupy", "torch")

#: Rows above which ``--algorithm minibatch`` streams a file through ``partial_fit``
#: (and ``predict`` works chunk by chunk) instead of loading it whole.
DEFAULT_CHUNK_ROWS = 1_000_000

#: Exit status for errors reported on one line (argparse uses 2 for usage errors).
EXIT_ERROR = 1
#: Exit statuses after SIGINT and SIGTERM (128 + the signal number, as shells report).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class CommandError(Exception):
    """A problem with the command's arguments, reported as one line."""

    exit_status = EXIT_ERROR


class OutputOverwritesInput(CommandError):
    """An output path naming one of the command's own inputs (a usage error)."""

    exit_status = 2


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so outputs in progress are cleaned up like on Ctrl-C."""


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The ``kgpu`` parser with every subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="kgpu",
        description="Centroid clustering on NumPy, CuPy and PyTorch.",
        epilog="Run 'kgpu COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"kgpu {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser(
        "fit", parents=[common], help="cluster a data file; write labels, centers, a summary and a model",
        description="Cluster DATA and write DIR/labels.npy, DIR/centers.npy, DIR/summary.json and "
                    "DIR/model.kgpu (for 'kgpu predict --model').",
    )
    _add_data_arguments(fit)
    fit.add_argument("--k", type=int, default=8, help="number of clusters (default 8)")
    fit.add_argument("--algorithm", default="kmeans", choices=list(ALGORITHMS), help="default kmeans")
    _add_backend_argument(fit)
    fit.add_argument("--init", default=None,
                     help="initialisation method (e.g. k-means++, random), or a data file of initial centers")
    fit.add_argument("--n-init", type=_n_init, default=None,
                     help="restarts: an int, or 'auto' (the algorithm's own default)")
    fit.add_argument("--metric", default=None,
                     help="kmedoids: euclidean (default), sqeuclidean, manhattan, cosine, minkowski")
    fit.add_argument("--p", type=float, default=None, help="kmedoids: order of the minkowski metric")
    fit.add_argument("--max-iter", type=int, default=None, help="most iterations per run")
    fit.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    fit.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                     help=f"minibatch: stream files with more rows than this through partial_fit (default {DEFAULT_CHUNK_ROWS})")
    fit.add_argument("--epochs", type=int, default=1, help="minibatch streaming: passes over the file (default 1)")
    fit.add_argument("--out", required=True, metavar="DIR",
                     help="directory for labels.npy, centers.npy, summary.json and model.kgpu")
    fit.set_defaults(handler=run_fit)

    predict = commands.add_parser(
        "predict", parents=[common], help="label every row with a fitted model or its nearest center",
        description="Write the label of every row of DATA to OUT (.npy, int64): with --model, exactly as the "
                    "fitted model labels it (the fit's labels on the fit's data); with --centers, the nearest center.",
    )
    _add_data_arguments(predict)
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model file written by 'kgpu fit' (DIR/model.kgpu) or kgpu.save")
    source.add_argument("--centers", help="bare centers file (e.g. DIR/centers.npy): nearest center under --metric")
    predict.add_argument("--metric", default=None,
                         help="with --centers: sqeuclidean (default), euclidean, manhattan, minkowski, cosine")
    predict.add_argument("--p", type=float, default=None, help="order of the minkowski metric")
    _add_backend_argument(predict)
    predict.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                         help=f"rows read from the file at a time (default {DEFAULT_CHUNK_ROWS})")
    predict.add_argument("--out", required=True, help="labels file (.npy)")
    predict.set_defaults(handler=run_predict)

    choose = commands.add_parser(
        "choose-k", parents=[common], help="sweep the number of clusters and pick one",
        description="Fit every k of a range and report each criterion's pick.",
    )
    _add_data_arguments(choose)
    choose.add_argument("--k", type=parse_k_range, default=parse_k_range("2:12"),
                        help="range of k: 'LO:HI' (inclusive), 'LO:HI:STEP' or a list '2,4,8' (default 2:12)")
    choose.add_argument("--criteria", nargs="+", default=None,
                        help="any of elbow silhouette calinski_harabasz davies_bouldin gap (default all)")
    choose.add_argument("--algorithm", default="kmeans", choices=list(ALGORITHMS), help="default kmeans")
    _add_backend_argument(choose)
    choose.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    choose.add_argument("--n-refs", type=int, default=None, help="gap statistic: reference data sets per k")
    choose.add_argument("--plot", default=None, metavar="PNG", help="also draw the curves into this image")
    choose.add_argument("--out", default=None, metavar="JSON", help="also write every value and pick as JSON")
    choose.set_defaults(handler=run_choose_k)

    bench = commands.add_parser(
        "bench", parents=[common], help="time kgpu's backends against scikit-learn (and FAISS, cuML)",
        description="Side-by-side K-Means timing on synthetic data; prints a Markdown table.",
    )
    bench.add_argument("--n", type=int, default=200_000, help="rows (default 200000)")
    bench.add_argument("--d", type=int, default=32, help="features (default 32)")
    bench.add_argument("--k", type=int, default=64, help="clusters (default 64)")
    bench.add_argument("--iterations", type=int, default=20, help="Lloyd iterations for everyone (default 20)")
    bench.add_argument("--repeats", type=int, default=3, help="timed runs per contender (default 3)")
    bench.add_argument("--backends", nargs="+", default=None, help="kgpu backends (default: all present)")
    bench.add_argument("--out", default=None, help="also write the table to this file")
    bench.set_defaults(handler=run_bench)

    demo = commands.add_parser(
        "demo", parents=[common], help="cluster a built-in synthetic data set on the best backend present",
    )
    demo.add_argument("--n", type=int, default=300_000, help="rows (default 300000)")
    demo.add_argument("--d", type=int, default=16, help="features (default 16)")
    demo.add_argument("--k", type=int, default=8, help="clusters (default 8)")
    _add_backend_argument(demo)
    demo.set_defaults(handler=run_demo)

    doctor = commands.add_parser(
        "doctor", parents=[common], help="backends, devices, Triton, and the kernel each operation runs",
    )
    doctor.set_defaults(handler=run_doctor)

    quantize = commands.add_parser(
        "quantize", parents=[common], help="reduce an image to a K-Means colour palette",
        description="Fit K-Means on a sample of the pixels, map every pixel to its nearest colour, write the image.",
    )
    quantize.add_argument("image", metavar="IMAGE", help="input image (any format Pillow reads)")
    quantize.add_argument("--colors", type=int, default=16, help="palette size, 1 to 256 (default 16)")
    quantize.add_argument("--sample", type=int, default=100_000, help="pixels the palette is fitted on (default 100000)")
    quantize.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_backend_argument(quantize)
    quantize.add_argument("--out", required=True, help="output image (PNG keeps the palette)")
    quantize.set_defaults(handler=run_quantize)
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="data file: .npy, .npz, .csv/.tsv/.txt or .parquet")
    parser.add_argument("--key", default=None, help=".npz: the array to read (default: its only array)")
    parser.add_argument("--columns", type=_column_list, default=None,
                        help="CSV with header / Parquet: comma-separated columns to read (default all)")


def _add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                        help="library that computes (default auto: a GPU when present)")


def _n_init(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'auto', got {text!r}") from None


def _column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


def parse_k_range(text: str) -> list[int]:
    """``"2:12"`` (both ends included), ``"2:12:2"`` or ``"2,4,8"`` as a sorted list of k."""
    try:
        if ":" in text:
            parts = [int(part) for part in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            low, high, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
            if step < 1 or high < low:
                raise ValueError
            values = list(range(low, high + 1, step))
        else:
            values = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LO:HI, LO:HI:STEP or a comma-separated list of ints, got {text!r}"
        ) from None
    if values[0] < 1:
        raise argparse.ArgumentTypeError(f"every k must be >= 1, got {text!r}")
    return values


# ---------------------------------------------------------------- helpers
def _progress_setting(args: argparse.Namespace) -> Any:
    """``"auto"`` (bars only on a terminal) unless ``--quiet``."""
    return False if args.quiet else "auto"


def _load(args: argparse.Namespace) -> tuple[Any, list[str] | None]:
    """The data matrix of ``args.data`` and its column names (CSV header, Parquet), if any."""
    from ._io import load_table

    return load_table(args.data, key=args.key, columns=args.columns)


def _check_k(k: int, n_rows: int, data: str) -> None:
    if k < 1:
        raise CommandError(f"--k must be >= 1, got {k}.")
    if k > n_rows:
        raise CommandError(f"--k {k} is larger than the number of rows ({n_rows}) in {data}.")


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    """Every ``--name`` among ``names`` is an int >= 1 (what argparse's ``type=int`` leaves to us)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")


def check_outputs(outputs: Sequence[tuple[str, Any]], inputs: Sequence[tuple[str, Any]], *, directory: Any = None) -> None:
    """Refuse outputs that would overwrite an input; check every output location is writable.

    Runs before any work, so a bad path costs nothing.

    Parameters
    ----------
    outputs, inputs : sequence of (option, path)
        ``option`` names the path in messages (``"--out"``, ``"DATA"``);
        ``None`` paths are skipped.
    directory : path or None
        An output directory (``fit --out``): it must be a directory or creatable.

    Raises
    ------
    OutputOverwritesInput
        An output resolves (links and relative paths followed) to an input file.
    kgpu._io.DataError
        An output location that cannot be written.
    """
    from ._io import check_writable, same_file

    for out_option, out_path in outputs:
        for in_option, in_path in inputs:
            if out_path is not None and in_path is not None and same_file(out_path, in_path):
                raise OutputOverwritesInput(
                    f"{out_option} {out_path} is the input {in_option} {in_path}: refusing to overwrite an input; "
                    "choose another output path."
                )
    if directory is not None:
        check_writable(directory, directory=True)
    for _, out_path in outputs:
        if out_path is not None and Path(out_path) != Path(directory or ""):
            check_writable(out_path)


def resolve_backend(backend: str) -> str:
    """``--backend auto`` made concrete: CuPy on a GPU, else PyTorch on a GPU, else NumPy.

    PyTorch takes a second or more to import, so it is only imported when a
    CUDA driver with a device is found first (through ``libcuda``, without
    torch); an explicit name is returned as is.
    """
    if backend != "auto":
        return backend
    from ._backend import cuda_available

    if importlib.util.find_spec("cupy") is not None and cuda_available():
        return "cupy"
    if importlib.util.find_spec("torch") is not None and cuda_driver_sees_a_device():
        from ._backend import torch_cuda_available

        if torch_cuda_available():
            return "torch"
    return "numpy"


def cuda_driver_sees_a_device() -> bool:
    """Whether the CUDA driver library loads and reports at least one device (no CUDA toolkit needed)."""
    import ctypes

    try:
        driver = ctypes.CDLL("libcuda.so.1" if sys.platform != "win32" else "nvcuda.dll")
        count = ctypes.c_int(0)
        return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except (OSError, AttributeError):
        return False


def estimator_class(algorithm: str) -> type:
    """The kgpu estimator behind an ``--algorithm`` name (imported lazily).

    Raises
    ------
    CommandError
        When this installation of kgpu does not provide it.
    """
    import kgpu

    class_name = ALGORITHMS[algorithm]
    estimator = getattr(kgpu, class_name, None)
    if estimator is None:
        raise CommandError(
            f"--algorithm {algorithm} needs kgpu.{class_name}, which this installation of kgpu does not provide."
        )
    return estimator


def make_estimator(algorithm: str, params: dict[str, Any], options: dict[str, str]) -> Any:
    """An estimator with ``params``; a parameter it lacks is an error only if the user asked for it.

    Parameters
    ----------
    algorithm : str
        Key of :data:`ALGORITHMS`.
    params : dict
        Estimator parameters; ``None`` values are left at the estimator's default.
        ``n_init="auto"`` means the estimator's own default where it takes no
        ``"auto"`` (Bisecting K-Means: one 2-means run per split).
    options : dict
        Parameter name -> the command-line option that set it, for the message
        when the estimator has no such parameter.
    """
    estimator = estimator_class(algorithm)
    accepted = estimator().get_params(deep=False)
    chosen = {}
    for name, value in params.items():
        if value is None:
            continue
        if name == "n_init" and value == "auto" and not isinstance(accepted.get(name), str):
            continue
        if name in accepted:
            chosen[name] = value
        elif name in options:
            raise CommandError(f"{options[name]} does not apply to --algorithm {algorithm} ({estimator.__name__}).")
    return estimator(**chosen)


def _versions(backend: str) -> dict[str, str]:
    import numpy

    from . import __version__

    versions = {"kgpu": __version__, "numpy": numpy.__version__}
    if backend in ("cupy", "torch"):
        versions[backend] = importlib.import_module(backend).__version__
    return versions


def _compute_place(backend: str, X: Any) -> tuple[str, str]:
    """Name and device of the library that computes ``backend`` on ``X``."""
    from ._backend import backend_name, resolve_compute

    xp, device = resolve_compute(backend, None, X[:1])
    return backend_name(xp), str(device)


def _print_fields(fields: dict[str, Any]) -> None:
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        print(f"{name:<{width}}  {value}")


def _init_file(init: str | None) -> str | None:
    """``--init`` when it names a data file (of initial centers), else None."""
    from ._io import FORMATS

    if init is None or Path(init).suffix.lower() not in FORMATS:
        return None
    return init


def _init_param(init: str | None) -> Any:
    """``--init``: a method name, or a data file of initial centers."""
    from ._io import load_matrix

    if _init_file(init) is None:
        return init
    return load_matrix(init).astype(float)


# ------------------------------------------------------------------- fit
def run_fit(args: argparse.Namespace) -> int:
    """``kgpu fit``: cluster a file, write labels, centers, summary and model (all or none)."""
    from ._io import OutputFiles, open_labels_file, result_paths, write_results

    paths = result_paths(args.out)
    check_outputs(
        [("--out", args.out), *(("--out", path) for path in paths.values())],
        [("DATA", args.data), ("--init", _init_file(args.init))],
        directory=args.out,
    )
    _check_positive(args, "max_iter", "chunk_rows", "epochs")
    if isinstance(args.n_init, int) and args.n_init < 1:
        raise CommandError(f"--n-init must be >= 1 or 'auto', got {args.n_init}.")
    metric = _check_metric_option(args) if args.metric is not None or args.p is not None else None
    X, feature_names = _load(args)
    n_rows, n_features = X.shape
    _check_k(args.k, n_rows, args.data)
    progress = _progress_setting(args)
    seed = 0 if args.seed is None else args.seed
    backend = resolve_backend(args.backend)
    # Options the user typed: an estimator without such a parameter is an error;
    # defaults (seed, backend, progress) are simply not passed to it.
    typed = {"init": "--init", "n_init": "--n-init", "max_iter": "--max-iter", "metric": "--metric", "p": "--p"}
    if args.seed is not None:
        typed["random_state"] = "--seed"
    if args.backend != "auto":
        typed["backend"] = "--backend"
    model = make_estimator(
        args.algorithm,
        {
            "n_clusters": args.k, "init": _init_param(args.init), "n_init": args.n_init,
            "max_iter": args.max_iter, "random_state": seed, "backend": backend,
            "progress": progress, "metric": metric, "p": args.p,
        },
        typed,
    )
    backend, device = _compute_place(backend, X)
    streamed = args.algorithm == "minibatch" and n_rows > args.chunk_rows
    with OutputFiles() as outputs:
        started = time.perf_counter()
        if streamed:
            outputs.directory(args.out)
            labels, inertia = stream_fit(
                model, X, lambda: open_labels_file(paths["labels"], n_rows, outputs=outputs),
                args.chunk_rows, args.epochs, seed, progress,
            )
        else:
            model.fit(X)
            labels, inertia = model.labels_, float(model.inertia_)
        seconds = time.perf_counter() - started
        summary = {
            "backend": getattr(model, "backend_", backend),
            "device": device,
            "n": int(n_rows),
            "d": int(n_features),
            "k": int(args.k),
            "algorithm": args.algorithm,
            # A streamed mini-batch fit counts partial_fit steps, not epochs.
            "iterations": _as_int(getattr(model, "n_iter_", getattr(model, "n_steps_", None))),
            "inertia": inertia,
            "seconds": round(seconds, 4),
            "streamed": streamed,
            "data": str(args.data),
            "versions": _versions(getattr(model, "backend_", backend)),
        }
        if streamed:
            labels.flush()
            del labels  # already written, chunk by chunk, into the temporary labels file
            labels = None
        write_results(args.out, labels, model.cluster_centers_, summary, outputs=outputs, model=model,
                      feature_names=feature_names, input_dtype=X.dtype)
    _print_fields({name: value for name, value in summary.items() if name not in ("versions", "data", "streamed")})
    print(f"wrote {args.out}/labels.npy, centers.npy, summary.json, model.kgpu")
    return 0


def _check_metric_option(args: argparse.Namespace) -> str | None:
    """``--metric`` / ``--p`` of ``fit``, checked by name (the estimator checks the rest)."""
    from ._distances import check_metric

    name = args.metric if args.metric is not None else "minkowski"
    check_metric(name, args.p)
    return args.metric


def stream_fit(
    model: Any, X: Any, open_labels: Callable[[], Any], chunk_rows: int, epochs: int, seed: int, progress: Any
) -> tuple[Any, float]:
    """Fit ``model`` by ``partial_fit`` on row chunks of ``X``, then label every row.

    Chunks are visited in a random order each epoch (a file sorted by cluster
    would otherwise bias the first updates); each chunk is one contiguous read
    of the memory map.

    Parameters
    ----------
    model : estimator with ``partial_fit``, ``predict`` and ``score``
    X : array of shape (n, d), typically a read-only memory map
    open_labels : callable
        ``open_labels()`` gives a writable int64 array of shape (n,) for the
        final labels; called once the centers are fitted (so the labels file
        is only created when the fit has run).
    chunk_rows, epochs, seed : int
    progress : bool or "auto"

    Returns
    -------
    labels : the array from ``open_labels``, filled
    inertia : float
        Objective of every row on the final centers.
    """
    import numpy as np

    from ._blocks import row_blocks
    from ._progress import track

    if not hasattr(model, "partial_fit"):
        raise CommandError(f"{type(model).__name__} has no partial_fit: it cannot stream a file.")
    if chunk_rows < model.n_clusters:
        raise CommandError(f"--chunk-rows {chunk_rows} must be at least --k {model.n_clusters}.")
    if epochs < 1:
        raise CommandError(f"--epochs must be >= 1, got {epochs}.")
    if "compute_labels" in model.get_params(deep=False):
        # Labels of each chunk at each step would be thrown away: the final
        # labels come from one predict pass below.
        model.set_params(compute_labels=False)
    chunks = row_blocks(X.shape[0], chunk_rows)
    rng = np.random.default_rng(seed)
    order = [chunks[i] for _ in range(epochs) for i in rng.permutation(len(chunks))]
    # np.array copies: each chunk is read into memory once, then handed over
    # as an ordinary array (a memory-mapped view would be streamed again).
    for start, stop in track(order, progress, description="partial_fit", unit="chunk"):
        model.partial_fit(np.array(X[start:stop]))
    labels_out = open_labels()
    inertia = 0.0
    for start, stop in track(chunks, progress, description="labels", unit="chunk"):
        chunk = np.array(X[start:stop])
        labels_out[start:stop] = np.asarray(model.predict(chunk))
        inertia -= float(model.score(chunk))
    return labels_out, inertia


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --------------------------------------------------------------- predict
def run_predict(args: argparse.Namespace) -> int:
    """``kgpu predict``: the label of every row, chunk by chunk, from a model file or bare centers."""
    import numpy as np

    from ._io import OutputFiles, open_labels_file

    check_outputs([("--out", args.out)], [("DATA", args.data), ("--centers", args.centers), ("--model", args.model)])
    if Path(args.out).suffix.lower() != ".npy":
        raise CommandError(f"{args.out}: labels are written as .npy; give a path ending in .npy.")
    _check_positive(args, "chunk_rows")
    if args.model is not None:
        if args.metric is not None or args.p is not None:
            raise CommandError("--metric and --p come from the model file; they only apply with --centers.")
        labeller = _model_labeller(args)
    else:
        labeller = _centers_labeller(args)
    X, feature_names = labeller.load(args)
    labeller.check(X, feature_names)
    n_rows = X.shape[0]
    # One row first: modules imported and kernels chosen (or compiled) before
    # the labels file exists, so an interrupt from here on meets plain work.
    labeller.label(np.array(X[:1]))
    labeller.reset()
    with OutputFiles() as outputs:
        labels = open_labels_file(args.out, n_rows, outputs=outputs)
        labeller.fill(X, labels, args.chunk_rows, _progress_setting(args))
        labels.flush()
        counts = labeller.counts(labels)
        del labels
    print(f"{n_rows} rows, {labeller.describe(counts)}; labels written to {args.out}")
    return 0


class _Labeller:
    """What ``predict`` labels rows with: :meth:`check` the data, :meth:`fill` the labels chunk by chunk."""

    n_clusters: int
    n_features: int
    source: str

    def load(self, args: argparse.Namespace) -> tuple[Any, list[str] | None]:
        """The rows to label and their column names."""
        return _load(args)

    def check(self, X: Any, feature_names: list[str] | None) -> None:
        if X.shape[1] != self.n_features:
            raise CommandError(f"{self.source} has {self.n_features} features but {self._data} has {X.shape[1]}.")

    def fill(self, X: Any, labels: Any, chunk_rows: int, progress: Any) -> None:
        import numpy as np

        from ._blocks import row_blocks
        from ._progress import track

        for start, stop in track(row_blocks(X.shape[0], chunk_rows), progress, description="predict", unit="chunk"):
            labels[start:stop] = self.label(np.array(X[start:stop]))

    def counts(self, labels: Any) -> Any:
        import numpy as np

        return np.bincount(labels, minlength=self.n_clusters)

    def label(self, chunk: Any) -> Any:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the statistics of rows labelled so far."""

    def describe(self, counts: Any) -> str:  # pragma: no cover - defined by subclasses
        raise NotImplementedError


class _ModelLabeller(_Labeller):
    """The labels a saved model gives: its own ``predict`` (the split tree for bisecting)."""

    def __init__(self, model: Any, path: str, data: str):
        self.model = model
        self.metadata = model.model_metadata_
        self.n_clusters = int(self.metadata["n_clusters"])
        self.n_features = int(self.metadata["n_features"])
        self.source = f"the model {path}"
        self._data = data

    def load(self, args: argparse.Namespace) -> tuple[Any, list[str] | None]:
        """The model's columns, by name, when the file has them all and no ``--columns`` was given."""
        from ._io import DataError, load_table

        expected = self.metadata.get("feature_names")
        if expected and args.columns is None and Path(args.data).suffix.lower() in (".csv", ".tsv", ".txt", ".parquet"):
            try:
                return load_table(args.data, key=args.key, columns=expected)
            except DataError:
                pass  # not those columns (or no header): read the file as it is; check() says what differs
        return _load(args)

    def check(self, X: Any, feature_names: list[str] | None) -> None:
        super().check(X, feature_names)
        expected = self.metadata.get("feature_names")
        if expected and feature_names and list(feature_names) != list(expected):
            raise CommandError(
                f"{self._data} has columns {', '.join(feature_names)} but {self.source} was fitted on "
                f"{', '.join(expected)}; choose them with --columns."
            )

    def label(self, chunk: Any) -> Any:
        import numpy as np

        from ._backend import to_numpy

        return np.asarray(to_numpy(self.model.predict(chunk)))

    def describe(self, counts: Any) -> str:
        import numpy as np

        return (
            f"{self.metadata['estimator']} model with {self.n_clusters} clusters: "
            f"{int(np.count_nonzero(counts))} clusters used"
        )


class _CentersLabeller(_Labeller):
    """Nearest center under a metric, for a bare centers file."""

    def __init__(self, centers: Any, metric: Any, backend: str, path: str, data: str):
        from ._backend import resolve_compute

        self.centers = centers
        self.metric = metric
        self.n_clusters, self.n_features = centers.shape
        self.xp, self.device = resolve_compute(backend, None, centers[:1])
        self.source = path
        self._data = data
        self._centers_by_dtype: dict[Any, Any] = {}
        self.total_distance = 0.0

    def reset(self) -> None:
        self.total_distance = 0.0

    def check(self, X: Any, feature_names: list[str] | None) -> None:
        if X.shape[1] != self.n_features:
            raise CommandError(
                f"{self.source} has {self.n_features} features per center but {self._data} has {X.shape[1]}."
            )

    def label(self, chunk: Any) -> Any:
        import numpy as np

        from ._assign import assign
        from ._backend import move_to, to_numpy
        from ._stream import widened
        from ._validation import check_data, is_half_precision

        from ._scale import frame_of_centers, is_translation_invariant, metric_power

        chunk = check_data(chunk)
        if is_half_precision(chunk.dtype):
            # A chunk is one block already: computed in float32, like every half-precision input.
            chunk = widened(chunk)
        if chunk.dtype not in self._centers_by_dtype:
            centers = move_to(self.centers.astype(chunk.dtype), self.xp, self.device)
            # Distances in the centers' working frame (kgpu._scale): float32 far from zero keeps its digits.
            frame = frame_of_centers(centers, xp=self.xp, center=is_translation_invariant(self.metric))
            self._centers_by_dtype[chunk.dtype] = (frame, frame.apply(centers))
        frame, centers = self._centers_by_dtype[chunk.dtype]
        result = assign(frame.apply(move_to(chunk, self.xp, self.device)), centers, xp=self.xp, metric=self.metric)
        distance = float(np.sum(to_numpy(result.min_dist), dtype=np.float64))
        self.total_distance += frame.restore_distances(distance, metric_power(self.metric))
        return to_numpy(result.labels)

    def describe(self, counts: Any) -> str:
        import numpy as np

        n_rows = int(counts.sum())
        return (
            f"{self.n_clusters} centers: mean {self.metric.name} distance to the nearest center "
            f"{self.total_distance / n_rows:.6g}, {int(np.count_nonzero(counts))} centers used"
        )


def _model_labeller(args: argparse.Namespace) -> _ModelLabeller:
    from ._model import load

    model = load(args.model)
    backend = resolve_backend(args.backend)
    model.set_params(backend=backend)
    return _ModelLabeller(model, args.model, args.data)


def _centers_labeller(args: argparse.Namespace) -> _CentersLabeller:
    import numpy as np

    from ._distances import check_metric
    from ._io import load_matrix

    metric = check_metric(args.metric if args.metric is not None else "sqeuclidean", args.p)
    centers = np.asarray(load_matrix(args.centers))
    if centers.dtype.kind != "f":
        centers = centers.astype(np.float64)
    return _CentersLabeller(centers, metric, resolve_backend(args.backend), args.centers, args.data)


# -------------------------------------------------------------- choose-k
def run_choose_k(args: argparse.Namespace) -> int:
    """``kgpu choose-k``: sweep k with :func:`kgpu.select.choose_k`, print the table and picks."""
    import json

    import numpy as np

    from ._io import OutputFiles

    check_outputs([("--out", args.out), ("--plot", args.plot)], [("DATA", args.data)])
    if args.out is not None and args.plot is not None and Path(args.out).resolve() == Path(args.plot).resolve():
        raise OutputOverwritesInput(f"--out and --plot are the same file {args.out}; give two paths.")
    _check_positive(args, "n_refs")
    try:
        select = importlib.import_module("kgpu.select")
    except ModuleNotFoundError as exc:
        if exc.name != "kgpu.select":
            raise
        raise CommandError("choose-k needs kgpu.select, which this installation of kgpu does not provide.") from None
    unknown = [name for name in args.criteria or () if name not in select.CRITERIA]
    if unknown:
        raise CommandError(
            f"--criteria: unknown criterion {unknown[0]!r}; choose from {', '.join(select.CRITERIA)}."
        )
    if args.plot is not None:
        _matplotlib_pyplot()  # before the sweep: a missing matplotlib should not cost the whole run
    X, _ = _load(args)
    _check_k(max(args.k), X.shape[0], args.data)
    backend = resolve_backend(args.backend)
    options: dict[str, Any] = {"random_state": args.seed, "backend": backend, "progress": _progress_setting(args)}
    if args.criteria:
        options["criteria"] = tuple(args.criteria)
    if args.n_refs is not None:
        options["n_refs"] = args.n_refs
    if args.algorithm != "kmeans":
        options["estimator"] = make_estimator(args.algorithm, {"random_state": args.seed}, {})
    result = select.choose_k(np.asarray(X), args.k, **options)
    print(result.to_table())
    with OutputFiles() as outputs:
        if args.out:
            outputs.path_for(args.out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        if args.plot:
            plot_selection(result, outputs.path_for(args.plot), image_format=Path(args.plot).suffix[1:] or "png")
    if args.out:
        print(f"results written to {args.out}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _matplotlib_pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CommandError("--plot needs matplotlib: pip install 'kgpu[plot]'.") from exc
    return plt


def plot_selection(result: Any, path: Any, *, image_format: str | None = None) -> None:
    """Draw the result's panels (its ``plot`` method) into an image file."""
    plt = _matplotlib_pyplot()
    axes = result.plot()
    figure = axes[0].figure
    try:
        figure.savefig(path, bbox_inches="tight", dpi=110, format=image_format)
    finally:
        plt.close(figure)


# ------------------------------------------------------------ bench, demo
def run_bench(args: argparse.Namespace) -> int:
    """``kgpu bench``: the side-by-side table of :mod:`kgpu._bench`."""
    from ._backend import BACKEND_NAMES

    check_outputs([("--out", args.out)], [])
    _check_positive(args, "n", "d", "k", "iterations", "repeats")
    if args.k > args.n:
        raise CommandError(f"--k {args.k} is larger than --n {args.n}.")
    for name in args.backends or ():
        library = name.partition(":")[0]
        if library not in BACKEND_NAMES or library == "auto":
            choices = ", ".join(backend for backend in BACKEND_NAMES if backend != "auto")
            raise CommandError(f"--backends: unknown backend {name!r}; choose from {choices} (optionally NAME:DEVICE).")
    from ._bench import compare, format_table, problem_header, publish

    rows = compare(args.n, args.d, args.k, args.iterations, args.repeats, args.backends)
    command = " ".join(["kgpu", *args.argv])
    table = format_table(rows, problem_header(args.n, args.d, args.k, args.iterations, args.repeats, command))
    publish(table, args.out)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """``kgpu demo``: what ``make demo`` runs."""
    _check_positive(args, "n", "d", "k")
    if args.k > args.n:
        raise CommandError(f"--k {args.k} is larger than --n {args.n}.")
    from ._demo import run_demo as demo

    demo(args.n, args.d, args.k, backend=resolve_backend(args.backend))
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    """``kgpu doctor``: what :func:`kgpu._doctor.doctor` finds."""
    from ._doctor import doctor

    print(doctor())
    return 0


# --------------------------------------------------------------- quantize
def run_quantize(args: argparse.Namespace) -> int:
    """``kgpu quantize``: colour quantization of an image."""
    check_outputs([("--out", args.out)], [("IMAGE", args.image)])
    if not 1 <= args.colors <= 256:
        raise CommandError(f"--colors must be between 1 and 256, got {args.colors}.")
    if args.sample < 1:
        raise CommandError(f"--sample must be >= 1, got {args.sample}.")
    from ._quantize import quantize_image

    report = quantize_image(
        args.image, args.out, args.colors, sample_size=args.sample, random_state=args.seed,
        backend=resolve_backend(args.backend), progress=_progress_setting(args),
    )
    bits = max(1, (report.n_colors - 1).bit_length())
    _print_fields({
        "image": f"{report.width} x {report.height} ({report.width * report.height:,} pixels)",
        "colours": report.n_colors,
        "raw RGB": f"{report.raw_bytes:,} bytes",
        "indexed": f"{report.indexed_bytes:,} bytes ({bits} bits a pixel + palette)",
        "ratio": f"{report.ratio:.2f}x smaller",
        "backend": report.backend,
        "seconds": round(report.seconds, 3),
        "written": f"{report.output} ({report.output.stat().st_size:,} bytes)",
    })
    return 0


# ------------------------------------------------------------------ main
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, (CommandError, ValueError, TypeError, FileNotFoundError, ImportError, MemoryError)) or not text:
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, without the source line they came from."""
    print(f"kgpu: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kgpu`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    handler: Callable[[argparse.Namespace], int] = args.handler
    # SIGTERM becomes an exception, so temporaries are removed on the way out
    # as on Ctrl-C (signal handlers can only be set from the main thread).
    try:
        previous_sigterm = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:
        previous_sigterm = None
    show_warning = warnings.showwarning
    try:
        if args.debug:
            return handler(args)
        warnings.showwarning = _show_warning
        return handler(args)
    except KeyboardInterrupt:
        print(f"kgpu {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"kgpu {args.command}: terminated; no partial output was left", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; --debug shows it whole
        if args.debug:
            raise
        print(f"kgpu {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return getattr(exc, "exit_status", EXIT_ERROR)
    finally:
        warnings.showwarning = show_warning
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


if __name__ == "__main__":
    sys.exit(main())
