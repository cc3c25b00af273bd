"""ClusterNegativeMiner: the Haystack face of hard-negative mining."""

from __future__ import annotations

from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from haystack_hardneg.embed.components import ENSEMBLE_META_KEY, EnsembleTextEmbedder
from haystack_hardneg.embed.ensemble import normalized_weights
from haystack_hardneg.ingest.beir import DataError, LoadStats, OnMissing, parse_grade, validate_qrels
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.mine.candidates import first_stage_candidates
from haystack_hardneg.mine.config import STRATEGIES, MiningConfig, check_fits_ensemble
from haystack_hardneg.mine.data import MiningData, positives_by_chunk
from haystack_hardneg.mine.job import mine
from haystack_hardneg.mine.triplets import provenance_rows, triplet_rows
from haystack_hardneg.options import as_config, to_mapping
from haystack_hardneg.store.vectors import read_stored_vectors

logger = logging.getLogger(__name__)


def skipped_when_loading(stats: LoadStats) -> dict[str, int]:
    """What judgement validation left out, in the mining report's terms."""
    return {"queries_without_positives": len(stats.queries_without_positives),
            "unknown_judgements": stats.unknown_judgements}


def _as_qrels(positives: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Accept BEIR qrels ({query: {doc: grade}}) or plain records ({query: [doc, ...]})."""
    qrels: dict[str, dict[str, int]] = {}
    for query_id, judged in positives.items():
        if isinstance(judged, dict):
            qrels[str(query_id)] = {str(d): parse_grade(g, f"positives[{query_id!r}][{d!r}]")
                                    for d, g in judged.items()}
        else:
            qrels[str(query_id)] = {str(d): 1 for d in judged}
    return qrels


@component
class ClusterNegativeMiner:
    """
    Mines hard negatives for (query, positive) pairs with an embedding ensemble and clustering.

    For every query and relevant document it returns negatives: documents the ensemble finds close to the query
    (in the clusters of the query and of its positive, ranked by ensemble similarity, inside a rank window) that
    are not relevant. Candidates that look as relevant as the positive are held back and reported as
    ``suspected_positives`` for review. The baselines (``random``, ``bm25``, ``dense`` with one member, and
    ``ensemble`` without clustering) share the interface: switching is the ``strategy`` argument.

    Documents come either from ``run(documents=...)`` (their stored ``embedding`` is used when it was made by
    this ensemble, else they are embedded) or from the ``document_store`` already indexed by the ensemble
    (its vectors are read back, not re-embedded).

    Usage example:
    ```python
    from haystack_hardneg import ClusterNegativeMiner, EnsembleTextEmbedder

    miner = ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=["all-MiniLM-L6-v2"]),
                                 document_store=store, mining={"strategy": "ensemble_cluster", "num_negatives": 5})
    miner.warm_up()
    result = miner.run(queries={"q1": "does vitamin D help bones?"}, positives={"q1": ["doc-17"]})
    result["triplets"][0]  # {"query": ..., "positive": ..., "negative_1": ..., ...}
    ```
    """

    def __init__(
        self,
        *,
        text_embedder: EnsembleTextEmbedder,
        document_store: QdrantDocumentStore | None = None,
        mining: MiningConfig | dict[str, Any] | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        on_missing: OnMissing = "error",
        min_relevance: int = 1,
        candidates_k: int = 30,
        progress_bar: bool = True,
    ):
        """
        :param text_embedder: the ensemble (its query side); documents must have been embedded by the same one.
        :param document_store: a Qdrant store indexed by the ensemble, read when ``run`` gets no documents.
        :param mining: how to mine: a ``MiningConfig`` or a mapping of its options (``strategy``,
            ``num_negatives``, ``rank_window``, ``sampling``, ``member``, ``n_clusters``, ``cluster_algorithm``,
            ``guard_ratio``, ``guard_member_agreement``, ``lexical_weight``, ``seed``); ``None``: the defaults.
        :param meta_fields_to_embed: meta fields put before the content in triplet texts (and when embedding).
        :param embedding_separator: separator between those meta fields and the content.
        :param on_missing: ``error`` (default) or ``skip`` for judgements naming unknown queries or documents.
        :param min_relevance: the lowest grade that makes a document a positive to mine for; documents of a lower
            grade above 0 are still never negatives.
        :param candidates_k: also return each query's top-k ensemble candidates (``candidates``), which the
            trainer re-ranks to validate; 0 returns none.
        :param progress_bar: show progress bars.
        """
        self.config = as_config(MiningConfig, mining, where="ClusterNegativeMiner mining")
        if on_missing not in ("error", "skip"):
            raise ValueError("on_missing must be 'error' or 'skip'.")
        check_fits_ensemble(self.config, len(text_embedder.members), text_embedder.combine)
        self.text_embedder = text_embedder
        self.document_store = document_store
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.on_missing = on_missing
        if min_relevance < 1:
            raise ValueError("min_relevance must be >= 1 (a grade of 0 means not relevant).")
        self.min_relevance = min_relevance
        if candidates_k < 0:
            raise ValueError("candidates_k must be >= 0.")
        self.candidates_k = candidates_k
        self.progress_bar = progress_bar

    def warm_up(self) -> None:
        """Load the ensemble's models."""
        self.text_embedder.warm_up()

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            text_embedder=self.text_embedder.to_dict(),
            document_store=self.document_store.to_dict() if self.document_store is not None else None,
            mining=to_mapping(self.config), meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator, on_missing=self.on_missing,
            min_relevance=self.min_relevance, candidates_k=self.candidates_k, progress_bar=self.progress_bar,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClusterNegativeMiner":
        params = dict(data["init_parameters"])
        params["text_embedder"] = EnsembleTextEmbedder.from_dict(params["text_embedder"])
        if params.get("document_store") is not None:
            params["document_store"] = QdrantDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def _text(self, doc: Document) -> str:
        return document_text(doc, self.meta_fields_to_embed, self.embedding_separator)

    def _document_vectors(self, documents: list[Document] | None) -> tuple[list[Document], list[str], np.ndarray]:
        """The documents, their texts and their ensemble vectors (read back, reused, or embedded)."""
        encoder = self.text_embedder.encoder
        accepted = {encoder.identity.key}
        if documents is None:
            if self.document_store is None:
                raise ValueError("Give documents to run() or a document_store to the miner.")
            if encoder.stored_member is not None:
                return self._from_members_store(encoder)
            documents, vectors = read_stored_vectors(self.document_store, expected_ensemble_ids=accepted,
                                                     progress_bar=self.progress_bar)
            return documents, [self._text(d) for d in documents], vectors
        documents = [d for d in documents if d.content and d.content.strip()]
        texts = [self._text(d) for d in documents]
        stored = [d.embedding is not None and d.meta.get(ENSEMBLE_META_KEY) in accepted for d in documents]
        if documents and all(stored):
            return documents, texts, np.asarray([d.embedding for d in documents], dtype=np.float32)
        foreign = [d.id for d, ok in zip(documents, stored) if d.embedding is not None and not ok]
        if foreign:
            logger.warning("{n} document(s) carry vectors of another ensemble (e.g. {ids}); re-embedding them all.",
                           n=len(foreign), ids=foreign[:3])
        return documents, texts, encoder.encode(texts, kind="document")

    def _from_members_store(self, encoder) -> tuple[list[Document], list[str], np.ndarray]:
        """A collection another pipeline wrote with the ``stored`` member's document embedder: its vectors are
        that member's, read as they are; the other members embed the stored texts."""
        documents, stored = read_stored_vectors(self.document_store, progress_bar=self.progress_bar)
        texts = [self._text(d) for d in documents]
        member = encoder.members[encoder.stored_member]
        logger.info("Collection '{index}': {n} vectors read as member '{member}''s; {others} other member(s) embed "
                    "its {n} texts.", index=self.document_store.index, n=len(documents), member=member.name,
                    others=len(encoder.members) - 1)
        return documents, texts, encoder.combine_with_stored(stored, texts)

    def mining_data(self, queries: dict[str, str], positives: dict[str, Any],
                    documents: list[Document] | None = None) -> tuple[MiningData, LoadStats]:
        """Validated arrays and ids for the plain mining functions (also used by the CLI and the experiment)."""
        if not self.text_embedder.encoder.is_loaded:
            raise RuntimeError("ClusterNegativeMiner was not warmed up: call warm_up() before run().")
        documents, texts, vectors = self._document_vectors(documents)
        if not documents:
            raise ValueError("There are no documents to mine negatives from.")
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise ValueError("Document ids must be unique to mine negatives.")
        stats = LoadStats()
        # Judgements name whole documents; a store indexed for RAG may hold them as chunks (meta parent_id).
        parents = [str(d.meta.get("parent_id") or d.id) for d in documents]
        qrels = validate_qrels(_as_qrels(positives), queries, {*parents, *ids}, on_missing=self.on_missing, stats=stats,
                               min_relevance=self.min_relevance)
        if not qrels:
            raise DataError("No query has a relevant document among the given documents: nothing to mine.")
        query_ids = list(qrels)
        encoder = self.text_embedder.encoder
        query_vectors = encoder.encode([queries[q] for q in query_ids], kind="query")
        chosen, relevant = positives_by_chunk(qrels, query_ids, query_vectors, ids, parents, vectors,
                                              self.min_relevance)
        slices = None
        if encoder.combine_mode == "concat":
            bounds = np.cumsum([0, *encoder.member_dimensions])
            slices = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        data = MiningData(
            doc_ids=ids,
            doc_texts=texts,
            doc_vectors=vectors,
            query_ids=query_ids,
            query_texts=[queries[q] for q in query_ids],
            query_vectors=query_vectors,
            positives=chosen,
            relevant=relevant,
            member_slices=slices,
            member_weights=normalized_weights(encoder.members).tolist() if slices else None,
        )
        return data, stats

    @component.output_types(triplets=list[dict], provenance=list[dict], suspected_positives=dict, report=dict,
                            candidates=list[dict])
    def run(
        self,
        queries: dict[str, str],
        positives: dict[str, Any],
        documents: list[Document] | None = None,
    ) -> dict[str, Any]:
        """
        :param queries: query id -> query text.
        :param positives: query id -> relevant document ids (a list) or BEIR judgements ({doc id: grade}).
        :param documents: the corpus; without it the miner reads its ``document_store``.
        :returns: ``triplets`` (rows of query, positive, negative_1..n), ``provenance`` (ids, scores, ranks,
            clusters per row), ``suspected_positives`` (query id -> held-back candidates), ``report`` and
            ``candidates`` (per query, the ensemble's top ``candidates_k`` documents, for validation).
        """
        data, stats = self.mining_data(queries, positives, documents)
        result, report = mine(data, self.config, skipped_when_loading=skipped_when_loading(stats),
                              progress_bar=self.progress_bar)
        query_texts = dict(zip(data.query_ids, data.query_texts))
        doc_texts = dict(zip(data.doc_ids, data.doc_texts))
        return {
            "triplets": triplet_rows(result.pairs, query_texts, doc_texts),
            "provenance": provenance_rows(result),
            "suspected_positives": result.suspected_positives,
            "report": report,
            "candidates": first_stage_candidates(data, self.candidates_k) if self.candidates_k else [],
        }


__all__ = ["ClusterNegativeMiner", "STRATEGIES"]
