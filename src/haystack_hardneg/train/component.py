"""TripletTrainer: the Haystack face of cross-encoder fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from haystack import component, default_from_dict, default_to_dict

from haystack_hardneg.embed.encoder import check_model_source
from haystack_hardneg.extras import require
from haystack_hardneg.mine.triplets import attach_teacher_scores, load_triplets
from haystack_hardneg.options import as_config, to_mapping
from haystack_hardneg.train.config import TrainingConfig, reads_teacher_scores
from haystack_hardneg.train.trainer import train_cross_encoder


@component
class TripletTrainer:
    """
    Fine-tunes a cross-encoder on (query, positive, negative_1..n) triplets, e.g. from ClusterNegativeMiner.

    The result is a standard CrossEncoder folder (``<output_dir>/model``) that loads in sentence-transformers,
    in Haystack's ``SentenceTransformersSimilarityRanker`` and in ``CrossEncoderRanker``.

    Usage example:
    ```python
    from haystack_hardneg import TripletTrainer

    trainer = TripletTrainer(training={"base_model": "~/.cache/hardneg-models/all-MiniLM-L6-v2",
                                       "output_dir": "runs/train", "epochs": 3})
    result = trainer.run(triplets="runs/mine/ensemble_cluster/triplets.jsonl")
    print(result["model_path"], result["report"]["validation"])
    ```
    """

    def __init__(self, *, training: TrainingConfig | dict[str, Any], resume: bool = False, progress_bar: bool = True):
        """
        :param training: how to train: a ``TrainingConfig`` or a mapping of its options; ``base_model`` (a
            pre-trained re-ranker or any encoder, hub id or local folder, checked now) and ``output_dir`` (where
            checkpoints, the model and the training report go) are required, the others (``head``, ``loss``,
            ``epochs``, ``batch_size``, ``encoder_lr``, ``head_lr``, ...) have defaults. ``loss`` ``auto`` (the
            default) is listnet where the triplets come with the miner's scores (``provenance``), else triplet.
        :param resume: continue from the last checkpoint in ``output_dir`` if there is one.
        :param progress_bar: show progress bars.
        """
        self.config = as_config(TrainingConfig, training, where="TripletTrainer training")
        check_model_source(self.config.base_model)
        self.resume = resume
        self.progress_bar = progress_bar

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, training=to_mapping(self.config), resume=self.resume,
                               progress_bar=self.progress_bar)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TripletTrainer":
        return default_from_dict(cls, data)

    @component.output_types(model_path=str, report=dict)
    def run(self, triplets: str | list[dict[str, str]], candidates: list[dict[str, Any]] | None = None,
            provenance: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """
        :param triplets: a triplet file (JSONL/Parquet from the miner; its ``provenance.jsonl`` beside it gives the
            teacher's scores) or rows as dicts.
        :param candidates: the miner's ``candidates`` output: validate by re-ranking the held-out queries'
            first-stage candidates and store the fusion weight chosen there (else ``validation_candidates``).
        :param provenance: the miner's ``provenance`` output, row for row with ``triplets``: the ensemble's scores
            the distillation losses (``margin_mse``, ``listnet``, and ``auto``, the default) learn from.
        :returns: ``model_path``: the trained CrossEncoder folder; ``report``: losses, validation metrics, steps.
        """
        Dataset = require("datasets", "Training").Dataset


        if isinstance(triplets, (str, Path)):
            dataset = load_triplets(triplets, teacher_scores=reads_teacher_scores(self.config.loss))
        else:
            if not triplets:
                raise ValueError("No triplets given: nothing to train on.")
            dataset = Dataset.from_list(list(triplets))
        if provenance and "scores" not in dataset.column_names:
            dataset = attach_teacher_scores(dataset, provenance)
        report = train_cross_encoder(dataset, self.config, resume=self.resume, progress_bar=self.progress_bar,
                                     candidates=candidates or None)
        return {"model_path": str(Path(self.config.output_dir) / "model"), "report": report}
