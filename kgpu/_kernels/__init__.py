"""Kernels and the table that picks which implementation of each runs.

- :mod:`kgpu._kernels.dispatch`: the table keyed by ``(operation, backend)``,
  the ``KGPU_FAST`` switch and the first-use self-check.
- The array-API reference of every operation lives beside the code that uses
  it (``kgpu._assign``, ``kgpu._segment``, ...); it is always registered, so a
  backend with no native kernel, or one whose kernel failed its self-check,
  runs the reference.
- Native implementations (``cpu_numba``, ``cpu_numba_medoids``, ``cpu_numba_bisect``,
  ``cpu_numba_widen``, ``cpu_numba_frame``, ``gpu_triton``) register themselves
  for the backends they serve.
"""
