"""The mining report: how hard, how close to the positive, how many suspects — per strategy."""

from __future__ import annotations

import numpy as np

from haystack_hardneg.mine.data import MiningData
from haystack_hardneg.mine.negatives import MiningResult, ensemble_ranks


def _stats(values) -> dict[str, float] | None:
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return None
    return {"mean": round(float(values.mean()), 4), "median": round(float(np.median(values)), 4),
            "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}


def mining_report(data: MiningData, result: MiningResult, *, seconds: float | None = None,
                  skipped_when_loading: dict[str, int] | None = None) -> dict:
    """The report of one strategy; ``skipped_when_loading`` adds what validation left out before mining."""
    pairs = result.pairs
    gaps = [p.positive_score - s for p in pairs for s in p.negative_scores]
    report = {
        "strategy": result.strategy,
        "config": result.config,
        "queries": len(data.query_ids),
        "pairs": len(pairs),
        "pairs_asked": result.pairs_asked or len(pairs),
        # Pairs whose window was short of negatives the guard let through, filled from beyond it.
        "pairs_filled_beyond_window": sum(1 for p in pairs if p.fallback),
        "negatives_beyond_window": int(sum(p.fallback for p in pairs)),
        "held_back_by_rule": dict(result.held_back_by_rule),
        "positives_not_sampled": result.positives_not_sampled,
        "negatives_per_pair": result.config["num_negatives"],
        "negative_rank_in_strategy": _stats(r for p in pairs for r in p.negative_ranks),
        "negative_rank_in_ensemble": _stats(ensemble_ranks(data, pairs, seed=result.config["seed"])),
        "negative_score": _stats(s for p in pairs for s in p.negative_scores),
        "positive_score": _stats(p.positive_score for p in pairs),
        "score_gap_to_positive": _stats(gaps),
        "suspected_positives": sum(len(v) for v in result.suspected_positives.values()),
        "queries_with_suspected_positives": len(result.suspected_positives),
        "skipped": {k: len(v) + (skipped_when_loading or {}).get(k, 0) for k, v in result.skipped.items()},
    }
    for key, count in (skipped_when_loading or {}).items():
        report["skipped"].setdefault(key, count)
    if result.clustering is not None:
        sizes = result.clustering.sizes
        report["clusters"] = {
            "algorithm": result.clustering.algorithm,
            "count": int(len(sizes)),
            "size": _stats(sizes),
            "empty": int(np.sum(sizes == 0)),
            "negatives_from_fallback": int(sum(p.fallback for p in pairs)),
        }
    if seconds is not None:
        report["seconds"] = round(seconds, 2)
    return report


def format_report(report: dict) -> str:
    def fmt(stats):
        return "-" if not stats else f"{stats['mean']:.3f} (median {stats['median']:.3f})"

    lines = [
        f"strategy: {report['strategy']}",
        f"  pairs mined: {report['pairs']} of {report.get('pairs_asked', report['pairs'])} "
        f"({report['queries']} queries), {report['negatives_per_pair']} negatives each; "
        f"{report.get('pairs_filled_beyond_window', 0)} filled from beyond the window",
        f"  negative rank in its strategy: {fmt(report['negative_rank_in_strategy'])}",
        f"  negative rank in the ensemble: {fmt(report['negative_rank_in_ensemble'])}",
        f"  negative score: {fmt(report['negative_score'])}; positive score: {fmt(report['positive_score'])}",
        f"  score gap to the positive: {fmt(report['score_gap_to_positive'])}",
        f"  suspected positives held back: {report['suspected_positives']} "
        f"(in {report['queries_with_suspected_positives']} queries; by rule: {report.get('held_back_by_rule', {})})",
        f"  skipped: {report['skipped']}",
    ]
    if "clusters" in report:
        c = report["clusters"]
        lines.append(f"  clusters: {c['count']} by {c['algorithm']}, size {fmt(c['size'])}, "
                     f"{c['negatives_from_fallback']} negatives from the fallback")
    return "\n".join(lines)


def comparison_table(reports: dict[str, dict]) -> str:
    """The strategies side by side, as a Markdown table (``mining_report.md``)."""
    lines = ["| strategy | pairs (of asked) | filled beyond window | rank in ensemble (mean) | "
             "score gap to positive (mean) | suspected positives | seconds |",
             "|---|---|---|---|---|---|---|"]
    for strategy, r in reports.items():
        rank = r["negative_rank_in_ensemble"]["mean"] if r["negative_rank_in_ensemble"] else float("nan")
        gap = r["score_gap_to_positive"]["mean"] if r["score_gap_to_positive"] else float("nan")
        lines.append(f"| {strategy} | {r['pairs']} ({r.get('pairs_asked', r['pairs'])}) | "
                     f"{r.get('pairs_filled_beyond_window', 0)} | {rank:.1f} | {gap:.3f} | "
                     f"{r['suspected_positives']} | {r['seconds']} |")
    return "\n".join(lines) + "\n"
