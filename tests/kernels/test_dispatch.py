"""The kernel table: first-use self-check with one warning, ``KGPU_FAST=0``, guards, and the fused path end to end."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

import kgpu
from kgpu._kernels import dispatch

from .._helpers import to_numpy


@pytest.fixture
def table(monkeypatch):
    """A private copy of the table with a toy operation: reference doubles, native kernels are planted by tests."""
    # Native modules register into whichever table is current: load them into the real one first.
    dispatch._load_native_modules()
    monkeypatch.setattr(dispatch, "_TABLE", {key: list(entries) for key, entries in dispatch._TABLE.items()})
    monkeypatch.delenv("KGPU_FAST", raising=False)
    dispatch.register("toy", dispatch.ANY_BACKEND, name="array-api")(lambda values, *, xp: 2 * values)
    return dispatch


def _plant(table, *, self_check=None, applies=None):
    calls = []

    def native(values, *, xp):
        calls.append(values)
        return 2 * values

    table.register("toy", "numpy", name="native", self_check=self_check, applies=applies)(native)
    return calls


def _xp():
    import array_api_compat.numpy as xp

    return xp


def test_native_kernel_runs_when_its_self_check_passes(table):
    calls = _plant(table, self_check=lambda xp, device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert table.call("toy", np.arange(3.0), xp=_xp()).tolist() == [0.0, 2.0, 4.0]
    assert len(calls) == 1


@pytest.mark.parametrize("outcome", ["disagrees", "raises"])
def test_failing_self_check_falls_back_with_one_warning(table, outcome):
    def self_check(xp, device):
        if outcome == "raises":
            raise RuntimeError("could not compile")
        return False

    calls = _plant(table, self_check=self_check)
    with pytest.warns(RuntimeWarning, match="did not pass its first-use self-check") as record:
        first = table.call("toy", np.arange(3.0), xp=_xp())
    assert len(record) == 1
    assert ("could not compile" in str(record[0].message)) == (outcome == "raises")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dropped for the rest of the process: no second warning
        second = table.call("toy", np.arange(3.0), xp=_xp())
    assert first.tolist() == second.tolist() == [0.0, 2.0, 4.0]
    assert calls == [], "the native kernel must not run after failing its self-check"


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_kgpu_fast_0_forces_the_reference(table, monkeypatch, value):
    checks = []
    calls = _plant(table, self_check=lambda xp, device: checks.append(device) or True)
    monkeypatch.setenv("KGPU_FAST", value)
    assert table.call("toy", np.arange(3.0), xp=_xp()).tolist() == [0.0, 2.0, 4.0]
    assert calls == [] and checks == []
    assert table.implementation("toy", _xp()) is table.reference("toy")


def test_guard_sends_other_calls_to_the_reference(table):
    calls = _plant(table, self_check=lambda xp, device: True, applies=lambda values, **kw: values.shape[0] > 2)
    table.call("toy", np.arange(2.0), xp=_xp())
    assert calls == []
    table.call("toy", np.arange(3.0), xp=_xp())
    assert len(calls) == 1


def test_describe_names_the_path_of_every_operation():
    import array_api_strict

    described = dispatch.describe(array_api_strict)
    assert {"assign", "lloyd_step", "plusplus_step", "segment_median"} <= set(described)
    assert set(described.values()) == {"array-api"}


# --------------------------------------------------------------------------- fused path, end to end


@pytest.fixture
def fused_on_cpu(monkeypatch):
    """Let the Triton kernels take CPU torch tensors (interpreter only) through the table, as they take CUDA ones."""
    pytest.importorskip("torch")
    triton_module = pytest.importorskip("kgpu._kernels.gpu_triton")
    if not triton_module.INTERPRETED:
        pytest.skip("needs TRITON_INTERPRET=1 (set by this directory's conftest without a GPU)")
    monkeypatch.setattr(triton_module, "_runs_here", lambda x: getattr(x, "device", None) is not None and x.ndim == 2)
    monkeypatch.delenv("KGPU_FAST", raising=False)
    # Only the Triton kernels for torch: CPU kernels registered for torch tensors would be picked first.
    dispatch._load_native_modules()  # into the real table, before it is swapped for this copy
    monkeypatch.setattr(dispatch, "_TABLE", {
        (operation, backend): [entry for entry in entries if backend != "torch" or entry.name == "triton"]
        for (operation, backend), entries in dispatch._TABLE.items()
    })
    return triton_module


def _torch_blobs():
    import torch

    rng = np.random.default_rng(7)
    centers = rng.uniform(-6, 6, (4, 5))
    X = centers[np.arange(240) % 4] + 0.3 * rng.normal(size=(240, 5))
    return torch.from_numpy(X.astype(np.float32))


def _fit_both(monkeypatch, make, X):
    fused = make().fit(X)
    monkeypatch.setenv("KGPU_FAST", "0")
    reference = make().fit(X)
    monkeypatch.delenv("KGPU_FAST")
    return fused, reference


def test_estimators_through_the_fused_kernels(fused_on_cpu, monkeypatch):
    import array_api_compat.torch as xp_torch

    X = _torch_blobs()
    for operation in ("lloyd_step", "assign", "plusplus_step"):
        assert dispatch.implementation(operation, xp_torch, X.device).__module__ == fused_on_cpu.__name__

    fused, reference = _fit_both(monkeypatch, lambda: kgpu.KMeans(4, n_init=1, random_state=0), X)
    np.testing.assert_array_equal(to_numpy(fused.labels_), to_numpy(reference.labels_))
    # The reference sums each block in float32, the kernel in float64: the
    # means agree to float32 rounding of the largest coordinate.
    expected_centers = to_numpy(reference.cluster_centers_)
    np.testing.assert_allclose(
        to_numpy(fused.cluster_centers_), expected_centers, rtol=1e-6, atol=1e-6 * np.abs(expected_centers).max()
    )
    assert fused.inertia_ == pytest.approx(reference.inertia_, rel=1e-6)

    fused, reference = _fit_both(monkeypatch, lambda: kgpu.KMedians(4, random_state=0), X)
    np.testing.assert_array_equal(to_numpy(fused.labels_), to_numpy(reference.labels_))
    assert fused.inertia_ == pytest.approx(reference.inertia_, rel=1e-6)


def test_a_numpy_fit_imports_neither_torch_nor_triton():
    """The native modules load per backend: NumPy's numba kernels do not bring in the GPU ones."""
    import subprocess

    script = (
        "import sys, numpy as np\n"
        "from kgpu import KMeans, KMedians, BisectingKMeans, KMedoids\n"
        "X = np.random.default_rng(0).standard_normal((600, 3))\n"
        "for estimator in (KMeans(3, n_init=1), KMedians(3), BisectingKMeans(3), KMedoids(3)):\n"
        "    estimator.set_params(random_state=0).fit(X).predict(X)\n"
        "loaded = sorted(name for name in ('torch', 'triton', 'kgpu._kernels.gpu_triton') if name in sys.modules)\n"
        "assert 'kgpu._kernels.cpu_numba' in sys.modules, 'the numba kernels did not load'\n"
        "assert not loaded, loaded\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "KGPU_FAST"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_native_modules_are_tried_in_their_listed_order_whatever_the_import_order(table):
    # A specialised module imports a general one (which registers first), yet is listed, and tried, first.
    first, second = list(table.NATIVE_MODULES)[:2]
    ran = []

    def kernel_from(module):
        def kernel(values, *, xp):
            ran.append(module)
            return 2 * values

        kernel.__module__ = module
        return kernel

    table.register("toy", "numpy", name="general")(kernel_from(second))
    table.register("toy", "numpy", name="specialised")(kernel_from(first))
    table.register("toy", "numpy", name="elsewhere")(kernel_from("tests.unlisted"))
    assert [entry.name for entry in table._TABLE[("toy", "numpy")]] == ["specialised", "general", "elsewhere"]
    table.call("toy", np.arange(3.0), xp=_xp())
    assert ran == [first]
