"""The report of the strategies an experiment has finished so far, written while it runs."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.folder import RunFolder, strategy_stage
from haystack_hardneg.experiment.report import write_report
from haystack_hardneg.experiment.table import expected_keys
from haystack_hardneg.files import atomic_write_text

logger = logging.getLogger(__name__)


def interim_report(config: ExperimentConfig, dest: str | Path) -> dict[str, Any]:
    """The report of the strategies an experiment has finished so far, written into ``dest`` (another folder:
    the running experiment keeps its own). Reads the run folder only, so it works while the experiment runs.
    A strategy whose recorded stages do not match ``config`` (settings changed since it ran) is left out and
    named in ``stale_strategies``: run the experiment again to bring it up to date."""
    config = config.resolved()
    out = Path(config.out)
    stages = out / RunFolder.stages
    records = json.loads(stages.read_text(encoding="utf-8")) if stages.is_file() else {}
    finished = [s for s in config.strategies if strategy_stage("rerank", s) in records and "hybrid" in records]
    if not finished:
        raise ValueError(f"No strategy of {out} has finished re-ranking yet.")
    dest = Path(dest)
    if dest.resolve() == out.resolve():
        raise ValueError("Write an interim report into another folder than the running experiment's.")
    splits = config.load_splits()
    test_split, train_split = splits["test"], splits["train"]
    # The re-ranking key chains every upstream key, but the report also reads the first stage's and the trainings'
    # own files, which a later run with other settings may have rewritten without reaching the downstream records.
    keys = expected_keys(replace(config, strategies=finished), test_split, train_split)

    def recorded(stage: str) -> bool:
        return stage in records and records[stage]["key"] == keys[stage]

    if not (recorded("first_stage") and recorded("hybrid")):
        raise ValueError(f"The first stage recorded in {out} was made with other settings or data than this "
                         f"config's: run the experiment again first.")
    stale = [s for s in finished
             if not (recorded(strategy_stage("rerank", s)) and recorded(strategy_stage("train", s)))]
    current = [s for s in finished if s not in stale]
    if stale:
        logger.warning("Left out of the interim report, recorded with other settings than this config's: %s.",
                       ", ".join(stale))
    if not current:
        raise ValueError(f"Every finished strategy of {out} ({', '.join(stale)}) was run with other settings than "
                         f"this config's: run the experiment again first.")
    dest.mkdir(parents=True, exist_ok=True)
    results = write_report(out, replace(config, strategies=current), splits, records, dest=dest)
    results["finished_strategies"] = current
    results["stale_strategies"] = stale
    atomic_write_text(dest / "results.json", json.dumps(results, indent=2))
    return results
