"""IR metrics through ranx (no hand-rolled formulas): qrels and runs in, numbers out."""

from __future__ import annotations

from typing import Sequence

from haystack_hardneg.extras import require

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "precision@1", "precision@5", "precision@10", "recall@100")


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
    ranx_qrels, ranx_run = Qrels(qrels), Run(full_run)
    if per_query:
        evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
        return {m: {q: float(v) for q, v in ranx_run.scores[m].items()} for m in metrics}
    result = evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
    if isinstance(result, float):
        result = {metrics[0]: result}
    return {m: float(v) for m, v in result.items()}
