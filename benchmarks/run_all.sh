#!/usr/bin/env bash
# Every SciFact benchmark in sequence (2 CPU cores: one heavy job at a time). Logs in runs/bench-logs/.
# Order: the timed benchmarks first, then mining, training and re-ranking, then the full experiment (hours on
# 2 cores; it resumes where it stopped when run again).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${HARDNEG_MODELS:-$HOME/.cache/hardneg-models}
D=${SCIFACT:-examples/data/scifact}
mkdir -p runs/bench-logs
step() { echo "== $(date +%T) $1"; }
if [ "${SKIP_RETRIEVAL:-0}" != 1 ]; then
  step retrieval;    python benchmarks/scifact_retrieval.py --data "$D" --models "$M" > runs/bench-logs/retrieval.log 2>&1
fi
step embedding-speed; python benchmarks/embedding_speed.py --data "$D" --models "$M" > runs/bench-logs/embedding_speed.log 2>&1
step mining-speed;   python benchmarks/mining_speed.py --data "$D" --models "$M" > runs/bench-logs/mining_speed.log 2>&1
step scale;          python benchmarks/mining_scale.py > runs/bench-logs/scale.log 2>&1
step precision;      python benchmarks/precision_speed.py --model "$M/all-MiniLM-L6-v2" > runs/bench-logs/precision.log 2>&1
step mine;           haystack-hardneg mine --data "$D" --split train --model "$M/all-MiniLM-L6-v2" \
                       --model "$M/all-mpnet-base-v2" --num-negatives 5 --out runs/mine > runs/bench-logs/mine.log 2>&1
step train;          haystack-hardneg train --triplets runs/mine/ensemble_cluster/triplets.jsonl \
                       --base-model "$M/all-MiniLM-L6-v2" --out runs/train-ensemble_cluster --epochs 2 --loss triplet \
                       > runs/bench-logs/train.log 2>&1
step rerank;         python benchmarks/scifact_rerank.py --model runs/train-ensemble_cluster/model \
                       --train-report runs/train-ensemble_cluster/training_report.json \
                       --out benchmarks/scifact/rerank_ensemble_cluster.json > runs/bench-logs/rerank.log 2>&1
step experiment;     HARDNEG_MODELS="$M" haystack-hardneg experiment examples/experiment_scifact.yml \
                       > runs/bench-logs/experiment-scifact.log 2>&1
# Probes on held-out training queries (they read the experiment's mined triplets and candidates)
step head-probe;     ( python benchmarks/head_probe.py --head classifier \
                       && python benchmarks/head_probe.py --head mean \
                       && python benchmarks/head_probe.py --head mean --loss listwise \
                       && python benchmarks/head_probe.py --head mean --precision bf16 ) > runs/bench-logs/head-probe.log 2>&1
step done
