"""The experiment's ``results.md``: its tables, one function per section, from the results ``report.py``
computes."""

from __future__ import annotations

from typing import Any


def _p(comparison: dict[str, float]) -> str:
    holm = f"; Holm {comparison['p_holm']:.2g}" if "p_holm" in comparison else ""
    return f"{comparison['difference']:+.3f} (p={comparison['p_value']:.2g}{holm})"


def _left_out_line(results: dict[str, Any]) -> list[str]:
    """One sentence on the judgements and queries loading left out, when it left any."""
    parts = [f"{split}: {counts['unknown_judgements']} judgement(s) of unknown queries or documents, "
             f"{counts['queries_without_positives']} query(ies) without a positive"
             for split, counts in results.get("left_out_when_loading", {}).items() if any(counts.values())]
    return ["", "Left out when loading the data: " + "; ".join(parts) + "."] if parts else []


def _tests_in(systems: dict[str, Any]) -> int:
    return sum(1 for entry in systems.values() for versus in entry.get("vs", {}).values() if "ndcg@10" in versus)


def _latency(chosen: dict[str, Any]) -> str:
    """Milliseconds per test query: median / 95th percentile, or the mean where only that was recorded."""
    if chosen.get("ms_per_query_median") is None:
        return f"{chosen['ms_per_query']:.0f} (mean)"
    return f"{chosen['ms_per_query_median']:.0f} / {chosen['ms_per_query_p95']:.0f}"


def _gate_text(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "not checked against fp32."
    ndcg = gate["ndcg@10"]
    verdict = "within" if gate["passed"] else "ABOVE"
    return (f"nDCG@10 on its validation candidates {ndcg['exported']:.4f} against fp32 {ndcg['fp32']:.4f} (loss "
            f"{ndcg['loss']:+.4f}, {verdict} the limit {gate['max_loss']}).")


def _systems(results: dict[str, Any]) -> list[str]:
    systems = results["systems"]
    recall = f"recall@{results['retrieve_k']}"
    lines = [f"# Experiment: {results['data']}", "",
             f"{results['test_queries']} test queries; first stage: {results['first_stage']}; re-rankers re-score "
             f"its top {results['rerank_k']}. 95% bootstrap intervals in brackets; {results['test']} "
             f"(two-sided) on nDCG@10, with the p-value adjusted by Holm's method over the table's "
             f"{_tests_in(systems)} tests.", *_left_out_line(results), "",
             f"| system | nDCG@10 | MRR@10 | P@1 | P@5 | P@10 | R@{results['retrieve_k']} | vs first stage "
             f"| vs random negatives | vs BM25 negatives |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in systems.items():
        m, ci = entry["metrics"], entry["ci95"]["ndcg@10"]
        vs = entry.get("vs", {})
        versus = [_p(vs[against]["ndcg@10"]) if against in vs else ""
                  for against in ("first stage", "random negatives", "bm25 negatives")]
        lines.append(
            f"| {name} | {m['ndcg@10']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}] | {m['mrr@10']:.4f} | {m['precision@1']:.3f} "
            f"| {m['precision@5']:.3f} | {m['precision@10']:.3f} | {m[recall]:.3f} | " + " | ".join(versus) + " |")
    return lines


def _strategy_pairs(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for title, key in (("test queries", "strategy_pairs"),
                       ("validation slice, where settings are chosen; in-sample for the fused rows, whose weight "
                        "was chosen on these queries", "validation_pairs")):
        for kind, table in results.get(key, {}).items():
            names = list(table)
            lines += ["", f"## Strategies against each other ({title}): {kind}, nDCG@10 of the row minus the "
                          f"column ({results['test']})",
                      "", "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            lines += [f"| {a} | " + " | ".join(_p(table[a][b]) if b in table[a] else "" for b in names) + " |"
                      for a in names]
    return lines


def _subsets(results: dict[str, Any]) -> list[str]:
    recall = f"recall@{results['retrieve_k']}"
    lines: list[str] = []
    for group, subset in results["subsets"].items():
        lines += ["", f"## {group.capitalize()} relevant documents ({subset['queries']} queries; mean length of their "
                      f"relevant documents {'above' if group == 'long' else 'at most'} the corpus median of "
                      f"{results['length_median_words']:.0f} words)", "",
                  f"| system | nDCG@10 | MRR@10 | P@1 | P@5 | P@10 | R@{results['retrieve_k']} | vs first stage |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, m in subset["systems"].items():
            ci = m["ndcg@10"]["ci95"]
            versus = _p(m["vs first stage"]) if "vs first stage" in m else ""
            lines.append(f"| {name} | {m['ndcg@10']['mean']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}] | "
                         f"{m['mrr@10']['mean']:.4f} "
                         f"| {m['precision@1']['mean']:.3f} | {m['precision@5']['mean']:.3f} "
                         f"| {m['precision@10']['mean']:.3f} | {m[recall]['mean']:.3f} | {versus} |")
    return lines


def _rerankers(results: dict[str, Any]) -> list[str]:
    lines = ["", "## Re-rankers: the fusion weight chosen on validation (each re-ranker's held-out training "
             f"queries, their first-stage top {results['rerank_k']}; rule: {results['fusion_rule']})", "",
             "| strategy | train rows | steps | train s | val. first stage | val. re-ranker | fusion alpha (p) | "
             "val. fused | ms/query (median / p95) | backend |", "|---|---|---|---|---|---|---|---|---|---|"]
    rerankers = results["rerankers"]
    for strategy, chosen in rerankers.items():
        v = chosen["validation"] or {}
        first = (v.get("first_stage") or {}).get("ndcg@10")
        alone = (v.get("reranker_alone") or {}).get("ndcg@10")
        best = (v.get("best") or {}).get("ndcg@10")
        p_value = v.get("p_value")
        lines.append(f"| {strategy} | {chosen['train_rows']} | {chosen.get('steps') or ''} | "
                     f"{chosen['train_seconds'] or 0:.0f} | "
                     f"{first if first is None else f'{first:.4f}'} | {alone if alone is None else f'{alone:.4f}'} | "
                     f"{chosen['fusion_alpha']}{'' if p_value is None else f' ({p_value:.3g})'} | "
                     f"{best if best is None else f'{best:.4f}'} | "
                     f"{_latency(chosen)} | {chosen.get('backend', 'torch')} |")
    lines += [f"\n{strategy} re-ranked with {chosen['file_name']}: {_gate_text(chosen['export_gate'])}"
              for strategy, chosen in rerankers.items() if chosen.get("file_name")]
    lines += [f"\n**Warning ({strategy})**: trained in {chosen['precision']['run']}; "
              f"{chosen['precision']['asked']} was asked and refused on the training machine's CPU."
              for strategy, chosen in rerankers.items() if _precision_refused(chosen)]
    lines += [f"\n{strategy} mined the same triplets as {chosen['same_triplets_as']}: its re-ranker is that one, "
              f"trained once." for strategy, chosen in rerankers.items() if chosen.get("same_triplets_as")]
    lines += [f"\n**Warning ({strategy})**: {chosen['validation']['fallback']}; its fused row is the first stage."
              + _withheld_text(chosen.get("withheld"))
              for strategy, chosen in rerankers.items() if (chosen["validation"] or {}).get("fallback")]
    return lines


def _withheld_text(withheld: dict[str, Any] | None) -> str:
    if not withheld:
        return ""
    return (f" For the record, not shipped: at its best validation weight ({withheld['alpha']}) the test queries "
            f"score {withheld['ndcg@10']:.4f} nDCG@10 ({withheld['difference']:+.4f} vs the first stage, "
            f"p={withheld['p_value']:.2g}).")


def _mining(results: dict[str, Any]) -> list[str]:
    mining = results.get("mining") or {}
    if not mining:
        return []
    lines = ["", "## Mining: the (query, positive) pairs each strategy trained on", "",
             "| strategy | pairs kept (of asked) | filled beyond the window | left out | "
             "held back by the guard, by rule |",
             "|---|---|---|---|---|"]
    for strategy, m in mining.items():
        filled = m["pairs_filled_beyond_window"]
        rules = ", ".join(f"{rule} {count}" for rule, count in (m["held_back_by_rule"] or {}).items())
        lines.append(f"| {strategy} | {m['pairs']} ({m['pairs_asked']}) | "
                     f"{'off' if not m['fill_beyond_window'] else filled} | {m['left_out']} | "
                     f"{rules if m['held_back_by_rule'] is not None else 'not recorded'} |")
    return lines


def _stages(results: dict[str, Any]) -> list[str]:
    estimates = results.get("plan_estimate_seconds") or {}
    lines = ["", "## Stages (measured; the plan's estimate from its warm-up before the run)", "",
             "| stage | seconds | estimated |", "|---|---|---|"]
    imported = set(results.get("stages_imported", []))
    lines += [f"| {name} | {seconds}{' (imported)' if name in imported else ''} | {estimates.get(name, '')} |"
              for name, seconds in results["stage_seconds"].items()]
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = [*_systems(results), *_strategy_pairs(results), *_subsets(results), *_rerankers(results),
             *_mining(results), *_stages(results),
             "", "Charts: `chart_ndcg.png`, `chart_long_short.png`. Per-query values: `per_query.json`."]
    return "\n".join(lines) + "\n"


def _precision_refused(chosen: dict) -> bool:
    precision = chosen.get("precision") or {}
    return precision.get("run") is not None and precision["run"] != precision["asked"]
