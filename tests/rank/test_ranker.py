import numpy as np
import pytest
import torch
from haystack import Document
from sentence_transformers import CrossEncoder

from haystack_hardneg import CrossEncoderRanker
from haystack_hardneg.embed.encoder import ModelNotFoundError
from haystack_hardneg.rank.passages import passages
from haystack_hardneg.scoring.fusion import fuse, min_max

QUERY = "vaccine infection risk in mice"
TEXTS = [
    "the vaccine reduced infection risk in mice",
    "tumor growth depends on a signaling pathway",
    "heart and kidney disease in clinical patients",
    "blood levels of the drug increased with dose",
]


@pytest.fixture(scope="module")
def cross_encoder_folder(tiny_model, tmp_path_factory):
    """A cross-encoder (tiny encoder + new scoring head) saved in the standard CrossEncoder format."""
    folder = tmp_path_factory.mktemp("ce") / "tiny-ce"
    CrossEncoder(tiny_model, num_labels=1).save(str(folder))
    return str(folder)


def _ranker(folder, **kwargs):
    ranker = CrossEncoderRanker(model=folder, **kwargs)
    ranker.warm_up()
    return ranker


def _docs():
    return [Document(id=f"d{i}", content=t, score=float(10 - i)) for i, t in enumerate(TEXTS)]


def test_orders_by_cross_encoder_score_like_haystacks_ranker(cross_encoder_folder):
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    ours = _ranker(cross_encoder_folder, top_k=4).run(query=QUERY, documents=_docs())["documents"]
    theirs = SentenceTransformersSimilarityRanker(model=cross_encoder_folder, top_k=4)
    theirs.warm_up()
    reference = theirs.run(query=QUERY, documents=_docs())["documents"]
    assert [d.id for d in ours] == [d.id for d in reference]
    np.testing.assert_allclose([d.score for d in ours], [d.score for d in reference], atol=1e-5)
    direct = CrossEncoder(cross_encoder_folder).predict([(QUERY, t) for t in TEXTS])
    assert [d.id for d in ours] == [f"d{i}" for i in np.argsort(-direct)]


def test_top_k_threshold_scale_and_duplicates(cross_encoder_folder):
    ranker = _ranker(cross_encoder_folder, top_k=2)
    docs = _docs()
    assert len(ranker.run(query=QUERY, documents=docs)["documents"]) == 2
    all_scored = ranker.run(query=QUERY, documents=docs, top_k=10)["documents"]
    assert all(0 <= d.score <= 1 for d in all_scored)
    middle = sorted(d.score for d in all_scored)[1]
    kept = ranker.run(query=QUERY, documents=docs, top_k=10, score_threshold=middle)["documents"]
    assert len(kept) == 3 and all(d.score >= middle for d in kept)
    logits = ranker.run(query=QUERY, documents=docs, top_k=10, scale_score=False)["documents"]
    np.testing.assert_allclose(sorted(1 / (1 + np.exp(-np.array([d.score for d in logits])))),
                               sorted(d.score for d in all_scored), atol=1e-6)
    duplicated = docs + [Document(id="d0", content=TEXTS[0], score=99.0)]
    out = ranker.run(query=QUERY, documents=duplicated, top_k=10)["documents"]
    assert sorted(d.id for d in out) == ["d0", "d1", "d2", "d3"]
    assert docs[0].score == 10.0  # inputs untouched
    with pytest.raises(ValueError, match="top_k"):
        ranker.run(query=QUERY, documents=docs, top_k=0)


def test_documents_without_content_come_last_unscored(cross_encoder_folder):
    ranker = _ranker(cross_encoder_folder, top_k=10)
    docs = [Document(id="empty", content=""), *_docs(), Document(id="none", content=None)]
    out = ranker.run(query=QUERY, documents=docs)["documents"]
    assert [d.id for d in out[-2:]] == ["empty", "none"] and out[-1].score is None
    assert all(d.score is not None for d in out[:-2])
    assert [d.id for d in ranker.run(query=QUERY, documents=docs, score_threshold=0.0)["documents"]] == \
        [d.id for d in out[:-2]]


def test_long_documents_are_scored_by_their_best_passage(cross_encoder_folder):
    long_text = " ".join(["heart kidney blood brain"] * 30 + [TEXTS[0]] + ["tumor growth pathway"] * 30)
    doc = Document(id="long", content=long_text)
    windows = passages(long_text, words=20, overlap=5)
    direct = CrossEncoder(cross_encoder_folder).predict([(QUERY, w) for w in windows],
                                                        activation_fn=torch.nn.Identity())
    for aggregation, expected in (("max", np.max(direct)), ("first", direct[0]), ("mean", np.mean(direct))):
        ranker = _ranker(cross_encoder_folder, passage_words=20, passage_overlap=5, aggregation=aggregation,
                         scale_score=False)
        assert ranker.run(query=QUERY, documents=[doc])["documents"][0].score == pytest.approx(expected, abs=1e-5)


def test_fusion_interpolates_normalised_scores(cross_encoder_folder):
    docs = _docs()
    retriever_order = [d.id for d in docs]
    ranked = _ranker(cross_encoder_folder, fusion_alpha=0.0).run(query=QUERY, documents=docs)["documents"]
    assert [d.id for d in ranked] == retriever_order
    alone = _ranker(cross_encoder_folder).run(query=QUERY, documents=docs)["documents"]
    only_ranker = _ranker(cross_encoder_folder, fusion_alpha=1.0).run(query=QUERY, documents=docs)["documents"]
    assert [d.id for d in only_ranker] == [d.id for d in alone]
    half = _ranker(cross_encoder_folder, fusion_alpha=0.5).run(query=QUERY, documents=docs)["documents"]
    ranker_scores = {d.id: d.score for d in alone}
    expected = fuse(np.array([ranker_scores[d.id] for d in docs]), np.array([d.score for d in docs]), 0.5)
    assert {d.id: d.score for d in half} == pytest.approx(dict(zip(retriever_order, expected)))


def test_fusion_math():
    np.testing.assert_allclose(min_max(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(min_max(np.array([5.0, 5.0])), [1.0, 1.0])
    np.testing.assert_allclose(fuse(np.array([0.0, 1.0]), np.array([1.0, 0.0]), 0.25), [0.75, 0.25])
    with pytest.raises(ValueError):
        fuse(np.array([1.0]), np.array([1.0]), 1.5)


def test_serialization_and_bad_arguments(cross_encoder_folder, tmp_path):
    from haystack.utils import ComponentDevice

    ranker = CrossEncoderRanker(model=cross_encoder_folder, top_k=3, passage_words=50, passage_overlap=10,
                                aggregation="mean", fusion_alpha=0.3, meta_fields_to_embed=["title"],
                                device=ComponentDevice.from_str("cpu"), model_kwargs={"torch_dtype": "float32"})
    restored = CrossEncoderRanker.from_dict(ranker.to_dict())
    assert restored.to_dict() == ranker.to_dict()
    assert restored.device.to_torch_str() == "cpu"
    import torch

    typed = CrossEncoderRanker(model=cross_encoder_folder, model_kwargs={"torch_dtype": torch.float16})
    assert typed.to_dict()["init_parameters"]["model_kwargs"] == {"torch_dtype": "torch.float16"}
    assert typed.model_kwargs == {"torch_dtype": torch.float16}  # serialising leaves the live component alone
    assert CrossEncoderRanker.from_dict(typed.to_dict()).model_kwargs == {"torch_dtype": torch.float16}
    with pytest.raises(ModelNotFoundError):
        CrossEncoderRanker(model=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="aggregation"):
        CrossEncoderRanker(model=cross_encoder_folder, aggregation="median")
