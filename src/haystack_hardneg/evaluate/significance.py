"""Paired significance of one ranking system against another: per-query values from ranx, the tests from SciPy."""

from __future__ import annotations

from typing import Literal

from haystack_hardneg.evaluate.metrics import evaluate_run

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

    ``student`` is the paired t-test, ``fisher`` the randomisation (permutation) test: each query's pair of values
    swapped at random, ``permutations`` times, seeded, so the same call gives the same p-value (ranx's own
    randomisation test seeds only its main thread and reads 0 when no permutation is as extreme). Queries are
    paired by id; a query missing from a run scores 0 for it.
    """

    ours = evaluate_run(qrels, system, [metric], per_query=True)[metric]
    theirs = evaluate_run(qrels, baseline, [metric], per_query=True)[metric]
    return paired_test_on_values(ours, theirs, list(qrels), test=test, permutations=permutations, seed=seed)


def paired_test_on_values(
    ours: dict[str, float],
    theirs: dict[str, float],
    queries: list[str],
    *,
    test: StatTest = "student",
    permutations: int = 10_000,
    seed: int = 42,
) -> dict[str, float]:
    """:func:`paired_test` on per-query values already computed (query id -> value, e.g. from
    ``evaluate_run(..., per_query=True)``), paired over ``queries``: a report that has every system's per-query
    values tests many pairs without ranking each run again."""
    import numpy as np
    from scipy.stats import permutation_test, ttest_rel

    missing = [q for q in queries if q not in ours or q not in theirs]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(queries)} paired queries have no value in one of the two "
                         f"systems (e.g. {missing[0]!r}): compute both over the same qrels.")
    x = np.array([ours[q] for q in queries])
    y = np.array([theirs[q] for q in queries])
    if np.array_equal(x, y):  # every per-query difference is zero: nothing to tell apart
        p_value = 1.0
    elif test == "student":
        p_value = float(ttest_rel(x, y, alternative="two-sided").pvalue)
        if p_value != p_value:  # NaN: a single query, no variance to test against
            p_value = 1.0
    elif test == "fisher":
        p_value = float(permutation_test(
            (x, y), lambda a, b, axis: np.mean(a - b, axis=axis), permutation_type="samples", vectorized=True,
            n_resamples=permutations, alternative="two-sided", rng=np.random.default_rng(seed)).pvalue)
    else:
        raise ValueError(f"test must be 'student' or 'fisher', not {test!r}")
    return {"system": float(x.mean()), "baseline": float(y.mean()), "difference": float(x.mean() - y.mean()),
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
