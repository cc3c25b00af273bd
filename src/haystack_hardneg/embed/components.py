"""Haystack faces of the ensemble: EnsembleDocumentEmbedder and EnsembleTextEmbedder."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import ComponentDevice

from haystack_hardneg.embed.encoder import EnsembleEncoder
from haystack_hardneg.embed.ensemble import CombineMode, MemberSpec
from haystack_hardneg.embed.haystack_member import with_components
from haystack_hardneg.ingest.text import document_text

logger = logging.getLogger(__name__)

# Written into every embedded Document's meta, so a store can tell which ensemble made its vectors.
ENSEMBLE_META_KEY = "ensemble_id"


class _EnsembleComponent:
    """Init parameters, serialization and model loading shared by both embedders."""

    def __init__(
        self,
        *,
        members: list[MemberSpec | str | dict[str, Any]],
        combine: CombineMode = "concat",
        cache_dir: str | None = None,
        device: ComponentDevice | None = None,
        progress_bar: bool = True,
    ):
        # An embedder pair given serialised (YAML) is built now, within the loading pipeline's allowlist.
        self.members = [with_components(MemberSpec.coerce(m)) for m in members]
        self.combine = combine
        self.cache_dir = cache_dir
        self.device = device
        self.progress_bar = progress_bar
        # Validates members, mode and local model paths now, before any pipeline work starts.
        self.encoder = EnsembleEncoder(
            self.members,
            combine=combine,
            cache_dir=cache_dir,
            device=ComponentDevice.resolve_device(device).to_torch_str() if device is not None else None,
            progress_bar=progress_bar,
        )

    def warm_up(self) -> None:
        """Load every member model (and open the cache)."""
        self.encoder.load()

    def _init_parameters(self) -> dict[str, Any]:
        return {
            "members": [m.to_dict() for m in self.members],
            "combine": self.combine,
            "cache_dir": self.cache_dir,
            "device": self.device.to_dict() if self.device is not None else None,
            "progress_bar": self.progress_bar,
        }

    @staticmethod
    def _deserialize_device(data: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``data`` with the device deserialized (the caller's dict is left as it was)."""
        params = dict(data.get("init_parameters", {}))
        if isinstance(params.get("device"), dict):
            params["device"] = ComponentDevice.from_dict(params["device"])
        return {**data, "init_parameters": params}

    def _ensure_loaded(self) -> None:
        if not self.encoder.is_loaded:
            raise RuntimeError(f"{type(self).__name__} was not warmed up: call warm_up() before run().")

    @property
    def ensemble_id(self) -> str:
        """The identity key of this ensemble: models, weights, mode, dimension (the vector space; not prompts)."""
        self._ensure_loaded()
        return self.encoder.identity.key


@component
class EnsembleDocumentEmbedder(_EnsembleComponent):
    """
    Embeds Documents with several sentence-transformers models at once and combines the vectors.

    Usage example:
    ```python
    from haystack import Document
    from haystack_hardneg import EnsembleDocumentEmbedder

    embedder = EnsembleDocumentEmbedder(
        members=[{"model": "sentence-transformers/all-MiniLM-L6-v2", "weight": 1.0},
                 {"model": "sentence-transformers/all-mpnet-base-v2", "weight": 1.0}],
    )
    embedder.warm_up()
    result = embedder.run([Document(content="Hard negatives make re-rankers better.")])
    print(len(result["documents"][0].embedding))  # 384 + 768
    ```

    With ``combine="concat"`` (default) the dot product of two ensemble vectors equals the weighted
    average of the members' cosine similarities; ``combine="mean"`` averages the vectors instead.
    Documents with empty content are left out of the output and counted in ``skipped``.
    """

    def __init__(
        self,
        *,
        members: list[MemberSpec | str | dict[str, Any]],
        combine: CombineMode = "concat",
        cache_dir: str | None = None,
        device: ComponentDevice | None = None,
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
    ):
        """
        :param members: the ensemble's models: ``MemberSpec``s, model names/paths, or dicts with the fields
            ``model``, ``weight``, ``query_prompt``, ``document_prompt``, ``max_seq_length``, ``batch_size``.
        :param combine: ``"concat"`` (weighted concatenation, exact score averaging) or ``"mean"``.
        :param cache_dir: folder of the on-disk embedding cache; ``None`` disables it.
        :param device: the device to run the models on; ``None`` picks one automatically.
        :param progress_bar: show progress bars while embedding.
        :param meta_fields_to_embed: meta fields put before the content (e.g. ``["title"]``).
        :param embedding_separator: separator between the meta fields and the content.
        """
        _EnsembleComponent.__init__(
            self, members=members, combine=combine, cache_dir=cache_dir, device=device, progress_bar=progress_bar)
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            **self._init_parameters(),
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnsembleDocumentEmbedder":
        return default_from_dict(cls, cls._deserialize_device(data))

    def text_to_embed(self, document: Document) -> str:
        return document_text(document, self.meta_fields_to_embed, self.embedding_separator)

    @component.output_types(documents=list[Document], skipped=int)
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """
        Embed documents.

        :param documents: the Documents to embed; they are not modified.
        :returns: ``documents``: copies with ``embedding`` set and ``meta["ensemble_id"]`` recorded;
            ``skipped``: how many Documents had no text and were left out.
        """
        if not isinstance(documents, list) or any(not isinstance(d, Document) for d in documents):
            raise TypeError("EnsembleDocumentEmbedder expects a list of Documents; for strings use "
                            "EnsembleTextEmbedder.")
        self._ensure_loaded()
        kept = [d for d in documents if d.content and d.content.strip()]
        skipped = len(documents) - len(kept)
        if skipped:
            logger.warning("Skipped {n} document(s) with empty content.", n=skipped)
        vectors = self.encoder.encode([self.text_to_embed(d) for d in kept], kind="document")
        ensemble_id = self.encoder.identity.key
        embedded = [
            replace(doc, embedding=vector.tolist(), meta={**doc.meta, ENSEMBLE_META_KEY: ensemble_id})
            for doc, vector in zip(kept, vectors)
        ]
        return {"documents": embedded, "skipped": skipped}


@component
class EnsembleTextEmbedder(_EnsembleComponent):
    """
    Embeds a query string with the same ensemble as EnsembleDocumentEmbedder (using the query prompts).

    Usage example:
    ```python
    from haystack_hardneg import EnsembleTextEmbedder

    embedder = EnsembleTextEmbedder(members=["sentence-transformers/all-MiniLM-L6-v2"])
    embedder.warm_up()
    print(len(embedder.run("what do hard negatives do?")["embedding"]))  # 384
    ```
    """

    def __init__(
        self,
        *,
        members: list[MemberSpec | str | dict[str, Any]],
        combine: CombineMode = "concat",
        cache_dir: str | None = None,
        device: ComponentDevice | None = None,
        progress_bar: bool = False,
    ):
        """
        :param members: the same member list as the document embedder's (see EnsembleDocumentEmbedder).
        :param combine: ``"concat"`` or ``"mean"``; must match the document embedder.
        :param cache_dir: folder of the on-disk embedding cache; ``None`` (default) disables it.
        :param device: the device to run the models on; ``None`` picks one automatically.
        :param progress_bar: show progress bars while embedding.
        """
        _EnsembleComponent.__init__(
            self, members=members, combine=combine, cache_dir=cache_dir, device=device, progress_bar=progress_bar)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnsembleTextEmbedder":
        return default_from_dict(cls, cls._deserialize_device(data))

    @component.output_types(embedding=list[float], ensemble_id=str)
    def run(self, text: str) -> dict[str, Any]:
        """
        Embed one query.

        :param text: the query.
        :returns: ``embedding``: the ensemble vector; ``ensemble_id``: the ensemble's identity key.
        """
        if not isinstance(text, str):
            raise TypeError("EnsembleTextEmbedder expects a string; for Documents use EnsembleDocumentEmbedder.")
        self._ensure_loaded()
        if not text.strip():
            raise ValueError("Cannot embed an empty query.")
        vector = self.encoder.encode([text], kind="query")[0]
        return {"embedding": vector.tolist(), "ensemble_id": self.encoder.identity.key}
