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


def test_judgements_of_documents_reach_their_chunks():
    from haystack_hardneg.mine.data import positives_by_chunk

    query = np.array([[1.0, 0.0]])
    vectors = np.array([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    ids, parents = ["a#0", "a#1", "b", "c"], ["a", "a", "b", "c"]
    positives, relevant = positives_by_chunk({"q": {"a": 2, "b": 1, "c": 0}}, ["q"], query, ids, parents, vectors,
                                             min_relevance=2)
    # a's best chunk is its positive; every chunk of a and b (grade 1) is relevant; c (grade 0) is neither.
    assert positives == {"q": ["a#1"]} and relevant == {"q": {"a#0": 2, "a#1": 2, "b": 1}}
    # A judged id that is itself indexed is its own positive, even when other units name it as their parent.
    positives, _ = positives_by_chunk({"q": {"a#0": 1}}, ["q"], query, ids, ["a#0", "a#0", "b", "c"], vectors)
    assert positives == {"q": ["a#0"]}


def test_the_default_budget_keys_mining_only_where_it_leaves_positives_out():
    from types import SimpleNamespace

    from haystack_hardneg.experiment import keys as K
    from haystack_hardneg.experiment.config import ExperimentConfig

    config = ExperimentConfig(data="d", training={"base_model": "x"})
    few = SimpleNamespace(qrels={"q": {f"d{i}": 1 for i in range(5)}})
    many = SimpleNamespace(qrels={"q": {f"d{i}": 1 for i in range(6)}})
    assert "positives_limit" not in K._positives_limit(config, "ensemble", few, ["q"])
    assert K._positives_limit(config, "ensemble", many, ["q"]) == {"positives_limit": 5}
    explicit = ExperimentConfig(data="d", training={"base_model": "x"}, mining={"max_positives_per_query": 5})
    assert K._positives_limit(explicit, "ensemble", many, ["q"]) == {}  # keyed with the mining section already


def _crowded(n_positives: int = 12):
    """_many_positives where every document of a query's topic is judged relevant to it at grade 1 or 2, and the
    guard is strict: a topic's windows hold little but suspects, as on data with many similar relevant passages."""
    data = _many_positives(n_positives)
    return data, dict(num_negatives=4, rank_window=(0, 20), n_clusters=6, max_positives_per_query=None,
                      guard_ratio=0.8)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pairs_the_window_cannot_fill_are_filled_from_beyond_it_and_never_with_a_relevant_document(strategy, caplog):
    data, options = _crowded()
    dropping = mine_negatives(data, MiningConfig(strategy=strategy, fill_beyond_window=False, **options),
                              progress_bar=False)
    filled = mine_negatives(data, MiningConfig(strategy=strategy, **options), progress_bar=False)
    asked = sum(len(p) for p in data.positives.values())
    assert filled.pairs_asked == dropping.pairs_asked == asked
    assert len(filled.pairs) == asked and not filled.skipped["too_few_candidates"]  # every pair kept
    if strategy != "random":  # random draws from the whole corpus already
        assert len(dropping.pairs) < asked
        beyond = [p for p in filled.pairs if p.fallback]
        assert beyond
        if strategy in ("ensemble", "dense", "bm25"):  # ranked: the fill continues the strategy's own ranking
            for p in beyond:
                further = p.negative_ranks[-p.fallback:]
                assert None not in further
                # BM25 ranks only the documents sharing a term, with ties in its own order.
                assert strategy == "bm25" or min(further) >= 20
        if strategy == "bm25":  # the whole-corpus order the fill continues is BM25's, ties by the ensemble
            from haystack_hardneg.mine.providers import _whole_ranking
            from haystack_hardneg.store.lexical import LexicalIndex

            index = LexicalIndex.build(data.doc_ids, data.doc_texts, language=None, stopwords="en",
                                       show_progress=False)
            config = MiningConfig(strategy="bm25", **options)
            order = _whole_ranking(data, config, [np.zeros(0, dtype=np.int64)] * len(data.query_ids), index, 0)
            bm25 = index.scores(data.query_texts[0])[order]
            assert len(order) == len(data.doc_ids) and list(bm25) == sorted(bm25, reverse=True)
    for pair in filled.pairs:
        assert len(set(pair.negative_ids)) == 4
        assert not set(pair.negative_ids) & set(data.relevant[pair.query_id])
    report = mining_report(data, filled)
    assert report["pairs"] == report["pairs_asked"] == asked
    assert report["pairs_filled_beyond_window"] == len([p for p in filled.pairs if p.fallback])
    assert sum(report["held_back_by_rule"].values()) > 0


def test_a_pair_is_left_out_only_when_the_whole_corpus_is_short_and_the_warning_says_why_and_what_to_change(caplog):
    data, options = _crowded()
    with caplog.at_level("WARNING"):
        dropping = mine_negatives(data, MiningConfig(strategy="ensemble", fill_beyond_window=False, **options),
                                  progress_bar=False)
    dropped = len(dropping.skipped["too_few_candidates"])
    assert dropped / dropping.pairs_asked > 0.10
    message = caplog.records[-1].getMessage()
    assert f"{dropped} of {dropping.pairs_asked} pair(s)" in message and "in their rank window" in message
    assert "score_ratio: " in message and "fill_beyond_window: true" in message and "guard_ratio" in message
    # Nothing the guard lets through is left anywhere: a query whose every document is judged relevant.
    everything = replace(data, relevant={**data.relevant, "q0": {d: 1 for d in data.doc_ids}})
    result = mine_negatives(everything, MiningConfig(strategy="ensemble", **options), progress_bar=False)
    assert {q for q, _ in result.skipped["too_few_candidates"]} == {"q0"}


def test_every_strategy_trains_on_the_same_pairs_and_holds_out_the_same_queries_when_the_window_runs_dry():
    from haystack_hardneg.train.validation import held_out_queries

    data, options = _crowded()
    kept = {strategy: {(p.query_id, p.positive_id) for p in
                       mine_negatives(data, MiningConfig(strategy=strategy, **options), progress_bar=False).pairs}
            for strategy in STRATEGIES}
    assert len({frozenset(pairs) for pairs in kept.values()}) == 1
    # Training holds out queries by a seeded hash of those it has rows for: the same queries, the same held-out.
    held_out = {frozenset(held_out_queries({q for q, _ in pairs}, 0.25, seed=0)) for pairs in kept.values()}
    assert len(held_out) == 1 and len(next(iter(held_out))) == 4


def test_the_guard_rules_relative_absolute_and_ceiling_and_the_highest_reference():
    from haystack_hardneg.mine.guard import suspected_false_negatives

    candidates = np.array([0.95, 0.85, 0.75, 0.5])
    held, why = suspected_false_negatives(candidates, 0.9, ratio=None, margin=0.1)
    assert held.tolist() == [True, True, False, False] and why[0] == "score_margin"
    held, why = suspected_false_negatives(candidates, 0.9, ratio=0.9, max_score=0.7)
    assert held.tolist() == [True, True, True, False]
    assert why.tolist()[:3] == ["score_ratio+max_score", "score_ratio+max_score", "max_score"]
    with pytest.raises(ValueError, match="guard_margin"):
        MiningConfig(guard_margin=-0.1)

    data = _many_positives(n_positives=6)
    base = MiningConfig(strategy="ensemble", num_negatives=3, rank_window=(0, 200), guard_ratio=0.9,
                        guard_member_agreement=False, max_positives_per_query=None)
    held_back = {reference: sum(mine_negatives(data, replace(base, guard_reference=reference),
                                               progress_bar=False).held_back_by_rule.values())
                 for reference in ("lowest", "pair", "highest")}
    # The query's best positive as the reference holds back least, its weakest most.
    assert held_back["highest"] <= held_back["pair"] <= held_back["lowest"]
    assert held_back["highest"] < held_back["lowest"]


def test_filling_beyond_the_window_is_keyed_so_that_runs_recorded_without_it_are_mined_again():
    from types import SimpleNamespace

    from haystack_hardneg.experiment import keys as K
    from haystack_hardneg.experiment.config import ExperimentConfig

    split = SimpleNamespace(qrels={"q": {"d": 1}})

    def key(**mining):
        return K.mine_key(ExperimentConfig(data="d", training={"base_model": "x"}, mining=mining), "i", "random",
                          split)

    recorded_before = K.stage_key(index="i", mining={"seed": 0}, strategy="random", queries=["q"])
    assert key(fill_beyond_window=False) == recorded_before  # pinned off: the recorded runs still match
    assert key() == key(fill_beyond_window=True) != recorded_before  # the default is on, and keyed


def test_suspects_are_recorded_in_the_window_only_when_pairs_are_filled_beyond_it():
    data, options = _crowded()
    result = mine_negatives(data, MiningConfig(strategy="ensemble", **options), progress_bar=False)
    assert any(p.fallback for p in result.pairs)  # some pairs went beyond the window
    index = {d: i for i, d in enumerate(data.doc_ids)}
    for query, suspects in result.suspected_positives.items():
        row = data.query_ids.index(query)
        scores = data.doc_vectors @ data.query_vectors[row]
        scores[[index[d] for d in data.relevant[query]]] = -np.inf
        window = set(np.argsort(-scores)[:20].tolist())  # rank_window (0, 20) of the ensemble's ranking
        assert {index[s["doc_id"]] for s in suspects} <= window
