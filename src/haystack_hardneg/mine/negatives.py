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

Every strategy runs the same three steps: its candidate provider offers each (query, positive) pair a window of
candidates (``providers.py``); the false-negative guard holds back those that look as relevant as the positive,
and the negatives are chosen among the rest (``select.py``); the records are assembled here.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from haystack_hardneg.mine.cluster import Clustering
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.mine.data import MiningData, Pairs
from haystack_hardneg.mine.guard import Guard, Verdict
from haystack_hardneg.mine.providers import CandidateProvider, RankedWindows, Window, candidate_provider
from haystack_hardneg.mine.select import choose, take_top

logger = logging.getLogger(__name__)


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
    fallback: int = 0  # negatives taken beyond the window (ensemble_cluster: outside the clusters): it had too few


@dataclass
class MiningResult:
    strategy: str
    config: dict
    pairs: list[MinedPair]
    suspected_positives: dict[str, list[dict]]
    skipped: dict[str, list]
    clustering: Clustering | None = None
    positives_not_sampled: int = 0  # positives left out by max_positives_per_query
    pairs_asked: int = 0  # (query, positive) pairs mining was asked to fill
    held_back_by_rule: dict[str, int] = field(default_factory=dict)  # the guard's candidates held back, by rule


def _known_positives(data: MiningData) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, list]]:
    """Per query, the document indices of its positives and of every document judged relevant to it (never a
    negative); and what was skipped on the way."""
    index_of = {d: i for i, d in enumerate(data.doc_ids)}
    skipped: dict[str, list] = {"queries_without_positives": [], "unknown_positive_ids": [], "too_few_candidates": []}
    positives: list[np.ndarray] = []
    excluded: list[np.ndarray] = []
    relevant = data.relevant or {}
    for query_id in data.query_ids:
        ids = data.positives.get(query_id, [])
        skipped["unknown_positive_ids"].extend((query_id, d) for d in ids if d not in index_of)
        positives.append(np.array([index_of[d] for d in ids if d in index_of], dtype=np.int64))
        others = [index_of[d] for d in relevant.get(query_id, []) if d in index_of]
        excluded.append(np.union1d(positives[-1], np.array(others, dtype=np.int64)))
        if len(positives[-1]) == 0:
            skipped["queries_without_positives"].append(query_id)
    return positives, excluded, skipped


def _at_most(positives: list[np.ndarray], limit: int | None, seed: int) -> list[np.ndarray]:
    """Each query's positives, a seeded sample of ``limit`` of them where it has more (kept in their order).
    A generator of its own, so that the other draws of a run stay as they are whatever the limit."""
    if limit is None or all(len(p) <= limit for p in positives):
        return positives
    rng = np.random.default_rng([seed, 1])
    return [p if len(p) <= limit else p[np.sort(rng.choice(len(p), size=limit, replace=False))] for p in positives]


def mine_negatives(data: MiningData, config: MiningConfig, *, progress_bar: bool = True) -> MiningResult:
    """Mine ``config.num_negatives`` negatives for every (query, positive) pair with ``config.strategy``, for at
    most ``config.max_positives_per_query`` positives of each query.

    No document judged relevant to a query (``data.relevant``, its positives) is ever among its negatives.
    Pairs that end with fewer negatives than asked (a tiny corpus, a narrow window, many suspects) are left
    out and counted in ``skipped["too_few_candidates"]``: the output has a fixed number of negative columns.
    """
    rng = np.random.default_rng(config.seed)
    every_positive, excluded, skipped = _known_positives(data)
    positives = _at_most(every_positive, config.max_positives_per_query, config.seed)
    pairs = Pairs.of(data, positives, reference=config.guard_reference, every_positive=every_positive)
    provider = candidate_provider(data, config, excluded, rng, progress_bar=progress_bar)
    guard = Guard(data, config, pairs)
    mined = _mine_pairs(data, config, pairs, provider, guard, rng, progress_bar)
    skipped["too_few_candidates"] = [pairs.ids(data, pair) for pair, found in enumerate(mined) if found is None]
    if skipped["too_few_candidates"]:
        logger.warning(dropped_message(config, len(skipped["too_few_candidates"]), len(pairs),
                                       guard.held_back_by_rule))
    return MiningResult(
        strategy=config.strategy,
        config=asdict(config),
        pairs=[found for found in mined if found is not None],
        suspected_positives=guard.suspected_positives(),
        skipped=skipped,
        clustering=provider.clustering,
        positives_not_sampled=sum(len(a) - len(b) for a, b in zip(every_positive, positives)),
        pairs_asked=len(pairs),
        held_back_by_rule=dict(guard.held_back_by_rule),
    )


# Above this share of pairs left out, the warning says which guard rule held their candidates back and what to change.
DROPPED_SHARE_EXPLAINED = 0.10
# What loosens each guard rule (MiningConfig's options).
LOOSER = {
    "score_ratio": "a higher guard_ratio (e.g. 0.98), or guard_reference: highest",
    "score_margin": "a smaller guard_margin, or guard_reference: highest",
    "max_score": "a higher guard_max_score",
    "all_members_above": "guard_member_agreement: false (--no-member-agreement)",
}


def dropped_message(config: MiningConfig, dropped: int, asked: int, held_back_by_rule: dict[str, int]) -> str:
    """Why pairs were left out, and, when they are many, which rule held their candidates back and what to change."""
    where = "in the whole corpus" if config.fill_beyond_window else "in their rank window"
    text = (f"{dropped} of {asked} pair(s) ({dropped / max(asked, 1):.0%}) had fewer than {config.num_negatives} "
            f"candidates the false-negative guard let through {where} and were left out")
    if dropped / max(asked, 1) <= DROPPED_SHARE_EXPLAINED:
        return text + "."
    rules = sorted(held_back_by_rule.items(), key=lambda item: -item[1])
    text += ("; held back by " + ", ".join(f"{rule}: {count}" for rule, count in rules)) if rules else ""
    advice = [] if config.fill_beyond_window else ["fill_beyond_window: true (take negatives beyond the window)"]
    advice += [LOOSER[rule] for rule, _ in rules if rule in LOOSER]
    return text + (". To keep them: " + "; or ".join(advice) + "." if advice else ".")


def _mine_pairs(data: MiningData, config: MiningConfig, pairs: Pairs, provider: CandidateProvider, guard: Guard,
                rng: np.random.Generator, progress_bar: bool) -> list[MinedPair | None]:
    """Every pair's record, in pair order (``None``: too few negatives)."""
    bar = {"desc": f"Mining ({config.strategy})", "unit": "pair", "disable": not progress_bar}
    windows = provider.windows(pairs)
    if isinstance(windows, RankedWindows):
        # Every pair's window is known up front, so the guard screens them all at once.
        verdict = guard.screen(np.arange(len(pairs)), windows.candidates, known_scores=windows.known_scores)
        if config.sampling == "top":
            return _top_of_every_window(data, config, pairs, windows, verdict, bar, provider, guard)
        windows = windows.rows(verdict.held_back)
    return [_mine_window(data, config, pairs, window, guard, rng, provider)
            for window in tqdm(windows, total=len(pairs), **bar)]


def _top_of_every_window(data: MiningData, config: MiningConfig, pairs: Pairs, windows: RankedWindows,
                         verdict: Verdict, bar: dict, provider: CandidateProvider, guard: Guard
                         ) -> list[MinedPair | None]:
    """Each pair's best candidates the guard let through, taken for every pair at once; a pair the window leaves
    short is filled one by one (``_mine_window``; ``None``: still short). The loop only assembles the records."""
    enough, positions = take_top(windows.candidates, verdict.held_back, config.num_negatives)
    negative_idx = np.take_along_axis(windows.candidates[enough], positions, axis=1).tolist()
    negative_scores = np.take_along_axis(verdict.scores[enough], positions, axis=1).tolist()
    negative_ranks = (positions + windows.lo).tolist()
    mined: list[MinedPair | None] = [None] * len(pairs)
    for n, pair in enumerate(tqdm(np.flatnonzero(enough).tolist(), **bar)):
        query_id, positive_id = pairs.ids(data, pair)
        mined[pair] = MinedPair(
            query_id=query_id,
            positive_id=positive_id,
            positive_score=float(pairs.scores[pair]),
            negative_ids=[data.doc_ids[i] for i in negative_idx[n]],
            negative_scores=negative_scores[n],
            negative_ranks=negative_ranks[n],
        )
    if config.fill_beyond_window:
        short = [window for window in windows.rows(verdict.held_back) if not enough[window.pair]]
        for window in short:
            mined[window.pair] = _mine_window(data, config, pairs, window, guard, None, provider)
    return mined


def _mine_window(data: MiningData, config: MiningConfig, pairs: Pairs, window: Window, guard: Guard,
                 rng: np.random.Generator | None, provider: CandidateProvider) -> MinedPair | None:
    """One pair's negatives: chosen among the window's candidates the guard let through, then, if those are
    too few, the first candidates beyond the window it lets through (``provider.beyond``: the whole corpus with
    ``fill_beyond_window``, else only the clusters' fallback; ``None``: still too few)."""
    held_back = window.held_back
    if held_back is None:
        held_back = guard.screen_window(window.pair, window.candidates)
    chosen = choose(held_back, config, rng, presampled=provider.presampled)
    negatives = window.candidates[chosen].tolist()
    ranks = [None if r < 0 else r for r in window.ranks[chosen].tolist()]
    needed = config.num_negatives - len(negatives)
    extra, extra_ranks = _beyond_window(config, pairs, window, guard, provider, needed) if needed > 0 else ([], [])
    if len(negatives) + len(extra) < config.num_negatives:
        return None
    negatives += extra
    query_id, positive_id = pairs.ids(data, window.pair)
    return MinedPair(
        query_id=query_id,
        positive_id=positive_id,
        positive_score=float(pairs.scores[window.pair]),
        negative_ids=[data.doc_ids[i] for i in negatives],
        negative_scores=(data.doc_vectors[negatives] @ data.query_vectors[pairs.rows[window.pair]]).tolist(),
        negative_ranks=ranks + [None if r < 0 else r for r in extra_ranks],
        negative_clusters=provider.clustering.labels[negatives].tolist() if provider.clustering is not None else [],
        query_cluster=window.query_cluster,
        positive_cluster=window.positive_cluster,
        fallback=len(extra),
    )


def _beyond_window(config: MiningConfig, pairs: Pairs, window: Window, guard: Guard, provider: CandidateProvider,
                   needed: int) -> tuple[list[int], list[int]]:
    """The first ``needed`` candidates beyond ``window`` that the guard lets through, and their ranks, screened a
    growing block at a time: most pairs need a few, and the whole corpus is screened only when it must be."""
    candidates, ranks = provider.beyond(pairs, window, deep=config.fill_beyond_window)
    taken: list[int] = []
    taken_ranks: list[int] = []
    start, block = 0, 8 * config.num_negatives
    while len(taken) < needed and start < len(candidates):
        part = candidates[start:start + block]
        # Suspects are recorded in the windows only (and in the clusters' short fallback, as before filling).
        held_back = guard.screen_window(window.pair, part, record=not config.fill_beyond_window)
        usable = np.flatnonzero(~held_back)[: needed - len(taken)]
        taken += part[usable].tolist()
        taken_ranks += ranks[start:start + block][usable].tolist()
        start, block = start + block, block * 2
    return taken, taken_ranks


def ensemble_ranks(data: MiningData, pairs: Sequence[MinedPair], *, max_queries: int = 500, seed: int = 0) -> list[int]:
    """Each negative's rank in the ensemble's ranking of the whole corpus (relevant documents removed), on a sample of
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
            judged = {*data.positives.get(pair.query_id, []), *(data.relevant or {}).get(pair.query_id, [])}
            scores[[index_of[d] for d in judged if d in index_of]] = -np.inf
        ranks.extend(int(np.sum(scores > scores[index_of[d]])) for d in pair.negative_ids)
    return ranks
