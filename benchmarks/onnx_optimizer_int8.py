"""Does ONNX Runtime's transformer optimiser (export --optimize O2 / O3) speed up the dynamic int8 export on this CPU?

A MiniLM-L6 cross-encoder (mean-pooling head; latency depends on the shape, not the weights) and its 3- and
2-layer cuts, each exported as `export` does (torch's dynamo ONNX exporter), then: plain, int8, O2, O2 + int8,
O3, O3 + int8. Every variant and torch fp32 score the same batches of 20 (query, SciFact abstract) pairs at 256
tokens, taking turns in an order rotated every batch (`rank.speed`, as `export` times them); medians per variant,
with the machine's identity.

    python benchmarks/onnx_optimizer_int8.py --model ~/.cache/hardneg-models/all-MiniLM-L6-v2 \\
        --data examples/data/scifact --out benchmarks/onnx_optimizer_int8_avx2.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text, read_jsonl
from haystack_hardneg.graphs.convert import export_onnx, optimize_onnx, quantize_onnx
from haystack_hardneg.rank.speed import interleaved_seconds
from haystack_hardneg.train.heads import build_cross_encoder, keep_layers


def batches(model: str, data: Path, count: int, size: int = 20, max_length: int = 256) -> list[dict]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    documents = [d["text"] for d, _ in zip(read_jsonl(data / "corpus.jsonl"), range(count * size))]
    queries = [q["text"] for q, _ in zip(read_jsonl(data / "queries.jsonl"), range(count))]
    return [tokenizer([query] * size, documents[i * size:(i + 1) * size], padding=True, truncation="longest_first",
                      max_length=max_length, return_tensors="np") for i, query in enumerate(queries)]


def variants(cross_encoder, folder: Path) -> dict[str, Path]:
    plain = export_onnx(cross_encoder, folder / "model.onnx")
    made = {"onnx": plain, "onnx int8": quantize_onnx(plain, folder / "model_qint8.onnx")}
    for level in ("O2", "O3"):
        optimised = optimize_onnx(plain, folder / f"model_{level}.onnx", level)
        made[f"onnx {level}"] = optimised
        made[f"onnx {level} int8"] = quantize_onnx(optimised, folder / f"model_{level}_qint8.onnx")
    return made


def timed(cross_encoder, files: dict[str, Path], inputs: list[dict], warmup: int = 2) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for name, path in files.items()}
    body = cross_encoder.model.eval()

    def on_torch(batch):
        with torch.inference_mode():
            body(**{k: torch.from_numpy(v) for k, v in batch.items()})

    def on_onnx(session):
        return lambda batch: session.run(None, {i.name: batch[i.name].astype(np.int64) for i in session.get_inputs()})

    runners = {"torch fp32": on_torch, **{name: on_onnx(s) for name, s in sessions.items()}}
    seconds = interleaved_seconds(runners, inputs, warmup=warmup)
    return {name: 1000 * float(np.median(values)) for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a MiniLM-L6 folder (an encoder or a re-ranker)")
    parser.add_argument("--data", required=True, help="a BEIR folder (corpus.jsonl, queries.jsonl)")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--layers", type=int, nargs="+", default=[6, 3, 2])
    parser.add_argument("--out", required=True, help="the JSON to write, named by the CPU class")
    args = parser.parse_args()
    inputs = batches(args.model, Path(args.data), args.batches)
    results = {"model": Path(args.model).name, "pairs_per_batch": 20, "max_length": 256,
               "timed_batches": len(inputs) - 2, "machine": machine(), "ms_median": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for layers in args.layers:
            torch.manual_seed(0)
            cross_encoder = build_cross_encoder(args.model, head="mean", max_length=256)
            if layers < cross_encoder.model.config.num_hidden_layers:
                keep_layers(cross_encoder, layers)
            folder = Path(scratch) / f"layers{layers}"
            folder.mkdir()
            results["ms_median"][f"{layers} layers"] = timed(cross_encoder, variants(cross_encoder, folder), inputs)
            print(layers, {n: round(v) for n, v in results["ms_median"][f"{layers} layers"].items()}, flush=True)
    import onnxruntime

    results["versions"] = {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}
    atomic_write_text(args.out, json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
