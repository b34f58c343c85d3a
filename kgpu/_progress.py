"""Progress reporting for long runs: one helper every estimator and the CLI share.

Estimators take a ``progress`` parameter (``False``, ``True`` or ``"auto"``),
open a bar with :func:`progress_bar` around their loop and hand its
:meth:`ProgressBar.on_iteration` to the kernel as the per-iteration callback.
When progress is off, the bar is a no-op object with the same methods, so the
calling code has no branches. Bars are drawn by tqdm on standard error and
never on standard output, so piped results stay clean.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: Values the ``progress`` parameter accepts.
PROGRESS_CHOICES = (False, True, "auto")


def check_progress(progress: Any) -> bool:
    """Whether a ``progress`` setting turns the bars on here and now.

    Parameters
    ----------
    progress : bool or "auto"
        ``True`` always draws (a notebook, a log file); ``False`` never;
        ``"auto"`` draws only when standard error is a terminal, so batch
        jobs and pipes get no carriage-return noise.

    Returns
    -------
    enabled : bool

    Raises
    ------
    ValueError
        For any other value.
    """
    if isinstance(progress, str) and progress == "auto":
        return stderr_is_terminal()
    if progress is None:
        return False
    # 0 and 1 (NumPy booleans included) read as False / True, like ``verbose``.
    if isinstance(progress, (bool, numbers.Integral, np.bool_)) and progress in (0, 1):
        return bool(progress)
    raise ValueError(f"progress must be True, False or 'auto', got {progress!r}.")


def stderr_is_terminal() -> bool:
    """True when standard error is an interactive terminal."""
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class ProgressBar:
    """A progress bar that may be switched off.

    Use it through :func:`progress_bar`. All methods are no-ops when the bar
    is disabled.
    """

    def __init__(self, bar: Any = None):
        self._bar = bar
        self._last_iteration: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether anything is drawn."""
        return self._bar is not None

    def update(self, n: int = 1, **stats: Any) -> None:
        """Advance by ``n`` steps and show ``stats`` (name=value) after the bar."""
        if self._bar is None:
            return
        if stats:
            self._bar.set_postfix({name: _short(value) for name, value in stats.items()}, refresh=False)
        self._bar.update(n)

    def describe(self, description: str) -> None:
        """Change the text before the bar (e.g. ``"run 2/10"``)."""
        if self._bar is not None:
            self._bar.set_description_str(description)

    def on_iteration(self, record: Any) -> None:
        """Iteration callback: one step, with the record's fields as stats.

        Parameters
        ----------
        record : NamedTuple
            E.g. :class:`kgpu._lloyd.IterationRecord`; its fields other than
            ``iteration`` and ``seconds`` are shown after the bar.
        """
        if self._bar is None:
            return
        fields = record._asdict() if hasattr(record, "_asdict") else {}
        iteration = fields.get("iteration")
        if iteration is not None and self._last_iteration is not None and iteration <= self._last_iteration:
            # A new run (restart) counts from 0 again towards the same total (max_iter).
            self._bar.reset(total=self._bar.total)
        self._last_iteration = iteration
        self.update(1, **{name: value for name, value in fields.items() if name not in ("iteration", "seconds")})


@contextlib.contextmanager
def progress_bar(
    progress: Any,
    *,
    total: int | None = None,
    description: str | None = None,
    unit: str = "it",
    leave: bool = False,
) -> Iterator[ProgressBar]:
    """A :class:`ProgressBar` for the duration of a ``with`` block.

    Parameters
    ----------
    progress : bool or "auto"
        See :func:`check_progress`.
    total : int or None
        Expected number of steps, or the most there can be (``max_iter`` for a
        converging loop, per run): the bar then shows ``n/total`` and an ETA
        (an upper bound when the loop may stop early). ``None`` when unknown.
    description : str or None
        Text before the bar.
    unit : str
        Name of one step (``"iter"``, ``"k"``, ``"chunk"``).
    leave : bool
        Keep the finished bar on screen.

    Yields
    ------
    bar : ProgressBar
        Disabled (every call a no-op) when progress is off.
    """
    if not check_progress(progress):
        yield ProgressBar()
        return
    from tqdm import tqdm

    width = terminal_width(sys.stderr)
    # Follow the terminal's width as it changes, unless it reports none (0
    # columns: a pseudo-terminal without a size), where tqdm would draw nothing.
    sizing = {"dynamic_ncols": True} if width else {"ncols": FALLBACK_WIDTH}
    with tqdm(total=total, desc=description, unit=unit, leave=leave, file=sys.stderr, **sizing) as bar:
        yield ProgressBar(bar)


#: Width of a bar when the terminal reports no usable width.
FALLBACK_WIDTH = 80
#: Narrowest terminal a bar is fitted to; below it the fallback width is used.
MIN_WIDTH = 20


def terminal_width(stream: Any) -> int | None:
    """Columns of the terminal behind ``stream`` (``COLUMNS`` first), or None when it has no usable width."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "") or os.get_terminal_size(stream.fileno()).columns)
    except (AttributeError, ValueError, OSError):
        return None
    return columns if columns >= MIN_WIDTH else None


def track(
    items: Iterable[T],
    progress: Any,
    *,
    total: int | None = None,
    description: str | None = None,
    unit: str = "it",
) -> Iterator[T]:
    """Iterate over ``items``, advancing a bar by one per item (k sweeps, restarts, chunks)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar(progress, total=total, description=description, unit=unit) as bar:
        for item in items:
            yield item
            bar.update()


def chain_callbacks(*callbacks: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    """One callback calling each of ``callbacks`` in turn (``None`` entries skipped).

    Returns ``None`` when none is given, so kernels skip the call entirely.
    """
    present = [callback for callback in callbacks if callback is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def call_all(record: Any) -> None:
        for callback in present:
            callback(record)

    return call_all


def _short(value: Any) -> Any:
    """Floats to 4 significant digits, so the bar's line stays short."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


__all__ = ["PROGRESS_CHOICES", "ProgressBar", "chain_callbacks", "check_progress", "progress_bar", "stderr_is_terminal", "track"]
