"""The experiment's stages, each cached under the key of what it depends on (keys.py, stages.py):

    index        the corpus through the indexing pipeline into Qdrant (the ensemble's vectors)
    lexical_index  the same documents into a BM25 index, when the config has a lexical member
    first_stage  test and training queries through Haystack's retrievers: each member kind's top retrieve_k
    hybrid       the first stage's candidates: dense alone, or fused with BM25 at a weight chosen on training queries
    mine/<s>     triplets for strategy s from the store's vectors (the mining job)
    train/<s>    one cross-encoder per strategy, same base, budget and seed; fusion weight chosen on validation
    rerank/<s>   that cross-encoder's scores for the top rerank_k of the test and the held-out training queries
    (report)     metrics, paired tests, short/long subsets, results.json, results.md and charts: always redone

Each stage calls the job the components and the CLI call too; this module only decides what runs and where its
files go.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from haystack.utils import Secret

from haystack_hardneg import (CrossEncoderRanker, EnsembleDocumentEmbedder, EnsembleTextEmbedder, LexicalIndexWriter,
                              LexicalRetriever, build_indexing_pipeline, open_document_store)
from haystack_hardneg.experiment import keys as K
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.environment import machine, versions
from haystack_hardneg.experiment.first_stage import choose_lexical_weight, hybrid_candidates, retrieve_lists
from haystack_hardneg.experiment.plan import estimate, format_plan, make_plan, mined_counts, record_estimates
from haystack_hardneg.experiment.report import write_report
from haystack_hardneg.experiment.stages import StageCache, file_fingerprint
from haystack_hardneg.export.job import describe, export_model
from haystack_hardneg.files import atomic_directory, atomic_write_text, jsonl_text, read_jsonl
from haystack_hardneg.mine.component import ClusterNegativeMiner, skipped_when_loading
from haystack_hardneg.mine.job import mine_into
from haystack_hardneg.mine.triplets import load_triplets
from haystack_hardneg.pipelines import build_lexical_indexing_pipeline, whole_document_chunker
from haystack_hardneg.rank.job import latency, rerank_records
from haystack_hardneg.train.config import TEACHER_LOSSES
from haystack_hardneg.train.trainer import train_cross_encoder

COLLECTION = "experiment"
REPORT_FILES = ("results.json", "results.md", "per_query.json")


class Experiment:
    """Runs (or resumes) an experiment in ``config.out``; ``run()`` returns the results."""

    def __init__(self, config: ExperimentConfig, *, progress_bar: bool = True):
        self.config = config.resolved()
        self.out = Path(self.config.out)
        self.progress_bar = progress_bar
        self.data_key = K.data_fingerprint(self.config)
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
        path = self.out / K.MODELS_FILE
        current = K.model_fingerprints(self.config)
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        changed = sorted(p for p in current if p in recorded and recorded[p] != current[p])
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
        if self._text_embedder is None:
            self._text_embedder = EnsembleTextEmbedder(members=self.config.members, combine=self.config.combine,
                                                       cache_dir=self.config.cache_dir)
            self._text_embedder.warm_up()
        return self._text_embedder

    def store(self, *, recreate: bool = False):
        if self._store is not None and not recreate:
            return self._store
        self._close_store()
        settings = dict(self.config.store)
        index = settings.pop("index", COLLECTION)
        if not any(k in settings for k in ("url", "path", "location")):
            settings["path"] = str(self.out / "qdrant")
        if "api_key_env" in settings:
            settings["api_key"] = Secret.from_env_var(settings.pop("api_key_env"))
        self._store = open_document_store(index=index, embedding_dim=self.text_embedder().encoder.dimension,
                                          recreate_index=recreate, progress_bar=False, **settings)
        return self._store

    # -- stages ----------------------------------------------------------------------------------------------
    def index(self) -> str:
        key = K.index_key(self.config, self.data_key)

        def compute() -> None:
            c = self.config
            embedder = EnsembleDocumentEmbedder(members=c.members, combine=c.combine, cache_dir=c.cache_dir,
                                                meta_fields_to_embed=c.meta_fields, embedding_separator=c.separator,
                                                progress_bar=self.progress_bar)
            pipeline = build_indexing_pipeline(embedder, self.store(recreate=True), chunker=whole_document_chunker())
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

        def compute() -> None:
            language = c.lexical.get("language", "english")
            writer = LexicalIndexWriter(index_path=str(self.out / "bm25"), language=language,
                                        meta_fields_to_index=c.meta_fields, separator=c.separator)
            build_lexical_indexing_pipeline(writer, chunker=whole_document_chunker()).run(
                {"converter": {"sources": [c.data]}})

        key = K.lexical_index_key(c, self.data_key)
        self.cache.run("lexical_index", key, ["bm25"], compute)
        return key

    def first_stage(self, index: str, lexical_key: str | None, splits: dict[str, Any]) -> str:
        """Each member kind's own top retrieve_k for the test and the training queries, through Haystack's
        retrievers (Qdrant; BM25): ``first_stage/<split>_lists.jsonl``. Their fusion is the next stage."""
        c = self.config

        def compute() -> None:
            lexical = None
            if lexical_key is not None:
                lexical = LexicalRetriever(index_path=str(self.out / "bm25"), top_k=c.retrieve_k)
                lexical.warm_up()
            for name, split in splits.items():
                records = retrieve_lists(split, self.text_embedder(), self.store(), lexical, c.retrieve_k,
                                         meta_fields=c.meta_fields, separator=c.separator,
                                         min_relevance=c.min_relevance if name == "train" else 1,
                                         desc=f"First stage ({name})", progress_bar=self.progress_bar)
                atomic_write_text(self.out / "first_stage" / f"{name}_lists.jsonl", jsonl_text(records))

        key = K.first_stage_key(c, index, lexical_key, splits)
        self.cache.run("first_stage", key, [f"first_stage/{name}_lists.jsonl" for name in splits], compute)
        return key

    def hybrid(self, first_stage: str, train_split) -> str:
        """The first stage's candidates: the dense list alone, or fused with BM25 at a weight chosen on the
        *training* queries (``lexical.weight: auto``) or given. ``first_stage/<split>_candidates.jsonl``."""
        c = self.config
        budget = set(K.tuning_query_ids(c, train_split))

        def compute() -> None:
            lists = {name: read_jsonl(self.out / "first_stage" / f"{name}_lists.jsonl") for name in ("test", "train")}
            choice: dict[str, Any] = {"lexical": c.lexical is not None}
            weight = None
            if c.lexical is not None:
                weight = c.lexical.get("weight", "auto")
                if weight == "auto":
                    # Only the training queries within the budget (max_train_queries, tuning_queries) choose it.
                    tuning = [r for r in lists["train"] if r["query_id"] in budget]
                    weight, measured = choose_lexical_weight(tuning, c.retrieve_k)
                    choice.update(chosen_on=f"{len(tuning)} training queries", by_weight=measured)
                choice["lexical_weight"] = weight = float(weight)
            for name, records in lists.items():
                atomic_write_text(self.out / "first_stage" / f"{name}_candidates.jsonl",
                                  jsonl_text(hybrid_candidates(records, weight, c.retrieve_k)))
            atomic_write_text(self.out / "first_stage" / "choice.json", json.dumps(choice, indent=2))

        key = K.hybrid_key(c, first_stage, train_split)
        self.cache.run("hybrid", key, ["first_stage/test_candidates.jsonl", "first_stage/train_candidates.jsonl",
                                       "first_stage/choice.json"], compute)
        return key

    def mine(self, index: str, train_split) -> dict[str, str]:
        """Triplets per strategy; the mining data (store vectors, query vectors) is built once for all."""
        c = self.config
        keys = {name: K.mine_key(c, index, name, train_split) for name in c.strategies}
        if all(self.cache.is_done(f"mine/{s}", keys[s]) for s in c.strategies):
            self.cache.reused.extend(f"mine/{s}" for s in c.strategies)
            return keys
        miner = ClusterNegativeMiner(text_embedder=self.text_embedder(), document_store=self.store(),
                                     mining=c.mining_config(c.strategies[0]), meta_fields_to_embed=c.meta_fields,
                                     on_missing=c.on_missing, min_relevance=c.min_relevance,
                                     embedding_separator=c.separator, progress_bar=self.progress_bar)
        miner.warm_up()
        data, stats = miner.mining_data(*self.training_queries(train_split))
        stats.add(train_split.stats)  # what loading the split left out, before the miner saw it
        for name in c.strategies:
            strategy, overrides = c.mining_for(name)
            extra = {"variant": name, "variant_options": overrides} if name != strategy else None
            self.cache.run(f"mine/{name}", keys[name], [f"mine/{name}/triplets.jsonl", f"mine/{name}/report.json"],
                           lambda name=name, extra=extra: mine_into(
                               self.out / "mine" / name, data, c.mining_config(name), report_extra=extra,
                               skipped_when_loading=skipped_when_loading(stats), progress_bar=self.progress_bar))
        return keys

    def training_queries(self, train_split) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        query_ids = K.training_query_ids(self.config, train_split)
        return ({q: train_split.queries[q] for q in query_ids}, {q: train_split.qrels[q] for q in query_ids})

    def train(self, strategy: str, mine: str, hybrid: str, train_split) -> str:
        """One cross-encoder on the strategy's triplets, validated on its held-out queries' top rerank_k from the
        experiment's own first stage (the candidates it will re-rank at test time)."""
        c = self.config
        key = K.train_key(c, mine, hybrid, train_split)
        folder = self.out / "train" / strategy

        def compute() -> None:
            twin = self._trained_twin(strategy)
            if twin is not None:
                return self._reuse_training(twin, strategy)
            config = c.training_config(output_dir=str(folder), strategy=strategy,
                                       data_description=f"{Path(c.data).name} {c.train_split} triplets")
            # An interrupted run of the same stage continues from its last checkpoint.
            resume = (folder / "checkpoints").is_dir() and (folder / "stage_key").is_file() and \
                (folder / "stage_key").read_text() == key
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "stage_key", key)
            candidates = [dict(r, candidates=r["candidates"][: c.rerank_k])
                          for r in read_jsonl(self.out / "first_stage" / "train_candidates.jsonl")]
            triplets = load_triplets(self.out / "mine" / strategy / "triplets.jsonl",
                                     teacher_scores=config.loss in TEACHER_LOSSES)
            train_cross_encoder(triplets, config, resume=resume, progress_bar=self.progress_bar,
                                candidates=candidates)

        self.cache.run(f"train/{strategy}", key,
                       [f"train/{strategy}/model", f"train/{strategy}/training_report.json"], compute)
        return key

    def _trained_twin(self, strategy: str) -> str | None:
        """An earlier strategy of this run whose triplets are byte for byte this one's and whose re-ranker is
        here. Every strategy trains with the same settings and seed, so the same rows give the same re-ranker
        (a one-member ensemble, say, mines the same negatives for ``dense`` and ``ensemble``)."""
        mine, strategies = self.out / "mine", self.config.strategies
        own = file_fingerprint(mine / strategy / "triplets.jsonl")
        for other in strategies[: strategies.index(strategy)]:
            trained = self.out / "train" / other
            if (trained / "model").is_dir() and (trained / "training_report.json").is_file() and \
                    file_fingerprint(mine / other / "triplets.jsonl") == own:
                return other
        return None

    def _reuse_training(self, twin: str, strategy: str) -> None:
        """``twin``'s re-ranker and training report as ``strategy``'s, the report saying so."""
        source, folder = self.out / "train" / twin, self.out / "train" / strategy
        if self.progress_bar:
            print(f"train/{strategy}: the same triplets as {twin}; its re-ranker is reused, not trained again.",
                  flush=True)
        with atomic_directory(folder / "model") as staging:
            shutil.copytree(source / "model", staging, dirs_exist_ok=True)
        report = json.loads((source / "training_report.json").read_text(encoding="utf-8"))
        report["same_triplets_as"] = twin
        atomic_write_text(folder / "training_report.json", json.dumps(report, indent=2))
        if (source / "training_curves.png").is_file():
            shutil.copyfile(source / "training_curves.png", folder / "training_curves.png")

    def rerank(self, strategy: str, hybrid: str, train: str) -> None:
        """The re-ranker's scores for the top rerank_k of every test query and of its held-out (validation)
        training queries: the fusion weight with the first stage is chosen on the latter, then applied to the
        former (see report.py)."""
        c = self.config

        def compute() -> None:
            training = json.loads((self.out / "train" / strategy / "training_report.json").read_text())
            twin_scores = self.out / "rerank" / f"{training.get('same_triplets_as')}.json"
            if "same_triplets_as" in training and twin_scores.is_file():  # the same re-ranker: the same scores
                atomic_write_text(self.out / "rerank" / f"{strategy}.json", twin_scores.read_text(encoding="utf-8"))
                return
            ranker, output = self._serving_ranker(strategy)
            ranker.warm_up()
            # The queries the trainer held out, as its report records them.
            held_out = set(training["validation_query_texts"])
            test = read_jsonl(self.out / "first_stage" / "test_candidates.jsonl")
            validation = [r for r in read_jsonl(self.out / "first_stage" / "train_candidates.jsonl")
                          if r["query"] in held_out]
            output["test"], seconds = rerank_records(ranker, test, c.rerank_k, desc=f"Re-ranking test ({strategy})",
                                                     progress_bar=self.progress_bar)
            output.update(latency(seconds))
            output["validation"], _ = rerank_records(ranker, validation, c.rerank_k, progress_bar=self.progress_bar,
                                                     desc=f"Re-ranking validation ({strategy})")
            atomic_write_text(self.out / "rerank" / f"{strategy}.json", json.dumps(output))

        self.cache.run(f"rerank/{strategy}", K.rerank_key(c, hybrid, train), [f"rerank/{strategy}.json"], compute)

    def _serving_ranker(self, strategy: str) -> tuple[CrossEncoderRanker, dict[str, Any]]:
        """The re-ranker of ``strategy`` on the configured backend (exported and checked first when it is not
        torch), and what the re-ranking output records of it."""
        model = str(self.out / "train" / strategy / "model")
        export = self.config.export_config(model)
        if export is None:
            return CrossEncoderRanker(model=model, fusion_alpha=None, batch_size=32, backend="torch"), {
                "backend": "torch"}
        record = export_model(export, log=lambda message: print(f"rerank/{strategy}: {message}", flush=True))
        print(f"rerank/{strategy}: {describe(record)}", flush=True)
        ranker = CrossEncoderRanker(model=model, fusion_alpha=None, batch_size=32, backend=export.backend,
                                    model_kwargs={"file_name": record["file_name"]})
        return ranker, {"backend": export.backend, "file_name": record["file_name"], "export": record}

    # -- everything ------------------------------------------------------------------------------------------
    def run(self, *, report: bool = True) -> dict[str, Any]:
        """Every stage left to run, then the report; ``report=False``: the stages only (a training machine whose
        state is exported and reported elsewhere)."""
        try:
            return self._run(report)
        finally:
            self.close()

    def _upstream(self, splits: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """The first stage and the triplets: the hybrid stage's key and each strategy's mining key. The store and
        the BM25 index are read only by these: where they are done (resumed, or imported from another machine,
        see portable.py), they are not rebuilt."""
        c, train_split = self.config, splits["train"]
        index, lexical = K.index_key(c, self.data_key), K.lexical_index_key(c, self.data_key)
        first_stage_done = self.cache.is_done("first_stage", K.first_stage_key(c, index, lexical, splits))
        mining_done = all(self.cache.is_done(f"mine/{s}", K.mine_key(c, index, s, train_split)) for s in c.strategies)
        if not (first_stage_done and mining_done):
            index = self.index()
        if not first_stage_done:
            lexical = self.lexical_index()
        hybrid = self.hybrid(self.first_stage(index, lexical, splits), train_split)
        return hybrid, self.mine(index, train_split)

    def prepare_upstream(self) -> None:
        """Only the stages every training reads (the first stage, its fusion, the triplets), e.g. once in a folder
        that several runs then start from as copies."""
        try:
            self._upstream(self.config.load_splits())
        finally:
            self.close()

    def plan(self, splits: dict[str, Any] | None = None, *, measured: bool = True) -> dict[str, Any]:
        """The counts and, with ``measured``, each stage's estimated seconds (stages already done here: 0)."""
        splits = splits or self.config.load_splits()
        expected = K.expected_keys(self.config, splits["test"], splits["train"])
        done = {name for name, key in expected.items() if key is None or self.cache.is_done(name, key)}
        # As run() skips them: the stores only feed the first stage and mining, a finished re-ranking its training.
        if {"first_stage", *(f"mine/{s}" for s in self.config.strategies)} <= done:
            done.add("index")
        if "first_stage" in done:
            done.add("lexical_index")
        done |= {f"train/{s}" for s in self.config.strategies if f"rerank/{s}" in done}
        # Nothing left to run (a report rebuilt, say): no warm-up of the models.
        return make_plan(self.config, splits, done, measured=measured and not set(expected) <= done)

    def _replan_after_mining(self, plan: dict[str, Any]) -> None:
        """Training's estimates again from the rows mining wrote (pairs left without negatives are not trained),
        with the warm-up's rates; printed and kept for the report."""
        c, pending = self.config, [s for s in self.config.strategies if f"train/{s}" not in plan["done"]]
        if "rates" not in plan or not pending:
            return
        for strategy in pending:
            plan["counts"]["strategies"][strategy] = mined_counts(c, strategy,
                                                                  self.out / "mine" / strategy / "triplets.jsonl")
        estimates = estimate(c, plan["counts"], plan["rates"], set(plan["done"]))
        wanted = {f"{kind}/{s}" for s in pending for kind in ("train", "rerank")}
        record_estimates(self.out, {k: v for k, v in estimates.items() if k in wanted})
        if self.progress_bar:
            print("After mining: " + "; ".join(
                f"{s} {plan['counts']['strategies'][s]['steps']} steps, about {estimates[f'train/{s}'] / 60:.0f} min"
                for s in pending), flush=True)

    def _run(self, report: bool = True) -> dict[str, Any]:
        c = self.config
        started = time.perf_counter()
        atomic_write_text(self.out / "config.json", json.dumps(asdict(c), indent=2))
        atomic_write_text(self.out / "environment.json", json.dumps({"versions": versions(), "machine": machine()},
                                                                    indent=2))
        splits = c.load_splits()
        plan = self.plan(splits)
        atomic_write_text(self.out / "plan.json", json.dumps(plan, indent=2))
        record_estimates(self.out, {k: v for k, v in plan.get("estimate_seconds", {}).items()
                                    if k not in plan["done"]})
        if self.progress_bar and "estimate_seconds" in plan:
            print(format_plan(plan), flush=True)
        hybrid, mine_keys = self._upstream(splits)
        self._replan_after_mining(plan)
        # Training and re-ranking need neither the store (local mode holds a lock) nor the embedding models.
        self._close_store()
        self._text_embedder = None
        # Strategy by strategy, so that an interrupted run keeps every finished re-ranker and its scores.
        for strategy in c.strategies:
            train = K.train_key(c, mine_keys[strategy], hybrid, splits["train"])
            if self.cache.is_done(f"rerank/{strategy}", K.rerank_key(c, hybrid, train)) and \
                    (self.out / "train" / strategy / "training_report.json").is_file():
                # The report reads the scores and the training report, not the re-ranker (absent when imported).
                self.cache.reused.extend([f"train/{strategy}", f"rerank/{strategy}"])
                continue
            self.rerank(strategy, hybrid, self.train(strategy, mine_keys[strategy], hybrid, splits["train"]))
        results = write_report(self.out, c, splits, self.cache.records) if report else {}
        results["wall_seconds_this_run"] = round(time.perf_counter() - started, 1)
        results["stages_ran"], results["stages_reused"] = self.cache.ran, self.cache.reused
        if report:
            atomic_write_text(self.out / "results.json", json.dumps(results, indent=2))
        elif self.cache.ran:  # an earlier report no longer describes the stages
            for name in REPORT_FILES:
                (self.out / name).unlink(missing_ok=True)
        return results

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        self._close_store()
        self.cache.close()
