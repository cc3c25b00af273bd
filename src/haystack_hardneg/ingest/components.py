"""Haystack faces of ingestion: CorpusConverter (sources -> Documents) and DocumentChunker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.dataclasses import ByteStream

from haystack_hardneg.ingest.beir import load_corpus
from haystack_hardneg.ingest.fetch import DEFAULT_MAX_BYTES, fetch, too_large
from haystack_hardneg.ingest.html import extract_main_text
from haystack_hardneg.ingest.split import SPLIT_UNITS, SplitUnit, split_text_counted, tokenizer_offsets

logger = logging.getLogger(__name__)


# Files a folder is read for; a BEIR folder (with corpus.jsonl) is read as one corpus.
FOLDER_SUFFIXES = (".html", ".htm", ".xhtml", ".jsonl")


def _is_url(source: Any) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def expand_folders(sources: list[Any]) -> list[Any]:
    """Each folder (other than a BEIR folder) replaced by the files in it and below it, sorted, hidden ones left
    out; a BEIR folder inside it stays one source (its corpus). Other sources are kept."""
    expanded: list[Any] = []
    for source in sources:
        path = Path(source) if isinstance(source, (str, Path)) and not _is_url(source) else None
        if path is None or not path.is_dir() or (path / "corpus.jsonl").is_file():
            expanded.append(source)
            continue
        beir = [p for p in path.rglob("corpus.jsonl")]
        for found in sorted(path.rglob("*")):
            inside = found.relative_to(path).parts
            if any(part.startswith(".") for part in inside) or any(b.parent in found.parents for b in beir):
                continue
            if found.is_file():
                expanded.append(str(found))
            elif (found / "corpus.jsonl").is_file():
                expanded.append(str(found))
    return expanded


@component
class CorpusConverter:
    """
    Turns sources into Documents: web pages by URL, HTML files, folders of them, and JSONL / BEIR corpora.

    HTML is reduced to its main text by trafilatura (navigation, footers and other boilerplate removed). A page's
    Document id is its URL or its file path as given (a folder's files: the folder path joined with the file's
    path inside it), so that labels can name it; JSONL and BEIR documents keep their own ids.
    A source that fails (unreachable URL, binary content, a page without main text, a missing file, a file of
    a folder that is neither HTML nor JSONL) is reported in ``failures`` with the reason, and every other source
    is still converted.

    Usage example:
    ```python
    from haystack_hardneg import CorpusConverter

    converter = CorpusConverter()
    result = converter.run(sources=["https://example.com/manual.html", "docs/page.html", "corpus.jsonl"])
    print(len(result["documents"]), result["failures"])
    ```
    """

    def __init__(self, *, min_words: int = 5, timeout: int = 10, retry_attempts: int = 1,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        """
        :param min_words: a page whose main text has fewer words is reported as having no main text.
        :param timeout: seconds to wait for each URL.
        :param retry_attempts: retries per URL before it is reported as failed.
        :param max_bytes: a web page, HTML file or ByteStream larger than this is reported as failed without being
            read whole (a URL is streamed and abandoned past it): extracting the main text takes about 45 times
            a page's size in memory.
        """
        if min_words < 1:
            raise ValueError("min_words must be >= 1.")
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1.")
        self.min_words = min_words
        self.timeout = timeout
        self.retry_attempts = retry_attempts
        self.max_bytes = max_bytes
        self._folder_files: set[str] = set()

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, min_words=self.min_words, timeout=self.timeout, retry_attempts=self.retry_attempts,
                               max_bytes=self.max_bytes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CorpusConverter":
        return default_from_dict(cls, data)

    def _page_document(self, data: bytes, source: str, meta: dict[str, Any]) -> Document:
        page = extract_main_text(data, url=source if _is_url(source) else None, min_words=self.min_words)
        page_meta = {"source": source, **meta}
        if page.title:
            page_meta.setdefault("title", page.title)
        # The source names the page for people (labels, results); bytes without a name get a content hash. A URL's
        # fragment names a place in the page, not another page (and would read as a chunk's "#<n>").
        if source == "<bytes>":
            return Document(content=page.text, meta=page_meta)
        return Document(id=source.split("#", 1)[0] if _is_url(source) else source, content=page.text, meta=page_meta)

    def _convert(self, source: str | Path | ByteStream) -> list[Document]:
        if isinstance(source, ByteStream):
            name = str(source.meta.get("url") or source.meta.get("file_path") or "<bytes>")
            if len(source.data) > self.max_bytes:
                raise too_large(f"the stream {name}", len(source.data), self.max_bytes)
            return [self._page_document(source.data, name, dict(source.meta))]
        if _is_url(source):
            data, mime_type = fetch(str(source), max_bytes=self.max_bytes, timeout=self.timeout,
                                    retry_attempts=self.retry_attempts)
            return [self._page_document(data, str(source), {"content_type": mime_type})]
        if isinstance(source, str) and "://" in source:
            raise ValueError(f"unsupported URL scheme in {source}: give http(s) URLs, or download the page and "
                             f"give its file")
        path = Path(source)
        if path.is_dir() and (path / "corpus.jsonl").is_file():
            path = path / "corpus.jsonl"
        if path.suffix.lower() == ".jsonl":
            return [replace(d, meta={"source": str(path), **d.meta}) for d in load_corpus(path)]
        if not path.is_file():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if self._from_folder(path) and path.suffix.lower() not in FOLDER_SUFFIXES:
            raise ValueError(f"not read from its folder: only {', '.join(FOLDER_SUFFIXES)} files are")
        if path.stat().st_size > self.max_bytes:
            raise too_large(f"the file {path}", path.stat().st_size, self.max_bytes)
        return [self._page_document(path.read_bytes(), str(path), {"file_path": str(path)})]

    def _from_folder(self, path: Path) -> bool:
        return str(path) in self._folder_files

    @component.output_types(documents=list[Document], failures=list[dict[str, str]])
    def run(self, sources: list[str | Path | ByteStream]) -> dict[str, Any]:
        """
        :param sources: URLs, paths of HTML or JSONL files, folders of them, BEIR folders, or ByteStreams of HTML.
        :returns: ``documents``: the converted Documents; ``failures``: ``{"source", "error"}`` per failed source.
        """
        documents: list[Document] = []
        failures: list[dict[str, str]] = []
        expanded = expand_folders(list(sources))
        self._folder_files = {str(s) for s in expanded} - {str(s) for s in sources}
        for source in expanded:
            try:
                documents.extend(self._convert(source))
            except Exception as error:  # one bad source must not stop the others; each failure is reported
                name = str(source.meta.get("url", "<bytes>")) if isinstance(source, ByteStream) else str(source)
                failures.append({"source": name, "error": f"{type(error).__name__}: {error}"})
                logger.warning("Could not convert {source}: {error}", source=name, error=error)
        return {"documents": documents, "failures": failures}


@component
class DocumentChunker:
    """
    Splits long Documents into overlapping chunks by words, sentences or model tokens.

    Each chunk keeps its parent's meta plus ``parent_id``, ``chunk_index``, ``chunk_count``, ``char_start``
    and ``char_end``. A Document that fits in one chunk keeps its id; chunks of a longer one get the id
    ``"<parent id>#<chunk index>"``. Documents without text are dropped and counted in ``skipped``. With
    ``split_by="sentence"`` a sentence longer than ``max_sentence_words`` is cut into word windows of that size
    and counted in ``long_sentences``.

    Usage example:
    ```python
    from haystack import Document
    from haystack_hardneg import DocumentChunker

    chunker = DocumentChunker(split_by="word", split_length=200, split_overlap=20)
    chunks = chunker.run([Document(content="a long manual ...")])["documents"]
    ```
    """

    def __init__(
        self,
        *,
        split_by: SplitUnit = "word",
        split_length: int = 200,
        split_overlap: int = 20,
        tokenizer: str | None = None,
        max_sentence_words: int = 200,
    ):
        """
        :param split_by: ``"word"``, ``"sentence"`` or ``"token"``.
        :param split_length: units per chunk.
        :param split_overlap: units shared by consecutive chunks.
        :param tokenizer: for ``split_by="token"``: the model (hub id or local folder) whose tokens are counted.
        :param max_sentence_words: for ``split_by="sentence"``: a longer sentence (or a text without sentence
            ends) is cut into windows of this many words.
        """
        if split_by not in SPLIT_UNITS:
            raise ValueError(f"split_by must be one of {SPLIT_UNITS}, got {split_by!r}.")
        if split_by == "token" and not tokenizer:
            raise ValueError("split_by='token' needs tokenizer= (the model whose tokens are counted).")
        split_text_counted("", length=split_length, overlap=split_overlap,  # validates the numbers
                           max_sentence_words=max_sentence_words)
        self.split_by = split_by
        self.split_length = split_length
        self.split_overlap = split_overlap
        self.tokenizer = tokenizer
        self.max_sentence_words = max_sentence_words
        self._token_offsets = None

    def warm_up(self) -> None:
        """Load the tokenizer (for token splitting)."""
        if self.split_by == "token" and self._token_offsets is None:
            self._token_offsets = tokenizer_offsets(self.tokenizer)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            split_by=self.split_by,
            split_length=self.split_length,
            split_overlap=self.split_overlap,
            tokenizer=self.tokenizer,
            max_sentence_words=self.max_sentence_words,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DocumentChunker":
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document], skipped=int, long_sentences=int)
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """
        :param documents: the Documents to split; they are not modified.
        :returns: ``documents``: the chunks; ``skipped``: Documents without text that were dropped;
            ``long_sentences``: sentences longer than ``max_sentence_words``, cut into word windows.
        """
        if self.split_by == "token":
            self.warm_up()
        chunks: list[Document] = []
        skipped = long_sentences = 0
        for doc in documents:
            pieces, cut = split_text_counted(
                doc.content or "",
                unit=self.split_by,
                length=self.split_length,
                overlap=self.split_overlap,
                token_offsets=self._token_offsets,
                max_sentence_words=self.max_sentence_words,
            )
            long_sentences += cut
            if not pieces:
                skipped += 1
                continue
            for index, piece in enumerate(pieces):
                meta = {
                    **doc.meta,
                    "parent_id": doc.id,
                    "chunk_index": index,
                    "chunk_count": len(pieces),
                    "char_start": piece.start,
                    "char_end": piece.end,
                }
                chunk_id = doc.id if len(pieces) == 1 else f"{doc.id}#{index}"
                chunks.append(Document(id=chunk_id, content=piece.text, meta=meta))
        if skipped:
            logger.warning("Skipped {n} document(s) without text.", n=skipped)
        if long_sentences:
            logger.warning("Cut {n} sentence(s) longer than {words} words into word windows.", n=long_sentences,
                           words=self.max_sentence_words)
        return {"documents": chunks, "skipped": skipped, "long_sentences": long_sentences}
