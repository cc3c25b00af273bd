from haystack_hardneg.files import atomic_write_text, jsonl_text, read_jsonl


def test_jsonl_round_trips_texts_with_unicode_line_separators(tmp_path):
    records = [{"text": "first\u2028second\u2029third\x85fourth"}, {"text": "plain"}]
    atomic_write_text(tmp_path / "a.jsonl", jsonl_text(records))
    assert read_jsonl(tmp_path / "a.jsonl") == records
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]  # no temporary file left behind
