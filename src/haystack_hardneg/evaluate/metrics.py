"""IR metrics through ranx (no hand-rolled formulas): qrels and runs in, numbers out."""

from __future__ import annotations

from typing import Sequence

from haystack_hardneg.extras import require

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "precision@1", "precision@5", "precision@10", "recall@100")
# ranx holds each ranking's document ids in a numpy string array as wide as the longest id, and numba compiles its
# metrics again for every width it meets (half a minute on 2 cores). Ids renamed to aliases of one width give one
# compile, which numba's cache then keeps for every data set.
ALIAS_WIDTH = 12


def evaluate_run(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    per_query: bool = False,
):
    """Mean metrics of ``run`` (query id -> {doc id: score}) against ``qrels`` (query id -> {doc id: grade}).

    Queries judged in ``qrels`` but missing from ``run`` count as zero, as in BEIR/MTEB. With
    ``per_query=True`` returns ``{metric: {query id: value}}`` instead of means.
    """
    ranx = require("ranx", "Evaluation")
    Qrels, Run, evaluate = ranx.Qrels, ranx.Run, ranx.evaluate

    if not qrels:
        raise ValueError("No relevance judgements to evaluate against.")
    full_run = {q: dict(run.get(q) or {}) for q in qrels}
    # ranx cannot hold an empty ranking; a document id no qrels mention scores 0 for that query.
    for q, ranking in full_run.items():
        if not ranking:
            ranking["__no_result__"] = 0.0
    aliases = _aliases(qrels, full_run)
    ranx_qrels = Qrels({q: {aliases[d]: grade for d, grade in judged.items()} for q, judged in qrels.items()})
    ranx_run = Run({q: {aliases[d]: score for d, score in ranking.items()} for q, ranking in full_run.items()})
    if per_query:
        evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
        return {m: {q: float(v) for q, v in ranx_run.scores[m].items()} for m in metrics}
    result = evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
    if isinstance(result, float):
        result = {metrics[0]: result}
    return {m: float(v) for m, v in result.items()}


def _aliases(*rankings: dict[str, dict[str, float]]) -> dict[str, str]:
    """Each document id -> a fixed-width alias (its first appearance's number); the order within each ranking, which
    decides ties, is kept."""
    aliases: dict[str, str] = {}
    for by_query in rankings:
        for ranking in by_query.values():
            for doc in ranking:
                if doc not in aliases:
                    aliases[doc] = f"{len(aliases):0{ALIAS_WIDTH}d}"
    return aliases
