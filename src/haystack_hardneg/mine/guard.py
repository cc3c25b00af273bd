"""False-negative guard: candidates that look as relevant as the positive are held back, not used.

Beyond the paper; the rule follows NV-Retriever's positive-aware mining (Moreira et al., 2024, "TopK-PercPos"):
a candidate whose ensemble score exceeds ``ratio`` x the positive's score is likely an unlabelled positive.
A second, ensemble-specific rule: a candidate that *every* member ranks above the positive is suspect too.
Suspects are reported per query for a person to review (the paper's "identify additional positives").

Which positive, when a query has several: by default each (query, positive) pair's own, so a pair is screened
against the document it trains beside (``MiningConfig.guard_reference="pair"``); ``"lowest"`` takes the query's
lowest-scoring positive for all its pairs, NV-Retriever's choice, which holds back more. Documents judged
relevant are never candidates at all, whatever their grade.

The guard screens every strategy's candidate windows alike (``Guard``). A held-back candidate is recorded as a
suspected positive when the scan reaches it before it has ``num_negatives`` negatives (with ``sampling="random"``,
which may take any eligible candidate, every one is): those are the documents that would have been trained on as
negatives. Later ones were never in question.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.mine.data import MiningData, Pairs

# The guard's rules, in the order their names are joined when several hold a candidate back.
GUARD_RULES: tuple[str, ...] = ("score_ratio", "score_margin", "max_score", "all_members_above")


def suspected_false_negatives(
    candidate_scores: np.ndarray,
    positive_score: float | np.ndarray,
    *,
    ratio: float | None = 0.95,
    margin: float | None = None,
    max_score: float | None = None,
    member_candidate_scores: np.ndarray | None = None,
    member_positive_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidates to hold back, and why.

    :param candidate_scores: ensemble scores of the candidates (``c``), or of many pairs' candidates (``p x c``).
    :param positive_score: the positive's ensemble score for the same query (``p x 1`` for many pairs).
    :param ratio: hold back candidates scoring above ``ratio * positive_score`` (a relative margin).
    :param margin: hold back candidates scoring above ``positive_score - margin`` (an absolute margin).
    :param max_score: hold back candidates scoring above ``max_score``, whatever the positive's.
    :param member_candidate_scores: ``m x c`` (or ``m x p x c``) per-member scores of the candidates: those every
        member scores above the positive are held back.
    :param member_positive_scores: ``m`` (or ``m x p``) per-member scores of the positive.
    Each rule is off where its argument is ``None``.
    :returns: a boolean mask over the candidates and, per candidate, the rules that held it back joined by ``+``
        in ``GUARD_RULES`` order (``""`` when kept), both shaped like ``candidate_scores``.
    """
    scores = np.asarray(candidate_scores, dtype=np.float64)
    positive = np.asarray(positive_score, dtype=np.float64)
    rules = {name: np.zeros(scores.shape, dtype=bool) for name in GUARD_RULES}
    if ratio is not None:
        if not 0 < ratio <= 1.5:
            raise ValueError(f"guard ratio must be in (0, 1.5], got {ratio}.")
        rules["score_ratio"] = scores > ratio * positive
    if margin is not None:
        rules["score_margin"] = scores > positive - margin
    if max_score is not None:
        rules["max_score"] = scores > max_score
    if member_candidate_scores is not None and member_positive_scores is not None and len(member_positive_scores) > 1:
        rules["all_members_above"] = np.all(np.asarray(member_candidate_scores)
                                            > np.expand_dims(member_positive_scores, -1), axis=0)
    reasons = np.full(scores.shape, "", dtype=object)
    for name, held in rules.items():
        reasons = np.where(held, np.where(reasons == "", name, reasons + "+" + name), reasons)
    return np.logical_or.reduce(list(rules.values())), reasons


@dataclass
class Verdict:
    """The guard's verdict on ``pairs x c`` candidates (document indices, -1 = padding, never held back)."""

    scores: np.ndarray  # the candidates' ensemble scores (-inf at padding)
    held_back: np.ndarray
    reasons: np.ndarray  # why each held-back candidate is suspect ("" for the others)


def screen_candidates(data: MiningData, config: MiningConfig, use_members: bool, pairs: Pairs,
                      pair_ids: np.ndarray, candidates: np.ndarray, *, known_scores: np.ndarray | None = None,
                      chunk: int = 512) -> Verdict:
    """The guard's verdict on ``candidates`` (one row per pair of ``pair_ids``), computed ``chunk`` pairs at a time
    so that memory stays bounded. ``known_scores``: the candidates' ensemble scores when the caller has them
    already (the ensemble ranking), which spares gathering their vectors."""
    scores = np.full(candidates.shape, -np.inf, dtype=np.float32)
    held_back = np.zeros(candidates.shape, dtype=bool)
    reasons = np.full(candidates.shape, "", dtype=object)
    for start in range(0, len(pair_ids), chunk):
        block = slice(start, start + chunk)
        ids = pair_ids[block]
        valid = candidates[block] >= 0
        safe = np.where(valid, candidates[block], 0)
        queries = data.query_vectors[pairs.rows[ids]]
        if known_scores is not None:
            block_scores = known_scores[block]
        else:
            block_scores = np.matmul(data.doc_vectors[safe], queries[:, :, None])[:, :, 0]
        member_scores = member_positive = None
        if use_members:
            member_scores, member_positive = _member_scores(data, safe, queries, pairs.guard_positives[ids])
        block_mask, block_reasons = suspected_false_negatives(
            block_scores, pairs.guard_scores[ids][:, None], ratio=config.guard_ratio, margin=config.guard_margin,
            max_score=config.guard_max_score,
            member_candidate_scores=member_scores, member_positive_scores=member_positive,
        )
        scores[block] = np.where(valid, block_scores, -np.inf)
        held_back[block] = block_mask & valid
        reasons[block] = np.where(valid & block_mask, block_reasons, "")
    return Verdict(scores, held_back, reasons)


def _member_scores(data: MiningData, candidates: np.ndarray, queries: np.ndarray,
                   positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each member's cosines of the candidates (``m x pairs x c``) and of the positives (``m x pairs``), read
    from the member's columns of the concatenated ensemble vectors."""
    member_scores, member_positive = [], []
    for (a, b), weight in zip(data.member_slices, data.member_weights):
        member_scores.append(np.matmul(data.doc_vectors[candidates, a:b], queries[:, a:b, None])[:, :, 0] / weight)
        member_positive.append(np.einsum("pd,pd->p", data.doc_vectors[positives, a:b], queries[:, a:b]) / weight)
    return np.stack(member_scores), np.stack(member_positive)


class Guard:
    """The false-negative guard of one mining run, and the suspected positives it has found so far."""

    def __init__(self, data: MiningData, config: MiningConfig, pairs: Pairs):
        self.data, self.config, self.pairs = data, config, pairs
        self.use_members = (config.guard_member_agreement and data.member_slices is not None
                            and len(data.member_slices) > 1)
        self._suspects: dict[str, dict[str, dict]] = {}
        # Candidates held back where a pair would have trained on them, by rule (one may count for several).
        self.held_back_by_rule: dict[str, int] = {}

    def screen(self, pair_ids: np.ndarray, candidates: np.ndarray, *,
               known_scores: np.ndarray | None = None, record: bool = True) -> Verdict:
        """The verdict on ``candidates`` (``pairs x c`` in scan order) of the pairs ``pair_ids``; with ``record``,
        suspects are recorded (and counted by rule) up to where the scan stops."""
        verdict = screen_candidates(self.data, self.config, self.use_members, self.pairs, pair_ids,
                                    candidates, known_scores=known_scores)
        if record:
            self._record(pair_ids, candidates, verdict)
        return verdict

    def screen_window(self, pair: int, candidates: np.ndarray, *, record: bool = True) -> np.ndarray:
        """Which of one pair's ``candidates`` (in scan order) are held back. Beyond the rank window (``record``
        off) nothing is recorded: there a low-scoring positive can make most of the corpus look like its
        equals, and those are neither suspects worth a person's review nor the guard's work in the window."""
        if len(candidates) == 0:
            return np.zeros(0, dtype=bool)
        return self.screen(np.array([pair]), candidates[None, :], record=record).held_back[0]

    def _record(self, pair_ids: np.ndarray, candidates: np.ndarray, verdict: Verdict) -> None:
        usable = (candidates >= 0) & ~verdict.held_back
        if self.config.sampling == "random":
            reached = np.ones_like(verdict.held_back)
        else:
            reached = np.cumsum(usable, axis=1) - usable < self.config.num_negatives
        rows, columns = np.nonzero(verdict.held_back & reached)
        for reason in verdict.reasons[rows, columns].tolist():
            for rule in str(reason).split("+"):
                self.held_back_by_rule[rule] = self.held_back_by_rule.get(rule, 0) + 1
        found = pair_ids[rows]
        query_ids, doc_ids, suspects = self.data.query_ids, self.data.doc_ids, self._suspects
        for query, doc, score, positive, positive_score, reason in zip(
                self.pairs.rows[found].tolist(), candidates[rows, columns].tolist(),
                verdict.scores[rows, columns].tolist(), self.pairs.guard_positives[found].tolist(),
                self.pairs.guard_scores[found].tolist(), verdict.reasons[rows, columns].tolist()):
            # A document held back for several of a query's positives is reported once, for the first.
            suspects.setdefault(query_ids[query], {}).setdefault(doc_ids[doc], {
                "doc_id": doc_ids[doc], "score": score, "positive_id": doc_ids[positive],
                "positive_score": positive_score, "reason": str(reason),
            })

    def suspected_positives(self) -> dict[str, list[dict]]:
        """Per query, its suspects, highest ensemble score first."""
        return {q: sorted(v.values(), key=lambda e: -e["score"]) for q, v in self._suspects.items()}
