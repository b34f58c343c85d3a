"""Row blocks sized to a memory budget, and running a kernel over them.

Every kernel that would otherwise build an ``n_samples x n_clusters`` matrix
works on row blocks instead. The block height comes from a memory budget, so
the largest temporary is bounded whatever ``n_samples`` is.

On NumPy the blocks run in a thread pool with BLAS held to one thread per
worker: NumPy's elementwise work (argmin, additions) is single-threaded, so
this is what makes every core busy for the whole step, not just the GEMM.
GPU and PyTorch backends run the blocks in order: the device (or torch's own
thread pool) is already parallel inside each call.

The block layout depends on the data's shape and the memory budget only,
never on the number of cores, and results are combined in block order: the
same fit gives the same bits on one core or many.

A block that runs out of memory is split in two and retried, and the smaller
height is remembered: the rest of the pass, and the following passes with
the same block height, start from it, so a fit under memory pressure retries
O(log n) times in all, not once per block.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

from threadpoolctl import ThreadpoolController

from ._backend import backend_name

T = TypeVar("T")

#: Default size, in MiB, of the largest temporary one block may allocate.
#: On the CPU, enough rows per block to amortise each block's fixed cost
#: (measured: 16 MiB beats 2-8 MiB, and 32 MiB gains nothing more); large on a
#: GPU, where bigger launches amortise their overhead.
DEFAULT_BLOCK_MIB = {"numpy": 16, "array_api_strict": 16, "torch": 64, "cupy": 512}

#: Fewest rows worth splitting a NumPy block for.
MIN_ROWS_TO_SHARE = 2048

#: NumPy work with enough rows is cut into at least this many blocks, so that
#: a thread pool of up to this many cores has work for every core. A
#: constant, not the core count: the layout (and so the order in which float
#: partial sums are added) must be the same on every machine.
PARALLEL_BLOCKS = 16

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_CONTROLLER: ThreadpoolController | None = None
_IN_WORKER = threading.local()


def cpu_threads() -> int:
    """Number of worker threads for NumPy blocks (the CPUs this process may use)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=cpu_threads(), thread_name_prefix="kgpu")
        return _POOL


def block_rows(
    n_rows: int,
    bytes_per_row: int,
    xp: Any,
    budget_mib: float | None = None,
) -> int:
    """Rows per block so that one block's temporaries fit ``budget_mib``.

    Parameters
    ----------
    n_rows : int
        Rows to cover.
    bytes_per_row : int
        Bytes of temporaries one row needs (e.g. ``n_clusters * itemsize``).
    xp : namespace
        Backend; picks the default budget.
    budget_mib : float or None
        Memory budget in MiB; ``None`` uses :data:`DEFAULT_BLOCK_MIB`.

    Returns
    -------
    rows : int, at least 1 and at most ``n_rows``.
    """
    if budget_mib is None:
        budget_mib = DEFAULT_BLOCK_MIB.get(backend_name(xp), 64)
    check_working_memory(budget_mib)
    rows = int(budget_mib * 2**20) // max(1, int(bytes_per_row))
    if backend_name(xp) == "numpy" and n_rows >= 2 * MIN_ROWS_TO_SHARE:
        # Enough blocks for the thread pool to keep every core busy.
        rows = min(rows, max(MIN_ROWS_TO_SHARE, -(-n_rows // PARALLEL_BLOCKS)))
    return max(1, min(n_rows, rows))


def check_working_memory(budget_mib: Any) -> float | None:
    """Validate a ``working_memory`` parameter (MiB, or None for the default)."""
    if budget_mib is None:
        return None
    if isinstance(budget_mib, bool) or not isinstance(budget_mib, numbers.Real):
        raise TypeError(f"working_memory must be a number of MiB or None, got {budget_mib!r}.")
    if not math.isfinite(budget_mib) or budget_mib <= 0:
        raise ValueError(f"working_memory must be a positive, finite number of MiB, got {budget_mib}.")
    return float(budget_mib)


def row_blocks(n_rows: int, rows_per_block: int) -> list[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``range(n_rows)`` in blocks."""
    return [(start, min(start + rows_per_block, n_rows)) for start in range(0, n_rows, rows_per_block)]


def map_blocks(
    fn: Callable[[int, int], T],
    blocks: Sequence[tuple[int, int]],
    xp: Any,
) -> list[T]:
    """Apply ``fn(start, stop)`` to every block and return the results in order.

    NumPy blocks run concurrently on the module's thread pool; other backends
    run them one after the other. A block that runs out of (device) memory is
    split in two and retried, so the list may hold more results than
    ``blocks``; callers concatenate or add the results, never count them.

    Raises
    ------
    MemoryError
        When even a single row does not fit, naming the setting to lower.
    """
    if not blocks:
        return []
    limit = _RowLimit.for_blocks(backend_name(xp), blocks)
    if backend_name(xp) != "numpy":
        return [result for start, stop in blocks for result in _run_splitting(fn, start, stop, limit)]
    # kgpu's parallelism is the blocks: BLAS stays on one thread even for a
    # single block, where its own threads would only fight over small GEMMs
    # (and on one core as on many, so that the GEMMs round the same way).
    if getattr(_IN_WORKER, "active", False) or len(blocks) < 2 or cpu_threads() < 2:
        # A kernel called from inside a pool worker runs its blocks in that
        # worker: waiting on the pool from the pool could deadlock it.
        with single_threaded_blas():
            return [result for start, stop in blocks for result in _run_splitting(fn, start, stop, limit)]
    with single_threaded_blas():
        per_block = list(_pool().map(lambda block: _in_worker(_run_splitting, fn, *block, limit), blocks))
    return [result for results in per_block for result in results]


def _in_worker(run: Callable[..., T], *args: Any) -> T:
    _IN_WORKER.active = True
    try:
        return run(*args)
    finally:
        _IN_WORKER.active = False


#: Exception class names that mean an allocation failed (CuPy, PyTorch, JAX...).
_OUT_OF_MEMORY_TYPES = ("OutOfMemoryError", "OutOfMemoryException", "CUDAOutOfMemoryError", "ResourceExhaustedError")

#: Messages of allocation failures raised as generic errors: CUDA's runtime,
#: cuBLAS / cuSOLVER / cuFFT / cuSPARSE handles that could not allocate their
#: workspace (torch reports a cuBLAS handle that could not be created for lack
#: of memory as CUBLAS_STATUS_NOT_INITIALIZED), and the host allocators.
_OUT_OF_MEMORY_MESSAGES = (
    "out of memory",
    "cudaerrormemoryallocation",
    "cuda_error_out_of_memory",
    "cublas_status_alloc_failed",
    "cublas_status_not_initialized",
    "cusolver_status_alloc_failed",
    "cusparse_status_alloc_failed",
    "cufft_alloc_failed",
    "curand_status_allocation_failed",
    "failed to allocate",
    "unable to allocate",
    "resource_exhausted",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a host or device allocation failure, whichever library raised it.

    NumPy's ``MemoryError`` (CuPy's ``OutOfMemoryError`` is one too), any
    exception class named like an out-of-memory error (``torch.OutOfMemoryError``),
    and runtime errors whose message reports a failed allocation (CUDA,
    cuBLAS, cuSOLVER, cuFFT, cuSPARSE, cuRAND).
    """
    if isinstance(exc, MemoryError):
        return True
    if any(cls.__name__ in _OUT_OF_MEMORY_TYPES for cls in type(exc).__mro__):
        return True
    message = str(exc).lower()
    return any(marker in message for marker in _OUT_OF_MEMORY_MESSAGES)


class _RowLimit:
    """The largest block height known to fit, learned from out-of-memory failures.

    One limit per (backend, planned block height): the next pass of the same
    kernel (same planned height) starts from what the last one learned, and
    kernels with other heights learn their own.
    """

    _learned: dict[tuple[str, int], int] = {}
    _lock = threading.Lock()

    def __init__(self, key: tuple[str, int]):
        self.key = key
        self.retries = 0

    @classmethod
    def for_blocks(cls, backend: str, blocks: Sequence[tuple[int, int]]) -> "_RowLimit":
        planned = max(stop - start for start, stop in blocks)
        return cls((backend, planned))

    @property
    def rows(self) -> int | None:
        return self._learned.get(self.key)

    def lower(self, failed_rows: int) -> None:
        """A block of ``failed_rows`` did not fit: never try one that tall again."""
        global _OUT_OF_MEMORY_RETRIES
        with self._lock:
            current = self._learned.get(self.key)
            smaller = max(1, failed_rows // 2)
            if current is None or smaller < current:
                self._learned[self.key] = smaller
            self.retries += 1
            _OUT_OF_MEMORY_RETRIES += 1


#: Blocks retried smaller after an allocation failure, since the process started.
_OUT_OF_MEMORY_RETRIES = 0


def out_of_memory_retries() -> int:
    """How many blocks have been retried smaller after an allocation failure (diagnostics)."""
    return _OUT_OF_MEMORY_RETRIES


def forget_learned_block_limits() -> None:
    """Forget every block height learned from out-of-memory failures (e.g. after memory was freed)."""
    with _RowLimit._lock:
        _RowLimit._learned.clear()


def _run_splitting(fn: Callable[[int, int], T], start: int, stop: int, limit: _RowLimit | None = None) -> list[T]:
    if limit is None:
        limit = _RowLimit(("", stop - start))
    allowed = limit.rows
    if allowed is not None and stop - start > allowed:
        # A block this tall already failed: go straight to the height that fits.
        return [
            result
            for first, last in row_blocks(stop - start, allowed)
            for result in _run_splitting(fn, start + first, start + last, limit)
        ]
    try:
        return [fn(start, stop)]
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled
        if not is_out_of_memory(exc):
            raise
        if stop - start <= 1:
            raise MemoryError(
                "A single row's distance block does not fit in memory: lower "
                "`working_memory`, use fewer clusters, or compute on the host "
                "(backend='numpy')."
            ) from exc
    limit.lower(stop - start)
    _release_cached_device_memory()
    middle = (start + stop) // 2
    return _run_splitting(fn, start, middle, limit) + _run_splitting(fn, middle, stop, limit)


def _release_cached_device_memory() -> None:
    """Give the GPU memory pools' cached blocks back before retrying smaller."""
    import sys

    if "cupy" in sys.modules:
        try:
            sys.modules["cupy"].get_default_memory_pool().free_all_blocks()
        except Exception:  # noqa: BLE001 - best effort only
            pass
    if "torch" in sys.modules:
        try:
            torch = sys.modules["torch"]
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass


def forget_blas_libraries() -> None:
    """Look for loaded BLAS libraries again at the next :func:`single_threaded_blas`.

    For code that loads a BLAS of its own after the first look (numba's
    ``np.dot`` calls SciPy's BLAS, a separate library from NumPy's): a
    library missed by the controller would run with all its threads.
    """
    global _CONTROLLER
    _CONTROLLER = None


def single_threaded_blas():
    """Context holding BLAS to one thread (each pool worker is one core).

    Also on a single core: a GEMM must round the same way whatever the
    number of BLAS threads, so that results do not depend on the machine.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        # Inspecting the loaded libraries costs milliseconds: do it once.
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
