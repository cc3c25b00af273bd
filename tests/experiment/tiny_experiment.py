"""The experiment's settings at the size of the tiny SciFact fixture: seconds per stage, every stage exercised."""

from dataclasses import replace

from haystack_hardneg.experiment.config import ExperimentConfig


def tiny_config(fixtures, tiny_model, trainable_model, tmp_path, **changes) -> ExperimentConfig:
    config = ExperimentConfig(
        data=str(fixtures / "scifact-tiny"), out=str(tmp_path / "run"), members=[{"model": tiny_model}],
        cache_dir=str(tmp_path / "cache"), retrieve_k=20, rerank_k=10, strategies=["random", "ensemble_cluster"],
        mining={"num_negatives": 2, "rank_window": [0, 20], "guard_ratio": None},
        lexical={"language": "english", "weight": "auto"},
        training={"base_model": trainable_model, "epochs": 1, "batch_size": 4, "max_length": 64,
                  "validation_fraction": 0.3},
    )
    return replace(config, **changes)
