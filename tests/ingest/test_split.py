import pytest
from haystack import Document

from haystack_hardneg import DocumentChunker
from haystack_hardneg.ingest.split import split_text, tokenizer_offsets

TEXT = " ".join(f"w{i}" for i in range(25))


def test_word_chunks_overlap_and_map_back_to_the_parent():
    chunks = split_text(TEXT, unit="word", length=10, overlap=3)
    words = [c.text.split() for c in chunks]
    assert [len(w) for w in words] == [10, 10, 10, 4]
    for previous, current in zip(words, words[1:]):
        assert previous[-3:] == current[:3]
    assert words[-1][-1] == "w24"
    for chunk in chunks:
        assert TEXT[chunk.start : chunk.end] == chunk.text


def test_short_text_is_one_chunk_and_empty_text_none():
    assert [c.text for c in split_text("a b c", unit="word", length=10)] == ["a b c"]
    assert split_text("   ", unit="word", length=10) == []


def test_sentences_are_not_cut_at_abbreviations():
    text = "Mice were dosed, e.g. twice daily. Levels rose by 5 %. Dr. Smith agreed! Was it 3.5 mg? Yes."
    chunks = split_text(text, unit="sentence", length=1)
    assert [c.text for c in chunks] == [
        "Mice were dosed, e.g. twice daily.",
        "Levels rose by 5 %.",
        "Dr. Smith agreed!",
        "Was it 3.5 mg?",
        "Yes.",
    ]


def test_a_sentence_longer_than_the_limit_is_cut_into_word_windows_and_counted():
    log_line = " ".join(f"x{i}" for i in range(250))  # no sentence end: a table or log line
    text = f"A short one. Log {log_line}. And the end."
    chunker = DocumentChunker(split_by="sentence", split_length=1, split_overlap=0, max_sentence_words=100)
    result = chunker.run([Document(id="d", content=text)])
    assert result["long_sentences"] == 1
    assert [len(d.content.split()) for d in result["documents"]] == [3, 100, 100, 51, 3]
    assert all(text[d.meta["char_start"] : d.meta["char_end"]] == d.content for d in result["documents"])
    assert DocumentChunker.from_dict(chunker.to_dict()).max_sentence_words == 100


def test_token_chunks_respect_the_model_token_count(tiny_model):
    offsets = tokenizer_offsets(tiny_model)
    text = "the vaccine reduced infection risk in mice and tumor growth in patients " * 5
    chunks = split_text(text, unit="token", length=12, overlap=2, token_offsets=offsets)
    assert len(chunks) > 3
    assert all(len(offsets(c.text)) <= 12 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)


@pytest.mark.parametrize("length, overlap", [(0, 0), (5, 5), (5, -1)])
def test_bad_lengths_are_refused(length, overlap):
    with pytest.raises(ValueError):
        DocumentChunker(split_length=length, split_overlap=overlap)


def test_chunker_meta_ids_and_no_mutation():
    long_doc = Document(id="p1", content=TEXT, meta={"title": "T"})
    short_doc = Document(id="p2", content="just a few words")
    result = DocumentChunker(split_by="word", split_length=10, split_overlap=2).run(
        [long_doc, short_doc, Document(id="p3", content="")]
    )
    chunks = result["documents"]
    assert result["skipped"] == 1
    assert [c.id for c in chunks] == ["p1#0", "p1#1", "p1#2", "p2"]
    assert [c.meta["chunk_index"] for c in chunks] == [0, 1, 2, 0]
    assert all(c.meta["parent_id"] == "p1" and c.meta["chunk_count"] == 3 and c.meta["title"] == "T"
               for c in chunks[:3])
    assert all(TEXT[c.meta["char_start"] : c.meta["char_end"]] == c.content for c in chunks[:3])
    assert long_doc.meta == {"title": "T"}


def test_token_chunker_needs_a_tokenizer_and_round_trips(tiny_model):
    with pytest.raises(ValueError, match="tokenizer"):
        DocumentChunker(split_by="token")
    chunker = DocumentChunker(split_by="token", split_length=8, split_overlap=1, tokenizer=tiny_model)
    assert DocumentChunker.from_dict(chunker.to_dict()).to_dict() == chunker.to_dict()
    assert len(chunker.run([Document(content="cancer risk " * 20)])["documents"]) == 6
