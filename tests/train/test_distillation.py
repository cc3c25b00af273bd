"""Distillation from the mining ensemble: the teacher's scores come with the mined triplets (no embedding again),
each distillation loss learns the teacher's order on a toy set, and computes what sentence-transformers' own loss
computes."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import CrossEncoder
from sentence_transformers.cross_encoder.losses import ListNetLoss, MarginMSELoss

from haystack_hardneg import TripletTrainer
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.mine.negatives import mine_negatives
from haystack_hardneg.mine.triplets import load_triplets, write_triplets
from haystack_hardneg.options import to_mapping
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.heads import build_cross_encoder
from haystack_hardneg.train.losses import TeacherListNetLoss, TeacherMarginMSELoss
from haystack_hardneg.train.trainer import train_cross_encoder

from mine.synthetic import synthetic_data

TOPICS = ["heart", "liver", "virus", "tumor", "brain", "blood", "kidney"]


def graded_rows(n: int = 96, seed: int = 0) -> Dataset:
    """Rows whose three documents the teacher grades: the "vaccine" study best, then "results", then "cells".
    The labels alone say only that the positive is first; the order of the two negatives is the teacher's."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        rows.append({"query": f"{topic} question {i}", "positive": f"{topic} vaccine study results",
                     "negative_1": f"{rng.choice(TOPICS)} study results", "negative_2": f"{rng.choice(TOPICS)} cells",
                     "scores": [0.62, 0.55, 0.40]})
    return Dataset.from_list(rows)


def order_accuracy(model: CrossEncoder, rows: Dataset) -> float:
    """Share of rows whose three documents the model orders as the teacher does."""
    identity = torch.nn.Identity()
    scores = [model.predict([(r["query"], r[c]) for r in rows], activation_fn=identity)
              for c in ("positive", "negative_1", "negative_2")]
    return float(np.mean((scores[0] > scores[1]) & (scores[1] > scores[2])))


@pytest.mark.parametrize("loss, label_weight", [("margin_mse", 0.0), ("margin_mse", 0.5), ("listnet", 0.0),
                                                ("listnet", 0.5)])
def test_each_distillation_loss_learns_the_teachers_order(trainable_model, tmp_path, loss, label_weight):
    rows = graded_rows()
    torch.manual_seed(0)
    before = order_accuracy(build_cross_encoder(trainable_model, "auto"), rows)
    config = TrainingConfig(base_model=trainable_model, output_dir=str(tmp_path / "run"), loss=loss,
                            label_weight=label_weight, epochs=4, batch_size=8, encoder_lr=3e-3, head_lr=3e-2,
                            validation_fraction=0.25, seed=0)
    report = train_cross_encoder(rows, config, progress_bar=False)
    assert order_accuracy(CrossEncoder(str(tmp_path / "run" / "model")), rows) == 1.0 and before < 0.5
    # The loss falls towards its floor: 0 for margin_mse (the teacher's margins clear the triplet margin), the
    # entropy of the target for listnet (a cross-entropy).
    losses = np.array([h["loss"] for h in report["history"] if "loss" in h]) - lowest_loss(loss, label_weight)
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert report["config"]["loss"] == loss


def lowest_loss(loss: str, label_weight: float) -> float:
    if loss == "margin_mse":
        return 0.0
    target = (1 - label_weight) * torch.softmax(20.0 * torch.tensor([0.62, 0.55, 0.40]), 0)
    target[0] += label_weight
    return float(-(target * target.log()).sum())


@pytest.fixture
def scorer(trainable_model):
    torch.manual_seed(0)
    model = build_cross_encoder(trainable_model, "auto")
    model.eval()  # no dropout: two losses see the same scores
    return model


def test_margin_mse_computes_what_sentence_transformers_does(scorer):
    rows = graded_rows(6)
    inputs = [rows["query"], rows["positive"], rows["negative_1"], rows["negative_2"]]
    teacher = torch.tensor(rows["scores"]) + torch.linspace(0, 0.1, 6)[:, None]
    ours = TeacherMarginMSELoss(scorer, teacher_scale=3.0, label_weight=0.0)(inputs, teacher)
    theirs = MarginMSELoss(scorer)(inputs, 3.0 * teacher)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    # The label term adds the triplet margin loss on the same scores.
    with_labels = TeacherMarginMSELoss(scorer, teacher_scale=3.0, label_weight=0.5, margin=1.0)(inputs, teacher)
    scores = torch.stack([scorer.predict(list(zip(rows["query"], rows[c])), activation_fn=torch.nn.Identity(),
                                         convert_to_tensor=True) for c in ("positive", "negative_1", "negative_2")], 1)
    triplet = torch.relu(1.0 - (scores[:, :1] - scores[:, 1:])).mean()
    assert with_labels.item() == pytest.approx(theirs.item() + 0.5 * triplet.item(), rel=1e-4)


def test_listnet_computes_what_sentence_transformers_does(scorer):
    rows = graded_rows(6)
    inputs = [rows["query"], rows["positive"], rows["negative_1"], rows["negative_2"]]
    teacher = torch.tensor(rows["scores"]) + torch.linspace(0, 0.1, 6)[:, None]
    ours = TeacherListNetLoss(scorer, teacher_scale=5.0, label_weight=0.0)(inputs, teacher)
    documents = [[r["positive"], r["negative_1"], r["negative_2"]] for r in rows]
    theirs = ListNetLoss(scorer)([rows["query"], documents], list(5.0 * teacher))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    # label_weight 1 is the listwise loss: cross-entropy with the positive as the class.
    listwise = TeacherListNetLoss(scorer, teacher_scale=5.0, label_weight=1.0)(inputs, teacher)
    logits = torch.stack([scorer.predict(list(zip(rows["query"], rows[c])), activation_fn=torch.nn.Identity(),
                                         convert_to_tensor=True) for c in ("positive", "negative_1", "negative_2")], 1)
    expected = torch.nn.functional.cross_entropy(logits, torch.zeros(6, dtype=torch.long))
    assert listwise.item() == pytest.approx(expected.item(), rel=1e-4)


def test_mined_triplets_carry_the_ensembles_scores_into_training(trainable_model, tmp_path):
    """Mining from stored vectors writes the ensemble's scores with the triplets; training reads them there. The
    synthetic data has vectors and no model: nothing can be embedded again."""
    data = synthetic_data()
    result = mine_negatives(data, MiningConfig(strategy="ensemble_cluster", num_negatives=2, n_clusters=8,
                                               guard_ratio=None), progress_bar=False)
    paths = write_triplets(tmp_path / "mined", result, dict(zip(data.query_ids, data.query_texts)),
                           dict(zip(data.doc_ids, data.doc_texts)))
    assert set(json.loads(paths["triplets"].read_text().splitlines()[0])) == {
        "query", "positive", "negative_1", "negative_2"}  # the file stays sentence-transformers' n-tuples
    dataset = load_triplets(paths["triplets"], teacher_scores=True)
    index = {doc_id: i for i, doc_id in enumerate(data.doc_ids)}
    queries = {query_id: i for i, query_id in enumerate(data.query_ids)}
    for pair, scores in zip(result.pairs, dataset["scores"]):
        cosine = data.doc_vectors[[index[d] for d in (pair.positive_id, *pair.negative_ids)]] @ \
            data.query_vectors[queries[pair.query_id]]
        np.testing.assert_allclose(scores, cosine, atol=1e-5)
    # The default loss (auto) is listnet on them, and the report and model card say so.
    trainer = TripletTrainer(training={"base_model": trainable_model, "output_dir": str(tmp_path / "run"),
                                       "max_steps": 2, "batch_size": 4, "validation_fraction": 0.0},
                             progress_bar=False)
    report = trainer.run(triplets=str(paths["triplets"]))["report"]
    assert report["steps"] == 2 and report["config"]["loss"] == "listnet"
    assert "loss: `listnet`" in (tmp_path / "run" / "model" / "README.md").read_text()
    # The component takes the miner's provenance output beside its triplets output the same way.
    rows = [{k: v for k, v in row.items() if k != "scores"} for row in dataset]
    provenance = [json.loads(line) for line in paths["provenance"].read_text().splitlines()]
    report = TripletTrainer(training={**to_mapping(trainer.config), "output_dir": str(tmp_path / "run2")},
                            progress_bar=False).run(triplets=rows, provenance=provenance)["report"]
    assert report["steps"] == 2 and report["config"]["loss"] == "listnet"
    # Without them (a triplets file of one's own), auto is the paper's triplet loss.
    plain = tmp_path / "plain" / "triplets.jsonl"
    plain.parent.mkdir()
    plain.write_text(paths["triplets"].read_text())
    for triplets in (str(plain), rows):
        report = TripletTrainer(training={**to_mapping(trainer.config), "output_dir": str(tmp_path / "run3")},
                                progress_bar=False).run(triplets=triplets)["report"]
        assert report["config"]["loss"] == "triplet"
        shutil.rmtree(tmp_path / "run3")


def test_a_distillation_loss_without_teacher_scores_is_refused_plainly(trainable_model, tmp_path, caplog):
    config = TrainingConfig(base_model=trainable_model, output_dir=str(tmp_path / "run"), loss="margin_mse")
    with pytest.raises(ValueError, match="mining ensemble's scores.*provenance.jsonl"):
        train_cross_encoder(graded_rows(16).remove_columns("scores"), config, progress_bar=False)
    short = graded_rows(16).map(lambda row, i: {"scores": row["scores"][:2] if i == 3 else row["scores"]},
                                with_indices=True)
    with pytest.raises(ValueError, match=r"1 row\(s\) have no score for each of their 3 documents.*rows \[3\]"):
        train_cross_encoder(short, config, progress_bar=False)
    # A provenance of another mining run (here: one row more) gives no scores, and says why.
    folder = tmp_path / "mined"
    folder.mkdir()
    rows = graded_rows(4)
    (folder / "triplets.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "scores"}) + "\n"
                                                   for r in rows))
    (folder / "provenance.jsonl").write_text("".join(json.dumps({"positive_score": 0.5, "negative_scores": [0.1, 0.2]})
                                                     + "\n" for _ in range(5)))
    assert "scores" not in load_triplets(folder / "triplets.jsonl", teacher_scores=True).column_names
    assert "has 5 rows for 4 triplets" in caplog.text


def test_the_teachers_options_key_a_run_only_where_they_matter():
    from haystack_hardneg.train.manifest import run_manifest

    rows = graded_rows(4)
    settings = [run_manifest(TrainingConfig(base_model="m", output_dir="o", loss="margin_mse", **options), "m",
                             "mean", rows, [])["settings"] for options in ({}, {"label_weight": 0.0})]
    # Checkpoints of another label weight are not resumed; the default leaves older manifests as they were.
    assert settings[1]["label_weight"] == 0.0 and "label_weight" not in settings[0]


def test_an_experiment_keys_auto_as_the_listnet_it_trains(trainable_model):
    from haystack_hardneg.experiment.config import ExperimentConfig
    from haystack_hardneg.experiment.keys import training_options

    def options(**loss):
        config = ExperimentConfig(data="d", out="o", members=[{"model": trainable_model}],
                                  training={"base_model": trainable_model, **loss})
        return training_options(config), config.training_config().loss

    assert options() == options(loss="auto") == options(loss="listnet")
    assert options()[1] == "listnet" and options(loss="triplet")[0]["loss"] == "triplet"


def test_the_negatives_keep_their_order_whatever_the_columns_order(trainable_model, tmp_path):
    """The teacher's scores follow negative_1, negative_2, ...: rows whose keys come in another order (as parquet
    may sort negative_10 before negative_2) are put in that order before training."""
    rows = Dataset.from_list([{"negative_2": r["negative_2"], "scores": r["scores"], "negative_1": r["negative_1"],
                               "positive": r["positive"], "query": r["query"]} for r in graded_rows()])
    config = TrainingConfig(base_model=trainable_model, output_dir=str(tmp_path / "run"), loss="margin_mse",
                            label_weight=0.0, epochs=4, batch_size=8, encoder_lr=3e-3, head_lr=3e-2,
                            validation_fraction=0.25, seed=0)
    train_cross_encoder(rows, config, progress_bar=False)
    assert order_accuracy(CrossEncoder(str(tmp_path / "run" / "model")), graded_rows()) == 1.0
