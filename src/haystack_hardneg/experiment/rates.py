"""What the plan learns about the models before any heavy work: rates measured in a short warm-up on this machine
(seconds per document and query for the ensemble's local members, per training step and scored pair for the
re-ranker), and, for a member that is an API or a server, the texts the run will send it, counted without
sending any.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from haystack_hardneg.embed.cache import EmbeddingCache, cache_keys
from haystack_hardneg.embed.encoder import EnsembleEncoder
from haystack_hardneg.embed.ensemble import MemberSpec
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.extras import require
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.train.config import TEACHER_LOSSES
from haystack_hardneg.train.heads import build_cross_encoder, resolve_head
from haystack_hardneg.train.trainer import build_trainer

SAMPLE = 32  # texts per measurement: a few seconds per model on 2 CPU cores
# A warm-up is reused by a later plan of the same config on the same CPU within this many seconds (`--plan`, then the
# run): its models load and train for minutes on 2 cores, and the machine's speed does not change that fast.
WARM_UP_REUSED_FOR = 6 * 3600
# Tokens are counted as an API bills them only by its own tokenizer; about 4 characters of English text make one.
CHARACTERS_PER_TOKEN = 4


def api_work(config: ExperimentConfig, splits: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per embedder-pair member (an API or a server): the texts the run will send it, those its cache lacks
    (documents with the document prompt, the test and training queries with the query prompt), and about how many
    tokens they make. Nothing is sent to count them."""
    members = [MemberSpec.coerce(m) for m in config.members]
    if not any(m.is_embedder_pair for m in members):
        return {}
    from haystack_hardneg.embed.haystack_member import member_fingerprint

    corpus = [document_text(d, config.meta_fields, config.separator) for d in splits["test"].corpus]
    queries = list(dict.fromkeys([*splits["test"].queries.values(), *splits["train"].queries.values()]))
    cache = EmbeddingCache(config.cache_dir) if config.cache_dir else None
    work = {}
    try:
        for member in (m for m in members if m.is_embedder_pair):
            fingerprint = member_fingerprint(member)
            sent = []
            for texts, prompt in ((corpus, member.document_prompt), (queries, member.query_prompt)):
                cached = (cache.get_many(cache_keys(fingerprint, prompt, None, texts)) if cache is not None
                          else [None] * len(texts))
                sent += [prompt + t for t, v in zip(texts, cached) if v is None]
            work[member.name] = {"texts": len(sent),
                                 "tokens": sum(math.ceil(len(t) / CHARACTERS_PER_TOKEN) for t in sent)}
    finally:
        if cache is not None:
            cache.close()
    return work


def measure(config: ExperimentConfig, splits: dict[str, Any], *, sample: int = SAMPLE,
            ensemble: bool = True) -> dict[str, float]:
    """Seconds per document and per query for the ensemble, per training step and per scored pair for the
    re-ranker, measured here on a seeded sample of the data (models loaded once, first calls not timed).

    ``ensemble=False``: the ensemble's stages are done (imported from another machine, say), so its models are
    not loaded, and need not be on this machine; its rates are 0."""
    rng = random.Random(config.seed)
    corpus = [document_text(d, config.meta_fields, config.separator) for d in splits["test"].corpus]
    # Evenly spread over the lengths: encoding time follows length, and a plain sample may miss the long tail.
    by_length = sorted(corpus, key=len)
    spread = min(2 * sample, len(corpus))
    documents = [by_length[int(i * len(by_length) / spread)] for i in range(spread)]
    queries = rng.sample(list(splits["train"].queries.values()) + list(splits["test"].queries.values()),
                         min(sample, len(splits["train"].queries) + len(splits["test"].queries)))
    rates = (_ensemble_rates(config, corpus, documents, queries) if ensemble else
             {"seconds_per_document": 0.0, "seconds_per_query": 0.0, "dimension": 0})
    rates.update(_reranker_rates(config, queries, rng.sample(documents, len(documents))))  # rows of mixed lengths
    return rates


def measured_rates(config: ExperimentConfig, splits: dict[str, Any], *, ensemble: bool = True) -> dict[str, float]:
    """``measure``'s rates, reused from a warm-up of the same config on this CPU (model and instruction sets, torch
    threads) in the last ``WARM_UP_REUSED_FOR`` seconds; kept beside the embedding cache (none without one)."""
    import torch

    from haystack_hardneg.experiment.stages import stage_key
    from haystack_hardneg.machine import cpu

    settings = {k: v for k, v in asdict(config).items() if k != "out"}
    key = stage_key(config=settings, ensemble=ensemble, cpu=cpu(), threads=torch.get_num_threads(), sample=SAMPLE)
    path = Path(config.cache_dir).expanduser() / "warm-up" / f"{key}.json" if config.cache_dir else None
    if path is not None and path.is_file() and time.time() - path.stat().st_mtime < WARM_UP_REUSED_FOR:
        try:
            return json.loads(path.read_text(encoding="utf-8"))["rates"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is measured again
    rates = measure(config, splits, ensemble=ensemble)
    if path is not None:
        atomic_write_text(path, json.dumps({"rates": rates}, indent=2))
    return rates


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _padded_tokens(model, texts: list[str], batch_size: int) -> int:
    """Tokens a sentence-transformers encode of ``texts`` computes: sorted by length into batches, each padded to
    its longest text (truncated at the model's window)."""
    if not texts:
        return 0
    window = model.max_seq_length or 512
    lengths = sorted(len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=window)["input_ids"])
    return sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size])
               for i in range(0, len(lengths), batch_size))


def _ensemble_rates(config: ExperimentConfig, corpus: list[str], documents: list[str],
                    queries: list[str], *, most: int = 5000) -> dict[str, float]:
    """Seconds to encode the corpus documents each member's cache lacks, per corpus document, and seconds per
    query. Each member's speed is measured in padded tokens per second on a length-spread sample, and the corpus
    is counted in the padded tokens its encode computes (on a seeded sample of ``most`` documents for a large one):
    encoding time follows the padded length, which a document count hides."""

    encoder = EnsembleEncoder(config.members, combine=config.combine, cache_dir=config.cache_dir, progress_bar=False)
    encoder.load()
    cache, encoder.cache = encoder.cache, None  # timed without the cache, which may hold the sample
    index_seconds = per_query = 0.0
    for spec, backend in zip(encoder.members, encoder.backends):
        model = getattr(backend, "model", None)
        if model is None:
            continue  # an embedder pair (an API, a server): the plan counts what it sends, and sends nothing
        backend.encode(documents[:2], "document", spec.document_prompt)  # first calls are slow: not timed
        seconds = _timed(lambda: backend.encode(documents, "document", spec.document_prompt))
        per_token = seconds / _padded_tokens(model, documents, spec.batch_size)
        missing = corpus
        if cache is not None:
            keys = cache_keys(backend.cache_fingerprint, spec.document_prompt, model.max_seq_length, corpus)
            missing = [t for t, v in zip(corpus, cache.get_many(keys)) if v is None]
        counted = random.Random(config.seed).sample(missing, most) if len(missing) > most else missing
        scale = len(missing) / max(1, len(counted))
        index_seconds += per_token * _padded_tokens(model, counted, spec.batch_size) * scale
        per_query += _timed(lambda: backend.encode(queries, "query", spec.query_prompt)) / len(queries)
    if cache is not None:
        cache.close()
    return {"seconds_per_document": index_seconds / max(1, len(corpus)), "seconds_per_query": per_query,
            "dimension": encoder.dimension}


def _reranker_rates(config: ExperimentConfig, queries: list[str], documents: list[str]) -> dict[str, float]:
    """A few real training steps of the re-ranker (as the trainer runs them) and its scoring speed."""
    Dataset = require("datasets", "The plan's training warm-up").Dataset
    from transformers import PrinterCallback, TrainerCallback


    negatives = max(1, config.mining_config(config.strategies[0]).num_negatives)
    training = config.training_config()
    # A distillation loss reads the mining ensemble's scores of each row; any numbers time it the same.
    scores = {"scores": [1.0] + [0.5] * negatives} if training.loss in TEACHER_LOSSES else {}
    rows = [{"query": q, "positive": documents[i % len(documents)],
             **{f"negative_{n}": documents[(i + n) % len(documents)] for n in range(1, negatives + 1)}, **scores}
            for i, q in enumerate(queries)]
    head = resolve_head(training.base_model, training.head)
    model = build_cross_encoder(training.base_model, head, max_length=training.max_length)
    step_seconds: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_seconds.append(time.perf_counter() - self.started)

    with tempfile.TemporaryDirectory() as folder:
        trial = replace(training, output_dir=folder, max_steps=3, epochs=1.0, max_minutes=None)
        head_lr = trial.head_lr if head != "pretrained" and trial.head_lr is not None else trial.encoder_lr
        trainer = build_trainer(model, Dataset.from_list(rows), None, trial, head_lr, progress_bar=False,
                           callbacks=[StepTimer()])
        trainer.args.save_strategy = "no"
        trainer.remove_callback(PrinterCallback)  # the warm-up's loss lines are not the run's
        trainer.train()
    pairs = [(q, d) for q in queries[:8] for d in documents[:8]]
    model.predict(pairs[:4], batch_size=32, show_progress_bar=False)
    per_pair = _timed(lambda: model.predict(pairs, batch_size=32, show_progress_bar=False)) / len(pairs)
    return {"seconds_per_step": float(np.median(step_seconds[1:] or step_seconds)), "seconds_per_pair": per_pair}
