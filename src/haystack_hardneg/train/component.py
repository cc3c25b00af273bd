"""TripletTrainer: the Haystack face of cross-encoder fine-tuning."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from haystack import component, default_from_dict, default_to_dict

from haystack_hardneg.embed.encoder import check_model_source
from haystack_hardneg.train.config import TrainingConfig
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

    trainer = TripletTrainer(base_model="~/.cache/hardneg-models/all-MiniLM-L6-v2", output_dir="runs/train",
                             loss="triplet", epochs=3)
    result = trainer.run(triplets="runs/mine/ensemble_cluster/triplets.jsonl")
    print(result["model_path"], result["report"]["validation"])
    ```
    """

    def __init__(self, *, base_model: str, output_dir: str, resume: bool = False, progress_bar: bool = True,
                 **training: Any):
        """
        :param base_model: a pre-trained re-ranker or any encoder (hub id or local folder); checked now.
        :param output_dir: where checkpoints, the model and the training report go.
        :param resume: continue from the last checkpoint in ``output_dir`` if there is one.
        :param progress_bar: show progress bars.
        :param training: the other TrainingConfig fields: ``head``, ``loss``, ``epochs``, ``batch_size``,
            ``encoder_lr``, ``head_lr``, ``margin``, ``warmup_ratio``, ``validation_fraction``, ``eval_steps``,
            ``max_length``, ``precision``, ``seed``, ``validation_candidates``, ``strategy``, ``data_description``.
        """
        known = {f.name for f in fields(TrainingConfig)} - {"base_model", "output_dir"}
        unknown = set(training) - known
        if unknown:
            raise ValueError(f"Unknown training option(s) {sorted(unknown)}; known: {sorted(known)}.")
        check_model_source(base_model)
        self.config = TrainingConfig(base_model=base_model, output_dir=output_dir, **training)
        self.resume = resume
        self.progress_bar = progress_bar

    def to_dict(self) -> dict[str, Any]:
        options = {k: v for k, v in asdict(self.config).items() if k not in ("base_model", "output_dir")}
        return default_to_dict(self, base_model=self.config.base_model, output_dir=self.config.output_dir,
                               resume=self.resume, progress_bar=self.progress_bar, **options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TripletTrainer":
        return default_from_dict(cls, data)

    @component.output_types(model_path=str, report=dict)
    def run(self, triplets: str | list[dict[str, str]], candidates: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
        """
        :param triplets: a triplet file (JSONL/Parquet from the miner) or rows as dicts.
        :param candidates: the miner's ``candidates`` output: validate by re-ranking the held-out queries'
            first-stage candidates and store the fusion weight chosen there (else ``validation_candidates``).
        :returns: ``model_path``: the trained CrossEncoder folder; ``report``: losses, validation metrics, steps.
        """
        from datasets import Dataset

        from haystack_hardneg.mine.triplets import load_triplets

        if isinstance(triplets, (str, Path)):
            dataset = load_triplets(triplets)
        else:
            if not triplets:
                raise ValueError("No triplets given: nothing to train on.")
            dataset = Dataset.from_list(list(triplets))
        report = train_cross_encoder(dataset, self.config, resume=self.resume, progress_bar=self.progress_bar,
                                     candidates=candidates or None)
        return {"model_path": str(Path(self.config.output_dir) / "model"), "report": report}
