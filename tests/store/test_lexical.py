import json
import subprocess
import sys

import pytest
from haystack import Document

from haystack_hardneg import (
    EnsembleDocumentEmbedder,
    EnsembleTextEmbedder,
    HybridJoiner,
    LexicalIndexWriter,
    LexicalRetriever,
    build_indexing_pipeline,
    build_query_pipeline,
    open_document_store,
)
from haystack_hardneg.ingest.beir import load_corpus
from haystack_hardneg.pipelines import query_documents
from haystack_hardneg.scoring.fusion import fuse_rankings
from haystack_hardneg.store.lexical import LexicalIndex
from haystack_hardneg.store.qdrant import DuplicateIdError

from processes import fresh_python

DOCS = {
    "a": "Influenza vaccines reduce hospital admissions in older adults.",
    "b": "Dishwasher warranty claims and repair policies.",
    "c": "Kidney function after a cardiac surgery.",
}


def test_bm25_finds_the_document_sharing_stemmed_terms_and_nothing_for_unknown_words(tmp_path):
    index = LexicalIndex.build(list(DOCS), list(DOCS.values()))
    found = index.search(["vaccine for the elderly admitted to hospital", "warranties", "zebra quasar"], k=3)
    assert [index.ids[i] for i, _ in found[0]][0] == "a"
    assert [index.ids[i] for i, _ in found[1]] == ["b"]  # "warranties" stems to the same term as "warranty"
    assert found[2] == []
    reloaded = LexicalIndex.load(index.save(tmp_path / "bm25"))
    assert reloaded.search(["vaccine for the elderly admitted to hospital"], k=3) == found[:1]
    with pytest.raises(FileNotFoundError, match="No lexical index"):
        LexicalIndex.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="unique"):
        LexicalIndex.build(["a", "a"], ["x", "y"])


def test_an_unstemmed_index_with_english_stop_words_scores_every_document(tmp_path):
    index = LexicalIndex.build(list(DOCS), list(DOCS.values()), language=None, stopwords="en")
    assert index.search(["warranties"], k=3) == [[]]  # unstemmed, "warranties" is not "warranty"
    query = "warranty repair for the kidney"
    found, scores = index.search([query], k=3)[0], index.scores(query)
    assert scores.shape == (len(DOCS),)
    assert dict(found) == {i: float(s) for i, s in enumerate(scores) if s > 0} and len(found) == 2
    for silent in ("the of and a", "zebra quasar"):  # stop words only; no known term
        assert scores.dtype == index.scores(silent).dtype and not index.scores(silent).any()
    reloaded = LexicalIndex.load(index.save(tmp_path / "bm25"))
    assert (reloaded.language, reloaded.stopwords) == (None, "en")
    assert reloaded.search([query], k=3) == [found]


@pytest.mark.parametrize("language, stopwords", [("english", "en"), (None, None)])
def test_an_index_saved_before_stop_words_were_a_setting_loads_as_it_was_built(tmp_path, language, stopwords):
    built = LexicalIndex.build(list(DOCS), list(DOCS.values()), language=language)
    built.save(tmp_path / "bm25")
    (tmp_path / "bm25" / "lexical.json").write_text(json.dumps({"language": language, "documents": len(DOCS)}))
    index = LexicalIndex.load(tmp_path / "bm25")
    assert index.stopwords == built.stopwords == stopwords
    queries = ["vaccine for the elderly admitted to hospital", "the warranty of a kidney"]
    assert index.search(queries, k=3) == built.search(queries, k=3)


def test_a_rebuilt_index_replaces_the_old_one_whole(tmp_path):
    LexicalIndex.build(list(DOCS), list(DOCS.values())).save(tmp_path / "bm25")
    LexicalIndex.build(["z"], ["zebra quasar"]).save(tmp_path / "bm25")
    index = LexicalIndex.load(tmp_path / "bm25")
    assert index.ids == ["z"] and [p.name for p in tmp_path.iterdir()] == ["bm25"]


def test_an_index_moved_aside_by_a_cut_swap_is_read_where_it_is(tmp_path):
    LexicalIndex.build(list(DOCS), list(DOCS.values())).save(tmp_path / "bm25")
    (tmp_path / "bm25").rename(tmp_path / ".bm25.previous")  # a writer between its two renames, or crashed there
    assert sorted(LexicalIndex.load(tmp_path / "bm25").ids) == sorted(DOCS)
    assert [p.name for p in tmp_path.iterdir()] == [".bm25.previous"]  # the reader renamed nothing


def test_the_writer_takes_repeats_once_and_an_empty_batch_as_nothing_to_write(tmp_path, caplog):
    writer = LexicalIndexWriter(index_path=str(tmp_path / "bm25"))
    docs = [Document(id=i, content=t) for i, t in DOCS.items()]
    assert writer.run(docs + docs[:2])["documents_written"] == len(DOCS)  # the same file indexed twice
    assert sorted(LexicalIndex.load(tmp_path / "bm25").ids) == sorted(DOCS)
    with caplog.at_level("WARNING"):
        assert writer.run([])["documents_written"] == 0
    assert "index at" in caplog.text and "kept" in caplog.text  # said, since a recreated Qdrant side would differ
    assert writer.run([Document(id="blank", content="  ")])["documents_written"] == 0
    assert sorted(LexicalIndex.load(tmp_path / "bm25").ids) == sorted(DOCS)  # left as it was
    with pytest.raises(DuplicateIdError):
        writer.run([Document(id="a", content="one"), Document(id="a", content="another")])


def test_hybrid_scores_are_a_weighted_sum_of_normalised_scores():
    fused = fuse_rankings({"a": 0.9, "b": 0.5}, {"b": 10.0, "c": 5.0}, lexical_weight=0.4)
    assert fused == pytest.approx({"a": 0.6, "b": 0.4, "c": 0.0})
    joined = HybridJoiner(lexical_weight=0.4, top_k=2).run(
        dense_documents=[Document(id="a", content="x", score=0.9), Document(id="b", content="y", score=0.5)],
        lexical_documents=[Document(id="b", content="y", score=10.0), Document(id="c", content="z", score=5.0)],
    )["documents"]
    assert [(d.id, round(d.score, 3)) for d in joined] == [("a", 0.6), ("b", 0.4)]
    with pytest.raises(ValueError):
        HybridJoiner(lexical_weight=1.5)


def test_hybrid_first_stage_indexes_and_queries_both_members_and_loads_from_yaml(tiny_model, fixtures, tmp_path):
    store = open_document_store(path=str(tmp_path / "qdrant"), embedding_dim=32, progress_bar=False)
    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    writer = LexicalIndexWriter(index_path=str(tmp_path / "bm25"), meta_fields_to_index=["title"])
    written = build_indexing_pipeline(embedder, store, lexical_writer=writer).run(
        {"converter": {"sources": [str(fixtures / "scifact-tiny")]}})
    corpus = {d.id: d for d in load_corpus(fixtures / "scifact-tiny" / "corpus.jsonl")}
    assert written["lexical_writer"]["documents_written"] == written["writer"]["documents_written"]

    target = next(d for d in corpus.values() if len(d.meta.get("title", "").split()) > 5)
    pipeline = build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store, top_k=5,
                                    lexical_retriever=LexicalRetriever(index_path=str(tmp_path / "bm25"), top_k=5),
                                    lexical_weight=1.0)
    found = query_documents(pipeline, target.meta["title"])
    assert found[0].id == target.id and len(found) == 5  # BM25 alone (weight 1) finds the exact title
    assert found[0].content == target.content
    store.close()

    (tmp_path / "hybrid.yml").write_text(pipeline.dumps())
    done = fresh_python(
        "import json, sys, haystack_hardneg\n"
        "from haystack import Pipeline\n"
        "from haystack_hardneg.pipelines import query_documents\n"
        "pipeline = Pipeline.loads(open(sys.argv[1]).read())\n"
        "print(json.dumps([d.id for d in query_documents(pipeline, sys.argv[2])]))\n",
        str(tmp_path / "hybrid.yml"), target.meta["title"])
    assert json.loads(done.stdout.strip().splitlines()[-1])[0] == target.id
    # The command line runs the same YAML (the lexical retriever needs the query text too).
    done = subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", "query", "--pipeline",
                           str(tmp_path / "hybrid.yml"), "--top-k", "3", target.meta["title"]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n  1. ")[1].split()[1] == target.id


def test_both_first_stage_lists_must_be_cut_at_the_same_depth(tiny_model, tmp_path):
    LexicalIndex.build(list(DOCS), list(DOCS.values())).save(tmp_path / "bm25")
    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    with pytest.raises(ValueError, match="top_k"):
        build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store, top_k=30,
                             lexical_retriever=LexicalRetriever(index_path=str(tmp_path / "bm25"), top_k=10))
