"""False-negative guard: candidates that look as relevant as the positive are held back, not used.

Beyond the paper; the rule follows NV-Retriever's positive-aware mining (Moreira et al., 2024, "TopK-PercPos"):
a candidate whose ensemble score exceeds ``ratio`` x the positive's score is likely an unlabelled positive.
A second, ensemble-specific rule: a candidate that *every* member ranks above the positive is suspect too.
Suspects are reported per query for a person to review (the paper's "identify additional positives").

Which positive, when a query has several: by default each (query, positive) pair's own, so a pair is screened
against the document it trains beside (``MiningConfig.guard_reference="pair"``); ``"lowest"`` takes the query's
lowest-scoring positive for all its pairs, NV-Retriever's choice, which holds back more. Documents judged
relevant are never candidates at all, whatever their grade.
"""

from __future__ import annotations

import numpy as np


def suspected_false_negatives(
    candidate_scores: np.ndarray,
    positive_score: float | np.ndarray,
    *,
    ratio: float | None = 0.95,
    member_candidate_scores: np.ndarray | None = None,
    member_positive_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Which candidates to hold back, and why.

    :param candidate_scores: ensemble scores of the candidates (``c``), or of many pairs' candidates (``p x c``).
    :param positive_score: the positive's ensemble score for the same query (``p x 1`` for many pairs).
    :param ratio: hold back candidates scoring above ``ratio * positive_score``; ``None`` turns the rule off.
    :param member_candidate_scores: ``m x c`` (or ``m x p x c``) per-member scores of the candidates
        (``None``: rule off).
    :param member_positive_scores: ``m`` (or ``m x p``) per-member scores of the positive.
    :returns: a boolean mask over the candidates and, per candidate, the reason (``""`` when kept), both
        shaped like ``candidate_scores``.
    """
    candidate_scores = np.asarray(candidate_scores, dtype=np.float64)
    by_ratio = np.zeros(candidate_scores.shape, dtype=bool)
    if ratio is not None:
        if not 0 < ratio <= 1.5:
            raise ValueError(f"guard ratio must be in (0, 1.5], got {ratio}.")
        by_ratio = candidate_scores > ratio * np.asarray(positive_score, dtype=np.float64)
    by_members = np.zeros(candidate_scores.shape, dtype=bool)
    if member_candidate_scores is not None and member_positive_scores is not None and len(member_positive_scores) > 1:
        by_members = np.all(np.asarray(member_candidate_scores) > np.expand_dims(member_positive_scores, -1), axis=0)
    reasons = np.where(by_ratio & by_members, "score_ratio+all_members_above",
                       np.where(by_ratio, "score_ratio", np.where(by_members, "all_members_above", "")))
    return by_ratio | by_members, reasons
