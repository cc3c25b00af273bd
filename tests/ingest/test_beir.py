import json

import pytest

from haystack_hardneg.ingest.beir import DataError, LoadStats, load_beir, load_corpus, load_qrels, validate_qrels


def _write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_load_beir_fixture(fixtures):
    split = load_beir(fixtures / "scifact-tiny", "test")
    assert len(split.corpus) == 40
    assert len(split.queries) == 8
    assert set(split.qrels) == set(split.queries)
    ids = {d.id for d in split.corpus}
    assert all(d in ids for judged in split.qrels.values() for d in judged)


def test_duplicate_and_empty_ids_name_the_line(tmp_path):
    with pytest.raises(DataError, match=r"corpus.jsonl:3: duplicate document id 'a' \(first on line 1\)"):
        load_corpus(_write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"},
                                                             {"_id": "a", "text": "z"}]))
    with pytest.raises(DataError, match=r":2: empty or missing id"):
        load_corpus(_write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "a", "text": "x"}, {"_id": " ", "text": "y"}]))
    (tmp_path / "bad.jsonl").write_text('{"_id": "a", "text": "x"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        load_corpus(tmp_path / "bad.jsonl")


def test_documents_without_text_are_skipped_and_counted(tmp_path):
    stats = LoadStats()
    records = [{"_id": "a", "text": "x", "title": "T"}, {"_id": "b", "text": ""}, {"id": "c", "content": "z"}]
    docs = load_corpus(_write_jsonl(tmp_path / "c.jsonl", records), stats)
    assert [d.id for d in docs] == ["a", "c"]
    assert docs[0].meta == {"title": "T"}
    assert stats.empty_documents == ["b"]


def test_qrels_naming_unknown_data_are_an_error_or_skipped_and_counted(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tghost\t1\nq9\td1\t1\nq2\td2\t0\n")
    qrels = load_qrels(tmp_path / "q.tsv")
    queries = {"q1": "one", "q2": "two"}
    with pytest.raises(DataError, match=r"1 unknown query id\(s\), e.g. \['q9'\].*\('q1', 'ghost'\)"):
        validate_qrels(qrels, queries, {"d1", "d2"})
    stats = LoadStats()
    cleaned = validate_qrels(qrels, queries, {"d1", "d2"}, on_missing="skip", stats=stats)
    assert cleaned == {"q1": {"d1": 1}}
    assert stats.missing_queries == ["q9"]
    assert stats.missing_documents == [("q1", "ghost")]
    assert stats.queries_without_positives == ["q2"]


def test_malformed_qrels_lines_are_reported(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(DataError, match=r"q.tsv:2"):
        load_qrels(tmp_path / "q.tsv")


@pytest.mark.parametrize("grade", ["inf", "-inf", "nan", "high", "1.5"])
def test_a_grade_that_is_not_a_whole_finite_number_names_file_and_line(tmp_path, grade):
    (tmp_path / "q.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t{grade}\n")
    with pytest.raises(DataError, match=r"q.tsv:3: grade .* integer relevance grade"):
        load_qrels(tmp_path / "q.tsv")


def test_skipped_judgements_are_counted_one_by_one(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tghost\t1\nq9\td1\t1\nq9\td2\t2\n")
    stats = LoadStats()
    validate_qrels(load_qrels(tmp_path / "q.tsv"), {"q1": "one"}, {"d1", "d2"}, on_missing="skip", stats=stats)
    assert stats.unknown_judgements == 3  # q1-ghost, and both judgements of the unknown query q9


def test_min_relevance_decides_which_queries_have_a_positive_and_keeps_every_grade(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq2\td2\t1\n")
    qrels = load_qrels(tmp_path / "q.tsv")
    queries = {"q1": "one", "q2": "two"}
    assert validate_qrels(qrels, queries, {"d1", "d2"}) == {"q1": {"d1": 2, "d2": 1}, "q2": {"d2": 1}}
    stats = LoadStats()
    assert validate_qrels(qrels, queries, {"d1", "d2"}, min_relevance=2, stats=stats) == {"q1": {"d1": 2, "d2": 1}}
    assert stats.queries_without_positives == ["q2"]
    with pytest.raises(ValueError, match="min_relevance"):
        validate_qrels(qrels, queries, {"d1", "d2"}, min_relevance=0)
