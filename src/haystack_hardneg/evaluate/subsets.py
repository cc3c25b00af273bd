"""Query subsets the paper reports separately: short and long relevant documents."""

from __future__ import annotations

import numpy as np


def split_by_document_length(qrels: dict[str, dict[str, int]], lengths: dict[str, int]
                             ) -> tuple[dict[str, list[str]], float]:
    """Queries whose relevant documents are, on average, in the longer half of the corpus (``long``: mean length
    above the corpus median, in words) and the rest (``short``), with that median."""
    median = float(np.median(list(lengths.values())))
    groups: dict[str, list[str]] = {"short": [], "long": []}
    for query_id, judged in qrels.items():
        relevant = [lengths[d] for d, grade in judged.items() if grade > 0 and d in lengths]
        if relevant:
            groups["long" if np.mean(relevant) > median else "short"].append(query_id)
    return groups, median
