"""The experiment's charts: each system's tested metrics with their bootstrap intervals, and nDCG@10 on the queries
with short and with long relevant documents, from the results ``report.py`` computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from haystack_hardneg.experiment.systems import DENSE_ONLY, FIRST_STAGE, LEXICAL_ONLY, TESTED_METRICS
from haystack_hardneg.extras import require
from haystack_hardneg.files import atomic_save_figure


def charts(results: dict[str, Any], out: Path) -> list[Path]:
    matplotlib = require("matplotlib", "Charts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = results["systems"]
    names = list(systems)
    paths = []
    figure, axes = plt.subplots(1, 2, figsize=(13, 0.5 * len(names) + 1.8), sharey=True)
    for axis, metric in zip(axes, TESTED_METRICS):
        means = [systems[n]["metrics"][metric] for n in names]
        low = [means[i] - systems[n]["ci95"][metric][0] for i, n in enumerate(names)]
        high = [systems[n]["ci95"][metric][1] - means[i] for i, n in enumerate(names)]
        colours = ["#888888" if n == FIRST_STAGE else "#cccccc" if n in (DENSE_ONLY, LEXICAL_ONLY)
                   else "#4c72b0" if n.endswith("re-ranker") else "#dd8452" for n in names]
        axis.barh(range(len(names)), means, xerr=[low, high], color=colours, capsize=3)
        axis.axvline(systems[FIRST_STAGE]["metrics"][metric], color="#444444", linestyle="--", linewidth=1)
        axis.set(xlabel=f"{metric} (95% bootstrap CI)", title=metric)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    figure.suptitle(f"{results['data']}: {results['test_queries']} test queries")
    figure.tight_layout()
    paths.append(atomic_save_figure(figure, out / "chart_ndcg.png", dpi=110))
    plt.close(figure)

    groups = list(results["subsets"])
    figure, axis = plt.subplots(figsize=(max(7, 1.1 * len(names)), 4.5))
    width = 0.8 / max(1, len(groups))
    for g, group in enumerate(groups):
        entries = [results["subsets"][group]["systems"][n]["ndcg@10"] for n in names]
        means = [e["mean"] for e in entries]
        errors = [[m - e["ci95"][0] for m, e in zip(means, entries)],
                  [e["ci95"][1] - m for m, e in zip(means, entries)]]
        axis.bar(np.arange(len(names)) + g * width, means, width, yerr=errors, capsize=3,
                 label=f"{group} documents ({results['subsets'][group]['queries']} queries)")
    axis.set_xticks(np.arange(len(names)) + width * (len(groups) - 1) / 2, names, rotation=30, ha="right")
    axis.set(ylabel="nDCG@10 (95% bootstrap CI)", title="Short and long relevant documents")
    axis.legend()
    figure.tight_layout()
    paths.append(atomic_save_figure(figure, out / "chart_long_short.png", dpi=110))
    plt.close(figure)
    return paths
