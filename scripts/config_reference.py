"""Write docs/reference/configuration.md from the config classes, where each option is declared once.

    python scripts/config_reference.py            # rewrite the page
    python scripts/config_reference.py --check    # exit 1 when the page is out of date (the tests run this)
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from pathlib import Path

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.sections import LexicalSection, StoreSection
from haystack_hardneg.export.config import ExportConfig
from haystack_hardneg.measure.config import PipelineEvalConfig, TuneConfig
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.train.config import TrainingConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"

INTRO = """# Configuration reference

Generated from the config classes by `scripts/config_reference.py`; do not edit by hand.

Each option is declared once. Mining options are `ClusterNegativeMiner(mining=...)`'s keys, the `mine` command's
flags (`--num-negatives` for `num_negatives`) and an experiment's `mining:` section; training options are
`TripletTrainer(training=...)`'s keys, the `train` command's flags and an experiment's `training:` section; export
options are `export_model(ExportConfig(...))`'s keys and the `export` command's flags (`train --export BACKEND`
takes them too); evaluation options are `evaluate_pipeline`'s and the `evaluate` / `tune` commands' flags, tuning
options `tune_pipeline`'s and the `tune` command's.
"""


def _type_name(hint) -> str:
    text = str(hint).replace("typing.", "")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    return text.replace("NoneType", "None")


def _cell(value) -> str:
    text = "" if value is dataclasses.MISSING else repr(value)
    return text.replace("|", "\\|")


def options_table(cls, skip: tuple[str, ...] = ()) -> str:
    hints = typing.get_type_hints(cls)
    rows = ["| option | type | default | description |", "|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
        meta = field.metadata
        text = meta.get("help", "")
        if meta.get("choices"):
            text += f" (one of {', '.join(map(str, meta['choices']))})"
        if not meta.get("cli", True):
            text += " (not a command-line flag)"
        cell = _cell(default) or "required"
        rows.append(f"| `{field.name}` | `{_type_name(hints[field.name])}` | {cell} | "
                    f"{text.replace('|', '/')} |")
    return "\n".join(rows)


def experiment_table() -> str:
    """The experiment's keys, described by the ``:param`` lines of ExperimentConfig's docstring."""
    doc = ExperimentConfig.__doc__ or ""
    described = {m.group(1): " ".join(m.group(2).split())
                 for m in re.finditer(r":param (\w+): (.*?)(?=\n\s*:param |\Z)", doc, flags=re.S)}
    rows = ["| key | default | description |", "|---|---|---|"]
    for field in dataclasses.fields(ExperimentConfig):
        default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
        rows.append(f"| `{field.name}` | {_cell(default) or 'required'} | "
                    f"{described.get(field.name, '').replace('|', '/')} |")
    return "\n".join(rows)


def page() -> str:
    return "\n".join([
        INTRO,
        "## Experiment config (YAML)\n", experiment_table(), "",
        "## The experiment's BM25 member (`lexical:`)\n", options_table(LexicalSection), "",
        "## The experiment's Qdrant store (`store:`; keys other than these go to `QdrantDocumentStore` as they "
        "are)\n", options_table(StoreSection, skip=("qdrant",)), "",
        "## Mining options (`MiningConfig`)\n", options_table(MiningConfig), "",
        "## Training options (`TrainingConfig`)\n", options_table(TrainingConfig), "",
        "## Export options (`ExportConfig`)\n", options_table(ExportConfig), "",
        "## Evaluating your pipeline (`PipelineEvalConfig`)\n", options_table(PipelineEvalConfig), "",
        "## Tuning the ranker for your pipeline (`TuneConfig`)\n", options_table(TuneConfig), "",
    ])


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if PAGE.is_file() and PAGE.read_text(encoding="utf-8") == page() else 1)
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page(), encoding="utf-8")
    print(f"wrote {PAGE}")
