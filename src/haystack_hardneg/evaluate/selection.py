"""Choosing one setting (a fusion weight, a lexical weight) by a metric on validation queries."""

from __future__ import annotations

from typing import Hashable

from haystack_hardneg.evaluate.metrics import evaluate_run


def choose_setting(qrels: dict[str, dict[str, int]], runs: dict[Hashable, dict[str, dict[str, float]]], *,
                   metric: str = "ndcg@10", report: tuple[str, ...] = ("ndcg@10", "mrr@10")
                   ) -> tuple[Hashable, dict[Hashable, dict[str, float]]]:
    """The setting whose run scores best on ``metric`` (ties: the larger setting), and every setting's metrics."""
    measured = {setting: evaluate_run(qrels, run, tuple(dict.fromkeys((metric, *report))))
                for setting, run in runs.items()}
    best = max(measured, key=lambda s: (round(measured[s][metric], 6), s))
    return best, measured
