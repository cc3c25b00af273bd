"""Hostile and broken inputs, as a user's files can hold them: each ends in one line saying what is wrong and where,
exit code 2 from the command line, and nothing half-written where a later step would read it."""

import json
import math
import os
import subprocess
import sys

import pytest
from sentence_transformers import CrossEncoder

from haystack_hardneg import CrossEncoderRanker
from haystack_hardneg.cli import main
from haystack_hardneg.ingest.beir import DataError, load_qrels, load_queries

GOOD_CORPUS = [{"_id": "d1", "text": "the warranty covers the pump"}, {"_id": "d2", "text": "returns within 30 days"},
               {"_id": "d3", "text": "shipping is free in the country"}]
GOOD_LABELS = "query,document\nwhat does the warranty cover,d1\nhow do I return it,d2\nwhat does shipping cost,d3\n"


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _prepare(tmp_path, capsys, corpus, labels: bytes):
    """``prepare`` in this process on the given corpus records and labels bytes; (exit code, stderr lines)."""
    _jsonl(tmp_path / "corpus.jsonl", corpus)
    (tmp_path / "labels.csv").write_bytes(labels)
    capsys.readouterr()
    code = main(["prepare", str(tmp_path / "corpus.jsonl"), "--labels", str(tmp_path / "labels.csv"),
                 "--out", str(tmp_path / "beir")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("haystack-hardneg")]
    return code, errors


def test_a_document_id_with_a_tab_is_refused_and_no_beir_folder_is_written(tmp_path, capsys):
    corpus = [{"_id": "doc\tone", "text": "the warranty covers the pump"}, *GOOD_CORPUS[1:]]
    labels = b"query,document\nwhat does the warranty cover,doc\tone\nhow do I return it,d2\n"
    code, errors = _prepare(tmp_path, capsys, corpus, labels)
    assert code == 2 and len(errors) == 1, errors
    assert f"{tmp_path / 'corpus.jsonl'}:1:" in errors[0], errors
    assert not (tmp_path / "beir").exists()
    # As a user runs it: that one line is all stderr holds (no warning of the converter's before it).
    from processes import fresh_python

    done = fresh_python("import sys; from haystack_hardneg.cli import main; sys.exit(main(sys.argv[1:]))",
                        "prepare", str(tmp_path / "corpus.jsonl"), "--labels", str(tmp_path / "labels.csv"),
                        "--out", str(tmp_path / "beir"))
    assert done.returncode == 2 and len([line for line in done.stderr.splitlines() if line.strip()]) == 1, done.stderr


def test_a_query_id_with_a_line_break_is_refused_naming_the_line(tmp_path, capsys):
    labels = b'query,document,query_id\nwhat does the warranty cover,d1,"C\nD"\nhow do I return it,d2,R\n'
    code, errors = _prepare(tmp_path, capsys, GOOD_CORPUS, labels)
    assert code == 2 and len(errors) == 1 and "labels.csv:3: query_id 'C\\nD'" in errors[0], errors
    assert not (tmp_path / "beir").exists()


@pytest.mark.parametrize("grade", ["-1", "99999999999999999999999", "101"])
def test_a_grade_out_of_range_is_refused_in_labels_and_in_qrels(tmp_path, capsys, grade):
    labels = GOOD_LABELS.replace("d3\n", "d3\n").replace("query,document\n", "query,document,grade\n")
    labels = labels.replace("cover,d1\n", "cover,d1,1\n").replace("it,d2\n", "it,d2,1\n")
    labels = labels.replace("cost,d3\n", f"cost,d3,{grade}\n")
    code, errors = _prepare(tmp_path, capsys, GOOD_CORPUS, labels.encode())
    assert code == 2 and len(errors) == 1 and f"labels.csv:4: grade '{grade}' is out of range" in errors[0], errors
    assert not (tmp_path / "beir").exists()
    (tmp_path / "q.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t{grade}\n")
    with pytest.raises(DataError, match=rf"q.tsv:3: grade '{grade}' is out of range"):
        load_qrels(tmp_path / "q.tsv")


def test_a_huge_grade_is_read_exactly_or_refused_never_rounded(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t100\nq1\td2\t1.0\n")
    assert load_qrels(tmp_path / "q.tsv") == {"q1": {"d1": 100, "d2": 1}}


def test_labels_queries_and_qrels_above_the_size_limit_are_refused_before_they_are_read(tmp_path, capsys,
                                                                                       monkeypatch):
    from haystack_hardneg.ingest.beir import load_beir

    size = len(GOOD_LABELS.encode())
    monkeypatch.setenv("HARDNEG_MAX_LABEL_BYTES", str(size - 1))
    code, errors = _prepare(tmp_path, capsys, GOOD_CORPUS, GOOD_LABELS.encode())
    assert code == 2 and len(errors) == 1, errors
    assert f"labels.csv: {size:,} bytes, more than the {size - 1:,}" in errors[0]
    assert "set HARDNEG_MAX_LABEL_BYTES to raise the limit" in errors[0]
    assert not (tmp_path / "beir").exists()
    monkeypatch.setenv("HARDNEG_MAX_LABEL_BYTES", str(size))  # a file at the limit is read
    assert _prepare(tmp_path, capsys, GOOD_CORPUS, GOOD_LABELS.encode()) == (0, [])
    monkeypatch.delenv("HARDNEG_MAX_LABEL_BYTES")
    assert load_beir(tmp_path / "beir", "test").queries  # under the default limit
    for path, read in ((tmp_path / "beir" / "queries.jsonl", load_queries),
                       (tmp_path / "beir" / "qrels" / "test.tsv", load_qrels)):
        limit = path.stat().st_size - 1
        monkeypatch.setenv("HARDNEG_MAX_LABEL_BYTES", str(limit))
        with pytest.raises(DataError, match=rf"{path.name}: [\d,]+ bytes, more than the {limit:,}"):
            read(path)
    monkeypatch.setenv("HARDNEG_MAX_LABEL_BYTES", "lots")
    code, errors = _prepare(tmp_path / "beir", capsys, GOOD_CORPUS, GOOD_LABELS.encode())
    assert code == 2 and errors == ["haystack-hardneg prepare: HARDNEG_MAX_LABEL_BYTES must be a number of bytes, "
                                    "got 'lots'."]


def test_a_utf16_labels_file_is_named(tmp_path, capsys):
    code, errors = _prepare(tmp_path, capsys, GOOD_CORPUS, GOOD_LABELS.encode("utf-16"))
    assert code == 2 and len(errors) == 1 and "labels.csv: not UTF-8 text" in errors[0], errors


def test_a_bad_json_line_says_where_in_the_line(tmp_path):
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "fine"}\n{"_id": "q2", "text": "a\tb"}\n')
    with pytest.raises(DataError, match=r"queries.jsonl:2: not valid JSON \(Invalid control character at column "
                                        r"\d+\)\.$"):
        load_queries(tmp_path / "queries.jsonl")


@pytest.fixture(scope="module")
def cross_encoder_folder(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ce") / "tiny-ce"
    CrossEncoder(tiny_model, num_labels=1).save(str(folder))
    return folder


@pytest.mark.parametrize("stored", [7.0, math.nan, -0.5, "0.5", True])
def test_an_invalid_stored_fusion_weight_is_one_error_naming_the_file(cross_encoder_folder, stored):
    settings = cross_encoder_folder / "hardneg.json"
    settings.write_text(json.dumps({"fusion_alpha": stored}))
    try:
        with pytest.raises(ValueError, match=r"hardneg.json: fusion_alpha must be a number in 0..1 or null") as error:
            CrossEncoderRanker(model=str(cross_encoder_folder)).warm_up()
        assert "\n" not in str(error.value)
    finally:
        settings.unlink()


def test_a_corrupt_settings_file_is_named_and_valid_weights_still_read(cross_encoder_folder):
    settings = cross_encoder_folder / "hardneg.json"
    try:
        settings.write_text('{"fusion_alpha": 0.4')
        with pytest.raises(ValueError, match=r"hardneg.json: not a settings file"):
            CrossEncoderRanker(model=str(cross_encoder_folder)).warm_up()
        for stored, used in ((0.4, 0.4), (1.0, None), (None, None), (0, 0.0)):
            settings.write_text(json.dumps({"fusion_alpha": stored, "first_stage_name": "fs"}))
            ranker = CrossEncoderRanker(model=str(cross_encoder_folder), first_stage="fs")
            ranker.warm_up()
            assert ranker.effective_fusion_alpha == used
    finally:
        settings.unlink()


@pytest.mark.parametrize("given", [None, "cuda"])
def test_the_lexical_member_keeps_jax_off_the_accelerator_unless_told(tmp_path, given):
    # bm25s imports JAX where it is installed, and JAX takes most of a GPU's memory in every process importing it.
    script = ("import os; from haystack_hardneg.store.lexical import LexicalIndex; "
              "LexicalIndex.build(['a', 'b'], ['one pump', 'two pumps'], language=None); "
              "print(os.environ.get('JAX_PLATFORMS'))")
    environment = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    if given:
        environment["JAX_PLATFORMS"] = given
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (given or "cpu")


def test_an_api_key_variable_with_a_local_store_is_refused_not_ignored(fixtures, tiny_model, tmp_path, capsys):
    code = main(["index", str(fixtures / "scifact-tiny"), "--model", tiny_model, "--store", str(tmp_path / "q"),
                 "--api-key-env", "MY_QDRANT_KEY"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("haystack-hardneg")]
    assert code == 2 and len(errors) == 1 and "--api-key-env MY_QDRANT_KEY applies to a Qdrant server" in errors[0]
    assert not (tmp_path / "q").exists()


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("haystack-hardneg")]


def test_indexing_into_a_collection_of_another_dimension_names_the_flag_and_writes_nothing(
        fixtures, tiny_model, tiny_model_b, tmp_path, capsys):
    from haystack_hardneg import open_document_store

    store = str(tmp_path / "q")
    assert main(["index", str(fixtures / "scifact-tiny"), "--model", tiny_model, "--store", store]) == 0
    capsys.readouterr()
    assert main(["index", str(fixtures / "scifact-tiny"), "--model", tiny_model_b, "--store", store]) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and "holds 32-d vectors" in errors[0] and "`index --recreate`" in errors[0], errors
    kept = open_document_store(path=store, index="Document", embedding_dim=32, progress_bar=False)
    try:
        assert kept.count_documents() > 0 and all(len(d.embedding) == 32 for d in kept.filter_documents())
    finally:
        kept.close()


def test_an_unreachable_qdrant_server_is_one_line(fixtures, tiny_model):
    from processes import fresh_python

    # In a process of its own, as a user runs it: stderr holds the one line, and no warning of qdrant-client's
    # before it (pytest would capture that warning here).
    done = fresh_python("import sys; from haystack_hardneg.cli import main; sys.exit(main(sys.argv[1:]))",
                        "index", str(fixtures / "scifact-tiny"), "--model", tiny_model, "--url", "http://127.0.0.1:9")
    assert done.returncode == 2, done.stderr[-2000:]
    # Progress bars (model loading) aside, which a terminal redraws in place.
    lines = [line for line in done.stderr.splitlines() if line.strip() and "it/s]" not in line]
    assert len(lines) == 1 and "cannot reach the Qdrant server at http://127.0.0.1:9" in lines[0], lines


def test_a_yaml_pipeline_naming_a_disallowed_type_is_one_line(tmp_path, capsys):
    (tmp_path / "evil.yml").write_text("components:\n  shell:\n    type: subprocess.Popen\n"
                                       "    init_parameters: {args: [touch, pwned]}\nconnections: []\n")
    assert main(["query", "what is covered?", "--pipeline", str(tmp_path / "evil.yml")]) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and "subprocess" in errors[0], errors
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_truncated_weights_are_one_line_on_export_and_one_error_on_warm_up(cross_encoder_folder, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(cross_encoder_folder, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(["export", str(damaged), "--backend", "onnx"]) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and "the model's weights cannot be read" in errors[0], errors
    assert not (damaged / "onnx").exists()
    with pytest.raises(ValueError, match="the model's weights cannot be read"):
        CrossEncoderRanker(model=str(damaged)).warm_up()


def test_a_max_length_beyond_the_base_models_positions_is_capped_with_a_warning(
        fixtures, tiny_model, trainable_model, tmp_path, capsys, monkeypatch, caplog):
    # It failed deep in torch (an index error, 92 lines) at the first long pair, even under --plan.
    import yaml

    with open(os.path.join(trainable_model, "config.json")) as handle:
        positions = json.load(handle)["max_position_embeddings"]
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    config = {"data": str(fixtures / "scifact-tiny"), "members": [{"model": tiny_model}], "strategies": ["random"],
              "retrieve_k": 20, "rerank_k": 10, "cache_dir": str(tmp_path / "cache"),
              "training": {"base_model": trainable_model, "max_length": positions + 1}}
    (tmp_path / "config.yml").write_text(yaml.safe_dump(config))
    with caplog.at_level("WARNING"):
        code = main(["experiment", str(tmp_path / "config.yml"), "--out", str(tmp_path / "run"), "--plan"])
    assert code == 0 and "About" in capsys.readouterr().out
    assert f"max_length {positions + 1} is above the {positions} positions" in caplog.text
    assert not (tmp_path / "run").exists()


def test_a_label_naming_a_path_outside_the_sources_is_never_opened(tmp_path, capsys):
    secret = tmp_path / "outside" / "secret.html"
    secret.parent.mkdir()
    secret.write_text("<html><body><p>" + "the secret pump manual text " * 20 + "</p></body></html>")
    (tmp_path / "in").mkdir()
    relative = os.path.relpath(secret, tmp_path / "in")
    labels = (f"query,document\nwhat does the warranty cover,d1\nhow do I return it,d2\nis shipping free,d3\n"
              f"what is secret,{relative}\n").encode()
    code, errors = _prepare(tmp_path / "in", capsys, GOOD_CORPUS, labels)
    # Not converted, so not a document: the label names none of the sources given, and is refused as such.
    assert code == 2 and len(errors) == 1 and "name no ingested document" in errors[0], errors
    code = main(["prepare", str(tmp_path / "in" / "corpus.jsonl"), "--labels", str(tmp_path / "in" / "labels.csv"),
                 "--out", str(tmp_path / "in" / "beir"), "--skip-missing"])
    assert code == 0
    written = "".join(p.read_text() for p in (tmp_path / "in" / "beir").rglob("*") if p.is_file())
    assert "secret pump manual" not in written and "secret.html" not in written


FULL_DISK = """
import resource, signal, sys
from haystack_hardneg.files import atomic_write_text
# A disk with no room, as an unprivileged process can have one: a file-size limit (EFBIG, like ENOSPC).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    atomic_write_text(sys.argv[1], "x" * 100_000)
except OSError as error:
    print(error)
"""


def test_a_full_disk_names_the_file_and_leaves_the_previous_output_as_it_was(tmp_path):
    from processes import fresh_python

    target = tmp_path / "results.json"
    target.write_text('{"previous": true}')
    done = fresh_python(FULL_DISK, str(target))
    message = done.stdout.strip()
    assert str(target) in message and "while writing 100,000 bytes" in message and "free some space" in message
    assert target.read_text() == '{"previous": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file left


FULL_STORE = r"""
import contextlib, io, json, resource, signal, subprocess, sys
from haystack_hardneg import open_document_store
from haystack_hardneg.cli import main

how, store, corpus, model, cache = sys.argv[1:6]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us


def room(size):
    # A real full disk: a tmpfs of that size (in a user and mount namespace of our own); or, where a process may
    # not have one, a file-size limit, which SQLite meets the same way, a write cut short.
    if how == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"{'remount,' if size > 200_000 else ''}size={size}", "tmpfs",
                        store.rsplit("/", 1)[0]], check=True)
    else:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))


def index():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["index", corpus, "--model", model, "--store", store, "--cache-dir", cache])
    return code, [line for line in err.getvalue().splitlines() if line.startswith("haystack-hardneg")]


def held():
    kept = open_document_store(path=store, index="Document", embedding_dim=32, progress_bar=False)
    try:
        return sorted([d.id, [round(x, 5) for x in d.embedding]] for d in kept.filter_documents())
    finally:
        kept.close()


room(160_000 if how == "tmpfs" else 60_000)
first = index()
after_first = held()
room(8_000_000 if how == "tmpfs" else resource.RLIM_INFINITY)
second = index()
print(json.dumps({"first": first, "after_first": len(after_first), "second": second, "held": held()}))
"""


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.parametrize("how", ["tmpfs", "file-size limit"])
def test_indexing_onto_a_full_disk_is_one_line_saying_what_is_held_and_a_rerun_completes_it(
        fixtures, tiny_model, tmp_path, how):
    from processes import fresh_python

    if how == "tmpfs" and not _unshare_works():
        pytest.skip("no user namespaces here to mount a small tmpfs; the file-size limit case covers the code")
    corpus, cache = str(fixtures / "scifact-tiny"), str(tmp_path / "cache")
    # The reference, on a disk with room (it also fills the embedding cache, so the runs below write only Qdrant).
    assert main(["index", corpus, "--model", tiny_model, "--store", str(tmp_path / "clean"), "--cache-dir", cache]) == 0
    reference = open_document_store_ids(tmp_path / "clean")
    (tmp_path / "small").mkdir()
    store = str(tmp_path / "small" / "q")
    command = ["unshare", "-rm", sys.executable, "-c", FULL_STORE] if how == "tmpfs" else None
    args = [how, store, corpus, tiny_model, cache]
    done = (subprocess.run([*command, *args], capture_output=True, text=True, timeout=300) if command
            else fresh_python(FULL_STORE, *args))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    code, errors = result["first"]
    assert code == 2 and len(errors) == 1, errors
    assert f"now holds {result['after_first']} document(s), 0 before this write" in errors[0], errors
    assert "Free some space and run the same command again" in errors[0] and store in errors[0]
    assert 0 < result["after_first"] < len(reference)
    assert result["second"] == [0, []]
    assert result["held"] == reference  # the same documents and vectors as an index that never ran out of room


def open_document_store_ids(path) -> list:
    from haystack_hardneg import open_document_store

    kept = open_document_store(path=str(path), index="Document", embedding_dim=32, progress_bar=False)
    try:
        return sorted([d.id, [round(x, 5) for x in d.embedding]] for d in kept.filter_documents())
    finally:
        kept.close()
