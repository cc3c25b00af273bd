"""The mining step as one job: mine one strategy's negatives, report on them, write them.

``ClusterNegativeMiner.run``, the ``mine`` command and the experiment's ``mine/<strategy>`` stage all call these
functions, so a strategy mined by any of them gives the same files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.mine.data import MiningData
from haystack_hardneg.mine.negatives import MiningResult, mine_negatives
from haystack_hardneg.mine.report import mining_report
from haystack_hardneg.mine.triplets import write_triplets


def mine(data: MiningData, config: MiningConfig, *, skipped_when_loading: dict[str, int] | None = None,
         progress_bar: bool = True) -> tuple[MiningResult, dict[str, Any]]:
    """Negatives for every (query, positive) pair of ``data`` and their report (timed)."""
    started = time.perf_counter()
    result = mine_negatives(data, config, progress_bar=progress_bar)
    report = mining_report(data, result, seconds=time.perf_counter() - started,
                           skipped_when_loading=skipped_when_loading)
    return result, report


def mine_into(folder: str | Path, data: MiningData, config: MiningConfig, *,
              skipped_when_loading: dict[str, int] | None = None, report_extra: dict[str, Any] | None = None,
              file_format: str = "jsonl", progress_bar: bool = True) -> dict[str, Any]:
    """:func:`mine`, then the triplets, provenance, suspects and ``report.json`` written into ``folder``;
    ``report_extra`` is added to the report (e.g. which variant of a strategy this is). Returns the report."""
    result, report = mine(data, config, skipped_when_loading=skipped_when_loading, progress_bar=progress_bar)
    report.update(report_extra or {})
    folder = Path(folder)
    write_triplets(folder, result, dict(zip(data.query_ids, data.query_texts)),
                   dict(zip(data.doc_ids, data.doc_texts)), file_format=file_format)
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2))
    return report
