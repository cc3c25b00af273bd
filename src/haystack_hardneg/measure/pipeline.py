"""Measuring a user's own query pipeline, as they have it, on labelled queries.

The pipeline is loaded from its YAML within Haystack's deserialization allowlist (plus this package) and run once
per labelled query. How it meets the labels is explicit:

- the query: the text goes to every input named ``query`` or ``text`` that no component feeds (a text embedder's
  ``text``, a BM25 retriever's and a ranker's ``query``), or to the inputs ``query_inputs`` names;
- the result: the ``documents`` output of the only component that outputs documents and feeds no other, or of
  ``output``;
- the documents: a label's document (an id, URL or file path) is compared with each result document's ``match``
  field (``id`` or ``meta.KEY``); a document's first result (its best-ranked chunk) counts, later ones are skipped.

MRR and recall are Haystack's ``DocumentMRREvaluator`` and ``DocumentRecallEvaluator`` (multi-hit), given the
results cut at ``k`` / ``recall_k``. nDCG is ranx's (the experiment's): Haystack's ``DocumentNDCGEvaluator`` sums
the ideal DCG over every relevant document, not the best ``k``, so a query with more than ``k`` relevant documents
could not reach 1 and the figures would not compare with BEIR's or the experiment's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haystack import Document, Pipeline

from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.evaluate.significance import bootstrap_ci, paired_test_on_values
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.ingest.labels import load_labels
from haystack_hardneg.measure.config import PipelineEvalConfig

# Inputs that receive the query text unless the user names others.
QUERY_INPUT_NAMES = ("query", "text")


@dataclass(frozen=True)
class LabelledQueries:
    """Queries (id -> text) and their judgements (id -> {document: grade}), where they came from."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str

    def subset(self, ids) -> "LabelledQueries":
        ids = [q for q in ids if q in self.queries]
        return LabelledQueries({q: self.queries[q] for q in ids}, {q: self.qrels[q] for q in ids}, self.source)


def labelled_queries(*, labels: str | Path | None = None, beir: str | Path | None = None, split: str = "test",
                     limit: int | None = None) -> LabelledQueries:
    """Labelled queries from a labels file (CSV, TSV, JSONL: query, document, grade) or a BEIR folder's split;
    only queries with at least one relevant document (grade > 0); the first ``limit`` in id order."""
    if (labels is None) == (beir is None):
        raise ValueError("Give labelled queries as a labels file or a BEIR folder (one of the two).")
    if labels is not None:
        queries, qrels = {}, {}
        for label in load_labels(labels):
            queries.setdefault(label.query_id, label.query)
            qrels.setdefault(label.query_id, {})[label.document] = label.grade
        source = str(labels)
    else:
        data = load_beir(beir, split, on_missing="skip")
        queries, qrels, source = data.queries, data.qrels, f"{beir} ({split})"
    judged = sorted(q for q, grades in qrels.items() if any(g > 0 for g in grades.values()))
    if not judged:
        raise ValueError(f"{source}: no query has a relevant document (grade > 0).")
    found = LabelledQueries(queries, qrels, source)
    return found.subset(judged[:limit] if limit else judged)


def query_inputs(pipeline: Pipeline, names: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(component, input) pairs that receive the query text."""
    open_inputs = pipeline.inputs(include_components_with_connected_inputs=False)
    if names:
        pairs = [tuple(n.split(".")) for n in names]
        for component, socket in pairs:
            if socket not in open_inputs.get(component, {}):
                raise ValueError(f"The pipeline has no open input {component}.{socket}; open inputs: "
                                 f"{_describe(open_inputs)}.")
        return pairs
    pairs = [(c, s) for c, sockets in open_inputs.items() for s in sockets if s in QUERY_INPUT_NAMES]
    if not pairs:
        raise ValueError(f"No open input named {' or '.join(QUERY_INPUT_NAMES)} takes the query; name one with "
                         f"--query-input COMPONENT.INPUT (open inputs: {_describe(open_inputs)}).")
    return pairs


def _describe(inputs: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{c}.{s}" for c, sockets in inputs.items() for s in sockets) or "none"


def result_component(pipeline: Pipeline, output: str | None = None) -> str:
    """The component whose ``documents`` output is the pipeline's result."""
    leaves = [c for c, sockets in pipeline.outputs().items() if "documents" in sockets]
    if output is not None:
        if output not in dict(pipeline.walk()):
            raise ValueError(f"The pipeline has no component {output!r}.")
        return output
    if len(leaves) != 1:
        raise ValueError(f"Cannot tell which output is the result ({leaves or 'no component outputs documents'}); "
                         f"name it with --output COMPONENT.")
    return leaves[0]


def match_value(document: Document, match: str) -> str | None:
    """The field of ``document`` a label's document is compared with (``id`` or ``meta.KEY``, nested keys too)."""
    if match == "id":
        return document.id
    value: Any = document.meta
    for part in match[len("meta."):].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return None if value is None else str(value)


def matched_ids(documents: list[Document], match: str) -> list[str]:
    """The labelled-document keys of a result list, in order, each once (its first, best-ranked chunk)."""
    return list(dict.fromkeys(v for d in documents if (v := match_value(d, match)) is not None))


def run_pipeline(pipeline: Pipeline, queries: dict[str, str], config: PipelineEvalConfig, *,
                 in_order_of: str | None = None, progress_bar: bool = True) -> dict[str, list[Document]]:
    """Each query through the pipeline: query id -> the result documents, in order (or, with ``in_order_of``, in
    the order that component output them: a ranker's documents in its first stage's order)."""
    from tqdm.auto import tqdm

    inputs = query_inputs(pipeline, config.query_inputs)
    result = result_component(pipeline, config.output)
    found: dict[str, list[Document]] = {}
    for query_id, text in tqdm(queries.items(), desc="Evaluating", unit="query", disable=not progress_bar):
        data: dict[str, dict[str, Any]] = {}
        for component, socket in inputs:
            data.setdefault(component, {})[socket] = text
        output = pipeline.run(data, include_outputs_from={result, *([in_order_of] if in_order_of else [])})
        found[query_id] = list(output.get(result, {}).get("documents") or [])
        if in_order_of:
            position = {d.id: i for i, d in reversed(list(enumerate(output[in_order_of]["documents"])))}
            found[query_id].sort(key=lambda d: position.get(d.id, len(position)))
    return found


def per_query_metrics(qrels: dict[str, dict[str, int]], ranked: dict[str, list[str]], config: PipelineEvalConfig
                      ) -> dict[str, dict[str, float]]:
    """{metric: {query id: value}} of ranked labelled-document keys (query id -> keys, best first)."""
    from haystack.components.evaluators import DocumentMRREvaluator, DocumentRecallEvaluator

    queries = sorted(qrels)
    run = {q: {d: float(len(ranked.get(q, [])) - i) for i, d in enumerate(ranked.get(q, [])[: config.k])}
           for q in queries}
    values = {f"ndcg@{config.k}": evaluate_run(qrels, run, (f"ndcg@{config.k}",), per_query=True)[f"ndcg@{config.k}"]}
    truth = [[Document(id=d) for d, grade in qrels[q].items() if grade > 0] for q in queries]
    for name, evaluator, cut in ((f"mrr@{config.k}", DocumentMRREvaluator(document_comparison_field="id"), config.k),
                                 (f"recall@{config.recall_k}", DocumentRecallEvaluator(
                                     mode="multi_hit", document_comparison_field="id"), config.recall_k)):
        retrieved = [[Document(id=d) for d in ranked.get(q, [])[:cut]] for q in queries]
        scores = evaluator.run(ground_truth_documents=truth, retrieved_documents=retrieved)["individual_scores"]
        values[name] = dict(zip(queries, map(float, scores)))
    return values


def summary(values: dict[str, dict[str, float]]) -> dict[str, float]:
    return {metric: sum(v.values()) / len(v) for metric, v in values.items()}


def paired_difference(ours: dict[str, float], theirs: dict[str, float], *, test: str = "student"
                      ) -> dict[str, float]:
    """Mean difference of two systems' per-query values, its paired p-value and 95% bootstrap interval."""
    queries = sorted(ours)
    tested = paired_test_on_values(ours, theirs, queries, test=test)
    low, high = bootstrap_ci([ours[q] - theirs[q] for q in queries])
    return {**tested, "ci_low": low, "ci_high": high, "queries": len(queries)}


def evaluate_pipeline(pipeline: Pipeline, labelled: LabelledQueries, config: PipelineEvalConfig | None = None, *,
                      progress_bar: bool = True) -> dict[str, Any]:
    """The pipeline's metrics on ``labelled``: means (``metrics``) and per query (``per_query``)."""
    config = config or PipelineEvalConfig()
    documents = run_pipeline(pipeline, labelled.queries, config, progress_bar=progress_bar)
    ranked = {q: matched_ids(docs, config.match) for q, docs in documents.items()}
    values = per_query_metrics(labelled.qrels, ranked, config)
    return {"queries": len(labelled.queries), "labels": labelled.source, "metrics": summary(values),
            "per_query": values, "ranked": ranked}


def compare(after: dict[str, Any], before: dict[str, Any], *, test: str = "student") -> dict[str, dict[str, float]]:
    """Per metric: ``after`` minus ``before`` (two ``evaluate_pipeline`` results on the same queries), paired."""
    return {metric: paired_difference(after["per_query"][metric], before["per_query"][metric], test=test)
            for metric in after["per_query"]}
