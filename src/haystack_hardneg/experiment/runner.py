"""The experiment's stages, each cached (see stages.py):

    index        the corpus through the indexing pipeline into Qdrant (the ensemble's vectors)
    lexical_index  the same documents into a BM25 index, when the config has a lexical member
    first_stage  test and training queries through Haystack's retrievers: each member kind's top retrieve_k
    hybrid       the first stage's candidates: dense alone, or fused with BM25 at a weight chosen on training queries
    mine/<s>     triplets for strategy s from the store's vectors (and, once, the training queries' candidates)
    train/<s>    one cross-encoder per strategy, same base, budget and seed; fusion weight chosen on validation
    rerank/<s>   that cross-encoder's scores for the top rerank_k of the test and the held-out training queries
    (report)     metrics, paired tests, short/long subsets, results.json, results.md and charts: always redone
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.stages import StageCache, file_fingerprint, folder_fingerprint, stage_key
from haystack_hardneg.files import atomic_write_text, jsonl_text, read_jsonl

PACKAGES = ("haystack-hardneg", "haystack-ai", "sentence-transformers", "transformers", "torch", "scikit-learn",
            "qdrant-client", "qdrant-haystack", "ranx", "bm25s", "trafilatura", "numpy")
COLLECTION = "experiment"
logger = logging.getLogger(__name__)


def _whole_documents():
    """No chunking: BEIR judges whole documents, so the indexed unit must be the judged one."""
    from haystack_hardneg import DocumentChunker

    return DocumentChunker(split_by="word", split_length=1_000_000, split_overlap=0)


def versions() -> dict[str, str | None]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine() -> dict[str, Any]:
    import os

    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}



def data_fingerprint(config: ExperimentConfig) -> str:
    data = Path(config.data)
    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{config.train_split}.tsv",
                   f"qrels/{config.test_split}.tsv"):
        if not (data / needed).is_file():
            raise FileNotFoundError(f"The experiment needs {data / needed} (BEIR layout).")
    return file_fingerprint(data / "corpus.jsonl", data / "queries.jsonl",
                            data / "qrels" / f"{config.train_split}.tsv", data / "qrels" / f"{config.test_split}.tsv")


def training_query_ids(config: ExperimentConfig, train_split) -> list[str]:
    """The training queries, cut to ``max_train_queries`` (a fixed, seeded sample) when set."""
    import random

    query_ids = sorted(train_split.qrels)
    limit = config.max_train_queries
    if limit is not None and limit < len(query_ids):
        query_ids = sorted(random.Random(config.seed).sample(query_ids, limit))
    return query_ids


MODELS_FILE = "models.json"


def model_fingerprints(config: ExperimentConfig) -> dict[str, str]:
    """Every local model folder the run uses (ensemble members, the re-rankers' base) by a hash of its files. Stage
    keys name models by path; this catches a folder whose model was replaced in place (a hub id is not checked)."""
    paths = [m["model"] for m in config.members] + [config.training["base_model"]]
    return {path: folder_fingerprint(path) for path in dict.fromkeys(paths) if Path(path).expanduser().is_dir()}


# Each stage's key: everything the stage depends on, upstream keys included. Pure functions of the config, the data
# and the upstream keys (no store, no models, no lock), so that a report can check a run folder against them.
def ensemble_settings(c: ExperimentConfig) -> dict[str, Any]:
    return {"members": c.members, "combine": c.combine, "meta_fields": c.meta_fields, "separator": c.separator}


def index_key(c: ExperimentConfig, data_key: str) -> str:
    return stage_key(data=data_key, ensemble=ensemble_settings(c), store=c.store)


def lexical_index_key(c: ExperimentConfig, data_key: str) -> str | None:
    if c.lexical is None:
        return None
    return stage_key(data=data_key, meta_fields=c.meta_fields, separator=c.separator,
                     language=c.lexical.get("language", "english"))


def first_stage_key(c: ExperimentConfig, index: str, lexical: str | None, splits: dict[str, Any]) -> str:
    return stage_key(index=index, lexical=lexical, retrieve_k=c.retrieve_k, splits=sorted(splits),
                     queries={name: sorted(split.qrels) for name, split in splits.items()})


def hybrid_key(c: ExperimentConfig, first_stage: str, train_split) -> str:
    return stage_key(first_stage=first_stage, lexical=c.lexical is not None,
                     weight=(c.lexical or {}).get("weight", "auto"), budget=training_query_ids(c, train_split))


def mine_key(c: ExperimentConfig, index: str, name: str, train_split) -> str:
    strategy, overrides = c.mining_for(name)
    # A built-in strategy has no overrides: its key is the one it always had.
    return stage_key(index=index, mining={"seed": c.seed, **c.mining, **overrides}, strategy=strategy,
                     queries=training_query_ids(c, train_split))


def training_options(c: ExperimentConfig) -> dict[str, Any]:
    """Every training option with its default filled in, so that a changed default retrains too (the stage sets
    the output folder, strategy and description itself; the seed is keyed apart)."""
    from haystack_hardneg.train.heads import resolve_head
    from haystack_hardneg.train.config import TrainingConfig

    options = {k: v for k, v in asdict(TrainingConfig(output_dir="", **c.training)).items() if k != "output_dir"}
    head = resolve_head(options["base_model"], options["head"])
    if head != "mean":  # what head "auto" became; keys written while it always meant "mean" stay valid
        options["resolved_head"] = head
    return options


def train_key(c: ExperimentConfig, mine: str, hybrid: str) -> str:
    from haystack_hardneg.train.trainer import VALIDATION_SPLIT

    return stage_key(mine=mine, training=training_options(c), seed=c.seed, validation=hybrid, rerank_k=c.rerank_k,
                     validation_split=VALIDATION_SPLIT)


def rerank_key(c: ExperimentConfig, hybrid: str, train: str) -> str:
    return stage_key(first_stage=hybrid, train=train, rerank_k=c.rerank_k)


def expected_keys(c: ExperimentConfig, test_split, train_split) -> dict[str, str | None]:
    """The key every stage of ``c`` would be recorded under, without running any."""
    data_key = data_fingerprint(c)
    keys: dict[str, str | None] = {"index": index_key(c, data_key), "lexical_index": lexical_index_key(c, data_key)}
    keys["first_stage"] = first_stage_key(c, keys["index"], keys["lexical_index"],
                                          {"test": test_split, "train": train_split})
    keys["hybrid"] = hybrid_key(c, keys["first_stage"], train_split)
    for name in c.strategies:
        keys[f"mine/{name}"] = mine_key(c, keys["index"], name, train_split)
        keys[f"train/{name}"] = train_key(c, keys[f"mine/{name}"], keys["hybrid"])
        keys[f"rerank/{name}"] = rerank_key(c, keys["hybrid"], keys[f"train/{name}"])
    return keys


class Experiment:
    """Runs (or resumes) an experiment in ``config.out``; ``run()`` returns the results."""

    def __init__(self, config: ExperimentConfig, *, progress_bar: bool = True):
        self.config = config.resolved()
        self.out = Path(self.config.out)
        self.progress_bar = progress_bar
        self.data_key = data_fingerprint(self.config)
        self.cache = StageCache(self.out)
        self._store = None
        self._text_embedder = None
        try:
            self._check_models()
        except BaseException:
            self.cache.close()
            raise

    def _check_models(self) -> None:
        """Stages computed with a model folder whose contents have changed since would be reused under the same
        keys: refuse, and leave the run folder as it is."""
        path = self.out / MODELS_FILE
        current = model_fingerprints(self.config)
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        changed = sorted(p for p in current if p in recorded and recorded[p] != current[p]
                         and recorded[p] != folder_fingerprint(p, hidden_folders=True))  # recorded before 0.1.1
        members = {m["model"] for m in self.config.members}
        # The members enter every stage (the index); the re-rankers' base only training (an unfinished one too: its
        # checkpoints resume) and re-ranking.
        uses_base = any(name.startswith(("train/", "rerank/")) for name in self.cache.records) or \
            any((self.out / "train").glob("*/checkpoints"))
        used = [p for p in changed if (self.cache.records if p in members else uses_base)]
        if used:
            raise ValueError(f"The model folder(s) {used} changed since the stages in {self.out} were computed "
                             f"with them (the cache knows models by path): run into another --out, or delete "
                             f"{self.out} to start over.")
        atomic_write_text(path, json.dumps({**recorded, **current}, indent=2))

    # -- shared pieces ---------------------------------------------------------------------------------------
    def text_embedder(self):
        from haystack_hardneg import EnsembleTextEmbedder

        if self._text_embedder is None:
            self._text_embedder = EnsembleTextEmbedder(members=self.config.members, combine=self.config.combine,
                                                       cache_dir=self.config.cache_dir)
            self._text_embedder.warm_up()
        return self._text_embedder

    def store(self, *, recreate: bool = False):
        from haystack_hardneg import open_document_store

        if self._store is not None and not recreate:
            return self._store
        self._close_store()
        settings = dict(self.config.store)
        index = settings.pop("index", COLLECTION)
        if not any(k in settings for k in ("url", "path", "location")):
            settings["path"] = str(self.out / "qdrant")
        if "api_key_env" in settings:
            from haystack.utils import Secret

            settings["api_key"] = Secret.from_env_var(settings.pop("api_key_env"))
        self._store = open_document_store(index=index, embedding_dim=self.text_embedder().encoder.dimension,
                                          recreate_index=recreate, progress_bar=False, **settings)
        return self._store

    # -- stages ----------------------------------------------------------------------------------------------
    def index(self) -> str:
        key = index_key(self.config, self.data_key)

        def compute() -> None:
            from haystack_hardneg import EnsembleDocumentEmbedder, build_indexing_pipeline

            c = self.config
            embedder = EnsembleDocumentEmbedder(members=c.members, combine=c.combine, cache_dir=c.cache_dir,
                                                meta_fields_to_embed=c.meta_fields, embedding_separator=c.separator,
                                                progress_bar=self.progress_bar)
            pipeline = build_indexing_pipeline(embedder, self.store(recreate=True), chunker=_whole_documents())
            written = pipeline.run({"converter": {"sources": [c.data]}})["writer"]["documents_written"]
            # Reopened without recreate_index for querying (a query pipeline refuses a store that would empty).
            self._close_store()
            atomic_write_text(self.out / "index.json", json.dumps({"documents_written": written}, indent=2))

        self.cache.run("index", key, ["index.json"], compute)
        return key

    def lexical_index(self) -> str | None:
        """The BM25 index of the same converted documents (the lexical member), when the config has one."""
        if self.config.lexical is None:
            return None
        c = self.config
        language = c.lexical.get("language", "english")
        key = lexical_index_key(c, self.data_key)

        def compute() -> None:
            from haystack_hardneg import LexicalIndexWriter
            from haystack_hardneg.pipelines import build_lexical_indexing_pipeline

            writer = LexicalIndexWriter(index_path=str(self.out / "bm25"), language=language,
                                        meta_fields_to_index=c.meta_fields, separator=c.separator)
            build_lexical_indexing_pipeline(writer, chunker=_whole_documents()).run(
                {"converter": {"sources": [c.data]}})

        self.cache.run("lexical_index", key, ["bm25"], compute)
        return key

    def first_stage(self, index: str, lexical_key: str | None, splits: dict[str, Any]) -> str:
        """Each member kind's own top retrieve_k for the test and the training queries, through Haystack's
        retrievers (Qdrant; BM25): ``first_stage/<split>_lists.jsonl``. Their fusion is the next stage."""
        c = self.config
        key = first_stage_key(c, index, lexical_key, splits)

        def compute() -> None:
            from haystack_hardneg import LexicalRetriever
            from haystack_hardneg.ingest.text import document_text
            from haystack_hardneg.pipelines import build_query_pipeline, query_documents
            from tqdm.auto import tqdm

            dense = build_query_pipeline(self.text_embedder(), self.store(), top_k=c.retrieve_k)
            lexical = None
            if lexical_key is not None:
                lexical = LexicalRetriever(index_path=str(self.out / "bm25"), top_k=c.retrieve_k)
                lexical.warm_up()

            def listed(documents) -> list[dict[str, Any]]:
                return [{"id": d.id, "score": float(d.score),
                         "text": document_text(d, c.meta_fields, c.separator)} for d in documents]

            for name, split in splits.items():
                records = []
                for query_id, text in tqdm(split.queries.items(), desc=f"First stage ({name})", unit="query",
                                           disable=not self.progress_bar):
                    record = {"query_id": query_id, "query": text,
                              "positive_ids": [d for d, g in split.qrels[query_id].items() if g > 0],
                              "dense": listed(query_documents(dense, text))}
                    if lexical is not None:
                        record["lexical"] = listed(lexical.run(query=text)["documents"])
                    records.append(record)
                atomic_write_text(self.out / "first_stage" / f"{name}_lists.jsonl", jsonl_text(records))

        self.cache.run("first_stage", key, [f"first_stage/{name}_lists.jsonl" for name in splits], compute)
        return key

    def hybrid(self, first_stage: str, train_split) -> str:
        """The first stage's candidates: the dense list alone, or fused with BM25 at a weight chosen on the
        *training* queries (``lexical.weight: auto``) or given. ``first_stage/<split>_candidates.jsonl``."""
        from haystack_hardneg.evaluate.selection import choose_setting
        from haystack_hardneg.rank.fusion import fuse_rankings

        c = self.config
        weight_setting = (c.lexical or {}).get("weight", "auto")
        has_lexical = c.lexical is not None
        budget = training_query_ids(c, train_split)
        key = hybrid_key(c, first_stage, train_split)

        def candidates(records, weight: float | None) -> list[dict[str, Any]]:
            out = []
            for record in records:
                texts = {d["id"]: d["text"] for d in [*record["dense"], *record.get("lexical", [])]}
                if weight is None:
                    scores = {d["id"]: d["score"] for d in record["dense"]}
                else:
                    scores = fuse_rankings({d["id"]: d["score"] for d in record["dense"]},
                                           {d["id"]: d["score"] for d in record.get("lexical", [])}, weight)
                ranked = sorted(scores, key=lambda d: -scores[d])[: c.retrieve_k]
                out.append({k: record[k] for k in ("query_id", "query", "positive_ids")} |
                           {"candidates": [{"id": d, "score": scores[d], "text": texts[d]} for d in ranked]})
            return out

        def compute() -> None:
            lists = {name: read_jsonl(self.out / "first_stage" / f"{name}_lists.jsonl") for name in ("test", "train")}
            choice: dict[str, Any] = {"lexical": has_lexical}
            weight = None
            if has_lexical:
                # Only the training queries within the budget (max_train_queries) choose the weight.
                allowed = set(budget)
                tuning = [r for r in lists["train"] if r["query_id"] in allowed]
                train_qrels = {r["query_id"]: {d: 1 for d in r["positive_ids"]} for r in tuning}
                if weight_setting == "auto":
                    grid = [round(0.1 * i, 1) for i in range(11)]
                    runs = {w: {r["query_id"]: {d["id"]: d["score"] for d in r["candidates"]}
                                for r in candidates(tuning, w)} for w in grid}
                    weight, measured = choose_setting(train_qrels, runs)
                    choice.update(chosen_on=f"{len(train_qrels)} training queries", by_weight=measured)
                else:
                    weight = float(weight_setting)
                choice["lexical_weight"] = weight
            for name, records in lists.items():
                atomic_write_text(self.out / "first_stage" / f"{name}_candidates.jsonl",
                                  jsonl_text(candidates(records, weight)))
            atomic_write_text(self.out / "first_stage" / "choice.json", json.dumps(choice, indent=2))

        self.cache.run("hybrid", key, ["first_stage/test_candidates.jsonl", "first_stage/train_candidates.jsonl",
                                       "first_stage/choice.json"], compute)
        return key

    def mine(self, index: str, train_split) -> dict[str, str]:
        """Triplets per strategy; the mining data (store vectors, query vectors) is built once for all."""
        from haystack_hardneg.mine.component import ClusterNegativeMiner, skipped_when_loading
        from haystack_hardneg.mine.negatives import mine_negatives
        from haystack_hardneg.mine.report import mining_report
        from haystack_hardneg.mine.triplets import write_triplets

        c = self.config
        mining = {"seed": c.seed, **c.mining}
        queries, qrels = self.training_queries(train_split)
        keys = {name: mine_key(c, index, name, train_split) for name in c.strategies}
        if all(self.cache.is_done(f"mine/{s}", keys[s]) for s in c.strategies):
            self.cache.reused.extend(f"mine/{s}" for s in c.strategies)
            return keys
        miner = ClusterNegativeMiner(text_embedder=self.text_embedder(), document_store=self.store(),
                                     meta_fields_to_embed=c.meta_fields, embedding_separator=c.separator,
                                     progress_bar=self.progress_bar, **mining)
        miner.warm_up()
        data, stats = miner.mining_data(queries, qrels)
        query_texts, doc_texts = dict(zip(data.query_ids, data.query_texts)), dict(zip(data.doc_ids, data.doc_texts))
        for name in c.strategies:
            folder = self.out / "mine" / name
            strategy, overrides = c.mining_for(name)

            def compute(name=name, strategy=strategy, overrides=overrides, folder=folder) -> None:
                started = time.perf_counter()
                result = mine_negatives(data, replace(miner.config, strategy=strategy, **overrides),
                                        progress_bar=self.progress_bar)
                report = mining_report(data, result, seconds=time.perf_counter() - started,
                                       skipped_when_loading=skipped_when_loading(stats))
                if name != strategy:
                    report.update(variant=name, variant_options=overrides)
                write_triplets(folder, result, query_texts, doc_texts)
                atomic_write_text(folder / "report.json", json.dumps(report, indent=2))

            self.cache.run(f"mine/{name}", keys[name],
                           [f"mine/{name}/triplets.jsonl", f"mine/{name}/report.json"], compute)
        return keys

    def training_queries(self, train_split) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        query_ids = training_query_ids(self.config, train_split)
        return ({q: train_split.queries[q] for q in query_ids}, {q: train_split.qrels[q] for q in query_ids})

    def train(self, strategy: str, mine: str, hybrid: str) -> str:
        """One cross-encoder on the strategy's triplets, validated on its held-out queries' top rerank_k from the
        experiment's own first stage (the candidates it will re-rank at test time)."""
        from haystack_hardneg.mine.triplets import load_triplets
        from haystack_hardneg.train.config import TrainingConfig
        from haystack_hardneg.train.trainer import train_cross_encoder

        c = self.config
        key = train_key(c, mine, hybrid)
        folder = self.out / "train" / strategy

        def compute() -> None:
            config = TrainingConfig(output_dir=str(folder), strategy=strategy, seed=c.seed,
                                    data_description=f"{Path(c.data).name} {c.train_split} triplets", **c.training)
            # An interrupted run of the same stage continues from its last checkpoint.
            resume = (folder / "checkpoints").is_dir() and (folder / "stage_key").is_file() and \
                (folder / "stage_key").read_text() == key
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "stage_key", key)
            candidates = [dict(r, candidates=r["candidates"][: c.rerank_k])
                          for r in read_jsonl(self.out / "first_stage" / "train_candidates.jsonl")]
            train_cross_encoder(load_triplets(self.out / "mine" / strategy / "triplets.jsonl"), config,
                                resume=resume, progress_bar=self.progress_bar, candidates=candidates)

        self.cache.run(f"train/{strategy}", key,
                       [f"train/{strategy}/model", f"train/{strategy}/training_report.json"], compute)
        return key

    def rerank(self, strategy: str, hybrid: str, train: str) -> None:
        """The re-ranker's scores for the top rerank_k of every test query and of its held-out (validation)
        training queries: the fusion weight with the first stage is chosen on the latter, then applied to the
        former (see report.py)."""
        from haystack import Document
        from tqdm.auto import tqdm

        from haystack_hardneg import CrossEncoderRanker

        c = self.config
        key = rerank_key(c, hybrid, train)

        def compute() -> None:
            ranker = CrossEncoderRanker(model=str(self.out / "train" / strategy / "model"), fusion_alpha=None,
                                        batch_size=32)
            ranker.warm_up()
            # The queries the trainer held out, as its report records them.
            training = json.loads((self.out / "train" / strategy / "training_report.json").read_text())
            held_out = set(training["validation_query_texts"])
            groups = {
                "test": read_jsonl(self.out / "first_stage" / "test_candidates.jsonl"),
                "validation": [r for r in read_jsonl(self.out / "first_stage" / "train_candidates.jsonl")
                               if r["query"] in held_out],
            }
            output: dict[str, Any] = {}
            for group, records in groups.items():
                scores, started = {}, time.perf_counter()
                for record in tqdm(records, desc=f"Re-ranking {group} ({strategy})", unit="query",
                                   disable=not self.progress_bar):
                    top = record["candidates"][: c.rerank_k]
                    # Texts already carry the meta fields (as in training): score them as they are.
                    documents = [Document(id=d["id"], content=d["text"]) for d in top]
                    values = ranker.score(record["query"], documents, scale_score=True) if documents else []
                    scores[record["query_id"]] = dict(zip((d["id"] for d in top), map(float, values)))
                seconds = time.perf_counter() - started
                output[group] = scores
                if group == "test":
                    output["seconds"] = seconds
                    output["ms_per_query"] = 1000 * seconds / max(1, len(records))
            atomic_write_text(self.out / "rerank" / f"{strategy}.json", json.dumps(output))

        self.cache.run(f"rerank/{strategy}", key, [f"rerank/{strategy}.json"], compute)

    # -- everything ------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> dict[str, Any]:
        from haystack_hardneg.experiment.report import write_report
        from haystack_hardneg.ingest.beir import load_beir

        c = self.config
        started = time.perf_counter()
        atomic_write_text(self.out / "config.json", json.dumps(asdict(c), indent=2))
        atomic_write_text(self.out / "environment.json", json.dumps({"versions": versions(), "machine": machine()},
                                                                    indent=2))
        test_split = load_beir(c.data, c.test_split)
        train_split = load_beir(c.data, c.train_split)
        splits = {"test": test_split, "train": train_split}
        # The store and the BM25 index are read only by the first stage and mining: where those are done (resumed,
        # or imported from another machine, see portable.py) they are not rebuilt.
        index, lexical = index_key(c, self.data_key), lexical_index_key(c, self.data_key)
        first_stage_done = self.cache.is_done("first_stage", first_stage_key(c, index, lexical, splits))
        mining_done = all(self.cache.is_done(f"mine/{s}", mine_key(c, index, s, train_split)) for s in c.strategies)
        if not (first_stage_done and mining_done):
            index = self.index()
        if not first_stage_done:
            lexical = self.lexical_index()
        hybrid = self.hybrid(self.first_stage(index, lexical, splits), train_split)
        mine_keys = self.mine(index, train_split)
        # Training and re-ranking need neither the store (local mode holds a lock) nor the embedding models.
        self._close_store()
        self._text_embedder = None
        # Strategy by strategy, so that an interrupted run keeps every finished re-ranker and its scores.
        for strategy in c.strategies:
            train = train_key(c, mine_keys[strategy], hybrid)
            if self.cache.is_done(f"rerank/{strategy}", rerank_key(c, hybrid, train)) and \
                    (self.out / "train" / strategy / "training_report.json").is_file():
                # The report reads the scores and the training report, not the re-ranker (absent when imported).
                self.cache.reused.extend([f"train/{strategy}", f"rerank/{strategy}"])
                continue
            self.rerank(strategy, hybrid, self.train(strategy, mine_keys[strategy], hybrid))
        results = write_report(self.out, c, test_split, self.cache.records)
        results["wall_seconds_this_run"] = round(time.perf_counter() - started, 1)
        results["stages_ran"], results["stages_reused"] = self.cache.ran, self.cache.reused
        atomic_write_text(self.out / "results.json", json.dumps(results, indent=2))
        return results

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        self._close_store()
        self.cache.close()


def interim_report(config: ExperimentConfig, dest: str | Path) -> dict[str, Any]:
    """The report of the strategies an experiment has finished so far, written into ``dest`` (another folder:
    the running experiment keeps its own). Reads the run folder only, so it works while the experiment runs.
    A strategy whose recorded stages do not match ``config`` (settings changed since it ran) is left out and
    named in ``stale_strategies``: run the experiment again to bring it up to date."""
    from haystack_hardneg.experiment.report import write_report
    from haystack_hardneg.ingest.beir import load_beir

    config = config.resolved()
    out = Path(config.out)
    records = json.loads((out / "stages.json").read_text(encoding="utf-8")) if (out / "stages.json").is_file() else {}
    finished = [s for s in config.strategies if f"rerank/{s}" in records and "hybrid" in records]
    if not finished:
        raise ValueError(f"No strategy of {out} has finished re-ranking yet.")
    dest = Path(dest)
    if dest.resolve() == out.resolve():
        raise ValueError("Write an interim report into another folder than the running experiment's.")
    test_split, train_split = load_beir(config.data, config.test_split), load_beir(config.data, config.train_split)
    # The re-ranking key chains every upstream key, but the report also reads the first stage's and the trainings'
    # own files, which a later run with other settings may have rewritten without reaching the downstream records.
    keys = expected_keys(replace(config, strategies=finished), test_split, train_split)

    def recorded(stage: str) -> bool:
        return stage in records and records[stage]["key"] == keys[stage]

    if not (recorded("first_stage") and recorded("hybrid")):
        raise ValueError(f"The first stage recorded in {out} was made with other settings or data than this "
                         f"config's: run the experiment again first.")
    stale = [s for s in finished if not (recorded(f"rerank/{s}") and recorded(f"train/{s}"))]
    current = [s for s in finished if s not in stale]
    if stale:
        logger.warning("Left out of the interim report, recorded with other settings than this config's: %s.",
                       ", ".join(stale))
    if not current:
        raise ValueError(f"Every finished strategy of {out} ({', '.join(stale)}) was run with other settings than "
                         f"this config's: run the experiment again first.")
    dest.mkdir(parents=True, exist_ok=True)
    results = write_report(out, replace(config, strategies=current), test_split, records, dest=dest)
    results["finished_strategies"] = current
    results["stale_strategies"] = stale
    atomic_write_text(dest / "results.json", json.dumps(results, indent=2))
    return results
