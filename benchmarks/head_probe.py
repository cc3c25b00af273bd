"""Which scoring head for an encoder base? (validation only, never the test queries)

Trains the ensemble_cluster re-ranker of the SciFact experiment afresh with the trainer's defaults (2 epochs,
triplet loss, head 2e-3 / encoder 5e-5) and the given head, validating after each epoch on the held-out training
queries' dense-ensemble top 30 (`mine/candidates.jsonl`), the slice on which the [CLS] classifier head reached
0.459 / 0.706 nDCG@10 after epochs 1 / 2 (first stage 0.791). Writes benchmarks/scifact/head_probe_<head>.json.

    python benchmarks/head_probe.py --head mean [--loss triplet] [--epochs 2] [--precision bf16]
"""

import argparse
import json
import time
from pathlib import Path

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.mine.triplets import load_triplets
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.trainer import train_cross_encoder

RUN = Path("runs/experiment-scifact")

parser = argparse.ArgumentParser()
parser.add_argument("--head", default="mean")
parser.add_argument("--loss", default="triplet")
parser.add_argument("--epochs", type=float, default=2.0)
parser.add_argument("--precision", default="fp32")
args = parser.parse_args()
name = f"{args.head}_{args.loss}_{args.epochs:g}ep" + ("" if args.precision == "fp32" else f"_{args.precision}")
training = {**json.loads((RUN / "config.json").read_text())["training"], "epochs": args.epochs,
            "head": args.head, "loss": args.loss, "precision": args.precision}
config = TrainingConfig(output_dir=f"runs/probe-head-{name}", strategy="ensemble_cluster", seed=0, **training)
started = time.perf_counter()
report = train_cross_encoder(load_triplets(RUN / "mine/ensemble_cluster/triplets.jsonl"), config, resume=True,
                             candidates=load_candidates(RUN / "mine/candidates.jsonl"))
curve = [(h["epoch"], h["eval_validation_ndcg@10"]) for h in report["history"] if "eval_validation_ndcg@10" in h]
result = {"head": report["head"], "loss": args.loss, "epochs": args.epochs, "precision": args.precision,
          "training_seconds": round(time.perf_counter() - started, 1), "validation_curve_ndcg@10": curve,
          "fusion": {k: report["fusion"][k] for k in ("first_stage", "reranker_alone", "best_alpha", "best")},
          "machine": machine()}
atomic_write_text(Path(f"benchmarks/scifact/head_probe_{name}.json"), json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
