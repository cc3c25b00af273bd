import math

import pytest

from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.evaluate.significance import holm_adjusted, paired_test, paired_test_on_values

QRELS = {"a": {"d1": 1}, "b": {"d2": 1, "d3": 1}}
RUN = {"a": {"d1": 0.9, "x": 0.5}, "b": {"x": 0.9, "d3": 0.8}}


def test_metric_values_on_a_hand_made_ranking():
    metrics = evaluate_run(QRELS, RUN)
    # a: the relevant document first. b: one of two relevant documents, at rank 2.
    ndcg_b = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert metrics["ndcg@10"] == pytest.approx((1 + ndcg_b) / 2)
    assert metrics["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["precision@1"] == pytest.approx(0.5)
    assert metrics["precision@5"] == pytest.approx((1 / 5 + 1 / 5) / 2)
    assert metrics["recall@100"] == pytest.approx((1 + 0.5) / 2)
    per_query = evaluate_run(QRELS, RUN, per_query=True)
    assert per_query["mrr@10"] == pytest.approx({"a": 1.0, "b": 0.5})


def test_ids_of_any_length_keep_ranxs_tie_order_and_compile_once():
    from ranx.data_structures.common import create_bulk

    # Tied scores keep the ranking's order (x, then the long id, then a), as ranx keeps it; graded judgements.
    qrels = {"q1": {"a": 2, "long-document-id-17": 1}, "q2": {"b2": 1}}
    run = {"q1": {"x": 0.5, "long-document-id-17": 0.5, "a": 0.5}, "q2": {"b3": 0.3, "b2": 0.3, "b4": 0.9}}
    per_query = evaluate_run(qrels, run, ["ndcg@10", "mrr@10"], per_query=True)
    assert per_query["mrr@10"] == pytest.approx({"q1": 1 / 2, "q2": 1 / 3})
    ideal = 2 + 1 / math.log2(3)
    assert per_query["ndcg@10"]["q1"] == pytest.approx((1 / math.log2(3) + 2 / math.log2(4)) / ideal)
    # Another data set's ids, of other widths: numba compiles nothing more.
    compiled = len(create_bulk.signatures)
    evaluate_run({"q": {"doc-000000001": 1}}, {"q": {"doc-000000001": 0.2, "7": 0.4}}, ["ndcg@10"])
    assert len(create_bulk.signatures) == compiled


def test_queries_without_results_count_as_zero():
    assert evaluate_run(QRELS, {"a": {"d1": 1.0}})["mrr@10"] == pytest.approx(0.5)


@pytest.mark.parametrize("test", ["student", "fisher"])
def test_paired_test_tells_a_clear_win_from_no_difference(test):
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(60)}
    better = {f"q{i}": {f"d{i}": 1.0, "x": 0.5} for i in range(60)}
    worse = {f"q{i}": ({"x": 1.0, f"d{i}": 0.5} if i % 3 else {f"d{i}": 1.0}) for i in range(60)}
    win = paired_test(qrels, better, worse, "mrr@10", test=test, permutations=2000)
    assert win["difference"] == pytest.approx(40 * 0.5 / 60)
    assert win["p_value"] < 0.001
    same = paired_test(qrels, better, better, "mrr@10", test=test, permutations=2000)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    # One query of sixty better by chance is not significant.
    one_off = dict(worse)
    one_off["q1"] = {"d1": 1.0}
    assert paired_test(qrels, one_off, worse, "mrr@10", test=test, permutations=2000)["p_value"] > 0.05


def test_the_randomisation_test_never_reads_zero_and_repeats_itself():
    # No resampled swap of a clear win is as extreme as the observed one: the p-value is about 1 / (n + 1), not 0.
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(60)}
    better = {f"q{i}": {f"d{i}": 1.0, "x": 0.5} for i in range(60)}
    worse = {f"q{i}": {"x": 1.0, f"d{i}": 0.5} for i in range(60)}
    assert 0 < paired_test(qrels, better, worse, "mrr@10", test="fisher", permutations=999)["p_value"] <= 2 / 1000
    # A borderline case gives the same p-value on every call with the same seed (ranx's own test does not).
    mixed = {f"q{i}": (better if i % 5 in (0, 1, 2) else worse)[f"q{i}"] for i in range(60)}
    flipped = {f"q{i}": (worse if i % 5 in (0, 1, 2) else better)[f"q{i}"] for i in range(60)}
    p_values = {paired_test(qrels, mixed, flipped, "mrr@10", test="fisher", permutations=2000)["p_value"]
                for _ in range(3)}
    assert len(p_values) == 1 and 0.05 < p_values.pop() < 1


@pytest.mark.parametrize("test", ["student", "fisher"])
def test_paired_test_on_per_query_values_matches_the_test_on_runs(test):
    # What the report does: per-query values computed once, then tested pair by pair.
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(40)}
    better = {f"q{i}": {f"d{i}": 1.0, "x": 0.5} for i in range(40)}
    worse = {f"q{i}": ({"x": 1.0, f"d{i}": 0.5} if i % 4 else {f"d{i}": 1.0}) for i in range(40)}
    ours = evaluate_run(qrels, better, ["mrr@10"], per_query=True)["mrr@10"]
    theirs = evaluate_run(qrels, worse, ["mrr@10"], per_query=True)["mrr@10"]
    on_values = paired_test_on_values(ours, theirs, list(qrels), test=test, permutations=999)
    assert on_values == paired_test(qrels, better, worse, "mrr@10", test=test, permutations=999)
    assert on_values["difference"] == pytest.approx(30 * 0.5 / 40)
    # A query one side never scored is an error, not a silent zero or a dropped pair.
    del theirs["q7"]
    with pytest.raises(ValueError, match="q7"):
        paired_test_on_values(ours, theirs, list(qrels), test=test)


def test_holm_adjustment_on_a_known_family():
    # Sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04, then never decreasing -> 0.03, 0.06, 0.06.
    assert holm_adjusted([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjusted([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjusted([]) == []


def test_grades_change_ndcg_as_they_should():
    # Two relevant documents; the run puts the grade-1 one first.
    run = {"q": {"weak": 0.9, "strong": 0.8, "x": 0.1}}
    graded = evaluate_run({"q": {"strong": 2, "weak": 1}}, run)["ndcg@10"]
    flat = evaluate_run({"q": {"strong": 1, "weak": 1}}, run)["ndcg@10"]
    swapped = evaluate_run({"q": {"strong": 2, "weak": 1}}, {"q": {"strong": 0.9, "weak": 0.8, "x": 0.1}})["ndcg@10"]
    assert flat == pytest.approx(1.0) and swapped == pytest.approx(1.0)
    assert graded < flat  # the stronger document below a weaker one costs only with grades
    assert evaluate_run({"q": {"strong": 2, "weak": 1}}, run)["mrr@10"] == pytest.approx(1.0)


def test_candidate_records_carry_grades_into_the_qrels():
    from haystack_hardneg.mine.candidates import record_qrels

    assert record_qrels({"positive_ids": ["a"], "relevance": {"a": 2, "b": 1}}) == {"a": 2, "b": 1}
    assert record_qrels({"positive_ids": ["a", "b"]}) == {"a": 1, "b": 1}
