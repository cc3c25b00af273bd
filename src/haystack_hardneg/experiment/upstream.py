"""The computes of the stages every strategy's training reads: the index, the BM25 index, the first stage, its
fusion and the mining (table.py declares when each runs, under which key, writing which files). Each is a function
of the running experiment, which holds what they share: the store, the embedder, the mining data."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from haystack_hardneg.embed.components import EnsembleDocumentEmbedder
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.first_stage import choose_lexical_weight, hybrid_candidates, retrieve_lists
from haystack_hardneg.experiment.folder import SPLITS, RunFolder
from haystack_hardneg.experiment.keys import first_stage_query_ids, training_query_ids, tuning_query_ids
from haystack_hardneg.experiment.stages import StageRun
from haystack_hardneg.files import atomic_write_text, jsonl_text, read_jsonl
from haystack_hardneg.mine.component import ClusterNegativeMiner, skipped_when_loading
from haystack_hardneg.mine.job import mine_into
from haystack_hardneg.pipelines import build_indexing_pipeline, build_lexical_indexing_pipeline, whole_document_chunker
from haystack_hardneg.store.lexical_components import LexicalIndexWriter, LexicalRetriever


def index(run: StageRun) -> None:
    c = run.config
    embedder = EnsembleDocumentEmbedder(members=c.members, combine=c.combine, cache_dir=c.cache_dir,
                                        meta_fields_to_embed=c.meta_fields, embedding_separator=c.separator,
                                        progress_bar=run.progress_bar)
    pipeline = build_indexing_pipeline(embedder, run.store(recreate=True), chunker=whole_document_chunker())
    written = pipeline.run({"converter": {"sources": [c.data]}})["writer"]["documents_written"]
    # Reopened without recreate_index for querying (a query pipeline refuses a store that would empty).
    run.close_store()
    atomic_write_text(run.folder / RunFolder.index, json.dumps({"documents_written": written}, indent=2))


def lexical_index(run: StageRun) -> None:
    """The BM25 index of the same converted documents (the lexical member)."""
    c = run.config
    writer = LexicalIndexWriter(index_path=str(run.folder / RunFolder.bm25),
                                language=c.lexical_section.language, meta_fields_to_index=c.meta_fields,
                                separator=c.separator)
    build_lexical_indexing_pipeline(writer, chunker=whole_document_chunker()).run(
        {"converter": {"sources": [c.data]}})


def first_stage(run: StageRun) -> None:
    """Each member kind's own top retrieve_k for the test and the training queries, through Haystack's
    retrievers (Qdrant; BM25). Their fusion is the next stage."""
    c = run.config
    lexical = None
    if c.lexical_section is not None:
        lexical = LexicalRetriever(index_path=str(run.folder / RunFolder.bm25), top_k=c.retrieve_k)
        lexical.warm_up()
    for name, split in run.splits.items():
        # Only the training queries a later stage reads: max_train_queries bounds this stage's time too.
        split = replace(split, queries={q: split.queries[q] for q in first_stage_query_ids(c, name, split)})
        records = retrieve_lists(split, run.text_embedder(), run.store(), lexical, c.retrieve_k,
                                 meta_fields=c.meta_fields, separator=c.separator,
                                 min_relevance=c.min_relevance if name == "train" else 1,
                                 desc=f"First stage ({name})", progress_bar=run.progress_bar)
        atomic_write_text(run.folder / RunFolder.lists(name), jsonl_text(records))


def hybrid(run: StageRun) -> None:
    """The first stage's candidates: the dense list alone, or fused with BM25 at a weight chosen on the
    *training* queries (``lexical.weight: auto``) or given."""
    c = run.config
    lists = {name: read_jsonl(run.folder / RunFolder.lists(name)) for name in SPLITS}
    choice: dict[str, Any] = {"lexical": c.lexical_section is not None}
    weight = None
    if c.lexical_section is not None:
        weight = c.lexical_section.weight
        if weight == "auto":
            # Only the training queries within the budget (max_train_queries, tuning_queries) choose it.
            budget = set(tuning_query_ids(c, run.splits["train"]))
            tuning = [r for r in lists["train"] if r["query_id"] in budget]
            weight, measured = choose_lexical_weight(tuning, c.retrieve_k)
            choice.update(chosen_on=f"{len(tuning)} training queries", by_weight=measured)
        choice["lexical_weight"] = weight = float(weight)
    for name, records in lists.items():
        atomic_write_text(run.folder / RunFolder.candidates(name),
                          jsonl_text(hybrid_candidates(records, weight, c.retrieve_k)))
    atomic_write_text(run.folder / RunFolder.choice, json.dumps(choice, indent=2))


def _mining(run: StageRun):
    """The data every strategy mines from (store vectors, query vectors), built once for all."""
    if run.mining_data is None:
        c, train_split = run.config, run.splits["train"]
        miner = ClusterNegativeMiner(text_embedder=run.text_embedder(), document_store=run.store(),
                                     mining=c.mining_config(c.strategies[0]), meta_fields_to_embed=c.meta_fields,
                                     on_missing=c.on_missing, min_relevance=c.min_relevance,
                                     embedding_separator=c.separator, progress_bar=run.progress_bar)
        miner.warm_up()
        data, stats = miner.mining_data(*training_queries(c, train_split))
        stats.add(train_split.stats)  # what loading the split left out, before the miner saw it
        run.mining_data = data, stats
    return run.mining_data


def mine(run: StageRun, name: str) -> None:
    """Triplets of strategy (or variant) ``name``."""
    c = run.config
    data, stats = _mining(run)
    strategy, overrides = c.mining_for(name)
    extra = {"variant": name, "variant_options": overrides} if name != strategy else None
    mine_into(run.folder / RunFolder.mined(name), data, c.mining_config(name), report_extra=extra,
              skipped_when_loading=skipped_when_loading(stats), progress_bar=run.progress_bar)


def training_queries(config: ExperimentConfig, train_split) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    query_ids = training_query_ids(config, train_split)
    return ({q: train_split.queries[q] for q in query_ids}, {q: train_split.qrels[q] for q in query_ids})
