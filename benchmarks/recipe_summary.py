"""The recipe study's summary (``recipe_study.py report`` calls it): selection on validation, the winner against the
baseline over seeds, the negative strategies with the winner over seeds, and the issue's targets; JSON, Markdown and
a chart."""

from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path

from seed_repeats import load, tables
from seed_repeats import summarise as summarise_seeds

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text

METRIC = "ndcg@10"


@lru_cache(maxsize=None)
def _per_query(folder: Path) -> dict[str, dict[str, float]]:
    """The run's per-query values of the study's metric, read once however many tables use them."""
    return load(folder, METRIC)[1]


@lru_cache(maxsize=None)
def _training_report(folder: Path, strategy: str) -> dict | None:
    """The run's training report of ``strategy``, read once for the validation tables and curves."""
    path = folder / "train" / strategy / "training_report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _folder(study, run) -> Path:
    return Path(study.config(run.data_set, run.recipe, seed=run.seed).out)


def _seed_runs(study, runs, data_set: str, recipe: str, strategy: str) -> list:
    """The runs of ``recipe`` on ``data_set`` that scored ``strategy``, by seed, with a report."""
    return sorted((r for r in runs if (r.data_set, r.recipe) == (data_set, recipe) and strategy in r.strategies
                   and (_folder(study, r) / "per_query.json").is_file()), key=lambda r: r.seed)


def _renamed(values: dict, prefix: str, systems: list[str]) -> dict:
    return {f"{prefix}: {s}" if prefix else s: values[s] for s in systems if s in values}


def recipe_comparison(study, runs, data_set: str, winner: str, against: str | None = None) -> dict | None:
    """Winner and baseline (or ``against``) on ``select_strategy``, over the seeds both have (per-query values
    averaged)."""
    s, against = study.select_strategy, against or study.baseline
    by_recipe = {r: {run.seed: run for run in _seed_runs(study, runs, data_set, r, s)} for r in (against, winner)}
    seeds = sorted(set.intersection(*(set(v) for v in by_recipe.values())))
    if winner == against or not seeds:
        return None
    systems = [f"{s} re-ranker", f"{s} re-ranker + fusion"]
    loaded = []
    for seed in seeds:
        merged = {}
        for recipe, seeded in by_recipe.items():
            values = _per_query(_folder(study, seeded[seed]))
            merged.update(_renamed(values, recipe, systems))
            merged.setdefault("first stage", values["first stage"])
        loaded.append(merged)
    return {"seeds": seeds, **summarise_seeds(loaded)}


def strategy_comparison(study, runs, data_set: str, winner: str) -> dict | None:
    """Every strategy of the winner's runs that scored all of them, over their seeds."""
    strategies = tuple(study.config(data_set).strategies)
    seeded = [r for r in _seed_runs(study, runs, data_set, winner, strategies[0])
              if set(strategies) <= set(_scored(study, r))]
    if not seeded:
        return None
    return {"seeds": [r.seed for r in seeded], **summarise_seeds([_per_query(_folder(study, r)) for r in seeded])}


def _scored(study, run) -> list[str]:
    return [name[: -len(" re-ranker")] for name in _per_query(_folder(study, run)) if name.endswith(" re-ranker")]


def _validation_table(study, selection: dict) -> str:
    names = list(study.data_sets)
    lines = [f"| recipe | {' | '.join(names)} | mean |", "|---|" + "---|" * (len(names) + 1)]
    for recipe, row in selection["validation_ndcg@10"].items():
        cells = " | ".join("" if row[n] is None else f"{row[n]:.4f}" for n in names)
        average = selection["mean"].get(recipe)
        mark = " (chosen)" if recipe == selection["winner"] else ""
        lines.append(f"| {recipe}{mark} | {cells} | {'' if average is None else f'{average:.4f}'} |")
    return "\n".join(lines)


def _against_selected(strategy: str):
    """The pairs the paper's comparison reads: the first stage against each system, and ``strategy``'s re-ranker
    against every other system of its kind (alone against alone, fused against fused)."""
    def kind(system: str) -> bool:
        return system.endswith("+ fusion")

    def keep(a: str, b: str) -> bool:
        ours = a.startswith(f"{strategy} re-ranker") or b.startswith(f"{strategy} re-ranker")
        return a == "first stage" or (ours and kind(a) == kind(b))
    return keep


def _same_system(a: str, b: str) -> bool:
    """Pairs of two recipes' comparison worth reading: the first stage against each, and the same system
    ("recipe: system") of both recipes."""
    return a == "first stage" or b == "first stage" or a.split(": ", 1)[1] == b.split(": ", 1)[1]


def _focus(summary: dict, keep) -> dict:
    """The table's pairs reduced to those ``keep`` accepts (row, column)."""
    pairs = {k: v for k, v in summary["pairs_on_seed_averaged_queries"].items() if keep(*k.split(" | "))}
    return {**summary, "pairs_on_seed_averaged_queries": pairs}


def targets(study, runs, winner: str) -> dict:
    """The winner's select_strategy re-ranker, alone and fused, against the first stage over its seeds: the figures
    the targets are read against (the thresholds are the issue's, stated beside the table)."""
    s, found = study.select_strategy, {}
    for data_set in study.data_sets:
        seeded = _seed_runs(study, runs, data_set, winner, s)
        if not seeded:
            continue
        systems = ["first stage", f"{s} re-ranker", f"{s} re-ranker + fusion"]
        summary = summarise_seeds([_renamed(_per_query(_folder(study, r)), "", systems) for r in seeded])
        rows, pairs = summary["systems"], summary["pairs_on_seed_averaged_queries"]
        first = rows["first stage"]["mean"]
        for kind, system in (("alone", f"{s} re-ranker"), ("fused", f"{s} re-ranker + fusion")):
            found[f"{data_set} {kind}"] = {"seeds": [r.seed for r in seeded], "mean": rows[system]["mean"],
                                           "first_stage": first, "gain": round(rows[system]["mean"] - first, 4),
                                           "p_value": pairs[f"first stage | {system}"]["p_value"]}
    return found


def recipes_on_test(study, runs, seed: int = 0) -> dict:
    """Each recipe's select_strategy re-ranker on the test queries at ``seed``: alone and fused, and the difference
    from the baseline recipe (paired t-test per query). Chosen on validation; this is what the choice gives."""
    from scipy.stats import ttest_rel

    s, table = study.select_strategy, {}
    for data_set in study.data_sets:
        by_recipe = {r.recipe: _per_query(_folder(study, r)) for r in runs
                     if r.data_set == data_set and r.seed == seed and s in r.strategies and r.recipe in study.recipes
                     and (_folder(study, r) / "per_query.json").is_file()}
        base = by_recipe.get(study.baseline)
        for recipe, values in by_recipe.items():
            row = {}
            for kind, system in (("alone", f"{s} re-ranker"), ("fused", f"{s} re-ranker + fusion")):
                queries = sorted(values[system])
                mine = [values[system][q] for q in queries]
                row[kind] = round(sum(mine) / len(mine), 4)
                if base is not None and recipe != study.baseline:
                    theirs = [base[system][q] for q in queries]
                    row[f"{kind}_vs_{study.baseline}"] = round(row[kind] - sum(theirs) / len(theirs), 4)
                    row[f"{kind}_p"] = float(ttest_rel(mine, theirs).pvalue)
            row["first_stage"] = round(sum(values["first stage"].values()) / len(values["first stage"]), 4)
            table.setdefault(recipe, {})[data_set] = row
    return table


def _recipes_table(study, table: dict) -> str:
    names = list(study.data_sets)
    head = " | ".join(f"{n} alone | {n} fused" for n in names)
    lines = [f"| recipe | {head} |", "|---|" + "---|" * (2 * len(names))]
    for recipe, by_set in table.items():
        cells = []
        for n in names:
            row = by_set.get(n)
            for kind in ("alone", "fused"):
                if row is None:
                    cells.append("")
                    continue
                versus = f" ({row[f'{kind}_vs_{study.baseline}']:+.3f}, p={_p(row[f'{kind}_p'])})" \
                    if f"{kind}_p" in row else ""
                cells.append(f"{row[kind]:.4f}{versus}")
        lines.append(f"| {recipe} | {' | '.join(cells)} |")
    firsts = {n: next((by_set[n]["first_stage"] for by_set in table.values() if n in by_set), None) for n in names}
    lines.append("| (first stage) | " + " | ".join(f"{firsts[n]:.4f} | {firsts[n]:.4f}" if firsts[n] else " | "
                                                   for n in names) + " |")
    return "\n".join(lines)


def recipes_chart(study, selection: dict, table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, recipes = list(study.data_sets), list(selection["validation_ndcg@10"])
    figure, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names):
        x = range(len(recipes))
        series = (("validation, alone", [selection["validation_ndcg@10"][r][name] for r in recipes]),
                  ("test, alone", [table.get(r, {}).get(name, {}).get("alone") for r in recipes]),
                  ("test, fused", [table.get(r, {}).get(name, {}).get("fused") for r in recipes]))
        for i, (label, values) in enumerate(series):
            axis.bar([j + (i - 1) * 0.27 for j in x], [v or 0 for v in values], 0.27, label=label)
        first = next((table[r][name]["first_stage"] for r in recipes if name in table.get(r, {})), None)
        if first:
            axis.axhline(first, color="black", linestyle="--", label="first stage (test)")
        shown = [v for _, values in series for v in values if v]
        if not shown:
            continue
        axis.set_ylim(max(0.0, min(shown) - 0.05), max(shown) + 0.02)
        axis.set_xticks(list(x), recipes, rotation=25, fontsize=8)
        axis.set_title(f"{name}: nDCG@10 by training recipe (seed 0)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def validation_by_seed(study, runs, recipes: tuple[str, ...]) -> dict:
    """The trainer's validation nDCG@10 of each recipe's select_strategy re-ranker alone, by data set and seed (as
    the selection reads it; the seed draws the held-out queries, so compare recipes within a seed)."""
    table: dict = {}
    for run in sorted(runs, key=lambda r: (r.data_set, r.seed)):
        report = _training_report(_folder(study, run), study.select_strategy)
        if run.recipe in recipes and study.select_strategy in run.strategies and report is not None:
            value = report["validation"][f"validation_{METRIC}"]
            table.setdefault(run.data_set, {}).setdefault(f"seed{run.seed}", {})[run.recipe] = value
    return table


def _by_seed_table(table: dict, recipes: tuple[str, ...]) -> str:
    lines = [f"| data set | seed | {' | '.join(recipes)} |", "|---|---|" + "---|" * len(recipes)]
    for data_set, seeds in table.items():
        for seed, row in seeds.items():
            cells = " | ".join("" if r not in row else f"{row[r]:.4f}" for r in recipes)
            lines.append(f"| {data_set} | {seed} | {cells} |")
    return "\n".join(lines)


def validation_curves(study, runs) -> dict:
    """Each run's validation nDCG@10 of its select_strategy re-ranker alone after each evaluation, as (epoch, value)
    by data set and run, and the first stage's on the same queries (by seed: the seed draws the held-out queries).
    These are sentence-transformers' evaluator's figures during training: binary relevance, on the held-out
    queries with a relevant candidate; the selection's are the trainer's graded figures on all of them."""
    curves: dict = {}
    for run in sorted(runs, key=lambda r: (r.data_set, r.recipe, r.seed)):
        report = _training_report(_folder(study, run), study.select_strategy)
        if study.select_strategy not in run.strategies or report is None:
            continue
        history = report["history"]
        evaluations = [e for e in history if f"eval_validation_{METRIC}" in e]
        entry = curves.setdefault(run.data_set, {"first_stage": {}, "runs": {}})
        entry["runs"][f"{run.recipe}/seed{run.seed}"] = [[round(e["epoch"], 3), e[f"eval_validation_{METRIC}"]]
                                                          for e in evaluations]
        if evaluations:
            entry["first_stage"][f"seed{run.seed}"] = evaluations[-1][f"eval_validation_base_{METRIC}"]
    return curves


def curves_chart(study, curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        return
    recipes = [*study.recipes, *study.probes]
    colours = {r: plt.get_cmap("tab10")(i) for i, r in enumerate(recipes)}
    styles = ["-", "--", ":", "-."]
    figure, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4), squeeze=False)
    for axis, (name, entry) in zip(axes[0], curves.items()):
        for label, points in entry["runs"].items():
            recipe, seed = label.split("/")
            axis.plot([p[0] for p in points], [p[1] for p in points], styles[int(seed[4:]) % len(styles)],
                      marker="o", color=colours[recipe], label=label)
        for seed, value in entry["first_stage"].items():
            axis.axhline(value, color="black", linestyle=styles[int(seed[4:]) % len(styles)], linewidth=0.8,
                         label=f"first stage/{seed}")
        axis.set(title=f"{name}: validation nDCG@10 during training, re-ranker alone", xlabel="epoch",
                 ylabel="nDCG@10 (binary, queries with a relevant candidate)")
        axis.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def chart(study, comparisons: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {ds: s for ds, s in comparisons.items() if s is not None}
    if not shown:
        return
    figure, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4), squeeze=False)
    for axis, (data_set, summary) in zip(axes[0], shown.items()):
        rows = summary["systems"]
        strategies = [n[: -len(" re-ranker")] for n in rows if n.endswith(" re-ranker")]
        x = range(len(strategies))
        for offset, suffix, label in ((-0.2, " re-ranker", "re-ranker alone"), (0.2, " re-ranker + fusion", "fused")):
            means = [rows[s + suffix]["mean"] for s in strategies]
            errors = [rows[s + suffix]["sd"] or 0 for s in strategies]
            axis.bar([i + offset for i in x], means, 0.4, yerr=errors, capsize=3, label=label)
        axis.axhline(rows["first stage"]["mean"], color="black", linestyle="--", label="first stage")
        axis.set_xticks(list(x), strategies, rotation=20)
        low = min(min(r["mean"] for r in rows.values()) - 0.03, rows["first stage"]["mean"] - 0.05)
        axis.set_ylim(max(0.0, low), None)
        axis.set_title(f"{data_set}: test nDCG@10, mean ± sd over seeds {summary['seeds']}")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def probes(study, runs, winner: str) -> dict:
    """Each probe (a recipe tried beside the chosen one, never selected) against the winner: validation by seed,
    test over the seeds both have, and the targets' figures."""
    found = {}
    for probe in study.probes:
        found[probe] = {"validation_by_seed": validation_by_seed(study, runs, (winner, probe)),
                        f"against_{winner}": {ds: recipe_comparison(study, runs, ds, probe, winner)
                                              for ds in study.data_sets},
                        "targets": targets(study, runs, probe)}
    return found


def _probes_markdown(study, winner: str, found: dict) -> list[str]:
    lines = []
    for probe, entry in found.items():
        settings = ", ".join(f"{k} {v}" for k, v in study.probes[probe].items())
        lines += ["", f"## Probe {probe}: {settings} (never selected)", "",
                  f"Validation nDCG@10 by training seed ({winner}, {probe}):", "",
                  _by_seed_table(entry["validation_by_seed"], (winner, probe))]
        for ds, summary in entry[f"against_{winner}"].items():
            if summary:
                lines += ["", f"{ds}, test, seeds {summary['seeds']}:", "", tables(_focus(summary, _same_system))]
        lines += ["", "Against the targets:", "", *_targets_table(entry["targets"])]
    return lines


def _targets_table(found: dict) -> list[str]:
    return ["| | seeds | mean | first stage | gain | p |", "|---|---|---|---|---|---|",
            *(f"| {name} | {t['seeds']} | {t['mean']:.4f} | {t['first_stage']:.4f} | {t['gain']:+.4f} | "
              f"{_p(t['p_value'])} |" for name, t in found.items())]


def summarise(study, runs, selection: dict, into: Path, states: Path) -> dict:
    """Everything the study shows, from the runs' reports: ``into``/study.json, study.md, the charts, each run's
    report and the states they came from."""
    into.mkdir(parents=True, exist_ok=True)
    winner = selection["winner"] or study.baseline
    recipes = {ds: recipe_comparison(study, runs, ds, winner) for ds in study.data_sets}
    strategies = {ds: strategy_comparison(study, runs, ds, winner) for ds in study.data_sets}
    focused = {ds: s and _focus(s, _against_selected(study.select_strategy)) for ds, s in strategies.items()}
    recipe_table = recipes_on_test(study, runs)
    result = {"selection": selection, "recipes_on_test_seed0": recipe_table, "winner_against_baseline": recipes,
              "strategies_with_winner": strategies, "targets": targets(study, runs, winner),
              "validation_by_seed": validation_by_seed(study, runs, (winner, study.baseline)),
              "validation_curves": validation_curves(study, runs), "probes": probes(study, runs, winner),
              "runs": sorted(r.name + " " + ",".join(r.strategies) for r in runs), "machine": machine()}
    atomic_write_text(into / "study.json", json.dumps(result, indent=2) + "\n")
    chart(study, strategies, into / "chart_strategies.png")
    recipes_chart(study, selection, recipe_table, into / "chart_recipes.png")
    curves_chart(study, result["validation_curves"], into / "chart_validation_curves.png")
    atomic_write_text(into / "study.md", _markdown(study, selection, winner, recipe_table, recipes, focused,
                                                 result["targets"], result["validation_by_seed"], result["probes"]))
    _copy_reports(study, runs, into, states)
    print((into / "study.md").read_text(encoding="utf-8"))
    print(f"Written: {into / 'study.json'}, {into / 'study.md'}, {into / 'chart_recipes.png'}, "
          f"{into / 'chart_validation_curves.png'}")
    return result


def _markdown(study, selection: dict, winner: str, recipe_table: dict, recipes: dict, focused: dict,
              found: dict, by_seed: dict, probed: dict) -> str:
    pair = tuple(dict.fromkeys((winner, study.baseline)))
    lines = ["# Recipe study", "", f"Selection rule: {selection['rule']}.", "", "## Validation nDCG@10 (seed 0)", "",
             _validation_table(study, selection), "", f"## Validation nDCG@10 by training seed ({', '.join(pair)})",
             "", _by_seed_table(by_seed, pair), "", "## Test nDCG@10 (seed 0; difference from "
             f"{study.baseline}, paired t-test)", "", _recipes_table(study, recipe_table)]
    for ds in study.data_sets:
        if recipes[ds]:
            lines += ["", f"## {ds}: {winner} against {study.baseline} (test, seeds {recipes[ds]['seeds']})", "",
                      tables(_focus(recipes[ds], _same_system))]
        if focused[ds]:
            lines += ["", f"## {ds}: negative strategies with {winner} (test, seeds {focused[ds]['seeds']})", "",
                      tables(focused[ds])]
    lines += ["", f"## Against the targets ({winner}, {study.select_strategy})", "",
              "Targets: SciFact alone >= first stage + 0.02 with p < 0.05, SciFact fused >= 0.78; the second data "
              "set fused >= its first stage + 0.02 with p < 0.05.", "", *_targets_table(found)]
    lines += _probes_markdown(study, winner, probed)
    return "\n".join(lines) + "\n"


def _copy_reports(study, runs, into: Path, states: Path) -> None:
    """Each run's own report beside the summary, and the states they came from (to rebuild them all)."""
    for kind in ("runs", "states"):
        shutil.rmtree(into / kind, ignore_errors=True)
    for run in runs:
        target = into / "runs" / run.name
        target.mkdir(parents=True, exist_ok=True)
        for name in ("results.md", "results.json"):
            if (_folder(study, run) / name).is_file():
                shutil.copyfile(_folder(study, run) / name, target / name)
        shutil.copytree(states / run.name, into / "states" / run.name)
