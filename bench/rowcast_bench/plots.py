"""Latency and throughput plots of a run (PNG, matplotlib's Agg backend: no display)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes

from rowcast_bench.measurement import Measurement

# No display here: render to files. The backend is chosen before pyplot is imported.
matplotlib.use("Agg")

import matplotlib.pyplot as plt

#: Measurements drawn on the latency CDF at concurrency 1, then under load.
CDF_ONE_AT_A_TIME = ("echo_c1", "predict_hit_c1", "predict_miss_c1", "raw_row")
CDF_UNDER_LOAD = ("echo", "predict_hit", "predict_hit_70pct", "predict_miss", "compute_large")


def latency_cdf(ms: Mapping[str, Measurement], path: Path, title: str) -> Path:
    """Two panels of latency CDFs: one call at a time, and under load."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    percent = np.linspace(0, 100, 101)
    for ax, names, heading in (
        (axes[0], CDF_ONE_AT_A_TIME, "one call at a time"),
        (axes[1], CDF_UNDER_LOAD, "under load"),
    ):
        drawn = 0
        for name in names:
            m = ms.get(name)
            if m is None or len(m.quantiles_ms) != len(percent):
                continue
            ax.plot(m.quantiles_ms, percent, label=f"{name} (p50 {m.p50_ms:.2f} ms)")
            drawn += 1
        if drawn:
            ax.legend(fontsize=8, loc="lower right")
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_title(heading)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("percent of calls at or below")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def percentiles(ms: Mapping[str, Measurement], path: Path, title: str) -> Path:
    """Grouped bars of p50 / p90 / p99 per measurement (log scale)."""
    names = list(ms)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(names)), 4.5))
    for offset, (label, values) in zip(
        (-0.27, 0.0, 0.27),
        (
            ("p50", [ms[n].p50_ms for n in names]),
            ("p90", [ms[n].p90_ms for n in names]),
            ("p99", [ms[n].p99_ms for n in names]),
        ),
        strict=True,
    ):
        ax.bar(x + offset, values, width=0.27, label=label)
    _label_axis(ax, names)
    ax.set_yscale("log")
    ax.set_ylabel("latency per call (ms, log scale)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(ms: Mapping[str, Measurement], path: Path, title: str) -> Path:
    """Bars of predictions per second (calls/s x inputs per call) per measurement."""
    names = list(ms)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(names)), 4.5))
    ax.bar(np.arange(len(names)), [ms[n].keys_per_s for n in names], color="tab:green")
    _label_axis(ax, names)
    ax.set_yscale("log")
    ax.set_ylabel("predictions per second (log scale)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label_axis(ax: Axes, names: Sequence[str]) -> None:
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
