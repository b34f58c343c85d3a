"""The ``kgpu`` command: fit, predict, choose-k, bench, demo and quantize.

Built on :mod:`argparse` (standard library: no extra dependency, and the
``--help`` of every subcommand is generated from the same definitions).
Errors a user can fix are reported as one line on standard error with a
non-zero exit status; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
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


class CommandError(Exception):
    """A problem with the command's arguments, reported as one line."""


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
        "fit", parents=[common], help="cluster a data file; write labels, centers and a summary",
        description="Cluster DATA and write DIR/labels.npy, DIR/centers.npy and DIR/summary.json.",
    )
    _add_data_arguments(fit)
    fit.add_argument("--k", type=int, default=8, help="number of clusters (default 8)")
    fit.add_argument("--algorithm", default="kmeans", choices=list(ALGORITHMS), help="default kmeans")
    _add_backend_argument(fit)
    fit.add_argument("--init", default=None,
                     help="initialisation method (e.g. k-means++, random), or a data file of initial centers")
    fit.add_argument("--n-init", type=_n_init, default=None, help="restarts: an int or 'auto'")
    fit.add_argument("--max-iter", type=int, default=None, help="most iterations per run")
    fit.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    fit.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                     help=f"minibatch: stream files with more rows than this through partial_fit (default {DEFAULT_CHUNK_ROWS})")
    fit.add_argument("--epochs", type=int, default=1, help="minibatch streaming: passes over the file (default 1)")
    fit.add_argument("--out", required=True, metavar="DIR", help="directory for labels.npy, centers.npy, summary.json")
    fit.set_defaults(handler=run_fit)

    predict = commands.add_parser(
        "predict", parents=[common], help="label every row with its nearest center",
        description="Write the index of the nearest center of every row of DATA to OUT (.npy, int64).",
    )
    _add_data_arguments(predict)
    predict.add_argument("--centers", required=True, help="centers file (e.g. centers.npy written by 'kgpu fit')")
    predict.add_argument("--metric", default="sqeuclidean",
                         help="sqeuclidean (default), euclidean, manhattan, minkowski, cosine")
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


def _load(args: argparse.Namespace) -> Any:
    from ._io import load_matrix

    return load_matrix(args.data, key=args.key, columns=args.columns)


def _check_k(k: int, n_rows: int, data: str) -> None:
    if k < 1:
        raise CommandError(f"--k must be >= 1, got {k}.")
    if k > n_rows:
        raise CommandError(f"--k {k} is larger than the number of rows ({n_rows}) in {data}.")


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


def _init_param(init: str | None) -> Any:
    """``--init``: a method name, or a data file of initial centers."""
    from ._io import FORMATS, load_matrix

    if init is None or Path(init).suffix.lower() not in FORMATS:
        return init
    return load_matrix(init).astype(float)


# ------------------------------------------------------------------- fit
def run_fit(args: argparse.Namespace) -> int:
    """``kgpu fit``: cluster a file, write labels, centers and summary."""
    from ._io import open_labels_file, write_results

    X = _load(args)
    n_rows, n_features = X.shape
    _check_k(args.k, n_rows, args.data)
    progress = _progress_setting(args)
    seed = 0 if args.seed is None else args.seed
    # Options the user typed: an estimator without such a parameter is an error;
    # defaults (seed, backend, progress) are simply not passed to it.
    typed = {"init": "--init", "n_init": "--n-init", "max_iter": "--max-iter"}
    if args.seed is not None:
        typed["random_state"] = "--seed"
    if args.backend != "auto":
        typed["backend"] = "--backend"
    model = make_estimator(
        args.algorithm,
        {
            "n_clusters": args.k, "init": _init_param(args.init), "n_init": args.n_init,
            "max_iter": args.max_iter, "random_state": seed, "backend": args.backend,
            "progress": progress,
        },
        typed,
    )
    backend, device = _compute_place(args.backend, X)
    streamed = args.algorithm == "minibatch" and n_rows > args.chunk_rows
    started = time.perf_counter()
    if streamed:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        labels = open_labels_file(out / "labels.npy", n_rows)
        inertia = stream_fit(model, X, labels, args.chunk_rows, args.epochs, seed, progress)
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
        labels = None  # already written, chunk by chunk, into DIR/labels.npy
    write_results(args.out, labels, model.cluster_centers_, summary)
    _print_fields({name: value for name, value in summary.items() if name not in ("versions", "data", "streamed")})
    print(f"wrote {args.out}/labels.npy, centers.npy, summary.json")
    return 0


def stream_fit(model: Any, X: Any, labels_out: Any, chunk_rows: int, epochs: int, seed: int, progress: Any) -> float:
    """Fit ``model`` by ``partial_fit`` on row chunks of ``X``, then label every row.

    Chunks are visited in a random order each epoch (a file sorted by cluster
    would otherwise bias the first updates); each chunk is one contiguous read
    of the memory map.

    Parameters
    ----------
    model : estimator with ``partial_fit``, ``predict`` and ``score``
    X : array of shape (n, d), typically a read-only memory map
    labels_out : writable int64 array of shape (n,)
        Filled with the final labels.
    chunk_rows, epochs, seed : int
    progress : bool or "auto"

    Returns
    -------
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
    inertia = 0.0
    for start, stop in track(chunks, progress, description="labels", unit="chunk"):
        chunk = np.array(X[start:stop])
        labels_out[start:stop] = np.asarray(model.predict(chunk))
        inertia -= float(model.score(chunk))
    return inertia


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --------------------------------------------------------------- predict
def run_predict(args: argparse.Namespace) -> int:
    """``kgpu predict``: nearest center of every row, chunk by chunk."""
    import numpy as np

    from ._assign import assign
    from ._backend import move_to, resolve_compute, to_numpy
    from ._blocks import row_blocks
    from ._distances import check_metric
    from ._io import load_matrix, open_labels_file
    from ._progress import track
    from ._validation import check_data

    metric = check_metric(args.metric, args.p)
    if args.chunk_rows < 1:
        raise CommandError(f"--chunk-rows must be >= 1, got {args.chunk_rows}.")
    X = _load(args)
    centers = check_data(np.asarray(load_matrix(args.centers)))
    n_rows, n_features = X.shape
    if centers.shape[1] != n_features:
        raise CommandError(
            f"{args.centers} has {centers.shape[1]} features per center but {args.data} has {n_features}."
        )
    xp, device = resolve_compute(args.backend, None, X[:1])
    labels = open_labels_file(args.out, n_rows)
    total_distance = 0.0
    centers_by_dtype: dict[Any, Any] = {}
    for start, stop in track(row_blocks(n_rows, args.chunk_rows), _progress_setting(args), description="predict", unit="chunk"):
        chunk = check_data(np.array(X[start:stop]))
        if chunk.dtype not in centers_by_dtype:
            centers_by_dtype[chunk.dtype] = move_to(centers.astype(chunk.dtype), xp, device)
        result = assign(move_to(chunk, xp, device), centers_by_dtype[chunk.dtype], xp=xp, metric=metric)
        labels[start:stop] = to_numpy(result.labels)
        total_distance += float(np.sum(to_numpy(result.min_dist), dtype=np.float64))
    labels.flush()
    counts = np.bincount(labels, minlength=centers.shape[0])
    print(
        f"{n_rows} rows, {centers.shape[0]} centers: "
        f"mean {metric.name} distance to the nearest center {total_distance / n_rows:.6g}, "
        f"{int(np.count_nonzero(counts))} centers used; labels written to {args.out}"
    )
    return 0


# -------------------------------------------------------------- choose-k
def run_choose_k(args: argparse.Namespace) -> int:
    """``kgpu choose-k``: sweep k with :func:`kgpu.select.choose_k`, print the table and picks."""
    import json

    import numpy as np

    try:
        select = importlib.import_module("kgpu.select")
    except ModuleNotFoundError as exc:
        if exc.name != "kgpu.select":
            raise
        raise CommandError("choose-k needs kgpu.select, which this installation of kgpu does not provide.") from None
    X = _load(args)
    _check_k(max(args.k), X.shape[0], args.data)
    options: dict[str, Any] = {"random_state": args.seed, "backend": args.backend, "progress": _progress_setting(args)}
    if args.criteria:
        options["criteria"] = tuple(args.criteria)
    if args.n_refs is not None:
        options["n_refs"] = args.n_refs
    if args.algorithm != "kmeans":
        options["estimator"] = make_estimator(args.algorithm, {"random_state": args.seed}, {})
    result = select.choose_k(np.asarray(X), args.k, **options)
    print(result.to_table())
    if args.out:
        Path(args.out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"results written to {args.out}")
    if args.plot:
        plot_selection(result, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def plot_selection(result: Any, path: str) -> None:
    """Draw the result's panels (its ``plot`` method) into an image file."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CommandError("--plot needs matplotlib: pip install 'kgpu[plot]'.") from exc
    axes = result.plot()
    figure = axes[0].figure
    try:
        figure.savefig(path, bbox_inches="tight", dpi=110)
    finally:
        plt.close(figure)


# ------------------------------------------------------------ bench, demo
def run_bench(args: argparse.Namespace) -> int:
    """``kgpu bench``: the side-by-side table of :mod:`kgpu._bench`."""
    from ._bench import compare, format_table, problem_header

    for name in ("n", "d", "k", "iterations", "repeats"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.k > args.n:
        raise CommandError(f"--k {args.k} is larger than --n {args.n}.")
    rows = compare(args.n, args.d, args.k, args.iterations, args.repeats, args.backends)
    command = " ".join(["kgpu", *args.argv])
    table = format_table(rows, problem_header(args.n, args.d, args.k, args.iterations, args.repeats, command))
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """``kgpu demo``: what ``make demo`` runs."""
    from ._demo import run_demo as demo

    demo(args.n, args.d, args.k, backend=args.backend)
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    """``kgpu doctor``: what :func:`kgpu._doctor.doctor` finds."""
    from ._doctor import doctor

    print(doctor())
    return 0


# --------------------------------------------------------------- quantize
def run_quantize(args: argparse.Namespace) -> int:
    """``kgpu quantize``: colour quantization of an image."""
    from ._quantize import quantize_image

    if not 1 <= args.colors <= 256:
        raise CommandError(f"--colors must be between 1 and 256, got {args.colors}.")
    if args.sample < 1:
        raise CommandError(f"--sample must be >= 1, got {args.sample}.")
    report = quantize_image(
        args.image, args.out, args.colors, sample_size=args.sample, random_state=args.seed,
        backend=args.backend, progress=_progress_setting(args),
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kgpu`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    handler: Callable[[argparse.Namespace], int] = args.handler
    if args.debug:
        return handler(args)
    show_warning = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("kgpu: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; --debug shows it whole
        print(f"kgpu {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = show_warning


if __name__ == "__main__":
    sys.exit(main())
