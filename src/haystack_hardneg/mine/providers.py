"""Candidate providers: per (query, positive) pair, the window of candidates a strategy offers, in the order the
selection scans them (best first, or drawn at random).

Every provider has ``windows(pairs)``. The ranked strategies (ensemble, dense, bm25, ensemble fused with BM25)
know every pair's window up front and return them as one ``RankedWindows`` matrix, which the guard and the
selection then handle as whole arrays: that is what makes mining fast. The random and cluster providers build
one ``Window`` per pair as the selection asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from haystack_hardneg.mine.cluster import Clustering, cluster_documents
from haystack_hardneg.mine.config import MiningConfig, uses_bm25
from haystack_hardneg.mine.data import MiningData, Pairs
from haystack_hardneg.mine.search import full_order, top_k
from haystack_hardneg.scoring.fusion import fuse_rankings, min_max
from haystack_hardneg.store.lexical import LexicalIndex

Ranking = tuple[np.ndarray, np.ndarray]  # per query: document indices best first and their scores (-1 / -inf padding)


@dataclass
class Window:
    """One pair's candidates (document indices) in scan order."""

    pair: int
    candidates: np.ndarray
    ranks: np.ndarray  # each candidate's rank in the strategy's own ranking; -1: unranked (random)
    held_back: np.ndarray | None = None  # the guard's verdict, when it screened every pair's window at once
    query_cluster: int | None = None
    positive_cluster: int | None = None
    # Documents the strategy looked at for this pair beyond its candidates (the clusters' skipped top ranks): never
    # taken again when the pair is filled from beyond the window.
    seen: np.ndarray | None = None


@dataclass
class RankedWindows:
    """Every pair's window of a ranked strategy: ``pairs x (hi - lo)`` document indices (-1 padding), ranks
    ``lo`` .. ``hi - 1``."""

    candidates: np.ndarray
    lo: int
    known_scores: np.ndarray | None = None  # the candidates' ensemble scores, when the ranking is the ensemble's

    def rows(self, held_back: np.ndarray) -> Iterator[Window]:
        """One ``Window`` per pair, with the guard's verdict ``held_back`` (``pairs x (hi - lo)``)."""
        ranks = np.arange(self.lo, self.lo + self.candidates.shape[1])
        for pair, (candidates, held) in enumerate(zip(self.candidates, held_back)):
            valid = candidates >= 0
            yield Window(pair, candidates[valid], ranks[valid], held_back=held[valid])


class CandidateProvider(Protocol):
    clustering: Clustering | None  # the clusters the candidates were drawn from, if any
    presampled: bool  # the windows are uniform draws already: random sampling takes them as they come

    def windows(self, pairs: Pairs) -> Iterator[Window] | RankedWindows: ...

    def beyond(self, pairs: Pairs, window: Window, *, deep: bool) -> tuple[np.ndarray, np.ndarray]:
        """The candidates after ``window`` in the strategy's scan order and their ranks (-1: unranked), for a pair
        the window left short: down to the whole corpus with ``deep``, else only what the strategy itself adds
        (the clusters' fallback)."""
        ...


def _after(order: np.ndarray, window: Window, lo: int) -> tuple[np.ndarray, np.ndarray]:
    """``order`` (a whole-corpus ranking) from rank ``lo`` on, less the window's documents, with their ranks."""
    ranks = np.arange(lo, len(order))
    keep = ~np.isin(order[lo:], window.candidates if window.seen is None else
                    np.concatenate([window.candidates, window.seen]))
    return order[lo:][keep], ranks[keep]


def bm25_ranking(index: LexicalIndex, queries: Sequence[str], hi: int, exclude: Sequence[np.ndarray]) -> Ranking:
    """Per query, the ``hi`` best BM25 documents outside ``exclude`` (the documents judged relevant to it) that
    share a term with it."""
    extra = max((len(e) for e in exclude), default=0)
    indices = np.full((len(queries), hi), -1, dtype=np.int64)
    scores = np.full((len(queries), hi), -np.inf, dtype=np.float32)
    for row, found in enumerate(index.search(list(queries), hi + extra)):
        banned = set(exclude[row].tolist())
        keep = [(i, s) for i, s in found if i not in banned][:hi]
        if keep:
            indices[row, : len(keep)] = [i for i, _ in keep]
            scores[row, : len(keep)] = [s for _, s in keep]
    return indices, scores


def fuse_ranked(dense: Ranking, lexical: Ranking, lexical_weight: float, hi: int) -> Ranking:
    """Two rankings fused per query as the hybrid first stage fuses its lists (``scoring.fusion.fuse_rankings``),
    best first, cut to ``hi``."""
    indices = np.full((len(dense[0]), hi), -1, dtype=np.int64)
    fused_scores = np.full((len(dense[0]), hi), -np.inf, dtype=np.float32)
    for row in range(len(dense[0])):
        lists = [{int(i): float(v) for i, v in zip(ids, values) if i >= 0}
                 for ids, values in ((dense[0][row], dense[1][row]), (lexical[0][row], lexical[1][row]))]
        fused = fuse_rankings(lists[0], lists[1], lexical_weight)
        # Ties (e.g. the last dense candidate and the BM25-only ones, all at 0) keep the dense order first.
        dense_rank = {d: r for r, d in enumerate(lists[0])}
        best = sorted(fused, key=lambda d: (-fused[d], dense_rank.get(d, len(dense_rank)), d))[:hi]
        indices[row, : len(best)] = best
        fused_scores[row, : len(best)] = [fused[d] for d in best]
    return indices, fused_scores


class RankedProvider:
    """The windows ``lo .. hi - 1`` of a ranking of the whole corpus per query (documents judged relevant removed)."""

    clustering = None
    presampled = False

    def __init__(self, ranking: Ranking, rank_window: tuple[int, int], *, scores_are_ensemble: bool,
                 order: Callable[[int], np.ndarray] | None = None):
        self.ranking, self.rank_window, self.scores_are_ensemble = ranking, rank_window, scores_are_ensemble
        self.order = order  # a query row's ranking of the whole corpus, for the pairs a window leaves short

    def windows(self, pairs: Pairs) -> RankedWindows:
        (lo, hi), (indices, scores) = self.rank_window, self.ranking
        return RankedWindows(indices[pairs.rows, lo:hi], lo,
                             scores[pairs.rows, lo:hi] if self.scores_are_ensemble else None)

    def beyond(self, pairs: Pairs, window: Window, *, deep: bool) -> tuple[np.ndarray, np.ndarray]:
        if not deep or self.order is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return _after(self.order(int(pairs.rows[window.pair])), window, self.rank_window[0])


def ranked_provider(data: MiningData, config: MiningConfig, excluded: list[np.ndarray],
                    lexical: LexicalIndex | None) -> RankedProvider:
    """The ranking of ``config.strategy``: the ensemble's (fused with BM25 when ``lexical_weight`` is set), one
    member's, or BM25's."""
    hi = config.rank_window[1]
    if config.strategy == "dense":
        ranking = top_k(data.member_vectors(config.member, "query"), data.member_vectors(config.member, "doc"), hi,
                        exclude=excluded)
    elif config.strategy == "bm25":
        ranking = bm25_ranking(lexical, data.query_texts, hi, excluded)
    else:
        ranking = top_k(data.query_vectors, data.doc_vectors, hi, exclude=excluded)
        if lexical is not None:
            ranking = fuse_ranked(ranking, bm25_ranking(lexical, data.query_texts, hi, excluded),
                                  config.lexical_weight, hi)
    scores_are_ensemble = config.strategy == "ensemble" and lexical is None
    return RankedProvider(ranking, config.rank_window, scores_are_ensemble=scores_are_ensemble,
                          order=partial(_whole_ranking, data, config, excluded, lexical))


def _whole_ranking(data: MiningData, config: MiningConfig, excluded: list[np.ndarray], lexical: LexicalIndex | None,
                   row: int) -> np.ndarray:
    """Query ``row``'s ranking of the whole corpus by ``config.strategy``'s score, documents judged relevant left
    out (BM25: documents sharing no term with the query come by the ensemble's score)."""
    if config.strategy == "dense":
        member = config.member
        return full_order(data.member_vectors(member, "doc") @ data.member_vectors(member, "query")[row], excluded[row])
    dense = data.doc_vectors @ data.query_vectors[row]
    if lexical is None:
        return full_order(dense, excluded[row])
    lexical_scores = lexical.scores(data.query_texts[row])
    if config.strategy == "bm25":
        return full_order(lexical_scores, excluded[row], tiebreak=dense)
    dense_order = full_order(dense, excluded[row])
    lexical_order = full_order(lexical_scores, excluded[row])
    fused = fuse_ranked((dense_order[None], dense[dense_order][None]),
                        (lexical_order[None], lexical_scores[lexical_order][None]), config.lexical_weight, len(dense))
    return fused[0][0][fused[0][0] >= 0]


class RandomProvider:
    """Documents drawn uniformly at random, those judged relevant left out."""

    clustering = None
    presampled = True

    def __init__(self, n_docs: int, excluded: list[np.ndarray], num_negatives: int, rng: np.random.Generator,
                 seed: int = 0):
        self.n_docs, self.excluded, self.num_negatives, self.rng, self.seed = n_docs, excluded, num_negatives, rng, seed

    def windows(self, pairs: Pairs) -> Iterator[Window]:
        for pair, row in enumerate(pairs.rows.tolist()):
            own = self.excluded[row]
            # Enough draws that the guard holding some back still leaves num_negatives.
            size = min(self.n_docs, max(100, 20 * self.num_negatives) + len(own))
            draw = self.rng.choice(self.n_docs, size=size, replace=False)
            candidates = draw[~np.isin(draw, own)]
            yield Window(pair, candidates, np.full(len(candidates), -1))

    def beyond(self, pairs: Pairs, window: Window, *, deep: bool) -> tuple[np.ndarray, np.ndarray]:
        if not deep:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # The rest of the corpus in a random order of its own (seeded by the pair): the window's draw goes on.
        rest = np.random.default_rng([self.seed, 2, int(window.pair)]).permutation(self.n_docs)
        rest = rest[~np.isin(rest, np.concatenate([self.excluded[int(pairs.rows[window.pair])], window.candidates]))]
        return rest, np.full(len(rest), -1)


class ClusterProvider:
    """The documents of the query's cluster and of its positive's, ranked by the ensemble (or by the ensemble
    fused with BM25); when they run short, the ensemble's ranking of the whole corpus supplies the rest."""

    presampled = False

    def __init__(self, data: MiningData, config: MiningConfig, excluded: list[np.ndarray],
                 lexical: LexicalIndex | None):
        self.data, self.config, self.excluded, self.lexical = data, config, excluded, lexical
        self.clustering = cluster_documents(data.doc_vectors, n_clusters=config.n_clusters,
                                            algorithm=config.cluster_algorithm, seed=config.seed)
        by_cluster = np.argsort(self.clustering.labels, kind="stable")
        self.members_of = np.split(by_cluster, np.cumsum(self.clustering.sizes)[:-1])
        self.query_clusters = self.clustering.assign(data.query_vectors)

    def windows(self, pairs: Pairs) -> Iterator[Window]:
        scored_row, lexical_scores = -1, None
        for pair, (row, positive) in enumerate(zip(pairs.rows.tolist(), pairs.positives.tolist())):
            if self.lexical is not None and row != scored_row:
                # Pairs come query by query: a query's positives share one BM25 scoring.
                scored_row, lexical_scores = row, self.lexical.scores(self.data.query_texts[row])
            yield self._window(pair, row, positive, lexical_scores)

    def _window(self, pair: int, row: int, positive: int, lexical_scores: np.ndarray | None) -> Window:
        lo, hi = self.config.rank_window
        q_cluster, p_cluster = int(self.query_clusters[row]), int(self.clustering.labels[positive])
        pool = np.unique(np.concatenate([self.members_of[q_cluster], self.members_of[p_cluster]]))
        pool = pool[~np.isin(pool, self.excluded[row])]
        pool_scores = self.data.doc_vectors[pool] @ self.data.query_vectors[row]
        if lexical_scores is not None and len(pool):
            # Normalised over the pool: the documents this pair's negatives are drawn from.
            weight = self.config.lexical_weight
            pool_scores = weight * min_max(lexical_scores[pool]) + (1 - weight) * min_max(pool_scores)
        ranked = pool[np.argsort(-pool_scores, kind="stable")]
        candidates = ranked[lo:hi]
        return Window(pair, candidates, np.arange(lo, lo + len(candidates)), query_cluster=q_cluster,
                      positive_cluster=p_cluster, seen=ranked[:lo])

    def beyond(self, pairs: Pairs, window: Window, *, deep: bool) -> tuple[np.ndarray, np.ndarray]:
        """The clusters' fallback: the ensemble's ranking of the whole corpus from ``lo`` on, less the pool's top
        ``hi``: the window's start holds here too, as skipped ranks are likely false negatives either way. Without
        ``deep`` it goes ``num_negatives`` past ``hi`` only. Unranked (-1): these are not the pool's ranks."""
        row = int(pairs.rows[window.pair])
        if deep:
            order = full_order(self.data.doc_vectors @ self.data.query_vectors[row], self.excluded[row])
        else:
            order = self._global_ranking[row]
            order = order[order >= 0]
        extra, _ = _after(order, window, self.config.rank_window[0])
        return extra, np.full(len(extra), -1)

    @cached_property
    def _global_ranking(self) -> np.ndarray:
        # Deep enough that num_negatives remain past the window's end; computed only if some pair falls back.
        hi = self.config.rank_window[1]
        return top_k(self.data.query_vectors, self.data.doc_vectors, hi + self.config.num_negatives,
                     exclude=self.excluded)[0]


def candidate_provider(data: MiningData, config: MiningConfig, excluded: list[np.ndarray],
                       rng: np.random.Generator, *, progress_bar: bool = False) -> CandidateProvider:
    """The provider of ``config.strategy``; ``excluded``: per query, the indices of the documents judged relevant
    to it (never candidates)."""
    lexical = None
    if uses_bm25(config):
        # The BM25 that MiningConfig.lexical_weight describes: English stop words, no stemmer.
        lexical = LexicalIndex.build(data.doc_ids, data.doc_texts, language=None, stopwords="en",
                                     show_progress=progress_bar)
    if config.strategy == "random":
        return RandomProvider(len(data.doc_ids), excluded, config.num_negatives, rng, config.seed)
    if config.strategy == "ensemble_cluster":
        return ClusterProvider(data, config, excluded, lexical)
    return ranked_provider(data, config, excluded, lexical)
