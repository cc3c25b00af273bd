"""The experiment's results: metrics, paired tests, short/long subsets, results.json, results.md and charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from haystack_hardneg.embed.ensemble import MemberSpec
from haystack_hardneg.evaluate.metrics import DEFAULT_METRICS, evaluate_run
from haystack_hardneg.evaluate.selection import MIN_INFORMATIVE_QUERIES, choose_fusion_alpha
from haystack_hardneg.evaluate.significance import bootstrap_ci, holm_adjusted, paired_test_on_values
from haystack_hardneg.evaluate.subsets import split_by_document_length
from haystack_hardneg.experiment.folder import RunFolder
from haystack_hardneg.experiment.plan import read_estimates
from haystack_hardneg.experiment.report_charts import charts
from haystack_hardneg.experiment.report_markdown import markdown
from haystack_hardneg.experiment.systems import DENSE_ONLY, FIRST_STAGE, LEXICAL_ONLY, TESTED_METRICS
from haystack_hardneg.files import atomic_write_text, read_jsonl
from haystack_hardneg.mine.candidates import record_qrels
from haystack_hardneg.scoring.fusion import fuse_scores


def reranked_run(first_stage: dict[str, float], head_scores: dict[str, float]) -> dict[str, float]:
    """The re-ranked head, then the rest of the first stage in its own order (so that depth metrics such as
    Recall@100 stay comparable with the first stage's)."""
    run = dict(head_scores)
    floor = min(head_scores.values(), default=0.0) - 1.0
    tail = [d for d in sorted(first_stage, key=first_stage.get, reverse=True) if d not in head_scores]
    for position, doc_id in enumerate(tail):
        run[doc_id] = floor - position
    return run


def _scores(records: list[dict[str, Any]], field: str = "candidates") -> dict[str, dict[str, float]]:
    return {r["query_id"]: {c["id"]: c["score"] for c in r.get(field, [])} for r in records}


def system_runs(out: Path, strategies: list[str], fusion_rule: str = "argmax",
                min_queries: int = MIN_INFORMATIVE_QUERIES
                ) -> tuple[dict[str, dict], dict[str, dict[str, Any]], dict[str, Any]]:
    """Every system's run (query id -> {doc id: score}); per strategy, the fusion weight chosen (by
    ``fusion_rule``) on its held-out training queries, re-ranked from the same first stage, and what its training
    reported; and the re-rankers' runs on those held-out queries with the training qrels (``{"qrels", "runs"}``,
    runs named as the test ones)."""
    test_records = read_jsonl(out / RunFolder.candidates("test"))
    train_records = read_jsonl(out / RunFolder.candidates("train"))
    first = _scores(test_records)
    runs: dict[str, dict] = {FIRST_STAGE: first}
    lists = read_jsonl(out / RunFolder.lists("test"))
    if any("lexical" in r for r in lists):
        runs[DENSE_ONLY] = _scores(lists, "dense")
        runs[LEXICAL_ONLY] = _scores(lists, "lexical")
    train_first = _scores(train_records)
    train_qrels = {r["query_id"]: record_qrels(r) for r in train_records}
    chosen: dict[str, dict[str, Any]] = {}
    validation_runs: dict[str, dict] = {}
    for strategy in strategies:
        scores = json.loads((out / RunFolder.scores(strategy)).read_text())
        training = json.loads((out / RunFolder.trained(strategy, "training_report.json")).read_text())
        sweep = (choose_fusion_alpha(train_qrels, train_first, scores["validation"], rule=fusion_rule,
                                     min_queries=min_queries)
                 if scores["validation"] else None)
        alpha = sweep["best_alpha"] if sweep else None
        chosen[strategy] = {"fusion_alpha": alpha, "validation": sweep or {}, "ms_per_query": scores["ms_per_query"],
                            # Runs recorded before per-query times were kept have the mean only.
                            "ms_per_query_median": scores.get("ms_per_query_median"),
                            "ms_per_query_p95": scores.get("ms_per_query_p95"),
                            "backend": scores.get("backend", "torch"), "file_name": scores.get("file_name"),
                            "export_gate": (scores.get("export") or {}).get("gate"),
                            "train_seconds": next((h["train_runtime"] for h in reversed(training["history"])
                                                   if "train_runtime" in h), None),
                            "train_rows": training["train_rows"], "steps": training.get("steps"),
                            "validation_queries": training["validation_queries"],
                            "training_validation": training.get("validation"),
                            "same_triplets_as": training.get("same_triplets_as"),
                            # Runs recorded before the precision run was kept have the asked one only.
                            "precision": {"asked": training["config"]["precision"],
                                          "run": training.get("precision_run")}}
        if scores["validation"]:  # alpha is None exactly when there is no validation slice
            validation_runs[f"{strategy} re-ranker"] = {q: reranked_run(train_first[q], head)
                                                        for q, head in scores["validation"].items()}
            fused = {q: reranked_run(train_first[q], fuse_scores(head, train_first[q], alpha))
                     for q, head in scores["validation"].items() if head}
            if fused:
                validation_runs[f"{strategy} re-ranker + fusion"] = fused
        runs[f"{strategy} re-ranker"] = {q: reranked_run(first[q], head) for q, head in scores["test"].items()}
        if alpha is not None:
            runs[f"{strategy} re-ranker + fusion"] = {
                q: reranked_run(first[q], fuse_scores(head, first[q], alpha)) for q, head in scores["test"].items()
                if head}
    return runs, chosen, {"qrels": train_qrels, "runs": validation_runs}


def withheld_weights(out: Path, chosen: dict[str, dict[str, Any]], qrels, first: dict[str, dict[str, float]], *,
                     test: str = "student") -> dict[str, dict]:
    """For each strategy whose best validation weight was held back (its gain there not significant), what that
    weight gives on the test queries, into ``chosen[strategy]["withheld"]``: the price (or the saving) of the rule,
    for the record. It is never used to choose anything. Returns those fused runs by strategy."""
    first_values = evaluate_run(qrels, first, ("ndcg@10",), per_query=True)["ndcg@10"]
    runs = {}
    for strategy, entry in chosen.items():
        sweep = entry["validation"] or {}
        alpha = sweep.get("argmax_alpha")
        if not sweep.get("fallback") or not alpha:
            continue
        heads = json.loads((out / RunFolder.scores(strategy)).read_text())["test"]
        run = {q: reranked_run(first[q], fuse_scores(head, first[q], alpha)) for q, head in heads.items() if head}
        values = evaluate_run(qrels, run, ("ndcg@10",), per_query=True)["ndcg@10"]
        tested = paired_test_on_values(values, first_values, list(qrels), test=test)
        entry["withheld"] = {"alpha": alpha, "ndcg@10": float(np.mean(list(values.values()))), **tested}
        runs[strategy] = run
    return runs


AT_BEST_WEIGHT = " re-ranker + fusion at its best validation weight"


def at_best_weights(runs: dict[str, dict], withheld: dict[str, dict], strategies) -> dict[str, dict]:
    """Each strategy's re-ranker fused at its best validation weight, shipped or withheld by the significance rule:
    the runs on which strategies compare as the paper compares them, whatever the rule let ship."""
    best = {}
    for strategy in strategies:
        run = withheld.get(strategy) or runs.get(f"{strategy} re-ranker + fusion")
        if run is not None:
            best[strategy + AT_BEST_WEIGHT] = run
    return best


def mining_counts(out: Path, strategies) -> dict[str, dict[str, Any]]:
    """Per strategy, how many (query, positive) pairs mining was asked to fill, kept, filled from beyond the rank
    window and left out, and what the false-negative guard held back by rule (from its ``report.json``)."""
    counts = {}
    for strategy in strategies:
        path = out / RunFolder.mined(strategy, "report.json")
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        left_out = report["skipped"].get("too_few_candidates", 0)
        asked = report.get("pairs_asked", report["pairs"] + left_out)
        counts[strategy] = {"pairs": report["pairs"], "pairs_asked": asked,
                            "pairs_filled_beyond_window": report.get("pairs_filled_beyond_window"),
                            "left_out": left_out,
                            "held_back_by_rule": report.get("held_back_by_rule"),
                            "fill_beyond_window": report["config"].get("fill_beyond_window", False)}
    return counts


def document_lengths(split) -> dict[str, int]:
    return {d.id: len((d.content or "").split()) for d in split.corpus}


# The paper's claim is about these: every re-ranker is also tested against their re-ranker of the same kind.
BASELINE_STRATEGIES: tuple[str, ...] = ("random", "bm25")


def evaluate_systems(qrels, runs: dict[str, dict], *, test: str = "student",
                     baseline_strategies: tuple[str, ...] = BASELINE_STRATEGIES, depth: int = 100) -> dict[str, Any]:
    """Metrics with 95% bootstrap intervals, and paired tests against the first stage and the random- and
    BM25-negative re-rankers of the same kind (alone or fused); each test also carries its Holm-adjusted p-value
    (``p_holm``) over all the tests of its metric here, since conclusions are drawn from a table of them."""
    systems: dict[str, Any] = {}
    for name, run in runs.items():
        per_query = evaluate_run(qrels, run, report_metrics(depth), per_query=True)
        # The means from the same per-query values (ranx's mean is theirs), not from ranking the run again.
        metrics = {m: float(np.mean(list(values.values()))) for m, values in per_query.items()}
        systems[name] = {"metrics": metrics, "per_query": per_query,
                         "ci95": {m: bootstrap_ci(per_query[m].values()) for m in TESTED_METRICS}}
    queries = list(qrels)

    def tested(name: str, other: str) -> dict[str, dict[str, float]]:
        return {m: paired_test_on_values(systems[name]["per_query"][m], systems[other]["per_query"][m], queries,
                                         test=test) for m in TESTED_METRICS}

    for name, entry in systems.items():
        if name in (FIRST_STAGE, DENSE_ONLY, LEXICAL_ONLY):
            continue
        comparisons = {"first stage": tested(name, FIRST_STAGE)}
        strategy = name.split(" re-ranker")[0]
        # A baseline is tested against the baselines before it only (bm25 vs random, not random vs bm25 again).
        against = baseline_strategies[: baseline_strategies.index(strategy)] if strategy in baseline_strategies \
            else baseline_strategies
        for baseline in against:
            twin = baseline + name[len(strategy):]
            if twin in runs:
                comparisons[f"{baseline} negatives"] = tested(name, twin)
        entry["vs"] = comparisons
    for metric in TESTED_METRICS:
        family = [versus[metric] for entry in systems.values() for versus in entry.get("vs", {}).values()]
        for comparison, adjusted in zip(family, holm_adjusted([c["p_value"] for c in family])):
            comparison["p_holm"] = adjusted
    return systems


def strategy_pairs(qrels, runs: dict[str, dict], strategies: list[str], *, test: str = "student",
                   shared_only: bool = False, kinds: tuple[str, ...] = (" re-ranker + fusion", " re-ranker")
                   ) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Every strategy's re-ranker against every other of the same kind (alone; fused): nDCG@10 paired tests,
    the row strategy minus the column strategy (clustering against no clustering, dense against BM25, ...).
    ``shared_only``: test each pair on the queries both runs rank, and say how many (the validation slices, which
    differ by a query or two between strategies); otherwise on every query of ``qrels``. Each run is ranked once:
    a query's value does not depend on the other queries, so a pair's test reads the values of its queries."""
    pairs: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for kind in kinds:
        present = [s for s in strategies if s + kind in runs]
        if len(present) < 2:
            continue
        values = {s: evaluate_run(qrels, runs[s + kind], ["ndcg@10"], per_query=True)["ndcg@10"] for s in present}
        pairs[kind.strip()] = {a: {} for a in present}
        for a in present:
            for b in present:
                if b == a:
                    continue
                if shared_only:
                    # In qrels order, so that a randomisation test resamples the same pairs in every process.
                    shared = [q for q in qrels if q in runs[a + kind] and q in runs[b + kind]]
                    pairs[kind.strip()][a][b] = {**paired_test_on_values(values[a], values[b], shared, test=test),
                                                 "queries": len(shared)}
                else:
                    pairs[kind.strip()][a][b] = paired_test_on_values(values[a], values[b], list(qrels), test=test)
    return pairs


def subset_metrics(qrels, runs: dict[str, dict], groups: dict[str, list[str]], *, test: str = "student",
                   depth: int = 100) -> dict[str, Any]:
    """Per query subset (short / long documents): every reported metric of every system with its 95% bootstrap
    interval, and each re-ranker's paired nDCG@10 test against the first stage on that subset's queries."""
    subsets: dict[str, Any] = {}
    for group, query_ids in groups.items():
        sub_qrels = {q: qrels[q] for q in query_ids}
        if not sub_qrels:
            continue
        subsets[group] = {"queries": len(sub_qrels), "systems": {}}
        per_query = {name: evaluate_run(sub_qrels, run, report_metrics(depth), per_query=True)
                     for name, run in runs.items()}
        for name, values_of in per_query.items():
            entry = {m: {"mean": float(np.mean(list(values.values()))), "ci95": bootstrap_ci(values.values())}
                     for m, values in values_of.items()}
            if " re-ranker" in name:
                entry["vs first stage"] = paired_test_on_values(values_of["ndcg@10"],
                                                                per_query[FIRST_STAGE]["ndcg@10"], list(sub_qrels),
                                                                test=test)
            subsets[group]["systems"][name] = entry
    return subsets


def report_metrics(depth: int) -> tuple[str, ...]:
    """The reported metrics, recall at the first stage's depth."""
    return (*(m for m in DEFAULT_METRICS if not m.startswith("recall@")), f"recall@{depth}")


def write_report(out: Path, config, splits: dict[str, Any], stage_records: dict[str, dict], dest: Path | None = None
                 ) -> dict[str, Any]:
    """Evaluate the systems whose stages are in ``out`` on the test split of ``splits`` and write the report files
    into ``dest`` (``out``); what loading each split left out is counted in it."""
    test_split = splits["test"]
    dest = Path(dest or out)
    min_queries = config.training_config().min_validation_queries
    runs, chosen, validation = system_runs(out, config.strategies, config.fusion_rule, min_queries)
    systems = evaluate_systems(test_split.qrels, runs, test=config.significance, depth=config.retrieve_k)
    withheld = withheld_weights(out, chosen, test_split.qrels, runs[FIRST_STAGE], test=config.significance)
    strategies = list(config.strategies)
    groups, median = split_by_document_length(test_split.qrels, document_lengths(test_split))
    members = " + ".join(MemberSpec.coerce(m).label for m in config.members)
    choice = json.loads((out / RunFolder.choice).read_text())
    first_stage = f"ensemble of {members} ({config.combine}) in Qdrant"
    if choice.get("lexical"):
        first_stage += (f", fused with BM25 at weight {choice['lexical_weight']}"
                        f" ({'chosen on ' + choice['chosen_on'] if 'chosen_on' in choice else 'given'})")
    results = {
        "data": f"{Path(config.data).name} ({config.test_split})",
        "test_queries": len(test_split.qrels),
        "first_stage": first_stage,
        "first_stage_choice": choice,
        "rerank_k": config.rerank_k,
        "fusion_rule": config.fusion_rule,
        "retrieve_k": config.retrieve_k,
        "test": "paired t-test" if config.significance == "student" else "paired randomisation test",
        "systems": {name: {k: v for k, v in entry.items() if k != "per_query"} for name, entry in systems.items()},
        "rerankers": chosen,
        "mining": mining_counts(out, config.strategies),
        "strategy_pairs": {
            **strategy_pairs(test_split.qrels, runs, strategies, test=config.significance),
            **strategy_pairs(test_split.qrels, at_best_weights(runs, withheld, strategies), strategies,
                             test=config.significance, kinds=(AT_BEST_WEIGHT,))},
        "validation_pairs": strategy_pairs(validation["qrels"], validation["runs"], strategies,
                                           test=config.significance, shared_only=True),
        "length_median_words": median,
        "subsets": subset_metrics(test_split.qrels, runs, groups, test=config.significance, depth=config.retrieve_k),
        "stage_seconds": {name: record["seconds"] for name, record in stage_records.items()
                          if name.split("/")[0] not in ("mine", "train", "rerank")
                          or name.split("/", 1)[1] in config.strategies},
        # Stages computed elsewhere and carried here (portable.py): their seconds are the other machine's.
        "stages_imported": sorted(name for name, record in stage_records.items() if "imported_from" in record),
        "plan_estimate_seconds": read_estimates(out),
        "left_out_when_loading": {name: {"queries_without_positives": len(split.stats.queries_without_positives),
                                         "unknown_judgements": split.stats.unknown_judgements}
                                  for name, split in splits.items()},
    }
    atomic_write_text(dest / "per_query.json", json.dumps({n: e["per_query"] for n, e in systems.items()}))
    atomic_write_text(dest / "results.md", markdown(results))
    charts(results, dest)
    return results


