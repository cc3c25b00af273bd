from dataclasses import replace

import numpy as np
import pytest

from haystack_hardneg.mine.cluster import cluster_documents
from haystack_hardneg.mine.config import STRATEGIES, MiningConfig
from haystack_hardneg.mine.negatives import mine_negatives
from haystack_hardneg.mine.providers import bm25_ranking
from haystack_hardneg.mine.report import mining_report
from haystack_hardneg.mine.search import top_k
from haystack_hardneg.store.lexical import LexicalIndex

from mine.synthetic import TOPIC_WORDS, synthetic_data


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_mines_the_asked_number_and_never_a_positive(data, strategy):
    config = MiningConfig(strategy=strategy, num_negatives=4, rank_window=(0, 30), n_clusters=8, guard_ratio=None,
                          guard_member_agreement=False)
    result = mine_negatives(data, config, progress_bar=False)
    assert len(result.pairs) == len(data.query_ids)
    for pair in result.pairs:
        assert len(pair.negative_ids) == len(set(pair.negative_ids)) == 4
        assert not set(pair.negative_ids) & set(data.positives[pair.query_id])


def test_dense_strategies_rank_by_their_own_scores(data):
    ensemble = mine_negatives(data, MiningConfig(strategy="ensemble", num_negatives=3, guard_ratio=None,
                                                 guard_member_agreement=False), progress_bar=False)
    row = data.query_ids.index(ensemble.pairs[0].query_id)
    scores = data.doc_vectors @ data.query_vectors[row]
    scores[[data.doc_ids.index(d) for d in data.positives[data.query_ids[row]]]] = -np.inf
    assert ensemble.pairs[0].negative_ids == [data.doc_ids[i] for i in np.argsort(-scores)[:3]]
    dense = mine_negatives(data, MiningConfig(strategy="dense", member=1, num_negatives=3, guard_ratio=None,
                                              guard_member_agreement=False), progress_bar=False)
    member = data.member_vectors(1, "doc") @ data.member_vectors(1, "query")[row]
    member[[data.doc_ids.index(d) for d in data.positives[data.query_ids[row]]]] = -np.inf
    assert dense.pairs[0].negative_ids == [data.doc_ids[i] for i in np.argsort(-member)[:3]]


def test_rank_window_skips_the_top(data):
    config = MiningConfig(strategy="ensemble", num_negatives=3, rank_window=(5, 20), guard_ratio=None,
                          guard_member_agreement=False)
    result = mine_negatives(data, config, progress_bar=False)
    assert all(r >= 5 for pair in result.pairs for r in pair.negative_ranks)


def test_guard_holds_back_a_planted_near_duplicate_of_the_positive(data):
    positive = data.doc_ids.index(data.positives["q0"][0])
    twin = data.doc_vectors[positive] + 0.01 * np.random.default_rng(5).normal(size=data.doc_vectors.shape[1])
    twin /= np.linalg.norm(twin)
    planted = replace(data, doc_ids=data.doc_ids + ["twin"], doc_texts=data.doc_texts + ["copy"],
                      doc_vectors=np.vstack([data.doc_vectors, twin]).astype(np.float32))
    unguarded = mine_negatives(planted, MiningConfig(strategy="ensemble", num_negatives=3, guard_ratio=None,
                                                     guard_member_agreement=False), progress_bar=False)
    assert "twin" in unguarded.pairs[0].negative_ids
    for strategy in ("ensemble", "ensemble_cluster"):
        guarded = mine_negatives(planted, MiningConfig(strategy=strategy, num_negatives=3, n_clusters=8),
                                 progress_bar=False)
        assert "twin" not in guarded.pairs[0].negative_ids
        # Reported for review: without the guard it would have been trained on as a negative.
        suspects = {s["doc_id"]: s for s in guarded.suspected_positives["q0"]}
        assert suspects["twin"]["positive_id"] == data.positives["q0"][0]
        assert "score_ratio" in suspects["twin"]["reason"]


def test_member_agreement_rule_alone_catches_the_twin(data):
    positive = data.doc_ids.index(data.positives["q0"][0])
    row = 0
    # A document every member scores just above the positive, yet below 0.95 x ... of nothing: ratio rule off.
    twin = data.doc_vectors[positive] * 0.999 + 0.02 * data.query_vectors[row]
    twin /= np.linalg.norm(twin)
    planted = replace(data, doc_ids=data.doc_ids + ["twin"], doc_texts=data.doc_texts + ["copy"],
                      doc_vectors=np.vstack([data.doc_vectors, twin]).astype(np.float32))
    result = mine_negatives(planted, MiningConfig(strategy="ensemble", num_negatives=3, guard_ratio=None),
                            progress_bar=False)
    assert "twin" not in result.pairs[0].negative_ids
    assert {s["doc_id"]: s["reason"] for s in result.suspected_positives["q0"]}["twin"] == "all_members_above"


def test_suspects_are_the_held_back_candidates_the_scan_reaches(data):
    """With sampling="top" the scan stops at the last negative: documents held back beyond it would never have been
    trained on and are not reported. Random sampling could have taken any eligible candidate: all are reported."""
    base = dict(strategy="dense", member=1, num_negatives=3, rank_window=(0, 40), guard_ratio=0.9,
                guard_member_agreement=False)  # ranked by one member, guarded by the ensemble: suspects lie anywhere
    top = mine_negatives(data, MiningConfig(**base), progress_bar=False)
    sampled = mine_negatives(data, MiningConfig(**base, sampling="random"), progress_bar=False)
    member = data.member_vectors(1, "doc") @ data.member_vectors(1, "query").T
    index = {d: i for i, d in enumerate(data.doc_ids)}
    beyond = 0
    for pair in top.pairs:
        row = data.query_ids.index(pair.query_id)
        reached = {s["doc_id"] for s in top.suspected_positives.get(pair.query_id, [])}
        assert all(member[index[d], row] > member[index[pair.negative_ids[-1]], row] for d in reached)
        every = {s["doc_id"] for s in sampled.suspected_positives.get(pair.query_id, [])}
        assert reached <= every
        beyond += len(every - reached)
    assert beyond > 0


@pytest.mark.parametrize("strategy, sampling", [("random", "top"), ("ensemble_cluster", "random"),
                                                ("ensemble", "random")])
def test_same_seed_same_output_other_seed_other_output(data, strategy, sampling):
    def mined(seed):
        config = MiningConfig(strategy=strategy, sampling=sampling, num_negatives=4, rank_window=(0, 40), seed=seed,
                              n_clusters=8, guard_ratio=None)
        return [p.negative_ids for p in mine_negatives(data, config, progress_bar=False).pairs]

    assert mined(3) == mined(3)
    assert mined(3) != mined(4)


def test_cluster_negatives_come_from_the_query_or_positive_cluster(data):
    result = mine_negatives(data, MiningConfig(strategy="ensemble_cluster", num_negatives=4, n_clusters=8,
                                               rank_window=(0, 50)), progress_bar=False)
    labels = result.clustering.labels
    for pair in result.pairs:
        allowed = {pair.query_cluster, pair.positive_cluster}
        assert pair.positive_cluster == labels[data.doc_ids.index(pair.positive_id)]
        inside = [labels[data.doc_ids.index(d)] in allowed for d in pair.negative_ids]
        assert sum(not x for x in inside) == pair.fallback
        assert all(inside[: len(inside) - pair.fallback])


def test_small_clusters_fall_back_on_the_ensemble_ranking(data):
    # 80 clusters of ~2 documents cannot supply 6 negatives: the rest comes from the global ranking.
    config = MiningConfig(strategy="ensemble_cluster", num_negatives=6, n_clusters=80, guard_ratio=None,
                          guard_member_agreement=False)
    result = mine_negatives(data, config, progress_bar=False)
    assert len(result.pairs) == len(data.query_ids)
    labels = result.clustering.labels
    for pair in result.pairs:
        pool = {d for d, label in zip(data.doc_ids, labels) if label in {pair.query_cluster, pair.positive_cluster}}
        pool -= set(data.positives[pair.query_id])
        assert pair.fallback == max(0, 6 - len(pool))
    assert sum(p.fallback > 0 for p in result.pairs) > len(result.pairs) // 2
    report = mining_report(data, result)
    assert report["clusters"]["negatives_from_fallback"] == sum(p.fallback for p in result.pairs)


def test_the_fallback_keeps_the_rank_window_start(data):
    # Tiny clusters force the fallback; the 3 candidates ranked highest (globally or in the pair's clusters) were
    # skipped as likely false negatives and must not come back through it.
    config = MiningConfig(strategy="ensemble_cluster", num_negatives=6, n_clusters=80, rank_window=(3, 40),
                          guard_ratio=None, guard_member_agreement=False)
    result = mine_negatives(data, config, progress_bar=False)
    assert sum(p.fallback for p in result.pairs) > 0
    labels = result.clustering.labels
    for pair in result.pairs:
        row = data.query_ids.index(pair.query_id)
        scores = data.doc_vectors @ data.query_vectors[row]
        positives = [data.doc_ids.index(d) for d in data.positives[pair.query_id]]
        scores[positives] = -np.inf
        global_top = {data.doc_ids[i] for i in np.argsort(-scores, kind="stable")[:3]}
        pool = [i for i, label in enumerate(labels) if label in {pair.query_cluster, pair.positive_cluster}
                and i not in positives]
        pool_top = {data.doc_ids[i] for i in sorted(pool, key=lambda i: -scores[i])[:3]}
        assert not set(pair.negative_ids) & (global_top | pool_top)


def test_bm25_negatives_share_words_with_the_query(data):
    result = mine_negatives(data, MiningConfig(strategy="bm25", num_negatives=3, guard_ratio=None,
                                               guard_member_agreement=False), progress_bar=False)
    texts = dict(zip(data.doc_ids, data.doc_texts))
    for pair in result.pairs:
        topic = next(w for w in TOPIC_WORDS if w in data.query_texts[data.query_ids.index(pair.query_id)])
        assert all(topic in texts[d] for d in pair.negative_ids)


def test_bm25_ranking_leaves_out_positives_and_documents_sharing_no_term():
    index = LexicalIndex.build(["a", "b", "c", "d"], ["heart heart study", "heart study", "liver study", "the of"],
                               language=None, stopwords="en")
    positives = [np.array([0]), np.array([], dtype=np.int64), np.array([1])]
    indices, scores = bm25_ranking(index, ["heart", "kidney", "study"], 3, positives)
    # "study" scores the shorter documents higher; "kidney" is in no document; the padding is -1 / -inf.
    assert indices.tolist() == [[1, -1, -1], [-1, -1, -1], [2, 0, -1]]
    assert np.isfinite(scores[indices >= 0]).all() and (scores[indices >= 0] > 0).all()
    assert np.isneginf(scores[indices < 0]).all()


def test_too_few_candidates_are_skipped_and_counted():
    data = synthetic_data(n_docs=12, n_queries=4)  # 11 candidates per query, 12 negatives asked
    result = mine_negatives(data, MiningConfig(strategy="ensemble", num_negatives=12, rank_window=(0, 20),
                                               guard_ratio=None), progress_bar=False)
    assert result.pairs == []
    assert len(result.skipped["too_few_candidates"]) == 4


def test_queries_without_positives_and_unknown_positives_are_counted(data):
    positives = dict(data.positives)
    positives["q1"] = []
    positives["q2"] = ["no-such-doc"]
    result = mine_negatives(replace(data, positives=positives), MiningConfig(strategy="random", num_negatives=2),
                            progress_bar=False)
    assert set(result.skipped["queries_without_positives"]) == {"q1", "q2"}
    assert result.skipped["unknown_positive_ids"] == [("q2", "no-such-doc")]
    assert len(result.pairs) == len(data.query_ids) - 2


def test_zero_or_nan_vectors_are_refused(data):
    broken = data.doc_vectors.copy()
    broken[3] = 0
    broken[7, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 document vector\(s\) are zero or contain NaN, e.g. \['d3', 'd7'\]"):
        replace(data, doc_vectors=broken)


def test_chunked_top_k_equals_brute_force():
    rng = np.random.default_rng(2)
    queries, docs = rng.normal(size=(37, 8)).astype(np.float32), rng.normal(size=(1001, 8)).astype(np.float32)
    exclude = [np.array([i, i + 1]) for i in range(37)]
    idx, scores = top_k(queries, docs, 9, query_block=10, document_block=128, exclude=exclude)
    full = queries @ docs.T
    for i in range(37):
        full[i, exclude[i]] = -np.inf
    expected = np.argsort(-full, axis=1)[:, :9]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-5)


@pytest.mark.parametrize("algorithm", ["kmeans", "minibatch_kmeans", "gmm", "agglomerative"])
def test_clustering_algorithms_find_the_topics(data, algorithm):
    clustering = cluster_documents(data.doc_vectors, n_clusters=8, algorithm=algorithm, seed=0)
    topics = np.arange(len(data.doc_ids)) % 8
    # Most documents of a topic share one cluster.
    purity = sum(np.bincount(clustering.labels[topics == t]).max() for t in range(8)) / len(topics)
    assert purity > 0.8
    assert clustering.sizes.sum() == len(data.doc_ids)


def test_config_is_validated():
    with pytest.raises(ValueError, match="strategy"):
        MiningConfig(strategy="magic")
    with pytest.raises(ValueError, match="rank_window"):
        MiningConfig(rank_window=(10, 5))
    with pytest.raises(ValueError, match="fewer than num_negatives"):
        MiningConfig(num_negatives=10, rank_window=(0, 5))


def _plant_lexical_match(data, strategy: str, depth: int = 12):
    """A near-copy of the document at ``depth`` in q0's ensemble ranking (inside q0's cluster for the cluster
    strategy), whose text repeats q0's topic word: BM25's best match for q0, low in the ensemble's ranking."""
    scores = data.doc_vectors @ data.query_vectors[0]
    pool = np.arange(len(data.doc_ids))
    if strategy == "ensemble_cluster":
        clustering = cluster_documents(data.doc_vectors, n_clusters=8, seed=0)
        pool = np.flatnonzero(clustering.labels == clustering.assign(data.query_vectors[:1])[0])
    pool = pool[~np.isin(pool, [data.doc_ids.index(d) for d in data.positives["q0"]])]
    like = pool[np.argsort(-scores[pool])][depth]
    vector = data.doc_vectors[like] + 1e-3 * np.random.default_rng(3).normal(size=data.doc_vectors.shape[1])
    word = next(w for w in TOPIC_WORDS if w in data.query_texts[0])
    return replace(data, doc_ids=data.doc_ids + ["lexical"], doc_texts=data.doc_texts + [f"{word} {word} {word}"],
                   doc_vectors=np.vstack([data.doc_vectors, vector / np.linalg.norm(vector)]).astype(np.float32))


@pytest.mark.parametrize("strategy", ["ensemble", "ensemble_cluster"])
def test_lexical_weight_brings_the_lexical_match_the_ensemble_ranks_low(data, strategy):
    planted = _plant_lexical_match(data, strategy)
    base = dict(strategy=strategy, num_negatives=3, n_clusters=8, guard_ratio=None, guard_member_agreement=False)
    def first(config):
        return next(p for p in mine_negatives(planted, config, progress_bar=False).pairs if p.query_id == "q0")

    alone, fused = first(MiningConfig(**base)), first(MiningConfig(**base, lexical_weight=0.7))
    assert "lexical" not in alone.negative_ids
    assert fused.negative_ids[0] == "lexical"
    # Weight 0 is the ensemble alone; the recorded scores stay the ensemble's cosines either way.
    assert first(MiningConfig(**base, lexical_weight=0.0)).negative_ids == alone.negative_ids
    index = {d: i for i, d in enumerate(planted.doc_ids)}
    np.testing.assert_allclose(fused.negative_scores,
                               planted.doc_vectors[[index[d] for d in fused.negative_ids]] @ planted.query_vectors[0],
                               rtol=1e-5)


def test_lexical_weight_is_only_for_the_ensemble_strategies():
    with pytest.raises(ValueError, match="lexical_weight applies to"):
        MiningConfig(strategy="bm25", lexical_weight=0.5)
    with pytest.raises(ValueError, match=r"lexical_weight must be in \[0, 1\]"):
        MiningConfig(strategy="ensemble", lexical_weight=1.5)


def test_a_query_of_stopwords_only_gets_the_ensemble_order_from_the_lexical_side(data):
    silent = replace(data, query_texts=["the of and a"] + data.query_texts[1:])  # bm25s drops all four
    base = dict(strategy="ensemble_cluster", num_negatives=3, n_clusters=8, guard_ratio=None,
                guard_member_agreement=False)
    alone = mine_negatives(silent, MiningConfig(**base), progress_bar=False)
    fused = mine_negatives(silent, MiningConfig(**base, lexical_weight=0.5), progress_bar=False)
    # BM25 scores every document 0 for it: a constant added to every candidate leaves the ensemble's order.
    assert fused.pairs[0].query_id == "q0" and fused.pairs[0].negative_ids == alone.pairs[0].negative_ids


def test_lexical_weight_zero_keeps_the_whole_ensemble_window(data):
    """Weight 0 ties the last ensemble candidate with every BM25-only one (all normalised to 0): the ensemble's
    order must win, down to the window's last place."""
    base = dict(strategy="ensemble", num_negatives=10, rank_window=(0, 10), guard_ratio=None,
                guard_member_agreement=False)
    alone = mine_negatives(data, MiningConfig(**base), progress_bar=False)
    fused = mine_negatives(data, MiningConfig(**base, lexical_weight=0.0), progress_bar=False)
    assert [p.negative_ids for p in fused.pairs] == [p.negative_ids for p in alone.pairs]
