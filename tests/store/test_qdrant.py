import subprocess
import sys

import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever

from haystack_hardneg import EnsembleDocumentEmbedder, EnsembleDocumentWriter, EnsembleTextEmbedder, open_document_store
from haystack_hardneg.store.qdrant import DuplicateIdError, StoreMismatchError

TEXTS = {
    "d1": "the vaccine reduced infection risk in mice",
    "d2": "tumor growth depends on a signaling pathway",
    "d3": "heart and kidney disease in clinical patients",
}


@pytest.fixture(scope="module")
def embedded(tiny_model):
    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    embedder.warm_up()
    return embedder.run([Document(id=k, content=v) for k, v in TEXTS.items()])["documents"]


@pytest.fixture(scope="module")
def other_ensemble(tiny_model_other_weights):
    embedder = EnsembleDocumentEmbedder(members=[{"model": tiny_model_other_weights, "document_prompt": "passage: "}],
                                        progress_bar=False)
    embedder.warm_up()
    return embedder.run([Document(id="x", content="cats purr")])["documents"]


def test_written_vectors_are_found_by_the_qdrant_retriever(tiny_model, embedded):
    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    assert EnsembleDocumentWriter(document_store=store).run(embedded) == {"documents_written": 3}
    text_embedder = EnsembleTextEmbedder(members=[tiny_model])
    text_embedder.warm_up()
    retriever = QdrantEmbeddingRetriever(document_store=store, top_k=3)
    for doc_id, text in TEXTS.items():
        found = retriever.run(query_embedding=text_embedder.run(text)["embedding"])["documents"]
        assert found[0].id == doc_id
        assert found[0].score == pytest.approx(1.0, abs=1e-4)


def test_on_disk_store_keeps_documents_across_clients(tmp_path, embedded):
    store = open_document_store(path=str(tmp_path / "q"), embedding_dim=32, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(embedded)
    store.close()
    reopened = open_document_store(path=str(tmp_path / "q"), embedding_dim=32, progress_bar=False)
    assert reopened.count_documents() == 3
    assert reopened.get_documents_by_id(["d2"])[0].content == TEXTS["d2"]


def test_store_configured_for_another_dimension_is_refused_naming_both(embedded):
    store = open_document_store(location=":memory:", embedding_dim=768, progress_bar=False)
    with pytest.raises(StoreMismatchError, match=r"embedding_dim=768.*32-d"):
        EnsembleDocumentWriter(document_store=store).run(embedded)


def test_existing_collection_of_another_dimension_is_refused_naming_both(tmp_path, embedded):
    first = open_document_store(path=str(tmp_path / "q"), embedding_dim=16, progress_bar=False)
    first.count_documents()  # creates the 16-d collection
    first.close()
    store = open_document_store(path=str(tmp_path / "q"), embedding_dim=32, progress_bar=False)
    with pytest.raises(StoreMismatchError, match=r"holds 16-d vectors .* makes 32-d"):
        EnsembleDocumentWriter(document_store=store).run(embedded)


def test_collection_of_another_ensemble_is_refused_naming_both(embedded, other_ensemble):
    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(embedded)
    ours, theirs = embedded[0].meta["ensemble_id"], other_ensemble[0].meta["ensemble_id"]
    assert ours != theirs
    with pytest.raises(StoreMismatchError, match=rf"another ensemble \({ours}\).*this ensemble is {theirs}"):
        EnsembleDocumentWriter(document_store=store).run(other_ensemble)
    assert store.count_documents() == 3


def test_duplicate_ids_policy(embedded):
    store = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    writer = EnsembleDocumentWriter(document_store=store)
    # Identical duplicates in one write are written once.
    assert writer.run(embedded + embedded[:1]) == {"documents_written": 3}
    # Re-indexing the same ids overwrites (idempotent) under the default policy.
    assert writer.run(embedded)["documents_written"] == 3
    assert store.count_documents() == 3
    # Different documents sharing an id in one write: an error, and nothing is written.
    clash = [embedded[0], Document(id="d1", content="other text", embedding=embedded[1].embedding,
                                   meta=embedded[1].meta)]
    fresh = open_document_store(location=":memory:", embedding_dim=32, progress_bar=False)
    with pytest.raises(DuplicateIdError, match="d1"):
        EnsembleDocumentWriter(document_store=fresh).run(clash)
    assert fresh.count_documents() == 0
    # FAIL refuses ids the collection already holds.
    with pytest.raises(DuplicateDocumentError):
        EnsembleDocumentWriter(document_store=store, policy=DuplicatePolicy.FAIL).run(embedded[:1])


def test_writer_round_trips_to_dict(tmp_path):
    store = open_document_store(path=str(tmp_path / "q"), embedding_dim=32, index="docs", progress_bar=False)
    writer = EnsembleDocumentWriter(document_store=store, policy=DuplicatePolicy.SKIP)
    data = writer.to_dict()
    restored = EnsembleDocumentWriter.from_dict(data)
    assert restored.to_dict() == data
    assert restored.policy == DuplicatePolicy.SKIP
    assert restored.document_store.index == "docs"


def test_open_document_store_needs_exactly_one_location():
    with pytest.raises(ValueError, match="exactly one"):
        open_document_store(embedding_dim=3)
    with pytest.raises(ValueError, match="exactly one"):
        open_document_store(path="a", url="http://localhost:6333", embedding_dim=3)


def test_a_local_store_left_open_closes_quietly_at_exit(tmp_path):
    script = (
        "import sys\n"
        "from haystack import Document\n"
        "from haystack_hardneg import open_document_store\n"
        "store = open_document_store(path=sys.argv[1], embedding_dim=4, progress_bar=False)\n"
        "store.write_documents([Document(content='x', embedding=[0.1, 0.2, 0.3, 0.4])])\n"
        "print(store.count_documents())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "q")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
