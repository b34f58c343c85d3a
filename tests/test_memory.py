"""One working copy: what a K-Means fit allocates beyond its data grows by at most 1.25x the data.

A fit holds the working copy (``n x (d + 1)``, 1.03x float32 data of 32
features) and a few numbers per row (weights, labels, the seeding's costs);
everything else is row blocks, whose size the memory budget bounds whatever
``n`` is. So the peak of the fit's allocations, measured at two sizes, must
grow by at most 1.25 bytes per byte of data added; a memory-mapped ``X`` is
never copied whole, and its fit adds only the per-row numbers.

Allocations are traced with :mod:`tracemalloc` (NumPy reports its buffers to
it) in a subprocess pinned to one core, so that the row blocks run one at a
time and the peaks are the same on every run. No timing is involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

#: Rows of the two fits; both above every block height, so the blocks' share is the same in both.
SMALL, LARGE = 100_000, 300_000
N_FEATURES = 32

_FIT_PEAKS = textwrap.dedent(
    """
    import json, os, sys, tempfile, tracemalloc, warnings
    os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
    import numpy as np
    from kgpu import KMeans

    warnings.simplefilter("ignore")
    KMeans(4, n_init=1, max_iter=2, random_state=0).fit(np.ones((3000, 8), dtype=np.float32).cumsum(axis=0))

    def fit_peak(n_rows, memmap, init):
        X = np.random.default_rng(0).normal(size=(n_rows, {n_features})).astype(np.float32)
        with tempfile.TemporaryDirectory() as folder:
            if memmap:
                path = os.path.join(folder, "X.npy")
                np.save(path, X)
                del X
                X = np.load(path, mmap_mode="r")
            tracemalloc.start()
            KMeans(n_clusters=32, init=init, n_init=1, max_iter=3, tol=0, random_state=0, working_memory=1).fit(X)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            del X
        return peak

    peaks = {{
        f"{{mode}} {{init}}": [fit_peak(n_rows, mode == "memmap", init) for n_rows in ({small}, {large})]
        for mode in ("memory", "memmap") for init in ("k-means++", "random")
    }}
    print(json.dumps(peaks))
    """
).format(n_features=N_FEATURES, small=SMALL, large=LARGE)


@pytest.fixture(scope="module")
def peaks():
    result = subprocess.run([sys.executable, "-c", _FIT_PEAKS], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _growth(peaks: dict, key: str) -> float:
    """Bytes the fit's peak allocation grows by per byte of data added."""
    small, large = peaks[key]
    return (large - small) / ((LARGE - SMALL) * N_FEATURES * 4)


pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_fit_adds_one_working_copy(peaks, init):
    growth = _growth(peaks, f"memory {init}")
    # The working copy with its column of ones is 33/32 of the data.
    assert 33 / 32 <= growth <= 1.25, growth
    # What does not grow with n (the row blocks) stays within a few budgets of 1 MiB.
    small = peaks[f"memory {init}"][0]
    assert small - growth * SMALL * N_FEATURES * 4 <= 8 * 2**20


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_memmap_fit_never_copies_the_data(peaks, init):
    # Only per-row numbers (weights, labels, distances, the seeding's costs):
    # 24 bytes a row at most, against the 128 of a row of data.
    growth = _growth(peaks, f"memmap {init}")
    assert growth <= 24 / 128, growth
