"""Choosing one setting (a fusion weight, a lexical weight) by a metric on validation queries."""

from __future__ import annotations

from typing import Hashable

from haystack_hardneg.evaluate.metrics import evaluate_run

# How a fusion weight is chosen on a validation slice: "argmax" (the best weight there) or "one_se" (within one
# standard error of the best, the weight closest to 0.5). benchmarks/fusion_weight_selection.py compares them on
# validation queries only: on SciFact's re-rankers (~80 held-out queries, re-ranker alone near the first stage)
# one_se chosen on one half scored 0.8269 nDCG@10 on the other half against argmax's 0.8208, better for all six;
# on the quick mode's weak re-rankers (12 held-out queries, 0.2-0.4 alone) pulling towards 0.5 cost 0.026. So the
# plain best stays the default and one_se is an option for slices and re-rankers like SciFact's.
FUSION_RULES: tuple[str, ...] = ("argmax", "one_se")


def choose_setting(qrels: dict[str, dict[str, int]], runs: dict[Hashable, dict[str, dict[str, float]]], *,
                   metric: str = "ndcg@10", report: tuple[str, ...] = ("ndcg@10", "mrr@10")
                   ) -> tuple[Hashable, dict[Hashable, dict[str, float]]]:
    """The setting whose run scores best on ``metric`` (ties: the larger setting), and every setting's metrics."""
    measured = {setting: evaluate_run(qrels, run, tuple(dict.fromkeys((metric, *report))))
                for setting, run in runs.items()}
    best = max(measured, key=lambda s: (round(measured[s][metric], 6), s))
    return best, measured


def choose_setting_within_one_se(qrels: dict[str, dict[str, int]], runs: dict[float, dict[str, dict[str, float]]], *,
                                 towards: float, metric: str = "ndcg@10",
                                 report: tuple[str, ...] = ("ndcg@10", "mrr@10")
                                 ) -> tuple[float, float, dict[float, dict[str, float]]]:
    """The one-standard-error rule for a numeric setting chosen on few queries: among the settings whose mean
    ``metric`` is within one standard error of the best (the error of their paired per-query differences from
    the best), the one closest to ``towards`` (ties: the better mean). On a validation slice of ~80 queries the
    plain best moves by noise; this keeps a setting the slice cannot tell apart from the best but that is
    a priori safer. Returns the chosen setting, the plain best, and every setting's metrics."""
    import numpy as np

    best, measured = choose_setting(qrels, runs, metric=metric, report=report)
    queries = sorted(qrels)
    per_query = {setting: evaluate_run(qrels, run, (metric,), per_query=True)[metric]
                 for setting, run in runs.items()}
    values = {setting: np.array([per_query[setting][q] for q in queries]) for setting in runs}
    within = []
    for setting, column in values.items():
        differences = column - values[best]
        error = differences.std(ddof=1) / np.sqrt(len(differences)) if len(differences) > 1 else 0.0
        if measured[setting][metric] >= measured[best][metric] - error - 1e-12:
            within.append(setting)
    chosen = min(within, key=lambda s: (abs(s - towards), -measured[s][metric], s))
    return chosen, best, measured
