"""Choosing one setting (a fusion weight, a lexical weight) by a metric on validation queries."""

from __future__ import annotations

from typing import Any, Hashable

from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.scoring.fusion import fuse_scores

# How a fusion weight is chosen on a validation slice: "argmax" (the best weight there) or "one_se" (within one
# standard error of the best, the weight closest to 0.5). Pulling towards 0.5 helps re-rankers about as good
# alone as the first stage and costs far weaker ones, so the plain best stays the default and one_se is an
# option; benchmarks/fusion_weight_selection.py compares the two on validation queries only.
FUSION_RULES: tuple[str, ...] = ("argmax", "one_se")
# Fusion weights tried on the validation slice: 0 is the first stage alone, 1 the re-ranker alone.
FUSION_ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
# Below this many validation queries with a relevant document among their candidates the slice cannot tell the
# weights apart (one query scoring 0 everywhere ties them all): the weight falls back to 0, the first stage's order.
MIN_INFORMATIVE_QUERIES = 10


def choose_setting(qrels: dict[str, dict[str, int]], runs: dict[Hashable, dict[str, dict[str, float]]], *,
                   metric: str = "ndcg@10", report: tuple[str, ...] = ("ndcg@10", "mrr@10"),
                   ties: str = "larger") -> tuple[Hashable, dict[Hashable, dict[str, float]]]:
    """The setting whose run scores best on ``metric`` (ties: the ``larger`` or the ``smaller`` setting), and every
    setting's metrics."""
    measured = {setting: evaluate_run(qrels, run, tuple(dict.fromkeys((metric, *report))))
                for setting, run in runs.items()}
    best = max(sorted(measured, reverse=ties == "larger"), key=lambda s: round(measured[s][metric], 6))
    return best, measured


def choose_setting_within_one_se(qrels: dict[str, dict[str, int]], runs: dict[float, dict[str, dict[str, float]]], *,
                                 towards: float, metric: str = "ndcg@10",
                                 report: tuple[str, ...] = ("ndcg@10", "mrr@10")
                                 ) -> tuple[float, float, dict[float, dict[str, float]]]:
    """The one-standard-error rule for a numeric setting chosen on few queries: among the settings whose mean
    ``metric`` is within one standard error of the best (the error of their paired per-query differences from
    the best), the one closest to ``towards`` (ties: the better mean). On a small validation slice the plain
    best moves by noise; this keeps a setting the slice cannot tell apart from the best but that is a priori
    safer. Returns the chosen setting, the plain best, and every setting's metrics."""
    import numpy as np

    best, measured = choose_setting(qrels, runs, metric=metric, report=report, ties="smaller")
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


def informative_queries(qrels, ranker_scores: dict[str, dict[str, float]]) -> int:
    """How many queries have a relevant document among the candidates scored: only those can tell weights apart."""
    return sum(any(qrels.get(q, {}).get(d, 0) > 0 for d in scored) for q, scored in ranker_scores.items())


def choose_fusion_alpha(qrels, first_stage: dict[str, dict[str, float]], ranker_scores: dict[str, dict[str, float]],
                        alphas=FUSION_ALPHAS, rule: str = "argmax",
                        min_queries: int = MIN_INFORMATIVE_QUERIES) -> dict[str, Any]:
    """Fusion of the re-ranker's scores with the first stage's at every ``alpha``, measured on ``qrels`` (graded);
    ``first_stage`` and ``ranker_scores`` map query id -> {document id: score} over the same candidates.
    ``rule``: ``argmax`` (default: the best weight on the slice; ties go to the smaller weight, nearer the first
    stage) or ``one_se`` (see ``FUSION_RULES``). With fewer than ``min_queries`` informative queries the weight is 0
    (the first stage's order) and ``fallback`` says why: a re-ranker is never trusted on no evidence."""
    if rule not in FUSION_RULES:
        raise ValueError(f"Unknown fusion rule {rule!r}; choose one of {FUSION_RULES}.")
    runs = {alpha: {q: fuse_scores(ranked, first_stage[q], alpha) for q, ranked in ranker_scores.items() if ranked}
            for alpha in alphas}
    qrels = {q: qrels[q] for q in ranker_scores}
    if rule == "argmax":
        chosen, by_alpha = choose_setting(qrels, runs, ties="smaller")
        top = chosen
    else:
        chosen, top, by_alpha = choose_setting_within_one_se(qrels, runs, towards=0.5)
    informative = informative_queries(qrels, ranker_scores)
    fallback = None
    if informative < min_queries:
        fallback = (f"only {informative} validation quer{'y' if informative == 1 else 'ies'} with a relevant document "
                    f"among the candidates (at least {min_queries} needed): the first stage's order is kept (weight 0)")
        chosen = min(by_alpha)
    return {
        "informative_queries": informative,
        "min_informative_queries": min_queries,
        "fallback": fallback,
        "queries": len(ranker_scores),
        "first_stage": by_alpha.get(0.0),
        "reranker_alone": by_alpha.get(1.0),
        "by_alpha": {str(a): m for a, m in by_alpha.items()},
        "rule": rule,
        "best_alpha": chosen,
        "best": by_alpha[chosen],
        "argmax_alpha": top,
    }
