import pytest

from haystack_hardneg.evaluate.selection import choose_setting, choose_setting_within_one_se

QUERIES = [f"q{i}" for i in range(20)]
QRELS = {q: {"relevant": 1} for q in QUERIES}


def _run(first_for: set[str]) -> dict[str, dict[str, float]]:
    """The relevant document first for the queries in ``first_for``, second for the rest."""
    return {q: {"relevant": 2.0 if q in first_for else 1.0, "other": 1.5} for q in QUERIES}


def test_a_setting_ahead_by_noise_gives_way_to_the_one_nearer_the_prior():
    balanced = set(QUERIES[:10])
    # Ahead by one query net: better on two, worse on one. Nothing a 20-query slice can tell apart.
    runs = {0.5: _run(balanced), 0.7: _run(balanced - {"q0"} | {"q10", "q11"}), 0.3: _run(set(QUERIES[:4]))}
    plain, _ = choose_setting(QRELS, runs, metric="mrr@10")
    chosen, best, measured = choose_setting_within_one_se(QRELS, runs, towards=0.5, metric="mrr@10")
    assert plain == best == 0.7
    assert chosen == 0.5
    assert measured[0.7]["mrr@10"] == pytest.approx(0.75 + 0.025)


def test_a_setting_clearly_ahead_is_kept():
    runs = {0.5: _run(set(QUERIES[:4])), 0.7: _run(set(QUERIES[:16]))}  # better on 12 queries, worse on none
    chosen, best, _ = choose_setting_within_one_se(QRELS, runs, towards=0.5, metric="mrr@10")
    assert chosen == best == 0.7


def test_equal_settings_go_to_the_prior():
    same = _run(set(QUERIES[:10]))
    chosen, _, _ = choose_setting_within_one_se(QRELS, {0.2: same, 0.4: same, 0.9: same}, towards=0.5)
    assert chosen == 0.4


def _fusion_inputs(queries: list[str], relevant_first_by_ranker: bool):
    """First stage: the relevant document second. Re-ranker: first (or last) for every query."""
    qrels = {q: {"rel": 1} for q in queries}
    first = {q: {"top": 0.9, "rel": 0.8, "other": 0.1} for q in queries}
    ranker = {q: ({"rel": 0.9, "top": 0.2, "other": 0.1} if relevant_first_by_ranker else
                  {"rel": 0.0, "top": 0.9, "other": 0.8}) for q in queries}
    return qrels, first, ranker


def test_an_uninformative_validation_slice_keeps_the_first_stage_order():
    from haystack_hardneg.evaluate.selection import choose_fusion_alpha

    # One query scoring 0 everywhere: every weight ties; never the re-ranker alone.
    qrels = {"q": {"elsewhere": 1}}
    chosen = choose_fusion_alpha(qrels, {"q": {"a": 0.9, "b": 0.1}}, {"q": {"a": 0.2, "b": 0.8}})
    assert chosen["best_alpha"] == 0.0 and chosen["informative_queries"] == 0
    assert "first stage's order" in chosen["fallback"]
    # A re-ranker that wins on too few queries is not trusted either ...
    few = choose_fusion_alpha(*_fusion_inputs([f"q{i}" for i in range(3)], True), min_queries=10)
    assert few["argmax_alpha"] > 0 and few["best_alpha"] == 0.0 and few["fallback"]
    # ... but on enough it is, and the evidence is recorded.
    enough = choose_fusion_alpha(*_fusion_inputs([f"q{i}" for i in range(12)], True), min_queries=10)
    assert enough["best_alpha"] == enough["argmax_alpha"] > 0 and enough["fallback"] is None
    assert enough["informative_queries"] == 12


def test_tied_fusion_weights_go_to_the_first_stage_side():
    from haystack_hardneg.evaluate.selection import choose_fusion_alpha

    qrels, first, _ = _fusion_inputs([f"q{i}" for i in range(12)], True)
    same_order = {q: dict(scores) for q, scores in first.items()}  # the re-ranker agrees: every weight ties
    assert choose_fusion_alpha(qrels, first, same_order)["best_alpha"] == 0.0


def test_the_gain_test_allows_for_choosing_the_best_of_many_weights():
    import numpy as np

    from haystack_hardneg.evaluate.selection import gain_p_value

    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.2, size=(22, 10))  # ten weights, no real gain: the best mean is ahead by chance
    best = int(np.argmax(noise.mean(axis=0)))
    from scipy.stats import ttest_1samp

    naive = ttest_1samp(noise[:, best], 0, alternative="greater").pvalue
    assert gain_p_value(noise) > 0.05 and gain_p_value(noise) > 3 * naive
    assert gain_p_value(np.abs(noise) + 0.01) < 0.001  # every query gains
    assert gain_p_value(-np.abs(noise)) == 1.0 and gain_p_value(np.zeros((5, 3))) == 1.0
    assert gain_p_value(noise) == gain_p_value(noise)  # seeded


def _noisy_curve(queries: int, seed: int):
    """A re-ranker that helps some queries and hurts as many: the fused curve is flat up to noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    qrels, first, ranker = {}, {}, {}
    for i in range(queries):
        q = f"q{i}"
        qrels[q] = {"rel": 1}
        first[q] = {"a": 0.9, "rel": 0.8, "b": 0.7, "c": 0.1}
        up = rng.random() < 0.5
        ranker[q] = {"rel": 0.95 if up else 0.05, "a": rng.random(), "b": rng.random(), "c": rng.random()}
    return qrels, first, ranker


def test_a_flat_noisy_validation_curve_ships_weight_0_and_says_why():
    from haystack_hardneg.evaluate.selection import choose_fusion_alpha

    chosen = choose_fusion_alpha(*_noisy_curve(22, seed=1))
    assert chosen["argmax_alpha"] > 0  # the plain best is some weight above 0 ...
    assert chosen["best_alpha"] == 0.0  # ... but it does not ship
    assert chosen["p_value"] >= 0.05 and "significantly" in chosen["fallback"] and "weight 0" in chosen["fallback"]
    # The same re-ranker with its gains on every query ships its weight, on the evidence recorded.
    clear = choose_fusion_alpha(*_fusion_inputs([f"q{i}" for i in range(22)], True))
    assert clear["best_alpha"] > 0 and clear["fallback"] is None and clear["p_value"] < 0.001
    # A re-ranker that only hurts: weight 0, and the reason is given too.
    worse = choose_fusion_alpha(*_fusion_inputs([f"q{i}" for i in range(22)], False))
    assert worse["best_alpha"] == 0.0 and "did not improve" in worse["fallback"]
    assert choose_fusion_alpha(*_noisy_curve(22, seed=1), significance=None)["best_alpha"] == chosen["argmax_alpha"]
