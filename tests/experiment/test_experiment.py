import json
import math
from dataclasses import replace

import pytest

from haystack_hardneg.evaluate.significance import bootstrap_ci
from haystack_hardneg.evaluate.subsets import split_by_document_length
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.report import (
    AT_BEST_WEIGHT,
    at_best_weights,
    evaluate_systems,
    reranked_run,
    strategy_pairs,
    withheld_weights,
)
from haystack_hardneg.experiment.runner import Experiment

from experiment.tiny_experiment import tiny_config


def test_experiment_writes_its_report_and_a_rerun_redoes_nothing(fixtures, tiny_model, trainable_model, tmp_path):
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path)
    first = Experiment(config, progress_bar=False).run()
    out = tmp_path / "run"
    for name in ("results.json", "results.md", "per_query.json", "config.json", "environment.json",
                 "chart_ndcg.png", "chart_long_short.png", "stages.json"):
        assert (out / name).is_file(), name
    assert (out / "chart_ndcg.png").stat().st_size > 5000
    assert set(first["stages_ran"]) == {"index", "lexical_index", "first_stage", "hybrid",
                                        "mine/random", "mine/ensemble_cluster", "train/random",
                                        "train/ensemble_cluster", "rerank/random", "rerank/ensemble_cluster"}
    systems = first["systems"]
    assert {"first stage", "(dense ensemble alone)", "(BM25 alone)", "ensemble_cluster re-ranker"} <= set(systems)
    choice = first["first_stage_choice"]
    assert choice["lexical_weight"] in [round(0.1 * i, 1) for i in range(11)] and len(choice["by_weight"]) == 11
    assert first["rerankers"]["random"]["validation"]["queries"] > 0  # fusion weight chosen on held-out queries
    assert first["rerankers"]["random"]["precision"] == {"asked": "fp32", "run": "fp32"}
    versus = systems["ensemble_cluster re-ranker"]["vs"]
    assert set(versus) == {"first stage", "random negatives"}
    assert 0 <= versus["random negatives"]["ndcg@10"]["p_value"] <= 1
    assert "vs" not in systems["first stage"] and "random negatives" not in systems["random re-ranker"]["vs"]
    pairs = first["strategy_pairs"]["re-ranker"]
    assert set(pairs) == {"random", "ensemble_cluster"}
    forth, back = pairs["ensemble_cluster"]["random"], pairs["random"]["ensemble_cluster"]
    assert forth["difference"] == pytest.approx(-back["difference"])
    assert forth["p_value"] == pytest.approx(back["p_value"])
    assert forth.items() <= versus["random negatives"]["ndcg@10"].items()
    # Holm's adjustment over the table's tests: never below the raw p-value, and the smallest is multiplied by their
    # number (capped at 1).
    tests = [v["ndcg@10"] for entry in systems.values() for v in entry.get("vs", {}).values()]
    assert len(tests) >= 4 and all(t["p_holm"] >= t["p_value"] for t in tests)
    smallest = min(tests, key=lambda t: t["p_value"])
    assert smallest["p_holm"] == pytest.approx(min(1.0, len(tests) * smallest["p_value"]))
    assert "## Strategies against each other (test queries): re-ranker," in (out / "results.md").read_text()
    # The same comparison on the validation slice, where settings are chosen: the fused re-ranker there is the one
    # whose fusion weight was chosen, so its nDCG@10 is the sweep's best.
    on_validation = first["validation_pairs"]["re-ranker + fusion"]["ensemble_cluster"]["random"]
    chosen = first["rerankers"]["ensemble_cluster"]["validation"]
    assert on_validation["queries"] == chosen["queries"] > 0
    assert on_validation["system"] == pytest.approx(chosen["best"]["ndcg@10"])
    back = first["validation_pairs"]["re-ranker + fusion"]["random"]["ensemble_cluster"]
    assert back["difference"] == pytest.approx(-on_validation["difference"])
    assert "## Strategies against each other (validation slice" in (out / "results.md").read_text()
    # The re-ranked head is followed by the rest of the first stage: depth metrics match the first stage's.
    assert systems["random re-ranker"]["metrics"]["recall@20"] == systems["first stage"]["metrics"]["recall@20"]
    low, high = systems["first stage"]["ci95"]["ndcg@10"]
    assert low <= systems["first stage"]["metrics"]["ndcg@10"] <= high
    assert sum(s["queries"] for s in first["subsets"].values()) == first["test_queries"]
    # The short / long halves carry every reported metric, and each re-ranker's test against the first stage there.
    long_half = first["subsets"]["long"]["systems"]
    assert set(long_half["first stage"]) == {"ndcg@10", "mrr@10", "precision@1", "precision@5", "precision@10",
                                             "recall@20"}
    on_long = long_half["random re-ranker"]["vs first stage"]
    assert on_long["baseline"] == pytest.approx(long_half["first stage"]["ndcg@10"]["mean"])
    assert on_long["system"] == pytest.approx(long_half["random re-ranker"]["ndcg@10"]["mean"])
    assert "## Long relevant documents" in (out / "results.md").read_text()
    per_query = json.loads((out / "per_query.json").read_text())
    assert set(per_query["first stage"]) == set(long_half["first stage"])
    assert "| ensemble_cluster re-ranker |" in (out / "results.md").read_text()
    assert "R@20" in (out / "results.md").read_text()
    versions = json.loads((out / "environment.json").read_text())["versions"]
    assert versions["haystack-ai"] and versions["sentence-transformers"]

    again = Experiment(config, progress_bar=False).run()
    assert again["stages_ran"] == [] and again["systems"] == first["systems"]
    # The fusion rule only changes the report.
    one_se = Experiment(replace(config, fusion_rule="one_se"), progress_bar=False).run()
    assert one_se["stages_ran"] == [] and one_se["fusion_rule"] == "one_se"
    assert {c["validation"]["rule"] for c in one_se["rerankers"].values()} == {"one_se"}
    assert "rule: one_se" in (out / "results.md").read_text()
    with pytest.raises(ValueError, match="fusion_rule must be one of"):
        replace(config, fusion_rule="best")

    # Re-ranking on an exported backend redoes the re-ranking only, with the same scores (ONNX at fp32), its
    # latency and its check against fp32 recorded.
    exported = Experiment(replace(config, rerank_backend={"backend": "onnx"}), progress_bar=False).run()
    assert set(exported["stages_ran"]) == {"rerank/random", "rerank/ensemble_cluster"}
    on_onnx = exported["rerankers"]["ensemble_cluster"]
    assert on_onnx["backend"] == "onnx" and on_onnx["file_name"] == "onnx/model.onnx"
    assert on_onnx["export_gate"]["passed"] and 0 < on_onnx["ms_per_query_median"] <= on_onnx["ms_per_query_p95"]
    for name in ("random re-ranker", "ensemble_cluster re-ranker"):
        assert exported["systems"][name]["metrics"]["ndcg@10"] == pytest.approx(
            first["systems"][name]["metrics"]["ndcg@10"], abs=1e-6)
    assert "ensemble_cluster re-ranked with onnx/model.onnx: nDCG@10 on its validation candidates" in (
        out / "results.md").read_text()


def test_a_change_reruns_only_the_stages_it_touches(fixtures, tiny_model, trainable_model, tmp_path):
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, strategies=["random"])
    Experiment(config, progress_bar=False).run()
    fixed_weight = replace(config, lexical={"language": "english", "weight": 0.5})
    changed = Experiment(fixed_weight, progress_bar=False).run()
    # The first stage changed: re-rankers are validated (and tested) on its candidates, so they are redone.
    assert set(changed["stages_ran"]) == {"hybrid", "train/random", "rerank/random"}
    assert changed["first_stage_choice"]["lexical_weight"] == 0.5

    longer = replace(fixed_weight, training={**config.training, "epochs": 2})
    changed = Experiment(longer, progress_bar=False).run()
    assert set(changed["stages_ran"]) == {"train/random", "rerank/random"}


def test_interim_report_covers_the_strategies_finished_so_far(fixtures, tiny_model, trainable_model, tmp_path):
    from haystack_hardneg.experiment.interim import interim_report

    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, strategies=["random"])
    with pytest.raises(ValueError, match="finished re-ranking"):
        interim_report(config, tmp_path / "interim")
    Experiment(config, progress_bar=False).run()
    # Holds the lock.
    running = Experiment(replace(config, strategies=["random", "ensemble_cluster"]), progress_bar=False)
    results = interim_report(replace(config, strategies=["random", "ensemble_cluster"]), tmp_path / "interim")
    running.close()
    assert results["finished_strategies"] == ["random"] and "random re-ranker" in results["systems"]
    assert (tmp_path / "interim" / "results.md").is_file() and (tmp_path / "interim" / "chart_ndcg.png").is_file()
    # The command line's overrides reach the config: the file names only bm25, which has not run (its interim report
    # would be refused), --strategies random reports random; another seed is another run.
    import subprocess
    import sys
    from dataclasses import asdict

    import yaml

    (tmp_path / "config.yml").write_text(yaml.safe_dump({**asdict(config), "strategies": ["bm25"]}))
    command = [sys.executable, "-m", "haystack_hardneg.cli", "experiment", str(tmp_path / "config.yml"), "--out",
               str(tmp_path / "run"), "--strategies", "random", "--interim-report"]
    done = subprocess.run([*command, str(tmp_path / "cli")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Strategies finished so far: ['random']" in done.stdout
    done = subprocess.run([*command, str(tmp_path / "cli-seed"), "--seed", "1"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0 and "other settings" in done.stderr
    with pytest.raises(ValueError, match="another folder"):
        interim_report(config, tmp_path / "run")
    # Settings changed since the run: what the folder holds is not this config's result.
    with pytest.raises(ValueError, match=r"\(random\) was run with other settings"):
        interim_report(replace(config, training={**config.training, "epochs": 2}), tmp_path / "stale")
    with pytest.raises(ValueError, match="first stage recorded"):
        interim_report(replace(config, lexical={"language": "english", "weight": 0.2}), tmp_path / "stale")
    assert not (tmp_path / "stale").exists()
    # One strategy's options changed: the others are still reported, that one is named.
    with_variant = replace(config, strategies=["random", "v"], variants={"v": {"strategy": "bm25"}})
    Experiment(with_variant, progress_bar=False).run()
    changed = replace(with_variant, variants={"v": {"strategy": "bm25", "num_negatives": 1}})
    results = interim_report(changed, tmp_path / "partial")
    assert results["finished_strategies"] == ["random"] and results["stale_strategies"] == ["v"]
    assert "v re-ranker" not in results["systems"]
    assert "train/random" in results["stage_seconds"] and "train/v" not in results["stage_seconds"]
    # A later run with other settings rewrote the first stage's files and was cut off before the hybrid stage: the
    # hybrid and re-ranking records still match, but what the report would read is not this config's.
    stages = tmp_path / "run" / "stages.json"
    records = json.loads(stages.read_text())
    records["first_stage"]["key"] = "another-first-stage"
    stages.write_text(json.dumps(records))
    with pytest.raises(ValueError, match="first stage recorded"):
        interim_report(with_variant, tmp_path / "rewritten")


def test_one_experiment_per_run_folder(fixtures, tiny_model, trainable_model, tmp_path):
    from haystack_hardneg.experiment.stages import ExperimentBusyError

    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path)
    running = Experiment(config, progress_bar=False)
    with pytest.raises(ExperimentBusyError, match="Another experiment"):
        Experiment(config, progress_bar=False)
    running.close()
    Experiment(config, progress_bar=False).close()


def test_a_config_is_read_from_yaml_with_data_beside_it(fixtures, tmp_path):
    config_file = tmp_path / "experiment.yml"
    (tmp_path / "data").symlink_to(fixtures / "scifact-tiny")
    config_file.write_text("data: data\ntraining:\n  base_model: $HARDNEG_MODELS/all-MiniLM-L6-v2\n"
                           "strategies: [random, bm25]\n")
    config = ExperimentConfig.from_yaml(config_file, out=str(tmp_path / "out")).resolved()
    assert config.data == str((tmp_path / "data").resolve()) and config.strategies == ["random", "bm25"]
    assert config.training["base_model"].endswith("hardneg-models/all-MiniLM-L6-v2")
    config_file.write_text("data: data\ntraining: {base_model: x}\nstrategy: [random]\n")
    with pytest.raises(ValueError, match="unknown setting"):
        ExperimentConfig.from_yaml(config_file)
    with pytest.raises(ValueError, match="Unknown strategies"):
        ExperimentConfig(data="d", training={"base_model": "x"}, strategies=["clusters"])


def test_a_variant_mines_with_its_own_options_and_leaves_the_built_in_keys_alone(fixtures, tiny_model,
                                                                                 trainable_model, tmp_path):

    variants = {"cluster_guarded": {"strategy": "ensemble_cluster", "guard_ratio": 0.5}}
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, variants=variants,
                     strategies=["ensemble_cluster", "cluster_guarded"])
    experiment = Experiment(config, progress_bar=False)
    keys = {name.split("/")[1]: key for name, key in
            experiment.ensure("mine/ensemble_cluster", "mine/cluster_guarded").items()}
    experiment.close()
    plain = Experiment(replace(config, variants={}, strategies=["ensemble_cluster"]), progress_bar=False)
    assert plain.ensure("mine/ensemble_cluster")["mine/ensemble_cluster"] == keys["ensemble_cluster"]
    assert plain.cache.reused == ["mine/ensemble_cluster"] and plain.cache.ran == []  # the same key: not redone
    plain.close()
    reports = {s: json.loads((tmp_path / "run" / "mine" / s / "report.json").read_text()) for s in keys}
    # The base mining has no false-negative guard; the variant holds back what scores above half the positive.
    assert reports["ensemble_cluster"]["suspected_positives"] == 0
    assert reports["cluster_guarded"]["suspected_positives"] > 0
    assert reports["cluster_guarded"]["variant_options"] == {"guard_ratio": 0.5}
    assert keys["cluster_guarded"] != keys["ensemble_cluster"]


def test_variants_are_checked_before_any_work():
    base = dict(data="d", training={"base_model": "x"})
    with pytest.raises(ValueError, match="needs strategy"):
        ExperimentConfig(**base, variants={"v": {"guard_ratio": 0.5}}, strategies=["v"])
    with pytest.raises(ValueError, match="unknown mining option"):
        ExperimentConfig(**base, variants={"v": {"strategy": "ensemble", "guard": 0.5}}, strategies=["v"])
    with pytest.raises(ValueError, match="folder-safe"):
        ExperimentConfig(**base, variants={"random": {"strategy": "ensemble"}}, strategies=["random"])
    with pytest.raises(ValueError, match="Variant 'v': lexical_weight applies to"):
        ExperimentConfig(**base, variants={"v": {"strategy": "bm25", "lexical_weight": 0.5}}, strategies=["v"])
    with pytest.raises(ValueError, match="Variant 'v': rank_window"):
        ExperimentConfig(**base, mining={"rank_window": [0, 100]}, variants={"v": {"strategy": "ensemble",
                                                                                  "rank_window": [50, 10]}},
                         strategies=["v"])
    ExperimentConfig(**base, variants={"v": {"strategy": "ensemble_cluster", "lexical_weight": 0.5}},
                     strategies=["v"])
    with pytest.raises(ValueError, match="Strategy 'random' with the mining settings: lexical_weight applies to"):
        ExperimentConfig(**base, mining={"lexical_weight": 0.5}, strategies=["ensemble", "random"])
    with pytest.raises(ValueError, match="named twice"):
        ExperimentConfig(**base, strategies=["random", "random"])
    with pytest.raises(ValueError, match="mining: unknown option"):
        ExperimentConfig(**base, mining={"negatives": 5})
    two = [{"model": "a"}, {"model": "b"}]
    with pytest.raises(ValueError, match="Strategy 'dense' .*combine='concat'"):
        ExperimentConfig(**base, members=two, combine="mean", strategies=["dense"])
    with pytest.raises(ValueError, match="Variant 'v': member=2"):
        ExperimentConfig(**base, members=two, variants={"v": {"strategy": "dense", "member": 2}}, strategies=["v"])
    ExperimentConfig(**base, members=two, variants={"v": {"strategy": "dense", "member": 1}}, strategies=["v"])


def test_missing_data_is_named_before_any_work(tmp_path, tiny_model, trainable_model, fixtures):
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, data=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        Experiment(config, progress_bar=False)


def test_reranked_head_then_first_stage_tail():
    first = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    run = reranked_run(first, {"b": 0.99, "a": 0.1})
    assert sorted(run, key=run.get, reverse=True) == ["b", "a", "c", "d"]


def test_a_weight_held_back_by_the_significance_rule_is_reported_on_test_for_the_record(tmp_path):
    # The first stage puts the relevant document second on every query; the re-ranker puts it first.
    queries = [f"q{i}" for i in range(6)]
    qrels = {q: {f"{q}-rel": 1} for q in queries}
    first = {q: {f"{q}-x": 2.0, f"{q}-rel": 1.0, f"{q}-y": 0.5} for q in queries}
    (tmp_path / "rerank").mkdir()
    heads = {q: {f"{q}-x": 0.1, f"{q}-rel": 0.9, f"{q}-y": 0.0} for q in queries}
    for strategy in ("random", "bm25"):
        (tmp_path / "rerank" / f"{strategy}.json").write_text(json.dumps({"test": heads}))
    chosen = {"random": {"validation": {"fallback": "no fusion weight beat the first stage", "argmax_alpha": 0.7}},
              "bm25": {"validation": {"fallback": None, "argmax_alpha": 0.7}}}
    withheld = withheld_weights(tmp_path, chosen, qrels, first)
    assert "withheld" not in chosen["bm25"]  # shipped: nothing held back
    held = chosen["random"]["withheld"]
    assert held["alpha"] == 0.7 and held["ndcg@10"] == pytest.approx(1.0)
    assert held["difference"] == pytest.approx(1.0 - 1 / math.log2(3))
    # Strategies compare at their best validation weights: the withheld run for random, the shipped one for bm25
    # (here the first stage's order, so random's withheld weight is better by exactly the gain above).
    runs = {"bm25 re-ranker + fusion": first, "random re-ranker + fusion": first}
    best = at_best_weights(runs, withheld, ["random", "bm25"])
    assert best["random" + AT_BEST_WEIGHT] is withheld["random"] and best["bm25" + AT_BEST_WEIGHT] is first
    pairs = strategy_pairs(qrels, best, ["random", "bm25"], kinds=(AT_BEST_WEIGHT,))
    assert pairs[AT_BEST_WEIGHT.strip()]["random"]["bm25"]["difference"] == pytest.approx(held["difference"])


def test_every_re_ranker_is_tested_against_the_random_and_bm25_negative_ones_of_its_kind():
    qrels = {str(q): {f"rel{q}": 1} for q in range(12)}
    buried = {str(q): {**{f"d{i}": 1 - 0.1 * i for i in range(5)}, f"rel{q}": 0.1} for q in range(12)}
    on_top = {str(q): {**{f"d{i}": 0.5 - 0.1 * i for i in range(5)}, f"rel{q}": 0.9 if q % 3 else 0.45}
              for q in range(12)}
    runs = {"first stage": buried, "random re-ranker": buried, "bm25 re-ranker": buried,
            "ensemble_cluster re-ranker": on_top, "ensemble_cluster re-ranker + fusion": on_top,
            "bm25 re-ranker + fusion": buried}
    systems = evaluate_systems(qrels, runs, depth=10)
    assert set(systems["ensemble_cluster re-ranker"]["vs"]) == {"first stage", "random negatives", "bm25 negatives"}
    # "+ fusion" is compared with the fused twin, which exists only for bm25 here
    assert set(systems["ensemble_cluster re-ranker + fusion"]["vs"]) == {"first stage", "bm25 negatives"}
    versus_bm25 = systems["ensemble_cluster re-ranker"]["vs"]["bm25 negatives"]["ndcg@10"]
    assert versus_bm25["difference"] > 0.4 and versus_bm25["p_value"] < 1e-6
    assert set(systems["bm25 re-ranker"]["vs"]) == {"first stage", "random negatives"}
    assert systems["bm25 re-ranker"]["vs"]["random negatives"]["ndcg@10"]["difference"] == 0
    assert set(systems["random re-ranker"]["vs"]) == {"first stage"}  # not bm25 vs random a second time


def test_long_and_short_document_queries():
    lengths = {"d1": 10, "d2": 20, "d3": 300, "d4": 400}
    groups, median = split_by_document_length({"q1": {"d1": 1}, "q2": {"d4": 1}, "q3": {"d2": 1, "d4": 1},
                                               "q4": {"d3": 0}}, lengths)
    assert median == 160 and groups == {"short": ["q1"], "long": ["q2", "q3"]}


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_queries():
    small = bootstrap_ci([0, 1] * 10)
    large = bootstrap_ci([0, 1] * 1000)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    assert bootstrap_ci([0.7] * 5) == (pytest.approx(0.7), pytest.approx(0.7))


def test_a_failed_recompute_does_not_leave_the_old_record_standing(tmp_path):
    from haystack_hardneg.experiment.stages import StageCache

    cache = StageCache(tmp_path)
    cache.run("stage", "key-1", ["out.txt"], lambda: (tmp_path / "out.txt").write_text("one"))

    def half_done():
        (tmp_path / "out.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.run("stage", "key-2", ["out.txt"], half_done)
    cache.close()
    reopened = StageCache(tmp_path)
    assert not reopened.is_done("stage", "key-1")  # going back to the old setting recomputes
    reopened.close()


def test_a_model_folder_replaced_in_place_is_refused_where_a_recorded_stage_used_it(fixtures, tiny_model,
                                                                                   trainable_model, tmp_path):
    import shutil

    base, member = tmp_path / "base", tmp_path / "member"
    shutil.copytree(trainable_model, base)
    shutil.copytree(tiny_model, member)
    config = tiny_config(fixtures, str(member), str(base), tmp_path, strategies=["random"])
    experiment = Experiment(config, progress_bar=False)
    experiment.ensure("index")
    experiment.close()
    Experiment(config, progress_bar=False).close()  # the same folders: accepted
    (member / ".git").mkdir()  # a git clone's bookkeeping changes while the model does not
    (member / ".git" / "index").write_bytes(b"after git status")
    Experiment(config, progress_bar=False).close()
    with open(base / "config.json", "a") as handle:  # e.g. the base re-saved after further training
        handle.write("\n")
    Experiment(config, progress_bar=False).close()  # only the index is recorded, and it never used the base
    (tmp_path / "run" / "train" / "random" / "checkpoints").mkdir(parents=True)  # a training cut short: it resumes
    with open(base / "config.json", "a") as handle:
        handle.write("\n")
    with pytest.raises(ValueError, match=r"model folder\(s\) \[.*base.*\] changed since"):
        Experiment(config, progress_bar=False)
    shutil.rmtree(tmp_path / "run" / "train")
    Experiment(config, progress_bar=False).close()
    with open(member / "config.json", "a") as handle:  # an ensemble member replaced in place: the index used it
        handle.write("\n")
    with pytest.raises(ValueError, match=r"model folder\(s\) \[.*member.*\] changed since"):
        Experiment(config, progress_bar=False)
    assert "index" in json.loads((tmp_path / "run" / "stages.json").read_text())  # the run folder is kept
    # Refused again for the same reason, not as busy: the refusal released the folder's lock.
    with pytest.raises(ValueError, match="changed since"):
        Experiment(config, progress_bar=False)
    other = replace(config, out=str(tmp_path / "other"))
    Experiment(other, progress_bar=False).run()  # a new folder starts, and trains a re-ranker from the base
    with open(base / "config.json", "a") as handle:
        handle.write("\n")
    with pytest.raises(ValueError, match=r"model folder\(s\) \[.*base.*\] changed since"):
        Experiment(other, progress_bar=False)


@pytest.mark.parametrize("setting, message", [
    ({"on_missing": "maybe"}, "on_missing must be 'error' or 'skip'"),
    ({"min_relevance": 0}, "min_relevance must be a whole number >= 1"),
    ({"lexical": {"weight": "auto", "tuning_queries": 0}}, "tuning_queries"),
    ({"lexical": {"weight": 1.5}}, "lexical: weight must be 'auto' or a number in 0..1"),
    ({"lexical": {"weight": "half"}}, "lexical: weight must be 'auto'"),
    ({"lexical": {"langauge": "english"}}, r"lexical: unknown option\(s\) \['langauge'\]"),
    ({"store": {"api_key": "secret"}}, "store.api_key: a key is never written in a config"),
    ({"store": {"index": 3}}, "store: index must be a string"),
    ({"store": ["url"]}, "store must be a mapping"),
    ({"training_seed": "1"}, "training_seed must be an integer"),
    ({"training_seed": True}, "training_seed must be an integer"),
])
def test_data_settings_are_checked(setting, message):
    from haystack_hardneg.options import ConfigError

    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(data="d", training={"base_model": "x"}, **setting)


def test_the_hybrid_weight_can_be_chosen_on_a_seeded_sample_of_training_queries(fixtures):
    from haystack_hardneg.experiment import keys as K
    from haystack_hardneg.ingest.beir import load_beir

    split = load_beir(fixtures / "scifact-tiny", "test")
    config = ExperimentConfig(data=str(fixtures / "scifact-tiny"), training={"base_model": "x"},
                              lexical={"weight": "auto", "tuning_queries": 3})
    sample = K.tuning_query_ids(config, split)
    assert len(sample) == 3 and set(sample) <= set(split.qrels) and sample == K.tuning_query_ids(config, split)
    every = replace(config, lexical={"weight": "auto"})
    assert K.tuning_query_ids(every, split) == sorted(split.qrels)
    assert K.hybrid_key(config, "fs", split) != K.hybrid_key(every, "fs", split)


def test_identical_triplets_train_one_re_ranker(fixtures, tiny_model, trainable_model, tmp_path):
    # One member: `dense` (its only member) and `ensemble` rank alike and mine the same triplets.
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, strategies=["ensemble", "dense"],
                         lexical=None)
    results = Experiment(config, progress_bar=False).run()
    out = tmp_path / "run"
    assert (out / "mine" / "dense" / "triplets.jsonl").read_bytes() == \
        (out / "mine" / "ensemble" / "triplets.jsonl").read_bytes()
    assert results["rerankers"]["dense"]["same_triplets_as"] == "ensemble"
    assert results["rerankers"]["ensemble"]["same_triplets_as"] is None
    assert json.loads((out / "rerank" / "dense.json").read_text()) == \
        json.loads((out / "rerank" / "ensemble.json").read_text())
    stages = json.loads((out / "stages.json").read_text())
    assert stages["train/dense"]["seconds"] < stages["train/ensemble"]["seconds"] / 5
    assert "dense mined the same triplets as ensemble" in (out / "results.md").read_text()


def test_budgets_bound_the_work_alike_for_every_strategy(fixtures, tiny_model, trainable_model, tmp_path):
    from haystack_hardneg.experiment.folder import RunFolder
    from haystack_hardneg.experiment.keys import training_query_ids
    from haystack_hardneg.files import read_jsonl

    # Many epochs and a budget of a few steps: each training would stop wherever its deadline fell on a busy machine.
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, max_train_queries=8,
                         training={**tiny_config(fixtures, tiny_model, trainable_model, tmp_path).training,
                                   "epochs": 20, "max_minutes": 0.01})
    results = Experiment(config, progress_bar=False).run()
    # The first stage retrieved the training queries within max_train_queries only, not every training query.
    train_split = config.resolved().load_splits()["train"]
    retrieved = [r["query_id"] for r in read_jsonl(tmp_path / "run" / RunFolder.lists("train"))]
    assert sorted(retrieved) == training_query_ids(config, train_split) and len(retrieved) == 8 < len(
        train_split.qrels)
    budget = json.loads((tmp_path / "run" / RunFolder.budget).read_text())
    plan = json.loads((tmp_path / "run" / RunFolder.plan).read_text())
    assert budget["seconds_per_step"] == plan["rates"]["seconds_per_step"]  # the plan's warm-up, not another
    assert budget["steps"] == max(1, int(0.6 // budget["seconds_per_step"])) and budget["cpu"]["model"]
    steps = {s: json.loads((tmp_path / "run" / RunFolder.trained(s, "training_report.json")).read_text())["steps"]
             for s in config.strategies}
    assert set(steps.values()) == {budget["steps"]}
    assert steps["random"] < plan["counts"]["strategies"]["random"]["steps"]  # the budget, not the epochs, ended it
    assert all(results["rerankers"][s]["steps"] == budget["steps"] for s in config.strategies)
    assert "| steps |" in (tmp_path / "run" / "results.md").read_text()


def test_a_haystack_embedder_pair_is_a_member_of_the_experiments_ensemble(fixtures, tiny_model, trainable_model,
                                                                           tmp_path):
    # The same model as a Haystack pair (serialised, as YAML gives it) and as a local folder: the same vectors,
    # so the same mined triplets; the report names the pair.
    def pair(kind: str) -> dict:
        return {"type": f"haystack_integrations.components.embedders.sentence_transformers."
                        f"sentence_transformers_{kind}_embedder.SentenceTransformers{kind.title()}Embedder",
                "init_parameters": {"model": tiny_model, "progress_bar": False}}

    member = {"text_embedder": pair("text"), "document_embedder": pair("document")}
    runs = {}
    for name, members in (("pair", [member]), ("folder", [{"model": tiny_model}])):
        config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path / name, strategies=["ensemble"],
                             lexical=None, members=members, training={
                                 "base_model": trainable_model, "epochs": 1, "batch_size": 4, "max_length": 32,
                                 "validation_fraction": 0.3, "max_steps": 2})
        Experiment(config, progress_bar=False).run()
        runs[name] = tmp_path / name / "run"
    assert (runs["pair"] / "mine" / "ensemble" / "triplets.jsonl").read_text() == \
        (runs["folder"] / "mine" / "ensemble" / "triplets.jsonl").read_text()
    assert "ensemble of SentenceTransformersDocumentEmbedder(" in (runs["pair"] / "results.md").read_text()
    with pytest.raises(ValueError, match=r"members\[0\]\.document_embedder\.init_parameters\.api_key: a key is "
                                         r"never written"):
        ExperimentConfig(data="d", training={"base_model": "x"}, members=[{
            "text_embedder": pair("text"),
            "document_embedder": {**pair("document"), "init_parameters": {
                "model": "m", "api_key": {"type": "token", "token": "sk-literal"}}}}])
