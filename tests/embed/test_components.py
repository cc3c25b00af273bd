import numpy as np
import pytest
from haystack import Document
from haystack.utils import ComponentDevice
from sentence_transformers import SentenceTransformer

from haystack_hardneg import EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.embed.encoder import ModelNotFoundError

TEXTS = ["cats purr and dogs bark", "the vaccine reduced infection risk", "tumor growth signaling pathway"]


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_ensemble_scores_equal_weighted_average_of_real_member_cosines(tiny_model, tiny_model_b):
    embedder = EnsembleDocumentEmbedder(members=[{"model": tiny_model, "weight": 1},
                                                 {"model": tiny_model_b, "weight": 3}],
                                        progress_bar=False)
    embedder.warm_up()
    vectors = np.array([d.embedding for d in embedder.run([Document(content=t) for t in TEXTS])["documents"]])
    assert vectors.shape == (3, 32 + 48)
    unit_a = _unit(SentenceTransformer(tiny_model).encode(TEXTS))
    cos_a = unit_a @ unit_a.T
    member_b = _unit(SentenceTransformer(tiny_model_b).encode(TEXTS))
    expected = 0.25 * cos_a + 0.75 * (member_b @ member_b.T)
    np.testing.assert_allclose(vectors @ vectors.T, expected, atol=1e-5)


def test_empty_documents_are_skipped_and_inputs_are_not_mutated(tiny_model):
    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    embedder.warm_up()
    docs = [Document(content="cats purr", meta={"k": 1}), Document(content="   "), Document(content=None)]
    result = embedder.run(docs)
    assert result["skipped"] == 2
    assert len(result["documents"]) == 1
    assert docs[0].embedding is None and docs[0].meta == {"k": 1}
    assert result["documents"][0].meta["k"] == 1
    assert result["documents"][0].meta["ensemble_id"] == embedder.ensemble_id


def test_meta_fields_are_embedded_before_the_content(tiny_model):
    plain = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    titled = EnsembleDocumentEmbedder(members=[tiny_model], meta_fields_to_embed=["title"], embedding_separator=" ",
                                      progress_bar=False)
    plain.warm_up(), titled.warm_up()
    doc = Document(content="blood pressure", meta={"title": "heart"})
    with_title = titled.run([doc])["documents"][0].embedding
    assert with_title == pytest.approx(plain.run([Document(content="heart blood pressure")])["documents"][0].embedding,
                                       abs=1e-6)


def test_query_prompt_is_used_for_queries_only(tiny_model):
    members = [{"model": tiny_model, "query_prompt": "query: ", "document_prompt": "passage: "}]
    text_embedder = EnsembleTextEmbedder(members=members)
    doc_embedder = EnsembleDocumentEmbedder(members=members, progress_bar=False)
    text_embedder.warm_up(), doc_embedder.warm_up()
    model = SentenceTransformer(tiny_model)
    query = text_embedder.run("cancer risk")["embedding"]
    document = doc_embedder.run([Document(content="cancer risk")])["documents"][0].embedding
    np.testing.assert_allclose(query, _unit(model.encode("query: cancer risk")), atol=1e-5)
    np.testing.assert_allclose(document, _unit(model.encode("passage: cancer risk")), atol=1e-5)


def test_serialization_round_trip(tiny_model, tiny_model_b):
    members = [{"model": tiny_model, "weight": 2.0, "query_prompt": "q: ", "max_seq_length": 16, "batch_size": 4},
               {"model": tiny_model_b}]
    for component in (
        EnsembleDocumentEmbedder(members=members, combine="concat", cache_dir="/tmp/x", meta_fields_to_embed=["title"],
                                 embedding_separator=" "),
        EnsembleTextEmbedder(members=members, cache_dir=None, device=ComponentDevice.from_str("cpu")),
    ):
        data = component.to_dict()
        restored = type(component).from_dict(data)
        assert restored.to_dict() == data
        assert restored.members == component.members
    assert data["init_parameters"]["members"][0]["weight"] == 2.0


def test_identical_ensembles_share_an_id_and_different_weights_do_not(tiny_model, tiny_model_b):
    def ensemble_id(weights):
        e = EnsembleTextEmbedder(members=[{"model": tiny_model, "weight": weights[0]},
                                          {"model": tiny_model_b, "weight": weights[1]}])
        e.warm_up()
        return e.run("heart")["ensemble_id"]

    assert ensemble_id((1, 1)) == ensemble_id((2, 2))  # weights are normalised
    assert ensemble_id((1, 1)) != ensemble_id((1, 2))


def test_missing_model_folder_fails_at_construction(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        EnsembleDocumentEmbedder(members=[str(tmp_path / "no-such-model")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no model"):
        EnsembleTextEmbedder(members=[str(tmp_path / "empty")])


def test_mean_mode_refuses_members_of_different_dimensions(tiny_model, tiny_model_b):
    embedder = EnsembleDocumentEmbedder(members=[tiny_model, tiny_model_b], combine="mean")
    with pytest.raises(ValueError, match="one dimension"):
        embedder.warm_up()


def test_run_before_warm_up_says_so(tiny_model):
    with pytest.raises(RuntimeError, match="warm_up"):
        EnsembleTextEmbedder(members=[tiny_model]).run("query")


def test_cache_serves_repeated_texts_without_encoding(tiny_model, tmp_path):
    docs = [Document(content=t) for t in TEXTS]
    first = EnsembleDocumentEmbedder(members=[tiny_model], cache_dir=str(tmp_path), progress_bar=False)
    first.warm_up()
    vectors = [d.embedding for d in first.run(docs)["documents"]]
    assert (first.encoder.cache.hits, first.encoder.cache.misses) == (0, 3)

    # A new embedder (as in a second indexing run) finds every text in the cache and encodes nothing.
    second = EnsembleDocumentEmbedder(members=[tiny_model], cache_dir=str(tmp_path), progress_bar=False)
    second.warm_up()
    calls = []
    model = second.encoder.backends[0].model
    original = model.encode
    model.encode = lambda *a, **k: calls.append(a) or original(*a, **k)
    again = [d.embedding for d in second.run(docs)["documents"]]
    assert calls == []
    assert (second.encoder.cache.hits, second.encoder.cache.misses) == (3, 0)
    np.testing.assert_allclose(again, vectors)

    # A text the cache has not seen is encoded.
    second.run([Document(content="brand new text about mice")])
    assert len(calls) == 1
