import json
from pathlib import Path

import pytest
import yaml

from haystack_hardneg import (
    DocumentChunker,
    EnsembleDocumentEmbedder,
    EnsembleTextEmbedder,
    build_indexing_pipeline,
    build_query_pipeline,
    load_pipeline,
    open_document_store,
)

from processes import fresh_pythons

EXAMPLES = Path(__file__).parents[1] / "examples"
HTML = Path(__file__).parent / "fixtures" / "html"


def _index(tiny_model, store, fixtures):
    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False, meta_fields_to_embed=["title"])
    pipeline = build_indexing_pipeline(embedder, store, chunker=DocumentChunker(split_length=60, split_overlap=10))
    return pipeline.run(
        {"converter": {"sources": [str(fixtures / "scifact-tiny"), str(HTML / "article.html"),
                                   str(HTML / "image.png")]}},
        include_outputs_from={"converter", "chunker"},
    )


def test_index_then_query_end_to_end(tiny_model, fixtures):
    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    result = _index(tiny_model, store, fixtures)
    chunks = result["chunker"]["documents"]
    assert len(result["converter"]["documents"]) == 41
    assert [f["source"] for f in result["converter"]["failures"]] == [str(HTML / "image.png")]
    assert result["writer"]["documents_written"] == len(chunks) == store.count_documents()
    assert len(chunks) > 41  # long abstracts were split
    assert any(c.meta["parent_id"] != c.id for c in chunks)

    query = build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store, top_k=5)
    target = next(c for c in chunks if "warranty" in c.content)
    found = query.run({"embedder": {"text": target.meta["title"] + "\n" + target.content}})["retriever"]["documents"]
    assert found[0].id == target.id
    assert len(found) == 5


def _pipeline_yaml(tiny_model, store_path: Path) -> str:
    store = open_document_store(path=str(store_path), embedding_dim=32, progress_bar=False)
    return build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store, top_k=3).dumps()


LOAD_AND_RUN = """
import json, sys
{prelude}
text = open(sys.argv[1]).read()
pipeline = {loader}
result = pipeline.run({{"embedder": {{"text": "dishwasher warranty claims"}}}})
print(json.dumps([d.id for d in result["retriever"]["documents"]]))
"""


@pytest.fixture(scope="module")
def indexed_store(tiny_model, fixtures, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "qdrant"
    store = open_document_store(path=str(path), embedding_dim=32, progress_bar=False)
    _index(tiny_model, store, fixtures)
    store.close()
    return path


# Every way a user loads a YAML naming our components, each in a fresh process (the allowlist is per process).
LOADERS = {
    "import-package": ("import haystack_hardneg\nfrom haystack import Pipeline", "Pipeline.loads(text)", None),
    "allowed_modules": ("from haystack import Pipeline", "Pipeline.loads(text, allowed_modules=['haystack_hardneg'])",
                        None),
    "env-var": ("from haystack import Pipeline", "Pipeline.loads(text)",
                {"HAYSTACK_DESERIALIZATION_ALLOWLIST": "haystack_hardneg"}),
    "load_pipeline": ("from haystack_hardneg import load_pipeline", "load_pipeline(text)", None),
    "refused": ("from haystack import Pipeline", "Pipeline.loads(text)", None),
}


def test_yaml_loads_and_runs_in_a_fresh_process_and_without_the_allowlist_is_refused(tiny_model, indexed_store,
                                                                                     tmp_path):
    import shutil

    runs = []
    for name, (prelude, loader, env) in LOADERS.items():
        store = tmp_path / name / "qdrant"  # a copy each: the processes run side by side
        shutil.copytree(indexed_store, store)
        (tmp_path / name / "query.yml").write_text(_pipeline_yaml(tiny_model, store))
        runs.append((LOAD_AND_RUN.format(prelude=prelude, loader=loader), [str(tmp_path / name / "query.yml")], env))
    for name, done in zip(LOADERS, fresh_pythons(runs)):
        if name == "refused":
            assert done.returncode != 0
            assert "haystack_hardneg" in done.stderr and "allowlist" in done.stderr
            continue
        assert done.returncode == 0, (name, done.stderr[-2000:])
        assert len(json.loads(done.stdout.strip().splitlines()[-1])) == 3, name


@pytest.mark.parametrize("name", ["indexing_pipeline.yml", "query_pipeline.yml"])
def test_example_yaml_loads_and_dumps_back_equivalently(name, tiny_model, tmp_path):
    text = (EXAMPLES / name).read_text()
    text = text.replace("~/.cache/hardneg-models/all-MiniLM-L6-v2", tiny_model)
    text = text.replace("embedding_dim: 384", "embedding_dim: 32").replace("path: qdrant-data", f"path: {tmp_path}/q")
    text = text.replace("cache_dir: ~/.cache/haystack-hardneg/embeddings", f"cache_dir: {tmp_path}/cache")
    pipeline = load_pipeline(text)
    assert _canonical(pipeline.dumps()) == _canonical(text)


def _canonical(pipeline_yaml: str) -> dict:
    """The pipeline as data, with connections in a fixed order (Haystack does not keep their order)."""
    data = yaml.safe_load(pipeline_yaml)
    data["connections"] = sorted(data["connections"], key=lambda c: (c["sender"], c["receiver"]))
    return data


def test_query_pipeline_refuses_a_store_that_would_be_emptied_on_load(tiny_model):
    store = open_document_store(location=":memory:", embedding_dim=32, recreate_index=True, progress_bar=False)
    with pytest.raises(ValueError, match="recreate_index"):
        build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store)


def test_a_query_embedder_of_another_ensemble_is_refused_before_querying(tiny_model, tiny_model_other_weights,
                                                                         fixtures):
    from haystack import Document

    from haystack_hardneg import EnsembleDocumentWriter
    from haystack_hardneg.pipelines import check_query_embedder_matches_store

    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    _index(tiny_model, store, fixtures)
    same = build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store)
    check_query_embedder_matches_store(same)
    # A query prompt the indexing spec did not name (e5-style "query: " / "passage: ") is the same vector space.
    check_query_embedder_matches_store(
        build_query_pipeline(EnsembleTextEmbedder(members=[{"model": tiny_model, "query_prompt": "query: "}]), store))
    # Same architecture and dimension, other weights: another vector space, which Qdrant would rank without complaint.
    other = build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model_other_weights]), store)
    with pytest.raises(ValueError, match="embedded by another ensemble"):
        check_query_embedder_matches_store(other)
    # Documents written by other tools carry no ensemble id: nothing to judge them by, so they are not refused.
    plain = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    plain.write_documents([Document(id="x", content="written elsewhere", embedding=[0.1] * 32)])
    check_query_embedder_matches_store(build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), plain))
    assert EnsembleDocumentWriter  # the writer that labels documents with their ensemble (used by _index)


def test_batched_first_stage_returns_what_the_query_pipeline_returns_one_query_at_a_time(tiny_model, fixtures,
                                                                                        tmp_path):
    from haystack_hardneg import LexicalIndexWriter, LexicalRetriever
    from haystack_hardneg.experiment.first_stage import retrieve_lists
    from haystack_hardneg.ingest.beir import load_beir
    from haystack_hardneg.pipelines import build_lexical_indexing_pipeline, query_documents

    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    _index(tiny_model, store, fixtures)
    build_lexical_indexing_pipeline(LexicalIndexWriter(index_path=str(tmp_path / "bm25"))).run(
        {"converter": {"sources": [str(fixtures / "scifact-tiny")]}})
    lexical = LexicalRetriever(index_path=str(tmp_path / "bm25"), top_k=7)
    lexical.warm_up()
    embedder = EnsembleTextEmbedder(members=[tiny_model])
    embedder.warm_up()
    split = load_beir(fixtures / "scifact-tiny", "test")
    # A block smaller than the split: several batch queries, as a large split makes.
    records = retrieve_lists(split, embedder, store, lexical, 7, meta_fields=["title"], separator=" ", desc="",
                             progress_bar=False, block=3)
    one_by_one = build_query_pipeline(embedder, store, top_k=7)
    assert [r["query_id"] for r in records] == list(split.queries)
    for record in records:
        dense = query_documents(one_by_one, record["query"])
        # The same ranking; a query embedded in a batch may differ in the last float digits, which can swap two
        # documents whose scores tie to 1e-5 (the tiny random model has many).
        assert [d["score"] for d in record["dense"]] == pytest.approx([d.score for d in dense], abs=1e-5)
        batch, single = {d["id"]: d["score"] for d in record["dense"]}, {d.id: d.score for d in dense}
        assert all(batch[i] == pytest.approx(single[i], abs=1e-5) for i in set(batch) & set(single))
        assert all(abs(scores[i] - dense[-1].score) < 1e-5
                   for scores in (batch, single) for i in set(batch) ^ set(single) if i in scores)
        bm25 = lexical.run(query=record["query"])["documents"]
        assert [(d["id"], d["score"]) for d in record["lexical"]] == [(d.id, d.score) for d in bm25]
        assert record["positive_ids"] == [d for d, g in split.qrels[record["query_id"]].items() if g > 0]
