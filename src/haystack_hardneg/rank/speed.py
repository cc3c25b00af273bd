"""How fast each way of serving a cross-encoder is on this CPU, measured side by side: the same batches (a query's
top candidates, as a ranker gets them), the systems taking turns batch by batch in an order rotated every batch,
so that a slower or busier moment of the machine falls on all of them alike."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from haystack_hardneg.machine import cpu

Pairs = Sequence[tuple[str, str]]
Predict = Callable[[Pairs], Any]

# Speed-ups below this are within the noise of a few dozen interleaved timings on a shared machine: an export must
# be at least this much faster than torch fp32 to be served instead of it.
DEFAULT_MIN_SPEEDUP = 1.05


def probe_batches(records: list[dict[str, Any]], queries: int, top_k: int = 20) -> list[list[tuple[str, str]]]:
    """Up to ``queries`` batches of (query, candidate text): each record's first ``top_k`` candidates."""
    return [[(r["query"], c["text"]) for c in r["candidates"][:top_k]] for r in records[:queries] if r["candidates"]]


def interleaved_seconds(systems: dict[str, Predict], batches: list[list[tuple[str, str]]], warmup: int = 1
                        ) -> dict[str, list[float]]:
    """Seconds per batch per system; the first ``warmup`` batches run on every system untimed."""
    names = list(systems)
    for batch in batches[:warmup]:
        for name in names:
            systems[name](batch)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for index, batch in enumerate(batches[warmup:]):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            systems[name](batch)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def speed_report(seconds: dict[str, list[float]], reference: str, pairs_per_batch: float) -> dict[str, Any]:
    """Median milliseconds per batch of every system, and its speed-up over ``reference`` (the ratio of medians),
    with the CPU they were measured on."""
    medians = {name: float(np.median(values)) * 1000 for name, values in seconds.items() if values}
    return {"cpu": cpu(), "batches": len(seconds[reference]), "pairs_per_batch": round(pairs_per_batch, 1),
            "median_ms": {name: round(ms, 1) for name, ms in medians.items()},
            "speedup": {name: round(medians[reference] / ms, 3) for name, ms in medians.items()}}


def measure(systems: dict[str, Predict], batches: list[list[tuple[str, str]]], reference: str) -> dict[str, Any]:
    """:func:`speed_report` of ``systems`` timed side by side on ``batches`` (the first one a warm-up)."""
    if len(batches) < 2:
        raise ValueError("Timing needs at least two batches: one to warm up, one to time.")
    timed = batches[1:]
    return speed_report(interleaved_seconds(systems, batches), reference, np.mean([len(b) for b in timed]))
