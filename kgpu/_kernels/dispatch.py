"""One table for every kernel: ``(operation, backend) -> implementation``.

Estimators and drivers call :func:`implementation` (or :func:`call`) with the
operation's name and the namespace they compute in; they never know which
implementation ran. The array-API reference is registered for every backend
(``backend="*"``) and is always the fallback:

- ``KGPU_FAST=0`` in the environment turns every native kernel off;
- a native kernel that raises, or disagrees with the reference on a small
  problem the first time it runs on a device in this process (its self-check),
  is dropped for the rest of the process with one warning.

A native implementation module registers with :func:`register` and gives a
``self_check(xp, device)`` callable that runs the kernel and the reference on a
small problem and returns ``True`` when they agree.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from .._backend import backend_name, device_of

#: Backend name used for the array-API reference implementations.
ANY_BACKEND = "*"

#: Modules holding native implementations, imported on first lookup so that
#: numba or triton are only loaded when a kernel may run.
#: Each module is imported only when a backend it registers for is first
#: dispatched: a NumPy fit never imports torch and triton.
#: Their order is the order in which their implementations are tried, however
#: the modules happen to be imported (a specialised module that imports a
#: general one still comes first when listed first).
NATIVE_MODULES = {
    # Before cpu_numba, whose guards take the same shapes: few centers with
    # many features (skinny), few centers with few features (narrow).
    "kgpu._kernels.cpu_numba_skinny": ("numpy", "torch"),
    "kgpu._kernels.cpu_numba_narrow": ("numpy", "torch"),
    "kgpu._kernels.cpu_numba": ("numpy", "torch"),
    "kgpu._kernels.cpu_numba_medoids": ("numpy", "torch"),
    "kgpu._kernels.cpu_numba_bisect": ("numpy", "torch"),
    "kgpu._kernels.cpu_numba_widen": ("numpy", "torch"),
    "kgpu._kernels.cpu_numba_frame": ("numpy", "torch"),
    "kgpu._kernels.gpu_triton": ("torch", "cupy"),
}


@dataclass
class Entry:
    """One implementation of an operation.

    Attributes
    ----------
    function : callable
        The implementation; same signature as the operation's reference.
    name : str
        Short label shown by ``kgpu doctor`` (``"array-api"``, ``"numba"``, ``"triton"``).
    self_check : callable or None
        ``self_check(xp, device) -> bool``: run on first use per device.
    applies : callable or None
        ``applies(*args, **kwargs) -> bool``: a per-call guard (shape, dtype)
        deciding whether this implementation handles that call; the
        reference runs otherwise.
    """

    function: Callable[..., Any]
    name: str
    self_check: Callable[[Any, Any], bool] | None = None
    applies: Callable[..., bool] | None = None
    checked: dict = field(default_factory=dict)


_TABLE: dict[tuple[str, str], list[Entry]] = {}
_LOCK = threading.Lock()
_NATIVE_LOADED: set[str] = set()


def register(
    operation: str,
    backend: str,
    *,
    name: str,
    self_check: Callable[[Any, Any], bool] | None = None,
    applies: Callable[..., bool] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``function`` as ``operation`` on ``backend``.

    Native implementations registered for a backend are tried before the
    reference (``backend=ANY_BACKEND``): those of modules listed in
    :data:`NATIVE_MODULES` in that order, then the others, each module's in
    order of registration.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        entry = Entry(function, name, self_check, applies)
        with _LOCK:
            entries = _TABLE.setdefault((operation, backend), [])
            entries.append(entry)
            entries.sort(key=_module_rank)  # stable: registration order within a module
        return function

    return decorate


def _module_rank(entry: Entry) -> int:
    """Position of the entry's module in :data:`NATIVE_MODULES` (after all of them when not listed)."""
    modules = list(NATIVE_MODULES)
    module = getattr(entry.function, "__module__", None)
    return modules.index(module) if module in modules else len(modules)


def fast_enabled() -> bool:
    """False when ``KGPU_FAST=0`` (or ``false``/``no``/``off``) forces the reference."""
    return os.environ.get("KGPU_FAST", "1").strip().lower() not in ("0", "false", "no", "off")


def _load_native_modules(backend: str | None = None) -> None:
    """Import the native modules registering for ``backend`` (every module when None), once each."""
    for module, backends in NATIVE_MODULES.items():
        if module in _NATIVE_LOADED or (backend is not None and backend not in backends):
            continue
        _NATIVE_LOADED.add(module)
        try:
            importlib.import_module(module)
        except ImportError:
            # numba / triton absent: only the reference is registered.
            continue


def _device_key(device: Any) -> str:
    return str(device)


def _passes_self_check(entry: Entry, operation: str, xp: Any, device: Any) -> bool:
    key = _device_key(device)
    if key in entry.checked:
        return entry.checked[key]
    passed = True
    if entry.self_check is not None:
        try:
            passed = bool(entry.self_check(xp, device))
            reason = "it disagreed with the array-API reference"
        except Exception as exc:  # noqa: BLE001 - any failure means "do not use it"
            passed = False
            reason = f"it failed: {type(exc).__name__}: {exc}"
        if not passed:
            warnings.warn(
                f"kgpu: the {entry.name} kernel for {operation!r} on {key} did not pass its "
                f"first-use self-check ({reason}); the array-API path runs instead.",
                RuntimeWarning,
                stacklevel=4,
            )
    entry.checked[key] = passed
    return passed


def reference(operation: str) -> Callable[..., Any]:
    """The array-API reference implementation of ``operation``."""
    try:
        return _TABLE[(operation, ANY_BACKEND)][0].function
    except KeyError:
        raise KeyError(f"no reference implementation registered for {operation!r}") from None


def implementation(operation: str, xp: Any, device: Any = None, *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """The implementation of ``operation`` that runs for namespace ``xp`` on ``device``.

    ``args`` / ``kwargs``, when given, are the call's arguments, passed to an
    entry's ``applies`` guard.
    """
    if fast_enabled():
        backend = backend_name(xp)
        _load_native_modules(backend)
        for entry in _TABLE.get((operation, backend), ()):
            if entry.applies is not None and (args or kwargs) and not entry.applies(*args, **kwargs):
                continue
            if _passes_self_check(entry, operation, xp, device):
                return entry.function
    return reference(operation)


def call(operation: str, *args: Any, xp: Any, **kwargs: Any) -> Any:
    """Run ``operation(*args, xp=xp, **kwargs)`` with the implementation that applies.

    The device is read from the first array argument.
    """
    try:
        device = device_of(args[0]) if args else None
    except TypeError:  # not an array of a known namespace (e.g. a streamed view)
        device = None
    return implementation(operation, xp, device, *args, **kwargs)(*args, xp=xp, **kwargs)


def describe(xp: Any, device: Any = None, probe: Any = None) -> dict[str, str]:
    """``{operation: implementation name}`` for namespace ``xp`` on ``device`` (for ``kgpu doctor``).

    ``probe``, a small array of ``xp`` on ``device``, is shown to each
    implementation's guard as the data; without it the guards are not asked.
    Runs each native kernel's self-check if it has not run yet on that device.
    """
    _load_native_modules()
    operations = sorted({operation for operation, _ in _TABLE})
    return {operation: _chosen_name(operation, xp, device, probe) for operation in operations}


def _chosen_name(operation: str, xp: Any, device: Any, probe: Any) -> str:
    if fast_enabled():
        for entry in _TABLE.get((operation, backend_name(xp)), ()):
            if entry.applies is not None and probe is not None:
                try:
                    applies = entry.applies(probe)
                except TypeError:  # the guard needs the whole call: it may apply
                    applies = True
                if not applies:
                    continue
            if _passes_self_check(entry, operation, xp, device):
                return entry.name
    return "array-api"


def self_check_results(device: Any) -> dict[tuple[str, str], bool]:
    """``{(operation, backend): passed}`` for every native kernel already self-checked on ``device``."""
    key = _device_key(device)
    return {
        (operation, backend): entry.checked[key]
        for (operation, backend), entries in _TABLE.items()
        for entry in entries
        if key in entry.checked
    }


def registered(operation: str) -> list[tuple[str, Entry]]:
    """Every ``(backend, entry)`` registered for ``operation``, reference first.

    Contract tests parametrize over this list so that each native kernel is
    compared with the reference.
    """
    _load_native_modules()
    found = [(backend, entry) for (op, backend), entries in _TABLE.items() if op == operation for entry in entries]
    return sorted(found, key=lambda item: item[0] != ANY_BACKEND)
