import json
import random
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from datasets import Dataset
from haystack import Document
from sentence_transformers import CrossEncoder
from transformers import TrainerCallback

from haystack_hardneg import CrossEncoderRanker, TripletTrainer
from haystack_hardneg.embed.encoder import ModelNotFoundError
from haystack_hardneg.experiment.report_markdown import _rerankers
from haystack_hardneg.files import read_jsonl
from haystack_hardneg.machine import cpu, describe_cpu, missing_bf16
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.heads import build_cross_encoder, head_parameters, resolve_head
from haystack_hardneg.train.trainer import train_cross_encoder
from haystack_hardneg.train.validation import split_by_query

TOPICS = ["heart", "liver", "virus", "tumor", "brain", "blood", "vaccine", "kidney"]


def separable_rows(n: int = 96, seed: int = 0) -> Dataset:
    """Separable by one word: every positive mentions "vaccine", no negative does."""
    rng = random.Random(seed)
    rows = []
    topics = [t for t in TOPICS if t != "vaccine"]
    for i in range(n):
        topic = topics[i % len(topics)]
        rows.append({"query": f"{topic} question {i}", "positive": f"{topic} vaccine study results",
                     "negative_1": f"{rng.choice(topics)} study results", "negative_2": f"{rng.choice(topics)} cells"})
    return Dataset.from_list(rows)


def ranking_accuracy(model_dir_or_model, rows: Dataset) -> float:
    """Share of (positive, negative) pairs the model orders correctly."""
    model = CrossEncoder(model_dir_or_model) if isinstance(model_dir_or_model, str) else model_dir_or_model
    identity = torch.nn.Identity()
    positive = model.predict([(r["query"], r["positive"]) for r in rows], activation_fn=identity)
    negative = model.predict([(r["query"], r["negative_1"]) for r in rows], activation_fn=identity)
    return float(np.mean(positive > negative))


def _config(tmp_path, trainable_model, **kwargs):
    options = dict(base_model=trainable_model, output_dir=str(tmp_path / "run"), epochs=3, batch_size=8,
                   encoder_lr=3e-3, head_lr=3e-2, validation_fraction=0.25, seed=0)
    options.update(kwargs)
    return TrainingConfig(**options)


@pytest.mark.parametrize("loss, head, precision", [("triplet", "auto", "fp32"), ("listwise", "auto", "fp32"),
                                                   ("bce", "auto", "fp32"), ("triplet", "classifier", "fp32"),
                                                   ("triplet", "auto", "bf16")])
def test_each_loss_separates_positives_from_negatives(trainable_model, tmp_path, loss, head, precision, caplog):
    rows = separable_rows()
    torch.manual_seed(0)  # the trainer seeds the same way before adding the head: the same starting model
    before = ranking_accuracy(build_cross_encoder(trainable_model, head), rows)
    with caplog.at_level("WARNING"):
        report = train_cross_encoder(rows, _config(tmp_path, trainable_model, loss=loss, epochs=4, head=head,
                                                   precision=precision), progress_bar=False)
    # bf16 on a CPU without bfloat16 instructions trains in fp32, saying which instructions are missing.
    refused = precision == "bf16" and not torch.cuda.is_available() and missing_bf16()
    assert any(f"precision bf16 is refused on {describe_cpu(cpu())}: it has no {refused}" in r.getMessage()
               for r in caplog.records) == bool(refused)
    assert report["head"] == ("mean" if head == "auto" else head)
    assert report["precision_run"] == ("fp32" if refused else precision)
    saved = CrossEncoder(str(tmp_path / "run" / "model"))
    assert all(p.dtype == torch.float32 for p in saved.parameters())
    after = ranking_accuracy(str(tmp_path / "run" / "model"), rows)
    assert after == 1.0 and before < 0.8
    losses = [h["loss"] for h in report["history"] if "loss" in h]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert report["validation"]["validation_ndcg@10"] > 0


def test_a_refused_bf16_is_recorded_as_the_fp32_run_it_was(trainable_model, tmp_path, monkeypatch):
    # A CPU without bfloat16 instructions, whatever this one has: what the report and the card then say.
    monkeypatch.setattr("haystack_hardneg.train.trainer.bf16_support",
                        lambda device: ("AVX-512 BF16 or AMX-BF16", "a CPU without them"))
    report = train_cross_encoder(separable_rows(32), _config(tmp_path, trainable_model, epochs=1, precision="bf16"),
                                 progress_bar=False)
    assert (report["config"]["precision"], report["precision_run"]) == ("bf16", "fp32")
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "precision fp32 (bf16 asked, refused on the training machine)" in card
    summary = _rerankers({"rerank_k": 5, "fusion_rule": "argmax", "rerankers": {
        "dense": {"validation": {}, "train_rows": 32, "steps": 4, "train_seconds": 1.0, "fusion_alpha": None,
                  "ms_per_query": 1.0, "precision": {"asked": "bf16", "run": report["precision_run"]}}}})
    assert "**Warning (dense)**: trained in fp32; bf16 was asked and refused" in "\n".join(summary)


def test_validation_queries_are_held_out_of_training():
    train, validation = split_by_query(separable_rows(), 0.25, seed=0)
    assert len(validation) == 24 and not set(train["query"]) & set(validation["query"])


def test_a_query_stays_held_out_when_other_queries_come_and_go():
    rows = separable_rows()
    held_out = set(split_by_query(rows, 0.25, seed=0)[1]["query"])
    # Another strategy's triplets miss two training queries: the held-out queries must not change.
    missing = sorted(set(rows["query"]) - held_out)[:2]
    fewer = rows.filter(lambda row: row["query"] not in missing)
    assert set(split_by_query(fewer, 0.25, seed=0)[1]["query"]) <= held_out
    assert len(held_out - set(split_by_query(fewer, 0.25, seed=0)[1]["query"])) <= 1
    assert set(split_by_query(rows, 0.25, seed=1)[1]["query"]) != held_out


def test_held_out_queries_are_capped():
    train, validation = split_by_query(separable_rows(), 0.25, seed=0, limit=5)
    assert len(set(validation["query"])) == 5 and len(train) == 96 - 5
    assert set(validation["query"]) <= set(split_by_query(separable_rows(), 0.25, seed=0)[1]["query"])


def test_max_steps_and_a_time_budget_end_training_with_the_best_checkpoint(trainable_model, tmp_path):
    rows = separable_rows()
    # 72 training rows at batch 8: 9 steps an epoch, 27 for 3 epochs; max_steps cuts that to 4, evaluated every 2.
    report = train_cross_encoder(rows, _config(tmp_path, trainable_model, max_steps=4, eval_steps=2),
                                 progress_bar=False)
    assert report["steps"] == 4 and report["best_checkpoint"] is not None
    assert [h["step"] for h in report["history"] if "eval_validation_ndcg@10" in h] == [2, 4]
    # One evaluation, at the end, would choose nothing: the final model is validated once, after training.
    once = train_cross_encoder(rows, _config(tmp_path / "once", trainable_model, max_steps=4), progress_bar=False)
    assert [h for h in once["history"] if "eval_validation_ndcg@10" in h] == [] and once["best_checkpoint"] is None
    assert 0 <= once["validation"]["validation_ndcg@10"] <= 1
    # max_steps only ever cuts the epochs short (transformers' own max_steps would override them).
    longer = train_cross_encoder(rows, _config(tmp_path / "longer", trainable_model, epochs=1, max_steps=1000),
                                 progress_bar=False)
    assert longer["steps"] == 9
    # A budget of a few milliseconds ends the run after its first step, validated and saved.
    timed = train_cross_encoder(rows, _config(tmp_path / "timed", trainable_model, max_minutes=1e-5),
                                progress_bar=False)
    assert timed["steps"] == 1 and timed["best_checkpoint"] is not None
    assert (tmp_path / "timed" / "run" / "model" / "model.safetensors").is_file()


class StopAfter(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
            control.should_save = True


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(trainable_model, tmp_path):
    rows = separable_rows()
    probe = [(r["query"], r["negative_2"]) for r in rows]
    straight = _config(tmp_path / "a", trainable_model, validation_fraction=0.0, epochs=2)
    train_cross_encoder(rows, straight, progress_bar=False)
    expected = CrossEncoder(str(tmp_path / "a" / "run" / "model")).predict(probe)

    interrupted = _config(tmp_path / "b", trainable_model, validation_fraction=0.0, epochs=2)
    first = train_cross_encoder(rows, interrupted, progress_bar=False, callbacks=[StopAfter(7)])
    assert first["steps"] == 7
    assert (tmp_path / "b" / "run" / "checkpoints" / "checkpoint-7").is_dir()
    second = train_cross_encoder(rows, interrupted, resume=True, progress_bar=False)
    assert second["resumed_from"].endswith("checkpoint-7") and second["steps"] == 24
    resumed = CrossEncoder(str(tmp_path / "b" / "run" / "model")).predict(probe)
    np.testing.assert_allclose(resumed, expected, atol=1e-5)


def test_saved_model_scores_the_same_everywhere_and_has_a_card(trainable_model, tmp_path):
    trainer = TripletTrainer(training={"base_model": trainable_model, "output_dir": str(tmp_path / "run"), "epochs": 1,
                                       "batch_size": 8, "strategy": "ensemble_cluster",
                                       "data_description": "synthetic topics"}, progress_bar=False)
    result = trainer.run(triplets=separable_rows().to_list())
    model_path = result["model_path"]
    docs = [Document(id=str(i), content=t) for i, t in enumerate(["heart heart study", "liver cells", "virus"])]
    query = "heart question"

    direct = CrossEncoder(model_path).predict([(query, d.content) for d in docs])  # sigmoid by default
    ours = CrossEncoderRanker(model=model_path, top_k=3)
    ours.warm_up()
    ours_scores = {d.id: d.score for d in ours.run(query=query, documents=docs)["documents"]}
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    haystack_ranker = SentenceTransformersSimilarityRanker(model=model_path, top_k=3)
    haystack_ranker.warm_up()
    theirs = {d.id: d.score for d in haystack_ranker.run(query=query, documents=docs)["documents"]}
    for i, score in enumerate(direct):
        assert ours_scores[str(i)] == pytest.approx(float(score), abs=1e-5)
        assert theirs[str(i)] == pytest.approx(float(score), abs=1e-5)

    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "ensemble_cluster" in card and trainable_model in card and "synthetic topics" in card
    assert ".partial" not in card  # saved through a staging folder whose name must not leak into the card
    assert (tmp_path / "run" / "training_curves.png").stat().st_size > 1000
    assert json.loads((tmp_path / "run" / "training_report.json").read_text())["steps"] == result["report"]["steps"]


def test_an_encoder_gets_a_new_head_and_a_re_ranker_keeps_its_own(trainable_model, tmp_path):
    mean = build_cross_encoder(trainable_model)
    assert [type(m).__name__ for m in mean] == ["Transformer", "Pooling", "Dense"]
    assert mean[1].pooling_mode == "mean"  # the base's own pooling
    encoder, head = head_parameters(mean)
    assert [tuple(p.shape) for p in head] == [(1, 32), (1,)] and len(encoder) > 10
    classifier = build_cross_encoder(trainable_model, "classifier")
    assert [tuple(p.shape) for p in head_parameters(classifier)[1]] == [(1, 32), (1,)]

    # A model trained here is a re-ranker: training it again keeps its head (no new random one)
    first = TrainingConfig(base_model=trainable_model, output_dir=str(tmp_path / "a"), epochs=1,
                           validation_fraction=0.0)
    train_cross_encoder(separable_rows(16), first, progress_bar=False)
    reranker = str(tmp_path / "a" / "model")
    assert resolve_head(reranker, "auto") == "pretrained" and resolve_head(trainable_model, "auto") == "mean"
    probe = [("heart question", "heart vaccine study results")]
    np.testing.assert_allclose(build_cross_encoder(reranker).predict(probe), CrossEncoder(reranker).predict(probe))
    with pytest.raises(ValueError, match="already is a re-ranker"):
        resolve_head(reranker, "mean")
    with pytest.raises(ValueError, match="Unknown head"):
        TrainingConfig(base_model=trainable_model, output_dir="x", head="max")


def test_the_head_follows_what_the_base_is(trainable_model, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    # A sentence-transformers encoder pooled on [CLS] (like bge) keeps that pooling
    cls_pooled = tmp_path / "cls-pooled"
    shutil.copytree(trainable_model, cls_pooled)
    pooling = cls_pooled / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "pooling_mode": "cls"}))
    assert resolve_head(str(cls_pooled), "auto") == "cls"
    assert build_cross_encoder(str(cls_pooled))[1].pooling_mode == "cls"

    # A transformers sequence classifier with one label is a re-ranker; with three (NLI-like) it is an encoder
    tokenizer = AutoTokenizer.from_pretrained(trainable_model)
    for labels in (1, 3):
        folder = tmp_path / f"classifier-{labels}"
        BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=64,
                                                 num_labels=labels)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    assert resolve_head(str(tmp_path / "classifier-1"), "auto") == "pretrained"
    assert resolve_head(str(tmp_path / "classifier-3"), "auto") == "mean"
    assert resolve_head(str(tmp_path / "classifier-3"), "classifier") == "classifier"


def test_resuming_with_another_head_is_refused_with_the_head_to_use(trainable_model, tmp_path):
    rows = separable_rows(32)
    config = _config(tmp_path, trainable_model, validation_fraction=0.0, epochs=2)
    train_cross_encoder(rows, config, progress_bar=False, callbacks=[StopAfter(3)])
    with pytest.raises(ValueError, match="'mean' head, this run builds 'classifier'"):
        train_cross_encoder(rows, replace(config, head="classifier"), resume=True, progress_bar=False)
    resumed = train_cross_encoder(rows, config, resume=True, progress_bar=False)
    assert resumed["resumed_from"].endswith("checkpoint-3")


def test_resuming_on_other_triplets_or_settings_is_refused_and_keeps_the_checkpoints(trainable_model, tmp_path):
    rows = separable_rows(32)
    config = _config(tmp_path, trainable_model, validation_fraction=0.25, epochs=2)
    candidates = first_stage_records(rows)
    train_cross_encoder(rows, config, progress_bar=False, callbacks=[StopAfter(3)], candidates=candidates)
    checkpoints = tmp_path / "run" / "checkpoints"

    def resume(triplets=rows, settings=config, first_stage=candidates):
        return train_cross_encoder(triplets, settings, resume=True, progress_bar=False, candidates=first_stage)

    with pytest.raises(ValueError, match="triplets: 32 rows -> 31 rows"):
        resume(triplets=rows.select(range(31)))
    with pytest.raises(ValueError, match="same row count, other texts"):
        resume(triplets=separable_rows(32, seed=1))
    with pytest.raises(ValueError, match="batch_size: 8 -> 4"):
        resume(settings=replace(config, batch_size=4))
    with pytest.raises(ValueError, match="validation candidates"):
        resume(first_stage=[dict(r, candidates=r["candidates"][::-1]) for r in candidates])
    assert (checkpoints / "checkpoint-3").is_dir()
    # Where to write, what the model card says and how the base model's path is spelled may change.
    renamed = replace(config, strategy="bm25", data_description="renamed", base_model=trainable_model + "/.")
    resumed = resume(settings=renamed)
    assert resumed["resumed_from"].endswith("checkpoint-3") and resumed["steps"] == 6


def test_checkpoints_of_a_version_without_a_manifest_are_resumed_with_a_warning(trainable_model, tmp_path, caplog):
    rows = separable_rows(32)
    config = _config(tmp_path, trainable_model, validation_fraction=0.0, epochs=2)
    train_cross_encoder(rows, config, progress_bar=False, callbacks=[StopAfter(3)])
    (tmp_path / "run" / "checkpoints" / "run.json").unlink()
    resumed = train_cross_encoder(rows, config, resume=True, progress_bar=False, callbacks=[StopAfter(5)])
    assert resumed["resumed_from"].endswith("checkpoint-3")
    assert "carry no run.json" in caplog.text
    # The manifest is written then, so a second resume of the same run is checked.
    with pytest.raises(ValueError, match="max_length: 256 -> 32"):
        train_cross_encoder(rows, replace(config, max_length=32), resume=True, progress_bar=False)


def test_bad_input_is_refused_before_training(trainable_model, tmp_path):
    with pytest.raises(ModelNotFoundError):
        TripletTrainer(training={"base_model": str(tmp_path / "missing"), "output_dir": str(tmp_path / "x")})
    trainer = TripletTrainer(training={"base_model": trainable_model, "output_dir": str(tmp_path / "x")},
                             progress_bar=False)
    with pytest.raises(ValueError, match="nothing to train"):
        trainer.run(triplets=[])
    empty_file = tmp_path / "empty.jsonl"
    empty_file.write_text("")
    with pytest.raises(ValueError, match="empty"):
        trainer.run(triplets=str(empty_file))
    with pytest.raises(ValueError, match="empty text"):
        trainer.run(triplets=[{"query": "q", "positive": "p", "negative_1": " "}])
    with pytest.raises(ValueError, match=r"training: unknown option\(s\) \['learning_rate'\]"):
        TripletTrainer(training={"base_model": trainable_model, "output_dir": "x", "learning_rate": 1})
    assert not (tmp_path / "x" / "model").exists()


def test_trainer_round_trips_to_dict(trainable_model):
    trainer = TripletTrainer(training={"base_model": trainable_model, "output_dir": "runs/t", "loss": "listwise",
                                       "epochs": 1.5, "head_lr": None})
    restored = TripletTrainer.from_dict(trainer.to_dict())
    assert restored.to_dict() == trainer.to_dict() and restored.config == trainer.config


def test_train_command(trainable_model, tmp_path):
    import subprocess
    import sys

    triplets = tmp_path / "triplets.jsonl"
    separable_rows(32).to_json(str(triplets), lines=True)
    done = subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", "train", "--triplets", str(triplets),
                           "--base-model", trainable_model, "--epochs", "1", "--out", str(tmp_path / "run"),
                           "--export", "onnx"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # Exported at the end; without first-stage candidates there is nothing to check it on, and the run says so.
    assert "onnx export: onnx/model.onnx" in done.stdout and "Not checked" in done.stdout
    assert (tmp_path / "run" / "model" / "onnx" / "model.onnx").is_file()
    start = done.stdout.index('{\n  "model"')
    summary = json.loads(done.stdout[start : done.stdout.index("\n}", start) + 2])
    assert summary["steps"] == 4 and "validation_ndcg@10" in summary["validation"]
    assert summary["loss"] == "triplet"  # auto, on a file with no miner's scores beside it
    assert CrossEncoder(summary["model"]).predict([("q", "d")]).shape == (1,)
    # An export that cannot be made is refused before the training starts.
    refused = subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", "train", "--triplets", str(triplets),
                              "--base-model", trainable_model, "--out", str(tmp_path / "other"), "--export",
                              "openvino", "--optimize", "O2"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "optimize applies to the onnx backend only" in refused.stderr
    assert not (tmp_path / "other").exists()


def first_stage_records(rows: Dataset) -> list[dict]:
    """Candidate records as the miner writes them, with a first stage that ranks the positive *last*."""
    records = []
    for i, row in enumerate(rows):
        texts = [row["negative_1"], row["negative_2"], row["positive"]]
        ids = [f"n1-{i}", f"n2-{i}", f"p-{i}"]
        records.append({"query_id": str(i), "query": row["query"], "positive_ids": [f"p-{i}"],
                        "candidates": [{"id": d, "text": t, "score": s}
                                       for d, t, s in zip(ids, texts, [0.9, 0.8, 0.7])]})
    return records


def test_validation_on_first_stage_candidates_chooses_and_stores_the_fusion_weight(trainable_model, tmp_path):
    rows = separable_rows()
    trainer = TripletTrainer(training={"base_model": trainable_model, "output_dir": str(tmp_path / "run"), "epochs": 4,
                                       "batch_size": 8, "encoder_lr": 3e-3, "head_lr": 3e-2,
                                       "validation_fraction": 0.25}, progress_bar=False)
    report = trainer.run(triplets=rows.to_list(), candidates=first_stage_records(rows))["report"]
    assert report["validation_on"].startswith("first-stage candidates")
    # One validation figure: the checkpoint kept was chosen on what hardneg.json reports for it.
    evaluations = [h for h in report["history"] if "eval_validation_ndcg@10" in h]
    assert max(h["eval_validation_ndcg@10"] for h in evaluations) == \
        pytest.approx(report["fusion"]["reranker_alone"]["ndcg@10"])
    assert [h["eval_validation_base_ndcg@10"] for h in evaluations] == \
        pytest.approx([report["fusion"]["first_stage"]["ndcg@10"]] * len(evaluations))
    fusion = report["fusion"]
    assert fusion["queries"] == 24 and len(fusion["by_alpha"]) == 11
    # The first stage puts every positive third of three; the trained ranker puts it first.
    assert fusion["first_stage"]["mrr@10"] == pytest.approx(1 / 3)
    assert fusion["reranker_alone"]["ndcg@10"] == pytest.approx(1.0)
    # Every weight that ranks all positives first ties; the tie goes to the smallest (nearest the first stage).
    perfect_alphas = [float(a) for a, m in fusion["by_alpha"].items() if m["ndcg@10"] == pytest.approx(1.0)]
    assert fusion["rule"] == "argmax" and fusion["best_alpha"] == fusion["argmax_alpha"] == min(perfect_alphas) > 0
    assert fusion["fallback"] is None and fusion["informative_queries"] == 24
    stored = json.loads((tmp_path / "run" / "model" / "hardneg.json").read_text())
    assert stored["fusion_alpha"] == fusion["best_alpha"] and stored["validation"]["ndcg@10"] == pytest.approx(1.0)
    assert stored["informative_queries"] == 24 and stored["fallback"] is None
    assert "first stage 0.5" in (tmp_path / "run" / "model" / "README.md").read_text()
    # The held-out queries' candidates stay with the model: an export is checked on them.
    kept_with_model = read_jsonl(tmp_path / "run" / "model" / "hardneg_validation.jsonl")
    assert sorted(r["query"] for r in kept_with_model) == sorted(report["validation_query_texts"])
    # And a sample of the training pairs, for an int8 export's calibration: none of them from a held-out query.
    calibration = read_jsonl(tmp_path / "run" / "model" / "hardneg_calibration.jsonl")
    negatives = [c for c in rows.column_names if "negative" in c]
    texts = {text for row in rows for text in (row["positive"], *(row[c] for c in negatives))}
    assert calibration and all(r["text"] in texts for r in calibration)
    assert not {r["query"] for r in calibration} & set(report["validation_query_texts"])
    # The one-standard-error rule, on the same scores: among the fusions as good as the re-ranker alone (all
    # perfect here), the one nearest equal weighting.
    from haystack_hardneg.evaluate.selection import choose_fusion_alpha

    records = first_stage_records(rows)
    kept = [r for r in records if r["query"] in set(report["validation_query_texts"])]
    model = CrossEncoder(str(tmp_path / "run" / "model"))
    ranker_scores = {r["query_id"]: dict(zip([c["id"] for c in r["candidates"]], map(float, model.predict(
        [(r["query"], c["text"]) for c in r["candidates"]], activation_fn=torch.nn.Sigmoid())))) for r in kept}
    first = {r["query_id"]: {c["id"]: c["score"] for c in r["candidates"]} for r in kept}
    qrels = {r["query_id"]: {d: 1 for d in r["positive_ids"]} for r in kept}
    one_se = choose_fusion_alpha(qrels, first, ranker_scores, rule="one_se")
    perfect = [float(a) for a, m in one_se["by_alpha"].items() if m["ndcg@10"] == pytest.approx(1.0)]
    assert one_se["argmax_alpha"] == min(perfect) == fusion["argmax_alpha"]  # ties: the smaller weight, as argmax
    assert one_se["best_alpha"] == min(perfect, key=lambda a: abs(a - 0.5)) < 1.0
    with pytest.raises(ValueError, match="Unknown fusion rule"):
        choose_fusion_alpha(qrels, first, ranker_scores, rule="best")

    # Candidates given as records name no first stage: "auto" then never applies the weight ...
    assert stored["first_stage_name"] is None and stored["p_value"] < 0.05
    ranker = CrossEncoderRanker(model=str(tmp_path / "run" / "model"))  # fusion_alpha="auto"
    ranker.warm_up()
    assert ranker.effective_fusion_alpha is None
    # ... which it does behind the first stage the weight was chosen on.
    stored["first_stage_name"] = "runs/mine/candidates.jsonl"
    (tmp_path / "run" / "model" / "hardneg.json").write_text(json.dumps(stored))
    ranker = CrossEncoderRanker(model=str(tmp_path / "run" / "model"), first_stage=stored["first_stage_name"])
    ranker.warm_up()
    assert ranker.effective_fusion_alpha == fusion["best_alpha"]
    stored["fusion_alpha"] = 1.0
    (tmp_path / "run" / "model" / "hardneg.json").write_text(json.dumps(stored))
    ranker = CrossEncoderRanker(model=str(tmp_path / "run" / "model"), first_stage=stored["first_stage_name"])
    ranker.warm_up()
    assert ranker.effective_fusion_alpha is None  # alpha 1.0 is the re-ranker alone
    stored["fusion_alpha"] = 0.3
    (tmp_path / "run" / "model" / "hardneg.json").write_text(json.dumps(stored))
    ranker = CrossEncoderRanker(model=str(tmp_path / "run" / "model"), first_stage=stored["first_stage_name"])
    ranker.warm_up()
    assert ranker.effective_fusion_alpha == 0.3
    pinned = CrossEncoderRanker(model=str(tmp_path / "run" / "model"), fusion_alpha=None)
    pinned.warm_up()
    assert pinned.effective_fusion_alpha is None

    # Retrained into the same folder without first-stage candidates: no fusion weight is chosen, and the earlier
    # model's must not survive beside the new weights.
    trainer = TripletTrainer(training={"base_model": trainable_model, "output_dir": str(tmp_path / "run"), "epochs": 1,
                                       "batch_size": 8, "validation_fraction": 0.25}, progress_bar=False)
    assert trainer.run(triplets=rows.to_list())["report"]["fusion"] is None
    assert not (tmp_path / "run" / "model" / "hardneg.json").exists()
    retrained = CrossEncoderRanker(model=str(tmp_path / "run" / "model"))
    retrained.warm_up()
    assert retrained.effective_fusion_alpha is None
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")) == []


def test_candidates_that_miss_every_held_out_query_are_refused(trainable_model, tmp_path):
    rows = separable_rows(32)
    strangers = [dict(r, query=f"another {r['query']}") for r in first_stage_records(rows)]
    with pytest.raises(ValueError, match="held-out queries"):
        train_cross_encoder(rows, _config(tmp_path, trainable_model, epochs=1), candidates=strangers,
                            progress_bar=False)


def test_the_checkpoint_evaluator_scores_as_the_stored_figures(tiny_model):
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    from haystack_hardneg.train.validation import candidate_evaluator, fusion_sweep

    # Graded judgements, and a relevant document the first stage missed: it counts in the ideal DCG.
    records = [{"query_id": f"q{i}", "query": f"query {i} about topic {i}", "positive_ids": [f"a{i}", f"missed{i}"],
                "relevance": {f"a{i}": 2, f"missed{i}": 1},
                "candidates": [{"id": f"n{i}-{j}", "text": f"text {j} of {i}", "score": 1.0 - j / 10}
                               for j in range(4)] + [{"id": f"a{i}", "text": f"topic {i} answer", "score": 0.5}]}
               for i in range(6)]
    model = CrossEncoder(tiny_model, num_labels=1)
    ours = candidate_evaluator(records)(model)
    stored = fusion_sweep(model, records, min_queries=1)
    assert ours["validation_ndcg@10"] == pytest.approx(stored["reranker_alone"]["ndcg@10"])
    assert ours["validation_base_ndcg@10"] == pytest.approx(stored["first_stage"]["ndcg@10"])
    theirs = CrossEncoderRerankingEvaluator(
        samples=[{"query": r["query"], "positive": [r["candidates"][-1]["text"]],
                  "documents": [c["text"] for c in r["candidates"]]} for r in records],
        at_k=10, always_rerank_positives=False, write_csv=False)(model)
    assert theirs["ndcg@10"] > ours["validation_ndcg@10"] + 0.05  # blind to the missed document
