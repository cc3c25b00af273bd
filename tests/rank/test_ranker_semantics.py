"""What a user swapping Haystack's ranker for ours meets: the stock semantics unless fusion is configured, and a
WARNING whenever it does something else (a stored weight set aside, a weight of 0)."""

import json
import logging

import pytest
from haystack import Document
from sentence_transformers import CrossEncoder

from haystack_hardneg import CrossEncoderRanker

QUERY = "city in Germany"


@pytest.fixture(scope="module")
def trained_folder(tiny_model, tmp_path_factory):
    """A cross-encoder folder as training leaves it: with a fusion weight chosen on its own first stage."""
    folder = tmp_path_factory.mktemp("trained") / "model"
    CrossEncoder(tiny_model, num_labels=1).save(str(folder))
    stored = {"fusion_alpha": 0.3, "first_stage_name": "runs/mine/candidates.jsonl"}
    (folder / "hardneg.json").write_text(json.dumps(stored))
    return str(folder)


def _docs():
    return [Document(id="berlin", content="Berlin is in Germany", score=3.0),
            Document(id="paris", content="Paris is in France", score=5.0),
            Document(id="rome", content="Rome is the capital of Italy", score=1.0)]


def _stock(folder, **kwargs):
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    ranker = SentenceTransformersSimilarityRanker(model=folder, **kwargs)
    ranker.warm_up()
    return ranker


def _pairs(documents):
    return [(d.id, round(d.score, 4)) for d in documents]


@pytest.mark.parametrize("threshold", [None, 0.0, 0.45, 0.5, 0.55, 0.6, 1.0])
def test_a_trained_folder_behind_an_unknown_retriever_ranks_as_the_stock_ranker(trained_folder, threshold, caplog):
    stock = _stock(trained_folder, top_k=3).run(query=QUERY, documents=_docs(), score_threshold=threshold)
    with caplog.at_level(logging.WARNING):
        ours = CrossEncoderRanker(model=trained_folder, top_k=3).run(query=QUERY, documents=_docs(),
                                                                     score_threshold=threshold)
    assert _pairs(ours["documents"]) == _pairs(stock["documents"])
    assert all(d.meta["cross_encoder_score"] == d.score for d in ours["documents"])
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("hardneg.json holds the fusion weight 0.3" in m and "haystack-hardneg tune" in m for m in warned)


def test_the_stored_weight_applies_behind_the_first_stage_it_was_chosen_on(trained_folder, caplog):
    ranker = CrossEncoderRanker(model=trained_folder, first_stage="runs/mine/candidates.jsonl")
    with caplog.at_level(logging.WARNING):
        ranked = ranker.run(query=QUERY, documents=_docs())["documents"]
    assert ranker.effective_fusion_alpha == 0.3
    assert not [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("haystack_hardneg")]
    for doc in ranked:  # the fused score, with both of its parts kept
        assert doc.meta["retriever_score"] in (3.0, 5.0, 1.0) and 0.0 <= doc.meta["cross_encoder_score"] <= 1.0
    other = CrossEncoderRanker(model=trained_folder, first_stage="my-bm25")
    with caplog.at_level(logging.WARNING):
        other.warm_up()
    assert other.effective_fusion_alpha is None and "first_stage is 'my-bm25'" in caplog.text


def test_weight_0_keeps_the_retriever_order_and_says_so(trained_folder, caplog):
    with caplog.at_level(logging.WARNING):
        ranked = CrossEncoderRanker(model=trained_folder, fusion_alpha=0.0).run(query=QUERY, documents=_docs())
    assert [d.id for d in ranked["documents"]] == ["paris", "berlin", "rome"]
    assert "fusion weight 0" in caplog.text and "cross_encoder_score" in caplog.text
    inputs = _docs()
    CrossEncoderRanker(model=trained_folder, fusion_alpha=0.5).run(query=QUERY, documents=inputs)
    assert [(d.score, d.meta) for d in inputs] == [(d.score, d.meta) for d in _docs()]  # inputs untouched


def test_stock_parity_lazy_warm_up_default_model_and_device(trained_folder):
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    lazy = CrossEncoderRanker(model=trained_folder, fusion_alpha=None)
    warmed = CrossEncoderRanker(model=trained_folder, fusion_alpha=None)
    warmed.warm_up()
    assert _pairs(lazy.run(query=QUERY, documents=_docs())["documents"]) == \
        _pairs(warmed.run(query=QUERY, documents=_docs())["documents"])
    stock = SentenceTransformersSimilarityRanker(model=trained_folder).to_dict()["init_parameters"]
    ours = CrossEncoderRanker(model=trained_folder).to_dict()["init_parameters"]
    assert ours["device"] == stock["device"] is not None
    assert CrossEncoderRanker.from_dict(CrossEncoderRanker(model=trained_folder).to_dict()).device == lazy.device
    import inspect

    default = inspect.signature(SentenceTransformersSimilarityRanker.__init__).parameters["model"].default
    assert inspect.signature(CrossEncoderRanker.__init__).parameters["model"].default == default
