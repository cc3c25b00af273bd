"""Splitting long texts into overlapping chunks by words, sentences or model tokens.

Character offsets are kept for every chunk so a chunk can be traced back to its place in the parent.
Haystack's own DocumentSplitter needs NLTK data (sentences) or a tiktoken download (tokens), neither of
which can be fetched offline; these splitters need nothing but the text (and, for tokens, the tokenizer
of the model that will read the chunks, which is the unit that matters for truncation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

SplitUnit = Literal["word", "sentence", "token"]
SPLIT_UNITS: tuple[str, ...] = ("word", "sentence", "token")

_WORD = re.compile(r"\S+")
# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace and an
# upper-case letter, a digit or an opening quote; or at a blank line. Common abbreviations are kept whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")
_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|et al|etc|vs|cf|fig|Fig|Dr|Mr|Mrs|Ms|Prof|No|approx|resp)\.$")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offset in the parent text
    end: int


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if _ABBREVIATIONS.search(text[start : match.start()]):
            continue
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def _word_windows(text: str, span: tuple[int, int], max_words: int) -> list[tuple[int, int]]:
    words = [(span[0] + s, span[0] + e) for s, e in (m.span() for m in _WORD.finditer(text[span[0] : span[1]]))]
    return [(words[i][0], words[min(i + max_words, len(words)) - 1][1]) for i in range(0, len(words), max_words)]


def _unit_spans(text: str, unit: SplitUnit, token_offsets: Callable[[str], list[tuple[int, int]]] | None,
                max_sentence_words: int) -> tuple[list[tuple[int, int]], int]:
    """The units' character spans, and how many sentences were longer than ``max_sentence_words`` (each is cut
    into word windows of that size: a text without sentence ends, e.g. a table or a log, would else be one
    unit of any length)."""
    if unit == "word":
        return [m.span() for m in _WORD.finditer(text)], 0
    if unit == "sentence":
        spans, long_sentences = [], 0
        for span in _sentence_spans(text):
            windows = _word_windows(text, span, max_sentence_words)
            long_sentences += len(windows) > 1
            spans.extend(windows)
        return spans, long_sentences
    if unit == "token":
        if token_offsets is None:
            raise ValueError("split_by='token' needs a tokenizer (the model whose tokens are counted).")
        return [(s, e) for s, e in token_offsets(text) if e > s], 0
    raise ValueError(f"Unknown split unit {unit!r}; choose one of {SPLIT_UNITS}.")


def split_text(text: str, **options) -> list[Chunk]:
    """The chunks of :func:`split_text_counted`."""
    return split_text_counted(text, **options)[0]


def split_text_counted(
    text: str,
    *,
    unit: SplitUnit = "word",
    length: int = 200,
    overlap: int = 0,
    token_offsets: Callable[[str], list[tuple[int, int]]] | None = None,
    max_sentence_words: int = 200,
) -> tuple[list[Chunk], int]:
    """Chunks of ``length`` units, each sharing ``overlap`` units with the one before, and the number of
    sentences longer than ``max_sentence_words`` that were cut into word windows (``unit="sentence"``).

    The last chunk may be shorter. A text of at most ``length`` units is one chunk. Each chunk's text is
    the parent's text between the first unit's start and the last unit's end, so whitespace and
    punctuation inside a chunk are kept as they were.
    """
    if length < 1:
        raise ValueError(f"split length must be >= 1, got {length}.")
    if not 0 <= overlap < length:
        raise ValueError(f"split overlap must be >= 0 and smaller than the length ({length}), got {overlap}.")
    if max_sentence_words < 1:
        raise ValueError(f"max_sentence_words must be >= 1, got {max_sentence_words}.")
    spans, long_sentences = _unit_spans(text, unit, token_offsets, max_sentence_words)
    chunks: list[Chunk] = []
    step = length - overlap
    for first in range(0, len(spans), step):
        window: Sequence[tuple[int, int]] = spans[first : first + length]
        start, end = window[0][0], window[-1][1]
        chunks.append(Chunk(text=text[start:end], start=start, end=end))
        if first + length >= len(spans):
            break
    return chunks, long_sentences


def tokenizer_offsets(tokenizer_name_or_path: str) -> Callable[[str], list[tuple[int, int]]]:
    """Character offsets of a Hugging Face fast tokenizer's tokens (special tokens left out)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name_or_path)

    def offsets(text: str) -> list[tuple[int, int]]:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        return [tuple(span) for span in encoded["offset_mapping"]]

    return offsets
