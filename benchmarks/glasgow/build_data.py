"""Three classic test collections, Cranfield (aeronautics), CISI (library science) and MED (medicine), as one BEIR
folder: queries with many judged-relevant documents each (about 7, 41 and 23 on average), small corpora.

Source: the Glasgow IR test collections (ir.dcs.gla.ac.uk/resources/test_collections; Cleverdon's Cranfield 1400,
CISI, MEDLINE), distributed free for research, as copied into github.com/lailaglez/belief-network-irs at commit
9094e4cde738bd93ed1747dc958b5acb0e0fa684 (`cran/`, `med/`, and CISI from the packed `cisi/cisi.tar.gz`; MIT licence
for that repository's code).

    git clone https://github.com/lailaglez/belief-network-irs glasgow
    git -C glasgow checkout 9094e4cde738bd93ed1747dc958b5acb0e0fa684
    python benchmarks/glasgow/build_data.py glasgow/.git benchmarks/glasgow/data

Documents: `.T` as the title, `.W` as the text (MED has no title; two without a text are left out); ids
prefixed by the collection (`cran-12`), so the three corpora are one corpus and each query's negatives can come
from any of them. Queries: `.W`; Cranfield's
are numbered by their order in the file, as its judgements number them. Grades: Cranfield's relevance codes
(Cleverdon: 1 a complete answer ... 4 of minimum interest) become 4 .. 1, its -1 rows (one per query, always
document 485 or 486, a known artefact) are left out; CISI and MED are binary (1). Queries without a judged document
are left out. Split: per collection, a seeded shuffle (13) of its queries, 60 % train, 40 % test.
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path

FIELD = re.compile(r"^\.([A-Z])\b ?(.*)$")


def _show(git_dir: str, path: str) -> str:
    """A file of the repository's HEAD, or ``ARCHIVE!MEMBER``: a member of a .tar.gz there (the distribution as it
    was packed: the repository's unpacked CISI.QRY lacks most queries)."""
    archive, _, member = path.partition("!")
    raw = subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{archive}"], check=True,
                         capture_output=True).stdout
    if member:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as packed:
            raw = packed.extractfile(member).read()
    return raw.decode("utf-8", errors="replace")


def records(text: str) -> list[tuple[str, dict[str, str]]]:
    """The ``.I`` records of a SMART-format file: (number, {field letter: text})."""
    found: list[tuple[str, dict[str, str]]] = []
    field = None
    for line in text.splitlines():
        match = FIELD.match(line)
        if match and match.group(1) == "I":
            found.append((match.group(2).strip(), {}))
            field = None
        elif match:
            field = match.group(1)
            found[-1][1].setdefault(field, "")
        elif found and field:
            found[-1][1][field] += line.strip() + " "
    return [(number, {k: " ".join(v.split()) for k, v in fields.items()}) for number, fields in found]


def collection(git_dir: str, name: str, files: tuple[str, str, str]):
    # Two Cranfield records have a title and no text (471, 995): left out, with their one judgement, since a
    # passage without text is not a document the pipeline indexes.
    documents = {f"{name}-{int(n)}": {"title": f.get("T", ""), "text": f["W"]}
                 for n, f in records(_show(git_dir, files[0])) if f.get("W")}
    raw_queries = records(_show(git_dir, files[1]))
    # Cranfield's judgements number the queries by their order in the file, not by their .I numbers.
    queries = {f"{name}-{position + 1 if name == 'cran' else int(n)}": f.get("W", "")
               for position, (n, f) in enumerate(raw_queries)}
    qrels: dict[str, dict[str, int]] = {}
    for line in _show(git_dir, files[2]).splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        query, document = f"{name}-{int(parts[0])}", f"{name}-{int(parts[1])}"
        if name == "cran":
            code = int(parts[2])
            if code < 1:
                continue
            grade = 5 - code
        else:
            grade = 1
        if query in queries and document in documents:
            qrels.setdefault(query, {})[document] = max(grade, qrels.get(query, {}).get(document, 0))
    return documents, {q: t for q, t in queries.items() if q in qrels}, qrels


COLLECTIONS = {"cran": ("cran/cran.all.1400", "cran/cran.qry", "cran/cranqrel"),
               "cisi": ("cisi/cisi.tar.gz!CISI.ALL", "cisi/cisi.tar.gz!CISI.QRY", "cisi/cisi.tar.gz!CISI.REL"),
               "med": ("med/MED.ALL", "med/MED.QRY", "med/MED.REL")}


def main(git_dir: str, out: str) -> None:
    folder = Path(out)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    corpus, queries, splits = {}, {}, {"train": {}, "test": {}}
    for name, files in COLLECTIONS.items():
        documents, found, qrels = collection(git_dir, name, files)
        corpus.update(documents)
        queries.update(found)
        order = sorted(found)
        random.Random(13).shuffle(order)
        cut = round(len(order) * 0.6)
        for split, ids in (("train", order[:cut]), ("test", order[cut:])):
            splits[split].update({q: qrels[q] for q in ids})
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, doc in corpus.items():
            f.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for query_id, text in queries.items():
            f.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    for split, qrels in splits.items():
        with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for query_id, judged in qrels.items():
                f.writelines(f"{query_id}\t{d}\t{g}\n" for d, g in judged.items())
    pairs = sum(len(j) for s in splits.values() for j in s.values())
    print(f"{len(corpus)} documents, {len(splits['train'])} train and {len(splits['test'])} test queries, "
          f"{pairs} judged pairs ({pairs / len(queries):.1f} per query) -> {folder}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
