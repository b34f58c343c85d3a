"""kgpu/_malloc.py: chunk tasks reuse freed memory in a process whose glibc thresholds were fixed.

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set; every large
block is then a fresh mapping that page-faults in. The check runs in a
subprocess started the same way and counts minor page faults.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt is Linux/glibc only"
)

_PROBE = textwrap.dedent(
    """
    import json, resource
    import numpy as np
    from kgpu._malloc import reusing_freed_memory

    def faults(repeats=20):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(repeats):
            block = np.ones(2**18)  # 2 MiB, written through
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    outside = faults()
    with reusing_freed_memory():
        inside = faults()
    after = faults()
    print(json.dumps({"outside": outside, "inside": inside, "after": after}))
    """
)


_THRESHOLDS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def _faults(environment: dict) -> dict:
    env = {name: value for name, value in os.environ.items() if name not in _THRESHOLDS}
    env.update(environment)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_worker_environment_reuses_freed_blocks_inside_and_returns_them_after():
    counts = _faults({"MALLOC_TRIM_THRESHOLD_": "65536"})
    # 20 fresh 2 MiB mappings: 512 faults each outside; reused inside.
    assert counts["outside"] > 20 * 400, counts
    assert counts["inside"] < counts["outside"] / 10, counts
    # The environment's thresholds are back afterwards: fresh mappings again.
    assert counts["after"] > 20 * 400, counts


def test_a_default_environment_is_left_alone():
    counts = _faults({})
    # glibc's own dynamic threshold already reuses the blocks after the first.
    assert counts["outside"] < 20 * 400 and counts["inside"] < 20 * 400, counts
