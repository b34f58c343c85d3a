"""The GPU run in one command (``make gpu-check``): tests, cases A and B, the other algorithms, peers, rooflines.

On a machine with a CUDA GPU (PyTorch with CUDA, or CuPy) it runs, within a
time budget (default 450 s, for an 8-minute slot on one H100/H200):

1. the kernel contract tests and the device / sync / doctor tests on the GPU
   (the Triton kernels compiled for the card, CuPy arrays where CuPy is present);
2. case A (n=10M, d=128, k=1024) and case B (n=10M, d=16, k=16), float32:
   one Lloyd iteration through the fused Triton kernel at each precision,
   against the array-API path, with the labels compared; then KMeans fits;
3. KMedians, MiniBatchKMeans and k-means++ initialisation, both paths;
4. cuML, FAISS-GPU, flash-kmeans and fast-pytorch-kmeans where installed;
5. each case's roofline: bytes and FLOPs counted, over the card's copy
   bandwidth and matrix rates measured in the same run.

It writes ``bench/results/gpu-<date>-<device>.md`` (device, date, command,
tables) and prints it. Without a GPU it says so and exits with status 2 in
a second or two, having run nothing.

    python bench/gpu_check.py                    # everything, 450 s budget
    python bench/gpu_check.py --budget-s 300 --no-tests
    python bench/gpu_check.py --rehearse-on-cpu  # tiny sizes on CPU tensors through
                                                 # Triton's interpreter: checks this
                                                 # script, measures nothing
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]

#: The two cases of the GPU engine's design, float32.
CASES = {
    "A": dict(n=10_000_000, d=128, k=1024),
    "B": dict(n=10_000_000, d=16, k=16),
}
KMEDIANS_CASE = dict(n=1_000_000, d=128, k=256)

#: Datasheet figures for the roofline when nothing better was measured (H100/H200 SXM).
DATASHEET = {"bytes_per_s": 4.8e12, "fp32_flops": 67e12, "tf32_flops": 495e12}

EXIT_NO_GPU = 2


# --------------------------------------------------------------------------- finding the GPU


def find_gpu() -> tuple[str | None, str]:
    """``(library, device name)`` of the first CUDA device, or ``(None, why not)``.

    Only the standard library is needed before this answers, so that a
    machine without the GPU libraries is told so, not shown a traceback.
    """
    reasons = []
    try:
        import torch

        if torch.cuda.is_available():
            return "torch", torch.cuda.get_device_name(0)
        reasons.append(f"PyTorch {torch.__version__} sees no CUDA device")
    except ImportError:
        reasons.append("PyTorch is not installed")
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
            return "cupy", name.decode() if isinstance(name, bytes) else str(name)
        reasons.append("CuPy sees no CUDA device")
    except ImportError:
        reasons.append("CuPy is not installed")
    except Exception as exc:  # noqa: BLE001 - a CuPy without a driver raises its own errors
        reasons.append(f"CuPy finds no usable device ({type(exc).__name__})")
    return None, "; ".join(reasons)


# --------------------------------------------------------------------------- the run


class Run:
    """Budget, timers and the report being written."""

    def __init__(self, args: argparse.Namespace, device_name: str):
        import torch

        self.args = args
        self.started = time.perf_counter()
        self.torch = torch
        self.cuda = not args.rehearse_on_cpu
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.device_name = device_name
        self.sections: list[str] = []
        self.notes: list[str] = []
        self.scale = 1.0 if self.cuda else 2e-4
        self.ceilings = dict(DATASHEET)
        self.ceilings_measured: dict[str, float] = {}

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.started)

    def size(self, n: int) -> int:
        """Rows actually used (all of them on a GPU; a handful in a rehearsal)."""
        return max(64, int(n * self.scale))

    def clusters(self, k: int) -> int:
        """Clusters actually used (all on a GPU; few in a rehearsal, where the interpreter is slow)."""
        return k if self.cuda else min(k, 24)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def timed(self, function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
        """Median seconds of ``repeats`` runs after one warm-up (compilation, caches), and the last result."""
        result = function()
        self.sync()
        times = []
        for _ in range(repeats):
            if self.cuda:
                start, stop = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
                start.record()
                result = function()
                stop.record()
                stop.synchronize()
                times.append(start.elapsed_time(stop) / 1e3)
            else:
                began = time.perf_counter()
                result = function()
                times.append(time.perf_counter() - began)
        return statistics.median(times), result

    def section(self, title: str, body: str) -> None:
        self.sections.append(f"## {title}\n\n{body.rstrip()}\n")
        print(f"\n## {title}\n\n{body}", flush=True)

    def guarded(self, title: str, needs_s: float, body: Callable[[], str]) -> None:
        """Run one section if the budget allows; an error is reported, not raised."""
        if self.left() < needs_s:
            self.section(title, f"Not run: {self.left():.0f} s of the budget left, about {needs_s:.0f} s needed.")
            return
        began = time.perf_counter()
        try:
            text = body()
        except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
            import traceback

            text = "FAILED:\n\n```\n" + traceback.format_exc()[-3000:] + "\n```"
            print(f"{title}: {type(exc).__name__}: {exc}", file=sys.stderr)
        self.section(title, text + f"\n\n({time.perf_counter() - began:.1f} s)")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


# --------------------------------------------------------------------------- data


def make_blobs(run: Run, n: int, d: int, k: int, seed: int = 0):
    """``X`` (n, d) float32 around k centers, the true centers, and k initial centers (rows of X), on the device."""
    torch = run.torch
    generator = torch.Generator(device=run.device).manual_seed(seed)
    true_centers = torch.randn((k, d), generator=generator, device=run.device) * 3.0
    X = torch.empty((n, d), dtype=torch.float32, device=run.device)
    chunk = 1 << 20
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        labels = torch.randint(0, k, (stop - start,), generator=generator, device=run.device)
        X[start:stop] = true_centers[labels] + torch.randn((stop - start, d), generator=generator, device=run.device)
    init_rows = torch.randperm(n, generator=generator, device=run.device)[:k]
    return X, true_centers, X[init_rows].clone()


# --------------------------------------------------------------------------- sections


def run_tests(run: Run) -> str:
    files = ["tests/kernels", "tests/test_device.py", "tests/test_syncs.py", "tests/test_doctor.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("TRITON_INTERPRET", None)  # compile for the card
    timeout = max(30.0, min(240.0, run.left() - 200))
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        output, status = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output, status = (exc.stdout or "") if isinstance(exc.stdout, str) else "", f"timed out after {timeout:.0f} s"
    summary = [line for line in output.splitlines() if re.search(r"\b(passed|failed|error)", line)]
    tail = "\n".join(output.splitlines()[-25:])
    return (
        f"`{' '.join(command[1:])}` (exit status {status})\n\n"
        f"**{summary[-1] if summary else 'no summary line'}**\n\n```\n{tail}\n```"
    )


def measure_ceilings(run: Run) -> str:
    """Copy bandwidth and FP32 / TF32 matrix rates of this card, measured now."""
    torch = run.torch
    n_bytes = int(4e9 * run.scale) if run.cuda else 1 << 20
    source = torch.randn(n_bytes // 4, device=run.device)
    target = torch.empty_like(source)
    copy_s, _ = run.timed(lambda: target.copy_(source), 10)
    bandwidth = 2 * n_bytes / copy_s
    size = 8192 if run.cuda else 256
    a = torch.randn((size, size), device=run.device)
    b = torch.randn((size, size), device=run.device)
    rates = {}
    previous = torch.backends.cuda.matmul.allow_tf32
    for name, allow_tf32 in (("fp32", False), ("tf32", True)):
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        seconds, _ = run.timed(lambda: a @ b, 5)
        rates[name] = 2 * size**3 / seconds
    torch.backends.cuda.matmul.allow_tf32 = previous
    if run.cuda:
        run.ceilings.update(bytes_per_s=bandwidth, fp32_flops=rates["fp32"], tf32_flops=rates["tf32"])
        run.ceilings_measured = dict(run.ceilings)
    rows = [
        ["device-to-device copy (read + write)", f"{bandwidth / 1e12:.3g} TB/s", f"{DATASHEET['bytes_per_s'] / 1e12:.3g} TB/s"],
        [f"FP32 matrix product {size}^3 (no TF32)", f"{rates['fp32'] / 1e12:.3g} TFLOP/s", f"{DATASHEET['fp32_flops'] / 1e12:.3g} TFLOP/s"],
        [f"TF32 matrix product {size}^3", f"{rates['tf32'] / 1e12:.3g} TFLOP/s", f"{DATASHEET['tf32_flops'] / 1e12:.3g} TFLOP/s"],
    ]
    return _table(["ceiling", "measured (median)", "datasheet"], rows)


def roofline(run: Run, n: int, d: int, k: int) -> dict[str, float]:
    """Floors of one Lloyd iteration: bytes and FLOPs counted for the fused design."""
    flops = 2.0 * n * k * d  # the score GEMM; the argmin and update are O(n (k + d))
    # Read X for the assignment, write labels (int64), read X again in label
    # order for the update, plus the sort of n labels (about 4 passes of 16 bytes).
    bytes_moved = 4.0 * n * d * 2 + 8.0 * n + 64.0 * n
    ceilings = run.ceilings
    return {
        "flops": flops,
        "bytes": bytes_moved,
        "memory_s": bytes_moved / ceilings["bytes_per_s"],
        "fp32_s": flops / ceilings["fp32_flops"],
        # 3xTF32: three tensor-core products per product.
        "tf32x3_s": 3 * flops / ceilings["tf32_flops"],
        "tf32_s": flops / ceilings["tf32_flops"],
    }


def lloyd_case(run: Run, name: str, n: int, d: int, k: int) -> str:
    import array_api_compat.torch as xp_torch

    from kgpu._assign import assign_and_accumulate_reference, assignment_block_rows
    from kgpu._kernels import gpu_triton

    n, k = run.size(n), run.clusters(k)
    X, _, centers = make_blobs(run, n, d, k)
    weights = run.torch.ones(n, dtype=run.torch.float32, device=run.device)
    repeats = 5 if run.cuda else 1
    rows_per_block = assignment_block_rows(n, k, d, 4, xp_torch)
    reference_s, reference = run.timed(
        lambda: assign_and_accumulate_reference(X, weights, centers, xp=xp_torch, rows_per_block=rows_per_block), repeats
    )
    floors = roofline(run, n, d, k)
    results = [["array-API (torch)", _ms(reference_s), "1.00", "-", "-"]]
    for precision in gpu_triton.PRECISIONS:
        seconds, fused = run.timed(
            lambda: gpu_triton.lloyd_step_triton(X, weights, centers, xp=xp_torch, rows_per_block=0, precision=precision),
            repeats,
        )
        same = float((fused.labels == reference.labels).double().mean())
        sums_error = float((fused.sums - reference.sums).norm() / reference.sums.norm())
        results.append([f"Triton {precision}", _ms(seconds), f"{reference_s / seconds:.2f}", f"{same:.6f}", f"{sums_error:.2e}"])
    results += cupy_lloyd(run, X, weights, centers, rows_per_block, repeats)
    floor = max(floors["memory_s"], floors["fp32_s"])
    text = _table(["lloyd_step (one iteration)", "median", "speed-up vs array-API", "labels equal", "sums rel. error"], results)
    text += (
        f"\n\nRoofline of case {name} (n={n:,}, d={d}, k={k}): {floors['flops'] / 1e12:.3g} TFLOP and "
        f"{floors['bytes'] / 1e9:.3g} GB per iteration: memory floor {_ms(floors['memory_s'])}, "
        f"FP32 floor {_ms(floors['fp32_s'])}, 3xTF32 floor {_ms(floors['tf32x3_s'])}, "
        f"TF32 floor {_ms(floors['tf32_s'])}; exact-FP32 floor {_ms(floor)}."
    )
    text += "\n\n" + kmeans_fits(run, X, centers)
    del X
    return text


def cupy_lloyd(run: Run, X, weights, centers, rows_per_block: int, repeats: int) -> list[list[Any]]:
    """The same iteration on CuPy arrays (zero-copy views of the torch ones), both paths."""
    if not run.cuda:
        return []
    try:
        import array_api_compat.cupy as xp_cupy
        import cupy
    except ImportError:
        return [["CuPy", "not installed", "", "", ""]]
    from kgpu._assign import assign_and_accumulate, assign_and_accumulate_reference

    X_c, w_c, c_c = (cupy.from_dlpack(t) for t in (X, weights, centers))
    reference_s, reference = run.timed(
        lambda: assign_and_accumulate_reference(X_c, w_c, c_c, xp=xp_cupy, rows_per_block=rows_per_block), repeats
    )
    fused_s, fused = run.timed(
        lambda: assign_and_accumulate(X_c, w_c, c_c, xp=xp_cupy, rows_per_block=rows_per_block), repeats
    )
    same = float(cupy.mean((fused.labels == reference.labels).astype(cupy.float64)))
    return [
        ["array-API (CuPy)", _ms(reference_s), "", "-", "-"],
        ["table's choice on CuPy (Triton ieee via DLPack)", _ms(fused_s), f"{reference_s / fused_s:.2f}", f"{same:.6f}", ""],
    ]


def _both_paths(run: Run, fit: Callable[[], Any]) -> tuple[tuple[float, Any], tuple[float, Any]]:
    """``fit()`` with the fused kernels, then with ``KGPU_FAST=0``: (seconds, result) each, one run after a warm-up."""
    saved = os.environ.get("KGPU_FAST")
    try:
        os.environ.pop("KGPU_FAST", None)
        fused = run.timed(fit, 1)
        os.environ["KGPU_FAST"] = "0"
        reference = run.timed(fit, 1)
    finally:
        if saved is None:
            os.environ.pop("KGPU_FAST", None)
        else:
            os.environ["KGPU_FAST"] = saved
    return fused, reference


def kmeans_fits(run: Run, X, centers) -> str:
    import kgpu

    iterations = 10

    def fit():
        return kgpu.KMeans(centers.shape[0], init=centers, n_init=1, max_iter=iterations, tol=0).fit(X)

    (fused_s, fused), (reference_s, reference) = _both_paths(run, fit)
    same = float((fused.labels_ == reference.labels_).double().mean())
    rows = [
        ["KGPU_FAST=1 (Triton)", f"{fused_s:.3g} s", f"{fused.inertia_:.8g}", fused.n_iter_],
        ["KGPU_FAST=0 (array-API)", f"{reference_s:.3g} s", f"{reference.inertia_:.8g}", reference.n_iter_],
    ]
    return (
        f"KMeans fit, {iterations} iterations from the same centers (validation, working copy and final "
        f"E-step included; median of 1 after a warm-up):\n\n"
        + _table(["path", "fit", "inertia", "n_iter"], rows)
        + f"\n\nLabels equal on {same:.6f} of the rows; inertia ratio {fused.inertia_ / reference.inertia_:.9f}."
    )


def kmedians_case(run: Run) -> str:
    import array_api_compat.torch as xp_torch

    import kgpu
    from kgpu._assign import assign_reference
    from kgpu._distances import Metric
    from kgpu._kernels import gpu_triton

    n, d, k = run.size(KMEDIANS_CASE["n"]), KMEDIANS_CASE["d"], run.clusters(KMEDIANS_CASE["k"])
    X, _, centers = make_blobs(run, n, d, k, seed=1)
    manhattan = Metric("manhattan", 1.0)
    reference_s, reference = run.timed(lambda: assign_reference(X, centers, xp=xp_torch, metric=manhattan), 1)
    fused_s, fused = run.timed(lambda: gpu_triton.assign_triton(X, centers, xp=xp_torch, metric=manhattan), 3 if run.cuda else 1)
    same = float((fused.labels == reference.labels).double().mean())

    def fit():
        return kgpu.KMedians(k, init=centers, n_init=1, max_iter=3, tol=0).fit(X)

    (fit_fused_s, fit_fused), (fit_reference_s, fit_reference) = _both_paths(run, fit)
    rows = [
        ["L1 assignment, array-API", _ms(reference_s), ""],
        ["L1 assignment, Triton", _ms(fused_s), f"labels equal on {same:.6f}"],
        ["KMedians fit, 3 iterations, KGPU_FAST=1", f"{fit_fused_s:.3g} s", f"objective {fit_fused.inertia_:.8g}"],
        ["KMedians fit, 3 iterations, KGPU_FAST=0", f"{fit_reference_s:.3g} s", f"objective {fit_reference.inertia_:.8g}"],
    ]
    return f"n={n:,}, d={d}, k={k}, float32. The segmented median has no Triton kernel yet: both fits use the array-API median.\n\n" + _table(
        ["what", "median", "check"], rows
    )


def minibatch_case(run: Run) -> str:
    import kgpu

    spec = CASES["A"]
    n, k = run.size(spec["n"]), run.clusters(spec["k"])
    X, _, centers = make_blobs(run, n, spec["d"], k, seed=2)
    batch_size = 1 << 16 if run.cuda else 256

    def fit():
        return kgpu.MiniBatchKMeans(
            k, init=centers, n_init=1, batch_size=batch_size, max_iter=1, max_no_improvement=None, tol=0,
            random_state=0,
        ).fit(X)

    (fused_s, fused), (reference_s, reference) = _both_paths(run, fit)
    rows = [
        ["KGPU_FAST=1", f"{fused_s:.3g} s", fused.n_steps_, f"{fused.inertia_:.8g}"],
        ["KGPU_FAST=0", f"{reference_s:.3g} s", reference.n_steps_, f"{reference.inertia_:.8g}"],
    ]
    return f"Case A data, batch_size={batch_size}, one epoch.\n\n" + _table(["path", "fit", "steps", "inertia"], rows)


def plusplus_case(run: Run) -> str:
    import kgpu

    rows = []
    for name, spec in CASES.items():
        n, k = run.size(spec["n"]), run.clusters(spec["k"])
        X, _, _ = make_blobs(run, n, spec["d"], k, seed=3)

        def seed_centers():
            return kgpu.kmeans_plusplus(X, k, random_state=0)

        (fused_s, (_, fused_ids)), (reference_s, (_, reference_ids)) = _both_paths(run, seed_centers)
        same = bool(run.torch.equal(fused_ids.cpu(), reference_ids.cpu()))
        rows.append([name, f"{n:,} x {spec['d']}, k={k}", f"{fused_s:.3g} s", f"{reference_s:.3g} s",
                     f"{reference_s / fused_s:.2f}", "same" if same else "differ"])
        del X
    return _table(["case", "data", "KGPU_FAST=1", "KGPU_FAST=0", "speed-up", "chosen rows"], rows)


def peers(run: Run) -> str:
    """cuML, FAISS-GPU, flash-kmeans and fast-pytorch-kmeans where installed: 10 iterations on cases A and B."""
    rows = []
    for name, spec in CASES.items():
        n, k = run.size(spec["n"]), run.clusters(spec["k"])
        X, _, centers = make_blobs(run, n, spec["d"], k)
        for peer, fit in _peer_fits().items():
            try:
                seconds, detail = fit(run, X, centers)
                rows.append([name, peer, f"{seconds:.3g} s", detail])
            except ImportError:
                rows.append([name, peer, "not installed", ""])
            except Exception as exc:  # noqa: BLE001
                rows.append([name, peer, "failed", f"{type(exc).__name__}: {str(exc)[:80]}"])
        del X
    return "Fit with 10 iterations from the same initial centers where the library allows it.\n\n" + _table(
        ["case", "library", "fit", "note"], rows
    )


def _peer_fits() -> dict[str, Callable]:
    def cuml_fit(run, X, centers):
        import cupy
        from cuml.cluster import KMeans

        X_c, c_c = cupy.from_dlpack(X), cupy.from_dlpack(centers)
        seconds, _ = run.timed(
            lambda: KMeans(n_clusters=centers.shape[0], init=c_c, n_init=1, max_iter=10, tol=0.0).fit(X_c), 1
        )
        return seconds, "init=array, tol=0"

    def faiss_fit(run, X, centers):
        import faiss

        if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() < 1:
            raise ImportError("faiss without GPU support")
        X_host = X.cpu().numpy()
        d, k = X_host.shape[1], centers.shape[0]

        def fit():
            kmeans = faiss.Kmeans(d, k, niter=10, gpu=True, seed=0, max_points_per_centroid=X_host.shape[0])
            kmeans.train(X_host, init_centroids=centers.cpu().numpy())
            return kmeans

        seconds, _ = run.timed(fit, 1)
        return seconds, "host input (FAISS copies it to the GPU), init centroids given"

    def fast_pytorch_fit(run, X, centers):
        from fast_pytorch_kmeans import KMeans

        seconds, _ = run.timed(
            lambda: KMeans(n_clusters=centers.shape[0], max_iter=10, tol=-1.0).fit_predict(X, centroids=centers.clone()), 1
        )
        return seconds, "centroids given, tol disabled"

    def flash_fit(run, X, centers):
        import flash_kmeans  # noqa: F401

        raise RuntimeError("installed, but this script has no adapter for its API yet")

    return {"cuML": cuml_fit, "FAISS-GPU": faiss_fit, "fast-pytorch-kmeans": fast_pytorch_fit, "flash-kmeans": flash_fit}


# --------------------------------------------------------------------------- main


def _versions() -> str:
    found = []
    for name in ("torch", "triton", "cupy", "numpy", "array_api_compat"):
        try:
            module = __import__(name)
            found.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            found.append(f"{name} absent")
    return ", ".join(found)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=450.0, help="stop starting sections after this (default 450)")
    parser.add_argument("--no-tests", action="store_true", help="skip the test run")
    parser.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    parser.add_argument(
        "--rehearse-on-cpu", action="store_true",
        help="tiny sizes on CPU tensors through Triton's interpreter, to check this script; measures nothing",
    )
    args = parser.parse_args(argv)
    if args.rehearse_on_cpu:
        os.environ["TRITON_INTERPRET"] = "1"
        library, device_name = "torch", "CPU (rehearsal through Triton's interpreter)"
    else:
        library, device_name = find_gpu()
        if library is None:
            print(
                "make gpu-check needs a CUDA GPU (PyTorch with CUDA, or CuPy), and none was found here: "
                f"{device_name}. Nothing was run. Run it on a machine with an NVIDIA GPU; see README, "
                "'How the GPU path works'.",
                file=sys.stderr,
            )
            return EXIT_NO_GPU
    try:
        import array_api_compat  # noqa: F401 - kgpu's one hard dependency a GPU image may lack
    except ImportError:
        print("make gpu-check: kgpu needs array-api-compat: pip install array-api-compat (or carry its wheel).", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT))
    run = Run(args, device_name)
    if args.rehearse_on_cpu:
        # The guards send only CUDA arrays to Triton; a rehearsal lets CPU tensors through too.
        from kgpu._kernels import gpu_triton

        gpu_triton._runs_here = lambda x: hasattr(x, "is_cuda") and x.ndim == 2

    command = "python bench/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if not args.no_tests:
        run.guarded("Tests on the GPU", 60, lambda: run_tests(run))
    run.guarded("Ceilings of this card", 10, lambda: measure_ceilings(run))
    for name, spec in CASES.items():
        run.guarded(f"Case {name}: n={spec['n']:,}, d={spec['d']}, k={spec['k']}, float32", 60, lambda spec=spec, name=name: lloyd_case(run, name, **spec))
    run.guarded("KMedians", 45, lambda: kmedians_case(run))
    run.guarded("MiniBatchKMeans", 30, lambda: minibatch_case(run))
    run.guarded("k-means++ initialisation", 40, lambda: plusplus_case(run))
    run.guarded("Peers", 30, lambda: peers(run))

    today = datetime.date.today().isoformat()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device_name).strip("-").lower() or "gpu"
    header = (
        f"# GPU check: {device_name}\n\n"
        f"- date: {today}; commit {_commit()}; {platform.python_version()}; {_versions()}\n"
        f"- command: `{command}` (`make gpu-check`)\n"
        f"- every time is the median of the repeats stated, after one warm-up, timed with CUDA events; "
        f"one run of this script, on a card that may be shared: treat differences under ~10% as noise.\n"
        f"- ceilings: {'measured in this run' if run.ceilings_measured else 'datasheet figures (not measured)'}.\n"
    )
    if args.rehearse_on_cpu:
        header += "- REHEARSAL on the CPU through Triton's interpreter at tiny sizes: these numbers measure nothing.\n"
    report = header + "\n" + "\n".join(run.sections)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / (f"gpu-{today}-{slug}.md" if not args.rehearse_on_cpu else f"rehearsal-{today}-cpu.md")
    out.write_text(report)
    print(f"\nwritten: {out}  ({time.perf_counter() - run.started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
