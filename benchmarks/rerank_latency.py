"""Re-ranking latency and quality per serving backend: torch fp32 / bf16, ONNX Runtime (fp32, O3, dynamic int8)
and OpenVINO (fp32, static int8; each also in bf16 where the CPU has bfloat16 instructions), with Haystack's stock
ranker beside ours on torch, in one run.

Each query's first-stage top k (20 and 30) is re-ranked by every system in turn (the systems interleave, so that
a slower or busier moment of the machine falls on all of them alike); per system: milliseconds per query (median,
95th percentile) and nDCG@10 of the re-ranker alone. The exports are made (and checked against fp32 on the model's
validation candidates) first. Beside it, the FLOP limit: FLOPs per query (from the model's shape and the real
token counts) over the matmul rate measured on this machine.

    python benchmarks/rerank_latency.py --model runs/train/model \\
        --candidates runs/experiment-scifact/first_stage/test_candidates.jsonl --data examples/data/scifact \\
        --out benchmarks/rerank_latency_avx2.json      # named by the CPU class it runs on
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from haystack import Document

from haystack_hardneg import CrossEncoderRanker, ExportConfig, export_model
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_save_figure, atomic_write_text, read_jsonl
from haystack_hardneg.ingest.beir import load_qrels
from haystack_hardneg.machine import missing_bf16

EXPORTS = {"onnx": {"backend": "onnx"}, "onnx-O3": {"backend": "onnx", "optimize": "O3"},
           "onnx-int8": {"backend": "onnx", "quantize": "int8"}, "openvino": {"backend": "openvino"},
           "openvino-int8": {"backend": "openvino", "quantize": "int8"}}


def make_exports(model: str, names: list[str]) -> dict[str, dict]:
    """Each export of ``names`` written into the model folder (not made its default) and checked."""
    records = {}
    for name in names:
        records[name] = export_model(ExportConfig(model_dir=model, make_default=False, **EXPORTS[name]),
                                     log=lambda message: print(f"  {message}", flush=True))
        gate = records[name]["gate"] or {}
        print(f"{name}: {records[name]['file_name']}, validation loss {gate.get('ndcg@10', {}).get('loss')}",
              flush=True)
    return records


def export_records(made: dict[str, dict]) -> dict[str, dict]:
    """What the JSON keeps of each export ``make_exports`` made: its file, quality check and speed check."""
    return {name: {"file_name": r["file_name"], "gate": r["gate"], "speed": r["speed"]} for name, r in made.items()}


def rankers(model: str, max_length: int, exports: dict[str, dict], systems: list[str], prefix: str = "") -> dict:
    """Warmed-up rankers by system name (``prefix`` before each); all rank alone (no fusion), scores scaled as
    Haystack's are."""
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    common = {"model": model, "top_k": 100, "max_length": max_length, "fusion_alpha": None}
    built = {
        "torch fp32 (stock ranker)": lambda: SentenceTransformersSimilarityRanker(
            model=model, top_k=100, tokenizer_kwargs={"model_max_length": max_length}),
        "torch fp32": lambda: CrossEncoderRanker(**common, backend="torch"),
        "torch bf16": lambda: CrossEncoderRanker(**common, backend="torch", model_kwargs={"dtype": "bfloat16"}),
        **{name: (lambda name=name: CrossEncoderRanker(
            **common, backend=EXPORTS[name]["backend"], model_kwargs={"file_name": exports[name]["file_name"]}))
           for name in exports},
        # OpenVINO computes in f32 unless told otherwise; on a CPU with bfloat16 instructions bf16 may pay.
        **{f"{name} bf16": (lambda name=name: CrossEncoderRanker(
            **common, backend="openvino", model_kwargs={"file_name": exports[name]["file_name"],
                                                        "ov_config": {"INFERENCE_PRECISION_HINT": "bf16"}}))
           for name in exports if EXPORTS[name]["backend"] == "openvino"},
    }
    out = {}
    for name in systems:
        out[prefix + name] = built[name]()
        out[prefix + name].warm_up()
    return out


def timed_runs(systems: dict, records: list[dict], k: int, warmup: int = 2) -> tuple[dict, dict]:
    """Per system: seconds per query and {query id: {doc id: score}}. The systems take turns query by query, in
    an order rotated every query, so that none always follows the same one (whose threads may still spin)."""
    seconds = {name: [] for name in systems}
    runs = {name: {} for name in systems}
    names = list(systems)
    for index, record in enumerate(records):
        documents = [Document(id=c["id"], content=c["text"], score=c["score"]) for c in record["candidates"][:k]]
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            ranker = systems[name]
            started = time.perf_counter()
            ranked = ranker.run(query=record["query"], documents=documents)["documents"]
            elapsed = time.perf_counter() - started
            if index >= warmup:
                seconds[name].append(elapsed)
            runs[name][record["query_id"]] = {d.id: float(d.score) for d in ranked}
    return seconds, runs


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a square matmul in ``dtype`` with torch's threads (the best of ``repeats``)."""
    a = torch.rand(size, size).to(dtype)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * size ** 3 / best


def openvino_matmul_rate(int8: bool, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a square activation x constant-weight matmul compiled by OpenVINO for the CPU (a FullyConnected
    layer, as in the exported models): with int8, both inputs pass a FakeQuantize, which OpenVINO runs as an
    8-bit matmul, as in the NNCF-quantised model; without, at OpenVINO's default CPU precision."""
    import openvino as ov
    import openvino.opset15 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([size, size], np.float32)
    w = ops.constant(rng.uniform(-1, 1, (size, size)).astype(np.float32))
    left, right = x, w
    if int8:
        zero, one, minus_one = (ops.constant(np.float32(v)) for v in (0, 1, -1))
        left = ops.fake_quantize(x, zero, one, zero, one, 256)
        right = ops.fake_quantize(w, minus_one, one, minus_one, one, 255)
    compiled = ov.Core().compile_model(ov.Model([ops.matmul(left, right, False, True)], [x]), "CPU",
                                       {"PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    feed = {0: rng.uniform(0, 1, (size, size)).astype(np.float32)}
    request.infer(feed)
    best = min(_timed(lambda: request.infer(feed)) for _ in range(repeats))
    return 2 * size ** 3 / best


def openvino_profile(model: str, file_name: str, records: list[dict], k: int, max_length: int,
                     queries: int = 20) -> dict:
    """Where the time of one query's top k goes in the OpenVINO model ``file_name`` (its PERF_COUNT per executed
    node, summed by node type and by kernel): milliseconds per query and share, over ``queries`` queries."""
    import openvino as ov
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    compiled = ov.Core().compile_model(str(Path(model) / file_name), "CPU",
                                       {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": "YES"})
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]
    by_type: dict[str, float] = {}
    by_kernel: dict[str, float] = {}
    queries = min(queries, len(records))
    for record in records[:queries]:
        top = record["candidates"][:k]
        encoded = tokenizer([record["query"]] * len(top), [c["text"] for c in top], padding=True,
                            truncation="longest_first", max_length=max_length, return_tensors="np")
        request.infer({name: encoded[name].astype(np.int64) for name in names})
        for node in request.profiling_info:
            if node.status == node.Status.EXECUTED:
                ms = node.real_time.total_seconds() * 1000 / queries
                by_type[node.node_type] = by_type.get(node.node_type, 0.0) + ms
                kernel = f"{node.node_type} ({node.exec_type})"
                by_kernel[kernel] = by_kernel.get(kernel, 0.0) + ms
    total = sum(by_type.values())

    def ranked(times: dict[str, float], top: int) -> dict[str, dict[str, float]]:
        best = sorted(times.items(), key=lambda item: -item[1])[:top]
        return {name: {"ms_per_query": ms, "share": ms / total} for name, ms in best}

    return {"file_name": file_name, "queries": queries, "ms_per_query": total,
            "by_node_type": ranked(by_type, 12), "by_kernel": ranked(by_kernel, 12)}


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def flops_per_query(model: str, records: list[dict], k: int, max_length: int) -> float:
    """Mean FLOPs to score one query's top k: per layer and token 2 x (4 H^2 + 2 H I) for the projections and
    the feed-forward, plus 4 n H per token for attention over n tokens."""
    from transformers import AutoConfig, AutoTokenizer

    config, tokenizer = AutoConfig.from_pretrained(model), AutoTokenizer.from_pretrained(model)
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    totals = []
    for record in records:
        top = record["candidates"][:k]
        lengths = [len(ids) for ids in tokenizer([record["query"]] * len(top), [c["text"] for c in top],
                                                 truncation="longest_first", max_length=max_length)["input_ids"]]
        totals.append(sum(layers * n * (2 * (4 * hidden ** 2 + 2 * hidden * inner) + 4 * n * hidden)
                          for n in lengths))
    return float(np.mean(totals))


def summarise(seconds: dict, runs: dict, qrels: dict, reference: str) -> dict:
    ms = {name: 1000 * np.asarray(values) for name, values in seconds.items()}
    ndcg = {name: evaluate_run(qrels, run, ["ndcg@10"])["ndcg@10"] for name, run in runs.items()}
    return {name: {"ms_median": float(np.median(ms[name])), "ms_p95": float(np.percentile(ms[name], 95)),
                   "ms_mean": float(np.mean(ms[name])), "ndcg@10": ndcg[name],
                   "ndcg@10_vs_reference": ndcg[name] - ndcg[reference],
                   "speedup_vs_reference": float(np.median(ms[reference]) / np.median(ms[name]))}
            for name in seconds}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    where = results["machine"]
    ks = list(results["by_k"])
    names = list(results["by_k"][ks[0]]["systems"])
    figure, axis = plt.subplots(figsize=(max(11, 0.5 * len(names)), 4.5))
    width = 0.8 / len(ks)
    for i, k in enumerate(ks):
        systems = results["by_k"][k]["systems"]
        medians = [systems[n]["ms_median"] for n in names]
        p95 = [systems[n]["ms_p95"] - systems[n]["ms_median"] for n in names]
        x = np.arange(len(names)) + i * width
        bars = axis.bar(x, medians, width, yerr=[np.zeros(len(names)), p95], capsize=3, label=f"top {k}")
        for bar, name in zip(bars, names):
            axis.annotate(f"{systems[name]['ndcg@10']:.3f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    axis.axhline(300, color="grey", linestyle="--", linewidth=1, label="0.3 s target (top 20)")
    axis.set_xticks(np.arange(len(names)) + width * (len(ks) - 1) / 2, names, rotation=20, ha="right")
    axis.set(ylabel="ms per query (median; bar to p95)",
             title=f"Re-ranking latency by backend ({results['queries']} SciFact test queries, max_length "
                   f"{results['max_length']}, {where['cpu']['model']}, {where['torch_threads']} threads); "
                   f"labels: nDCG@10")
    axis.legend()
    figure.tight_layout()
    atomic_save_figure(figure, path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a fine-tuned cross-encoder folder (from `train`)")
    parser.add_argument("--candidates", required=True, help="first-stage candidates of the test queries (jsonl)")
    parser.add_argument("--data", required=True, help="the BEIR folder with the test qrels")
    parser.add_argument("--split", default="test")
    parser.add_argument("--queries", type=int, default=100, help="test queries timed (the first N with judgements)")
    parser.add_argument("--k", type=int, nargs="+", default=[20, 30])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--exports", nargs="*", default=list(EXPORTS), choices=list(EXPORTS))
    parser.add_argument("--student", nargs="*", default=[],
                        help="smaller students of --model (train --keep-layers), timed in the same run")
    parser.add_argument("--out", required=True, help="the JSON to write (the chart beside it, as .png); name it by "
                        "the CPU class, e.g. benchmarks/rerank_latency_avx2.json")
    args = parser.parse_args()
    args.model = str(Path(args.model).expanduser())

    qrels = load_qrels(Path(args.data) / "qrels" / f"{args.split}.tsv")
    records = [r for r in read_jsonl(args.candidates) if r["query_id"] in qrels][: args.queries]
    qrels = {r["query_id"]: qrels[r["query_id"]] for r in records}
    exports = make_exports(args.model, args.exports)
    # bf16 is refused (the ranker loads float32) on a CPU without bfloat16 instructions: not a system there.
    bf16 = ["torch bf16", *(f"{n} bf16" for n in args.exports if EXPORTS[n]["backend"] == "openvino")]
    refused = {name: f"this CPU has no {missing_bf16()}" for name in bf16} if missing_bf16() else {}
    bf16 = [name for name in bf16 if name not in refused]
    systems = ["torch fp32", "torch fp32 (stock ranker)", *args.exports, *bf16]
    built = rankers(args.model, args.max_length, exports, systems)
    students = {}
    for folder in (str(Path(student).expanduser()) for student in args.student):
        layers = json.loads(Path(folder, "config.json").read_text())["num_hidden_layers"]
        if f"student-{layers}" in students:
            parser.error(f"--student: two students have {layers} layers; time one of each size per run.")
        made = make_exports(folder, args.exports)
        students[f"student-{layers}"] = {"model": folder, "layers": layers, "exports": export_records(made)}
        built.update(rankers(folder, args.max_length, made, ["torch fp32", *args.exports, *bf16],
                             prefix=f"student-{layers} "))
    rates = {"fp32": matmul_rate(torch.float32), "bf16 (emulated)" if refused else "bf16": matmul_rate(torch.bfloat16)}
    if "openvino-int8" in exports:
        rates["openvino default precision"] = openvino_matmul_rate(int8=False)
        rates["openvino int8"] = openvino_matmul_rate(int8=True)
    results = {"model": args.model, "queries": len(records), "max_length": args.max_length,
               "machine": machine(), "refused": refused,
               "versions": {"torch": torch.__version__}, "matmul_gflops": {k: v / 1e9 for k, v in rates.items()},
               "exports": export_records(exports),
               "students": students,
               "by_k": {}}
    for k in args.k:
        print(f"top {k}: {len(records)} queries x {len(built)} systems", flush=True)
        seconds, runs = timed_runs(built, records, k)
        flops = flops_per_query(args.model, records, k, args.max_length)
        results["by_k"][str(k)] = {
            "systems": summarise(seconds, runs, qrels, "torch fp32"),
            "flops_per_query": flops,
            "flop_limit_ms": {dtype: 1000 * flops / rate for dtype, rate in rates.items()},
        }
        ours, stock = (results["by_k"][str(k)]["systems"][n]["ms_median"] for n in
                       ("torch fp32", "torch fp32 (stock ranker)"))
        results["by_k"][str(k)]["our_overhead_vs_stock"] = ours / stock - 1
        if "openvino-int8" in exports:
            results["by_k"][str(k)]["openvino_int8_profile"] = openvino_profile(
                args.model, exports["openvino-int8"]["file_name"], records, k, args.max_length)
    for package in ("onnxruntime", "openvino", "nncf", "sentence_transformers", "transformers"):
        try:
            results["versions"][package] = __import__(package).__version__
        except ImportError:
            pass
    atomic_write_text(args.out, json.dumps(results, indent=2))
    chart(results, Path(args.out).with_suffix(".png"))
    print(json.dumps({k: {n: (round(s["ms_median"]), round(s["ndcg@10"], 4)) for n, s in v["systems"].items()}
                      for k, v in results["by_k"].items()}, indent=1))


if __name__ == "__main__":
    main()
