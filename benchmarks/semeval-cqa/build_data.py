"""SemEval-2016 Task 3, subtask A (Qatar Living forum: a question and its thread's comments, each judged Good,
PotentiallyUseful or Bad) as a BEIR folder: graded labels, about six judged-relevant comments per question, long
questions and short comments.

Source: the public repository github.com/chaobotic-vasu/Community-Question-Answering, commit
9febaf7498b0d4d262e9ad4aa424557e336b3133, files `dataset/Subtask A/VAL-BASE.csv` and `TEST-BASE.csv` (the task's
official training file is not in that copy). The repository's licence (MIT) covers its code; the data is the
SemEval-2016 task's, for research use (Nakov et al., SemEval-2016 Task 3).

    git clone https://github.com/chaobotic-vasu/Community-Question-Answering cqa
    git -C cqa checkout 9febaf7498b0d4d262e9ad4aa424557e336b3133
    python benchmarks/semeval-cqa/build_data.py cqa/.git benchmarks/semeval-cqa/data

Queries: one per distinct question (subject and body). Documents: the distinct comment texts. Grades: Good 2,
PotentiallyUseful 1, Bad 0 (the higher one when a comment is judged twice for a question). Questions without a
Good comment are left out. Split: a seeded shuffle (13) of the questions, 70 % train, 30 % test. Ids are short
hashes of the texts, so that the same text always gets the same id.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import subprocess
import sys
from pathlib import Path

GRADES = {"Good": 2, "PotentiallyUseful": 1, "Bad": 0}
FILES = ("VAL-BASE.csv", "TEST-BASE.csv")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(text.encode()).hexdigest()[:12]


def read(git_dir: str) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    documents, queries, qrels = {}, {}, {}
    for name in FILES:
        raw = subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:dataset/Subtask A/{name}"],
                             capture_output=True, text=True, check=True).stdout
        for row in csv.DictReader(io.StringIO(raw)):
            comment = _norm(row["answer"])
            if not comment:
                continue
            question = (_norm(row["feature"]) + " " + _norm(row["question"])).strip()
            query_id, doc_id = _id("q", question), _id("d", comment)
            queries[query_id], documents[doc_id] = question, comment
            judged = qrels.setdefault(query_id, {})
            judged[doc_id] = max(judged.get(doc_id, 0), GRADES[row["labels"]])
    return documents, queries, qrels


def main(git_dir: str, out: str) -> None:
    documents, queries, qrels = read(git_dir)
    kept = sorted(q for q, judged in qrels.items() if max(judged.values()) == 2)
    random.Random(13).shuffle(kept)
    cut = round(0.7 * len(kept))
    folder = Path(out)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": documents[d]}) + "\n"
                                                 for d in sorted(documents)))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": queries[q]}) + "\n"
                                                  for q in sorted(kept)))
    for split, ids in (("train", kept[:cut]), ("test", kept[cut:])):
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q in sorted(ids)
                                                   for d, g in sorted(qrels[q].items())]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    print(f"{len(documents)} documents, {cut} train and {len(kept) - cut} test queries -> {folder}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
