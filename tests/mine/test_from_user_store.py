"""Mining from a collection the user's own Haystack pipeline indexed (a stock document embedder and DocumentWriter
into QdrantDocumentStore): its vectors are read as the `stored` member's, no document is embedded again by it, and
the negatives are those of the same ensemble computed from scratch."""

import pytest
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack_integrations.components.embedders.sentence_transformers import (
    SentenceTransformersDocumentEmbedder,
    SentenceTransformersTextEmbedder,
)
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from haystack_hardneg import ClusterNegativeMiner, EnsembleTextEmbedder
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.store.vectors import read_stored_vectors

MINING = {"num_negatives": 2, "rank_window": [0, 20], "guard_ratio": None, "n_clusters": 4}


@pytest.fixture(scope="module")
def split(fixtures):
    return load_beir(fixtures / "scifact-tiny", "train")


@pytest.fixture
def users_store(split, tiny_model, tmp_path):
    """The user's index, as a plain Haystack pipeline writes it (vectors not normalised, no ensemble id)."""
    store = QdrantDocumentStore(path=str(tmp_path / "users-qdrant"), index="app", embedding_dim=32,
                                progress_bar=False)
    indexing = Pipeline()
    indexing.add_component("embedder", SentenceTransformersDocumentEmbedder(model=tiny_model, progress_bar=False))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    indexing.run({"embedder": {"documents": [Document(id=d.id, content=d.content) for d in split.corpus]}})
    yield store
    store.close()


def _pair(model: str, stored: bool = False) -> dict:
    return {"text_embedder": SentenceTransformersTextEmbedder(model=model, progress_bar=False),
            "document_embedder": SentenceTransformersDocumentEmbedder(model=model, progress_bar=False),
            "stored": stored}


def _triplets(members, strategy, **kwargs) -> list:
    miner = ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=members),
                                 mining={**MINING, "strategy": strategy}, meta_fields_to_embed=[],
                                 progress_bar=False, **kwargs)
    miner.warm_up()
    return miner, miner.run


@pytest.mark.parametrize("strategy", ["ensemble", "ensemble_cluster"])
def test_the_users_collection_is_mined_without_embedding_a_document_again(split, users_store, tiny_model,
                                                                          tiny_model_b, strategy):
    # In the collection's order: clustering (k-means) depends on the order of its points.
    order = [d.id for d in read_stored_vectors(users_store, progress_bar=False)[0]]
    by_id = {d.id: d for d in split.corpus}
    plain_docs = [Document(id=i, content=by_id[i].content) for i in order]
    for members, reference in (([_pair(tiny_model, stored=True)], [tiny_model]),
                               ([_pair(tiny_model, stored=True), tiny_model_b], [tiny_model, tiny_model_b])):
        miner, run = _triplets(members, strategy, document_store=users_store)
        calls = []
        embedder = miner.text_embedder.members[0].document_embedder
        original = embedder.run
        embedder.run = lambda documents: calls.append(len(documents)) or original(documents=documents)
        from_store = run(queries=split.queries, positives=split.qrels)["triplets"]
        assert calls == []  # the stored member embeds queries only
        _, run_reference = _triplets(reference, strategy)
        expected = run_reference(queries=split.queries, positives=split.qrels, documents=plain_docs)["triplets"]
        assert from_store == expected and len(expected) > 0


def test_a_stored_member_of_another_dimension_is_named(split, users_store, tiny_model_b):
    miner, run = _triplets([_pair(tiny_model_b, stored=True)], "ensemble", document_store=users_store)
    with pytest.raises(ValueError, match=r"holds 32-d vectors, but the stored member "
                                         r"'SentenceTransformersDocumentEmbedder\(.*tiny-b\)' gives 48-d"):
        run(queries=split.queries, positives=split.qrels)


def test_at_most_one_member_is_stored(tiny_model):
    with pytest.raises(ValueError, match="At most one ensemble member is `stored`"):
        EnsembleTextEmbedder(members=[_pair(tiny_model, stored=True), {"model": tiny_model, "stored": True}])


def test_mine_from_the_users_collection_on_the_command_line(fixtures, users_store, tiny_model, tmp_path):
    import json

    import yaml

    from haystack_hardneg.cli import main

    path = users_store.path
    users_store.close()  # local mode: one process (client) at a time
    pair = {k: v.to_dict() if hasattr(v, "to_dict") else v for k, v in _pair(tiny_model, stored=True).items()}
    (tmp_path / "ensemble.yml").write_text(yaml.safe_dump({"members": [pair]}))
    code = main(["mine", "--data", str(fixtures / "scifact-tiny"), "--from-store", "--store", path, "--index", "app",
                 "--ensemble", str(tmp_path / "ensemble.yml"), "--strategy", "ensemble", "--num-negatives", "2",
                 "--out", str(tmp_path / "mined"), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    report = json.loads((tmp_path / "mined" / "mining_report.json").read_text())
    assert report["ensemble"]["pairs"] == report["ensemble"]["pairs_asked"] > 0
