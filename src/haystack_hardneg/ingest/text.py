"""The text a model reads for a Document: chosen meta fields, then the content (one rule for every model)."""

from __future__ import annotations

from haystack import Document


def document_text(document: Document, meta_fields: list[str], separator: str) -> str:
    """``separator.join([meta values of meta_fields that are set..., content])``, as Haystack's embedders do."""
    meta = [str(document.meta[k]) for k in meta_fields if document.meta.get(k) is not None]
    return separator.join([*meta, document.content or ""])
