"""Row blocks sized to a memory budget, and running a kernel over them.

Every kernel that would otherwise build an ``n_samples x n_clusters`` matrix
works on row blocks instead. The block height comes from a memory budget, so
the largest temporary is bounded whatever ``n_samples`` is.

On NumPy the blocks run in a thread pool with BLAS held to one thread per
worker: NumPy's elementwise work (argmin, additions) is single-threaded, so
this is what makes every core busy for the whole step, not just the GEMM.
GPU and PyTorch backends run the blocks in order: the device (or torch's own
thread pool) is already parallel inside each call.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, Callable, Sequence, TypeVar

from threadpoolctl import ThreadpoolController

from ._backend import backend_name

T = TypeVar("T")

#: Default size, in MiB, of the largest temporary one block may allocate.
#: On the CPU, enough rows per block to amortise each block's fixed cost
#: (measured: 16 MiB beats 2-8 MiB, and 32 MiB gains nothing more); large on a
#: GPU, where bigger launches amortise their overhead.
DEFAULT_BLOCK_MIB = {"numpy": 16, "array_api_strict": 16, "torch": 64, "cupy": 512}

#: Fewest rows per core worth splitting a NumPy block for.
MIN_ROWS_TO_SHARE = 2048

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
    if backend_name(xp) == "numpy" and n_rows >= MIN_ROWS_TO_SHARE * cpu_threads():
        # At least one block per core, so the thread pool keeps every core busy.
        rows = min(rows, -(-n_rows // cpu_threads()))
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
    if backend_name(xp) != "numpy":
        return [result for start, stop in blocks for result in _run_splitting(fn, start, stop)]
    # kgpu's parallelism is the blocks: BLAS stays on one thread even for a
    # single block, where its own threads would only fight over small GEMMs.
    if getattr(_IN_WORKER, "active", False) or len(blocks) < 2 or cpu_threads() < 2:
        # A kernel called from inside a pool worker runs its blocks in that
        # worker: waiting on the pool from the pool could deadlock it.
        with single_threaded_blas():
            return [result for start, stop in blocks for result in _run_splitting(fn, start, stop)]
    with single_threaded_blas():
        per_block = list(_pool().map(lambda block: _in_worker(_run_splitting, fn, *block), blocks))
    return [result for results in per_block for result in results]


def _in_worker(run: Callable[..., T], *args: Any) -> T:
    _IN_WORKER.active = True
    try:
        return run(*args)
    finally:
        _IN_WORKER.active = False


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a host or device allocation failure (NumPy, CuPy, PyTorch)."""
    if isinstance(exc, MemoryError):  # NumPy, and CuPy's OutOfMemoryError
        return True
    return type(exc).__name__ in ("OutOfMemoryError", "OutOfMemoryException") or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def _run_splitting(fn: Callable[[int, int], T], start: int, stop: int) -> list[T]:
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
    _release_cached_device_memory()
    middle = (start + stop) // 2
    return _run_splitting(fn, start, middle) + _run_splitting(fn, middle, stop)


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


def single_threaded_blas():
    """Context holding BLAS to one thread (each pool worker is one core)."""
    global _CONTROLLER
    if cpu_threads() < 2:
        return nullcontext()
    if _CONTROLLER is None:
        # Inspecting the loaded libraries costs milliseconds: do it once.
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
