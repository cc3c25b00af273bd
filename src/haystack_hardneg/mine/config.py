"""How to mine: every mining option, declared once (type, default, choices, help).

``ClusterNegativeMiner(mining=...)``, the ``mine`` command's flags and an experiment's ``mining:`` section and
variants all read this class; a new option is one field here plus its use in the mining core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from haystack_hardneg.mine.cluster import CLUSTER_ALGORITHMS, ClusterAlgorithm
from haystack_hardneg.options import Options, option

Strategy = Literal["ensemble_cluster", "ensemble", "dense", "bm25", "random"]
STRATEGIES: tuple[str, ...] = ("ensemble_cluster", "ensemble", "dense", "bm25", "random")
# The strategies that can rank their candidates by the ensemble fused with BM25 (``lexical_weight``).
LEXICAL_FUSION_STRATEGIES: tuple[str, ...] = ("ensemble_cluster", "ensemble")
SAMPLINGS: tuple[str, ...] = ("top", "random")
GUARD_REFERENCES: tuple[str, ...] = ("pair", "lowest", "highest")


@dataclass
class MiningConfig(Options):
    """How to mine: the strategy and its settings. ``seed``: the same seed gives the same output."""

    strategy: Strategy = option("ensemble_cluster", choices=STRATEGIES, cli=False, help=(
        "ensemble_cluster (the paper: the clusters of the query and of its positive, ranked by the ensemble), "
        "ensemble (without clustering), dense (one member), bm25 or random"))
    num_negatives: int = option(5, help="negatives per (query, positive) pair")
    rank_window: tuple[int, int] = option((0, 100), metavar=("LO", "HI"), help=(
        "LO HI: candidates ranked LO .. HI-1 (0-based, documents judged relevant removed) by the strategy's own "
        "score are eligible; LO > 0 skips the very top, where false negatives are likeliest"))
    sampling: Literal["top", "random"] = option("top", choices=SAMPLINGS, help=(
        "top: the best eligible candidates; random: a seeded sample of them"))
    member: int = option(0, help="the ensemble member the dense strategy uses")
    n_clusters: int | None = option(None, help="clusters for ensemble_cluster (none: about sqrt(documents / 2))")
    cluster_algorithm: ClusterAlgorithm = option("auto", choices=CLUSTER_ALGORITHMS, help=(
        "auto (KMeans, MiniBatchKMeans above 50,000 documents), kmeans, minibatch_kmeans, gmm or agglomerative"))
    guard_ratio: float | None = option(0.95, help=(
        "hold back candidates scoring above this fraction of the positive's ensemble score, a relative margin "
        "(NV-Retriever's TopK-PercPos; none: off)"))
    guard_margin: float | None = option(None, help=(
        "hold back candidates scoring above the positive's ensemble score minus this, an absolute margin "
        "(NV-Retriever's TopK-MarginPos; none: off)"))
    guard_max_score: float | None = option(None, help=(
        "hold back candidates whose ensemble score is above this, whatever the positive's (none: off)"))
    guard_reference: Literal["pair", "lowest", "highest"] = option("pair", choices=GUARD_REFERENCES, help=(
        "the positive the margins are taken from when a query has several: pair (the pair's own positive), "
        "lowest (the query's lowest-scoring positive, as NV-Retriever: stricter, holds back more) or highest "
        "(its best-scoring one: holds back least)"))
    guard_member_agreement: bool = option(True, negative_flag="--no-member-agreement", help=(
        "also hold back candidates that every ensemble member scores above the positive"))
    lexical_weight: float | None = option(None, help=(
        "ensemble strategies: rank candidates by w * BM25 + (1 - w) * ensemble, each min-max normalised over the "
        "candidates, so that negatives lean towards what a hybrid first stage shows the re-ranker; BM25 here has "
        "English stopwords and no stemmer. Clusters, guard, fallback and recorded scores stay on the ensemble "
        "(none: the ensemble alone, the paper)"))
    fill_beyond_window: bool = option(True, negative_flag="--no-fill", help=(
        "when the window leaves a pair short of negatives the guard lets through, take the next ones beyond it in "
        "the strategy's own order (ensemble_cluster: the ensemble's ranking outside the clusters; random: more "
        "draws), down to the whole corpus, so that every strategy trains on the same pairs; off: such pairs "
        "are left out"))
    max_positives_per_query: int | None = option(5, help=(
        "mine for at most this many positives per query (a seeded sample of them), so that a query's rows in the "
        "training set stay bounded however many documents are judged relevant to it (none: every positive)"))
    seed: int = option(0, help="seeds clustering and sampling")

    def validate(self) -> None:
        if self.num_negatives < 1:
            raise ValueError("num_negatives must be >= 1.")
        if self.max_positives_per_query is not None and self.max_positives_per_query < 1:
            raise ValueError("max_positives_per_query must be >= 1 (none: every positive).")
        lo, hi = self.rank_window
        if not 0 <= lo < hi:
            raise ValueError(f"rank_window must be (lo, hi) with 0 <= lo < hi, got {self.rank_window}.")
        if hi - lo < self.num_negatives:
            raise ValueError(f"rank_window {self.rank_window} holds fewer than num_negatives={self.num_negatives}.")
        if self.guard_margin is not None and not 0.0 <= self.guard_margin <= 2.0:
            raise ValueError(f"guard_margin must be in [0, 2] (a difference of cosines), got {self.guard_margin}.")
        if self.guard_max_score is not None and not -1.0 <= self.guard_max_score <= 1.0:
            raise ValueError(f"guard_max_score must be in [-1, 1] (a cosine), got {self.guard_max_score}.")
        if self.lexical_weight is not None:
            if self.strategy not in LEXICAL_FUSION_STRATEGIES:
                raise ValueError(f"lexical_weight applies to the strategies {LEXICAL_FUSION_STRATEGIES}, not "
                                 f"{self.strategy!r}.")
            if not 0.0 <= self.lexical_weight <= 1.0:
                raise ValueError(f"lexical_weight must be in [0, 1], got {self.lexical_weight}.")


def uses_bm25(config: MiningConfig) -> bool:
    """Whether mining with ``config`` builds a BM25 index (the optional ``bm25`` extra)."""
    return config.strategy == "bm25" or config.lexical_weight is not None


def check_fits_ensemble(config: MiningConfig, members: int, combine: str) -> None:
    """The ``dense`` strategy reads one member's slice of a concatenated ensemble vector: it needs that member and
    that layout. Checked where the ensemble is known, before anything is embedded."""
    if config.strategy != "dense":
        return
    if not 0 <= config.member < members:
        raise ValueError(f"member={config.member} but the ensemble has {members} member(s).")
    if combine != "concat" and members > 1:
        raise ValueError("The dense strategy reads one member out of a combine='concat' ensemble.")
