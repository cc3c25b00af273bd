"""The cross-encoder a training run starts from: a pre-trained re-ranker as it is, or an encoder with a new
scoring head (no Haystack here).

Two heads for an encoder base:
- ``classifier``: transformers' sequence-classification head, a linear layer on the [CLS] token through BERT's
  pooler. Sentence-embedding models such as all-MiniLM-L6-v2 were never trained to put meaning in [CLS] (they
  were trained with mean pooling), so this head starts from a representation the encoder does not have.
- ``mean``: the mean of the token embeddings of ``query [SEP] document`` and a linear layer to one logit:
  the representation the sentence-embedding model was trained to produce, so less has to be learned from a few
  hundred queries. Saved as sentence-transformers modules (Transformer, Pooling, Dense); it loads unchanged in
  ``CrossEncoder`` and Haystack's ``SentenceTransformersSimilarityRanker``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

HeadName = Literal["auto", "classifier", "mean"]
HEADS: tuple[str, ...] = ("auto", "classifier", "mean")
# What ``auto`` gives an encoder base; chosen on SciFact's held-out training queries (see the README).
DEFAULT_ENCODER_HEAD = "mean"


def is_cross_encoder(model_name_or_path: str) -> bool:
    """Whether ``model_name_or_path`` already is a re-ranker (a CrossEncoder folder or a sequence-classification
    model), which keeps its own head; otherwise it is an encoder that needs one."""
    folder = Path(model_name_or_path).expanduser()
    settings = folder / "config_sentence_transformers.json"
    if settings.is_file():
        if json.loads(settings.read_text(encoding="utf-8")).get("model_type") == "CrossEncoder":
            return True
    elif not folder.exists():
        try:
            from huggingface_hub import hf_hub_download

            hub_settings = json.loads(Path(hf_hub_download(model_name_or_path, "config_sentence_transformers.json"))
                                      .read_text(encoding="utf-8"))
            if hub_settings.get("model_type") == "CrossEncoder":
                return True
        except Exception:  # noqa: BLE001 - no such file on the hub: decided by the architecture below
            pass
    from transformers import AutoConfig

    architectures = getattr(AutoConfig.from_pretrained(str(folder) if folder.exists() else model_name_or_path),
                            "architectures", None) or []
    return any(name.endswith("ForSequenceClassification") for name in architectures)


def resolve_head(model_name_or_path: str, head: HeadName) -> str:
    """The head a run uses: ``pretrained`` for a re-ranker base, else ``head`` (``auto``: the default)."""
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; choose one of {HEADS}.")
    if is_cross_encoder(model_name_or_path):
        if head not in ("auto",):
            raise ValueError(f"{model_name_or_path} already is a re-ranker with its own head; head={head!r} is for "
                             f"encoder bases (leave it at 'auto').")
        return "pretrained"
    return DEFAULT_ENCODER_HEAD if head == "auto" else head


def build_cross_encoder(model_name_or_path: str, head: HeadName = "auto", max_length: int = 256):
    """A one-logit CrossEncoder from a re-ranker or an encoder base; the new head's weights follow torch's seed."""
    from sentence_transformers import CrossEncoder

    chosen = resolve_head(model_name_or_path, head)
    if chosen != "mean":
        return CrossEncoder(model_name_or_path, num_labels=1, max_length=max_length)
    from torch import nn
    from sentence_transformers.base.modules import Dense
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    encoder = Transformer(model_name_or_path, transformer_task="feature-extraction", max_seq_length=max_length)
    width = encoder.auto_model.config.hidden_size
    return CrossEncoder(modules=[encoder, Pooling(width, "mean"),
                                 Dense(width, 1, activation_function=nn.Identity(), module_output_name="scores")])


def head_parameters(model) -> tuple[list, list]:
    """(encoder parameters, head parameters) of a CrossEncoder, for separate learning rates: the head is every
    trainable weight outside the pre-trained transformer body (the classifier, or the Dense layer)."""
    body = {id(p) for p in model.model.base_model.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [p for p in trainable if id(p) in body], [p for p in trainable if id(p) not in body]
