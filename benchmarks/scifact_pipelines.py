"""The fine-tuned ranker in three users' pipelines on SciFact test, through `evaluate` and `tune`, as a user runs them.

    python benchmarks/scifact_pipelines.py --data PATH/TO/scifact --models $HARDNEG_MODELS --out runs/scifact-pipelines

1. Index the corpus (whole documents: SciFact judges documents) into Qdrant local mode with all-MiniLM-L6-v2, and
   into a BM25 index.
2. Three query pipelines as YAML, each retrieving the top 20: BM25 alone, dense (MiniLM) alone, and the hybrid of
   both (BM25 weight 0.5).
3. A re-ranker: ensemble_cluster negatives mined with MiniLM on the training queries, MiniLM fine-tuned on them
   (triplet loss, `--max-steps`).
4. Per pipeline: `haystack-hardneg tune` (weight chosen on half of the test queries, reported on the other half
   against the pipeline as given: the held-out comparison the table shows). `--evaluate-all` also runs `evaluate`
   of the tuned YAML against the original on all test queries (half of them chose the weight: optimistic).

Each step is skipped when its output exists, so an interrupted run resumes. Writes OUT/summary.json and
OUT/summary.md; the committed copy is benchmarks/scifact/pipelines/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from haystack_hardneg import (
    CorpusConverter,
    EnsembleDocumentEmbedder,
    EnsembleTextEmbedder,
    LexicalIndexWriter,
    LexicalRetriever,
    build_indexing_pipeline,
    build_query_pipeline,
    open_document_store,
)
from haystack_hardneg.experiment.environment import machine, versions
from haystack_hardneg.pipelines import whole_document_chunker

PIPELINES = ("bm25", "dense", "hybrid")
TOP_K = 20


def _cli(*args: str) -> None:
    print("$ haystack-hardneg " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", *args], check=True)


def index(data: Path, minilm: str, out: Path) -> None:
    if (out / "indexed").exists():
        return
    embedder = EnsembleDocumentEmbedder(members=[minilm], cache_dir=str(out / "cache"), meta_fields_to_embed=["title"],
                                        embedding_separator=" ")
    store = open_document_store(path=str(out / "qdrant"), index="scifact", embedding_dim=384, recreate_index=True)
    lexical = LexicalIndexWriter(index_path=str(out / "bm25"), meta_fields_to_index=["title"], separator=" ")
    pipeline = build_indexing_pipeline(embedder, store, converter=CorpusConverter(), chunker=whole_document_chunker(),
                                       lexical_writer=lexical)
    pipeline.run({"converter": {"sources": [str(data / "corpus.jsonl")]}})
    store.close()
    (out / "indexed").touch()


def write_pipelines(minilm: str, out: Path) -> None:
    store = open_document_store(path=str(out / "qdrant"), index="scifact", embedding_dim=384)

    def lexical() -> LexicalRetriever:
        return LexicalRetriever(index_path=str(out / "bm25"), top_k=TOP_K)

    # A component belongs to one pipeline: each gets its own.
    (out / "dense.yml").write_text(build_query_pipeline(EnsembleTextEmbedder(members=[minilm]), store,
                                                        top_k=TOP_K).dumps())
    (out / "hybrid.yml").write_text(build_query_pipeline(EnsembleTextEmbedder(members=[minilm]), store, top_k=TOP_K,
                                                         lexical_retriever=lexical(), lexical_weight=0.5).dumps())
    store.close()
    from haystack import Pipeline

    bm25 = Pipeline()
    bm25.add_component("retriever", lexical())
    (out / "bm25.yml").write_text(bm25.dumps())


def train_ranker(data: Path, minilm: str, out: Path, max_steps: int) -> Path:
    model = out / "train" / "model"
    if not (out / "mine" / "ensemble_cluster" / "triplets.jsonl").exists():
        _cli("mine", "--data", str(data), "--split", "train", "--model", minilm, "--strategy", "ensemble_cluster",
             "--cache-dir", str(out / "cache"), "--out", str(out / "mine"))
    if not (model / "model.safetensors").exists():
        _cli("train", "--triplets", str(out / "mine" / "ensemble_cluster" / "triplets.jsonl"), "--base-model", minilm,
             "--loss", "triplet", "--max-length", "256", "--batch-size", "8", "--max-steps", str(max_steps),
             "--out", str(out / "train"))
    return model


def measure(data: Path, model: Path, out: Path, evaluate_all: bool) -> dict:
    results = {}
    for name in PIPELINES:
        tuned, report = out / f"{name}.tuned.yml", out / f"{name}.tune.json"
        if not report.exists():
            _cli("tune", str(out / f"{name}.yml"), "--beir", str(data), "--split", "test", "--ranker", str(model),
                 "--out", str(tuned), "--json", str(report))
        results[name] = {"tune": json.loads(report.read_text())}
        compared = out / f"{name}.evaluate.json"
        if evaluate_all and not compared.exists():
            _cli("evaluate", str(tuned), "--beir", str(data), "--split", "test", "--compare", str(out / f"{name}.yml"),
                 "--json", str(compared))
        if compared.exists():
            results[name]["evaluate"] = json.loads(compared.read_text())
    return results


def summary(results: dict, max_steps: int) -> tuple[dict, str]:
    rows, lines = {}, ["| pipeline | as given | tuned weight | tuned | difference (p; 95% CI) | ranker alone |",
                       "|---|---|---|---|---|---|"]
    for name, result in results.items():
        tune = result["tune"]
        difference = tune["differences"]["tuned"]["ndcg@10"]
        alone = tune["differences"]["ranker alone"]["ndcg@10"]
        rows[name] = {"as_given": tune["metrics"]["as given"]["ndcg@10"], "weight": tune["weight"],
                      "tuned": tune["metrics"]["tuned"]["ndcg@10"], "difference": difference,
                      "ranker_alone": tune["metrics"]["ranker alone"]["ndcg@10"], "ranker_alone_difference": alone,
                      "chosen_p_value": tune["chosen_on"]["p_value"], "fallback": tune["chosen_on"]["fallback"],
                      "tuning_queries": tune["tuning_queries"], "report_queries": tune["report_queries"]}
        if "evaluate" in result:
            rows[name]["all_test_queries"] = result["evaluate"]["differences"]["ndcg@10"]
        lines.append(f"| {name} | {rows[name]['as_given']:.4f} | {tune['weight']} | {rows[name]['tuned']:.4f} | "
                     f"{difference['difference']:+.4f} (p={difference['p_value']:.3g}; {difference['ci_low']:+.4f}.."
                     f"{difference['ci_high']:+.4f}) | {rows[name]['ranker_alone']:.4f} "
                     f"({alone['difference']:+.4f}, p={alone['p_value']:.3g}) |")
    return {"max_steps": max_steps, "top_k": TOP_K, "pipelines": rows, "machine": machine(),
            "versions": versions()}, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True, help="folder holding all-MiniLM-L6-v2")
    parser.add_argument("--out", type=Path, default=Path("runs/scifact-pipelines"))
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--evaluate-all", action="store_true", help="also evaluate each tuned YAML on all test queries")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    minilm = str(args.models / "all-MiniLM-L6-v2")
    index(args.data, minilm, args.out)
    write_pipelines(minilm, args.out)
    model = train_ranker(args.data, minilm, args.out, args.max_steps)
    data, table = summary(measure(args.data, model, args.out, args.evaluate_all), args.max_steps)
    (args.out / "summary.json").write_text(json.dumps(data, indent=2))
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
