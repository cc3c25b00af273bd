import pytest

from haystack_hardneg.files import (
    atomic_directory,
    atomic_write_text,
    jsonl_text,
    read_jsonl,
    readable_directory,
    recover_interrupted_swap,
)


def test_jsonl_round_trips_texts_with_unicode_line_separators(tmp_path):
    records = [{"text": "first\u2028second\u2029third\x85fourth"}, {"text": "plain"}]
    atomic_write_text(tmp_path / "a.jsonl", jsonl_text(records))
    assert read_jsonl(tmp_path / "a.jsonl") == records
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]  # no temporary file left behind


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v1")
        (staging / "settings.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["settings.json", "weights"]

    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "weights").write_text("half")
            raise RuntimeError("interrupted")
    assert (target / "weights").read_text() == "v1"  # the failed save left the old version as it was

    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["weights"]  # nothing of v1 survives beside v2
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_swap_cut_between_its_renames_is_recovered(tmp_path):
    target = tmp_path / "index"
    with atomic_directory(target) as staging:
        (staging / "data").write_text("old")
    target.rename(tmp_path / ".index.previous")  # where a crash between the two renames leaves it
    # A reader finds the old version where it is and moves nothing (a writer may be between its renames).
    assert (readable_directory(target) / "data").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [".index.previous"]
    recover_interrupted_swap(target)
    assert (target / "data").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["index"]
