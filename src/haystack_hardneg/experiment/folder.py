"""Where everything goes in an experiment's run folder: every path of every stage, in one place.

Paths are relative to the run folder (as ``stages.json`` records a stage's outputs); ``folder / rel`` gives the
file itself."""

from __future__ import annotations

from pathlib import Path

SPLITS = ("test", "train")


def strategy_stage(kind: str, strategy: str) -> str:
    """The name of a strategy's stage of ``kind`` (mine, train, rerank): its folder's (or file's) name too."""
    return f"{kind}/{strategy}"


class RunFolder:
    """The run folder ``root`` and the names of its files."""

    stages = "stages.json"
    trainings = "train"
    index = "index.json"
    qdrant = "qdrant"
    bm25 = "bm25"
    choice = "first_stage/choice.json"
    # training.max_minutes turned into one step count for every strategy.
    budget = "budget.json"
    plan = "plan.json"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __truediv__(self, relative: str) -> Path:
        return self.root / relative

    @staticmethod
    def lists(split: str) -> str:
        """Each member kind's own first-stage list of a split's queries."""
        return f"first_stage/{split}_lists.jsonl"

    @staticmethod
    def candidates(split: str) -> str:
        """The first stage's candidates (the lists fused) of a split's queries."""
        return f"first_stage/{split}_candidates.jsonl"

    @staticmethod
    def mined(strategy: str, name: str = "") -> str:
        """Strategy ``strategy``'s mining folder, or its file ``name`` (triplets.jsonl, report.json, ...)."""
        return f"mine/{strategy}/{name}".rstrip("/")

    @staticmethod
    def trained(strategy: str, name: str = "") -> str:
        """Strategy ``strategy``'s training folder, or its file ``name`` (model, training_report.json, ...)."""
        return f"train/{strategy}/{name}".rstrip("/")

    @staticmethod
    def scores(strategy: str) -> str:
        """Strategy ``strategy``'s re-ranker scores of the test and validation candidates."""
        return f"rerank/{strategy}.json"
