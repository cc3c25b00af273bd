"""Paired significance of one ranking system against another, through ranx's statistical tests."""

from __future__ import annotations

from typing import Literal

StatTest = Literal["student", "fisher"]


def paired_test(
    qrels: dict[str, dict[str, int]],
    system: dict[str, dict[str, float]],
    baseline: dict[str, dict[str, float]],
    metric: str = "ndcg@10",
    *,
    test: StatTest = "student",
    permutations: int = 10_000,
    seed: int = 42,
) -> dict[str, float]:
    """Mean ``metric`` of both systems, their difference and the two-sided p-value of a paired test.

    ``student`` is the paired t-test, ``fisher`` the randomisation (permutation) test. Queries are paired by id;
    a query missing from a run scores 0 for it.
    """
    from ranx import Qrels, Run, compare

    def run(ranking: dict[str, dict[str, float]], name: str) -> Run:
        full = {q: dict(ranking.get(q) or {"__no_result__": 0.0}) for q in qrels}
        return Run(full, name=name)

    report = compare(Qrels(qrels), [run(system, "system"), run(baseline, "baseline")], metrics=[metric],
                     stat_test=test, n_permutations=permutations, random_seed=seed, make_comparable=True,
                     rounding_digits=10)
    scores = report.to_dict()
    system_score = float(scores["system"]["scores"][metric])
    baseline_score = float(scores["baseline"]["scores"][metric])
    p_value = float(scores["system"]["comparisons"]["baseline"][metric])
    if p_value != p_value:  # NaN: every per-query difference is zero, nothing to tell apart
        p_value = 1.0
    elif test == "fisher":
        # ranx reports the share of permutations at least as extreme (count / n), which reads 0 when none is; the
        # observed assignment is one of the permutations, so (count + 1) / (n + 1) is the valid p-value.
        p_value = (round(p_value * permutations) + 1) / (permutations + 1)
    return {"system": system_score, "baseline": baseline_score, "difference": system_score - baseline_score,
            "p_value": p_value, "test": test}


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (family-wise error), in the input order: the k-th
    smallest is multiplied by (m - k + 1), and adjusted values never decrease along the sorted order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bootstrap_ci(values, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of per-query ``values``."""
    import numpy as np

    values = np.asarray(list(values), dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # In chunks of resamples: memory stays near chunk x n, whatever the number of queries.
    chunk = max(1, 2_000_000 // len(values))
    means = np.concatenate([values[rng.integers(0, len(values), size=(min(chunk, resamples - start), len(values)))]
                            .mean(axis=1) for start in range(0, resamples, chunk)])
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
