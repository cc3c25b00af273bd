"""Hard-negative mining strategies behind one function: ensemble + clustering (the paper) and its baselines.

Plain numpy and scikit-learn; no Haystack. Every strategy returns the same records, so that switching strategy
is one argument and every strategy is measured the same way.

Strategies:
    ensemble_cluster  documents in the clusters of the query and of its positive, ranked by ensemble similarity
    ensemble          the ensemble's top-ranked documents (the ablation without clustering)
                      (both ensemble strategies can rank by the ensemble fused with BM25: ``lexical_weight``)
    dense             one member's top-ranked documents (single-model baseline)
    bm25              BM25's top-ranked documents (lexical baseline, bm25s)
    random            documents drawn uniformly at random
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import numpy as np
from tqdm.auto import tqdm

from haystack_hardneg.mine.cluster import Clustering, cluster_documents
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.mine.guard import suspected_false_negatives
from haystack_hardneg.mine.search import top_k
from haystack_hardneg.rank.fusion import fuse_rankings, min_max

logger = logging.getLogger(__name__)

@dataclass
class MiningData:
    """Everything mining needs, as arrays and ids.

    :param doc_vectors: unit-length ensemble vectors, one row per document.
    :param member_slices: for ``combine="concat"`` ensembles, the columns of each member inside the ensemble
        vector (per-member cosines are then recovered exactly, without re-embedding); ``None`` otherwise.
    :param member_weights: the normalised member weights (matching ``member_slices``).
    :param positives: query id -> ids of its relevant documents.
    """

    doc_ids: list[str]
    doc_texts: list[str]
    doc_vectors: np.ndarray
    query_ids: list[str]
    query_texts: list[str]
    query_vectors: np.ndarray
    positives: dict[str, list[str]]
    member_slices: list[tuple[int, int]] | None = None
    member_weights: list[float] | None = None

    def __post_init__(self) -> None:
        if len(self.doc_ids) != len(self.doc_vectors) or len(self.doc_ids) != len(self.doc_texts):
            raise ValueError(
                f"{len(self.doc_ids)} document ids, {len(self.doc_texts)} texts, {len(self.doc_vectors)} vectors."
            )
        if len(self.query_ids) != len(self.query_vectors) or len(self.query_ids) != len(self.query_texts):
            raise ValueError("Query ids, texts and vectors differ in number.")
        if len(set(self.doc_ids)) != len(self.doc_ids):
            raise ValueError("Document ids must be unique.")
        if self.doc_vectors.shape[1:] != self.query_vectors.shape[1:]:
            raise ValueError(
                f"Documents are {self.doc_vectors.shape[1]}-d but queries {self.query_vectors.shape[1]}-d: "
                f"embed both with the same ensemble."
            )
        for name, vectors in (("document", self.doc_vectors), ("query", self.query_vectors)):
            norms = np.linalg.norm(vectors, axis=1)
            bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
            if len(bad):
                ids = self.doc_ids if name == "document" else self.query_ids
                raise ValueError(
                    f"{len(bad)} {name} vector(s) are zero or contain NaN, e.g. {[ids[i] for i in bad[:5]]}; "
                    f"re-embed them or leave them out."
                )

    def member_vectors(self, member: int, which: Literal["doc", "query"]) -> np.ndarray:
        if self.member_slices is None:
            raise ValueError(
                "Per-member vectors are only recoverable from a combine='concat' ensemble; this one has none."
            )
        start, end = self.member_slices[member]
        vectors = (self.doc_vectors if which == "doc" else self.query_vectors)[:, start:end]
        return vectors / np.sqrt(self.member_weights[member])


@dataclass
class MinedPair:
    query_id: str
    positive_id: str
    positive_score: float
    negative_ids: list[str]
    negative_scores: list[float]  # ensemble cosine with the query
    negative_ranks: list[int | None]  # rank in the strategy's own ranking (None for random)
    negative_clusters: list[int | None] = field(default_factory=list)
    query_cluster: int | None = None
    positive_cluster: int | None = None
    fallback: int = 0  # negatives taken from outside the clusters because the clusters had too few


@dataclass
class MiningResult:
    strategy: str
    config: dict
    pairs: list[MinedPair]
    suspected_positives: dict[str, list[dict]]
    skipped: dict[str, list]
    clustering: Clustering | None = None


class LexicalScorer:
    """BM25 (bm25s, English stopwords) over the mined documents' texts, indexed once per mining run."""

    def __init__(self, texts: Sequence[str], progress_bar: bool = False):
        import bm25s

        self._bm25s = bm25s
        self.progress_bar = progress_bar
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(list(texts), stopwords="en", show_progress=progress_bar),
                             show_progress=progress_bar)
        self.size = len(texts)

    def ranked(self, queries: Sequence[str], hi: int, exclude: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the ``hi`` best-scoring documents outside ``exclude`` (-1 / -inf padding)."""
        extra = max((len(e) for e in exclude), default=0)
        k = min(hi + extra, self.size)
        found, scores = self.retriever.retrieve(
            self._bm25s.tokenize(list(queries), stopwords="en", show_progress=self.progress_bar), k=k,
            show_progress=self.progress_bar)
        indices = np.full((len(queries), hi), -1, dtype=np.int64)
        kept_scores = np.full((len(queries), hi), -np.inf, dtype=np.float32)
        for row, (ids, row_scores) in enumerate(zip(found, scores)):
            banned = set(exclude[row].tolist())
            # Documents sharing no term with the query score 0: they are not BM25 candidates at all.
            keep = [(i, s) for i, s in zip(ids, row_scores) if i not in banned and s > 0][:hi]
            if keep:
                indices[row, : len(keep)] = [i for i, _ in keep]
                kept_scores[row, : len(keep)] = [s for _, s in keep]
        return indices, kept_scores

    def scores(self, query: str) -> np.ndarray:
        """The query's BM25 score for every document (all 0 for a query of stopwords only)."""
        tokens = self._bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        if not tokens:  # bm25s cannot score an empty query
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)


def fuse_ranked(dense: tuple[np.ndarray, np.ndarray], lexical: tuple[np.ndarray, np.ndarray], lexical_weight: float,
                hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rankings (indices, scores; -1 padding) fused per query as the hybrid first stage fuses its lists
    (``rank.fusion.fuse_rankings``), best first, cut to ``hi``."""
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


def _ranked_candidates(
    data: MiningData, config: MiningConfig, positives_idx: list[np.ndarray], progress_bar: bool,
    lexical: LexicalScorer | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per query, candidate indices best first (positives removed) up to the window's end, for ranked strategies."""
    hi = config.rank_window[1]
    if config.strategy == "ensemble":
        ranked = top_k(data.query_vectors, data.doc_vectors, hi, exclude=positives_idx)
        if lexical is None:
            return ranked
        return fuse_ranked(ranked, lexical.ranked(data.query_texts, hi, positives_idx), config.lexical_weight, hi)
    if config.strategy == "dense":
        return top_k(
            data.member_vectors(config.member, "query"), data.member_vectors(config.member, "doc"), hi,
            exclude=positives_idx,
        )
    if config.strategy == "bm25":
        return LexicalScorer(data.doc_texts, progress_bar).ranked(data.query_texts, hi, positives_idx)
    return None


def _guard(data: MiningData, config: MiningConfig, use_members: bool, rows: np.ndarray, positives: np.ndarray,
           positive_scores: np.ndarray, candidates: np.ndarray, *, known_scores: np.ndarray | None = None,
           chunk: int = 512):
    """Ensemble scores, guard mask and reasons for ``candidates`` (``pairs x c``, -1 = padding, never held back),
    computed ``chunk`` pairs at a time so that memory stays bounded. ``known_scores``: the candidates' ensemble
    scores when the caller has them already (the ensemble ranking), which spares gathering their vectors."""
    scores = np.full(candidates.shape, -np.inf, dtype=np.float32)
    mask = np.zeros(candidates.shape, dtype=bool)
    reasons = np.full(candidates.shape, "", dtype=object)
    for start in range(0, len(rows), chunk):
        block = slice(start, start + chunk)
        found = candidates[block]
        valid = found >= 0
        safe = np.where(valid, found, 0)
        queries = data.query_vectors[rows[block]]
        if known_scores is not None:
            block_scores = known_scores[block]
        else:
            block_scores = np.matmul(data.doc_vectors[safe], queries[:, :, None])[:, :, 0]
        member_scores = member_positive = None
        if use_members:
            member_scores, member_positive = [], []
            for (a, b), weight in zip(data.member_slices, data.member_weights):
                member_scores.append(
                    np.matmul(data.doc_vectors[safe, a:b], queries[:, a:b, None])[:, :, 0] / weight)
                member_positive.append(np.einsum("pd,pd->p", data.doc_vectors[positives[block], a:b],
                                                 queries[:, a:b]) / weight)
            member_scores, member_positive = np.stack(member_scores), np.stack(member_positive)
        block_mask, block_reasons = suspected_false_negatives(
            block_scores, positive_scores[block][:, None], ratio=config.guard_ratio,
            member_candidate_scores=member_scores, member_positive_scores=member_positive,
        )
        scores[block] = np.where(valid, block_scores, -np.inf)
        mask[block] = block_mask & valid
        reasons[block] = np.where(valid & block_mask, block_reasons, "")
    return scores, mask, reasons


def mine_negatives(data: MiningData, config: MiningConfig, *, progress_bar: bool = True) -> MiningResult:
    """Mine ``config.num_negatives`` negatives for every (query, positive) pair with ``config.strategy``.

    Pairs that end with fewer negatives than asked (a tiny corpus, a narrow window, many suspects) are left
    out and counted in ``skipped["too_few_candidates"]``: the output has a fixed number of negative columns.
    """
    rng = np.random.default_rng(config.seed)
    index_of = {d: i for i, d in enumerate(data.doc_ids)}
    skipped: dict[str, list] = {"queries_without_positives": [], "unknown_positive_ids": [], "too_few_candidates": []}
    positives_idx: list[np.ndarray] = []
    for query_id in data.query_ids:
        ids = data.positives.get(query_id, [])
        unknown = [d for d in ids if d not in index_of]
        skipped["unknown_positive_ids"].extend((query_id, d) for d in unknown)
        positives_idx.append(np.array([index_of[d] for d in ids if d in index_of], dtype=np.int64))
        if len(positives_idx[-1]) == 0:
            skipped["queries_without_positives"].append(query_id)

    use_members = config.guard_member_agreement and data.member_slices is not None and len(data.member_slices) > 1

    clustering = None
    if config.strategy == "ensemble_cluster":
        clustering = cluster_documents(data.doc_vectors, n_clusters=config.n_clusters,
                                       algorithm=config.cluster_algorithm, seed=config.seed)
        by_cluster = np.argsort(clustering.labels, kind="stable")
        members_of = np.split(by_cluster, np.cumsum(clustering.sizes)[:-1])
        query_clusters = clustering.assign(data.query_vectors)
    lexical = LexicalScorer(data.doc_texts, progress_bar) if config.lexical_weight is not None else None
    lexical_row: list = [-1, None]  # the last query's BM25 scores over the corpus
    ranked = _ranked_candidates(data, config, positives_idx, progress_bar, lexical)
    # The cluster strategy falls back on the ensemble's global ranking when its clusters run short.
    fallback_pool = None
    lo, hi = config.rank_window

    pair_rows = np.repeat(np.arange(len(data.query_ids)), [len(p) for p in positives_idx])
    pair_positives = np.concatenate(positives_idx) if positives_idx else np.zeros(0, dtype=np.int64)
    positive_scores = np.einsum("pd,pd->p", data.query_vectors[pair_rows], data.doc_vectors[pair_positives])
    if ranked is not None:
        # Ranked strategies: every pair's window is known up front, so the guard runs on all of them at once.
        windows = ranked[0][pair_rows, lo:hi]
        window_scores, window_mask, window_reasons = _guard(
            data, config, use_members, pair_rows, pair_positives, positive_scores, windows,
            known_scores=ranked[1][pair_rows, lo:hi] if config.strategy == "ensemble" and lexical is None else None,
        )
        window_valid = windows >= 0

    pairs: list[MinedPair] = []
    suspects: dict[str, dict[str, dict]] = {}

    def record_suspects(pair_ids: np.ndarray, candidates: np.ndarray, scores: np.ndarray, mask: np.ndarray,
                        reasons: np.ndarray) -> None:
        """Held-back candidates the scan reaches before it has ``num_negatives`` are recorded as suspects: those
        are the documents that would have been trained on as negatives. Later ones were never in question.
        Arrays are ``pairs x c`` (``candidates`` -1 = padding, never held back) for the pairs ``pair_ids``."""
        usable = (candidates >= 0) & ~mask
        reached = np.ones_like(mask) if config.sampling == "random" else \
            np.cumsum(usable, axis=1) - usable < config.num_negatives
        for row, j in zip(*np.nonzero(mask & reached)):
            pair = pair_ids[row]
            query_id, doc_id = data.query_ids[pair_rows[pair]], data.doc_ids[candidates[row, j]]
            suspects.setdefault(query_id, {}).setdefault(doc_id, {
                "doc_id": doc_id, "score": float(scores[row, j]),
                "positive_id": data.doc_ids[pair_positives[pair]], "positive_score": float(positive_scores[pair]),
                "reason": str(reasons[row, j]),
            })

    def screen(candidates: np.ndarray, pair: int) -> np.ndarray:
        """The guard's verdict on one pair's ``candidates`` in scan order (True: held back); suspects recorded."""
        if len(candidates) == 0:
            return np.zeros(0, dtype=bool)
        scores, mask, reasons = _guard(data, config, use_members, pair_rows[pair:pair + 1],
                                       pair_positives[pair:pair + 1], positive_scores[pair:pair + 1],
                                       candidates[None, :])
        record_suspects(np.array([pair]), candidates[None, :], scores, mask, reasons)
        return mask[0]

    if ranked is not None:
        record_suspects(np.arange(len(pair_rows)), windows, window_scores, window_mask, window_reasons)

    if ranked is not None and config.sampling == "top":
        # The best eligible candidates of every pair at once; the loop below only assembles the records.
        usable = window_valid & ~window_mask
        take = usable & (np.cumsum(usable, axis=1) <= config.num_negatives)
        enough = take.sum(axis=1) == config.num_negatives
        positions = np.nonzero(take[enough])[1].reshape(-1, config.num_negatives)
        full_pairs = np.flatnonzero(enough)
        negative_idx = np.take_along_axis(windows[enough], positions, axis=1).tolist()
        negative_scores = np.take_along_axis(window_scores[enough], positions, axis=1).tolist()
        negative_ranks = (positions + lo).tolist()
        for pair in np.flatnonzero(~enough):
            skipped["too_few_candidates"].append((data.query_ids[pair_rows[pair]], data.doc_ids[pair_positives[pair]]))
        for n, pair in enumerate(tqdm(full_pairs.tolist(), desc=f"Mining ({config.strategy})", unit="pair",
                                      disable=not progress_bar)):
            pairs.append(MinedPair(
                query_id=data.query_ids[pair_rows[pair]],
                positive_id=data.doc_ids[pair_positives[pair]],
                positive_score=float(positive_scores[pair]),
                negative_ids=[data.doc_ids[i] for i in negative_idx[n]],
                negative_scores=negative_scores[n],
                negative_ranks=negative_ranks[n],
            ))
    for pair in tqdm(range(len(pair_rows)) if ranked is None or config.sampling != "top" else [],
                     desc=f"Mining ({config.strategy})", unit="pair", disable=not progress_bar):
        row, positive = int(pair_rows[pair]), int(pair_positives[pair])
        query_id, query_vector, own_positives = data.query_ids[row], data.query_vectors[row], positives_idx[row]
        positive_score = float(positive_scores[pair])
        cluster_info: dict = {}
        if ranked is not None:
            valid = window_valid[pair]
            window, mask = windows[pair][valid], window_mask[pair][valid]
            window_ranks = np.arange(lo, hi)[valid]
        else:
            if config.strategy == "random":
                # Enough draws that the guard holding some back still leaves num_negatives.
                size = min(len(data.doc_ids), max(100, 20 * config.num_negatives) + len(own_positives))
                draw = rng.choice(len(data.doc_ids), size=size, replace=False)
                window = draw[~np.isin(draw, own_positives)]
                window_ranks = np.full(len(window), -1)
            else:  # ensemble_cluster
                q_cluster, p_cluster = int(query_clusters[row]), int(clustering.labels[positive])
                pool = np.unique(np.concatenate([members_of[q_cluster], members_of[p_cluster]]))
                pool = pool[~np.isin(pool, own_positives)]
                pool_scores = data.doc_vectors[pool] @ query_vector
                if lexical is not None and len(pool):
                    if lexical_row[0] != row:  # pairs come query by query: a query's positives share one scoring
                        lexical_row[:] = [row, lexical.scores(data.query_texts[row])]
                    # Normalised over the pool: the documents this pair's negatives are drawn from.
                    pool_scores = (config.lexical_weight * min_max(lexical_row[1][pool])
                                   + (1 - config.lexical_weight) * min_max(pool_scores))
                order = np.argsort(-pool_scores, kind="stable")
                skipped_top = pool[order][:lo]
                window = pool[order][lo:hi]
                window_ranks = np.arange(lo, lo + len(window))
                cluster_info = {"query_cluster": q_cluster, "positive_cluster": p_cluster}
            mask = screen(window, pair)
        eligible = np.flatnonzero(~mask)
        if config.sampling == "random" and config.strategy != "random" and len(eligible) > config.num_negatives:
            eligible = np.sort(rng.choice(eligible, size=config.num_negatives, replace=False))
        chosen = eligible[: config.num_negatives]
        negatives = window[chosen].tolist()
        ranks = [None if r < 0 else r for r in window_ranks[chosen].tolist()]
        fallback = 0
        if config.strategy == "ensemble_cluster" and len(negatives) < config.num_negatives:
            if fallback_pool is None:
                fallback_pool = top_k(data.query_vectors, data.doc_vectors, hi + config.num_negatives,
                                      exclude=positives_idx)[0]
            # The window's start holds for the fallback too: skipped ranks are likely false negatives either way.
            extra = fallback_pool[row][lo:]
            extra = extra[(extra >= 0) & ~np.isin(extra, window) & ~np.isin(extra, skipped_top)]
            extra = extra[~screen(extra, pair)]
            extra = extra[: config.num_negatives - len(negatives)]
            negatives += extra.tolist()
            ranks += [None] * len(extra)
            fallback = len(extra)
        if len(negatives) < config.num_negatives:
            skipped["too_few_candidates"].append((query_id, data.doc_ids[positive]))
            continue
        pairs.append(MinedPair(
            query_id=query_id,
            positive_id=data.doc_ids[positive],
            positive_score=positive_score,
            negative_ids=[data.doc_ids[i] for i in negatives],
            negative_scores=(data.doc_vectors[negatives] @ query_vector).tolist(),
            negative_ranks=ranks,
            negative_clusters=clustering.labels[negatives].tolist() if clustering is not None else [],
            fallback=fallback,
            **cluster_info,
        ))
    if skipped["too_few_candidates"]:
        logger.warning("%d pair(s) had fewer than %d usable candidates and were left out.",
                       len(skipped["too_few_candidates"]), config.num_negatives)
    return MiningResult(
        strategy=config.strategy,
        config=asdict(config),
        pairs=pairs,
        suspected_positives={q: sorted(v.values(), key=lambda e: -e["score"]) for q, v in suspects.items()},
        skipped=skipped,
        clustering=clustering,
    )


def ensemble_ranks(data: MiningData, pairs: Sequence[MinedPair], *, max_queries: int = 500, seed: int = 0) -> list[int]:
    """Each negative's rank in the ensemble's ranking of the whole corpus (positives removed), on a sample of
    at most ``max_queries`` queries: one yardstick to compare how hard every strategy's negatives are."""
    index_of = {d: i for i, d in enumerate(data.doc_ids)}
    row_of = {q: i for i, q in enumerate(data.query_ids)}
    query_ids = sorted({p.query_id for p in pairs})
    if len(query_ids) > max_queries:
        query_ids = sorted(np.random.default_rng(seed).choice(query_ids, size=max_queries, replace=False).tolist())
    wanted = set(query_ids)
    ranks: list[int] = []
    scored_query, scores = None, None
    for pair in pairs:
        if pair.query_id not in wanted:
            continue
        if pair.query_id != scored_query:
            scored_query = pair.query_id
            scores = data.doc_vectors @ data.query_vectors[row_of[pair.query_id]]
            scores[[index_of[d] for d in data.positives.get(pair.query_id, []) if d in index_of]] = -np.inf
        ranks.extend(int(np.sum(scores > scores[index_of[d]])) for d in pair.negative_ids)
    return ranks
