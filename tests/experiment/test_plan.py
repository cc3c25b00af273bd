"""The plan printed before an experiment's heavy work: its counts are what the run then does."""

import json

from haystack_hardneg.experiment.runner import Experiment

from experiment.tiny_experiment import tiny_config


def test_the_plans_counts_are_what_the_run_does_and_its_estimates_reach_the_report(fixtures, tiny_model,
                                                                                  trainable_model, tmp_path):
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path,
                         mining={"num_negatives": 2, "rank_window": [0, 20], "guard_ratio": None,
                                 "max_positives_per_query": 1},
                         training={"base_model": trainable_model, "epochs": 1.5, "batch_size": 3, "max_length": 64,
                                   "validation_fraction": 0.3})
    experiment = Experiment(config, progress_bar=False)
    plan = experiment.plan()
    experiment.close()
    assert plan["done"] == []
    assert set(plan["estimate_seconds"]) >= {"index", "first_stage", "train/random", "rerank/ensemble_cluster"}
    assert all(seconds >= 0 for seconds in plan["estimate_seconds"].values())
    assert plan["rates"]["seconds_per_step"] > 0 and plan["rates"]["seconds_per_pair"] > 0

    results = Experiment(config, progress_bar=False).run()
    out = tmp_path / "run"
    for name, counted in plan["counts"]["strategies"].items():
        mined = json.loads((out / "mine" / name / "report.json").read_text())
        trained = json.loads((out / "train" / name / "training_report.json").read_text())
        assert counted["pairs"] == mined["pairs"]
        assert counted["train_rows"] == trained["train_rows"]
        assert counted["validation_queries"] == trained["validation_queries"]
        assert counted["steps"] == trained["steps"]
        evaluations = [h for h in trained["history"] if "eval_validation_ndcg@10" in h]
        # The trainer's evaluations (none when it would evaluate only once, at the end) and the fusion sweep.
        assert counted["validations"] == len(evaluations) + (trained["fusion"] is not None)
    assert plan["counts"]["test_queries"] == results["test_queries"]
    # After mining, the counts come from the rows mining wrote (exact even when pairs find too few negatives).
    from haystack_hardneg.experiment.plan import mined_counts

    for name in config.strategies:
        trained = json.loads((out / "train" / name / "training_report.json").read_text())
        mined = mined_counts(config, name, out / "mine" / name / "triplets.jsonl")
        assert (mined["train_rows"], mined["steps"]) == (trained["train_rows"], trained["steps"])
    # The run plans again before its first stage; the report sets that plan's estimates beside the stage times.
    planned_by_run = json.loads((out / "plan.json").read_text())
    assert results["plan_estimate_seconds"] == planned_by_run["estimate_seconds"]
    assert planned_by_run["counts"] == plan["counts"]
    assert planned_by_run["rates"] == plan["rates"]  # the warm-up the plan made, not a second one
    assert "| estimated |" in (out / "results.md").read_text()
    # Planned again, the finished stages are done and cost nothing.
    again = Experiment(config, progress_bar=False)
    replanned = again.plan(measured=False)
    again.close()
    assert "estimate_seconds" not in replanned and replanned["counts"] == plan["counts"]


def test_compiling_the_metrics_is_estimated_once_on_the_first_stage_left_that_measures(fixtures, tiny_model,
                                                                                     trainable_model, tmp_path,
                                                                                     monkeypatch):
    from haystack_hardneg.experiment.plan import METRICS_COMPILE_SECONDS, estimate
    from haystack_hardneg.experiment.table import stage_table

    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path)
    table = stage_table(config)
    counts = {"pairs": 10, "validation_queries": 3, "steps": 4, "validations": 1}
    numbers = {"documents": 50, "test_queries": 5, "train_queries": 10, "train_queries_used": 10,
               "strategies": {"random": counts, "ensemble_cluster": counts}}
    free = dict.fromkeys(["seconds_per_document", "dimension", "seconds_per_query", "seconds_per_step",
                          "seconds_per_pair"], 0.0)
    cache = tmp_path / "numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    empty = METRICS_COMPILE_SECONDS["empty cache"]
    seconds = estimate(table, config, numbers, free)
    assert seconds["hybrid"] >= empty and seconds["train/random"] < 1 and sum(seconds.values()) < empty + 1
    # With the hybrid weight chosen already, the first training's validation compiles them.
    assert estimate(table, config, numbers, free, done={"hybrid"})["train/random"] >= empty
    # A filled cache makes it cheap.
    (cache / "ranx").mkdir(parents=True)
    (cache / "ranx" / "ndcg._ndcg-72.py311.nbi").write_bytes(b"")
    assert estimate(table, config, numbers, free)["hybrid"] < empty


def test_the_plan_counts_what_an_embedder_pair_will_be_sent_and_sends_it_nothing(fixtures, tiny_model,
                                                                                trainable_model, tmp_path):
    import math

    from haystack_hardneg.embed.encoder import EnsembleEncoder
    from haystack_hardneg.experiment.plan import format_plan
    from haystack_hardneg.experiment.rates import api_work
    from haystack_hardneg.ingest.text import document_text

    pair = {"text_embedder": {"type": "haystack_integrations.components.embedders.sentence_transformers."
                                      "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder",
                              "init_parameters": {"model": tiny_model, "progress_bar": False}},
            "document_embedder": {"type": "haystack_integrations.components.embedders.sentence_transformers."
                                          "sentence_transformers_document_embedder."
                                          "SentenceTransformersDocumentEmbedder",
                                  "init_parameters": {"model": tiny_model, "progress_bar": False}},
            "query_prompt": "query: "}
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, members=[pair, {"model": tiny_model}])
    experiment = Experiment(config, progress_bar=False, plan_only=True)
    splits = config.load_splits()
    corpus = [document_text(d, config.meta_fields, config.separator) for d in splits["test"].corpus]
    queries = list(dict.fromkeys([*splits["test"].queries.values(), *splits["train"].queries.values()]))
    name = "SentenceTransformersDocumentEmbedder(" + tiny_model + ")"
    expected_tokens = sum(math.ceil(len(t) / 4) for t in corpus) + sum(math.ceil(len("query: " + q) / 4)
                                                                          for q in queries)
    assert api_work(config, splits) == {name: {"texts": len(corpus) + len(queries), "tokens": expected_tokens}}
    # Once the corpus is embedded (cached), only the queries are left to send.
    encoder = EnsembleEncoder(config.members, cache_dir=config.cache_dir, progress_bar=False)
    encoder.load()
    encoder.encode_member(0, corpus, "document")
    assert api_work(config, splits)[name]["texts"] == len(queries)
    plan = experiment.plan(measured=False)
    experiment.close()
    assert plan["api"][name]["texts"] == len(queries)
    assert f"| {name} | {len(queries):,} |" in format_plan(plan)
