"""Property-based fuzzing of every reader of a user's files: whatever the bytes (other encodings, control
characters, huge numbers, deep nesting, hostile paths), a reader either parses them or raises its own one-line
error, never another exception.

About a hundred cases per reader in the default suite (it must stay within its time); ``HARDNEG_FUZZ=long pytest
-m fuzz`` runs thousands.
"""

import json
import os
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.state_file import StateError, read_state
from haystack_hardneg.ingest.beir import DataError, load_corpus, load_qrels, load_queries
from haystack_hardneg.ingest.labels import load_labels
from haystack_hardneg.options import ConfigError
from haystack_hardneg.scoring.settings import read_fusion_alpha, read_ranker_settings

settings.register_profile("default", max_examples=120, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HARDNEG_FUZZ", "default"))

pytestmark = pytest.mark.fuzz

# Text a user's file may hold: every kind of character, control characters, separators, quotes, odd code points.
TEXT = st.text(alphabet=st.one_of(st.characters(), st.sampled_from("\t\n\r\x00\x0b\x85\u2028,;\"'\\{}[]:")),
               max_size=40)
NUMBERS = st.one_of(st.integers(min_value=-10**30, max_value=10**30), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["1", "1.0", "-1", "99999999999999999999999", "1e400", "nan", "0x10", ""]))
JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
DEEP = st.integers(min_value=1, max_value=3_000).map(lambda n: "[" * n + "]" * n)
ENCODINGS = st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-32"])


def _one_line(error: BaseException) -> None:
    assert "\n" not in str(error), str(error)


def _lines(records: st.SearchStrategy) -> st.SearchStrategy:
    """File contents: JSON lines of ``records``, raw text lines, deep nesting, in any encoding, or random bytes."""
    line = st.one_of(records.map(lambda r: json.dumps(r, ensure_ascii=False, allow_nan=True)), TEXT, DEEP)
    text = st.lists(line, max_size=6).map("\n".join)
    return st.one_of(st.tuples(text, ENCODINGS).map(lambda t: t[0].encode(t[1], errors="replace")),
                     st.binary(max_size=200))


BEIR_RECORDS = st.fixed_dictionaries({}, optional={"_id": st.one_of(TEXT, NUMBERS), "id": TEXT, "text": JSON_VALUES,
                                                   "title": JSON_VALUES, "content": JSON_VALUES,
                                                   "meta": JSON_VALUES}).map(dict)


@given(data=_lines(st.one_of(BEIR_RECORDS, JSON_VALUES)))
def test_corpus_and_queries_files_parse_or_say_where(tmp_path, data):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(data)
    for reader in (load_corpus, load_queries):
        try:
            reader(path)
        except DataError as error:
            _one_line(error)


TSV_FIELD = st.one_of(TEXT.map(lambda t: t.replace("\t", " ")), NUMBERS.map(str))


@given(rows=st.lists(st.lists(TSV_FIELD, max_size=4).map("\t".join), max_size=6), encoding=ENCODINGS,
       header=st.booleans())
def test_qrels_files_parse_or_say_where(tmp_path, rows, encoding, header):
    text = "\n".join((["query-id\tcorpus-id\tscore"] if header else []) + rows)
    path = tmp_path / "q.tsv"
    path.write_bytes(text.encode(encoding, errors="replace"))
    try:
        qrels = load_qrels(path)
    except DataError as error:
        _one_line(error)
    else:
        assert all(0 <= grade <= 100 for judged in qrels.values() for grade in judged.values())


LABEL_RECORDS = st.fixed_dictionaries({}, optional={k: st.one_of(TEXT, NUMBERS, JSON_VALUES)
                                                    for k in ("query", "document", "grade", "query_id", "extra")})


@given(suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]), data=_lines(LABEL_RECORDS),
       table=st.lists(st.lists(TEXT, max_size=5).map(",".join), max_size=6),
       header=st.sampled_from(["query,document", "query,document,grade,query_id", "query\tdocument\tgrade", ""]))
def test_labels_files_parse_or_say_where(tmp_path, suffix, data, table, header):
    path = tmp_path / f"labels{suffix}"
    path.write_bytes(data if suffix == ".jsonl" else "\n".join([header, *table]).encode("utf-8", errors="replace"))
    try:
        labels = load_labels(path)
    except DataError as error:
        _one_line(error)
    else:
        assert all(0 <= label.grade <= 100 and label.query and label.document for label in labels)


CONFIG_KEYS = ["data", "training", "members", "strategies", "mining", "variants", "lexical", "store", "retrieve_k",
               "rerank_k", "min_relevance", "seed", "training_seed", "rerank_backend", "fusion_rule", "unknown"]


@given(settings_=st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON_VALUES, max_size=6),
       raw=st.one_of(st.none(), TEXT, DEEP, st.sampled_from(["!!python/object/apply:os.system ['true']", "a: [b",
                                                             "- 1\n- 2", "data: !!binary aGk="])))
def test_experiment_configs_parse_or_name_the_key(tmp_path, settings_, raw):
    path = tmp_path / "config.yml"
    path.write_text(raw if raw is not None else yaml.safe_dump(settings_, allow_unicode=True), encoding="utf-8",
                    errors="surrogatepass")  # a lone surrogate: bytes that are not UTF-8, as a broken file has
    try:
        ExperimentConfig.from_yaml(path)
    except ConfigError as error:
        _one_line(error)


@given(content=st.one_of(JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True)),
                         st.fixed_dictionaries({"fusion_alpha": st.one_of(NUMBERS, JSON_VALUES)}).map(json.dumps),
                         TEXT, DEEP))
def test_ranker_settings_files_parse_or_name_the_file(tmp_path, content):
    (tmp_path / "hardneg.json").write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        read_ranker_settings(tmp_path)
        alpha = read_fusion_alpha(tmp_path)
    except ValueError as error:
        _one_line(error)
        assert "hardneg.json" in str(error)
    else:
        assert alpha is None or 0.0 <= alpha < 1.0


PATHS = st.one_of(TEXT, st.sampled_from(["../x", "/etc/passwd", "files/../../x", "files/a.gz", "mine/s/x",
                                         "rerank/s.json", "", "a\\..\\b", "~/x"]))
FILE_ENTRIES = st.fixed_dictionaries({}, optional={"sha256": st.one_of(TEXT, JSON_VALUES),
                                                   "rebuild": st.sampled_from(["copy", "lists", "triplets", "x"]),
                                                   "bytes": NUMBERS, "stored": PATHS})
STATES = st.fixed_dictionaries({}, optional={
    "format": st.one_of(st.just(1), NUMBERS, TEXT),
    "stages": st.one_of(JSON_VALUES, st.dictionaries(
        st.sampled_from(["first_stage", "mine/random", "rerank/random", "train/random", "x"]),
        st.fixed_dictionaries({}, optional={
            "record": st.fixed_dictionaries({}, optional={"key": st.one_of(TEXT, NUMBERS),
                                                          "outputs": st.lists(PATHS, max_size=3),
                                                          "seconds": NUMBERS}),
            "files": st.one_of(JSON_VALUES, st.dictionaries(PATHS, FILE_ENTRIES, max_size=3))}), max_size=3)),
    "models": JSON_VALUES, "plan_estimates": st.one_of(JSON_VALUES, st.dictionaries(TEXT, NUMBERS, max_size=3))})


@given(state=st.one_of(STATES, JSON_VALUES), raw=st.one_of(st.none(), TEXT, DEEP))
def test_state_files_parse_or_say_what_is_wrong(tmp_path, state, raw):
    (tmp_path / "state.json").write_text(raw if raw is not None else json.dumps(state, allow_nan=True),
                                         encoding="utf-8", errors="surrogatepass")
    try:
        read_state(tmp_path)
    except StateError as error:
        _one_line(error)


def test_the_fuzzed_text_reaches_control_characters_and_other_encodings():
    # The strategies above must produce what they claim to: a tab, a NUL and non-ASCII among their characters.
    seen = set()

    @given(TEXT)
    @settings(max_examples=300)
    def collect(text):
        seen.update(text)

    collect()
    assert {"\t", "\x00"} <= seen and any(ch not in string.printable for ch in seen)
