"""``evaluate`` and ``tune``: a user's own query pipeline measured on labelled queries, and the ranker's fusion
weight chosen for it."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack_hardneg.cli.common import closing_stores
from haystack_hardneg.cli.retrieval import fusion_alpha
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.measure.config import PipelineEvalConfig, TuneConfig
from haystack_hardneg.measure.pipeline import compare, evaluate_pipeline, labelled_queries, result_component
from haystack_hardneg.measure.tune import tune_pipeline, with_ranker, write_tuned_yaml
from haystack_hardneg.options import add_arguments, from_arguments
from haystack_hardneg.pipelines import load_pipeline


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="your query pipeline's YAML")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", type=Path, help="a labels file (CSV, TSV or JSONL: query, document, grade)")
    source.add_argument("--beir", type=Path, help="a BEIR folder (its queries and qrels/SPLIT.tsv)")
    parser.add_argument("--split", default="test", help="the BEIR split (default test)")
    add_arguments(parser, PipelineEvalConfig)
    parser.add_argument("--json", type=Path, dest="json_out", help="also write the full results (per query) here")


def add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="measure your query pipeline on labelled queries (nDCG, MRR, "
                                                    "recall), alone or against another or with our ranker")
    _add_common(evaluate)
    other = evaluate.add_mutually_exclusive_group()
    other.add_argument("--compare", type=Path, help="another pipeline's YAML, measured on the same queries")
    other.add_argument("--ranker", help="a cross-encoder folder: the pipeline again with it in the ranker's place "
                                        "(or after the result, when the pipeline has no ranker)")
    evaluate.add_argument("--fusion-alpha", type=fusion_alpha, default=None, metavar="none|ALPHA",
                          help="with --ranker: its weight against the first stage's score (default none: the "
                               "cross-encoder alone)")
    evaluate.set_defaults(func=cmd_evaluate)


def add_tune_parser(commands) -> None:
    tune = commands.add_parser("tune", help="choose our ranker's fusion weight for your pipeline on labelled queries "
                                            "and write a tuned copy of its YAML")
    _add_common(tune)
    tune.add_argument("--ranker", required=True, help="the cross-encoder folder (from `train`)")
    tune.add_argument("--out", type=Path, required=True, help="where to write the tuned pipeline YAML")
    add_arguments(tune, TuneConfig)
    tune.set_defaults(func=cmd_tune)


def _labelled(args: argparse.Namespace, config: PipelineEvalConfig):
    return labelled_queries(labels=args.labels, beir=args.beir, split=args.split, limit=config.limit)


def _measure(path: Path, labelled, config: PipelineEvalConfig, ranker: str | None = None,
             alpha: float | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The pipeline's evaluation, and with ``ranker`` a second one with our ranker in it (one store opening)."""
    with closing_stores(load_pipeline(path)) as pipeline:
        results = [(str(path), evaluate_pipeline(pipeline, labelled, config))]
        if ranker:
            name, _ = with_ranker(pipeline, ranker, result=result_component(pipeline, config.output),
                                  fusion_alpha=alpha)
            ranked = evaluate_pipeline(pipeline, labelled, replace(config, output=name))
            results.append((f"with {ranker}" + ("" if alpha is None else f" (fused at {alpha})"), ranked))
    return results


def cmd_evaluate(args: argparse.Namespace) -> int:
    config = from_arguments(PipelineEvalConfig, args)
    labelled = _labelled(args, config)
    results = _measure(args.pipeline, labelled, config, args.ranker, args.fusion_alpha)
    if args.compare:
        results += _measure(args.compare, labelled, config)
    differences = compare(results[1][1], results[0][1], test=config.test) if len(results) > 1 else None
    print(_table(results, differences))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps({"systems": dict(results), "differences": differences}, indent=2))
    return 0


def _number(value: float) -> str:
    return f"{value:.4f}"


def _differences(name: str, by_metric: dict[str, dict[str, float]], metrics: list[str]) -> str:
    return f"| {name} (p; 95% CI) | " + " | ".join(
        f"{d['difference']:+.4f} (p={d['p_value']:.3g}; {d['ci_low']:+.4f}..{d['ci_high']:+.4f})"
        for d in (by_metric[m] for m in metrics)) + " |"


def _table(results: list[tuple[str, dict[str, Any]]], differences: dict[str, dict[str, float]] | None) -> str:
    metrics = list(results[0][1]["metrics"])
    lines = [f"{results[0][1]['queries']} labelled queries from {results[0][1]['labels']}", "",
             "| system | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_number(r["metrics"][m]) for m in metrics) + " |" for name, r in results]
    if differences:
        lines.append(_differences(f"{results[1][0]} - {results[0][0]}", differences, metrics))
    return "\n".join(lines)


def cmd_tune(args: argparse.Namespace) -> int:
    config = from_arguments(TuneConfig, args, ranker=args.ranker)
    eval_config = from_arguments(PipelineEvalConfig, args)
    labelled = _labelled(args, eval_config)
    with closing_stores(load_pipeline(args.pipeline)) as pipeline:
        report, tuned = tune_pipeline(pipeline, labelled, config, eval_config)
    write_tuned_yaml(args.out, tuned, report)
    print(_tune_table(report))
    print(f"Tuned pipeline: {args.out} (fusion_alpha {report['weight']})")
    if report["chosen_on"]["fallback"]:
        print(f"WARNING: the re-ranker did not beat this pipeline's first stage on the tuning queries: "
              f"{report['chosen_on']['fallback']}. The tuned pipeline keeps the first stage's order; try more "
              f"labelled queries, or train on data closer to these.", file=sys.stderr)
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(report, indent=2))
    return 0


def _tune_table(report: dict[str, Any]) -> str:
    metrics = list(report["metrics"]["as given"])
    p_value = report["chosen_on"]["p_value"]
    lines = [f"Weight {report['weight']} chosen on {report['tuning_queries']} queries (rule {report['rule']}, gain "
             f"over the first stage p = {'n/a' if p_value is None else f'{p_value:.3g}'}); reported on "
             f"{report['report_queries']} other queries:", "",
             "| system | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_number(values[m]) for m in metrics) + " |"
              for name, values in report["metrics"].items()]
    lines += [_differences(f"{name} - as given", by_metric, metrics)
              for name, by_metric in report["differences"].items()]
    return "\n".join(lines)
