"""One ensemble member served by an OpenAI-compatible server instead of loaded locally: the same vectors, and the
same mined triplets for the ensemble {served MiniLM, local mpnet} as for {local MiniLM, local mpnet}?

On a slice of SciFact (training queries and their relevant documents, plus a seeded sample of the rest of the
corpus), each document is embedded by the local MiniLM and through the server (Haystack's OpenAI embedders); the
cosine between the two vectors is recorded, then ensemble_cluster triplets are mined with each ensemble and
compared row by row. Start the server first, e.g. Infinity serving the same MiniLM folder:
``infinity_emb v2 --model-id ~/.cache/hardneg-models/all-MiniLM-L6-v2 --served-model-name served --port 7997``.

    python benchmarks/served_member_triplets.py --data path/to/scifact \\
        --minilm ~/.cache/hardneg-models/all-MiniLM-L6-v2 --mpnet ~/.cache/hardneg-models/all-mpnet-base-v2 \\
        --server-url http://127.0.0.1:7997 \\
        --json benchmarks/scifact/served_member_triplets.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

import numpy as np
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.utils import Secret

from haystack_hardneg import ClusterNegativeMiner, EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.ingest.beir import load_beir

KEY = "HARDNEG_SERVER_API_KEY"
MINING = {"strategy": "ensemble_cluster", "num_negatives": 5}


def served_pair(url: str) -> dict:
    key = Secret.from_env_var(KEY)
    return {"text_embedder": OpenAITextEmbedder(api_key=key, model="served", api_base_url=url),
            "document_embedder": OpenAIDocumentEmbedder(api_key=key, model="served", api_base_url=url,
                                                        progress_bar=False)}


def data_slice(data: str, queries: int, documents: int, seed: int):
    split = load_beir(data, "train")
    chosen = sorted(split.queries)[:queries]
    relevant = {d for q in chosen for d in split.qrels[q]}
    rest = sorted(d.id for d in split.corpus if d.id not in relevant)
    keep = relevant | set(random.Random(seed).sample(rest, max(documents - len(relevant), 0)))
    return ({q: split.queries[q] for q in chosen}, {q: split.qrels[q] for q in chosen},
            [d for d in split.corpus if d.id in keep])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--minilm", required=True)
    parser.add_argument("--mpnet", required=True)
    parser.add_argument("--server-url", required=True)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--cache-dir", help="embedding cache (the local members' vectors are reused from it)")
    parser.add_argument("--json", required=True, type=Path)
    args = parser.parse_args()
    os.environ.setdefault(KEY, "not-a-real-key")  # an OpenAI-compatible server without keys takes any
    queries, qrels, corpus = data_slice(args.data, args.queries, args.documents, seed=0)

    local = EnsembleDocumentEmbedder(members=[args.minilm], cache_dir=args.cache_dir)
    remote = EnsembleDocumentEmbedder(members=[served_pair(args.server_url)])
    vectors = {}
    for name, embedder in (("local", local), ("served", remote)):
        embedder.warm_up()
        vectors[name] = np.array([d.embedding for d in embedder.run(corpus)["documents"]])
    cosines = np.einsum("ij,ij->i", vectors["local"], vectors["served"])

    triplets = {}
    for name, first in (("served", served_pair(args.server_url)), ("local", args.minilm)):
        members = [first, args.mpnet]
        miner = ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=members, cache_dir=args.cache_dir),
                                     mining=MINING, meta_fields_to_embed=["title"], embedding_separator=" ")
        miner.warm_up()
        mined = miner.run(queries=queries, positives=qrels, documents=corpus)
        triplets[name] = {(p["query_id"], p["positive_id"]): p["negative_ids"] for p in mined["provenance"]}
    pairs = sorted(set(triplets["local"]) | set(triplets["served"]))
    differing = [p for p in pairs if triplets["local"].get(p) != triplets["served"].get(p)]
    out = {"machine": machine(), "data": args.data, "queries": len(queries), "documents": len(corpus),
           "mining": MINING, "cosine_served_to_local": {"min": float(cosines.min()), "mean": float(cosines.mean())},
           "triplets": {"local": len(triplets["local"]), "served": len(triplets["served"]),
                        "pairs_differing": len(differing),
                        "negatives_differing": sum(len(set(triplets["local"].get(p, ())) -
                                                       set(triplets["served"].get(p, ()))) for p in differing),
                        "examples": [{"pair": list(p), "local": triplets["local"].get(p),
                                      "served": triplets["served"].get(p)} for p in differing[:5]]}}
    atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
