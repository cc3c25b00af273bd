"""Training-step time of a MiniLM cross-encoder in float32 and in bfloat16 mixed precision (CPU or GPU).

One step = forward and backward over 48 (query, document) pairs of 256 tokens (batch 8 x (1 positive +
5 negatives), the SciFact experiment's shape). Alternating rounds, median of 5 per precision.

On CPU the memory allocator matters as much as the precision (see the Makefile's MALLOC_*
settings), so the process's LD_PRELOAD and MALLOC_* settings are
recorded; compare them with --out (`make` exports the settings, so run the script outside make for glibc's defaults):

    python benchmarks/precision_speed.py [--model ~/.cache/hardneg-models/all-MiniLM-L6-v2] [--out FILE]
    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824 \\
        python benchmarks/precision_speed.py --out benchmarks/precision_speed_malloc.json
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.train.heads import build_cross_encoder

parser = argparse.ArgumentParser()
parser.add_argument("--model", default=str(Path("~/.cache/hardneg-models/all-MiniLM-L6-v2").expanduser()))
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--out", default="benchmarks/precision_speed.json")
args = parser.parse_args()

model = build_cross_encoder(args.model, max_length=256)
device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)
pairs = [("what is the effect of vitamin d on bone density in older adults", "bone mineral density " * 120)] * 48
features = {k: v.to(device) if hasattr(v, "to") else v for k, v in model.preprocess(pairs).items()}


def step(bf16: bool) -> float:
    started = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        loss = model(dict(features))["scores"].float().sum()
    loss.backward()
    model.zero_grad()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


step(False), step(True)  # warm-up
times = {"fp32": [], "bf16": []}
for _ in range(args.rounds):
    times["fp32"].append(step(False))
    times["bf16"].append(step(True))
result = {
    "what": "one training step (forward + backward), 48 pairs x 256 tokens, all-MiniLM-L6-v2 + mean head",
    "device": device, "machine": machine(), "threads": torch.get_num_threads(),
    "allocator": {k: v for k, v in sorted(os.environ.items()) if k == "LD_PRELOAD" or k.startswith("MALLOC_")},
    "median_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
    "all_seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
}
result["speedup"] = round(result["median_seconds"]["fp32"] / result["median_seconds"]["bf16"], 2)
atomic_write_text(Path(args.out), json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
