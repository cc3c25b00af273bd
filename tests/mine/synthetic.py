"""A small fixed corpus of synthetic two-member ensemble vectors with known topics."""

from __future__ import annotations

import numpy as np

from haystack_hardneg.mine.data import MiningData

TOPIC_WORDS = ["heart", "liver", "virus", "tumor", "brain", "blood", "vaccine", "kidney"]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def synthetic_data(n_docs: int = 160, n_queries: int = 16, dim: int = 16, seed: int = 0) -> MiningData:
    """``n_docs`` documents in 8 topics; each query has one positive in its topic. Two members of ``dim`` each."""
    rng = np.random.default_rng(seed)
    centers = [_unit(rng.normal(size=(8, dim))) for _ in range(2)]
    topics = np.arange(n_docs) % 8
    members_docs = [_unit(c[topics] + 0.35 * rng.normal(size=(n_docs, dim))) for c in centers]
    query_topics = np.arange(n_queries) % 8
    members_queries = [_unit(c[query_topics] + 0.35 * rng.normal(size=(n_queries, dim))) for c in centers]
    scale = np.sqrt(0.5)
    doc_vectors = np.hstack([scale * m for m in members_docs]).astype(np.float32)
    query_vectors = np.hstack([scale * m for m in members_queries]).astype(np.float32)
    doc_ids = [f"d{i}" for i in range(n_docs)]
    doc_texts = [f"{TOPIC_WORDS[t]} study number {i}" for i, t in enumerate(topics)]
    positives = {f"q{j}": [f"d{j + 8 * (j // 8) + 8}"] for j in range(n_queries)}  # a document of the same topic
    return MiningData(
        doc_ids=doc_ids, doc_texts=doc_texts, doc_vectors=doc_vectors,
        query_ids=[f"q{j}" for j in range(n_queries)],
        query_texts=[f"what about the {TOPIC_WORDS[t]}" for t in query_topics],
        query_vectors=query_vectors, positives=positives,
        member_slices=[(0, dim), (dim, 2 * dim)], member_weights=[0.5, 0.5],
    )
