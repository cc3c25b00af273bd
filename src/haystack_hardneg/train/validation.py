"""The validation slice of a training run: held-out training queries (never the test queries), re-ranked after
every evaluation to keep the best checkpoint, and the fusion weight chosen on them.

Given first-stage candidates (the miner's ``candidates.jsonl``), the held-out queries' first-stage top-k is
re-ranked, as at query time; without them, their positives among mined negatives, an optimistic yardstick that
the training report names as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from haystack_hardneg.evaluate.selection import (
    FUSION_ALPHAS,
    MIN_INFORMATIVE_QUERIES,
    choose_fusion_alpha,
    seeded_order,
)
from haystack_hardneg.mine.candidates import record_qrels
from haystack_hardneg.mine.triplets import negative_columns

# How split_by_query draws the held-out queries; the experiment keys its trainings on it, so a change retrains.
VALIDATION_SPLIT = "seeded-hash-order"


def split_by_query(dataset, fraction: float, seed: int, limit: int | None = None):
    """Rows of a held-out ``fraction`` of the distinct queries (at most ``limit`` of them), and the rest (no query
    in both).

    The queries are ordered by a seeded hash of their text rather than shuffled, so a query's fate does not depend
    on which other queries are present: re-rankers trained on different negative strategies, whose triplets
    cover slightly different queries, are validated on (almost) the same held-out queries and their validation
    numbers can be compared."""
    held_out = held_out_queries(set(dataset["query"]), fraction, seed, limit)
    train_rows = [i for i, q in enumerate(dataset["query"]) if q not in held_out]
    validation_rows = [i for i, q in enumerate(dataset["query"]) if q in held_out]
    return dataset.select(train_rows), dataset.select(validation_rows)


def held_out_queries(queries, fraction: float, seed: int, limit: int | None = None) -> set[str]:
    """The query texts ``split_by_query`` holds out of ``queries``: the first ``fraction`` (at most ``limit``) in the
    order of a seeded hash of their text."""
    ordered = seeded_order(queries, seed)
    size = int(round(len(ordered) * fraction))
    return set(ordered[: size if limit is None else min(size, limit)])


def reranking_samples(rows) -> list[dict[str, Any]]:
    """CrossEncoderRerankingEvaluator samples: each held-out query's positives against its mined negatives."""
    by_query: dict[str, dict[str, list[str]]] = {}
    negatives = negative_columns(rows.column_names)
    for row in rows:
        sample = by_query.setdefault(row["query"], {"positive": [], "negative": []})
        sample["positive"].append(row["positive"])
        sample["negative"].extend(row[c] for c in negatives)
    return [{"query": q, "positive": s["positive"], "negative": [n for n in dict.fromkeys(s["negative"])
                                                                 if n not in s["positive"]]}
            for q, s in by_query.items()]


def validation_evaluator(validation_rows, candidates: list[dict[str, Any]] | None, *, progress_bar: bool = False
                         ) -> tuple[Any | None, list[dict[str, Any]]]:
    """The evaluator of the held-out queries in ``validation_rows`` (MRR@10 / nDCG@10; ``None`` when none is held
    out) and their records among the first-stage ``candidates``. With candidates it re-ranks each query's
    first-stage top-k, scored as ``fusion_sweep`` scores them (so the checkpoint kept and ``hardneg.json`` give the
    same figure for the same model); without, its positives among its mined negatives."""
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    if len(validation_rows) and candidates:
        held_out = set(validation_rows["query"])
        held_out_candidates = [r for r in candidates if r["query"] in held_out]
        if not held_out_candidates:
            raise ValueError(f"None of the {len(held_out)} held-out queries is among the first-stage candidates "
                             f"given: give the candidates mined with these triplets.")
        return candidate_evaluator(held_out_candidates, progress_bar=progress_bar), held_out_candidates
    if len(validation_rows):
        evaluator = CrossEncoderRerankingEvaluator(samples=reranking_samples(validation_rows), at_k=10,
                                                   name="validation", write_csv=False, batch_size=32,
                                                   show_progress_bar=progress_bar)
        return evaluator, []
    return None, []


def validation_on(evaluator, held_out_candidates: list[dict[str, Any]]) -> str:
    """What the validation numbers were measured on, as the training report and ``hardneg.json`` name it."""
    if held_out_candidates:
        return "first-stage candidates of held-out training queries"
    if evaluator:
        return "positives among mined negatives of held-out training queries (optimistic)"
    return "none"


def _scored(model, records: list[dict[str, Any]], batch_size: int = 32, progress_bar: bool = False):
    """The re-ranker's scores, the first stage's and the judgements of ``records`` that have candidates and relevant
    documents, each keyed by the record's position: one scoring pass."""
    records = [r for r in records if r["candidates"] and r["positive_ids"]]
    if not records:
        raise ValueError("No validation query has first-stage candidates and relevant documents.")
    pairs = [(r["query"], c["text"]) for r in records for c in r["candidates"]]
    import torch

    # Sigmoid scores, as CrossEncoderRanker fuses them (scale_score=True), whatever the model's own activation.
    scores = iter(np.asarray(model.predict(pairs, batch_size=batch_size, show_progress_bar=progress_bar,
                                           activation_fn=torch.nn.Sigmoid()), dtype=np.float64))
    ranker_scores = {str(i): {c["id"]: float(next(scores)) for c in r["candidates"]} for i, r in enumerate(records)}
    first_stage = {str(i): {c["id"]: c["score"] for c in r["candidates"]} for i, r in enumerate(records)}
    qrels = {str(i): record_qrels(r) for i, r in enumerate(records)}
    return ranker_scores, first_stage, qrels


def candidate_evaluator(records: list[dict[str, Any]], *, progress_bar: bool = False):
    """A sentence-transformers evaluator of the re-ranker alone on ``records``' first-stage candidates: graded
    nDCG@10 and MRR@10 through ranx, exactly the ``reranker_alone`` figures of ``fusion_sweep``. Its ``base_``
    figures are the first stage's. (sentence-transformers' CrossEncoderRerankingEvaluator would count only the
    relevant documents the first stage retrieved in its ideal DCG, and no grades: a checkpoint chosen on it and
    the figures stored with the model would disagree on the same queries.)"""
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

    from haystack_hardneg.evaluate.metrics import evaluate_run

    class CandidateEvaluator(SentenceEvaluator):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.primary_metric = "validation", "ndcg@10"

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            ranker_scores, first_stage, qrels = _scored(model, records, progress_bar=progress_bar)
            metrics = evaluate_run(qrels, ranker_scores, ("ndcg@10", "mrr@10"))
            base = evaluate_run(qrels, first_stage, ("ndcg@10", "mrr@10"))
            metrics.update({f"base_{k}": v for k, v in base.items()})
            metrics = self.prefix_name_to_metrics(metrics, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    return CandidateEvaluator()


def fusion_sweep(model, records: list[dict[str, Any]], alphas=FUSION_ALPHAS, batch_size: int = 32, *,
                 min_queries: int = MIN_INFORMATIVE_QUERIES, progress_bar: bool = False) -> dict[str, Any]:
    """nDCG@10 / MRR@10 (graded) of the first stage, the re-ranker alone and their fusion at every ``alpha`` on
    ``records`` (first-stage candidates with relevant ids), and the weight chosen by ``choose_fusion_alpha`` (the
    first stage's order when fewer than ``min_queries`` records have a relevant candidate). One scoring pass."""
    ranker_scores, first_stage, qrels = _scored(model, records, batch_size, progress_bar)
    return choose_fusion_alpha(qrels, first_stage, ranker_scores, alphas, min_queries=min_queries)
