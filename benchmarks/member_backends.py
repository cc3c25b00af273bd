"""One ensemble member on each backend: documents/s, cosine to torch's vectors, and the first stage's nDCG@10.

Systems, timed side by side in one run (rounds interleaved, order rotated): the model on torch, on ONNX Runtime
and on OpenVINO (fp32 and int8, exported once into the cache folder; on a CPU with bfloat16 instructions also
torch and OpenVINO computing in bf16), and, with ``--server-url``, the same model
behind an OpenAI-compatible server through Haystack's OpenAI embedders (start one first, e.g. Infinity:
``infinity_emb v2 --model-id ~/.cache/hardneg-models/all-MiniLM-L6-v2 --served-model-name served --port 7997``).
Throughput is measured without the embedding cache on a length-spread sample of the corpus; with ``--full`` each
system also embeds the whole corpus and the test queries (through the cache, so a re-run is cheap) and the test
queries are ranked by exact cosine, as the dense first stage ranks them. A backend the member refuses (its vectors
below cosine 0.999 of torch's) runs on torch; it is also timed as exported, as "<name>, as exported (refused)", to
show what the check turned down. The CPU's model and instruction-set flags are recorded: which backend is fastest
depends on them.

    python benchmarks/member_backends.py --data path/to/scifact --model ~/.cache/hardneg-models/all-MiniLM-L6-v2 \\
        --server-url http://127.0.0.1:7997 --full --json benchmarks/member_backends.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

import numpy as np

from haystack_hardneg.embed.encoder import EnsembleEncoder
from haystack_hardneg.embed.exported import non_default_encoder
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.machine import missing_bf16

BACKENDS = {"torch": {}, "onnx": {"backend": "onnx"}, "onnx int8": {"backend": "onnx", "int8": True},
            "openvino": {"backend": "openvino"}, "openvino int8": {"backend": "openvino", "int8": True}}
# Timed only on a CPU with bfloat16 instructions (elsewhere the member refuses bf16 and runs fp32).
BF16_BACKENDS = {"torch bf16": {"precision": "bf16"}, "openvino bf16": {"backend": "openvino", "precision": "bf16"},
                 "openvino int8 bf16": {"backend": "openvino", "int8": True, "precision": "bf16"}}


def members(model: str, server_url: str | None) -> dict[str, dict]:
    backends = BACKENDS if missing_bf16() else {**BACKENDS, **BF16_BACKENDS}
    systems = {name: {"model": model, **settings} for name, settings in backends.items()}
    if server_url:
        from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
        from haystack.utils import Secret

        os.environ.setdefault("BENCHMARK_EMBEDDINGS_KEY", "none")
        key = Secret.from_env_var("BENCHMARK_EMBEDDINGS_KEY")
        systems["server"] = {
            "text_embedder": OpenAITextEmbedder(api_key=key, model="served", api_base_url=server_url),
            "document_embedder": OpenAIDocumentEmbedder(api_key=key, model="served", api_base_url=server_url,
                                                        progress_bar=False)}
    return systems


def as_exported(member: dict, refused: EnsembleEncoder) -> EnsembleEncoder:
    """An uncached encoder of ``member`` that runs the export its check refused (for timing only); loaded on torch,
    so that the refused check is not run again, then given the export."""
    plain = {**member, "backend": "torch", "int8": False, "precision": "fp32"}
    encoder = EnsembleEncoder([plain], cache_dir=None, progress_bar=False)
    encoder.load()
    backend = refused.backends[0]
    encoder.backends[0].exported = non_default_encoder(
        backend.model, backend.fingerprint, member.get("backend", "torch"), member.get("int8", False),
        refused.export_dir, bf16=member.get("precision") == "bf16")
    return encoder


def spread_sample(texts: list[str], size: int, seed: int) -> list[str]:
    by_length = sorted(texts, key=len)
    chosen = [by_length[int(i * len(by_length) / size)] for i in range(min(size, len(by_length)))]
    random.Random(seed).shuffle(chosen)
    return chosen


def throughput(encoders: dict[str, EnsembleEncoder], sample: list[str], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in encoders}
    names = list(encoders)
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            started = time.perf_counter()
            encoders[name].encode_member(0, sample, "document")
            times[name].append(time.perf_counter() - started)
    return times


def first_stage(encoder: EnsembleEncoder, split, meta_fields: list[str]) -> float:
    corpus = [document_text(d, meta_fields, " ") for d in split.corpus]
    ids = [d.id for d in split.corpus]
    documents = encoder.encode_member(0, corpus, "document")
    query_ids = list(split.queries)
    queries = encoder.encode_member(0, [split.queries[q] for q in query_ids], "query")
    scores = queries @ documents.T
    run = {}
    for row, query in enumerate(query_ids):
        top = np.argsort(-scores[row])[:100]
        run[query] = {ids[i]: float(scores[row, i]) for i in top}
    return evaluate_run(split.qrels, run, ["ndcg@10"])["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--server-url")
    parser.add_argument("--sample", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--full", action="store_true", help="also the first stage's nDCG@10 on the test split")
    parser.add_argument("--cache-dir", default="~/.cache/haystack-hardneg/embeddings")
    parser.add_argument("--json")
    args = parser.parse_args()

    split = load_beir(args.data, "test")
    texts = [document_text(d, ["title"], " ") for d in split.corpus]
    sample = spread_sample(texts, args.sample, seed=0)
    timed, cached, report = {}, {}, {"machine": machine(), "model": args.model, "sample": len(sample),
                                     "rounds": args.rounds, "systems": {}}
    for name, member in members(args.model, args.server_url).items():
        member = {**member, "batch_size": args.batch_size}
        started = time.perf_counter()
        timed[name] = EnsembleEncoder([member], cache_dir=None, progress_bar=False)
        timed[name].load()
        cached[name] = EnsembleEncoder([member], cache_dir=args.cache_dir, progress_bar=False)
        cached[name].load()
        backend = timed[name].backends[0]
        runs_on = name if getattr(backend, "exported", True) is not None or name == "torch" else "torch (refused)"
        report["systems"][name] = {"runs_on": runs_on, "load_and_export_seconds": round(time.perf_counter() -
                                                                                          started, 1)}
        if runs_on == "torch (refused)":
            timed[f"{name}, as exported (refused)"] = as_exported(member, timed[name])
            report["systems"][f"{name}, as exported (refused)"] = {"runs_on": name, "load_and_export_seconds": 0.0}
    for encoder in timed.values():
        encoder.encode_member(0, sample[:8], "document")  # first calls are slow: not timed
    times = throughput(timed, sample, args.rounds)
    reference = timed["torch"].encode_member(0, sample, "document")
    for name, encoder in timed.items():
        vectors = encoder.encode_member(0, sample, "document")
        cosines = np.sum(reference * vectors, axis=1)
        entry = report["systems"][name]
        entry["docs_per_second"] = round(len(sample) / statistics.median(times[name]), 1)
        entry["speed_vs_torch"] = round(statistics.median(times["torch"]) / statistics.median(times[name]), 2)
        entry["seconds"] = [round(t, 2) for t in times[name]]
        entry["cosine_to_torch"] = {"min": round(float(cosines.min()), 6), "mean": round(float(cosines.mean()), 6)}
        if args.full and name in cached:
            entry["first_stage_ndcg@10"] = round(first_stage(cached[name], split, ["title"]), 4)
        print(json.dumps({name: entry}), flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2))
    print("\n| system | runs on | docs/s | vs torch | min cosine | nDCG@10 |\n|---|---|---|---|---|---|")
    for name, entry in report["systems"].items():
        print(f"| {name} | {entry['runs_on']} | {entry['docs_per_second']} | {entry['speed_vs_torch']} | "
              f"{entry['cosine_to_torch']['min']} | {entry.get('first_stage_ndcg@10', '')} |")


if __name__ == "__main__":
    main()
