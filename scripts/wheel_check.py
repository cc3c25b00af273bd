"""What a core-only install of the wheel must do, run inside that install (scripts/wheel_check.sh).

With ``--exports`` (run after adding the onnx and openvino extras): a cross-encoder exported to both backends
scores as on torch, and a YAML pipeline with the ONNX ranker runs in a fresh process.

A Haystack app embeds, indexes and ranks with the core: a tiny random model (built here, no downloads) embeds
four documents into a local Qdrant store, a cross-encoder from it ranks them in a query pipeline saved as YAML,
and a fresh process loads that YAML and runs it. The optional packages are absent, and asking for one names the
extra to install. The demo's config and data are in the package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

TEXTS = ["the vaccine reduced infection risk", "tumor growth depends on a pathway", "heart and kidney disease",
         "blood levels of the drug increased"]

RUN_YAML = """
import json, sys
import haystack_hardneg
from haystack import Pipeline
pipeline = Pipeline.loads(open(sys.argv[1]).read())
result = pipeline.run({"embedder": {"text": "vaccine infection"}, "ranker": {"query": "vaccine infection"}})
print(json.dumps([[d.id, d.score] for d in result["ranker"]["documents"]]))
"""


def tiny_model(folder: Path) -> str:
    """A 2-layer random BERT sentence encoder with a word-level vocabulary, in sentence-transformers' format."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for t in TEXTS for w in t.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    raw = folder / "hf"
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(raw)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension())])
    model.save(str(folder / "st"))
    return str(folder / "st")


def ranked_pipeline_yaml(root: Path) -> Path:
    from haystack import Document
    from sentence_transformers import CrossEncoder

    from haystack_hardneg import (
        CrossEncoderRanker,
        EnsembleDocumentEmbedder,
        EnsembleDocumentWriter,
        EnsembleTextEmbedder,
        build_query_pipeline,
        open_document_store,
    )

    model = tiny_model(root)
    embedder = EnsembleDocumentEmbedder(members=[model], progress_bar=False)
    embedder.warm_up()
    store = open_document_store(path=str(root / "qdrant"), embedding_dim=32, progress_bar=False)
    documents = embedder.run([Document(id=f"d{i}", content=t) for i, t in enumerate(TEXTS)])["documents"]
    EnsembleDocumentWriter(document_store=store).run(documents)
    store.close()
    CrossEncoder(model, num_labels=1).save(str(root / "ranker"))
    store = open_document_store(path=str(root / "qdrant"), embedding_dim=32, progress_bar=False)
    pipeline = build_query_pipeline(EnsembleTextEmbedder(members=[model]), store, top_k=4,
                                    ranker=CrossEncoderRanker(model=str(root / "ranker"), top_k=4))
    path = root / "query_pipeline.yml"
    path.write_text(pipeline.dumps(), encoding="utf-8")
    store.close()
    return path


def check_yaml_in_fresh_process(root: Path) -> None:
    done = subprocess.run([sys.executable, "-c", RUN_YAML, str(ranked_pipeline_yaml(root))], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranked = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(doc_id for doc_id, _ in ranked) == ["d0", "d1", "d2", "d3"], ranked
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True), scores
    print(f"wheel check: YAML query pipeline with CrossEncoderRanker loaded and ran in a fresh process: {ranked}")


def check_extras_absent() -> None:
    import importlib.util

    from haystack_hardneg.extras import MissingExtraError
    from haystack_hardneg.store.lexical import LexicalIndex

    absent = [m for m in ("bm25s", "ranx", "matplotlib", "datasets", "accelerate")
              if importlib.util.find_spec(m) is None]
    assert absent == ["bm25s", "ranx", "matplotlib", "datasets", "accelerate"], f"not a core-only install: {absent}"
    try:
        LexicalIndex.build(["d0"], ["text"])
    except MissingExtraError as error:
        assert 'pip install "haystack-hardneg[bm25]"' in str(error), error
        print(f"wheel check: optional packages absent ({', '.join(absent)}); asking for one says: {error}")
    else:
        raise AssertionError("the BM25 member worked without the bm25 extra")


def check_demo_shipped() -> None:
    import haystack_hardneg

    demo = Path(haystack_hardneg.__file__).parent / "demo"
    files = sorted(p.relative_to(demo).as_posix() for p in demo.rglob("*") if p.is_file())
    assert "experiment_quick.yml" in files and "scifact-mini/corpus.jsonl" in files, files
    print(f"wheel check: haystack-hardneg {haystack_hardneg.__version__} ships the demo ({len(files)} files)")


EXPORTED_YAML = """
import json, sys
import haystack_hardneg
from haystack import Document, Pipeline
pipeline = Pipeline.loads(open(sys.argv[1]).read())
documents = [Document(id=f"d{i}", content=t) for i, t in enumerate(json.loads(sys.argv[2]))]
result = pipeline.run({"ranker": {"query": "vaccine infection", "documents": documents}})
print(json.dumps({d.id: d.score for d in result["ranker"]["documents"]}))
"""


def check_exports(root: Path) -> None:
    """With the onnx and openvino extras: a cross-encoder exported to both, each scoring as torch does, and a YAML
    pipeline with the ONNX ranker in a fresh process."""
    import torch
    from haystack import Pipeline
    from sentence_transformers import CrossEncoder

    from haystack_hardneg import CrossEncoderRanker, ExportConfig, export_model
    from haystack_hardneg.rank.runtime import ExportedCrossEncoder

    folder = root / "ranker"
    CrossEncoder(tiny_model(root), num_labels=1).save(str(folder))
    pairs = [("vaccine infection", t) for t in TEXTS]
    reference = CrossEncoder(str(folder)).predict(pairs, activation_fn=torch.nn.Identity())
    for backend in ("onnx", "openvino"):
        record = export_model(ExportConfig(model_dir=str(folder), backend=backend), log=lambda _: None)
        scores = ExportedCrossEncoder(folder, backend, file_name=record["file_name"]).predict(pairs)
        assert max(abs(a - b) for a, b in zip(scores, reference)) < 1e-3, (backend, scores, reference)
        print(f"wheel check: {backend} export {record['file_name']} scores as torch does")
    pipeline = Pipeline()
    pipeline.add_component("ranker", CrossEncoderRanker(model=str(folder), backend="onnx", top_k=4))
    (root / "onnx_ranker.yml").write_text(pipeline.dumps(), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", EXPORTED_YAML, str(root / "onnx_ranker.yml"), json.dumps(TEXTS)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"wheel check: YAML pipeline with an onnx CrossEncoderRanker ran in a fresh process: {done.stdout.strip()}")


if __name__ == "__main__" and sys.argv[1:] == ["--exports"]:
    with tempfile.TemporaryDirectory() as folder:
        check_exports(Path(folder))
elif __name__ == "__main__":
    check_demo_shipped()
    check_extras_absent()
    with tempfile.TemporaryDirectory() as folder:
        check_yaml_in_fresh_process(Path(folder))
