"""The choice of negatives every strategy shares: among a window's candidates, those the false-negative guard
(guard.py) let through."""

from __future__ import annotations

import numpy as np

from haystack_hardneg.mine.config import MiningConfig


def choose(held_back: np.ndarray, config: MiningConfig, rng: np.random.Generator, *,
           presampled: bool = False) -> np.ndarray:
    """Positions of one window's negatives: its first ``num_negatives`` candidates the guard let through, or with
    ``sampling="random"`` a seeded sample of them in scan order (``presampled``: the window is a uniform draw
    already, so its first ones are a sample as good as any)."""
    eligible = np.flatnonzero(~held_back)
    if config.sampling == "random" and not presampled and len(eligible) > config.num_negatives:
        eligible = np.sort(rng.choice(eligible, size=config.num_negatives, replace=False))
    return eligible[: config.num_negatives]


def take_top(candidates: np.ndarray, held_back: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``choose`` with ``sampling="top"`` for every window at once (``pairs x c``, -1 padding): which windows
    hold ``n`` candidates the guard let through, and the positions of those windows' first ``n`` (``full x n``)."""
    usable = (candidates >= 0) & ~held_back
    take = usable & (np.cumsum(usable, axis=1) <= n)
    enough = take.sum(axis=1) == n
    return enough, np.nonzero(take[enough])[1].reshape(-1, n)
