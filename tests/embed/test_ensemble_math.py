import numpy as np
import pytest

from haystack_hardneg.embed.ensemble import MemberSpec, combine, ensemble_identity


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_concat_dot_product_is_weighted_average_of_member_cosines():
    rng = np.random.default_rng(0)
    small_q, small_d = rng.normal(size=(4, 3)), rng.normal(size=(6, 3))
    large_q, large_d = rng.normal(size=(4, 7)), rng.normal(size=(6, 7))
    weights = [1.0, 3.0]
    queries = combine([small_q, large_q], weights)
    documents = combine([small_d, large_d], weights)
    expected = 0.25 * _cosines(small_q, small_d) + 0.75 * _cosines(large_q, large_d)
    np.testing.assert_allclose(queries @ documents.T, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-6)
    assert documents.shape == (6, 10)


def test_mean_mode_averages_normalised_vectors_and_needs_one_dimension():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    mean = combine([a, b], [1, 1], mode="mean")
    unit_a, unit_b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    direction = (unit_a + unit_b) / np.linalg.norm(unit_a + unit_b, axis=1, keepdims=True)
    np.testing.assert_allclose(mean, direction, atol=1e-6)
    with pytest.raises(ValueError, match="one dimension"):
        combine([a, rng.normal(size=(5, 3))], [1, 1], mode="mean")


@pytest.mark.parametrize("bad", [np.zeros((1, 3)), np.array([[np.nan, 1.0, 0.0]])])
def test_zero_or_nan_vectors_are_rejected(bad):
    with pytest.raises(ValueError, match="zeros|NaN"):
        combine([bad], [1.0])


def test_member_spec_validation():
    with pytest.raises(ValueError, match="weight"):
        MemberSpec(model="m", weight=0)
    with pytest.raises(ValueError, match="Unknown ensemble member field"):
        MemberSpec.coerce({"model": "m", "wieght": 2})
    assert MemberSpec.coerce("m") == MemberSpec(model="m")


def test_identity_changes_with_models_weights_and_mode_but_not_with_prompts_or_path_when_fingerprinted():
    members = [MemberSpec("a"), MemberSpec("b")]
    base = ensemble_identity(members, "concat", [3, 3], ["fa", "fb"])
    assert base.key == ensemble_identity(members, "concat", [3, 3], ["fa", "fb"]).key
    assert base.key != ensemble_identity([MemberSpec("a", 2), MemberSpec("b")], "concat", [3, 3], ["fa", "fb"]).key
    assert base.key != ensemble_identity(members, "mean", [3, 3], ["fa", "fb"]).key
    # Prompts and max length change the encoding, not the space: an indexing spec with only the document prompt
    # and a query spec with only the query prompt are one ensemble.
    documents_side = [MemberSpec("a", document_prompt="passage: ", max_seq_length=128), MemberSpec("b")]
    queries_side = [MemberSpec("a", query_prompt="query: "), MemberSpec("b")]
    assert (ensemble_identity(documents_side, "concat", [3, 3], ["fa", "fb"]).key
            == ensemble_identity(queries_side, "concat", [3, 3], ["fa", "fb"]).key == base.key)
    moved = [MemberSpec("/elsewhere/a"), MemberSpec("b")]
    assert base.key == ensemble_identity(moved, "concat", [3, 3], ["fa", "fb"]).key
    assert base.key != ensemble_identity(members, "concat", [3, 3], ["other", "fb"]).key
