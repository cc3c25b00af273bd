import json
from pathlib import Path

import pytest
from haystack import Document
from sentence_transformers import CrossEncoder

from haystack_hardneg import (
    EnsembleDocumentEmbedder,
    EnsembleDocumentWriter,
    EnsembleTextEmbedder,
    build_query_pipeline,
    open_document_store,
)

from processes import fresh_python, fresh_pythons

EXAMPLES = Path(__file__).parents[2] / "examples"
TEXTS = ["the vaccine reduced infection risk in mice", "tumor growth depends on a signaling pathway",
         "heart and kidney disease in clinical patients", "blood levels of the drug increased with dose"]

RUN_RANKED = """
import json, sys
import haystack_hardneg
from haystack import Pipeline
pipeline = Pipeline.loads(open(sys.argv[1]).read())
query = "vaccine infection"
result = pipeline.run({"embedder": {"text": query}, "ranker": {"query": query}})
print(json.dumps([[d.id, d.score] for d in result["ranker"]["documents"]]))
"""


@pytest.fixture(scope="module")
def store_and_model(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("ranked")
    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    embedder.warm_up()
    store = open_document_store(path=str(root / "q"), embedding_dim=32, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(
        embedder.run([Document(id=f"d{i}", content=t) for i, t in enumerate(TEXTS)])["documents"])
    store.close()
    CrossEncoder(tiny_model, num_labels=1).save(str(root / "ce"))
    # As training leaves it: a fusion weight chosen on another first stage than the pipelines' here.
    stored = {"fusion_alpha": 0.3, "first_stage_name": "runs/mine/c.jsonl"}
    (root / "ce" / "hardneg.json").write_text(json.dumps(stored))
    return root, tiny_model


def _localise(text: str, root: Path, tiny_model: str) -> str:
    return (text.replace("~/.cache/hardneg-models/all-MiniLM-L6-v2", tiny_model)
            .replace("runs/train/model", str(root / "ce")).replace("embedding_dim: 384", "embedding_dim: 32")
            .replace("path: qdrant-data", f"path: {root / 'q'}"))


def test_example_ranked_pipeline_runs_in_a_fresh_process(store_and_model, tmp_path):
    root, tiny_model = store_and_model
    yaml_file = tmp_path / "ranked.yml"
    yaml_file.write_text(_localise((EXAMPLES / "query_pipeline_ranked.yml").read_text(), root, tiny_model))
    done = fresh_python(RUN_RANKED, str(yaml_file))
    assert done.returncode == 0, done.stderr[-2000:]
    ranked = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(doc_id for doc_id, _ in ranked) == ["d0", "d1", "d2", "d3"]
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True)


def test_swapping_one_type_line_replaces_haystacks_ranker(store_and_model, tmp_path):
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    root, tiny_model = store_and_model
    store = open_document_store(path=str(root / "q"), embedding_dim=32, progress_bar=False)
    existing = build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store, top_k=4,
                                    ranker=SentenceTransformersSimilarityRanker(model=str(root / "ce"), top_k=4))
    text = existing.dumps()
    store.close()
    old_type = ("type: haystack_integrations.components.rankers.sentence_transformers."
                "sentence_transformers_similarity.SentenceTransformersSimilarityRanker")
    assert text.count(old_type) == 1
    import shutil

    results, runs = {}, []
    ours = text.replace(old_type, "type: haystack_hardneg.rank.ranker.CrossEncoderRanker")
    for name, yaml_text in (("haystack", text), ("ours", ours)):
        shutil.copytree(root / "q", tmp_path / name)  # a store each: the two processes run side by side
        yaml_file = tmp_path / f"{name}.yml"
        yaml_file.write_text(yaml_text.replace(f"path: {root / 'q'}", f"path: {tmp_path / name}"))
        runs.append((RUN_RANKED, [str(yaml_file)], None))
    for name, done in zip(("haystack", "ours"), fresh_pythons(runs)):
        assert done.returncode == 0, done.stderr[-2000:]
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    # The stored weight was chosen on another first stage: the cross-encoder ranks alone, as the stock ranker.
    assert [d for d, _ in results["ours"]] == [d for d, _ in results["haystack"]]
    assert [s for _, s in results["ours"]] == pytest.approx([s for _, s in results["haystack"]], abs=1e-5)
