"""CrossEncoderRanker: a fine-tuned cross-encoder as a drop-in Haystack ranker."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs, serialize_hf_model_kwargs

from haystack_hardneg.embed.encoder import looks_like_path
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.rank.choice import check_settings, measured_elsewhere, resolve_backend
from haystack_hardneg.rank.loading import CANNOT_RUN, fastest_here, load_export, load_torch
from haystack_hardneg.rank.passages import Aggregation, aggregate, passages
from haystack_hardneg.scoring.fusion import fuse
from haystack_hardneg.scoring.settings import applicable_fusion_alpha

logger = logging.getLogger(__name__)

# The stock ranker's default model, so that a YAML without `model:` loads as it did.
DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
# Where every returned document keeps the cross-encoder's own score and the score it arrived with.
CROSS_ENCODER_SCORE = "cross_encoder_score"
RETRIEVER_SCORE = "retriever_score"


@component
class CrossEncoderRanker:
    """
    Re-ranks Documents with a cross-encoder (e.g. one trained by TripletTrainer).

    Same ``run`` signature and behaviour as Haystack's ``SentenceTransformersSimilarityRanker`` (query,
    documents, top_k, scale_score, score_threshold; duplicates by id are dropped, keeping the best-scored), so
    it replaces it by changing the component's ``type`` in YAML. In addition:

    - long documents are scored by passages: overlapping windows of ``passage_words`` words, aggregated by
      ``max``, ``first`` or ``mean``;
    - ``fusion_alpha`` interpolates the re-ranker's score with the retriever's (both min-max normalised per
      query): ``alpha * ranker + (1 - alpha) * retriever``; the returned score is then the fused one (and
      ``score_threshold`` applies to it). ``None`` (and ``1``) rank by the cross-encoder alone, exactly as
      ``SentenceTransformersSimilarityRanker`` does. The default, ``"auto"``, applies the weight TripletTrainer
      stored in the model folder (``hardneg.json``) only when ``first_stage`` names the first stage it was
      chosen on: a ranker cannot see which retriever feeds it, and a weight chosen for one retriever can make
      another's results worse. Otherwise it ranks alone and says so at WARNING; ``haystack-hardneg tune`` chooses
      a weight for your own pipeline and writes it into its YAML. A weight of 0 keeps the retriever's order and
      is announced at WARNING, never silently;
    - every returned document carries the cross-encoder's own score in ``meta["cross_encoder_score"]`` and the
      score it arrived with (the retriever's) in ``meta["retriever_score"]``;
    - pairs are scored in one call, which sentence-transformers sorts by length so batches pad little;
    - as the stock ranker, it loads its model at ``warm_up()`` or, failing that, at the first ``run()``.

    Documents without content are not scored: they are returned after every scored document, with score
    ``None`` (and dropped when a ``score_threshold`` is set).

    Usage example:
    ```python
    from haystack import Document
    from haystack_hardneg import CrossEncoderRanker

    ranker = CrossEncoderRanker(model="runs/train/model", top_k=5, passage_words=200, fusion_alpha=0.5)
    ranker.warm_up()
    result = ranker.run(query="what does the warranty cover?", documents=retrieved_documents)
    ```

    :param model: a cross-encoder folder (e.g. from TripletTrainer) or hub id.
    :param device: the device to run on; ``None`` picks one.
    :param top_k: how many documents to return.
    :param query_prefix: text put before the query.
    :param document_prefix: text put before each document.
    :param meta_fields_to_embed: meta fields put before the content (e.g. ``["title"]``).
    :param embedding_separator: separator between those meta fields and the content.
    :param scale_score: apply a sigmoid to the model's logits (scores in 0..1).
    :param score_threshold: drop documents scoring below it.
    :param batch_size: pairs per forward pass.
    :param max_length: truncation length in tokens; ``None`` keeps the model's.
    :param passage_words: score documents by windows of this many words; ``None`` scores the whole text.
    :param passage_overlap: words shared by consecutive windows.
    :param aggregation: ``max``, ``first`` or ``mean`` of a document's passage scores.
    :param fusion_alpha: weight of the re-ranker against the retriever's score (1: the re-ranker alone);
        ``None`` for no fusion; ``"auto"``: the weight stored with the model by its training when ``first_stage``
        matches the one it was chosen on, else none.
    :param first_stage: the first stage feeding this ranker, as ``hardneg.json`` names it (its ``first_stage_name``
        field): with ``fusion_alpha="auto"``, the stored weight applies only when the two match.
    :param backend: ``torch``, ``onnx`` or ``openvino`` (files written by ``haystack-hardneg export``, or any
        sentence-transformers export; ``model_kwargs={"file_name": "onnx/model_qint8.onnx"}`` picks one), or
        ``auto``: the backend of a given ``file_name``, else the export the folder's quality gate made its
        default (if made from the weights the folder holds and its runtime is installed), else torch. That default
        was chosen by speed on the CPU that exported it; on a CPU of another model or instruction set, warm-up
        times torch and the folder's checked exports on a few kept validation queries and serves the fastest
        (kept per CPU under ``$HARDNEG_SERVING_CACHE``, default ``~/.cache/haystack-hardneg/serving``). Exports
        run on ONNX Runtime / OpenVINO directly (the ``onnx`` / ``openvino`` extras); a hub id runs on torch.
    :param token, query_suffix, document_suffix, trust_remote_code, model_kwargs, tokenizer_kwargs,
        config_kwargs: as in ``SentenceTransformersSimilarityRanker``, so that its YAML loads unchanged.
    """

    def __init__(
        self,
        *,
        model: str | Path = DEFAULT_MODEL,
        device: ComponentDevice | None = None,
        top_k: int = 10,
        query_prefix: str = "",
        document_prefix: str = "",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        scale_score: bool = True,
        score_threshold: float | None = None,
        batch_size: int = 16,
        max_length: int | None = None,
        passage_words: int | None = None,
        passage_overlap: int = 20,
        aggregation: Aggregation = "max",
        fusion_alpha: float | Literal["auto"] | None = "auto",
        token: Secret | None = Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False),
        query_suffix: str = "",
        document_suffix: str = "",
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        backend: str = "auto",
        first_stage: str | None = None,
    ):
        check_settings(model, top_k, aggregation, passage_words, passage_overlap, backend, fusion_alpha)
        self.model = str(model)
        # Resolved here, as the stock ranker does, so that to_dict names the device it runs on.
        self.device = ComponentDevice.resolve_device(device)
        self.top_k = top_k
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.scale_score = scale_score
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.max_length = max_length
        self.passage_words = passage_words
        self.passage_overlap = passage_overlap
        self.aggregation = aggregation
        self.fusion_alpha = fusion_alpha
        self.token = token
        self.query_suffix = query_suffix
        self.document_suffix = document_suffix
        self.trust_remote_code = trust_remote_code
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self.backend = backend
        self.first_stage = first_stage
        self._cross_encoder = None
        self._exported = None
        self._backend: tuple[str, str | None] | None = None
        self._fusion_alpha: float | None = None if fusion_alpha in ("auto", None) else float(fusion_alpha)

    def _stored_fusion_alpha(self) -> float | None:
        """The fusion weight TripletTrainer stored with the model, when ``first_stage`` names the first stage it was
        chosen on; else ``None`` (the cross-encoder alone), with a WARNING saying what was set aside."""
        if not looks_like_path(self.model):
            return None
        alpha, set_aside = applicable_fusion_alpha(self.model, self.first_stage)
        if set_aside:
            logger.warning("{reason} To fuse with this pipeline's retriever, choose a weight for it: `haystack-hardneg "
                           "tune PIPELINE.yml --labels FILE` (or set fusion_alpha).", reason=set_aside)
        return alpha

    def _announce_fusion(self) -> None:
        if self._fusion_alpha == 0.0:
            logger.warning("CrossEncoderRanker({model}) has fusion weight 0: documents keep the retriever's order "
                           "(scores min-max rescaled); the cross-encoder's scores are in meta['{key}'].",
                           model=self.model, key=CROSS_ENCODER_SCORE)
        elif self._fusion_alpha is not None:
            logger.info("Fusing with the retriever's score at weight {alpha} ({model}).", alpha=self._fusion_alpha,
                        model=self.model)

    @property
    def effective_backend(self) -> tuple[str, str | None] | None:
        """The backend and export file in use (``"auto"`` resolved at warm-up); ``None`` before warm-up."""
        return self._backend

    @property
    def effective_fusion_alpha(self) -> float | None:
        """The fusion weight in use (``"auto"`` resolved at warm-up); ``None``: the re-ranker alone."""
        return self._fusion_alpha

    def warm_up(self) -> None:
        """Load the cross-encoder (and, for ``fusion_alpha="auto"``, the weight stored with it). With
        ``backend="auto"``, a default export whose speed was measured on another class of CPU is timed again here
        against torch and the folder's other checked exports, and the fastest serves (said at INFO; at WARNING
        when that overrides the folder's default)."""
        if self._cross_encoder is not None or self._exported is not None:
            return
        if self.fusion_alpha == "auto":
            self._fusion_alpha = self._stored_fusion_alpha()
        self._announce_fusion()
        backend, file_name = resolve_backend(self.model, self.backend, self.model_kwargs)
        source = str(Path(self.model).expanduser()) if looks_like_path(self.model) else self.model
        by_default = self.backend == "auto" and not (self.model_kwargs or {}).get("file_name")
        if backend != "torch" and by_default and (default := measured_elsewhere(source)):
            self._backend, model = fastest_here(self, source, default)
            if self._backend[0] == "torch":
                self._cross_encoder = model
            else:
                self._exported = model
            return
        if backend != "torch":
            try:
                self._exported = load_export(self, source, backend, file_name)
                self._backend = (backend, self._exported.file_name)
                return
            except CANNOT_RUN as error:
                if self.backend != "auto":
                    raise
                logger.warning("The folder's default backend cannot run here ({error}); ranking on torch.",
                               error=error)
        self._backend = ("torch", None)
        self._cross_encoder = load_torch(self, source)

    def to_dict(self) -> dict[str, Any]:
        data = default_to_dict(
            self, model=self.model, device=self.device, token=self.token, query_suffix=self.query_suffix,
            document_suffix=self.document_suffix, trust_remote_code=self.trust_remote_code,
            model_kwargs=self.model_kwargs, tokenizer_kwargs=self.tokenizer_kwargs, config_kwargs=self.config_kwargs,
            backend=self.backend,
            top_k=self.top_k, query_prefix=self.query_prefix, document_prefix=self.document_prefix,
            meta_fields_to_embed=self.meta_fields_to_embed, embedding_separator=self.embedding_separator,
            scale_score=self.scale_score, score_threshold=self.score_threshold, batch_size=self.batch_size,
            max_length=self.max_length, passage_words=self.passage_words, passage_overlap=self.passage_overlap,
            aggregation=self.aggregation, fusion_alpha=self.fusion_alpha, first_stage=self.first_stage,
        )
        if data["init_parameters"].get("model_kwargs") is not None:
            # Serialised in place: on a copy, or the live component would hand transformers "torch.float16" strings.
            data["init_parameters"]["model_kwargs"] = copy.deepcopy(self.model_kwargs)
            serialize_hf_model_kwargs(data["init_parameters"]["model_kwargs"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrossEncoderRanker":
        params = dict(data["init_parameters"])
        if params.get("model_kwargs") is not None:
            params["model_kwargs"] = dict(params["model_kwargs"])
            deserialize_hf_model_kwargs(params["model_kwargs"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def _document_text(self, doc: Document) -> str:
        return document_text(doc, self.meta_fields_to_embed, self.embedding_separator)

    def score(self, query: str, documents: list[Document], *, scale_score: bool) -> np.ndarray:
        """One raw (or sigmoid-scaled) relevance score per document, aggregated over its passages."""
        if self._cross_encoder is None and self._exported is None:
            self.warm_up()
        windows = [passages(self._document_text(d), words=self.passage_words, overlap=self.passage_overlap)
                   for d in documents]
        prepared_query = self.query_prefix + query + self.query_suffix
        pairs = [(prepared_query, self.document_prefix + w + self.document_suffix) for ws in windows for w in ws]
        logits = self._raw_scores(pairs)
        if scale_score:
            logits = 1.0 / (1.0 + np.exp(-logits))
        bounds = np.cumsum([0, *(len(ws) for ws in windows)])
        return aggregate([logits[a:b] for a, b in zip(bounds[:-1], bounds[1:])], self.aggregation)

    def _raw_scores(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Raw logits of ``pairs`` (the model's own default activation is a sigmoid; scaling is decided once, by
        ``score``)."""
        if self._exported is not None:
            return self._exported.predict(pairs, batch_size=self.batch_size)
        import torch

        raw = self._cross_encoder.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                          activation_fn=torch.nn.Identity(), convert_to_numpy=True)
        return np.asarray(raw, dtype=np.float64).reshape(len(pairs), -1)[:, 0]

    def _fused(self, own: np.ndarray, documents: list[Document]) -> np.ndarray:
        """The scores to rank by: the cross-encoder's, or fused with the retriever's when a weight is in use."""
        if self._fusion_alpha is None:
            return own
        first_stage = np.array([d.score if d.score is not None else np.nan for d in documents], dtype=np.float64)
        if np.all(np.isnan(first_stage)):
            logger.warning("fusion_alpha is {alpha} but no document has a retriever score; using the ranker alone.",
                           alpha=self._fusion_alpha)
            return own
        first_stage[np.isnan(first_stage)] = np.nanmin(first_stage)
        return fuse(own, first_stage, self._fusion_alpha)

    @staticmethod
    def _meta(document: Document, own: float) -> dict[str, Any]:
        meta = {**document.meta, CROSS_ENCODER_SCORE: float(own)}
        if document.score is not None:
            meta[RETRIEVER_SCORE] = document.score
        return meta

    @component.output_types(documents=list[Document])
    def run(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        scale_score: bool | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """
        :param query: the query.
        :param documents: the Documents to re-rank (not modified).
        :param top_k: overrides the init ``top_k``.
        :param scale_score: overrides the init ``scale_score``.
        :param score_threshold: overrides the init ``score_threshold``.
        :returns: ``documents``: copies, best first, with ``score`` set.
        """
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {top_k}.")
        top_k = self.top_k if top_k is None else top_k
        scale_score = self.scale_score if scale_score is None else scale_score
        score_threshold = self.score_threshold if score_threshold is None else score_threshold
        if not documents:
            return {"documents": []}
        best: dict[str, Document] = {}
        for doc in documents:  # duplicates by id: keep the best-scored, as Haystack's rankers do
            kept = best.get(doc.id)
            if kept is None or (doc.score is not None and (kept.score is None or doc.score > kept.score)):
                best[doc.id] = doc
        unique = list(best.values())
        scorable = [d for d in unique if d.content and d.content.strip()]
        empty = [replace(d, score=None) for d in unique if not (d.content and d.content.strip())]
        ranked: list[Document] = []
        if scorable:
            own = self.score(query, scorable, scale_score=scale_score)
            scores = self._fused(own, scorable)
            order = np.argsort(-scores, kind="stable")
            ranked = [replace(scorable[i], score=float(scores[i]), meta=self._meta(scorable[i], own[i])) for i in order]
        if score_threshold is not None:
            ranked = [d for d in ranked if d.score >= score_threshold]
            empty = []
        return {"documents": (ranked + empty)[:top_k]}
