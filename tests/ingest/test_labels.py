"""From a folder of HTML pages and a labels file people write to the BEIR folder every job reads."""

import json
import shutil
from pathlib import Path

import pytest

from haystack_hardneg.cli import main
from haystack_hardneg.ingest.beir import DataError, load_beir
from haystack_hardneg.ingest.components import CorpusConverter
from haystack_hardneg.ingest.labels import join_labels, load_labels

FIXTURES = Path(__file__).parents[1] / "fixtures"
TOPICS = {
    "warranty": "Every dishwasher carries a five-year warranty on the pump and the motor when a defect causes the "
                "fault.",
    "returns": "Unused appliances can be returned within thirty days for a full refund with the original receipt.",
    "delivery": "Large appliances are delivered within five working days and the old machine is taken away free.",
    "repairs": "A technician visits within two days to repair a machine under warranty at no cost to the owner.",
}


@pytest.fixture
def site(tmp_path):
    """A folder of HTML pages (one in a subfolder) and a stray non-HTML file."""
    folder = tmp_path / "docs"
    for name, text in TOPICS.items():
        page = folder / ("help" if name == "repairs" else "") / f"{name}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<html><head><title>{name.title()}</title></head><body><main><article><h1>{name.title()}"
                        f"</h1><p>{text} {text}</p></article></main></body></html>")
    (folder / "notes.txt").write_text("not a page")
    (folder / ".git").mkdir()
    (folder / ".git" / "hidden.html").write_text("<html><body><p>never read</p></body></html>")
    return folder


def test_a_folder_is_read_page_by_page_and_each_page_is_named_by_its_path(site):
    result = CorpusConverter().run(sources=[str(site)])
    ids = sorted(d.id for d in result["documents"])
    assert ids == sorted([str(site / "delivery.html"), str(site / "help" / "repairs.html"),
                          str(site / "returns.html"), str(site / "warranty.html")])
    assert [f["source"] for f in result["failures"]] == [str(site / "notes.txt")]
    assert "only .html" in result["failures"][0]["error"]
    # A BEIR folder inside a folder is read as one corpus (not its queries.jsonl as documents).
    shutil.copytree(FIXTURES / "scifact-tiny", site / "corpus")
    with_corpus = CorpusConverter().run(sources=[str(site)])
    assert len(with_corpus["documents"]) == 4 + 40 and len(with_corpus["failures"]) == 1
    shutil.rmtree(site / "corpus")
    failed = CorpusConverter().run(sources=["ftp://example.com/page.html"])["failures"][0]["error"]
    assert "unsupported URL scheme" in failed


def _labels(path, rows: list[str], header: str = "query,document,grade"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_labels_join_ingested_pages_by_path_and_prepare_writes_a_beir_folder(site, tmp_path, capsys):
    labels = _labels(tmp_path / "labels.csv", [
        f"how long is the warranty?,{site}/warranty.html,2",
        f"how long is the warranty?,{site}/help/repairs.html,1",
        f"can I return a dishwasher?,{site / 'returns.html'},",  # no grade: 1
        f"when is my fridge delivered?,{site}/delivery.html,2",
        f"who repairs a broken machine?,{site}/help/../help/repairs.html,2",  # the same file, another spelling
        f"who repairs a broken machine?,{site}/warranty.html,0",
    ])
    out = tmp_path / "beir"
    assert main(["prepare", str(site), "--labels", str(labels), "--out", str(out), "--test-fraction", "0.25"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"] == 4 and summary["train_queries"] == 3 and summary["test_queries"] == 1
    assert summary["grades"] == {"0": 1, "1": 2, "2": 3} and summary["unknown_judgements"] == 0
    train, test = load_beir(out, "train"), load_beir(out, "test")
    judged = {**train.qrels, **test.qrels}
    queries = {**train.queries, **test.queries}
    by_text = {text: judged[q] for q, text in queries.items()}
    assert by_text["how long is the warranty?"] == {str(site / "warranty.html"): 2,
                                                    str(site / "help" / "repairs.html"): 1}
    assert by_text["who repairs a broken machine?"] == {str(site / "help" / "repairs.html"): 2,
                                                        str(site / "warranty.html"): 0}
    assert {d.id for d in train.corpus} == {str(p) for p in site.rglob("*.html") if ".git" not in p.parts}


def test_bad_labels_name_file_and_line(site, tmp_path, capsys):
    bad_grade = _labels(tmp_path / "inf.csv", [f"q one,{site}/warranty.html,2", f"q two,{site}/returns.html,inf"])
    assert main(["prepare", str(site), "--labels", str(bad_grade), "--out", str(tmp_path / "x")]) == 2
    assert f"{bad_grade}:3: grade 'inf'" in capsys.readouterr().err
    no_header = _labels(tmp_path / "noheader.csv", [f"q one,{site}/warranty.html,2"], header="q,doc,grade")
    with pytest.raises(DataError, match=r"noheader.csv:1: the header must name the columns query and document"):
        load_labels(no_header)
    unknown = _labels(tmp_path / "unknown.tsv", [f"q one\t{site}/warranty.html\t1", "q two\tmissing.html\t1",
                                                 f"q three\t{site}/returns.html\t1"], header="query\tdocument\tgrade")
    documents = CorpusConverter().run(sources=[str(site)])["documents"]
    with pytest.raises(DataError, match=r"1 label\(s\) name no ingested document.*unknown.tsv:3: 'missing.html'"):
        join_labels(load_labels(unknown), documents)
    assert main(["prepare", str(site), "--labels", str(unknown), "--out", str(tmp_path / "y"), "--skip-missing"]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_judgements"] == 1
    one = _labels(tmp_path / "one.csv", [f"q one,{site}/warranty.html,1"])
    assert main(["prepare", str(site), "--labels", str(one), "--out", str(tmp_path / "z")]) == 2
    assert "a train and a test split need at least two" in capsys.readouterr().err
    comma = _labels(tmp_path / "comma.csv", [f"where, and when?,{site}/warranty.html,1"])
    with pytest.raises(DataError, match=r"comma.csv:2: more fields than the header names; put a query"):
        load_labels(comma)
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffquery,document\nq,d\n".encode("utf-8"))
    assert [(label.query, label.document, label.grade) for label in load_labels(bom)] == [("q", "d", 1)]
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(json.dumps({"query": "q", "document": "d", "grade": 1, "note": "x"}) + "\n")
    with pytest.raises(DataError, match=r"labels.jsonl:1: unknown column\(s\) \['note'\]"):
        load_labels(jsonl)


def test_labels_name_web_pages_by_url(tmp_path):
    from haystack import Document

    pages = [Document(id="https://example.com/warranty", content="warranty text",
                      meta={"source": "https://example.com/warranty"}),
             Document(id="abc", content="manual", meta={"source": "https://example.com/manual.html"})]
    # A URL that is a document's id, and one that is only its source.
    labels = load_labels(_labels(tmp_path / "labels.csv", ["warranty?,https://example.com/warranty,2",
                                                            "manual?,https://example.com/manual.html,1"]))
    queries, qrels = join_labels(labels, pages)
    assert qrels == {"q1": {"https://example.com/warranty": 2}, "q2": {"abc": 1}}
    assert queries == {"q1": "warranty?", "q2": "manual?"}
