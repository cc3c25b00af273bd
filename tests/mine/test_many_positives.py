"""Queries with many and graded positives: the per-query budget, the negatives that are never relevant, and which
positive the false-negative guard compares with."""

from dataclasses import replace

import numpy as np
import pytest

from haystack_hardneg.mine.config import STRATEGIES, MiningConfig
from haystack_hardneg.mine.negatives import mine_negatives
from haystack_hardneg.mine.report import mining_report

from mine.synthetic import synthetic_data


def _many_positives(n_positives: int = 12):
    """Query q0..q3 each have ``n_positives`` positives of their topic (grade 2) and as many more judged grade 1."""
    data = synthetic_data(n_docs=240)
    topic_docs = {t: [f"d{i}" for i in range(240) if i % 8 == t] for t in range(8)}
    positives, relevant = {}, {}
    for j, query in enumerate(data.query_ids):
        docs = topic_docs[j % 8][: 2 * n_positives] if j < 4 else data.positives[query]
        strong = docs[:n_positives] if j < 4 else docs
        positives[query] = strong
        relevant[query] = {**{d: 2 for d in strong}, **{d: 1 for d in docs if d not in strong}}
    return replace(data, positives=positives, relevant=relevant)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rows_per_query_stay_within_the_budget_and_no_negative_is_judged_relevant(strategy):
    data = _many_positives()
    config = MiningConfig(strategy=strategy, num_negatives=3, rank_window=(0, 60), n_clusters=6,
                          max_positives_per_query=4, guard_ratio=None, guard_member_agreement=False)
    result = mine_negatives(data, config, progress_bar=False)
    rows = {q: sum(p.query_id == q for p in result.pairs) for q in data.query_ids}
    assert all(count <= 4 for count in rows.values())
    assert rows["q0"] == 4 and rows["q9"] == 1  # many positives: the budget; one positive: that one
    assert result.positives_not_sampled == 4 * (12 - 4)
    for pair in result.pairs:
        assert pair.positive_id in data.positives[pair.query_id]
        # Neither a positive nor a document judged relevant at a lower grade is ever a negative.
        assert not set(pair.negative_ids) & set(data.relevant[pair.query_id])
    assert mining_report(data, result)["positives_not_sampled"] == 32


def test_the_sample_of_positives_is_seeded_and_without_a_limit_every_positive_is_mined():
    data = _many_positives()
    config = MiningConfig(strategy="ensemble", num_negatives=3, max_positives_per_query=4, guard_ratio=None,
                          guard_member_agreement=False)
    first = [p.positive_id for p in mine_negatives(data, config, progress_bar=False).pairs]
    again = [p.positive_id for p in mine_negatives(data, config, progress_bar=False).pairs]
    other_seed = [p.positive_id for p in mine_negatives(data, replace(config, seed=1), progress_bar=False).pairs]
    assert first == again and first != other_seed
    unlimited = mine_negatives(data, replace(config, max_positives_per_query=None), progress_bar=False)
    assert len(unlimited.pairs) == 4 * 12 + 12 and unlimited.positives_not_sampled == 0


def test_the_guard_compares_with_the_pairs_own_positive_or_the_querys_lowest():
    data = _many_positives(n_positives=6)
    row = data.query_ids.index("q0")
    index = {d: i for i, d in enumerate(data.doc_ids)}
    scores = {d: float(data.doc_vectors[index[d]] @ data.query_vectors[row]) for d in data.positives["q0"]}
    strongest, weakest = max(scores, key=scores.get), min(scores, key=scores.get)
    base = MiningConfig(strategy="ensemble", num_negatives=3, rank_window=(0, 200), guard_ratio=0.9,
                        guard_member_agreement=False, max_positives_per_query=None)
    assert scores[strongest] > scores[weakest]
    by_pair = mine_negatives(data, base, progress_bar=False)
    by_lowest = mine_negatives(data, replace(base, guard_reference="lowest"), progress_bar=False)

    # Pair: each suspect names the positive it was compared with, at that positive's own score.
    assert all(s["positive_score"] == pytest.approx(scores[s["positive_id"]])
               for s in by_pair.suspected_positives.get("q0", []))
    # Lowest: every suspect of q0 was compared with its weakest positive, for the pairs of its strongest too.
    assert {s["positive_id"] for s in by_lowest.suspected_positives["q0"]} == {weakest}
    assert all(s["positive_score"] == pytest.approx(scores[weakest]) for s in by_lowest.suspected_positives["q0"])
    # The stricter reference holds back at least as much for the strongest positive's pair.
    strongest_negatives = {p.positive_id: p for p in by_pair.pairs if p.query_id == "q0"}[strongest].negative_scores
    lowest_negatives = {p.positive_id: p for p in by_lowest.pairs if p.query_id == "q0"}[strongest].negative_scores
    assert max(lowest_negatives) <= 0.9 * scores[weakest] + 1e-6
    assert max(strongest_negatives) >= max(lowest_negatives)


def test_max_positives_per_query_is_checked():
    with pytest.raises(ValueError, match="max_positives_per_query"):
        MiningConfig(max_positives_per_query=0)
