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
