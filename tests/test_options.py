"""Each mining and training option is declared once, in its config class, and reaches every face from there."""

import dataclasses
import subprocess
import sys
import typing

import pytest

from haystack_hardneg import ClusterNegativeMiner, EnsembleTextEmbedder, TripletTrainer
from haystack_hardneg.cli import build_parser
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.options import ConfigError, from_mapping
from haystack_hardneg.train.config import TrainingConfig


def _other_value(cls, item: dataclasses.Field):
    """A valid value of the field that is not its default."""
    hint = typing.get_type_hints(cls)[item.name]
    default = item.default
    choices = item.metadata.get("choices")
    if choices:
        return next(c for c in choices if c != default)
    if hint is bool:
        return not default
    if typing.get_origin(hint) is tuple:
        return (3, 50)
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if args[0] is int:
        return 7 if default is None else default + 1
    if args[0] is float:
        return 0.5 if default is None else default / 2
    return "other"


def _flags(command: str, values: dict) -> list[str]:
    """The command-line words that set ``values``, found through the command's own parser."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    actions = commands.choices[command]._actions
    words = []
    for name, value in values.items():
        if isinstance(value, bool):  # the flag whose stored constant is the value (--x / --no-x)
            words.append(next(a.option_strings[0] for a in actions if a.dest == name and a.const is value))
            continue
        flag = next(a.option_strings[0] for a in actions if a.dest == name)
        words += [flag, *map(str, value)] if isinstance(value, tuple) else [flag, str(value)]
    return words


MINING_FIELDS = [f for f in dataclasses.fields(MiningConfig) if f.name != "strategy"]


@pytest.mark.parametrize("item", MINING_FIELDS, ids=lambda f: f.name)
def test_every_mining_option_reaches_the_cli_the_component_and_the_experiment(item, tiny_model):
    value = _other_value(MiningConfig, item)
    # CLI: the mine command's generated flag.
    args = build_parser().parse_args(["mine", "--data", "d", "--strategy", "ensemble_cluster",
                                      *_flags("mine", {item.name: value})])
    from haystack_hardneg.cli.learning import mining_configs

    assert getattr(mining_configs(args, 2, "concat")["ensemble_cluster"], item.name) == value
    # Component: init parameter, kept through to_dict / from_dict.
    miner = ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=[tiny_model]),
                                 mining={item.name: value})
    restored = ClusterNegativeMiner.from_dict(miner.to_dict())
    assert getattr(restored.config, item.name) == value
    # Experiment: the mining section (the seed is the experiment's own setting).
    if item.name == "seed":
        config = ExperimentConfig(data="d", training={"base_model": "x"}, seed=value, members=[{"model": "a"}] * 2)
    else:
        config = ExperimentConfig(data="d", training={"base_model": "x"}, mining={item.name: value},
                                  members=[{"model": "a"}] * 2, strategies=["ensemble_cluster"])
    assert getattr(config.mining_config("ensemble_cluster"), item.name) == value


CLI_TRAINING_FIELDS = [f for f in dataclasses.fields(TrainingConfig) if f.metadata["cli"]]


# Options that another one's value must accompany (the config refuses them alone at its default).
COMPANIONS = {"distill_candidates": {"label_weight": 0.0}}


@pytest.mark.parametrize("item", CLI_TRAINING_FIELDS, ids=lambda f: f.name)
def test_every_training_option_reaches_the_cli_the_component_and_the_experiment(item, trainable_model):
    value = trainable_model if item.name == "base_model" else _other_value(TrainingConfig, item)
    options = {item.name: value, **COMPANIONS.get(item.name, {})}
    args = build_parser().parse_args(["train", "--triplets", "t.jsonl", *_flags("train", options)])
    from haystack_hardneg.cli.learning import training_config

    assert getattr(training_config(args), item.name) == value
    training = {"base_model": trainable_model, "output_dir": "runs/t", **options}
    restored = TripletTrainer.from_dict(TripletTrainer(training=training).to_dict())
    assert getattr(restored.config, item.name) == value
    if item.name not in ("output_dir", "strategy", "seed"):  # set by the experiment per re-ranker
        config = ExperimentConfig(data="d", training={"base_model": "x", **options})
        assert getattr(config.training_config(output_dir="o", strategy="s", data_description=""), item.name) == value


def test_a_wrong_type_or_an_unknown_key_is_named_with_what_is_accepted():
    with pytest.raises(ConfigError, match=r"miner: num_negatives must be an integer, got 'five'"):
        from_mapping(MiningConfig, {"num_negatives": "five"}, where="miner")
    with pytest.raises(ConfigError, match=r"miner: Unknown sampling 'best'; choose one of \['top', 'random'\]"):
        from_mapping(MiningConfig, {"sampling": "best"}, where="miner")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['negatives'\]; known: \['cluster_algorithm'"):
        from_mapping(MiningConfig, {"negatives": 5}, where="miner")
    assert from_mapping(MiningConfig, {"rank_window": [2, 9]}, where="miner").rank_window == (2, 9)
    with pytest.raises(ConfigError, match=r"TripletTrainer training: unknown option\(s\) \['learning_rate'\]"):
        TripletTrainer(training={"base_model": "x", "output_dir": "o", "learning_rate": 1})


@pytest.mark.parametrize("section, typo", [("training", "epoch"), ("mining", "num_negativs")])
def test_an_experiment_config_with_a_typo_is_refused_before_any_stage(section, typo, fixtures, tmp_path):
    config = tmp_path / "experiment.yml"
    sections = {"training": "training:\n  base_model: x\n", "mining": "training:\n  base_model: x\nmining:\n"}
    config.write_text(f"data: {fixtures / 'scifact-tiny'}\nout: {tmp_path / 'run'}\n" + sections[section]
                      + f"  {typo}: 3\n")
    done = subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", "experiment", str(config)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert f"{section}: unknown option(s) ['{typo}']; known: [" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
