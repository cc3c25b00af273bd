"""A smaller student distilled from a fine-tuned cross-encoder: initialised from the teacher's own layers (evenly
spaced, the last kept), trained on the teacher's scores of the mined rows, which are computed once and resumed
after an interruption; the student is an ordinary cross-encoder folder (fewer layers) that exports and serves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from haystack import Document
from sentence_transformers import CrossEncoder
from train.test_distillation import graded_rows, order_accuracy

from haystack_hardneg import CrossEncoderRanker
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.heads import evenly_spaced_layers
from haystack_hardneg.train.teacher import teacher_scores_file, with_teacher_scores
from haystack_hardneg.train.trainer import train_cross_encoder


@pytest.fixture(scope="module")
def teacher(trainable_model, tmp_path_factory) -> str:
    """A tiny 2-layer re-ranker trained to order each row's three documents (positive, negative_1, negative_2)."""
    out = tmp_path_factory.mktemp("teacher")
    config = TrainingConfig(base_model=trainable_model, output_dir=str(out), loss="margin_mse", label_weight=0.0,
                            epochs=4, batch_size=8, encoder_lr=3e-3, head_lr=3e-2, validation_fraction=0.25, seed=0)
    train_cross_encoder(graded_rows(), config, progress_bar=False)
    model = str(out / "model")
    assert order_accuracy(CrossEncoder(model), graded_rows()) == 1.0
    return model


def test_layers_are_kept_evenly_spaced_with_the_last_one():
    assert evenly_spaced_layers(6, 3) == [1, 3, 5] and evenly_spaced_layers(6, 2) == [2, 5]
    assert evenly_spaced_layers(12, 4) == [2, 5, 8, 11] and evenly_spaced_layers(6, 6) == list(range(6))
    with pytest.raises(ValueError, match="between 1 and the model's 6 layers"):
        evenly_spaced_layers(6, 7)


def test_a_one_layer_student_learns_its_teachers_order_and_serves_as_a_ranker(teacher, tmp_path):
    rows = graded_rows().remove_columns("scores")  # the order is the teacher model's, not given with the rows
    config = TrainingConfig(base_model=teacher, teacher_model=teacher, keep_layers=1, loss="margin_mse",
                            label_weight=0.0, epochs=4, batch_size=8, encoder_lr=3e-3, validation_fraction=0.25,
                            seed=0, output_dir=str(tmp_path / "student"))
    report = train_cross_encoder(rows, config, progress_bar=False)
    student = CrossEncoder(str(tmp_path / "student" / "model"))
    assert student.model.config.num_hidden_layers == 1 and CrossEncoder(teacher).model.config.num_hidden_layers == 2
    assert len(student.model.base_model.encoder.layer) == 1
    assert order_accuracy(student, graded_rows()) >= 0.95
    assert report["config"]["teacher_model"] == teacher and report["config"]["keep_layers"] == 1
    scores_file = teacher_scores_file(teacher, config.max_length)
    assert len(scores_file.read_text().splitlines()) == len(rows)
    ranker = CrossEncoderRanker(model=str(tmp_path / "student" / "model"), fusion_alpha=None, top_k=3)
    row = graded_rows()[0]
    documents = [Document(id=c, content=row[c]) for c in ("negative_2", "positive", "negative_1")]
    ranked = ranker.run(query=row["query"], documents=documents)["documents"]
    assert [d.id for d in ranked] == ["positive", "negative_1", "negative_2"]


def test_teacher_scores_are_computed_once_and_an_interrupted_scoring_resumes(teacher, tmp_path):
    rows = graded_rows(n=80).remove_columns("scores")
    first = with_teacher_scores(rows, teacher, max_length=64, cache_dir=tmp_path, progress_bar=False)
    path = teacher_scores_file(teacher, 64, tmp_path)
    assert teacher_scores_file(teacher, 128, tmp_path) != path  # scores at another length are other scores
    model = CrossEncoder(teacher)
    expected = model.predict([(r["query"], r["negative_1"]) for r in rows], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose([s[1] for s in first["scores"]], expected, atol=1e-4)
    # Interrupted after 30 rows, in the middle of writing the 31st: the rerun scores the other 50 only.
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:30]) + "\n" + lines[30][:17])
    again = with_teacher_scores(rows, teacher, max_length=64, cache_dir=tmp_path, progress_bar=False)
    kept = [json.loads(line) for line in path.read_text().splitlines()[:30]]
    assert len(path.read_text().splitlines()) == 80  # the cut line dropped, the other 50 appended
    np.testing.assert_allclose(again["scores"], first["scores"], atol=1e-5)
    assert [k["scores"] for k in kept] == first["scores"][:30]
