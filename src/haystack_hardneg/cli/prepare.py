"""``prepare``: your documents (HTML folders, URLs, JSONL) and your labels file into the BEIR folder that ``mine``,
``train`` and ``experiment`` read."""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from haystack_hardneg.ingest.beir import DataError, LoadStats
from haystack_hardneg.ingest.labels import join_labels, load_labels, split_queries, write_beir_folder
from haystack_hardneg.pipelines import prepared_pipeline, whole_document_chunker


def add_prepare_parser(commands) -> None:
    prepare = commands.add_parser("prepare", help="your documents and a labels file into a BEIR folder")
    prepare.add_argument("sources", nargs="+", help="URLs, HTML files, folders of them, JSONL files or BEIR folders")
    prepare.add_argument("--labels", type=Path, required=True,
                         help="CSV, TSV or JSONL with columns query, document (id, URL or path) and optional grade")
    prepare.add_argument("--out", type=Path, required=True, help="the BEIR folder to write")
    prepare.add_argument("--test-fraction", type=float, default=0.2,
                         help="share of the labelled queries kept for testing (qrels/test.tsv)")
    prepare.add_argument("--seed", type=int, default=0, help="seeds the train/test split")
    prepare.add_argument("--skip-missing", action="store_true", help="drop and count labels naming no document")
    prepare.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    labels = load_labels(args.labels)  # first: a bad labels file fails before any page is converted
    converted = _preparation_run(args.sources)
    documents, failures = converted["chunker"]["documents"], converted["converter"]["failures"]
    duplicates = sorted(d for d, n in Counter(d.id for d in documents).items() if n > 1)
    if duplicates:
        raise DataError(f"{len(duplicates)} document id(s) come from more than one source (a file given twice, or "
                        f"both alone and in its folder?), e.g. {duplicates[:3]}.")
    stats = LoadStats()
    queries, qrels = join_labels(labels, documents, on_missing="skip" if args.skip_missing else "error", stats=stats)
    # A query judged only not relevant has nothing to learn or measure from: it is counted, not split.
    judged = [q for q, grades in qrels.items() if any(g > 0 for g in grades.values())]
    train, test = split_queries(judged, args.test_fraction, args.seed)
    write_beir_folder(args.out, documents, {q: queries[q] for q in qrels},
                      {"train": {q: qrels[q] for q in train}, "test": {q: qrels[q] for q in test}})
    grades = Counter(g for judged in qrels.values() for g in judged.values())
    print(json.dumps({"documents": len(documents), "train_queries": len(train), "test_queries": len(test),
                      "judgements": sum(grades.values()), "grades": dict(sorted(grades.items())),
                      "unknown_judgements": stats.unknown_judgements,
                      "queries_without_positives": len(qrels) - len(judged),
                      "failed_sources": failures, "out": str(args.out)}, indent=2))
    return 0


def _preparation_run(sources: list[str]) -> dict:
    """The converter's documents and failures and the cleaned documents, as the indexing pipeline makes them. A
    corpus file (JSONL or BEIR) that cannot be read is bad input, one error; a page that fails is listed in the
    summary's ``failed_sources`` (the converter's per-source warnings are left out: the summary has them)."""
    converter_log = logging.getLogger("haystack_hardneg.ingest.components")
    level = converter_log.level
    converter_log.setLevel(logging.ERROR)
    try:
        result = prepared_pipeline(chunker=whole_document_chunker()).run(
            {"converter": {"sources": sources}}, include_outputs_from={"converter"})
    finally:
        converter_log.setLevel(level)
    for failure in result["converter"]["failures"]:
        source = Path(failure["source"])
        if source.suffix.lower() == ".jsonl" or (source / "corpus.jsonl").is_file():
            raise DataError(failure["error"].split(": ", 1)[-1])
    return result
