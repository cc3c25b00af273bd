from haystack_hardneg.store.qdrant import (
    EnsembleDocumentWriter,
    StoreMismatchError,
    check_store_matches,
    open_document_store,
)

__all__ = ["EnsembleDocumentWriter", "StoreMismatchError", "check_store_matches", "open_document_store"]
