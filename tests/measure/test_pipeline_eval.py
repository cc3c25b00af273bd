"""evaluate / tune on a user's own pipeline: Haystack's stock BM25 retriever and ranker, labelled queries, our
ranker swapped in, a weight chosen on some queries and reported on the others."""

import json

import pytest
import torch
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from sentence_transformers import CrossEncoder

from haystack_hardneg import CrossEncoderRanker
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.measure.config import PipelineEvalConfig, TuneConfig
from haystack_hardneg.measure.pipeline import (
    LabelledQueries,
    compare,
    evaluate_pipeline,
    labelled_queries,
    matched_ids,
    per_query_metrics,
    query_inputs,
    result_component,
)
from haystack_hardneg.measure.tune import split_queries, tune_pipeline, tuned_yaml, with_ranker

# Words the tiny models' vocabulary has: an unknown word is [UNK], and documents that differ only in unknown words
# would tie exactly, ranked apart by float noise.
TOPICS = ["vaccine", "tumor", "kidney", "cells", "protein", "gene", "cancer", "mice", "blood", "brain", "virus",
          "infection", "drug", "dose", "heart", "cardiac", "liver", "lung", "receptor", "mutation", "dna", "rna"]


def _corpus() -> list[Document]:
    """Per topic, two chunks of one source document (parent_id) and one document of another topic's words."""
    docs = []
    for i, topic in enumerate(TOPICS):
        other = TOPICS[(i + 1) % len(TOPICS)]
        docs += [Document(id=f"{topic}-a", content=f"{topic} trial results in patients", meta={"parent_id": topic}),
                 Document(id=f"{topic}-b", content=f"{topic} and {other} in a cohort", meta={"parent_id": topic}),
                 Document(id=f"{topic}-x", content=f"notes on {topic} and {other} treatments",
                          meta={"parent_id": f"x-{topic}"})]
    return docs


def _labelled() -> LabelledQueries:
    queries = {f"q{i}": f"{topic} treatment trial" for i, topic in enumerate(TOPICS)}
    qrels = {f"q{i}": {topic: 2, f"x-{topic}": 1} for i, topic in enumerate(TOPICS)}
    return LabelledQueries(queries, qrels, "inline")


@pytest.fixture(scope="module")
def ranker_folder(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval") / "ce"
    model = CrossEncoder(tiny_model, num_labels=1)
    # A new classifier's logits differ by less than batching changes them: two rankers of the same model would order
    # near-equal documents apart by chance. Larger weights spread them (the rankers compare raw logits, unscaled:
    # a float32 sigmoid would tie them again at 1).
    torch.manual_seed(0)
    torch.nn.init.normal_(model.model.classifier.weight, std=5.0)
    model.save(str(folder))
    return str(folder)


def _stock_pipeline(ranker_folder, *, with_stock_ranker: bool) -> Pipeline:
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    store = InMemoryDocumentStore()
    store.write_documents(_corpus())
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=8))
    if with_stock_ranker:
        pipeline.add_component("ranker", SentenceTransformersSimilarityRanker(model=ranker_folder, top_k=5,
                                                                                 scale_score=False))
        pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def test_the_pipeline_meets_the_labels_as_documented(ranker_folder):
    pipeline = _stock_pipeline(ranker_folder, with_stock_ranker=True)
    assert sorted(query_inputs(pipeline)) == [("ranker", "query"), ("retriever", "query")]
    assert result_component(pipeline) == "ranker"
    with pytest.raises(ValueError, match="no open input retriever.text"):
        query_inputs(pipeline, ["retriever.text"])
    chunks = [Document(id="c1", meta={"parent_id": "p"}), Document(id="c2", meta={"parent_id": "p"}),
              Document(id="c3", meta={}), Document(id="c4", meta={"parent_id": "q"})]
    assert matched_ids(chunks, "meta.parent_id") == ["p", "q"]  # a document counts at its first chunk
    assert matched_ids(chunks, "id") == ["c1", "c2", "c3", "c4"]


def test_metrics_agree_with_ranx_and_explain_haystacks_ndcg():
    from haystack.components.evaluators import DocumentNDCGEvaluator

    qrels = {"a": {"d1": 1, "d2": 2}, "b": {f"r{i}": 1 for i in range(15)}}
    ranked = {"a": ["d0", "d2", "d1"], "b": [f"r{i}" for i in range(10)] + ["z"]}
    values = per_query_metrics(qrels, ranked, PipelineEvalConfig(k=10, recall_k=10))
    run = {q: {d: float(len(ids) - i) for i, d in enumerate(ids)} for q, ids in ranked.items()}
    ranx = evaluate_run(qrels, run, ("ndcg@10", "mrr@10", "recall@10"), per_query=True)
    for metric in ("ndcg@10", "mrr@10", "recall@10"):
        assert values[metric] == pytest.approx(ranx[metric])
    assert values["ndcg@10"]["b"] == pytest.approx(1.0)  # ten relevant documents in the first ten: perfect at 10
    haystack = DocumentNDCGEvaluator(document_comparison_field="id").run(
        ground_truth_documents=[[Document(id=d, score=1.0) for d in qrels["b"]]],
        retrieved_documents=[[Document(id=d) for d in ranked["b"][:10]]])
    assert haystack["score"] < 0.8  # its ideal DCG counts all 15 relevant documents, not the best 10


def test_evaluate_and_swap_in_our_ranker(ranker_folder):
    labelled = _labelled()
    config = PipelineEvalConfig(match="meta.parent_id", k=5, recall_k=8)
    pipeline = _stock_pipeline(ranker_folder, with_stock_ranker=True)
    stock = evaluate_pipeline(pipeline, labelled, config, progress_bar=False)
    name, top_k = with_ranker(pipeline, ranker_folder, result="ranker", fusion_alpha=None)
    assert (name, top_k) == ("ranker", 5) and isinstance(pipeline.get_component("ranker"), CrossEncoderRanker)
    ours = evaluate_pipeline(pipeline, labelled, config, progress_bar=False)
    # The same model behind the same retriever: ours ranks as the stock ranker did, query for query.
    assert ours["ranked"] == stock["ranked"]
    difference = compare(ours, stock)["ndcg@5"]
    assert difference["difference"] == 0.0 and difference["p_value"] == 1.0
    bm25 = evaluate_pipeline(_stock_pipeline(ranker_folder, with_stock_ranker=False), labelled, config,
                             progress_bar=False)
    assert bm25["metrics"]["recall@8"] == pytest.approx(1.0)  # BM25 finds both labelled documents


def test_tune_chooses_on_some_queries_reports_on_the_others_and_keeps_weight_0_on_noise(ranker_folder):
    labelled = _labelled()
    tuning, report = split_queries(labelled.queries, 0.5, seed=0)
    assert len(tuning) == 11 and not set(tuning) & set(report)
    pipeline = _stock_pipeline(ranker_folder, with_stock_ranker=False)
    config = TuneConfig(ranker=ranker_folder)
    result, data = tune_pipeline(pipeline, labelled, config, PipelineEvalConfig(match="meta.parent_id", k=5),
                                 progress_bar=False)
    # A random cross-encoder cannot beat BM25 significantly: weight 0 ships, with the reason.
    assert result["weight"] == 0.0 and "11 tuning queries" in result["chosen_on"]["fallback"]
    assert result["tuning_queries"] == 11 and result["report_queries"] == 11
    assert result["metrics"]["tuned"]["ndcg@5"] == pytest.approx(result["metrics"]["as given"]["ndcg@5"])
    assert set(result["differences"]) == {"tuned", "ranker alone"}
    ranker = data["components"]["hardneg_ranker"]["init_parameters"]
    # Added after the retriever, it re-orders all eight documents the retriever returns.
    assert ranker["fusion_alpha"] == 0.0 and ranker["top_k"] == 8 and ranker["model"] == ranker_folder
    text = tuned_yaml(data, result)
    assert text.startswith("# Tuned by `haystack-hardneg tune`")
    assert "haystack_hardneg_tune" in text and "fusion_alpha: 0.0" in text


def test_labelled_queries_from_a_labels_file(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("query,document,grade\nwhat is a vaccine,vaccine,2\nwhat is a vaccine,x-vaccine,0\n"
                      "nothing relevant,tumor,0\n")
    found = labelled_queries(labels=labels)
    assert found.queries == {"q1": "what is a vaccine"} and found.qrels == {"q1": {"vaccine": 2, "x-vaccine": 0}}
    with pytest.raises(ValueError, match="one of the two"):
        labelled_queries()


RUN_TUNED = """
import json, sys
import haystack_hardneg
from haystack import Pipeline
pipeline = Pipeline.loads(open(sys.argv[1]).read())
result = pipeline.run({"embedder": {"text": "vaccine treatment trial"}, "hardneg_ranker": {"query": "vaccine"}})
print(json.dumps([d.id for d in result["hardneg_ranker"]["documents"]]))
"""


def test_evaluate_and_tune_from_the_command_line_on_a_yaml_pipeline(tiny_model, ranker_folder, tmp_path, capsys):
    from haystack_hardneg import (
        EnsembleDocumentEmbedder,
        EnsembleDocumentWriter,
        EnsembleTextEmbedder,
        build_query_pipeline,
        open_document_store,
    )
    from haystack_hardneg.cli import main

    from processes import fresh_python

    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    embedder.warm_up()
    store = open_document_store(path=str(tmp_path / "q"), embedding_dim=32, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(embedder.run(_corpus())["documents"])
    (tmp_path / "dense.yml").write_text(build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store,
                                                             top_k=8).dumps())
    store.close()
    labels = tmp_path / "labels.csv"
    labels.write_text("query,document,grade\n" + "".join(f"{t} treatment trial,{t},2\n{t} treatment trial,x-{t},1\n"
                                                         for t in TOPICS))

    def cli(*args):  # in this process, as the query test does: each command closes the local store it opened
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    common = [str(tmp_path / "dense.yml"), "--labels", str(labels), "--match", "meta.parent_id"]
    code, out, _ = cli("evaluate", *common, "--ranker", ranker_folder, "--json", str(tmp_path / "eval.json"))
    assert code == 0
    assert "22 labelled queries" in out and "ndcg@10" in out and "(p=" in out
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert len(saved["systems"]) == 2 and set(saved["differences"]) == {"ndcg@10", "mrr@10", "recall@100"}

    code, out, err = cli("tune", *common, "--ranker", ranker_folder, "--out", str(tmp_path / "tuned.yml"),
                         "--weight", "0", "--weight", "0.5", "--weight", "1", "--json", str(tmp_path / "tune.json"))
    assert code == 0
    assert "Tuned pipeline:" in out and "as given" in out
    assert set(json.loads((tmp_path / "tune.json").read_text())["chosen_on"]["by_alpha"]) == {"0.0", "0.5", "1.0"}
    assert "WARNING: the re-ranker did not beat this pipeline's first stage" in err
    # The tuned YAML loads as a user's script loads it, in a fresh process.
    ran = fresh_python(RUN_TUNED, str(tmp_path / "tuned.yml"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert len(json.loads(ran.stdout.strip().splitlines()[-1])) == 8

    code, _, err = cli("evaluate", str(tmp_path / "dense.yml"), "--labels", str(labels), "--output", "nowhere")
    assert code == 2 and err.count("\n") == 1 and "no component 'nowhere'" in err
