"""A smaller student re-ranker distilled from a fine-tuned one, against it on held-out test queries.

The student keeps ``--layers`` of the teacher's transformer layers (evenly spaced, the last kept; its own head),
and learns the teacher's scores of the mined rows the teacher was trained on (margin MSE, ``train --teacher-model
--keep-layers``) and, with ``--distill-candidates K``, of each training query's first-stage top K (where the mined
rows are few), validated on the same first-stage candidates (cut to ``--rerank-k``). Both then re-rank each
test query's first-stage top ``--rerank-k`` on torch: nDCG@10 of each alone, fused with the first stage at each
model's stored weight (what ``fusion_alpha="auto"`` applies) and at the teacher's best validation weight for both
(the same interpolation, so that only the model differs) and at each model's own best validation weight (what
the experiment's comparison of strategies uses), each student against the teacher by a paired t-test. With
``--exports``, every model also re-ranks through each export (made in its folder, not made its default) and each
such row is tested against the teacher on torch: what a served student loses, quantisation included.

    python benchmarks/student_vs_teacher.py --teacher runs/semeval/train/cluster_pair/model \\
        --triplets runs/semeval/mine/cluster_pair/triplets.jsonl \\
        --validation-candidates runs/semeval/first_stage/train_candidates.jsonl \\
        --test-candidates runs/semeval/first_stage/test_candidates.jsonl \\
        --data benchmarks/semeval-cqa/data --layers 3 2 --max-length 128 --exports onnx-int8 \\
        --out benchmarks/semeval-cqa/student.json
    python benchmarks/student_vs_teacher.py --teacher runs/experiment-scifact/train/ensemble_cluster/model \\
        --triplets runs/experiment-scifact/mine/ensemble_cluster/triplets.jsonl \\
        --validation-candidates runs/experiment-scifact/first_stage/train_candidates.jsonl \\
        --test-candidates runs/experiment-scifact/first_stage/test_candidates.jsonl --data examples/data/scifact \\
        --layers 3 2 --max-length 256 --epochs 1 --precision bf16 --distill-candidates 30 --exports onnx-int8 \\
        --out benchmarks/scifact/student.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rerank_latency import EXPORTS  # the export variants, named as the latency benchmark names them

from haystack_hardneg import ExportConfig, export_model
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.evaluate.significance import paired_test_on_values
from haystack_hardneg.experiment.environment import machine, versions
from haystack_hardneg.files import atomic_write_text, read_jsonl
from haystack_hardneg.ingest.beir import load_qrels
from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.mine.triplets import load_triplets
from haystack_hardneg.rank.runtime import ExportedCrossEncoder
from haystack_hardneg.scoring.fusion import fuse
from haystack_hardneg.scoring.settings import read_ranker_settings
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.heads import load_torch_cross_encoder
from haystack_hardneg.train.trainer import train_cross_encoder

VIEWS = ("alone", "fused, own stored weight", "fused, teacher's best validation weight",
         "fused, own best validation weight")


def validation_top(args) -> list[dict]:
    """The validation candidates cut to ``--rerank-k``, as the experiment gives its re-rankers theirs (the first
    stage's candidates file holds its whole retrieval depth)."""
    return [dict(r, candidates=r["candidates"][: args.rerank_k]) for r in load_candidates(args.validation_candidates)]


def train_student(args, layers: int, candidates: list[dict]) -> tuple[str, float]:
    """The student's model folder (trained, or resumed where a run was cut short) and its training seconds."""
    out = args.work / f"student-{layers}"
    config = TrainingConfig(base_model=args.teacher, teacher_model=args.teacher, keep_layers=layers,
                            loss="margin_mse", label_weight=args.label_weight, epochs=args.epochs,
                            batch_size=args.batch_size, encoder_lr=args.lr, max_length=args.max_length,
                            precision=args.precision, distill_candidates=args.distill_candidates,
                            validation_fraction=args.validation_fraction, seed=args.seed,
                            output_dir=str(out),
                            strategy=f"student ({layers} layers)")
    if (out / "model" / "config.json").is_file() and (out / "student_run.json").is_file():
        return str(out / "model"), json.loads((out / "student_run.json").read_text())["seconds"]
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = train_cross_encoder(load_triplets(args.triplets), config, resume=(out / "checkpoints").is_dir(),
                                 candidates=candidates)
    seconds = time.perf_counter() - started
    atomic_write_text(out / "student_run.json", json.dumps({"seconds": seconds, "steps": report["steps"]}))
    return str(out / "model"), seconds


def raw_scores(model_dir: str, records: list[dict], k: int, max_length: int,
               export: dict | None = None) -> list[np.ndarray]:
    """Each record's top ``k`` scored by the model on torch, or through ``export`` (a record of ``export_model``)."""
    import torch

    pairs = [(r["query"], c["text"]) for r in records for c in r["candidates"][:k]]
    if export is None:
        model = load_torch_cross_encoder(model_dir, device="cpu", max_length=max_length)
        flat = model.predict(pairs, batch_size=32, activation_fn=torch.nn.Identity(), convert_to_numpy=True,
                             show_progress_bar=True)
    else:
        flat = ExportedCrossEncoder(model_dir, export["backend"], file_name=export["file_name"],
                                    max_length=max_length).predict(pairs)
    bounds = np.cumsum([0, *(len(r["candidates"][:k]) for r in records)])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def export_record(folder: str, export: str) -> dict:
    """The export ``export`` of the model in ``folder`` (written there, not made its default) with its quality
    gate on the model's validation candidates; speed is timed by rerank_latency.py, not here."""
    record = export_model(ExportConfig(model_dir=folder, make_default=False, min_speedup=0.0, **EXPORTS[export]),
                          log=lambda message: print(f"  {message}", flush=True))
    return {"file_name": record["file_name"], "gate": record["gate"]}


def best_validation_alpha(settings: dict) -> float:
    """The fusion weight that scored best on the model's validation queries, shipped or not (0 where none was
    chosen)."""
    return float(settings.get("argmax_alpha", settings.get("fusion_alpha") or 0.0))


def run_of(records: list[dict], k: int, scores: list[np.ndarray] | None, alpha: float | None) -> dict:
    """{query id: {doc id: score}}: the first stage's order (``scores`` None), the model alone (``alpha`` None)
    or fused at ``alpha``."""
    run = {}
    for record, own in zip(records, scores or [None] * len(records)):
        candidates = record["candidates"][:k]
        first = np.array([c["score"] for c in candidates], dtype=np.float64)
        values = first if own is None else own if alpha is None else fuse(own, first, alpha)
        run[record["query_id"]] = {c["id"]: float(v) for c, v in zip(candidates, values)}
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--triplets", type=Path, required=True)
    parser.add_argument("--validation-candidates", type=Path, required=True)
    parser.add_argument("--test-candidates", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the BEIR folder with the test qrels")
    parser.add_argument("--split", default="test")
    parser.add_argument("--layers", type=int, nargs="+", default=[3])
    parser.add_argument("--rerank-k", type=int, default=30)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--label-weight", type=float, default=0.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="the students' training precision (bf16 where the CPU has bf16 instructions)")
    parser.add_argument("--exports", nargs="*", default=[], choices=list(EXPORTS),
                        help="also re-rank through these exports of every model (the students' target backends)")
    parser.add_argument("--distill-candidates", type=int, default=0, metavar="K",
                        help="also learn the teacher's scores of each training query's first-stage top K "
                             "(from --validation-candidates); 0: the mined rows only")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/student"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.teacher = str(Path(args.teacher).expanduser())

    qrels = load_qrels(args.data / "qrels" / f"{args.split}.tsv")
    records = [r for r in read_jsonl(args.test_candidates) if r["query_id"] in qrels]
    qrels = {r["query_id"]: qrels[r["query_id"]] for r in records}
    common_alpha = best_validation_alpha(read_ranker_settings(args.teacher))
    candidates = validation_top(args)
    models = {"teacher": (args.teacher, None)}
    for layers in args.layers:
        models[f"student-{layers}"] = train_student(args, layers, candidates)
    per_query, summary = {}, {}
    first = run_of(records, args.rerank_k, None, None)
    per_query["first stage"] = evaluate_run(qrels, first, ["ndcg@10"], per_query=True)["ndcg@10"]
    compared = {}  # row name -> the teacher's row it is tested against
    for name, (folder, seconds) in models.items():
        settings = read_ranker_settings(folder)
        stored, own_best = settings.get("fusion_alpha"), best_validation_alpha(settings)
        exports = {export: export_record(folder, export) for export in args.exports}
        for served in [None, *exports]:
            scores = raw_scores(folder, records, args.rerank_k, args.max_length,
                                None if served is None else {**EXPORTS[served], **exports[served]})
            label = name if served is None else f"{name} [{served}]"
            for view, alpha in zip(VIEWS, (None, stored, common_alpha, own_best)):
                run = run_of(records, args.rerank_k, scores, alpha)
                per_query[f"{label} {view}"] = evaluate_run(qrels, run, ["ndcg@10"], per_query=True)["ndcg@10"]
                if label != "teacher":
                    compared[f"{label} {view}"] = f"teacher {view}"
        summary[name] = {"model": folder, "training_seconds": seconds, "stored_fusion_alpha": stored,
                         "best_validation_alpha": own_best,
                         "layers": json.loads(Path(folder, "config.json").read_text())["num_hidden_layers"],
                         "exports": exports}
    queries = list(qrels)
    results = {"machine": machine(), "versions": versions(), "teacher": args.teacher, "queries": len(queries),
               "rerank_k": args.rerank_k, "common_alpha": common_alpha, "settings": {
                   k: str(v) for k, v in vars(args).items()}, "models": summary,
               "ndcg@10": {name: float(np.mean([values[q] for q in queries])) for name, values in per_query.items()},
               "student_vs_teacher": {}}
    for row, reference in compared.items():
        results["student_vs_teacher"][row] = paired_test_on_values(per_query[row], per_query[reference], queries)
    atomic_write_text(args.out, json.dumps(results, indent=2))
    print(json.dumps({"ndcg@10": results["ndcg@10"], "vs teacher": results["student_vs_teacher"]}, indent=1))


if __name__ == "__main__":
    main()
