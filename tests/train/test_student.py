"""A smaller student distilled from a fine-tuned cross-encoder: initialised from the teacher's own layers (evenly
spaced, the last kept), trained on the teacher's scores of the mined rows, which are computed once and resumed
after an interruption; the student is an ordinary cross-encoder folder (fewer layers) that exports and serves."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from haystack import Document
from sentence_transformers import CrossEncoder
from train.test_distillation import graded_rows, order_accuracy

from haystack_hardneg import CrossEncoderRanker
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.heads import evenly_spaced_layers
from haystack_hardneg.train.teacher import candidate_groups, teacher_scores_file, with_teacher_scores
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


def test_a_one_layer_student_learns_its_teachers_order_and_serves_as_a_ranker(teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("HARDNEG_TEACHER_CACHE", str(tmp_path / "teacher-scores"))  # this test's scores alone
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


def test_a_hub_teachers_scores_are_keyed_by_the_weights_of_its_cached_revision(teacher, tmp_path, monkeypatch):
    """A hub id is keyed by the weights of the revision the local Hugging Face cache holds (refs/main's snapshot), so
    that a teacher updated on the hub and downloaded again gets scores of its own."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--acme--teacher"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def downloaded(commit: str, folder: str) -> None:  # as the hub client lays out a download of the main branch
        shutil.copytree(folder, repo / "snapshots" / commit)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)

    before_download = teacher_scores_file("acme/teacher", 64, tmp_path)
    downloaded("a" * 40, teacher)
    first = teacher_scores_file("acme/teacher", 64, tmp_path)
    assert first != before_download
    assert first == teacher_scores_file(teacher, 64, tmp_path)  # the folder's weights: the same scores
    model = CrossEncoder(teacher)
    with torch.no_grad():
        next(model.model.parameters()).add_(0.01)
    model.save(str(tmp_path / "updated"))
    downloaded("b" * 40, str(tmp_path / "updated"))
    assert teacher_scores_file("acme/teacher", 64, tmp_path) not in (first, before_download)


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


def test_a_student_also_learns_its_teachers_scores_of_the_first_stage_candidates(teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("HARDNEG_TEACHER_CACHE", str(tmp_path / "teacher-scores"))  # this test's scores alone
    rows = graded_rows(n=40).remove_columns("scores")
    # Each query's first stage: its own three documents and seven others', the relevant one first.
    candidates = [{"query_id": f"q{i}", "query": r["query"], "positive_ids": ["d0"],
                   "candidates": [{"id": f"d{j}", "text": t, "score": 1 - j / 10} for j, t in enumerate(
                       [r["positive"], r["negative_1"], r["negative_2"],
                        *(rows[(i + k) % len(rows)]["negative_2"] + f" {k}" for k in range(1, 8))])]}
                  for i, r in enumerate(rows)]
    groups = candidate_groups(candidates, ["negative_1", "negative_2"], 8, seed=0)
    # Groups as wide as a row, from one query's top 8 (the remainder of 2 left out), no text twice per query.
    assert len(groups) == 2 * len(rows)
    for record in candidates:
        mine = [g for g in groups if g["query"] == record["query"]]
        texts = [g[c] for g in mine for c in ("positive", "negative_1", "negative_2")]
        assert len(texts) == len(set(texts)) == 6
        assert set(texts) <= {c["text"] for c in record["candidates"][:8]}
    assert candidate_groups(candidates, ["negative_1", "negative_2"], 8, seed=0) == groups  # seeded

    config = TrainingConfig(base_model=teacher, teacher_model=teacher, keep_layers=1, loss="margin_mse",
                            label_weight=0.0, epochs=1, batch_size=8, validation_fraction=0.25, seed=0,
                            distill_candidates=8, output_dir=str(tmp_path / "student"))
    report = train_cross_encoder(rows, config, progress_bar=False, candidates=candidates)
    # The teacher scored the mined rows and the groups; a held-out query's groups were held out with its rows.
    assert len(teacher_scores_file(teacher, config.max_length).read_text().splitlines()) == len(rows) + len(groups)
    held_out = set(report["validation_query_texts"])
    assert report["train_rows"] == sum(r["query"] not in held_out for r in [*rows, *groups])
    assert report["config"]["distill_candidates"] == 8

    with pytest.raises(ValueError, match="give teacher_model"):
        train_cross_encoder(rows, TrainingConfig(base_model=teacher, distill_candidates=8, label_weight=0.0,
                                                 output_dir=str(tmp_path / "x")), progress_bar=False,
                            candidates=candidates)
    with pytest.raises(ValueError, match="give validation_candidates"):
        train_cross_encoder(rows, TrainingConfig(base_model=teacher, teacher_model=teacher, keep_layers=1,
                                                 distill_candidates=8, label_weight=0.0,
                                                 output_dir=str(tmp_path / "y")),
                            progress_bar=False)
    # A group's first column is a random candidate: the labels' term would train it as the positive.
    with pytest.raises(ValueError, match="set label_weight to 0"):
        TrainingConfig(base_model=teacher, teacher_model=teacher, loss="margin_mse", distill_candidates=8,
                       output_dir=str(tmp_path / "z"))
