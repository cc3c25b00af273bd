"""Fine-tuning a cross-encoder on mined triplets, with validation, checkpoints and resume (no Haystack here).

Built on sentence-transformers' CrossEncoderTrainer. What it adds for a few hundred queries:
- a validation slice of the *training* queries (never the test queries), re-ranked after every evaluation
  (MRR@10 / nDCG@10 through sentence-transformers' CrossEncoderRerankingEvaluator), the best checkpoint kept.
  Given the miner's ``candidates.jsonl``, the held-out queries' *first-stage top-k* is re-ranked, as at query
  time; without it, their positives among mined negatives (an optimistic yardstick, said so in the report);
- with first-stage candidates, the fusion weight with the retriever's score chosen on the same slice and saved
  beside the model (``hardneg.json``), where ``CrossEncoderRanker(fusion_alpha="auto")`` finds it;
- separate learning rates for a new scoring head and the pre-trained encoder (a new head needs a far larger
  rate: measured on SciFact, 1 epoch at 3e-5 for all weights left a MiniLM re-ranker at 0.46 nDCG@10, while
  head 2e-3 / encoder 5e-5 for 2 epochs reached 0.663);
- checkpoints every ``save_steps``; ``resume=True`` continues from the last one and ends where an
  uninterrupted run would;
- a training report: loss and validation curves as PNG, the numbers as JSON, and a model card.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.files import atomic_directory, atomic_save_figure, atomic_write_text
from haystack_hardneg.train.heads import build_cross_encoder, head_parameters, resolve_head, saved_head
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.losses import build_loss, to_labelled_pairs

logger = logging.getLogger(__name__)

# How split_by_query draws the held-out queries; the experiment keys its trainings on it, so a change retrains.
VALIDATION_SPLIT = "seeded-hash-order"


def split_by_query(dataset, fraction: float, seed: int):
    """Rows of a held-out ``fraction`` of the distinct queries, and the rest (no query in both).

    The queries are ordered by a seeded hash of their text rather than shuffled, so a query's fate does not depend
    on which other queries are present: re-rankers trained on different negative strategies, whose triplets
    cover slightly different queries, are validated on (almost) the same held-out queries and their validation
    numbers can be compared."""
    queries = sorted(set(dataset["query"]), key=lambda q: hashlib.sha256(f"{seed}\x1f{q}".encode()).hexdigest())
    held_out = set(queries[: int(round(len(queries) * fraction))])
    train_rows = [i for i, q in enumerate(dataset["query"]) if q not in held_out]
    validation_rows = [i for i, q in enumerate(dataset["query"]) if q in held_out]
    return dataset.select(train_rows), dataset.select(validation_rows)


RUN_MANIFEST_FILE = "run.json"
# Settings that shape the optimisation path; the rest (where to write, names for the model card) may change.
_RESUME_SETTINGS = ("base_model", "loss", "epochs", "batch_size", "encoder_lr", "head_lr", "margin", "warmup_ratio",
                    "validation_fraction", "eval_steps", "max_length", "precision", "seed")


def triplets_fingerprint(triplets) -> str:
    """A hash of the triplet rows' texts in order: resuming on other rows would train on a mixture of two sets."""
    digest = hashlib.sha256()
    for row in triplets:
        digest.update("\x1e".join(str(row[c]) for c in sorted(row)).encode())
        digest.update(b"\x1d")
    return digest.hexdigest()


def run_manifest(config: TrainingConfig, base: str, head: str, triplets,
                 validation_candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """What a run's checkpoints were trained with, written beside them so that a resume can be checked. The
    validation candidates are in it because they choose the best checkpoint that a resumed run goes on comparing."""
    settings = {name: getattr(config, name) for name in _RESUME_SETTINGS}
    validation = hashlib.sha256(json.dumps(validation_candidates, sort_keys=True, default=str).encode()).hexdigest()
    return {"settings": {**settings, "base_model": base, "head": head}, "validation_split": VALIDATION_SPLIT,
            "triplets": triplets_fingerprint(triplets), "rows": len(triplets), "validation_candidates": validation}


def check_resumable(checkpoints: Path, manifest: dict[str, Any]) -> None:
    """Refuse to resume checkpoints that were trained with other settings, another split rule or other triplets:
    the result would match neither run. Checkpoints of a version that wrote no manifest are resumed with a warning."""
    saved_path = checkpoints / RUN_MANIFEST_FILE
    if not saved_path.is_file():
        logger.warning("The checkpoints in %s carry no %s (written by an older version): resuming without checking "
                       "that they were trained with these settings and triplets.", checkpoints, RUN_MANIFEST_FILE)
        atomic_write_text(saved_path, json.dumps(manifest, indent=2))  # later resumes of this run are checked
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    changed = [f"{name}: {saved['settings'].get(name)!r} -> {value!r}" for name, value in manifest["settings"].items()
               if saved["settings"].get(name) != value]
    if saved.get("validation_split") != manifest["validation_split"]:
        changed.append(f"validation split rule: {saved.get('validation_split')!r} -> {manifest['validation_split']!r}")
    if saved.get("validation_candidates") != manifest["validation_candidates"]:
        changed.append("validation candidates (they choose the best checkpoint)")
    if saved.get("triplets") != manifest["triplets"]:
        changed.append(f"triplets: {saved.get('rows')} rows -> {manifest['rows']} rows with other texts or order"
                       if saved.get("rows") != manifest["rows"] else "triplets: same row count, other texts or order")
    if changed:
        raise ValueError(f"Cannot resume from {checkpoints}: the checkpoints were trained differently ("
                         + "; ".join(changed) + "). Resume with the same settings and triplets, or start afresh "
                         "without resume (the old checkpoints are then removed).")


def reranking_samples(rows) -> list[dict[str, Any]]:
    """CrossEncoderRerankingEvaluator samples: each held-out query's positives against its mined negatives."""
    by_query: dict[str, dict[str, list[str]]] = {}
    negative_columns = [c for c in rows.column_names if c.startswith("negative_")]
    for row in rows:
        sample = by_query.setdefault(row["query"], {"positive": [], "negative": []})
        sample["positive"].append(row["positive"])
        sample["negative"].extend(row[c] for c in negative_columns)
    return [{"query": q, "positive": s["positive"], "negative": [n for n in dict.fromkeys(s["negative"])
                                                                 if n not in s["positive"]]}
            for q, s in by_query.items()]


# Fusion weights tried on the validation slice: 0 is the first stage alone, 1 the re-ranker alone.
FUSION_ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
RANKER_SETTINGS_FILE = "hardneg.json"


def candidate_samples(records: list[dict[str, Any]], queries: set[str]) -> list[dict[str, Any]]:
    """CrossEncoderRerankingEvaluator samples from first-stage candidates: each held-out query's ranked
    documents (``documents``), of which those with a relevant id are its ``positive``."""
    samples = []
    for record in records:
        if record["query"] not in queries or not record["candidates"]:
            continue
        relevant = set(record["positive_ids"])
        samples.append({
            "query": record["query"],
            "positive": [c["text"] for c in record["candidates"] if c["id"] in relevant],
            "documents": [c["text"] for c in record["candidates"]],
        })
    return samples


def fusion_sweep(model, records: list[dict[str, Any]], alphas=FUSION_ALPHAS, batch_size: int = 32) -> dict[str, Any]:
    """nDCG@10 / MRR@10 of the first stage, the re-ranker alone and their fusion at every ``alpha`` on
    ``records`` (first-stage candidates with relevant ids), and the weight chosen by ``choose_fusion_alpha``."""
    records = [r for r in records if r["candidates"] and r["positive_ids"]]
    if not records:
        raise ValueError("No validation query has first-stage candidates and relevant documents.")
    pairs = [(r["query"], c["text"]) for r in records for c in r["candidates"]]
    import torch

    # Sigmoid scores, as CrossEncoderRanker fuses them (scale_score=True), whatever the model's own activation.
    scores = iter(np.asarray(model.predict(pairs, batch_size=batch_size, show_progress_bar=False,
                                           activation_fn=torch.nn.Sigmoid()), dtype=np.float64))
    ranker_scores = {str(i): {c["id"]: float(next(scores)) for c in r["candidates"]} for i, r in enumerate(records)}
    first_stage = {str(i): {c["id"]: c["score"] for c in r["candidates"]} for i, r in enumerate(records)}
    qrels = {str(i): {d: 1 for d in r["positive_ids"]} for i, r in enumerate(records)}
    return choose_fusion_alpha(qrels, first_stage, ranker_scores, alphas)


def choose_fusion_alpha(qrels, first_stage: dict[str, dict[str, float]], ranker_scores: dict[str, dict[str, float]],
                        alphas=FUSION_ALPHAS, rule: str = "argmax") -> dict[str, Any]:
    """Fusion of the re-ranker's scores with the first stage's at every ``alpha``, measured on ``qrels``;
    ``first_stage`` and ``ranker_scores`` map query id -> {document id: score} over the same candidates.
    ``rule``: ``argmax`` (default: the best weight on the slice) or ``one_se`` (see ``evaluate.selection``)."""
    from haystack_hardneg.evaluate.selection import FUSION_RULES, choose_setting, choose_setting_within_one_se
    from haystack_hardneg.rank.fusion import fuse_scores

    if rule not in FUSION_RULES:
        raise ValueError(f"Unknown fusion rule {rule!r}; choose one of {FUSION_RULES}.")
    runs = {alpha: {q: fuse_scores(ranked, first_stage[q], alpha) for q, ranked in ranker_scores.items() if ranked}
            for alpha in alphas}
    qrels = {q: qrels[q] for q in ranker_scores}
    if rule == "argmax":
        chosen, by_alpha = choose_setting(qrels, runs)
        top = chosen
    else:
        chosen, top, by_alpha = choose_setting_within_one_se(qrels, runs, towards=0.5)
    return {
        "queries": len(ranker_scores),
        "first_stage": by_alpha.get(0.0),
        "reranker_alone": by_alpha.get(1.0),
        "by_alpha": {str(a): m for a, m in by_alpha.items()},
        "rule": rule,
        "best_alpha": chosen,
        "best": by_alpha[chosen],
        "argmax_alpha": top,
    }


def _param_groups(model, encoder_lr: float, head_lr: float) -> list[dict[str, Any]]:
    encoder, head = head_parameters(model)
    groups = [{"params": encoder, "lr": encoder_lr}]
    if head:
        groups.append({"params": head, "lr": head_lr})
    return groups


def train_cross_encoder(triplets, config: TrainingConfig, *, resume: bool = False, progress_bar: bool = True,
                        callbacks: list | None = None, candidates: list[dict[str, Any]] | None = None) -> dict:
    """Train on a Dataset of (query, positive, negative_1..n) rows; returns the training report.

    ``callbacks`` are transformers ``TrainerCallback``s (e.g. early stopping) passed to the trainer.
    ``candidates``: first-stage candidate records (as in ``candidates.jsonl``), instead of
    ``config.validation_candidates``.

    The best model (by validation nDCG@10 when there is a validation slice) is saved as a standard CrossEncoder
    folder in ``output_dir/model``.
    """
    import torch
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    from haystack_hardneg.embed.encoder import check_model_source, looks_like_path

    if len(triplets) == 0:
        raise ValueError("The triplet set is empty: nothing to train on.")
    missing = [c for c in ("query", "positive", "negative_1") if c not in triplets.column_names]
    if missing:
        raise ValueError(f"Triplets need the columns query, positive, negative_1..n; missing {missing}.")
    text_columns = [c for c in triplets.column_names if c in ("query", "positive") or c.startswith("negative_")]
    empty = [i for i, row in enumerate(triplets) if any(not str(row[c] or "").strip() for c in text_columns)]
    if empty:
        raise ValueError(f"{len(empty)} triplet row(s) have an empty text, e.g. rows {empty[:5]}; remove them first.")
    check_model_source(config.base_model)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    base = str(Path(config.base_model).expanduser()) if looks_like_path(config.base_model) else config.base_model
    head = resolve_head(base, config.head)
    model = build_cross_encoder(base, head, max_length=config.max_length)

    triplets = triplets.select_columns(text_columns)
    train_rows, validation_rows = (split_by_query(triplets, config.validation_fraction, config.seed)
                                   if config.validation_fraction > 0 else (triplets, triplets.select([])))
    evaluator, held_out_candidates = None, []
    if candidates is None and config.validation_candidates:
        candidates = load_candidates(config.validation_candidates)
    if len(validation_rows) and candidates:
        held_out = set(validation_rows["query"])
        held_out_candidates = [r for r in candidates if r["query"] in held_out]
        if not held_out_candidates:
            raise ValueError(f"None of the {len(held_out)} held-out queries is among the first-stage candidates "
                             f"given: give the candidates mined with these triplets.")
        evaluator = CrossEncoderRerankingEvaluator(
            samples=candidate_samples(held_out_candidates, held_out), at_k=10, always_rerank_positives=False,
            name="validation", write_csv=False, batch_size=32)
    elif len(validation_rows):
        evaluator = CrossEncoderRerankingEvaluator(samples=reranking_samples(validation_rows), at_k=10,
                                                   name="validation", write_csv=False, batch_size=32)
    train_data = to_labelled_pairs(train_rows) if config.loss == "bce" else train_rows
    loss = build_loss(config.loss, model, margin=config.margin)
    steps_per_epoch = max(1, -(-len(train_data) // config.batch_size))
    eval_steps = config.eval_steps or steps_per_epoch
    metric = "eval_validation_ndcg@10"
    args = CrossEncoderTrainingArguments(
        output_dir=str(output / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.encoder_lr,
        warmup_steps=float(config.warmup_ratio),  # a float below 1 is a share of all steps (transformers 5)
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy="steps" if evaluator else "no",
        eval_steps=eval_steps if evaluator else None,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=metric if evaluator else None,
        greater_is_better=True,
        logging_steps=max(1, min(10, steps_per_epoch // 4)),
        report_to="none",
        disable_tqdm=not progress_bar,
        use_cpu=not torch.cuda.is_available(),
        bf16=config.precision == "bf16",
    )
    # A re-ranker's own head is trained already: the large rate is for a new one only.
    head_lr = config.head_lr if head != "pretrained" and config.head_lr is not None else config.encoder_lr
    optimizer = torch.optim.AdamW(_param_groups(model, config.encoder_lr, head_lr))
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=train_data, loss=loss, evaluator=evaluator,
                                  optimizers=(optimizer, None), callbacks=callbacks)
    checkpoints = sorted((output / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if checkpoints and not resume:
        # A fresh run must not rotate (or later resume) an older run's checkpoints as if they were its own.
        logger.warning("Removing %d checkpoint(s) of an earlier run in %s (resume=False).", len(checkpoints),
                       output / "checkpoints")
        for old in checkpoints:
            shutil.rmtree(old)
        checkpoints = []
    resume_from = str(checkpoints[-1]) if resume and checkpoints else None
    if resume_from:
        expected = saved_head(base) if head == "pretrained" else head
        found = saved_head(resume_from)
        if found != expected:
            raise ValueError(f"The checkpoint {resume_from} has a {found!r} head, this run builds {expected!r}: "
                             f"resume with head={found!r}, or start afresh without resume (its checkpoints are "
                             f"then removed).")
    if resume and not resume_from:
        logger.warning("resume=True but no checkpoint in %s: starting from the beginning.", output / "checkpoints")
    manifest = run_manifest(config, base, head, triplets, held_out_candidates)
    if resume_from:
        check_resumable(output / "checkpoints", manifest)
    else:
        (output / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(output / "checkpoints" / RUN_MANIFEST_FILE, json.dumps(manifest, indent=2))
    trainer.train(resume_from_checkpoint=resume_from)

    validation = evaluator(model) if evaluator else {}
    fusion = fusion_sweep(model, held_out_candidates) if held_out_candidates else None
    history = trainer.state.log_history
    report = {
        "validation_on": ("first-stage candidates of held-out training queries" if held_out_candidates else
                          "positives among mined negatives of held-out training queries (optimistic)"
                          if evaluator else "none"),
        "fusion": fusion,
        "config": asdict(config),
        "head": head,
        "head_lr": head_lr,
        "train_rows": len(train_rows),
        "validation_queries": len(set(validation_rows["query"])) if len(validation_rows) else 0,
        "validation_query_texts": sorted(set(validation_rows["query"])) if len(validation_rows) else [],
        "steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "validation": {k: float(v) for k, v in validation.items()},
        "history": history,
        "resumed_from": resume_from,
    }
    # Built aside and swapped in whole: a retrained model never inherits an earlier run's fusion weight, and an
    # interrupted save leaves the previous model as it was.
    with atomic_directory(output / "model") as model_dir:
        model.save(str(model_dir))
        if fusion is not None:
            settings = {"fusion_alpha": fusion["best_alpha"], "chosen_on": report["validation_on"],
                        "rule": fusion["rule"], "argmax_alpha": fusion["argmax_alpha"],
                        "validation": fusion["best"], "reranker_alone": fusion["reranker_alone"],
                        "first_stage": fusion["first_stage"]}
            atomic_write_text(model_dir / RANKER_SETTINGS_FILE, json.dumps(settings, indent=2))
        _append_model_card(model_dir, report)
    atomic_write_text(output / "training_report.json", json.dumps(report, indent=2, default=str))
    _plot_curves(history, output / "training_curves.png")
    return report


def _append_model_card(model_dir: Path, report: dict) -> None:
    config = report["config"]
    lines = [
        "",
        "## Fine-tuned with haystack-hardneg",
        "",
        f"- base model: `{config['base_model']}`",
        f"- data: {config['data_description'] or 'mined triplets'} ({report['train_rows']} training rows, "
        f"{report['validation_queries']} held-out validation queries)",
        f"- negative strategy: `{config['strategy']}`",
        f"- scoring head: `{report['head']}`",
        f"- loss: `{config['loss']}`; epochs {config['epochs']}; encoder lr {config['encoder_lr']}, "
        f"head lr {report['head_lr']}; batch size {config['batch_size']}; "
        f"precision {config['precision']}; seed {config['seed']}",
    ]
    if report["validation"]:
        lines.append(f"- validation ({report['validation_on']}): " + ", ".join(
            f"{k.replace('validation_', '')} {v:.4f}" for k, v in report["validation"].items()))
    if report.get("fusion"):
        fusion = report["fusion"]
        lines.append(f"- on the same slice, nDCG@10: first stage {fusion['first_stage']['ndcg@10']:.4f}, re-ranker "
                     f"alone {fusion['reranker_alone']['ndcg@10']:.4f}, fused with the retriever score at alpha "
                     f"{fusion['best_alpha']} {fusion['best']['ndcg@10']:.4f} (the weight `CrossEncoderRanker` "
                     f"uses with `fusion_alpha=\"auto\"`, stored in `{RANKER_SETTINGS_FILE}`; chosen by the "
                     f"{'one-standard-error rule towards 0.5' if fusion['rule'] == 'one_se' else 'best score'}, "
                     f"best on the slice: alpha {fusion['argmax_alpha']})")
    card = model_dir / "README.md"
    existing = card.read_text(encoding="utf-8") if card.exists() else "# Cross-encoder\n"
    atomic_write_text(card, existing.rstrip() + "\n" + "\n".join(lines) + "\n")


def _plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    metrics = [(h["step"], h["eval_validation_ndcg@10"], h.get("eval_validation_mrr@10")) for h in history
               if "eval_validation_ndcg@10" in h]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        left.plot(*zip(*losses), marker=".")
    left.set(title="training loss", xlabel="step", ylabel="loss")
    if metrics:
        steps, ndcg, mrr = zip(*metrics)
        right.plot(steps, ndcg, marker="o", label="nDCG@10")
        if all(m is not None for m in mrr):
            right.plot(steps, mrr, marker="s", label="MRR@10")
        right.legend()
    right.set(title="validation (held-out training queries)", xlabel="step", ylabel="score")
    figure.tight_layout()
    atomic_save_figure(figure, path, dpi=100)
    plt.close(figure)
