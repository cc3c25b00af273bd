"""Training time per step of each loss, side by side on the same batches: the triplet loss (the paper's baseline)
against the distillation losses (margin_mse, listnet, with and without the label term) and listwise.

Each step is what the trainer does per batch (forward of the row's positive and negatives, backward, optimiser
step), under the same precision; the losses take turns batch by batch in a rotating order, so that a slower moment
of the machine falls on all alike. The ratio to the triplet loss's median is the figure to read.

    python benchmarks/distillation_step_time.py \\
        --triplets runs/experiment-scifact/mine/ensemble_cluster/triplets.jsonl \\
        --model ~/.cache/hardneg-models/all-MiniLM-L6-v2 --out benchmarks/distillation_step_time.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.mine.triplets import load_triplets, negative_columns
from haystack_hardneg.train.heads import build_cross_encoder
from haystack_hardneg.train.losses import build_loss

LOSSES = {"triplet": {}, "listwise": {}, "margin_mse": {"label_weight": 0.0},
          "margin_mse + labels": {"label_weight": 0.5}, "listnet": {"label_weight": 0.0},
          "listnet + labels": {"label_weight": 0.5}}


def step_seconds(model, loss, optimizer, batch: dict, precision: str) -> float:
    columns = ["query", "positive", *negative_columns(batch)]
    inputs = [list(batch[c]) for c in columns]
    labels = torch.tensor(batch["scores"], dtype=torch.float32)
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        value = loss(inputs, labels)
    value.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triplets", required=True, help="mined triplets with provenance.jsonl beside them")
    parser.add_argument("--model", required=True, help="the encoder the re-ranker starts from")
    parser.add_argument("--batches", type=int, default=8, help="batches timed per loss (after one warm-up each)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--out", default="benchmarks/distillation_step_time.json")
    args = parser.parse_args()

    rows = load_triplets(args.triplets, teacher_scores=True)
    if "scores" not in rows.column_names or len(rows) < (args.batches + 1) * args.batch_size:
        raise SystemExit(f"Need {(args.batches + 1) * args.batch_size} triplet rows with the miner's provenance.jsonl "
                         f"beside {args.triplets} (the teacher's scores).")
    rows = rows.shuffle(seed=0)
    torch.manual_seed(0)
    model = build_cross_encoder(str(Path(args.model).expanduser()), "mean", max_length=args.max_length)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)  # a real step, too small to change the model
    losses = {name: build_loss(name.split(" ")[0], model, **kwargs) for name, kwargs in LOSSES.items()}
    names = list(losses)
    seconds = {name: [] for name in names}
    for index in range(args.batches + 1):
        batch = rows[index * args.batch_size:(index + 1) * args.batch_size]
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = step_seconds(model, losses[name], optimizer, batch, args.precision)
            if index:  # the first batch warms up every loss
                seconds[name].append(elapsed)
        print(f"batch {index}: " + ", ".join(f"{n} {seconds[n][-1]:.2f} s" for n in names if seconds[n]), flush=True)
    baseline = float(np.median(seconds["triplet"]))
    results = {
        "model": args.model, "triplets": args.triplets, "batch_size": args.batch_size, "max_length": args.max_length,
        "precision": args.precision, "batches": args.batches,
        "machine": machine(),
        "versions": {"torch": torch.__version__},
        "losses": {name: {"seconds_per_step_median": float(np.median(values)),
                          "seconds_per_step_p90": float(np.percentile(values, 90)),
                          "ratio_to_triplet": float(np.median(values)) / baseline}
                   for name, values in seconds.items()},
    }
    atomic_write_text(args.out, json.dumps(results, indent=2))
    print(json.dumps({n: round(v["ratio_to_triplet"], 3) for n, v in results["losses"].items()}, indent=1))


if __name__ == "__main__":
    main()
