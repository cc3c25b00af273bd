"""Choosing one setting (a fusion weight, a lexical weight) by a metric on validation queries."""

from __future__ import annotations

import hashlib
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
# A weight other than 0 ships only when the fused ranking beats the first stage on the validation queries at this
# level, by ``gain_p_value``: a curve that is flat up to noise keeps what the user already had.
FUSION_SIGNIFICANCE = 0.05
# Sign flips drawn by ``gain_p_value`` (seeded: the same slice always gives the same p-value).
PERMUTATIONS = 10_000


def seeded_order(ids, seed: int) -> list[str]:
    """``ids`` (each once) in the order of a seeded hash of each: a query's place, and so its side of a split taken
    from the front, does not depend on which other queries there are."""
    return sorted(set(ids), key=lambda q: hashlib.sha256(f"{seed}\x1f{q}".encode()).hexdigest())


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


def gain_p_value(gains, *, permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """One-sided p-value that the best of several settings beats a baseline, from ``gains`` (queries x settings:
    each query's metric under each setting minus the baseline's).

    The best setting was picked on the same queries, so its own paired test would be optimistic (with eleven
    weights, one of them is ahead by chance). This is the max-statistic sign-flip test (Westfall and Young): under
    the null that no setting differs from the baseline, each query's gains are as likely negated, so the observed
    best mean gain is compared with the best mean gain over the same settings after flipping whole queries' signs
    at random. It needs no normality, which per-query nDCG differences on a few dozen queries do not have."""
    import numpy as np

    gains = np.asarray(gains, dtype=np.float64)
    if gains.ndim != 2 or not gains.size:
        return 1.0
    observed = gains.mean(axis=0).max()
    if observed <= 1e-12:
        return 1.0
    rng = np.random.default_rng(seed)
    exceed, chunk = 0, max(1, 4_000_000 // gains.size)
    for start in range(0, permutations, chunk):
        signs = rng.choice((-1.0, 1.0), size=(min(chunk, permutations - start), gains.shape[0]))
        exceed += int(np.sum((signs @ gains / gains.shape[0]).max(axis=1) >= observed - 1e-12))
    return (1 + exceed) / (1 + permutations)


def _significance_fallback(qrels, runs, chosen: float, level: float, slice_name: str
                           ) -> tuple[str | None, float | None]:
    """Why ``chosen`` may not ship, or why the first stage's order was chosen (``None``: it ships a weight on
    evidence), and the p-value of the best weight's gain over weight 0."""
    import numpy as np

    if 0.0 not in runs:
        return None, None
    queries = sorted(qrels)
    per_query = {a: evaluate_run(qrels, run, ("ndcg@10",), per_query=True)["ndcg@10"] for a, run in runs.items()}
    others = sorted(a for a in runs if a != 0.0)
    gains = np.array([[per_query[a][q] - per_query[0.0][q] for a in others] for q in queries]).reshape(len(queries), -1)
    p_value = gain_p_value(gains)
    own_gain = float(np.mean([per_query[chosen][q] - per_query[0.0][q] for q in queries])) if queries else 0.0
    if p_value < level and own_gain > 0:
        return None, p_value
    if chosen == 0.0:
        return (f"the first stage's own order (weight 0) scored best on {len(queries)} {slice_name} queries: the "
                f"re-ranker did not improve on it"), p_value
    best = others[int(np.argmax(gains.mean(axis=0)))] if others else chosen
    return (f"no fusion weight beat the first stage significantly on {len(queries)} {slice_name} quer"
            f"{'y' if len(queries) == 1 else 'ies'} (best: weight {best}, nDCG@10 "
            f"{gains.mean(axis=0).max():+.4f}, p = {p_value:.3f} >= {level}, a test that allows for the weight being "
            f"chosen among {len(others)}): the first stage's order is kept (weight 0)"), p_value


def informative_queries(qrels, ranker_scores: dict[str, dict[str, float]]) -> int:
    """How many queries have a relevant document among the candidates scored: only those can tell weights apart."""
    return sum(any(qrels.get(q, {}).get(d, 0) > 0 for d in scored) for q, scored in ranker_scores.items())


def choose_fusion_alpha(qrels, first_stage: dict[str, dict[str, float]], ranker_scores: dict[str, dict[str, float]],
                        alphas=FUSION_ALPHAS, rule: str = "argmax",
                        min_queries: int = MIN_INFORMATIVE_QUERIES,
                        significance: float | None = FUSION_SIGNIFICANCE) -> dict[str, Any]:
    """Fusion of the re-ranker's scores with the first stage's at every ``alpha``, measured on ``qrels`` (graded);
    ``first_stage`` and ``ranker_scores`` map query id -> {document id: score} over the same candidates.
    See ``choose_fusion_weight`` for the rule and when weight 0 (the first stage's order) is kept instead."""
    runs = {alpha: {q: fuse_scores(ranked, first_stage[q], alpha) for q, ranked in ranker_scores.items() if ranked}
            for alpha in alphas}
    qrels = {q: qrels[q] for q in ranker_scores}
    return choose_fusion_weight(qrels, runs, informative_queries(qrels, ranker_scores), rule=rule,
                                min_queries=min_queries, significance=significance)


def choose_fusion_weight(qrels, runs: dict[float, dict[str, dict[str, float]]], informative: int, *,
                         rule: str = "argmax", min_queries: int = MIN_INFORMATIVE_QUERIES,
                         significance: float | None = FUSION_SIGNIFICANCE,
                         slice_name: str = "validation") -> dict[str, Any]:
    """The fusion weight among ``runs`` (weight -> run over the queries of ``qrels``; weight 0 is the first stage's
    order). ``rule``: ``argmax`` (default: the best weight on the slice; ties go to the smaller weight, nearer the
    first stage) or ``one_se`` (see ``FUSION_RULES``). With fewer than ``min_queries`` ``informative`` queries (with a
    relevant candidate) the weight is 0 and ``fallback`` says why: a re-ranker is never trusted on no evidence.
    Likewise when the chosen weight's gain over the first stage is not significant at ``significance``
    (``gain_p_value``, which allows for the choice among all weights; ``None`` turns the test off): a flat or noisy
    curve keeps weight 0. ``slice_name`` names the queries in the ``fallback`` message."""
    if rule not in FUSION_RULES:
        raise ValueError(f"Unknown fusion rule {rule!r}; choose one of {FUSION_RULES}.")
    if rule == "argmax":
        chosen, by_alpha = choose_setting(qrels, runs, ties="smaller")
        top = chosen
    else:
        chosen, top, by_alpha = choose_setting_within_one_se(qrels, runs, towards=0.5)
    fallback, p_value = None, None
    if informative < min_queries:
        fallback = (f"only {informative} {slice_name} quer{'y' if informative == 1 else 'ies'} with a relevant "
                    f"document among the candidates (at least {min_queries} needed): the first stage's order is kept "
                    f"(weight 0)")
    elif significance is not None:
        fallback, p_value = _significance_fallback(qrels, runs, chosen, significance, slice_name)
    chosen = min(by_alpha) if fallback else chosen
    return {
        "p_value": p_value,
        "significance": significance,
        "informative_queries": informative,
        "min_informative_queries": min_queries,
        "fallback": fallback,
        "queries": len(qrels),
        "first_stage": by_alpha.get(0.0),
        "reranker_alone": by_alpha.get(1.0),
        "by_alpha": {str(a): m for a, m in by_alpha.items()},
        "rule": rule,
        "best_alpha": chosen,
        "best": by_alpha[chosen],
        "argmax_alpha": top,
    }
