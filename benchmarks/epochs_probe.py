"""Does the ensemble_cluster re-ranker keep improving past 2 epochs? (validation only, never the test queries)

Run from the repository root after the SciFact experiment trained ensemble_cluster for 2 epochs: continues that
run to 4 epochs from its 2-epoch checkpoint (the learning-rate schedule is then the 4-epoch one from step 204 on,
so this is a probe, not a fresh 4-epoch run) and prints the validation curve and the fusion sweep. It validates on
the dense ensemble's top 30 (`mine/candidates.jsonl`, written by the experiment).

    python benchmarks/epochs_probe.py
"""

import json
import shutil
from pathlib import Path

from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.mine.triplets import load_triplets
from haystack_hardneg.train.config import TrainingConfig, reads_teacher_scores
from haystack_hardneg.train.trainer import train_cross_encoder

RUN = Path("runs/experiment-scifact")
PROBE = Path("runs/probe-4epochs")

if not PROBE.exists():
    shutil.copytree(RUN / "train/ensemble_cluster/checkpoints", PROBE / "checkpoints")
training = {**json.loads((RUN / "config.json").read_text())["training"], "epochs": 4}
config = TrainingConfig(output_dir=str(PROBE), strategy="ensemble_cluster", seed=0, **training)
triplets = load_triplets(RUN / "mine/ensemble_cluster/triplets.jsonl",
                         teacher_scores=reads_teacher_scores(config.loss))
report = train_cross_encoder(triplets, config, resume=True,
                             candidates=load_candidates(RUN / "mine/candidates.jsonl"))
curve = [(h["step"], h["eval_validation_ndcg@10"]) for h in report["history"] if "eval_validation_ndcg@10" in h]
fusion = {k: report["fusion"][k] for k in ("first_stage", "reranker_alone", "best_alpha", "best")}
print(json.dumps({"curve": curve, "fusion": fusion}, indent=2))
