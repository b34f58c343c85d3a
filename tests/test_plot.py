"""kgpu.plot renders (Agg, no display) and needs matplotlib only when drawing."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kgpu import plot  # noqa: E402
from kgpu.select import choose_k, elbow, gap_statistic  # noqa: E402

from ._helpers import asarray  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@functools.lru_cache(maxsize=None)
def _blobs():
    X, y = make_blobs(n_samples=150, n_features=2, centers=3, cluster_std=0.6, random_state=0)
    X.setflags(write=False)
    return X, y


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _assert_png(ax, path):
    """Saved as a PNG whose pixels are not all one colour."""
    ax.figure.savefig(path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    pixels = plt.imread(str(path))
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 20


def test_plot_elbow(tmp_path):
    result = elbow(_blobs()[0], range(1, 7), random_state=0)
    ax = plot.plot_elbow(result)
    assert ax.get_xlabel() == "number of clusters k"
    # The curve, and the knee's dashed line and dot.
    assert len(ax.lines) == 3
    assert ax.lines[1].get_xdata()[0] == result.knee
    _assert_png(ax, tmp_path / "elbow.png")


def test_plot_gap_on_given_axes(tmp_path):
    result = gap_statistic(_blobs()[0], range(1, 6), n_refs=2, random_state=0)
    _, ax = plt.subplots()
    assert plot.plot_gap(result, ax=ax) is ax
    assert any(line.get_xdata()[0] == result.best_k for line in ax.lines if len(line.get_xdata()) <= 2)
    _assert_png(ax, tmp_path / "gap.png")


def test_plot_silhouette(xp, tmp_path):
    X, y = _blobs()
    ax = plot.plot_silhouette(asarray(xp, X), asarray(xp, y))
    # One blade per cluster, tick labels naming the clusters.
    assert len(ax.collections) == 3
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["0", "1", "2"]
    _assert_png(ax, tmp_path / "silhouette.png")


def test_plot_silhouette_sampled_with_string_labels(tmp_path):
    X, y = _blobs()
    names = np.array(["red", "green", "blue"])[y]
    ax = plot.plot_silhouette(X, names, sample_size=60, random_state=0)
    assert "60 samples" in ax.get_title()
    assert sorted(tick.get_text() for tick in ax.get_yticklabels()) == ["blue", "green", "red"]
    _assert_png(ax, tmp_path / "silhouette_sample.png")


def test_choose_k_result_plot(tmp_path):
    result = choose_k(_blobs()[0], range(1, 6), n_refs=2, random_state=0)
    axes = result.plot()
    assert len(axes) == 5
    _assert_png(axes[0], tmp_path / "choose_k.png")
    only_two = choose_k(_blobs()[0], range(1, 6), criteria=("elbow", "davies_bouldin"), random_state=0)
    assert len(only_two.plot()) == 2


def test_plot_gap_needs_gap():
    result = choose_k(_blobs()[0], range(1, 5), criteria=("silhouette",), random_state=0)
    with pytest.raises(ValueError, match="no gap statistic"):
        plot.plot_gap(result)


def test_clear_error_without_matplotlib():
    # A fresh interpreter where importing matplotlib fails: kgpu imports,
    # drawing says how to install the extra.
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
        "import numpy as np, kgpu, kgpu.plot\n"
        "from kgpu.select import elbow\n"
        "X = np.random.default_rng(0).normal(size=(30, 2))\n"
        "result = elbow(X, range(1, 5), random_state=0)\n"
        "try:\n"
        "    kgpu.plot.plot_elbow(result)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'kgpu[plot]'" in output
