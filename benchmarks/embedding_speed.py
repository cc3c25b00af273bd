"""Speed of the ensemble embedder against sentence-transformers called directly, and of cached re-indexing.

1. Overhead: documents/s of EnsembleDocumentEmbedder (cache off, and cache on but cold) against
   ``SentenceTransformer.encode`` on the same texts and batch size; rounds alternate the order.
2. Cache: a full indexing run of the SciFact corpus (convert -> embed -> Qdrant) with an empty cache, then the
   same run again into a fresh store with the cache filled.

    python benchmarks/embedding_speed.py --data examples/data/scifact --models ~/.cache/hardneg-models
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from haystack import Document
from sentence_transformers import SentenceTransformer

from haystack_hardneg import DocumentChunker, EnsembleDocumentEmbedder, build_indexing_pipeline, open_document_store
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.ingest.beir import load_corpus

PARTS = ("overhead_single", "overhead_ensemble", "cache")


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def overhead(models: list[str], texts: list[str], batch_size: int, rounds: int) -> dict:
    direct = [SentenceTransformer(m) for m in models]
    docs = [Document(content=t) for t in texts]
    members = [{"model": m, "batch_size": batch_size} for m in models]
    plain = EnsembleDocumentEmbedder(members=members, progress_bar=False)
    plain.warm_up()
    times: dict[str, list[float]] = {"sentence_transformers": [], "ensemble_no_cache": [], "ensemble_cold_cache": []}
    for round_ in range(rounds):
        steps = {
            "sentence_transformers": lambda: [m.encode(texts, batch_size=batch_size) for m in direct],
            "ensemble_no_cache": lambda: plain.run(docs),
        }

        def cold_cache():
            with tempfile.TemporaryDirectory() as cache:
                cached = EnsembleDocumentEmbedder(members=members, cache_dir=cache, progress_bar=False)
                cached.warm_up()
                started = time.perf_counter()
                cached.run(docs)
                return time.perf_counter() - started

        order = list(steps) if round_ % 2 == 0 else list(reversed(steps))
        for name in order:
            times[name].append(_timed(steps[name]))
        times["ensemble_cold_cache"].append(cold_cache())
        print(round_, {k: round(v[-1], 2) for k, v in times.items()}, flush=True)
    best = {k: min(v) for k, v in times.items()}
    return {
        "models": [Path(m).name for m in models],
        "texts": len(texts),
        "batch_size": batch_size,
        "rounds": rounds,
        "seconds_by_round": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "seconds_best": {k: round(v, 2) for k, v in best.items()},
        "docs_per_second": {k: round(len(texts) / v, 2) for k, v in best.items()},
        "overhead_no_cache_pct": round(100 * (best["ensemble_no_cache"] / best["sentence_transformers"] - 1), 2),
        "overhead_cold_cache_pct": round(100 * (best["ensemble_cold_cache"] / best["sentence_transformers"] - 1), 2),
    }


def cached_reindex(model: str, data: Path, work: Path) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        seconds = []
        for attempt in range(2):
            embedder = EnsembleDocumentEmbedder(members=[model], cache_dir=cache, meta_fields_to_embed=["title"],
                                                embedding_separator=" ")
            store = open_document_store(path=str(work / f"qdrant-{attempt}"), index="scifact",
                                        embedding_dim=384, recreate_index=True, progress_bar=False)
            chunker = DocumentChunker(split_length=100_000, split_overlap=0)
            started = time.perf_counter()
            embedder.warm_up()  # loading the model counts: it is part of every real run
            pipeline = build_indexing_pipeline(embedder, store, chunker=chunker)
            result = pipeline.run({"converter": {"sources": [str(data)]}})
            seconds.append(time.perf_counter() - started)
            store.close()
            print(f"indexing run {attempt + 1}: {seconds[-1]:.1f} s, {result['writer']['documents_written']} documents",
                  flush=True)
    return {"first_run_seconds": round(seconds[0], 1), "second_run_seconds": round(seconds[1], 1),
            "speedup": round(seconds[0] / seconds[1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("examples/data/scifact"))
    parser.add_argument("--models", type=Path, default=Path("~/.cache/hardneg-models").expanduser())
    parser.add_argument("--work", type=Path, default=Path("runs/embedding-speed"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/scifact/embedding_speed.json"))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="measure only these parts; the others are kept from --out when it exists")
    args = parser.parse_args()
    corpus = load_corpus(args.data / "corpus.jsonl")
    texts = [f"{d.meta.get('title', '')} {d.content}".strip() for d in corpus]
    minilm, mpnet = str(args.models / "all-MiniLM-L6-v2"), str(args.models / "all-mpnet-base-v2")
    parts = {
        "overhead_single": lambda: overhead([minilm], texts[:1000], 32, rounds=3),
        "overhead_ensemble": lambda: overhead([minilm, mpnet], texts[:200], 32, rounds=2),
        "cache": lambda: cached_reindex(minilm, args.data, args.work),
    }
    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    record |= {"command": "python benchmarks/embedding_speed.py", "machine": machine()}
    record |= {name: parts[name]() for name in args.parts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
