"""The cross-encoder a training run starts from: a pre-trained re-ranker as it is, or an encoder with a new
scoring head (no Haystack here).

Heads for an encoder base:
- ``mean`` / ``cls``: the mean of the token embeddings (or the [CLS] token's embedding) of
  ``query [SEP] document`` and a linear layer to one logit. ``auto`` takes the pooling the base was trained with
  when it is a sentence-transformers model (mean for all-MiniLM-L6-v2, [CLS] for bge models), else mean: the
  representation the encoder already produces, so less has to be learned from a few hundred queries. Saved as
  sentence-transformers modules (Transformer, Pooling, Dense), which load unchanged in ``CrossEncoder`` and
  Haystack's ``SentenceTransformersSimilarityRanker``.
- ``classifier``: transformers' sequence-classification head, a linear layer on [CLS] through BERT's pooler,
  which sentence-embedding models never trained.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from haystack_hardneg.files import confined_path

logger = logging.getLogger(__name__)

HeadName = Literal["auto", "mean", "cls", "classifier"]
HEADS: tuple[str, ...] = ("auto", "mean", "cls", "classifier")
POOLED_HEADS: tuple[str, ...] = ("mean", "cls")
# What ``auto`` gives an encoder whose own pooling is unknown; chosen on SciFact's held-out training queries.
DEFAULT_POOLING = "mean"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _hub_file(model_id: str, filename: str) -> dict | None:
    """A JSON file of a hub model, or None when the model has no such file (any other error is raised: a
    network failure must not be read as "this is not a re-ranker")."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return _read_json(Path(hf_hub_download(model_id, filename)))
    except RemoteEntryNotFoundError:
        return None


def _model_file(model_name_or_path: str, filename: str) -> dict | None:
    folder = Path(model_name_or_path).expanduser()
    if folder.exists():
        # ``filename`` may come from the folder's own modules.json: it must not lead out of the folder.
        path = confined_path(folder, filename, named_in=folder / "modules.json")
        return _read_json(path) if path.is_file() else None
    return _hub_file(model_name_or_path, filename)


def is_cross_encoder(model_name_or_path: str) -> bool:
    """Whether the model already is a one-score re-ranker (a CrossEncoder saved by sentence-transformers, or a
    sequence-classification model with one label), which keeps its own head."""
    settings = _model_file(model_name_or_path, "config_sentence_transformers.json") or {}
    if settings.get("model_type") == "CrossEncoder":
        return True
    config = _model_file(model_name_or_path, "config.json") or {}
    return (any(name.endswith("ForSequenceClassification") for name in config.get("architectures") or [])
            and len(config.get("id2label") or {"0": ""}) == 1)


def saved_pooling(model_name_or_path: str) -> str | None:
    """The pooling a sentence-transformers model was trained with (``mean`` or ``cls``), if it says so."""
    modules = _model_file(model_name_or_path, "modules.json") or []
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            # A module saved at the folder's top has the path "".
            config = _model_file(model_name_or_path, f"{module['path']}/config.json".removeprefix("/")) or {}
            mode = config.get("pooling_mode")  # sentence-transformers >= 6
            if isinstance(mode, list) and len(mode) == 1:
                mode = mode[0]
            if mode is None:  # the older flags
                flags = [m for m, key in (("cls", "pooling_mode_cls_token"), ("mean", "pooling_mode_mean_tokens"))
                         if config.get(key)]
                mode = flags[0] if len(flags) == 1 else None
            return mode if mode in POOLED_HEADS else None
    return None


def resolve_head(model_name_or_path: str, head: HeadName) -> str:
    """The head a run uses: ``pretrained`` for a re-ranker base, else ``mean``, ``cls`` or ``classifier``."""
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; choose one of {HEADS}.")
    if is_cross_encoder(model_name_or_path):
        if head != "auto":
            raise ValueError(f"{model_name_or_path} already is a re-ranker with its own head; head={head!r} is for "
                             f"encoder bases (leave it at 'auto').")
        return "pretrained"
    if head == "auto":
        return saved_pooling(model_name_or_path) or DEFAULT_POOLING
    return head


def fitted_max_length(model_name_or_path: str, max_length: int) -> int:
    """``max_length`` capped at the positions the model has (beyond them its position embeddings have no row: an
    index error deep in torch at the first long pair), with a warning naming both when it caps."""
    positions = (_model_file(model_name_or_path, "config.json") or {}).get("max_position_embeddings")
    if isinstance(positions, int) and 0 < positions < max_length:
        logger.warning("max_length %d is above the %d positions of %s: pairs are cut at %d tokens. Set the "
                       "training's max_length (--max-length, training.max_length) to %d or less to silence this.",
                       max_length, positions, model_name_or_path, positions, positions)
        return positions
    return max_length


def build_cross_encoder(model_name_or_path: str, head: str = "auto", max_length: int = 256):
    """A one-logit CrossEncoder from a re-ranker or an encoder base; the new head's weights follow torch's seed.
    ``head`` is a :data:`HEADS` name or a resolved one (``pretrained``)."""
    from sentence_transformers import CrossEncoder

    max_length = fitted_max_length(model_name_or_path, max_length)
    chosen = resolve_head(model_name_or_path, head) if head == "auto" else head
    if chosen not in POOLED_HEADS:
        return CrossEncoder(model_name_or_path, num_labels=1, max_length=max_length)
    from sentence_transformers.base.modules import Dense
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from torch import nn

    encoder = Transformer(model_name_or_path, transformer_task="feature-extraction", max_seq_length=max_length)
    width = encoder.auto_model.config.hidden_size
    return CrossEncoder(modules=[encoder, Pooling(width, chosen),
                                 Dense(width, 1, activation_function=nn.Identity(), module_output_name="scores")])


def saved_head(folder: str | Path) -> str:
    """The kind of head a saved CrossEncoder (or training checkpoint) has: a pooling mode or ``classifier``."""
    return saved_pooling(str(folder)) or "classifier"


def head_parameters(model) -> tuple[list, list]:
    """(encoder parameters, head parameters) of a CrossEncoder, for separate learning rates: the head is every
    trainable weight outside the pre-trained transformer body (the classifier, or the Dense layer)."""
    body = {id(p) for p in model.model.base_model.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [p for p in trainable if id(p) in body], [p for p in trainable if id(p) not in body]


def evenly_spaced_layers(total: int, count: int) -> list[int]:
    """``count`` of ``total`` layer indices, evenly spaced with the last one kept (3 of 6: 1, 3, 5): the last layer
    is the one the head was trained on, and spacing keeps the depth at which each kind of feature forms."""
    if not 1 <= count <= total:
        raise ValueError(f"keep_layers must be between 1 and the model's {total} layers, got {count}.")
    return [round((i + 1) * total / count) - 1 for i in range(count)]


def keep_layers(model, count: int) -> list[int]:
    """Cut a CrossEncoder's transformer body down to ``count`` of its layers, in place (initialising a student from
    its teacher's own layers, as DistilBERT did); returns the indices kept."""
    from torch import nn

    body = model.model.base_model
    holder = getattr(body, "encoder", body)
    name = "layer" if isinstance(getattr(holder, "layer", None), nn.ModuleList) else "layers"
    layers = getattr(holder, name, None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"keep_layers: cannot find the transformer layers of {type(body).__name__} (looked for "
                         f"encoder.layer and layers); train the full model instead.")
    kept = evenly_spaced_layers(len(layers), count)
    setattr(holder, name, nn.ModuleList([layers[i] for i in kept]))
    body.config.num_hidden_layers = count
    if isinstance(getattr(body.config, "layer_types", None), list):
        body.config.layer_types = [body.config.layer_types[i] for i in kept]
    return kept


def load_torch_cross_encoder(source: str, **kwargs: Any):
    """sentence-transformers' ``CrossEncoder`` of ``source``; weights that cannot be read (a truncated or damaged
    ``model.safetensors``) are one error naming the folder, not the deserialiser's traceback."""
    from safetensors import SafetensorError
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(source, **kwargs)
    except SafetensorError as error:
        raise ValueError(f"{source}: the model's weights cannot be read ({error}); the file is damaged or incomplete: "
                         f"copy the folder again or train it again.") from None
